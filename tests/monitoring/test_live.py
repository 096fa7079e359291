"""Monitoring against a running `tickplane up`: what the components really expose.

promtool checks the engine's exposition; a real Prometheus scrapes the running platform
while orders flow; every metric the alert rules name exists, and every query of the
Grafana dashboard parses and returns data.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.cli.running import auth, platform

MONITORING = Path(__file__).resolve().parents[2] / "manifests" / "monitoring"
_SUFFIXES = ("_bucket", "_sum", "_count")


def _dashboard_queries() -> list[str]:
    dash = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def _for_prometheus(expr: str) -> str:
    """A dashboard query with Grafana's variables as a query would see them."""
    return expr.replace("$__rate_interval", "30s").replace('"$job"', '".*"')


def _rule_metrics() -> set[str]:
    doc = yaml.safe_load((MONITORING / "alerts.rules.yaml").read_text())
    names: set[str] = set()
    for group in doc["groups"]:
        for rule in group["rules"]:
            names |= set(re.findall(r"\b(tickplane_[a-z0-9_]+)", rule["expr"]))
    return names


def _families(exposition: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+) ", exposition, re.M))


def _family(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _trade(gateway: str, headers: dict[str, str]) -> None:
    gw = httpx.Client(base_url=gateway, timeout=10, headers=headers)
    book = gw.get("/api/v1/book/GOOG").json()
    best_ask = book["asks"][0]["price"]
    # Crosses the synthetic market's asks (a trade), then breaks `tickplane up`'s order
    # size limit (a risk reject): both outcomes appear in the engine's counters.
    r = gw.post(
        "/api/v1/orders",
        json={"symbol": "GOOG", "side": "buy", "type": "limit", "qty": 1, "limit_price": best_ask},
    )
    assert r.status_code == 201, r.text
    too_big = {"symbol": "GOOG", "side": "buy", "type": "limit", "qty": 10**6, "limit_price": 1}
    r = gw.post("/api/v1/orders", json=too_big)
    assert (r.status_code, r.json()["reason"]) == (403, "max_order_qty"), r.text


def test_prometheus_scrapes_a_running_platform(tmp_path: Path, prometheus_factory: Any) -> None:
    with platform(tmp_path / "platform") as (_proc, info):
        metrics_url = info["metrics"]
        deadline = time.monotonic() + 30
        while True:  # the synthetic market needs a moment to quote both sides
            book = httpx.get(
                f"{info['gateway']}/api/v1/book/GOOG",
                headers=auth(info["key_id"], info["secret"]),
            ).json()
            if book.get("asks"):
                break
            assert time.monotonic() < deadline, f"no asks on GOOG: {book}"
            time.sleep(0.2)
        _trade(info["gateway"], auth(info["key_id"], info["secret"]))

        with urllib.request.urlopen(metrics_url, timeout=5) as resp:
            exposition = resp.read().decode()
        promtool = shutil.which("promtool")
        assert promtool
        checked = subprocess.run(
            [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr

        missing = {n for n in _rule_metrics() if _family(n) not in _families(exposition)}
        assert not missing, f"alert rules name metrics nobody exposes: {sorted(missing)}"

        target = urlsplit(metrics_url).netloc
        prom = prometheus_factory(
            [{"job_name": "tickplane-engine", "static_configs": [{"targets": [target]}]}],
            rule_files=[MONITORING / "alerts.rules.yaml"],
        )
        prom.wait_for_target("tickplane-engine")
        prom.wait_for_series('tickplane_engine_orders_total{outcome="accepted"}', timeout=30)
        for expr in _dashboard_queries():
            prom.wait_for_series(_for_prometheus(expr), timeout=30)
        # A healthy platform raises no alert.
        firing = [a for a in prom.api("alerts")["alerts"] if a["state"] == "firing"]
        assert firing == []


pytestmark = pytest.mark.timeout(240)
