"""The live runner against a real engine process with a synthetic market: the same
strategy code trades through EngineClient, and its own view (orders, fills, position)
agrees with the engine's."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.engine.conftest import EngineProcess, engine_settings, free_port
from tickplane.core import wire
from tickplane.core.client import EngineClient
from tickplane.core.events import OrderAccepted, OrderCanceled, PositionChanged
from tickplane.engine.strategy.live import LiveRunner, default_events_endpoint
from tickplane.engine.strategy.registry import build


@pytest.fixture(scope="module")
def market_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    work = tmp_path_factory.mktemp("engine")
    market = {"source": "synthetic", "rate": 200.0, "seed": 7}
    eng = EngineProcess(work, engine_settings(work, "strategy-test", ("GOOG",), market=market))
    eng.start()
    yield eng
    eng.stop()


async def engine_position(eng: EngineProcess, account: str) -> int:
    async with EngineClient(eng.order_entry, eng.events) as c:
        pong = await c.ping()
        last = pong.last_seq  # type: ignore[union-attr]
        pos = 0
        for ev in await c.replay(1, last):
            if isinstance(ev, PositionChanged) and ev.account == account and ev.symbol == "GOOG":
                pos = ev.position
        return pos


async def wait_for(cond: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def test_twap_runs_live_and_agrees_with_the_engine(market_engine: EngineProcess) -> None:
    s = build(
        "twap",
        {"total_qty": 30, "duration_s": 1.5, "slices": 3, "side": "buy"},
        symbol="GOOG",
    )
    runner = LiveRunner(
        s,
        market_engine.order_entry,
        market_engine.events,
        account="twap-live",
        registry=CollectorRegistry(),
    )

    async def main() -> None:
        task = asyncio.create_task(runner.run())
        await wait_for(lambda: getattr(s, "slice", 0) >= 3 and not s.open_orders())
        runner.stop()
        await task

    asyncio.run(main())
    filled = sum(o.filled for o in s.orders.values())
    assert s.slice == 3  # type: ignore[attr-defined]
    assert filled > 0 and s.position == filled
    assert all(o.venue_id is not None for o in s.orders.values() if o.status != "rejected")
    assert asyncio.run(engine_position(market_engine, "twap-live")) == s.position
    assert s.mark is not None  # quotes arrived from the engine's market data


def test_strategy_run_command_serves_metrics(market_engine: EngineProcess, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tickplane.cli.main",
            "strategy",
            "run",
            "--strategy",
            "market_maker",
            "--engine",
            market_engine.order_entry,
            "--events",
            market_engine.events,
            "--account",
            "mm-live",
            "--symbol",
            "GOOG",
            "--params",
            "sigma=1",
            "--metrics-port",
            str(port),
            "--duration",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # How the Strategy resource's params reach the runner (the command line adds to them).
        env={**os.environ, "TICKPLANE_STRATEGY_PARAMS": '{"qty": 5, "max_inventory": 50}'},
    )
    try:
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
                    text = r.read().decode()
            except OSError:
                text = ""
            if 'tickplane_strategy_orders_total{outcome="accepted"' in text.replace(
                'strategy="market_maker",symbol="GOOG",', ""
            ):
                break
            time.sleep(0.1)  # polling another process's HTTP endpoint
        assert "tickplane_strategy_position{" in text
        assert "tickplane_strategy_pnl{" in text
        assert 'outcome="accepted"' in text, text
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out
    assert '"qty":5,' in out and '"max_inventory":50' in out and '"sigma":1.0' in out, out

    # Stopping canceled the maker's quotes: a mass cancel of mm-live finds nothing open.
    async def leftovers() -> tuple[int, int]:
        async with EngineClient(market_engine.order_entry, market_engine.events) as c:
            last = (await c.ping()).last_seq  # type: ignore[union-attr]
            accepted = sum(
                1
                for ev in await c.replay(1, last)
                if isinstance(ev, OrderAccepted) and ev.account == "mm-live"
            )
            reply = await c.mass_cancel(account="mm-live")
            assert isinstance(reply, wire.Ack)
            return accepted, sum(isinstance(ev, OrderCanceled) for ev in reply.events)

    accepted, canceled_now = asyncio.run(leftovers())
    assert accepted > 0 and canceled_now == 0


def test_default_events_endpoint() -> None:
    assert default_events_endpoint("tcp://127.0.0.1:5555") == "tcp://127.0.0.1:5556"
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        default_events_endpoint("ipc:///x")


def test_the_runner_waits_for_an_engine_that_is_not_up_yet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tickplane.strategy.live")
    market = {"source": "synthetic", "rate": 200.0, "seed": 3}
    eng = EngineProcess(tmp_path, engine_settings(tmp_path, "late", ("GOOG",), market=market))
    s = build("twap", {"total_qty": 10, "duration_s": 0.5, "slices": 2}, symbol="GOOG")
    runner = LiveRunner(
        s, eng.order_entry, eng.events, account="late-twap", registry=CollectorRegistry()
    )
    # shorter than the engine takes to start (~0.3 s here): the client now sends as soon
    # as the engine is there, so a longer timeout could see the first ping answered
    runner.client.timeout = 0.1

    async def main() -> int:
        task = asyncio.create_task(runner.run())
        await asyncio.sleep(0)  # let it try the engine that is not there
        assert not runner.ready.is_set()
        await asyncio.get_running_loop().run_in_executor(None, eng.start)
        await wait_for(lambda: getattr(s, "slice", 0) >= 2 and not s.open_orders())
        runner.stop()
        return await task

    try:
        assert asyncio.run(main()) == 0
    finally:
        eng.stop()
    assert runner.ready.is_set() and s.position > 0
    assert "not reachable" in caplog.text  # it did try before the engine was up


def test_sma_crossover_trades_live_on_bars_built_from_trades(
    market_engine: EngineProcess,
) -> None:
    s = build("sma_crossover", {"fast": 2, "slow": 4, "qty": 3, "bar_seconds": 0.1}, symbol="GOOG")
    runner = LiveRunner(
        s,
        market_engine.order_entry,
        market_engine.events,
        account="sma-live",
        registry=CollectorRegistry(),
    )

    async def main() -> None:
        task = asyncio.create_task(runner.run())
        # A buy on an upward cross, then a sell on the next downward one.
        await wait_for(lambda: any(o.side == "sell" and o.filled for o in s.orders.values()))
        runner.stop()
        await task

    asyncio.run(main())
    signals = s.signals  # type: ignore[attr-defined]
    assert [side for _, side in signals[:2]] == ["buy", "sell"]
    assert asyncio.run(engine_position(market_engine, "sma-live")) == s.position
