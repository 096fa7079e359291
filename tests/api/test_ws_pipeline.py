"""`/api/v1/ws/orders` order entry pipelined: a client sends many frames without reading
and each frame is answered, whole, in one frame (frames in any order, `ref` says which);
an action that needs no engine is answered without waiting for earlier frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anyio
from fastapi.testclient import TestClient

from tickplane.api.deps import Caller
from tickplane.api.routes import ws as ws_route
from tickplane.api.settings import GatewaySettings
from tickplane.core import wire
from tickplane.core.events import OrderRejected

H = dict[str, str]
FRAMES = 12
PER_FRAME = 25
ORDER = {"symbol": "GOOG", "side": "buy", "type": "limit", "qty": 1, "limit_price": 1}


def _frame(ws: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The next server frame (a JSON array), or an AssertionError after `timeout` s."""

    async def take() -> Any:
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()

    try:
        message = ws.portal.call(take)
    except TimeoutError:
        raise AssertionError(f"no frame within {timeout} s") from None
    ws._raise_on_close(message)
    out: list[dict[str, Any]] = json.loads(message["text"])
    return out


def test_frames_sent_without_reading_are_each_answered_whole(client: TestClient, trader: H) -> None:
    with client.websocket_connect("/api/v1/ws/orders", headers=trader) as ws:
        assert _frame(ws)[0]["type"] == "authenticated"
        for f in range(FRAMES):
            ws.send_text(
                json.dumps(
                    [
                        {"action": "submit", "ref": f"{f}-{i}", **ORDER, "time_in_force": "ioc"}
                        for i in range(PER_FRAME)
                    ]
                )
            )
        ws.send_text(json.dumps({"action": "ping", "ref": "p"}))
        ws.send_text(json.dumps({"action": "submit", "ref": "bad", "symbol": "GOOG"}))
        acks: dict[str, dict[str, Any]] = {}
        singles: dict[str, dict[str, Any]] = {}
        while len(acks) < FRAMES * PER_FRAME or len(singles) < 2:
            answers = [m for m in _frame(ws) if m["type"] in ("ack", "error", "pong")]
            refs = [m["ref"] for m in answers]
            for m in answers:
                if m["ref"] in ("p", "bad"):
                    singles[m["ref"]] = m
                else:
                    assert m["type"] == "ack", m
                    assert m["ref"] not in acks, m
                    acks[m["ref"]] = m
            # a frame's answers come together and in its order
            for f in {r.split("-")[0] for r in refs if r not in ("p", "bad")}:
                mine = [r for r in refs if r.split("-")[0] == f]
                assert mine == [f"{f}-{i}" for i in range(PER_FRAME)], refs
        assert singles["p"]["type"] == "pong"
        assert (singles["bad"]["type"], singles["bad"]["reason"]) == ("error", "invalid_request")
        ids = [a["order_id"] for a in acks.values()]
        assert len(set(ids)) == FRAMES * PER_FRAME and all(isinstance(i, int) for i in ids)
        assert all(a["action"] == "submit" and not a["duplicate"] for a in acks.values())


def _head(ack: wire.Ack) -> wire.ReplyHead:
    """`ack` as WebSocket entry gets it (`EngineClient.send_head`)."""
    return wire.decode_reply_heads(wire.encode(ack))[0]


def test_a_frame_whose_last_reply_comes_first_waits_for_the_others() -> None:
    """Replies normally come in the order sent (the frame is answered when its last is
    in); when the last comes first (a send that had to wait), the frame waits for the
    rest and still answers whole, in its order. Replies are heads (events left
    encoded): an order its events say was refused is answered as an error."""

    class Projection:
        def __init__(self) -> None:
            self.written: list[int] = []

        def note_write(self, account: str, last_seq: int) -> None:
            self.written.append(last_seq)

    async def main() -> list[list[dict[str, Any]]]:
        loop = asyncio.get_running_loop()
        outbox = ws_route._Outbox(10)
        caller = Caller("acct", "key", "trader")
        projection = Projection()
        frames = ws_route._Frames(caller, outbox, projection, GatewaySettings())  # type: ignore[arg-type]
        replies = [loop.create_future() for _ in range(4)]
        started: list[Any] = [("a", "submit", replies[0]), {"type": "pong", "ref": "p"}]
        started += [("b", "submit", replies[1]), ("r", "submit", replies[3])]
        started += [("c", "cancel", replies[2])]
        frames.add(started, replies[2])
        assert frames.actions == 5
        # a venue refused the order after its request was taken: in the Ack's events
        refused = OrderRejected(8, 1, 40, "acct", "venue_rejected")
        replies[3].set_result(_head(wire.Ack(4, order_id=40, events=[refused], last_seq=8)))
        replies[2].set_result(_head(wire.Ack(3, order_id=30, last_seq=9)))
        replies[1].set_result(wire.Reject(2, "unknown_order", "no such order"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not outbox.items  # the first reply is not in
        replies[0].set_result(_head(wire.Ack(1, order_id=10, last_seq=7)))
        answers = json.loads(ws_route._json.encode(await outbox.take()))
        assert projection.written == [7, 9]  # read-your-writes noted for each ack
        return [answers, [{"actions": frames.actions}]]

    answers, [left] = asyncio.run(main())
    assert [(m["type"], m["ref"]) for m in answers[0]] == [
        ("ack", "a"), ("pong", "p"), ("error", "b"), ("error", "r"), ("ack", "c"),
    ]  # fmt: skip
    assert answers[0][2]["reason"] == "unknown_order"
    assert answers[0][3]["reason"] == "venue_rejected"
    assert answers[0][3]["message"] == "order 40: venue_rejected"
    assert left == {"actions": 0}


def test_a_frame_of_submits_in_other_shapes_gets_the_same_answers(
    client: TestClient, trader: H
) -> None:
    """Plain submits take the fast path; a frame with any other shape (a numeric
    string, the `price` alias, an order whose prices do not fit its type, an unknown
    field) is answered action by action as `OrderCreate` says, in its order."""
    plain = {"action": "submit", **ORDER, "time_in_force": "ioc"}
    frame = [
        {**plain, "ref": "plain"},
        {**plain, "ref": "string", "qty": "2"},
        {**{k: v for k, v in plain.items() if k != "limit_price"}, "ref": "alias", "price": 1},
        {**plain, "ref": "no-price", "limit_price": None},
        {**plain, "ref": "unknown", "colour": "red"},
    ]
    with client.websocket_connect("/api/v1/ws/orders", headers=trader) as ws:
        assert _frame(ws)[0]["type"] == "authenticated"
        ws.send_text(json.dumps([{**plain, "ref": i} for i in range(3)]))
        fast = [m for m in _frame(ws) if m["type"] in ("ack", "error")]
        while not fast:
            fast = [m for m in _frame(ws) if m["type"] in ("ack", "error")]
        assert [(m["type"], m["ref"]) for m in fast] == [("ack", 0), ("ack", 1), ("ack", 2)]
        ws.send_text(json.dumps(frame))
        answers: list[dict[str, Any]] = []
        while not answers:
            answers = [m for m in _frame(ws) if m["type"] in ("ack", "error")]
    assert [(m["type"], m["ref"]) for m in answers] == [
        ("ack", "plain"), ("ack", "string"), ("ack", "alias"), ("error", "no-price"),
        ("error", "unknown"),
    ]  # fmt: skip
    assert answers[3]["message"] == "a limit order needs limit_price"
    assert all(m["reason"] == "invalid_request" for m in answers[3:])
