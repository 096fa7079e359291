"""The market WebSocket fills its own gaps: a real engine and gateway, the gateway's
event socket losing tops and deltas on the way (its decoding patched to drop chosen
ones, as a full ZeroMQ queue would), and a subscriber that must still get every top
and delta once, in md_seq order; or, for numbers the engine's market-data log no longer
keeps, one `gap` message saying so, counted in the gateway's metrics (by symbol: the
holes and the numbers in them).

The module runs its own engine (a market-data log of the smallest size, 1 MiB, so that
a test can make it let go of a top) and gateway; each test trades its own symbol."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import engine_process
from tests.api.test_projection import _run
from tests.api.test_ws import _receive_text
from tests.engine.test_market_data_replay import all_market_data, market_turn
from tests.engine.test_service import ack
from tickplane.api import keys
from tickplane.api.main import create_app
from tickplane.api.projection import Projection
from tickplane.api.settings import GatewaySettings
from tickplane.core import client as engine_client
from tickplane.core import wire
from tickplane.core.client import EngineClient
from tickplane.core.events import BookDelta, MarketData, TopOfBook

H = dict[str, str]
WS = "/api/v1/ws"


@pytest.fixture(scope="module")
def md_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """This module's engine: the smallest market-data log (1 MiB)."""
    with engine_process(
        tmp_path_factory.mktemp("ws-md"),
        "ws-md-tests",
        ["GOOG", "AAPL", "MSFT"],
        md_log_bytes=1 << 20,
    ) as endpoints:
        yield endpoints


@pytest.fixture(scope="module")
def client(settings: GatewaySettings, md_engine: dict[str, str]) -> Iterator[TestClient]:
    """A gateway over this module's engine (keys in the session's database)."""
    own = settings.model_copy(
        update={
            "engine_order_entry": md_engine["order_entry"],
            "engine_events": md_engine["events"],
        }
    )
    with TestClient(create_app(own)) as c:
        yield c


def _drop(monkeypatch: pytest.MonkeyPatch, lose: Callable[[MarketData], bool]) -> list[Any]:
    """Make this process's event sockets (the gateway's) lose the market data `lose`
    picks; returns what was lost, as (kind, md_seq)."""
    real = wire.decode_event
    lost: list[Any] = []

    def lossy(frame: bytes) -> Any:
        msg = real(frame)
        if isinstance(msg, TopOfBook | BookDelta) and lose(msg):
            lost.append((type(msg).__name__, msg.md_seq))
            raise wire.WireError("dropped on the way")
        return msg

    monkeypatch.setattr(wire, "decode_event", lossy)
    return lost


def _as_message(md: MarketData) -> dict[str, Any]:
    """What the market WebSocket sends for `md`."""
    out: dict[str, Any] = {
        "type": "top" if type(md) is TopOfBook else "delta",
        "symbol": md.symbol,
        "md_seq": md.md_seq,
        "ts": md.ts_event,
        "bids": [[lv.price, lv.qty, lv.orders] for lv in md.bids],
        "asks": [[lv.price, lv.qty, lv.orders] for lv in md.asks],
    }
    if type(md) is TopOfBook:
        out["last_price"] = md.last_price
    return out


def _book_messages(ws: Any, done: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """The subscriber's tops, deltas and gaps, in the order received, up to the first
    that `done` accepts (trades and the rest skipped), or an AssertionError after 15 s."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 15
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"not done within 15 s; got {got[-10:]}")
        for msg in json.loads(_receive_text(ws, left)):
            if msg["type"] in ("top", "delta", "gap"):
                got.append(msg)
                if done(msg):
                    return got


def _latest(eng: dict[str, str], symbol: str) -> int:
    """The engine's last md_seq of `symbol`."""

    async def body(c: EngineClient) -> int:
        book = ack(await c.get_book(symbol, 1)).book
        assert book is not None
        return book.md_seq

    return _run(eng, body)


def _gaps(client: TestClient, symbol: str) -> tuple[float, float]:
    """The gateway's counts of `symbol`'s gaps and of the md_seq numbers in them."""
    registry = client.app.state.metrics.registry  # type: ignore[attr-defined]
    gaps = registry.get_sample_value("tickplane_gateway_market_data_gaps_total", {"symbol": symbol})
    lost = registry.get_sample_value(
        "tickplane_gateway_market_data_gap_md_seqs_total", {"symbol": symbol}
    )
    return gaps or 0.0, lost or 0.0


def _caught_up(projection: Projection, symbol: str, md_seq: int) -> None:
    """Wait (at most 10 s) until the gateway's projection passed on `symbol`'s top
    `md_seq` (so a subscriber joining now starts from it)."""
    deadline = time.monotonic() + 10
    while (top := projection.top(symbol)) is None or top.md_seq < md_seq:
        assert time.monotonic() < deadline, f"the projection is at {top}"
        time.sleep(0.01)


def test_a_subscriber_gets_every_top_and_delta_the_gateway_lost(
    client: TestClient,
    md_engine: dict[str, str],
    make_key: Callable[..., keys.NewKey],
    headers: Callable[[keys.NewKey], H],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tops and deltas lost in every arrangement (a delta alone, a top whose delta
    arrives, both, the very last delta, which only the idle catch-up finds): the
    subscriber's tops and deltas are exactly the engine's, from its first top on."""
    last = 67  # its delta (67 % 5 == 2) is lost, and nothing of AAPL follows it
    lost = _drop(
        monkeypatch,
        lambda md: (
            md.symbol == "AAPL"
            and (
                (type(md) is BookDelta and md.md_seq % 5 == 2)
                or (type(md) is TopOfBook and md.md_seq % 7 == 3)
            )
        ),
    )

    async def orders(c: EngineClient, turns: range) -> None:
        for i in turns:
            await market_turn(c, i)

    # Before the subscriber: the last turn's top announces no delta (post-only refused)
    _run(md_engine, lambda c: orders(c, range(12)))
    assert _latest(md_engine, "AAPL") == 12
    _caught_up(client.app.state.projection, "AAPL", 12)  # type: ignore[attr-defined]
    with client.websocket_connect(f"{WS}/market/AAPL", headers=headers(make_key())) as ws:
        first = _book_messages(ws, lambda m: m["type"] == "top")
        assert [m["md_seq"] for m in first] == [12]
        _run(md_engine, lambda c: orders(c, range(12, last)))
        assert _latest(md_engine, "AAPL") == last
        got = _book_messages(ws, lambda m: m["type"] == "delta" and m["md_seq"] == last)
        published, _ = _run(md_engine, lambda c: all_market_data(c, "AAPL"))

    assert got == [_as_message(md) for md in published if md.md_seq > 12]
    assert [m["md_seq"] for m in got if m["type"] == "top"] == list(range(13, last + 1))
    # lost live in each arrangement: a delta alone, a top whose delta arrived, both
    gone = set(lost)
    deltas = {md.md_seq for md in published if type(md) is BookDelta and md.md_seq > 12}
    pairs = {(("TopOfBook", n) in gone, ("BookDelta", n) in gone) for n in deltas}
    assert {(False, True), (True, False), (True, True)} <= pairs
    assert ("BookDelta", last) in gone
    assert _gaps(client, "AAPL") == (0, 0)  # every loss filled: no gap counted


def test_numbers_the_engine_no_longer_keeps_come_as_a_gap(
    client: TestClient,
    md_engine: dict[str, str],
    make_key: Callable[..., keys.NewKey],
    headers: Callable[[keys.NewKey], H],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A top and its delta lost on the way, then let go by the engine's market-data
    log (rotated past by another symbol's tops) before the gateway asks for them: the
    subscriber is told `gap` for that number, then gets the next top."""
    # Only a later MSFT message shows the loss (not the idle catch-up, which would fill
    # it while the log still has it).
    monkeypatch.setattr(engine_client, "MD_CHECK_SECONDS", 3600.0)
    target: list[int] = []
    lost = _drop(monkeypatch, lambda md: md.symbol == "MSFT" and md.md_seq in target)

    async def rest(c: EngineClient, account: str, side: str, price: int) -> int:
        reply = ack(await c.submit(account, "MSFT", side, "limit", 1, price=price))
        assert reply.order_id is not None
        return reply.order_id

    async def before(c: EngineClient) -> None:
        await rest(c, "gap-b", "buy", 1_000)
        # a post-only sell that would cross, refused: the last top announces no delta
        ack(await c.submit("gap-s", "MSFT", "sell", "limit", 1, price=1_000, post_only=True))

    _run(md_engine, before)
    counted = _gaps(client, "MSFT")
    start = _latest(md_engine, "MSFT")
    _caught_up(client.app.state.projection, "MSFT", start)  # type: ignore[attr-defined]
    with client.websocket_connect(f"{WS}/market/MSFT", headers=headers(make_key())) as ws:
        assert [m["md_seq"] for m in _book_messages(ws, lambda m: m["type"] == "top")] == [start]
        target.append(start + 1)
        _run(md_engine, lambda c: rest(c, "gap-b", "buy", 1_001))  # lost: top and delta

        async def flood(c: EngineClient) -> None:
            """GOOG's tops until the log no longer keeps MSFT's lost one: an order
            resting deep in a book of 20 levels a side, then its cancel (each a top of
            10 levels a side and a delta)."""
            for i in range(10):
                ack(await c.submit("gap-f", "GOOG", "buy", "limit", 5, price=500 + i))
                ack(await c.submit("gap-f", "GOOG", "sell", "limit", 5, price=600 + i))
            for _ in range(40):
                tops, covered = await c.replay_market_data("MSFT", start + 1, start + 1)
                if covered == start + 1 and not tops:
                    return
                for _ in range(250):
                    oid = ack(await c.submit("gap-f", "GOOG", "buy", "limit", 1, price=505))
                    ack(await c.cancel("gap-f", oid.order_id or 0))
            raise AssertionError("the log never let MSFT's lost top go")

        _run(md_engine, flood)
        _run(md_engine, lambda c: rest(c, "gap-b", "buy", 1_002))  # shows the loss
        got = _book_messages(ws, lambda m: m["type"] == "top")
        published, _ = _run(md_engine, lambda c: all_market_data(c, "MSFT"))

    assert [("TopOfBook", start + 1), ("BookDelta", start + 1)] == lost
    after = [md for md in published if type(md) is TopOfBook and md.md_seq > start]
    assert [md.md_seq for md in after] == [start + 2]  # the log holds the next, not it
    gap = {"type": "gap", "symbol": "MSFT", "from_md_seq": start + 1, "to_md_seq": start + 1}
    assert got == [gap, _as_message(after[0])]
    # counted once (one hole of one number), whatever the number of subscribers
    assert _gaps(client, "MSFT") == (counted[0] + 1, counted[1] + 1)
