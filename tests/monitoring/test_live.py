"""Monitoring against a running `tickplane up`: what the components really expose.

promtool checks the engine's exposition; a real Prometheus scrapes the running platform
while orders flow; every metric the alert rules name exists, and every query of the
Grafana dashboard parses and returns data. The operator runs against the real control
plane beside it, so its panels have data too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import websocket
import yaml

from tests.cli.running import TICKPLANE, auth, free_ports, platform
from tests.controlplane.cluster import ControlPlane
from tests.operator.support import EXAMPLES, apply_crds

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


@contextmanager
def _operator(cp: ControlPlane, namespace: str, port: int, log: Path) -> Iterator[None]:
    """`tickplane operator` on the real control plane, watching one namespace alone (no
    peering: the operator tests' own operator elsewhere in the session is not disturbed),
    with a TradingEngine to reconcile every two seconds."""
    apply_crds(cp)
    cp.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "tradingengine.yaml"))
    env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig)}
    argv = [*TICKPLANE, "operator", "--namespace", namespace, "--standalone"]
    argv += [f"--metrics-port={port}", f"--liveness-port={free_ports(1)}", "--resync-seconds=2"]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def _strategy(engine: str, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A live market maker on the running engine, serving its metrics on `port`."""
    argv = [*TICKPLANE, "strategy", "run", "--strategy", "market_maker", "--engine", engine]
    argv += ["--account", "mm", "--symbol", "GOOG", "--metrics-port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _exposition(url: str, proc: subprocess.Popen[bytes] | None = None) -> str:
    """The text at `url`, awaited while whoever serves it starts."""
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return str(resp.read().decode())
        except OSError:
            assert proc is None or proc.poll() is None, f"{url}: its server exited"
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_prometheus_scrapes_a_running_platform(
    tmp_path: Path,
    prometheus_factory: Any,
    postgres: Any,
    redis: Any,
    control_plane: ControlPlane,
    namespace: str,
) -> None:
    dsn = postgres.create_database("mon")
    services = ("--database-url", dsn, "--redis-url", redis.url)
    strategy_port, operator_port = free_ports(1), free_ports(1)
    with (
        platform(tmp_path / "platform", *services) as (_proc, info),
        _strategy(info["engine"], strategy_port, tmp_path / "strategy.log") as strategy,
        _operator(control_plane, namespace, operator_port, tmp_path / "operator.log"),
    ):
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

        endpoints = {
            "tickplane-engine": metrics_url,
            "tickplane-gateway": info["gateway_metrics"],
            "tickplane-recorder": info["recorder_metrics"],
            "tickplane-strategy": f"http://127.0.0.1:{strategy_port}/metrics",
            "tickplane-operator": f"http://127.0.0.1:{operator_port}/metrics",
        }
        promtool = shutil.which("promtool")
        assert promtool
        families: set[str] = set()
        for job, url in endpoints.items():
            exposition = _exposition(url, strategy if job == "tickplane-strategy" else None)
            checked = subprocess.run(
                [promtool, "check", "metrics"], input=exposition, capture_output=True, text=True
            )
            assert checked.returncode == 0, f"{job}: {checked.stdout}{checked.stderr}"
            families |= _families(exposition)

        missing = {n for n in _rule_metrics() if _family(n) not in families}
        assert not missing, f"alert rules name metrics nobody exposes: {sorted(missing)}"

        prom = prometheus_factory(
            [
                {"job_name": job, "static_configs": [{"targets": [urlsplit(url).netloc]}]}
                for job, url in endpoints.items()
            ],
            rule_files=[MONITORING / "alerts.rules.yaml"],
        )
        # A market-data subscriber, so the WebSocket panel has a client to count.
        ws_url = info["gateway"].replace("http://", "ws://") + "/api/v1/ws/market/GOOG"
        key = auth(info["key_id"], info["secret"])
        subscriber = websocket.create_connection(
            ws_url, header=[f"{k}: {v}" for k, v in key.items()], timeout=10
        )
        assert subscriber.recv()  # the stream is live
        for job in endpoints:
            prom.wait_for_target(job)
        prom.wait_for_series('tickplane_engine_orders_total{outcome="accepted"}', timeout=30)
        for expr in _dashboard_queries():
            prom.wait_for_series(_for_prometheus(expr), timeout=30)
        subscriber.close()
        # A healthy platform raises no alert.
        firing = [a for a in prom.api("alerts")["alerts"] if a["state"] == "firing"]
        assert firing == []


pytestmark = pytest.mark.timeout(240)
