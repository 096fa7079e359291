"""A real Kubernetes control plane for the tests: etcd, kube-apiserver, kube-controller-manager.

The binaries are built from the Go module proxy by `scripts/controlplane/build.sh` (once,
cached under `~/.cache/tickplane/controlplane/<version>/bin`), the way envtest provides them
to Go operators. `ControlPlane` runs them on free loopback ports with their data, keys and
logs in a working directory:

    with ControlPlane(tmp / "cp") as cp:
        ...  # cp.kubeconfig (an admin in system:masters), cp.url

The kube-apiserver authenticates with client certificates from a CA made for the run
(`openssl`), authorizes with Node and RBAC, signs service-account tokens with a key of its
own, and serves CRDs with CEL validation and the status subresource as in any cluster. The
kube-controller-manager (optional) runs the built-in controllers (namespaces, service
accounts, deployments, garbage collection...) under its own identity. There is no
scheduler and no kubelet: pods stay Pending unless a test writes their status.

`start()` returns once the apiserver's `/readyz` (and the controller manager's `/healthz`)
say ok; a component that exits or does not get ready in time raises `ControlPlaneError`
with the tail of its log. `stop()` stops all cleanly; `stop_apiserver()` and
`start_apiserver()` take the apiserver away and bring it back on the same port with the same
data, for tests of clients that must survive that. A test process that dies takes its
control plane with it (`PR_SET_PDEATHSIG`).

Run as a module from the repository's root it keeps a control plane for a person
(`make cluster`, `make cluster-down`):

    python -m tests.controlplane.cluster up     # prints `export KUBECONFIG=...`
    python -m tests.controlplane.cluster down
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from tests.ports import free_port
from tests.process import (
    PORT_ATTEMPTS,
    ProcessError,
    ServerContext,
    ServerProcess,
    cached_folder,
    port_taken,
)

__all__ = [
    "ControlPlane",
    "ControlPlaneError",
    "build_binaries",
]

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "controlplane" / "build.sh"
#: Where `make cluster` keeps a person's control plane (the kubeconfig is in it).
PERSONAL_DIR = Path.home() / ".cache" / "tickplane" / "cluster"
SERVICE_CIDR = "10.0.0.0/24"
ADMIN_USER = "tickplane-admin"
_STOP_TIMEOUT = 20.0


class ControlPlaneError(ProcessError):
    """The control plane could not be built, started, reached or stopped."""


def build_binaries(*, timeout: float = 3600.0) -> Path:
    """Build (or find already built) the control plane's binaries; return their folder.

    `TICKPLANE_CONTROLPLANE_BIN` names a folder of ready binaries instead (etcd,
    kube-apiserver, kube-controller-manager), e.g. ones unpacked from a release.
    """
    override = os.environ.get("TICKPLANE_CONTROLPLANE_BIN")
    if override:
        return Path(override)
    return cached_folder(BUILD_SCRIPT, error=ControlPlaneError, timeout=timeout)


# -- certificates ----------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed:\n{done.stderr.strip()}")


_CA_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = tickplane-controlplane-ca
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
"""

_LEAF_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
{subject}
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = {usage}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
{san}
"""


@dataclass(frozen=True)
class _Pki:
    """The files of the control plane's CA, certificates and service-account key."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.crt"

    def cert(self, name: str) -> Path:
        return self.folder / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.folder / f"{name}.key"

    @property
    def sa_key(self) -> Path:
        return self.folder / "service-account.key"

    @property
    def sa_pub(self) -> Path:
        return self.folder / "service-account.pub"

    def create(self) -> None:
        """Make the CA, the serving and client certificates and the service-account key."""
        if self.sa_pub.exists():
            return  # made by an earlier start: keep them, clients hold the CA
        self.folder.mkdir(parents=True, exist_ok=True)
        d = self.folder
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        (d / "ca.cnf").write_text(_CA_CONFIG)
        _openssl(
            "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
            "-config", "ca.cnf", "-extensions", "ca", cwd=d,
        )  # fmt: skip
        alt_names = [
            "DNS:localhost",
            "DNS:kubernetes",
            "DNS:kubernetes.default",
            "DNS:kubernetes.default.svc",
            "DNS:kubernetes.default.svc.cluster.local",
            f"IP:{LOOPBACK}",
            "IP:10.0.0.1",  # the `kubernetes` service, first address of SERVICE_CIDR
        ]
        self._leaf("apiserver", "CN = kube-apiserver", "serverAuth", alt_names)
        self._leaf("admin", f"O = system:masters\nCN = {ADMIN_USER}", "clientAuth")
        self._leaf("controller-manager", "CN = system:kube-controller-manager", "clientAuth")
        _openssl(
            "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", self.sa_key.name, cwd=d,
        )  # fmt: skip
        _openssl("pkey", "-in", self.sa_key.name, "-pubout", "-out", self.sa_pub.name, cwd=d)

    def _leaf(self, name: str, subject: str, usage: str, alt_names: Sequence[str] = ()) -> None:
        d = self.folder
        san = f"subjectAltName = {', '.join(alt_names)}" if alt_names else ""
        (d / f"{name}.cnf").write_text(_LEAF_CONFIG.format(subject=subject, usage=usage, san=san))
        _openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-config", f"{name}.cnf", cwd=d,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-set_serial", f"0x{secrets.token_hex(16)}", "-days", "3650",
            "-extfile", f"{name}.cnf", "-extensions", "leaf", "-out", f"{name}.crt",
            cwd=d,
        )  # fmt: skip


def _kubeconfig(url: str, ca: Path, cert: Path, key: Path, user: str) -> str:
    """A kubeconfig with everything embedded (it stays valid wherever it is copied)."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    # JSON is YAML: kubectl, client-go and the Python client all read it.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "tickplane",
                "cluster": {"server": url, "certificate-authority-data": b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
            }
        ],
        "contexts": [{"name": "tickplane", "context": {"cluster": "tickplane", "user": user}}],
        "current-context": "tickplane",
        "preferences": {},
    }
    return json.dumps(config, indent=2) + "\n"


# -- processes ---------------------------------------------------------------------------


class ControlPlane(ServerContext):
    """etcd, kube-apiserver and (optionally) kube-controller-manager, as a context manager.

    `workdir` holds the data, keys, kubeconfigs and logs (a temporary folder when None,
    removed by `stop()`). `bin_dir` is where the binaries are (built when None).
    `apiserver_args` are appended to the apiserver's command line (e.g.
    `--feature-gates=...`).
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        bin_dir: Path | None = None,
        controller_manager: bool = True,
        apiserver_args: Sequence[str] = (),
        start_timeout: float = 120.0,
        detached: bool = False,
    ) -> None:
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="tickplane-controlplane-"))
        self.workdir = self.workdir.resolve()
        self._bin_dir = bin_dir
        self.controller_manager = controller_manager
        self.apiserver_args = tuple(apiserver_args)
        self.start_timeout = start_timeout
        self._pki = _Pki(self.workdir / "pki")
        # SIGKILL, not SIGTERM, when the test process dies: nothing of a dead test run's
        # control plane is worth a graceful shutdown, and an apiserver's can take a minute.
        # A detached one (`make cluster`) outlives the process that started it.
        orphan = None if detached else signal.SIGKILL
        self._etcd, self._apiserver, self._kcm = (
            ServerProcess(
                name, self.workdir / f"{name}.log", error=ControlPlaneError, orphan_signal=orphan
            )
            for name in ("etcd", "kube-apiserver", "kube-controller-manager")
        )
        self._etcd_port = 0
        self._apiserver_port = 0
        self._kcm_port = 0
        #: Seconds the last `start()` took (binaries already built).
        self.startup_seconds: float | None = None

    # -- what tests use -----------------------------------------------------------

    @property
    def url(self) -> str:
        """The apiserver's https URL."""
        if not self._apiserver_port:
            raise ControlPlaneError("the control plane has not been started")
        return f"https://{LOOPBACK}:{self._apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        """A kubeconfig for an admin user (group system:masters), all data embedded."""
        return self.workdir / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the apiserver's serving certificate and the client certificates."""
        return self._pki.ca

    @property
    def logs(self) -> dict[str, Path]:
        """Each component's log file."""
        return {p.name: p.log for p in (self._etcd, self._apiserver, self._kcm)}

    @property
    def bin_dir(self) -> Path:
        """Where the binaries are (built on first use)."""
        if self._bin_dir is None:
            self._bin_dir = build_binaries()
        return self._bin_dir

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the kubectl built with the control plane as its admin; output as text.

        `input` is its standard input. With `check`, a non-zero exit raises
        `ControlPlaneError` with kubectl's stderr.
        """
        argv = [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        done = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} exited with {done.returncode}:\n{done.stderr.strip()}"
            )
        return done

    @property
    def pids(self) -> dict[str, int]:
        """The process id of each running component."""
        procs = (self._etcd, self._apiserver, self._kcm)
        return {p.name: p.pid for p in procs if p.pid is not None}

    @property
    def apiserver_running(self) -> bool:
        """Whether the kube-apiserver process is alive."""
        return self._apiserver.running

    def start(self) -> Self:
        """Start etcd, the apiserver and the controller manager; wait until they are ready."""
        began = time.monotonic()
        binaries = ["etcd", "kube-apiserver"]
        if self.controller_manager:
            binaries.append("kube-controller-manager")
        for b in binaries:
            if not os.access(self.bin_dir / b, os.X_OK):
                raise ControlPlaneError(f"{self.bin_dir / b} is missing: run {BUILD_SCRIPT}")
        self._pki.create()
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._start_etcd()
                self.start_apiserver()
                if self.controller_manager:
                    self._start_controller_manager()
                break
            except ControlPlaneError as exc:
                self._stop_processes()
                # A free port taken by someone else between our probe and the bind: again,
                # on new ports and with a new etcd (its data would name the old ports).
                if not port_taken(str(exc)) or attempt == PORT_ATTEMPTS:
                    raise
                self._etcd_port = self._apiserver_port = self._kcm_port = 0
                shutil.rmtree(self.workdir / "etcd-data", ignore_errors=True)
            except BaseException:
                self._stop_processes()
                raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop every component (the controller manager first, etcd last)."""
        self._stop_processes()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def stop_apiserver(self) -> None:
        """Stop the apiserver only (clients see connection errors until it is back)."""
        self._apiserver.stop(_STOP_TIMEOUT)

    def start_apiserver(self) -> None:
        """Start the apiserver (again, on the same port) and wait for `/readyz`."""
        if self._apiserver.running:
            return
        if not self._apiserver_port:
            self._apiserver_port = free_port()
        pki = self._pki
        argv = [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://{LOOPBACK}:{self._etcd_port}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            # A loopback advertise address is refused by the endpoint reconcilers (they
            # publish it in the `kubernetes` Endpoints); nothing here dials that service.
            "--endpoint-reconciler-type=none",
            f"--secure-port={self._apiserver_port}",
            f"--tls-cert-file={pki.cert('apiserver')}",
            f"--tls-private-key-file={pki.key('apiserver')}",
            f"--client-ca-file={pki.ca}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--profiling=false",
            # On SIGTERM, end the watches (clients re-establish them) instead of leaving
            # them open until the 60 s shutdown timeout.
            "--shutdown-watch-termination-grace-period=2s",
            *self.apiserver_args,
        ]
        self._apiserver.start(argv)
        self.kubeconfig.write_text(
            _kubeconfig(self.url, pki.ca, pki.cert("admin"), pki.key("admin"), ADMIN_USER)
        )
        self._wait(self._apiserver, self._apiserver_ready, "/readyz", self._apiserver_port)

    # -- context manager ----------------------------------------------------------

    # -- the components -------------------------------------------------------------

    def _start_etcd(self) -> None:
        self._etcd_port = free_port()
        peer = free_port()
        client_url = f"http://{LOOPBACK}:{self._etcd_port}"
        peer_url = f"http://{LOOPBACK}:{peer}"
        argv = [
            str(self.bin_dir / "etcd"),
            "--name=tickplane",
            f"--data-dir={self.workdir / 'etcd-data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=tickplane={peer_url}",
            "--unsafe-no-fsync=true",  # a test cluster: durability is not the point
            "--log-level=warn",
        ]
        self._etcd.start(argv)
        self._wait(self._etcd, self._etcd_ready, "/health", self._etcd_port)

    def _start_controller_manager(self) -> None:
        pki = self._pki
        kubeconfig = self.workdir / "controller-manager.kubeconfig"
        kubeconfig.write_text(
            _kubeconfig(
                self.url,
                pki.ca,
                pki.cert("controller-manager"),
                pki.key("controller-manager"),
                "system:kube-controller-manager",
            )
        )
        self._kcm_port = free_port()
        argv = [
            str(self.bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={self._kcm_port}",
            f"--tls-cert-file={pki.cert('apiserver')}",
            f"--tls-private-key-file={pki.key('apiserver')}",
            f"--client-ca-file={pki.ca}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca}",
            f"--cluster-signing-cert-file={pki.ca}",
            f"--cluster-signing-key-file={pki.key('ca')}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--profiling=false",
        ]
        self._kcm.start(argv)
        self._wait(self._kcm, self._kcm_ready, "/healthz", self._kcm_port)

    def _stop_processes(self) -> None:
        for p in (self._kcm, self._apiserver, self._etcd):
            p.stop(_STOP_TIMEOUT)

    # -- readiness --------------------------------------------------------------------

    def _wait(
        self, process: ServerProcess, ready: Callable[[], bool], path: str, port: int
    ) -> None:
        what = f"{path} on {LOOPBACK}:{port}"
        process.wait_ready(ready, timeout=self.start_timeout, what=what)

    def _etcd_ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://{LOOPBACK}:{self._etcd_port}/health", timeout=2
            ) as r:
                return bool(json.load(r).get("health") == "true")
        except (OSError, ValueError):
            return False

    def _tls(self, client: str | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self._pki.ca))
        if client is not None:
            ctx.load_cert_chain(str(self._pki.cert(client)), str(self._pki.key(client)))
        return ctx

    def _https_ok(self, port: int, path: str, client: str | None) -> bool:
        try:
            with urllib.request.urlopen(
                f"https://{LOOPBACK}:{port}{path}", timeout=2, context=self._tls(client)
            ) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _apiserver_ready(self) -> bool:
        return self._https_ok(self._apiserver_port, "/readyz", "admin")

    def _kcm_ready(self) -> bool:
        return self._https_ok(self._kcm_port, "/healthz", None)


# -- a control plane for a person (make cluster / make cluster-down) -------------------------


def _pids_file(folder: Path) -> Path:
    return folder / "pids.json"


def _up(folder: Path) -> int:
    pids = _pids_file(folder)
    recorded: dict[str, int] = json.loads(pids.read_text()) if pids.exists() else {}
    if recorded and all(_running(pid, name) for name, pid in recorded.items()):
        print(f"export KUBECONFIG={folder / 'kubeconfig'}  # already running")
        return 0
    _down(folder, quiet=True)
    cp = ControlPlane(folder / "state", detached=True)
    cp.start()
    shutil.copyfile(cp.kubeconfig, folder / "kubeconfig")
    pids.write_text(json.dumps(cp.pids) + "\n")
    print(f"# control plane up in {cp.startup_seconds:.1f} s at {cp.url}; logs in {cp.workdir}")
    print(f"export KUBECONFIG={folder / 'kubeconfig'}")
    return 0


def _running(pid: int, name: str) -> bool:
    """Whether `pid` is alive and still our `name` (a pid from a stale file may be reused)."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return Path(argv0.decode(errors="replace")).name == name


def _down(folder: Path, *, quiet: bool = False) -> int:
    pids = _pids_file(folder)
    if not pids.exists():
        if not quiet:
            print("no control plane running")
        return 0
    order = ["kube-controller-manager", "kube-apiserver", "etcd"]
    running: dict[str, int] = json.loads(pids.read_text())
    for name in order:
        pid = running.get(name)
        if pid is None or not _running(pid, name):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + _STOP_TIMEOUT
        while _running(pid, name) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _running(pid, name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    pids.unlink()
    shutil.rmtree(folder / "state", ignore_errors=True)
    (folder / "kubeconfig").unlink(missing_ok=True)
    if not quiet:
        print("control plane stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`up` / `down` a control plane kept in the background (`--dir`, default PERSONAL_DIR)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", type=Path, default=PERSONAL_DIR)
    args = parser.parse_args(argv)
    folder: Path = args.dir
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return _up(folder) if args.action == "up" else _down(folder)
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
