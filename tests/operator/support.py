"""What the operator's tests share: polling, the CRDs, the operator as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from kubernetes.client.exceptions import ApiException

from tests.controlplane.cluster import ControlPlane
from tests.ports import free_port

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"
EXAMPLES = REPO / "manifests" / "examples"
GROUP = "tickplane.io"
VERSION = "v1alpha1"


def eventually(probe: Callable[[], T | None], *, timeout: float = 30.0, what: str = "") -> T:
    """Poll `probe` until it returns something other than None (or fail after `timeout`)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
            last = exc
        else:
            if value is not None:
                return value
            last = value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last})")


def as_dict(value: object) -> dict[str, Any]:
    """A custom object as the client returns it (typed `object`)."""
    assert isinstance(value, dict)
    return cast(dict[str, Any], value)


def error_message(exc: ApiException) -> str:
    """The message of the `Status` the apiserver sent with an error."""
    assert exc.body is not None
    return str(json.loads(exc.body)["message"])


def apply_crds(cp: ControlPlane) -> None:
    """Apply crds/*.yaml server-side and wait until every CRD is Established."""
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    for path in sorted(CRD_DIR.glob("*.yaml")):
        name = path.name.removesuffix(".yaml")
        cp.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    cp.kubectl("apply", "-f", str(REPO / "manifests" / "peering.yaml"))


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The status condition of type `kind`, if any."""
    for c in obj.get("status", {}).get("conditions", []):
        if c.get("type") == kind:
            return cast(dict[str, Any], c)
    return None


class OperatorProcess:
    """`tickplane operator` as a subprocess with the control plane's admin kubeconfig."""

    def __init__(
        self,
        cp: ControlPlane,
        workdir: Path,
        *,
        kubeconfig: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.cp = cp
        self.workdir = workdir
        self.kubeconfig = kubeconfig or cp.kubeconfig
        self.extra_args = extra_args
        self.log = workdir / "operator.log"
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the operator and wait until its liveness endpoint answers."""
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "TICKPLANE_OPERATOR_ENGINE_IMAGE": "tickplane/tickplane:test",
        }
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "tickplane.cli.main", "operator",
                    "--all-namespaces",
                    f"--metrics-port={self.metrics_port}",
                    f"--liveness-port={self.health_port}",
                    "--resync-seconds=2",
                    "--cleanup-timeout=3",
                    "--peering-lifetime=5",
                    "--log-level=DEBUG",
                    *self.extra_args,
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        eventually(self._alive, timeout=60, what=f"the operator's liveness probe ({self.log})")

    def _alive(self) -> bool | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited {self.proc.returncode}:\n{self.tail()}")
        try:
            url = f"http://127.0.0.1:{self.health_port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as r:
                return True if r.status == 200 else None
        except OSError:
            return None

    def health(self) -> dict[str, Any]:
        """The liveness endpoint's JSON (kopf's probe results)."""
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as r:
            return cast(dict[str, Any], json.loads(r.read()))

    def metrics(self) -> str:
        """The operator's Prometheus exposition."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/", timeout=5) as r:
            return str(r.read().decode())

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(20)

    def kill(self) -> None:
        """SIGKILL: a crash, no cleanup."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(20)
            self.proc = None

    def tail(self, lines: int = 60) -> str:
        """The end of the operator's log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def mark_pod_ready(core: Any, namespace: str, name: str, ready: bool = True) -> None:
    """Write what a kubelet would: the pod runs and is (or is not) Ready."""
    flag = "True" if ready else "False"
    core.patch_namespaced_pod_status(
        name,
        namespace,
        {
            "status": {
                "phase": "Running",
                "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Initialized", "status": "True"},
                    {"type": "ContainersReady", "status": flag},
                    {"type": "Ready", "status": flag},
                ],
            }
        },
    )


def token_kubeconfig(cp: ControlPlane, token: str, path: Path) -> Path:
    """A kubeconfig for the control plane that authenticates with a bearer token."""
    admin = json.loads(cp.kubeconfig.read_text())
    admin["users"] = [{"name": "token", "user": {"token": token}}]
    admin["contexts"][0]["context"]["user"] = "token"
    path.write_text(json.dumps(admin))
    return path
