"""The chart ships the same alert rules and dashboard as manifests/monitoring (one source)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.process import cached_folder

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "manifests" / "monitoring"


def _render(*sets: str, api_versions: tuple[str, ...] = ()) -> list[dict[str, object]]:
    helm = cached_folder(REPO / "scripts" / "helm" / "build.sh", echo=False) / "helm"
    args = [str(helm), "template", "tp", str(REPO / "charts" / "tickplane")]
    args += ["--kube-version", "1.37.2", *(a for s in sets for a in ("--set", s))]
    args += [a for v in api_versions for a in ("--api-versions", v)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_the_chart_wraps_the_rules_and_the_dashboard() -> None:
    docs = _render(api_versions=("monitoring.coreos.com/v1",))
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert rule["spec"] == yaml.safe_load((MONITORING / "alerts.rules.yaml").read_text())
    (dash,) = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    shipped = json.loads(dash["data"]["tickplane.json"])
    assert shipped == json.loads((MONITORING / "grafana-dashboard.json").read_text())


def test_prometheus_operator_objects_need_its_crds() -> None:
    kinds = {d["kind"] for d in _render()}
    assert "PrometheusRule" not in kinds and "PodMonitor" not in kinds
    assert "ConfigMap" in kinds


def test_every_component_with_metrics_is_scraped() -> None:
    """Engines, strategies (made by the operator) and the recorder by PodMonitors; the
    gateway and the operator by the ServiceMonitor, through a port named `metrics`."""
    docs: list[dict[str, Any]] = _render(api_versions=("monitoring.coreos.com/v1",))
    pods = {
        d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for d in docs
        if d["kind"] == "PodMonitor"
    }
    assert pods == {"tickplane-engine", "tickplane-strategy", "tickplane-recorder"}
    (recorder,) = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("recorder")
    ]
    ports = recorder["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert {"name": "metrics", "containerPort": 9102} in ports
    (service_monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert service_monitor["spec"]["endpoints"][0]["port"] == "metrics"
    with_metrics = {
        d["metadata"]["name"].removeprefix("tp-tickplane-")
        for d in docs
        if d["kind"] == "Service" and any(p["name"] == "metrics" for p in d["spec"]["ports"])
    }
    assert with_metrics == {"gateway", "operator-metrics"}
