"""The ConfigMap the operator renders runs a real engine, and the operator reads that
engine's live figures (pinned CPU, sequence, orders/s, p99) from its HTTP port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from tests.engine.conftest import EngineProcess, free_port
from tickplane.core.client import EngineClient
from tickplane.core.engine_metrics import Scrape, parse
from tickplane.operator.figures import (
    scrape,
    strategy_pnl,
    window_figures,
)
from tickplane.operator.render import engine_config, strategy_objects
from tickplane.operator.resources import StrategySpec, TradingEngineSpec


def rendered_engine(tmp_path: Path) -> EngineProcess:
    spec = TradingEngineSpec.model_validate(
        {
            "symbols": [{"name": "GOOG", "referencePrice": 10000}, {"name": "AAPL"}],
            "marketData": {"source": "synthetic", "rate": 400},
            "journal": {"fsync": "none"},
        }
    )
    settings: dict[str, Any] = msgspec.to_builtins(engine_config("figures", spec))
    # The pod's addresses and volume, moved to loopback ports and a temporary folder.
    settings |= {
        "order_entry": f"tcp://127.0.0.1:{free_port()}",
        "events": f"tcp://127.0.0.1:{free_port()}",
        "http_host": "127.0.0.1",
        "http_port": free_port(),
        "journal_dir": str(tmp_path / "journal"),
    }
    return EngineProcess(tmp_path, settings)


async def send_orders(engine: EngineProcess, count: int) -> None:
    async with EngineClient(engine.order_entry) as client:
        for i in range(count):
            reply = await client.submit("figures-test", "GOOG", "buy", "limit", 1, price=9990 - i)
            assert reply is not None


def test_live_figures_from_a_real_engine(tmp_path: Path) -> None:
    engine = rendered_engine(tmp_path)
    engine.start()
    try:
        figures, first = scrape(engine.http, None)
        assert figures.orders_per_second is None  # one scrape is no interval
        assert figures.pinned_cpu is not None and figures.pinned_cpu in figures.cpus
        asyncio.run(send_orders(engine, 200))
        figures, _ = scrape(engine.http, first)
        # The synthetic market's orders and ours; the latency is of our 200 requests.
        assert figures.orders_per_second is not None and figures.orders_per_second > 0
        assert figures.p99_latency_seconds is not None
        assert 0 < figures.p99_latency_seconds < 1.0
        assert figures.last_sequence is not None and figures.last_sequence > 200
    finally:
        assert engine.stop() == 0, engine.log_text()


def test_window_figures_from_histogram_deltas() -> None:
    text_before = """# TYPE tickplane_engine_orders_total counter
tickplane_engine_orders_total{symbol="GOOG"} 100
# TYPE tickplane_engine_request_seconds histogram
tickplane_engine_request_seconds_bucket{le="0.001"} 100
tickplane_engine_request_seconds_bucket{le="0.01"} 100
tickplane_engine_request_seconds_bucket{le="+Inf"} 100
tickplane_engine_request_seconds_count 100
tickplane_engine_request_seconds_sum 0.05
"""
    text_after = (
        text_before.replace(" 100\n", " 300\n", 1)
        .replace('le="0.001"} 100', 'le="0.001"} 150')
        .replace('le="0.01"} 100', 'le="0.01"} 300')
        .replace('le="+Inf"} 100', 'le="+Inf"} 300')
    )
    before = parse(text_before, at=10.0)
    after = parse(text_after, at=12.0)
    rate, p99 = window_figures(before, after)
    assert rate == 100.0  # 200 orders in 2 s
    # 200 requests in the window: 50 under 1 ms, 150 between 1 and 10 ms; rank 198.
    assert p99 is not None and abs(p99 - (0.001 + 0.009 * (198 - 50) / 150)) < 1e-12
    # A restarted engine (counters reset) gives no figures rather than negative ones.
    assert window_figures(after, Scrape(13.0, 5.0, after.buckets)) == (None, None)


def test_strategy_deployment_command_runs_and_reports_pnl(tmp_path: Path) -> None:
    """The Deployment's command line, pointed at a real engine, runs the strategy runtime,
    whose /metrics give the P&L the operator writes into the Strategy's status."""
    engine = rendered_engine(tmp_path)
    engine.start()
    spec = StrategySpec.model_validate(
        {
            "engineRef": {"name": "figures"},
            "type": "market_maker",
            "parameters": {"qty": 10},
            "symbols": ["GOOG"],
            "account": "mm-test",
            "limits": {"maxPosition": 1000},
        }
    )
    (deployment,) = strategy_objects("mm", "ns", "uid", spec, default_image="i", paused=False)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    metrics_port = free_port()
    # The pod's command with the cluster's addresses replaced by the loopback engine's.
    argv = [
        f"--engine={engine.order_entry}"
        if a.startswith("--engine=")
        else f"--events={engine.events}"
        if a.startswith("--events=")
        else f"--metrics-port={metrics_port}"
        if a.startswith("--metrics-port=")
        else a
        for a in container["command"][1:]
    ]
    env = {**os.environ, **{e["name"]: e["value"] for e in container["env"]}}
    log = (tmp_path / "strategy.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tickplane.cli.main", *argv],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        pnl = None
        while pnl is None:
            assert proc.poll() is None, (tmp_path / "strategy.log").read_text()
            assert time.monotonic() < deadline, "the strategy runtime served no P&L"
            try:
                pnl = strategy_pnl(url)
            except OSError:
                time.sleep(0.2)  # not listening yet
        assert isinstance(pnl, float)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        assert engine.stop() == 0, engine.log_text()
