"""Native WebSockets against a real engine: auth (headers or a first message), order
entry and updates on /ws/orders, market data on /ws/market, and a client that stops
reading dropped without slowing another.

The module runs its own engine and gateway (not the session's shared ones), so no other
test's resting order can take a trade these tests wait for; within the module each test
trades its own symbol and leaves nothing resting, and every read has a deadline."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import uvicorn
import websockets
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.engine.conftest import EngineProcess, engine_settings
from tickplane.api import keys
from tickplane.api.main import create_app
from tickplane.api.routes.ws import SLOW_CLIENT
from tickplane.api.settings import GatewaySettings

H = dict[str, str]
WS = "/api/v1/ws"


@pytest.fixture(scope="module")
def ws_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """This module's own engine: GOOG (idempotency, the slow client), AAPL (order entry
    and updates), MSFT (market data)."""
    work: Path = tmp_path_factory.mktemp("ws-engine")
    eng = EngineProcess(
        work, engine_settings(work, "ws-tests", ("GOOG", "AAPL", "MSFT"), fsync="none")
    )
    eng.start()
    try:
        yield eng
    finally:
        if eng.stop() != 0:
            eng.kill()


@pytest.fixture(scope="module")
def settings(ws_engine: EngineProcess, database_url: str) -> GatewaySettings:
    """The session's gateway settings, over this module's engine."""
    return GatewaySettings(
        engine_order_entry=ws_engine.order_entry,
        engine_events=ws_engine.events,
        engine_timeout=5.0,
        database_url=database_url,
        rate_limit_per_second=0,
        metrics_port=0,
    )


@pytest.fixture(scope="module")
def client(settings: GatewaySettings) -> Iterator[TestClient]:
    """A gateway over this module's engine (keys in the session's database)."""
    with TestClient(create_app(settings)) as c:
        yield c


# Per socket (weakly: an id() is reused once a test's socket is gone, and its leftovers
# would be read by the next test's socket).
_pending: weakref.WeakKeyDictionary[Any, list[dict[str, Any]]] = weakref.WeakKeyDictionary()


def _receive_text(ws: Any, timeout: float) -> str:
    """The next text frame, or an AssertionError after `timeout` seconds.
    Starlette's test session has no receive timeout: this awaits its receive stream
    under a deadline on the session's own portal (what `receive_text` does, bounded)."""

    async def take() -> Any:
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()

    try:
        message = ws.portal.call(take)
    except TimeoutError:
        raise AssertionError(f"no frame within {timeout} s") from None
    ws._raise_on_close(message)
    return str(message["text"])


def _recv_until(
    ws: Any, pred: Callable[[dict[str, Any]], bool], timeout: float = 10.0
) -> dict[str, Any]:
    """The first message that matches (taken out), reading frames (JSON arrays of
    messages) as needed until `timeout` seconds passed; the others stay for later."""
    queue = _pending.setdefault(ws, [])
    deadline = time.monotonic() + timeout
    while True:
        for i, msg in enumerate(queue):
            if pred(msg):
                return queue.pop(i)
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no such message within {timeout} s; got {queue[-20:]}")
        queue.extend(json.loads(_receive_text(ws, left)))


def test_orders_stream_entry_and_updates(
    client: TestClient, make_key: Callable[..., keys.NewKey], headers: Callable[..., H]
) -> None:
    key = make_key()
    price = 300_000 + (uuid.uuid4().int % 10_000) * 2
    with client.websocket_connect(f"{WS}/orders", headers=headers(key)) as ws:
        first = _recv_until(ws, lambda m: True)
        assert first == {"type": "authenticated", "account": key.key.account}
        ws.send_text(
            json.dumps(
                {
                    "action": "submit",
                    "ref": "a",
                    "symbol": "AAPL",
                    "side": "sell",
                    "qty": 2,
                    "limit_price": price,
                }
            )
        )
        ack = _recv_until(ws, lambda m: m.get("ref") == "a")
        assert ack["type"] == "ack", ack
        assert ack["action"] == "submit" and ack["order_id"] > 0
        oid = ack["order_id"]
        new = _recv_until(ws, lambda m: m["type"] == "order")
        assert (new["event"], new["order"]["id"], new["order"]["status"]) == ("new", oid, "new")
        # another account takes 1: our fill arrives on the stream
        taker = headers(make_key())
        body = {"symbol": "AAPL", "side": "buy", "type": "limit", "qty": 1, "limit_price": price}
        assert client.post("/api/v1/orders", json=body, headers=taker).status_code == 201
        fill = _recv_until(ws, lambda m: m["type"] == "order")
        assert fill["event"] == "partial_fill"
        assert (fill["execution"]["qty"], fill["execution"]["liquidity"]) == (1, "maker")
        pos = _recv_until(ws, lambda m: m["type"] == "position")
        assert pos["position"]["qty"] == -1
        # a batch: replace, a bad action, cancel; answered in one frame, in order
        ws.send_text(
            json.dumps(
                [
                    {"action": "replace", "ref": "r", "order_id": oid, "qty": 5},
                    {"action": "submit", "ref": "bad", "symbol": "AAPL", "side": "up", "qty": 1},
                    {"action": "cancel", "ref": "c", "order_id": oid},
                ]
            )
        )
        answers = _recv_until(ws, lambda m: m.get("ref") == "r")
        assert answers["type"] == "ack"
        bad = _recv_until(ws, lambda m: m.get("ref") == "bad")
        assert bad["type"] == "error" and bad["reason"] == "invalid_request"
        canceled = _recv_until(ws, lambda m: m["type"] == "order" and m["event"] == "canceled")
        assert canceled["order"]["id"] == oid
        # errors keep the engine's reason; another account's order does not exist
        ws.send_text(json.dumps({"action": "cancel", "ref": "x", "order_id": oid}))
        assert _recv_until(ws, lambda m: m.get("ref") == "x")["reason"] == "unknown_order"
        ws.send_text("not json")
        assert _recv_until(ws, lambda m: m["type"] == "error")["reason"] == "invalid_request"
        # JSON nested past the decoder's recursion limit: the same, and the socket lives on
        ws.send_text("[" * 100_000 + "]" * 100_000)
        assert _recv_until(ws, lambda m: m["type"] == "error")["reason"] == "invalid_request"
        ws.send_text(json.dumps({"action": "cancel", "ref": "y", "order_id": oid}))
        assert _recv_until(ws, lambda m: m.get("ref") == "y")["reason"] == "unknown_order"
        ws.send_text(json.dumps({"action": "ping", "ref": 7}))
        assert _recv_until(ws, lambda m: m.get("ref") == 7)["type"] == "pong"


def test_a_trailing_stops_trail_is_replaced_over_the_socket(client: TestClient, trader: H) -> None:
    stop = {"symbol": "GOOG", "side": "sell", "type": "trailing_stop", "qty": 1, "trail_price": 5}
    with client.websocket_connect(f"{WS}/orders", headers=trader) as ws:
        ws.send_text(json.dumps({"action": "submit", "ref": "t", **stop}))
        oid = _recv_until(ws, lambda m: m.get("ref") == "t")["order_id"]
        change = {"action": "replace", "order_id": oid}
        ws.send_text(json.dumps({**change, "ref": "r", "trail_price": 9}))
        assert _recv_until(ws, lambda m: m.get("ref") == "r")["type"] == "ack"
        update = _recv_until(ws, lambda m: m["type"] == "order" and m["event"] == "replaced")
        assert (update["order"]["id"], update["order"]["trail_price"]) == (oid, 9)
        ws.send_text(json.dumps({**change, "ref": "p", "trail_percent": 2}))  # not its kind
        assert _recv_until(ws, lambda m: m.get("ref") == "p")["reason"] == "bad_replace"
        ws.send_text(json.dumps({**change, "ref": "n"}))  # nothing to replace
        nothing = _recv_until(ws, lambda m: m.get("ref") == "n")
        assert (nothing["type"], nothing["reason"]) == ("error", "invalid_request")
    client.delete("/api/v1/orders", headers=trader)


def test_idempotent_submission_over_the_socket(client: TestClient, trader: H) -> None:
    coid = "ws-" + uuid.uuid4().hex
    order = {"action": "submit", "symbol": "GOOG", "side": "buy", "qty": 1, "limit_price": 5}
    with client.websocket_connect(f"{WS}/orders", headers=trader) as ws:
        ws.send_text(json.dumps([{**order, "ref": i, "client_order_id": coid} for i in range(3)]))
        acks = [_recv_until(ws, lambda m, i=i: m.get("ref") == i) for i in range(3)]
        assert len({a["order_id"] for a in acks}) == 1
        assert sorted(a["duplicate"] for a in acks) == [False, True, True]
        ws.send_text(json.dumps({**order, "ref": "d", "qty": 2, "client_order_id": coid}))
        assert _recv_until(ws, lambda m: m.get("ref") == "d")["reason"] == "client_order_id_reused"
    client.delete("/api/v1/orders", headers=trader)


def test_browser_auth_by_first_message(
    client: TestClient, make_key: Callable[..., keys.NewKey]
) -> None:
    key = make_key()
    with client.websocket_connect(f"{WS}/orders") as ws:
        ws.send_text(json.dumps({"action": "auth", "key_id": key.key.key_id, "secret": key.secret}))
        assert _recv_until(ws, lambda m: True)["type"] == "authenticated"


@pytest.mark.parametrize(
    "first",
    [
        {"action": "auth", "key_id": "TPNOSUCH", "secret": "x"},
        {"action": "submit"},
        {"action": "auth", "key_id": 1, "secret": None},
        "not json",
    ],
)
@pytest.mark.parametrize("path", ["/orders", "/market/GOOG"])
def test_bad_auth_is_closed_with_1008(client: TestClient, first: Any, path: str) -> None:
    with client.websocket_connect(WS + path) as ws:
        ws.send_text(first if isinstance(first, str) else json.dumps(first))
        with pytest.raises(WebSocketDisconnect) as closed:
            _receive_text(ws, 10)
        assert closed.value.code == 1008 and closed.value.reason


def test_bad_and_revoked_header_keys_are_closed(
    client: TestClient, make_key: Callable[..., keys.NewKey], run: Callable[..., Any]
) -> None:
    key, revoked = make_key(), make_key()
    run(client.app.state.keys.revoke, revoked.key.key_id)  # type: ignore[attr-defined]
    wrong = {"APCA-API-KEY-ID": key.key.key_id, "APCA-API-SECRET-KEY": "nope"}
    gone = {"APCA-API-KEY-ID": revoked.key.key_id, "APCA-API-SECRET-KEY": revoked.secret}
    for path in ("/orders", "/market/GOOG"):
        for h in (wrong, gone):
            with client.websocket_connect(WS + path, headers=h) as ws:
                with pytest.raises(WebSocketDisconnect) as closed:
                    _receive_text(ws, 10)
                assert closed.value.code == 1008 and "revoked" in closed.value.reason


def test_market_stream(client: TestClient, trader: H) -> None:
    price = 400_000 + (uuid.uuid4().int % 10_000) * 2
    with client.websocket_connect(f"{WS}/market/MSFT", headers=trader) as ws:
        sub = _recv_until(ws, lambda m: m["type"] == "subscribed")
        assert sub == {"type": "subscribed", "symbol": "MSFT"}
        snap = _recv_until(ws, lambda m: m["type"] == "top")
        assert snap["symbol"] == "MSFT" and "bids" in snap
        body = {"symbol": "MSFT", "side": "sell", "type": "limit", "qty": 1, "limit_price": price}
        assert client.post("/api/v1/orders", json=body, headers=trader).status_code == 201
        buy = {**body, "side": "buy"}
        assert client.post("/api/v1/orders", json=buy, headers=trader).status_code == 201
        trade = _recv_until(ws, lambda m: m["type"] == "trade" and m["price"] == price)
        assert trade["qty"] == 1 and "account" not in json.dumps(trade)
        # the first top after the trade shows it (earlier ones may still be queued)
        top = _recv_until(ws, lambda m: m["type"] == "top" and m["last_price"] is not None)
        assert top["symbol"] == "MSFT" and top["last_price"] == price
    with client.websocket_connect(f"{WS}/market/NOPE", headers=trader) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            _receive_text(ws, 10)
        assert closed.value.code == 1008 and "unknown_symbol" in closed.value.reason


# -- a real server: a client that stops reading ------------------------------------------------


@pytest.fixture
def served(settings: GatewaySettings) -> Iterator[tuple[str, Any]]:
    """The gateway under uvicorn in a thread (small WebSocket queues, and small socket
    send buffers so that a client that stops reading fills them quickly), its address
    and app."""
    app = create_app(settings.model_copy(update={"ws_queue_size": 50}))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # accepted sockets inherit it
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", ws="auto")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "gateway did not start"
        time.sleep(0.02)  # another thread's startup: nothing to await
    try:
        yield f"127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


class RawSocketClient:
    """A WebSocket client on a bare TCP socket with a tiny receive buffer, that reads
    nothing after the handshake until told to (what a stalled client looks like)."""

    def __init__(self, host: str, path: str, headers: H) -> None:
        name, port = host.split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
        self.sock.connect((name, int(port)))
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        key = base64.b64encode(uuid.uuid4().bytes).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n".encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(1)  # byte by byte: read nothing past the handshake
        assert self.buf.startswith(b"HTTP/1.1 101"), self.buf

    def close_frame(self, timeout: float) -> tuple[int, str]:
        """Read everything until the server's close frame: its code and reason."""
        self.sock.settimeout(timeout)
        data = b""
        while True:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise AssertionError("connection ended without a close frame")
            data += chunk
            while len(data) >= 2:
                opcode, n, at = data[0] & 0x0F, data[1] & 0x7F, 2
                if n == 126:
                    n, at = int.from_bytes(data[2:4], "big"), 4
                elif n == 127:
                    n, at = int.from_bytes(data[2:10], "big"), 10
                if len(data) < at + n:
                    break
                payload, data = data[at : at + n], data[at + n :]
                if opcode == 0x8:
                    return int.from_bytes(payload[:2], "big"), payload[2:].decode()

    def close(self) -> None:
        self.sock.close()


def test_a_client_that_stops_reading_is_dropped_and_never_slows_another(
    served: tuple[str, Any], make_key: Callable[..., keys.NewKey], headers: Callable[..., H]
) -> None:
    host, app = served
    h = headers(make_key())
    slow = RawSocketClient(host, f"{WS}/orders", h)

    async def main() -> None:
        fast = await websockets.connect(f"ws://{host}{WS}/orders", additional_headers=h)
        assert json.loads(await fast.recv())[0]["type"] == "authenticated"
        # the fast client makes its account's updates in rounds (each under the queue
        # bound) and reads them all; the slow one, same account, gets them too, until the
        # socket buffers are full and its queue overflows
        dropped = app.state.metrics.ws_dropped.labels("orders")
        rounds: list[float] = []
        deadline = time.monotonic() + 60
        while dropped._value.get() < 1:
            assert time.monotonic() < deadline, f"not dropped after {len(rounds)} rounds"
            start = time.monotonic()
            batch = [
                {
                    "action": "submit",
                    "ref": i,
                    "symbol": "GOOG",
                    "side": "buy",
                    "qty": 1,
                    "limit_price": 3,
                    "time_in_force": "ioc",
                }
                for i in range(10)
            ]
            await fast.send(json.dumps(batch))
            acks = got = 0
            while acks < 10 or got < 20:  # an ack, a "new" and a "canceled" per order
                for m in json.loads(await asyncio.wait_for(fast.recv(), 10)):
                    if m["type"] == "ack":
                        acks += 1
                    elif m["type"] == "order":
                        got += 1
            rounds.append(time.monotonic() - start)
        # the fast client was never held up, and is still served
        assert max(rounds) < 1.0, max(rounds)
        await fast.send(json.dumps({"action": "ping", "ref": "p"}))
        assert json.loads(await asyncio.wait_for(fast.recv(), 5))[-1]["type"] == "pong"
        await fast.close()

    try:
        asyncio.run(main())
        code, reason = slow.close_frame(10)
        assert code == SLOW_CLIENT and reason.startswith("slow client"), (code, reason)
    finally:
        slow.close()


def test_ws_needs_a_key_on_a_real_server(served: tuple[str, Any]) -> None:
    host, _ = served

    async def main() -> None:
        async with websockets.connect(f"ws://{host}{WS}/orders") as ws:
            await ws.send(json.dumps({"action": "auth", "key_id": "TPX", "secret": "y"}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008

    asyncio.run(main())
