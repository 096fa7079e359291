"""The alert rules: valid for promtool, documented, and firing in a real Prometheus.

A synthetic exporter serves the components' metric names with values that break every
threshold; a real Prometheus loads manifests/monitoring/alerts.rules.yaml, scrapes it and
must raise every alert. (That the names are the ones the components really expose is
checked against a running platform in test_live.py.)
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import yaml

from tests.services.servers import free_port

RULES = Path(__file__).resolve().parents[2] / "manifests" / "monitoring" / "alerts.rules.yaml"


def _alerts() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with the prometheus Debian package (make services)"
    out = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in out.stdout


def test_every_alert_says_what_it_is_and_what_to_do() -> None:
    alerts = _alerts()
    assert len({a["alert"] for a in alerts}) == len(alerts), "alert names repeat"
    for a in alerts:
        assert a["alert"].startswith("Tickplane"), a["alert"]
        assert a["labels"]["severity"] in {"critical", "warning"}, a["alert"]
        assert len(a["annotations"]["summary"]) > 10, a["alert"]
        assert len(a["annotations"]["runbook"]) > 40, a["alert"]


class _BadEngine:
    """The components' metric names, every one on the wrong side of its threshold."""

    def __init__(self) -> None:
        r = self.registry = prometheus_client.CollectorRegistry()
        g = prometheus_client.Gauge
        g("tickplane_engine_ready", "", registry=r).set(0)
        g("tickplane_engine_kill_switches_engaged", "", registry=r).set(1)
        g("tickplane_engine_venue_connected", "", registry=r).set(0)
        self.requests = prometheus_client.Counter(
            "tickplane_engine_requests_total", "", ["kind"], registry=r
        )
        self.rejects = prometheus_client.Counter(
            "tickplane_engine_request_rejects_total", "", ["reason"], registry=r
        )
        self.halts = prometheus_client.Counter(
            "tickplane_engine_symbol_halts_total", "", ["reason"], registry=r
        )
        buckets = (0.0001, 0.001, 0.01, 0.1)
        self.request = prometheus_client.Histogram(
            "tickplane_engine_request_seconds", "", buckets=buckets, registry=r
        )
        self.fsync = prometheus_client.Histogram(
            "tickplane_engine_journal_fsync_seconds", "", buckets=buckets, registry=r
        )
        g("tickplane_gateway_projection_lag_events", "", registry=r).set(5000)
        self.gateway_errors = prometheus_client.Counter(
            "tickplane_gateway_errors_total", "", ["route"], registry=r
        )
        self.gateway_gaps = prometheus_client.Counter(
            "tickplane_gateway_market_data_gaps_total", "", ["symbol"], registry=r
        )
        g("tickplane_recorder_lag_events", "", ["sink"], registry=r).labels("postgres").set(5e4)
        g("tickplane_recorder_sink_up", "", ["sink"], registry=r).labels("kafka").set(0)
        self.reconciles = prometheus_client.Counter(
            "tickplane_operator_reconciles_total", "", ["kind", "result"], registry=r
        )
        g("tickplane_strategy_paused", "", ["strategy"], registry=r).labels("mm").set(1)
        qos = g("tickplane_operator_engine_guaranteed", "", ["namespace", "engine"], registry=r)
        qos.labels("trading", "nasdaq").set(0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        # Counters must keep growing for rate() and increase() to see anything.
        while not self._stop.wait(0.05):
            self.requests.labels("new").inc(55)
            self.rejects.labels("max_order_qty").inc(50)
            self.halts.labels("circuit_breaker").inc()
            self.request.observe(0.005)
            self.fsync.observe(0.05)
            self.gateway_errors.labels("/api/v1/orders").inc()
            self.gateway_gaps.labels("GOOG").inc()
            self.reconciles.labels("TradingEngine", "error").inc()

    def __enter__(self) -> _BadEngine:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_every_alert_fires_in_a_real_prometheus(prometheus_factory: Any) -> None:
    port, dead_port, dead_gateway = free_port(), free_port(), free_port()
    with _BadEngine() as bad:
        server, thread = prometheus_client.start_http_server(
            port, "127.0.0.1", registry=bad.registry
        )
        try:
            prom = prometheus_factory(
                [
                    {
                        "job_name": "tickplane-engine",
                        "static_configs": [
                            {"targets": [f"127.0.0.1:{port}", f"127.0.0.1:{dead_port}"]}
                        ],
                    },
                    {
                        "job_name": "tickplane-gateway",
                        "static_configs": [{"targets": [f"127.0.0.1:{dead_gateway}"]}],
                    },
                ],
                rule_files=[RULES],
            )
            expected = {a["alert"] for a in _alerts()}
            deadline = time.monotonic() + 60
            active: set[str] = set()
            while time.monotonic() < deadline:
                alerts = prom.api("alerts")["alerts"]
                active = {a["labels"]["alertname"] for a in alerts}
                if expected <= active:
                    break
                time.sleep(0.5)
            assert expected <= active, f"never active: {sorted(expected - active)}"
        finally:
            server.shutdown()
            thread.join(5)


def test_the_dashboard_is_what_its_script_renders() -> None:
    script = RULES.parents[2] / "scripts" / "monitoring" / "dashboard.py"
    spec = importlib.util.spec_from_file_location("dashboard", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (RULES.parent / "grafana-dashboard.json").read_text()
    assert committed == module.render(), "run python scripts/monitoring/dashboard.py"
    ids = [p["id"] for p in json.loads(committed)["panels"]]
    assert len(ids) == len(set(ids))


pytestmark = pytest.mark.timeout(180)
