"""The Helm chart: `helm lint` clean, values checked by values.schema.json, and the rendered
output accepted by the real apiserver (server-side dry run)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controlplane.cluster import ControlPlane
from tests.process import cached_folder

from .support import REPO

CHART = REPO / "charts" / "tickplane"
BUILD = REPO / "scripts" / "helm" / "build.sh"
KUBE_VERSION = "1.37.2"


@pytest.fixture(scope="session")
def helm() -> Path:
    """helm, built from the Go module proxy once (scripts/helm/build.sh)."""
    return cached_folder(BUILD, timeout=1800) / "helm"


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )


def render(
    helm: Path, namespace: str, *sets: str, crds: bool = False, api_versions: tuple[str, ...] = ()
) -> str:
    args = ["template", "tp", str(CHART), "--namespace", namespace]
    if crds:
        args.append("--include-crds")  # Helm's crds/ folder, as `helm install` sends it
    for version in api_versions:  # what the cluster serves (as `helm install` would learn)
        args += ["--api-versions", version]
    args += ["--kube-version", KUBE_VERSION]
    for s in sets:
        args += ["--set", s]
    done = run_helm(helm, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def documents(text: str) -> Iterator[dict[str, Any]]:
    for doc in yaml.safe_load_all(text):
        if doc:
            yield doc


def test_helm_lint_is_clean(helm: Path) -> None:
    done = run_helm(helm, "lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


def test_values_schema_rejects_bad_values(helm: Path) -> None:
    done = run_helm(
        helm, "template", "tp", str(CHART), "--kube-version", KUBE_VERSION,
        "--set", "operator.replicas=-1", "--set", "gateway.engine=Not_A_Name",
    )  # fmt: skip
    assert done.returncode != 0
    assert "/operator/replicas" in done.stderr and "/gateway/engine" in done.stderr
    unknown = run_helm(helm, "template", "tp", str(CHART), "--set", "operater.enabled=true")
    assert unknown.returncode != 0 and "operater" in unknown.stderr


@pytest.mark.parametrize(
    "sets",
    [
        [],
        [
            "postgresql.bundled=true",
            "redis.bundled=true",
            "kafka.bundled=true",
            "ingress.enabled=true",
            "ingress.className=nginx",
        ],
    ],
    ids=["external-services", "bundled-services-and-ingress"],
)
def test_rendered_chart_is_accepted_by_the_apiserver(
    sets: list[str], helm: Path, crds: Path, control_plane: ControlPlane, namespace: str
) -> None:
    text = render(helm, namespace, *sets, crds=True)
    kinds = [d["kind"] for d in documents(text)]
    for kind in ("CustomResourceDefinition", "ClusterRole", "ServiceAccount", "Deployment"):
        assert kind in kinds
    done = control_plane.kubectl(
        "apply", "--server-side", "--dry-run=server", "--force-conflicts", "-f", "-",
        input=text, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    applied = [line for line in done.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(kinds)


def test_chart_pods_are_locked_down(helm: Path) -> None:
    """Tickplane's own containers: non-root, read-only root, requests == limits."""
    for doc in documents(render(helm, "tp")):
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["resources"]["requests"] == c["resources"]["limits"]


def test_crds_are_gated_and_kept_on_uninstall(helm: Path) -> None:
    crds = [d for d in documents(render(helm, "tp")) if d["kind"] == "CustomResourceDefinition"]
    assert {d["metadata"]["name"] for d in crds} >= {
        "tradingengines.tickplane.io",
        "strategies.tickplane.io",
    }
    assert all(d["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for d in crds)
    off = render(helm, "tp", "crds.install=false")
    assert not [d for d in documents(off) if d["kind"] == "CustomResourceDefinition"]
    # Prometheus operator objects only where its CRDs are.
    assert "PodMonitor" not in [d["kind"] for d in documents(render(helm, "tp"))]
    prometheus = ("monitoring.coreos.com/v1",)
    monitored = render(helm, "tp", api_versions=prometheus)
    kinds = [d["kind"] for d in documents(monitored)]
    assert {"PodMonitor", "ServiceMonitor", "PrometheusRule"} <= set(kinds)
    off = render(
        helm, "tp", "monitoring.podMonitor=false", api_versions=("monitoring.coreos.com/v1",)
    )
    assert "PodMonitor" not in [d["kind"] for d in documents(off)]


def test_plain_rbac_manifest_matches_the_chart(helm: Path) -> None:
    """manifests/rbac/operator.yaml grants exactly what the chart's operator gets."""

    def rules(docs: Iterator[dict[str, Any]]) -> dict[tuple[str, str], Any]:
        return {
            (d["kind"], d["metadata"]["name"]): d.get("rules") or d.get("roleRef")
            for d in docs
            if d["kind"] in ("ClusterRole", "ClusterRoleBinding")
        }

    chart = run_helm(
        helm, "template", "tickplane", str(CHART), "--namespace", "tickplane",
        "--kube-version", KUBE_VERSION, "--show-only", "templates/operator.yaml",
    )  # fmt: skip
    assert chart.returncode == 0, chart.stderr
    plain = (REPO / "manifests" / "rbac" / "operator.yaml").read_text()
    assert rules(documents(plain)) == rules(documents(chart.stdout))
    assert len(rules(documents(plain))) == 4


def test_first_install_order(helm: Path) -> None:
    """A fresh `helm install` checks every template against the API before creating
    anything: a custom object in the templates needs its CRD in Helm's crds/ folder
    (installed first), never among the templates."""

    def kinds(folder: Path) -> set[str]:
        return {
            str(yaml.safe_load(f.read_text())["spec"]["names"]["kind"])
            for f in folder.glob("*.yaml")
        }

    first = kinds(CHART / "crds")
    templated = kinds(CHART / "files" / "crds")
    assert templated == {"TradingEngine", "Strategy"} and "ClusterKopfPeering" in first
    for doc in documents(render(helm, "tp")):
        assert doc["kind"] not in templated, f"a {doc['kind']} in the templates"
        if doc["apiVersion"].split("/")[0].endswith(("kopf.dev", "tickplane.io")):
            assert doc["kind"] in first, f"{doc['kind']}: its CRD is not installed first"
