"""What the operator's tests share: polling, the CRDs, the operator as a subprocess."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.controlplane.api import eventually
from tests.controlplane.cluster import ControlPlane
from tests.ports import free_port
from tests.process import ServerProcess, http_ok

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"
EXAMPLES = REPO / "manifests" / "examples"
GROUP = "tickplane.io"
VERSION = "v1alpha1"


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
        self._process = ServerProcess("the operator", self.log)

    @property
    def running(self) -> bool:
        """Whether the operator process is alive."""
        return self._process.running

    def start(self) -> None:
        """Start the operator and wait until its liveness endpoint answers."""
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "TICKPLANE_OPERATOR_ENGINE_IMAGE": "tickplane/tickplane:test",
        }
        self._process.start(
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
            env=env,
        )  # fmt: skip
        healthz = f"http://127.0.0.1:{self.health_port}/healthz"
        self._process.wait_ready(lambda: http_ok(healthz, timeout=2), timeout=60, what=healthz)

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
        self._process.stop(20.0)

    def kill(self) -> None:
        """SIGKILL: a crash, no cleanup."""
        self._process.kill()

    def tail(self, lines: int = 60) -> str:
        """The end of the operator's log."""
        return self._process.tail(lines)


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


@contextmanager
def refused_events(api: client.ApiClient, namespace: str, reason: str) -> Iterator[None]:
    """While inside, the apiserver refuses (422) every core/v1 Event with `reason` created in
    `namespace`: a ValidatingAdmissionPolicy, in force (a probe Event is refused) before
    the block runs, and gone (a probe is taken) after it."""
    admission = client.AdmissionregistrationV1Api(api)
    core = client.CoreV1Api(api)
    name = f"refuse-{reason.lower()}-{namespace}"
    admission.create_validating_admission_policy(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["events"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": f"object.reason != '{reason}'",
                        "message": f"the test refuses {reason} Events",
                        "reason": "Invalid",
                    }
                ],
            },
        }
    )
    admission.create_validating_admission_policy_binding(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        }
    )

    def probe(refused: bool) -> bool | None:
        event = {
            "metadata": {"generateName": "probe.", "namespace": namespace},
            "involvedObject": {"kind": "ConfigMap", "name": "probe", "namespace": namespace},
            "reason": reason,
            "message": "is the policy in force?",
            "type": "Normal",
        }
        try:
            core.create_namespaced_event(namespace, event)
        except ApiException as exc:
            if exc.status != 422:
                raise
            return True if refused else None
        return None if refused else True

    try:
        eventually(lambda: probe(refused=True), what=f"{reason} Events refused")
        yield
    finally:
        admission.delete_validating_admission_policy_binding(name)
        admission.delete_validating_admission_policy(name)
    eventually(lambda: probe(refused=False), what=f"{reason} Events taken again")
