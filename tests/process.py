"""The process plumbing of the servers the tests start, in one place.

PostgreSQL, Redis and Prometheus (`tests/services/servers.py`), the Kafka broker
(`tests/kafka/broker.py`), the control plane's etcd, kube-apiserver and
kube-controller-manager (`tests/controlplane/cluster.py`), and Tickplane's own engine
(`EngineProcess`, `tests/engine/conftest.py`) and operator (`OperatorProcess`,
`tests/operator/support.py`) each run as a `ServerProcess`:

    process = ServerProcess("redis", tmp / "redis.log", error=ServerError)
    process.start([redis_server, "--port", str(port)], cwd=tmp)
    process.wait_ready(ping, timeout=30.0, what=f"PING on 127.0.0.1:{port}")
    ...
    process.stop(15.0)

Its stdout and stderr go to its log, appended, each start headed by a line with the time
and the command. It runs in a session of its own, so a Ctrl-C in the terminal reaches
pytest, which stops the servers in order, rather than the servers directly; and it dies
with the test process (`PR_SET_PDEATHSIG`) unless started to outlive it (`make cluster`);
the kernel sends that signal when the thread that started the server ends, so servers are
started from the main thread.

What fails, fails loudly: the error (of the caller's class) names the process and carries
the tail of its log. A process that exits or does not get ready in time is killed and
forgotten before the error is raised.

`ServerContext` makes a server a context manager. `cached_folder()` runs a script that
fetches or builds binaries once into `~/.cache/tickplane` and prints their folder. Ports
come from `tests/ports.py`.
"""

from __future__ import annotations

import ctypes
import pwd
import signal
import subprocess
import sys
import time
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = [
    "PORT_ATTEMPTS",
    "ProcessError",
    "ServerContext",
    "ServerProcess",
    "cached_folder",
    "http_ok",
    "port_taken",
    "tail",
]

#: How many times a server is started on fresh ports when another process took one
#: between its choice and the server's bind.
PORT_ATTEMPTS = 3
_PR_SET_PDEATHSIG = 1
_KILL_WAIT = 10.0  # seconds for a SIGKILLed process to be reaped


class ProcessError(RuntimeError):
    """A server process could not be started, reached or stopped.

    Each server module raises a subclass of its own (`ServerError`, ...).
    """


def tail(text: str, lines: int = 40) -> str:
    """The last `lines` lines of `text`."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def port_taken(text: str) -> bool:
    """Whether `text` (a log, an error carrying one) says a port was already in use."""
    return "address already in use" in text.lower()


def cached_folder(
    script: Path,
    *,
    error: type[ProcessError] = ProcessError,
    echo: bool = True,
    timeout: float | None = None,
) -> Path:
    """Run the bash `script`, which fetches or builds something once (cached under
    `~/.cache/tickplane`) and prints its folder last on stdout; return that folder.

    With `echo` the script's progress (its stderr) shows as it happens; otherwise it is
    kept and shown only if the script fails.
    """
    try:
        done = subprocess.run(
            ["bash", str(script)],
            stdout=subprocess.PIPE,
            stderr=None if echo else subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise error(f"{script} did not finish in {timeout:.0f} s") from exc
    if done.returncode != 0:
        detail = "(see its output above)" if echo else tail(done.stderr or "")
        raise error(f"{script} failed with exit code {done.returncode}:\n{detail}")
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise error(f"{script} printed no folder")
    return Path(lines[-1])


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """Whether a GET of `url` answers 200; an OSError (refused...) means not yet."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return int(resp.status) == 200


def _die_with_parent(sig: int | None) -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to send `sig` to the child when the test process dies
    (None: no `preexec_fn`, the child outlives it).

    It runs after `Popen` has changed the child's user (a credential change clears the
    setting), and the setting survives `exec`.
    """
    if sig is None or not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return preexec


class ServerContext(ABC):
    """A server as a context manager: `start()` on entry, `stop()` on exit."""

    @abstractmethod
    def start(self) -> object:
        """Start the server and wait until it answers."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the server."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ServerProcess:
    """One server process: start it with its log, wait until it answers, stop it.

    `error` is the class raised on failure. `stop_signal` asks for a clean, prompt
    shutdown; `orphan_signal` is what the kernel sends the server if the test process dies
    first (None: the server outlives it).
    """

    def __init__(
        self,
        name: str,
        log: Path,
        *,
        error: type[ProcessError] = ProcessError,
        stop_signal: int = signal.SIGTERM,
        orphan_signal: int | None = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.log = log
        self.error = error
        self.stop_signal = stop_signal
        self.orphan_signal = orphan_signal
        self.proc: subprocess.Popen[bytes] | None = None
        #: The exit status of the last run once it ended (stopped, killed or exited).
        self.returncode: int | None = None
        self._log_start = 0  # where the last start's output begins in the log

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return self.proc.pid if self.proc is not None and self.running else None

    @property
    def exited(self) -> int | None:
        """The exit status of a process that ended by itself (not stopped or killed)."""
        return self.proc.poll() if self.proc is not None else None

    def output(self) -> str:
        """What the process wrote to its log since its last start ("" if nothing)."""
        try:
            with self.log.open("rb") as f:
                f.seek(self._log_start)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the log."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return tail(text, lines) or "(log is empty)"

    def failure(self, what: str) -> str:
        """An error message: the process, `what` happened, and the tail of its log."""
        return f"{self.name} {what}; the end of {self.log}:\n{self.tail()}"

    def start(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> None:
        """Launch `argv` (without waiting for it), as OS `user` if given."""
        kwargs: dict[str, Any] = {}
        if user is not None:
            entry = pwd.getpwnam(user)
            kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            log.write(f"\n==== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
            log.flush()
            self._log_start = log.tell()
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
                preexec_fn=None
                if self.orphan_signal is None
                else _die_with_parent(self.orphan_signal),
                **kwargs,
            )

    def wait_ready(
        self,
        ready: Callable[[], bool],
        *,
        timeout: float,
        what: str,
        since: float | None = None,
    ) -> None:
        """Poll `ready` until it says yes; `what` names what is awaited, for the errors.

        The deadline is `timeout` seconds after `since` (a `time.monotonic()`; default
        now). An OSError from `ready` means not yet, and the last one is reported if time
        runs out. If the process exits or the deadline passes, it is killed and `error`
        raised with the tail of its log.
        """
        proc = self.proc
        if proc is None:
            raise self.error(f"{self.name} has not been started")
        deadline = (time.monotonic() if since is None else since) + timeout
        last = "no answer yet"
        delay = 0.01
        while True:
            code = proc.poll()
            if code is not None:
                self.proc, self.returncode = None, code
                raise self.error(self.failure(f"exited with status {code} before answering {what}"))
            try:
                if ready():
                    return
                last = "not ready yet"
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                self.kill()
                raise self.error(
                    self.failure(f"did not answer {what} within {timeout:.0f} s ({last})")
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)

    def stop(self, timeout: float) -> bool:
        """Send `stop_signal` and wait `timeout` seconds, then SIGKILL; True if killed."""
        proc, self.proc = self.proc, None
        if proc is None:
            return False
        killed = False
        if proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(_KILL_WAIT)
                killed = True
        self.returncode = proc.returncode
        return killed

    def kill(self) -> None:
        """SIGKILL the process (a crash) and forget it."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
                proc.wait(_KILL_WAIT)
            self.returncode = proc.returncode
