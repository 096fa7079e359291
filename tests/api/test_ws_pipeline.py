"""`/api/v1/ws/orders` order entry pipelined: a client sends many frames without reading
and each frame is answered, whole, in one frame (frames in any order, `ref` says which);
an action that needs no engine is answered without waiting for earlier frames."""

from __future__ import annotations

import json
from typing import Any

import anyio
from fastapi.testclient import TestClient

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
