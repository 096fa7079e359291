"""A real Apache Kafka broker for the tests: KRaft, one node, no ZooKeeper.

The broker is the Maven Central build fetched by ``scripts/kafka/fetch.sh`` (a folder of
jars), run on the machine's JDK::

    libs = fetch_libs()
    with KafkaBroker(libs, tmp_path) as broker:
        ...  # clients connect to broker.bootstrap, e.g. "127.0.0.1:40123"

Starting writes a ``server.properties`` (combined broker and controller, loopback ports,
single-partition and replication-factor-1 defaults), formats the storage with a random
cluster id, starts ``java kafka.Kafka`` and waits until the broker lists itself in a
Metadata response. A broker that cannot start raises :class:`KafkaBrokerError` carrying
the tail of its log; stopping sends SIGTERM, then SIGKILL after a timeout.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from tests.ports import free_port
from tests.process import (
    ProcessError,
    ServerContext,
    ServerProcess,
    cached_folder,
    port_taken,
    tail,
)

REPO = Path(__file__).resolve().parents[2]
FETCH_SCRIPT = REPO / "scripts" / "kafka" / "fetch.sh"
NODE_ID = 1
HEAP = "512m"
# Start-up over throughput: on a 2-core machine C2 compiling and G1's threads compete
# with the broker starting; these halve the time to ready (~2.5 s instead of ~5 s).
# Pass jvm_options=() for a broker that should be measured.
FAST_START_JVM = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")

LOG4J2_PROPERTIES = """\
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = OUT
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
"""


class KafkaBrokerError(ProcessError):
    """The broker could not be fetched, formatted, started or stopped."""


def fetch_libs(echo: bool = True) -> Path:
    """Run ``scripts/kafka/fetch.sh`` and return the folder of the broker's jars.

    A no-op after the first run. With ``echo`` Maven's progress goes to this process's
    stderr; otherwise it is kept and shown only if the fetch fails.
    """
    libs = cached_folder(FETCH_SCRIPT, error=KafkaBrokerError, echo=echo)
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise KafkaBrokerError(f"{FETCH_SCRIPT} printed {libs}, a folder without Kafka's jars")
    return libs


def random_cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64 without padding (22 chars).

    Never one that starts with '-': `kafka-storage format --cluster-id -x...` would read
    it as an option (Kafka's own Uuid.randomUuid() draws again for the same reason).
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not cid.startswith("-"):
            return cid


class KafkaBroker(ServerContext):
    """One KRaft node (``process.roles=broker,controller``) in a throwaway folder.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``config`` adds to
    or overrides the generated ``server.properties``.
    """

    def __init__(
        self,
        libs: Path,
        workdir: Path,
        *,
        config: Mapping[str, str] | None = None,
        java: str | None = None,
        heap: str = HEAP,
        jvm_options: tuple[str, ...] = FAST_START_JVM,
        start_timeout: float = 60.0,
        stop_timeout: float = 20.0,
        log_level: str = "INFO",
        bind_attempts: int = 3,
    ) -> None:
        self.libs = libs
        self.workdir = workdir
        self.extra_config = dict(config or {})
        self.java = java or shutil.which("java") or ""
        self.heap = heap
        self.jvm_options = jvm_options
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.log_level = log_level
        self.bind_attempts = bind_attempts
        self.cluster_id = random_cluster_id()
        self.port = 0
        self.controller_port = 0
        self.started_in: float | None = None
        self._process = ServerProcess("the Kafka broker", self.log_path, error=KafkaBrokerError)

    # -- paths and addresses ------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the PLAINTEXT listener, for ``bootstrap_servers``."""
        if not self.port:
            raise KafkaBrokerError("the broker has not been started")
        return f"127.0.0.1:{self.port}"

    @property
    def properties_path(self) -> Path:
        """The generated ``server.properties``."""
        return self.workdir / "server.properties"

    @property
    def log_path(self) -> Path:
        """The broker's stdout and stderr (its log4j output)."""
        return self.workdir / "broker.log"

    @property
    def data_dir(self) -> Path:
        """``log.dirs``: topic partitions and the KRaft metadata log."""
        return self.workdir / "data"

    @property
    def pid(self) -> int | None:
        """The JVM's process id while it runs."""
        return self._process.pid

    # -- configuration ------------------------------------------------------------------

    def properties(self) -> dict[str, str]:
        """The broker's configuration for the current ports."""
        props = {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            # A static quorum of this one node: formatting needs no --standalone.
            "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            # Internal topics: one replica (one node) and one partition (fast to create).
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        props.update(self.extra_config)
        return props

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        text = "".join(f"{k}={v}\n" for k, v in self.properties().items())
        self.properties_path.write_text(text)
        (self.workdir / "log4j2.properties").write_text(
            LOG4J2_PROPERTIES.format(level=self.log_level)
        )
        (self.workdir / "log4j2-tools.properties").write_text(
            LOG4J2_PROPERTIES.format(level="WARN")
        )

    def _java(self, log4j_config: str, main: str, *args: str) -> list[str]:
        return [
            self.java,
            f"-Xmx{self.heap}",
            "-Xms64m",
            "-XX:+ExitOnOutOfMemoryError",
            *self.jvm_options,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.workdir / log4j_config}",
            "-cp",
            str(self.libs / "*"),
            main,
            *args,
        ]

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Format the storage, start the JVM and wait until the broker answers."""
        if self._process.running:
            raise KafkaBrokerError("the broker is already running")
        if not self.java:
            raise KafkaBrokerError(
                "no `java` on PATH: the Kafka broker needs a JDK 17+ "
                "(apt-get install openjdk-17-jre-headless)"
            )
        if not any(self.libs.glob("kafka_2.13-*.jar")):
            raise KafkaBrokerError(
                f"no kafka_2.13 jar in {self.libs}: run scripts/kafka/fetch.sh first"
            )
        began = time.monotonic()
        for attempt in range(1, self.bind_attempts + 1):
            self.port, self.controller_port = free_port(), free_port()
            while self.controller_port == self.port:
                self.controller_port = free_port()
            if self.data_dir.exists():
                shutil.rmtree(self.data_dir)
            self._write_config()
            self._format()
            try:
                self._run()
            except KafkaBrokerError:
                if attempt < self.bind_attempts and port_taken(self._process.output()):
                    continue  # another process took one of the ports: pick new ones
                raise
            self.started_in = time.monotonic() - began
            return

    def _format(self) -> None:
        cmd = self._java(
            "log4j2-tools.properties",
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            self.cluster_id,
            "--config",
            str(self.properties_path),
        )
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=self.start_timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise KafkaBrokerError(
                f"formatting Kafka's storage took over {self.start_timeout:.0f} s"
            ) from exc
        (self.workdir / "format.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise KafkaBrokerError(
                f"formatting Kafka's storage failed (exit code {proc.returncode}):\n"
                f"$ {' '.join(cmd)}\n{tail(proc.stdout + proc.stderr)}"
            )

    def restart(self) -> None:
        """Start a stopped broker again on its ports with its data (`start()` formats anew)."""
        if self._process.running:
            raise KafkaBrokerError("the broker is already running")
        self._run()

    def _run(self) -> None:
        self._process.start(
            self._java("log4j2.properties", "kafka.Kafka", str(self.properties_path)),
            cwd=self.workdir,
        )
        what = f"a Metadata request on {self.bootstrap}"
        self._process.wait_ready(self._answers, timeout=self.start_timeout, what=what)

    def _answers(self) -> bool:
        # The broker lists itself only once it serves clients (see metadata_broker_ids).
        return NODE_ID in metadata_broker_ids("127.0.0.1", self.port, timeout=2.0)

    def stop(self) -> None:
        """SIGTERM the broker, SIGKILL it after ``stop_timeout``; raise if it had died."""
        died = self._process.exited
        self._process.stop(self.stop_timeout)
        if died is not None:
            raise KafkaBrokerError(
                self._process.failure(f"had exited by itself (code {died}) before it was stopped")
            )

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the broker's log."""
        return self._process.tail(lines)


# -- a Metadata request over a plain socket (readiness without a client library) -----------

_METADATA = 3
_METADATA_VERSION = 4  # the oldest Kafka 4 still serves; fixed-width, no tagged fields


def metadata_broker_ids(host: str, port: int, timeout: float = 2.0) -> set[int]:
    """Node ids of the live brokers in a Metadata (v4) response from ``host:port``.

    The broker accepts client requests only once it has caught up with the metadata log
    and been unfenced, and lists only unfenced brokers, so its own id here means ready.
    Raises OSError (including ConnectionError) if it cannot be asked.
    """
    client_id = b"tickplane-tests"
    correlation_id = 1
    header = (
        struct.pack(">hhih", _METADATA, _METADATA_VERSION, correlation_id, len(client_id))
        + client_id
    )
    body = struct.pack(">i?", 0, False)  # no topics, don't create any
    request = header + body
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", _recv_exactly(s, 4))[0]
        payload = _recv_exactly(s, size)
    got_id, _throttle, n_brokers = struct.unpack_from(">iii", payload, 0)
    if got_id != correlation_id:
        raise ConnectionError(f"Metadata answer for correlation id {got_id}")
    ids: set[int] = set()
    offset = 12
    for _ in range(n_brokers):
        (node_id,) = struct.unpack_from(">i", payload, offset)
        offset += 4
        offset = _skip_string(payload, offset)  # host
        offset += 4  # port
        offset = _skip_string(payload, offset)  # rack (nullable)
        ids.add(node_id)
    return ids


def _skip_string(payload: bytes, offset: int) -> int:
    length = int(struct.unpack_from(">h", payload, offset)[0])
    return offset + 2 + max(length, 0)


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = s.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        chunks += chunk
    return bytes(chunks)


def run_forever() -> None:
    """``python -m tests.kafka.broker [DIR]``: run a broker until Ctrl-C, for manual use."""
    workdir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(os.getcwd()) / "kafka-broker"
    with KafkaBroker(fetch_libs(), workdir) as broker:
        print(f"Kafka broker on {broker.bootstrap} (log: {broker.log_path}); Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    run_forever()
