"""Private PostgreSQL, Redis and Prometheus servers for the tests.

Each class runs one real server, installed from Debian packages by
`scripts/services/install.sh`, on a free loopback port with its data and log in a
directory the caller gives (a pytest temporary directory). Nothing is mocked and nothing
is shared with a system-wide instance.

    with PostgresServer(tmp / "pg") as pg, RedisServer(tmp / "redis") as rd:
        ...  # pg.dsn, rd.url

`start()` returns once the server answers its own protocol (`pg_isready`, a Redis
`PING`, Prometheus `/-/ready`); if it exits or does not answer in time, `ServerError`
says so with the tail of the server's log. `stop()` shuts it down cleanly and may be
followed by `start()` again (same port, same data), which is how a test takes a service
away for a while. A server whose test process dies is taken down with it
(`PR_SET_PDEATHSIG`), so a killed test run leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import weakref
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

from tests.ports import free_port
from tests.process import (
    PORT_ATTEMPTS,
    ProcessError,
    ServerContext,
    ServerProcess,
    http_ok,
    port_taken,
)

__all__ = [
    "PostgresServer",
    "PrometheusServer",
    "RedisServer",
    "ServerError",
    "free_port",
    "postgres_bin",
    "promtool",
]

LOOPBACK = "127.0.0.1"


class ServerError(ProcessError):
    """A server could not be installed, started, reached or stopped."""


def _find_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ServerError(f"'{name}' is not installed: run scripts/services/install.sh")
    return path


def postgres_bin() -> Path:
    """The bin directory of the newest PostgreSQL installed from Debian packages.

    `TICKPLANE_PG_BIN` overrides it.
    """
    override = os.environ.get("TICKPLANE_PG_BIN")
    if override:
        return Path(override)
    root = Path("/usr/lib/postgresql")
    candidates = sorted(
        (p for p in root.glob("*/bin") if p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
    )
    if not candidates:
        raise ServerError(f"no PostgreSQL under {root}: run scripts/services/install.sh")
    return candidates[-1]


def promtool(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `promtool` with `args`; the result is returned whatever the exit status."""
    return subprocess.run(
        [_find_binary("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class _Server(ServerContext):
    """One server process: start, wait until it answers, stop."""

    name: ClassVar[str]
    #: What `_ready` asks the server, for the error saying it did not answer.
    probe: ClassVar[str]
    #: Signal for a clean, prompt shutdown.
    stop_signal: ClassVar[int] = signal.SIGTERM
    #: Signal the kernel sends the server if the test process dies first.
    orphan_signal: ClassVar[int] = signal.SIGTERM

    def __init__(
        self, base_dir: Path, *, port: int | None = None, startup_timeout: float = 30.0
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.base_dir / f"{self.name}.log"
        self.startup_timeout = startup_timeout
        #: Seconds the last `start()` took, preparation (e.g. initdb) included.
        self.startup_seconds: float | None = None
        self._port = port
        self._port_fixed = port is not None
        self._process = ServerProcess(
            self.name,
            self.log_path,
            error=ServerError,
            stop_signal=self.stop_signal,
            orphan_signal=self.orphan_signal,
        )

    # -- what each server defines ----------------------------------------------------

    def _prepare(self) -> None:
        """One-time setup before the first start (create the data directory...)."""

    @abstractmethod
    def _command(self, port: int) -> list[str]:
        """The command line that runs the server in the foreground on `port`."""

    @abstractmethod
    def _ready(self) -> bool:
        """Whether the server answers its protocol; False while it starts up."""

    def _after_ready(self) -> None:
        """Setup that needs the running server (create a database...)."""

    def _user(self) -> str | None:
        """The OS user to run the server as (None: the current user)."""
        return None

    # -- public interface ------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the server listens on (fixed by the first `start()`)."""
        if self._port is None:
            raise ServerError(f"{self.name} has not been started")
        return self._port

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process.running

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the server's log."""
        return self._process.tail(lines)

    def start(self) -> Self:
        """Start the server and wait until it answers; raise `ServerError` otherwise."""
        if self.running:
            return self
        began = time.monotonic()
        self._prepare()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            if self._port is None:
                self._port = free_port()
            port = self._port
            self._process.start(
                self._command(port), cwd=self.base_dir, env=self._env(), user=self._user()
            )
            try:
                self._process.wait_ready(
                    self._answers,
                    timeout=self.startup_timeout,
                    since=began,
                    what=f"{self.probe} on {LOOPBACK}:{port}",
                )
            except ServerError as exc:
                if not port_taken(self._process.output()):
                    raise
                if self._port_fixed or attempt == PORT_ATTEMPTS:
                    raise ServerError(self._failure(f"port {port} is taken")) from exc
                self._port = None  # another process took it in between; pick a new one
                continue
            break
        self._after_ready()
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Shut the server down cleanly (killing it after `timeout` seconds)."""
        if self._process.stop(timeout):
            raise ServerError(self._failure(f"did not stop within {timeout:.0f} s and was killed"))

    def kill(self) -> None:
        """SIGKILL the server (a crash), leaving its data as it is."""
        self._process.kill()

    def __repr__(self) -> str:
        state = f"port {self._port}" if self.running else "stopped"
        return f"<{type(self).__name__} {state} in {self.base_dir}>"

    # -- machinery -------------------------------------------------------------------

    def _answers(self) -> bool:
        # Only a listener of our own process counts: another one may have taken the port
        # between `free_port()` and the bind, and would answer the probe too.
        return _listens_on(self._process.pid, self.port) and self._ready()

    def _env(self) -> dict[str, str]:
        keep = ("PATH", "LANG", "LC_ALL", "TZ")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env.setdefault("LC_ALL", "C")
        return env

    def _failure(self, what: str) -> str:
        return self._process.failure(f"on {LOOPBACK}:{self._port} {what}")


def _listens_on(pid: int | None, port: int) -> bool:
    """Whether process `pid` holds a socket listening on TCP `port` (IPv4 or IPv6)."""
    if pid is None:
        return False
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is HEXADDR:HEXPORT; state 0A is LISTEN.
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return False
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) in inodes:
                return True
        except OSError:
            continue
    return False


# -- PostgreSQL ----------------------------------------------------------------------

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


class PostgresServer(_Server):
    """A private PostgreSQL cluster with a database (`tickplane` by default).

    The cluster is created with `initdb` in `base_dir/data` on the first start and
    listens on 127.0.0.1 only (no Unix socket). Authentication is `trust`, or SCRAM when
    a `password` is given.

    As root, the server runs as the `postgres` OS user (PostgreSQL refuses to run as
    root), which cannot enter a private (0700) pytest temporary directory. Its data
    directory is then a fresh `tickplane-pg-*` directory in the system temporary
    directory, owned by `postgres`, with `base_dir/data` a symbolic link to it; leaving
    the context manager (or `cleanup()`) removes it, and one left by a killed test run is
    removed by the next server started.

    By default `fsync` is off (a test cluster need not survive a power cut; PostgreSQL
    itself still survives a crash of the server process); `durable=True` turns it on.
    """

    name = "postgres"
    probe = "pg_isready"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back sessions, checkpoint, exit
    orphan_signal = signal.SIGQUIT  # "immediate" shutdown

    def __init__(
        self,
        base_dir: Path,
        *,
        port: int | None = None,
        database: str = "tickplane",
        user: str = "postgres",
        password: str | None = None,
        durable: bool = False,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        """`settings` are extra server parameters (`-c name=value`)."""
        super().__init__(base_dir, port=port, startup_timeout=startup_timeout)
        for ident in (database, user):
            if not _IDENTIFIER.fullmatch(ident):
                raise ValueError(f"{ident!r}: use a plain lower-case identifier")
        self.database = database
        self.user = user
        self.password = password
        #: The data directory (as root, outside `base_dir`: see the class docstring).
        self.data_dir = self.base_dir / "data"
        self._external: Path | None = None
        self._settings = {
            "listen_addresses": LOOPBACK,
            "unix_socket_directories": "",
            "fsync": "on" if durable else "off",
            "synchronous_commit": "on" if durable else "off",
            "full_page_writes": "on" if durable else "off",
            **(settings or {}),
        }
        self._bin = postgres_bin()

    @property
    def dsn(self) -> str:
        """`postgresql://user[:password]@127.0.0.1:port/database` (asyncpg, psycopg, libpq)."""
        auth = self.user
        if self.password is not None:
            auth += ":" + urllib.parse.quote(self.password, safe="")
        return f"postgresql://{auth}@{LOOPBACK}:{self.port}/{self.database}"

    def create_database(self, prefix: str = "t") -> str:
        """A fresh, empty database named `<prefix>_<random>`; its DSN."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.psql(f"CREATE DATABASE {name}")
        return self.dsn.rsplit("/", 1)[0] + "/" + name

    def psql(self, sql: str, *, database: str | None = None) -> str:
        """Run `sql` with psql (stop at the first error) and return its unaligned output."""
        out = self._client(
            "psql",
            "-X",
            "-q",
            "-tA",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database or self.database,
            "-c",
            sql,
        )
        return out.strip()

    def _user(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def _client(self, tool: str, *args: str) -> str:
        env = self._env()
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        cmd = [str(self._bin / tool), "-h", LOOPBACK, "-p", str(self.port), "-U", self.user]
        done = subprocess.run(
            [*cmd, *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )
        if done.returncode != 0:
            raise ServerError(
                f"{tool} {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}"
            )
        return done.stdout

    def cleanup(self) -> None:
        """Stop the server and remove a data directory kept outside `base_dir`."""
        self.stop()
        if self._external is not None:
            shutil.rmtree(self._external, ignore_errors=True)
            self._external = None
            (self.base_dir / "data").unlink(missing_ok=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def _prepare(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        run_as = self._user()
        kwargs: dict[str, Any] = {}
        home = self.base_dir
        if run_as is None:
            self.data_dir.mkdir(mode=0o700, exist_ok=True)
        else:
            entry = pwd.getpwnam(run_as)
            kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
            _remove_orphaned_data_dirs()
            home = Path(tempfile.mkdtemp(prefix=_EXTERNAL_PREFIX))
            self._external = home
            weakref.finalize(self, shutil.rmtree, home, True)
            (home / _OWNER_FILE).write_text(f"{os.getpid()}\n")
            os.chown(home, entry.pw_uid, entry.pw_gid)
            self.data_dir = home / "data"
            self.data_dir.mkdir(mode=0o700)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            link = self.base_dir / "data"
            link.unlink(missing_ok=True)
            link.symlink_to(self.data_dir)
        auth = ["--auth-local=trust"]
        pwfile: Path | None = None
        if self.password is None:
            auth.append("--auth-host=trust")
        else:
            auth.append("--auth-host=scram-sha-256")
            pwfile = home / "pwfile"
            pwfile.write_text(self.password + "\n")
            if run_as is not None:
                os.chown(pwfile, pwd.getpwnam(run_as).pw_uid, -1)
            pwfile.chmod(0o600)
            auth.append(f"--pwfile={pwfile}")
        cmd = [
            str(self._bin / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            *auth,
        ]
        try:
            done = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                cwd=home,
                env=self._env(),
                timeout=120,
                check=False,
                **kwargs,
            )
        finally:
            if pwfile is not None:
                pwfile.unlink(missing_ok=True)
        with self.log_path.open("a") as log:
            log.write(done.stdout + done.stderr)
        if done.returncode != 0:
            raise ServerError(f"initdb failed ({done.returncode}):\n{self.log_tail()}")
        # Connections over TCP from the loopback address only.
        method = "trust" if self.password is None else "scram-sha-256"
        (self.data_dir / "pg_hba.conf").write_text(f"host all all {LOOPBACK}/32 {method}\n")

    def _command(self, port: int) -> list[str]:
        cmd = [str(self._bin / "postgres"), "-D", str(self.data_dir), "-p", str(port)]
        for key, value in self._settings.items():
            cmd += ["-c", f"{key}={value}"]
        return cmd

    def _ready(self) -> bool:
        # pg_isready: 0 accepting connections, 1 rejecting (starting up), 2 no answer.
        done = subprocess.run(
            [
                str(self._bin / "pg_isready"),
                "-q",
                "-h",
                LOOPBACK,
                "-p",
                str(self.port),
                "-t",
                "2",
                "-d",
                "postgres",
            ],
            check=False,
            timeout=10,
        )
        return done.returncode == 0

    def _after_ready(self) -> None:
        exists = self.psql(
            f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'", database="postgres"
        )
        if exists != "1":
            self.psql(f"CREATE DATABASE {self.database}", database="postgres")


_EXTERNAL_PREFIX = "tickplane-pg-"
_OWNER_FILE = "owner.pid"


def _remove_orphaned_data_dirs() -> None:
    """Remove data directories kept outside `base_dir` whose test process has died.

    Their servers died with that process (`PR_SET_PDEATHSIG`), so nothing uses them.
    """
    for home in Path(tempfile.gettempdir()).glob(_EXTERNAL_PREFIX + "*"):
        try:
            pid = int((home / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue  # being created, or not ours
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(home, ignore_errors=True)
        except PermissionError:
            pass  # alive, another user's


# -- Redis ---------------------------------------------------------------------------


class RedisServer(_Server):
    """A private Redis on 127.0.0.1 with its working directory in `base_dir/data`.

    Nothing is persisted by default (no RDB snapshots, no AOF), so data lives as long as
    the process; `appendonly=True` keeps it across `stop()`/`start()`.
    """

    name = "redis"
    probe = "PING"

    def __init__(
        self,
        base_dir: Path,
        *,
        port: int | None = None,
        appendonly: bool = False,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        """`settings` are extra configuration directives (`--name value`)."""
        super().__init__(base_dir, port=port, startup_timeout=startup_timeout)
        self.data_dir = self.base_dir / "data"
        self._settings = {
            "bind": LOOPBACK,
            "protected-mode": "yes",
            "save": "",
            "appendonly": "yes" if appendonly else "no",
            "daemonize": "no",
            "logfile": "",
            **(settings or {}),
        }
        self._binary = _find_binary("redis-server")

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:port/0`."""
        return f"redis://{LOOPBACK}:{self.port}/0"

    def command(self, *args: str, timeout: float = 5.0) -> bytes:
        """Send one command and return the raw first line of its reply (`+PONG`...)."""
        request = f"*{len(args)}\r\n".encode()
        for arg in args:
            data = arg.encode()
            request += b"$%d\r\n%s\r\n" % (len(data), data)
        with socket.create_connection((LOOPBACK, self.port), timeout=timeout) as s:
            s.sendall(request)
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply.split(b"\r\n", 1)[0]

    def _prepare(self) -> None:
        self.data_dir.mkdir(exist_ok=True)

    def _command(self, port: int) -> list[str]:
        cmd = [self._binary, "--port", str(port), "--dir", str(self.data_dir)]
        for key, value in self._settings.items():
            cmd += [f"--{key}", value]
        return cmd

    def _ready(self) -> bool:
        try:
            return self.command("PING", timeout=1.0) == b"+PONG"  # -LOADING while loading
        except OSError:
            return False


# -- Prometheus ----------------------------------------------------------------------


class PrometheusServer(_Server):
    """A private Prometheus scraping what `scrape_configs` lists.

    `scrape_configs` are Prometheus `scrape_configs` entries as Python data, e.g.
    `[{"job_name": "app", "static_configs": [{"targets": ["127.0.0.1:8000"]}]}]`;
    the global scrape and evaluation interval defaults to 1 s so tests see data at once.
    `rule_files` are loaded and evaluated. The TSDB lives in `base_dir/data`.
    """

    name = "prometheus"
    probe = "/-/ready"

    def __init__(
        self,
        base_dir: Path,
        scrape_configs: Sequence[Mapping[str, Any]] = (),
        *,
        rule_files: Sequence[Path] = (),
        interval: str = "1s",
        port: int | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(base_dir, port=port, startup_timeout=startup_timeout)
        self.data_dir = self.base_dir / "data"
        self.config_path = self.base_dir / "prometheus.yml"
        self.config: dict[str, Any] = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(Path(p).resolve()) for p in rule_files],
            "scrape_configs": [dict(c) for c in scrape_configs],
        }
        self._binary = _find_binary("prometheus")

    @property
    def url(self) -> str:
        """`http://127.0.0.1:port`."""
        return f"http://{LOOPBACK}:{self.port}"

    def api(self, path: str, **params: str) -> Any:
        """GET `/api/v1/<path>` and return its `data`; raise `ServerError` on an error."""
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as e:
            body = json.loads(e.read() or b"{}")
            raise ServerError(
                f"Prometheus {path} {params}: HTTP {e.code}: {body.get('error', body)}"
            ) from None
        if body.get("status") != "success":
            raise ServerError(f"Prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Evaluate an instant PromQL query; the result as `[{"metric", "value"}...]`.

        A scalar or string result is returned as one entry with an empty `metric`.
        """
        data = self.api("query", query=promql)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets (`labels`, `health`, `lastError`, ...)."""
        active: list[dict[str, Any]] = self.api("targets", state="active")["activeTargets"]
        return active

    def wait_for_target(
        self, job: str, *, instance: str | None = None, timeout: float = 15.0
    ) -> dict[str, Any]:
        """Wait until a target of `job` (and `instance`) has been scraped successfully."""
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while True:
            seen = [
                t
                for t in self.targets()
                if t["labels"].get("job") == job
                and (instance is None or t["labels"].get("instance") == instance)
            ]
            for target in seen:
                if target["health"] == "up":
                    return target
            if time.monotonic() > deadline:
                states = [
                    (t["labels"].get("instance"), t["health"], t.get("lastError")) for t in seen
                ] or "no such target"
                raise ServerError(
                    self._failure(f"target job={job} not up after {timeout:.0f} s: {states}")
                )
            time.sleep(0.1)

    def wait_for_series(self, promql: str, *, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Wait until `promql` returns at least one series, and return them."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise ServerError(self._failure(f"{promql!r} returned nothing for {timeout} s"))
            time.sleep(0.1)

    def _prepare(self) -> None:
        self.data_dir.mkdir(exist_ok=True)
        # JSON is YAML, so no YAML library is needed.
        self.config_path.write_text(json.dumps(self.config, indent=2) + "\n")

    def _command(self, port: int) -> list[str]:
        return [
            self._binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--web.enable-lifecycle",
            "--log.level=info",
        ]

    def _ready(self) -> bool:
        return http_ok(f"{self.url}/-/ready")
