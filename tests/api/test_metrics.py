"""The gateway's metrics: on their own port (never the API's), labelled by route
template, with the projection's position and the WebSocket clients."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.services.servers import free_port
from tickplane.api import keys
from tickplane.api.main import create_app
from tickplane.api.settings import GatewaySettings

H = dict[str, str]


def test_metrics_on_their_own_port(
    settings: GatewaySettings, make_key: Callable[..., keys.NewKey], headers: Callable[..., H]
) -> None:
    port = free_port()
    h = headers(make_key())
    with TestClient(create_app(settings.model_copy(update={"metrics_port": port}))) as c:
        ioc = {"symbol": "GOOG", "side": "buy", "qty": 1, "limit_price": 1, "time_in_force": "ioc"}
        assert c.post("/api/v1/orders", json=ioc, headers=h).status_code == 201
        for oid in (123456789, 987654321):
            assert c.get(f"/api/v1/orders/{oid}", headers=h).status_code == 404
        assert c.get("/api/v1/account", headers=h).status_code == 200
        assert c.get("/api/v1/account").status_code == 401
        assert c.get("/metrics").status_code == 404  # not on the API port
        with c.websocket_connect("/api/v1/ws/orders", headers=h) as ws:
            ws.receive_text()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
    lines = {
        line.split(" ")[0]: line.split(" ")[1] for line in text.splitlines() if line[:1] != "#"
    }

    def value(name: str, **labels: Any) -> float:
        for key, v in lines.items():
            if key.startswith(name + "{") and all(f'{k}="{x}"' in key for k, x in labels.items()):
                return float(v)
        raise AssertionError(f"no {name} {labels}")

    route = "/api/v1/orders/{order_id}"
    assert value("tickplane_gateway_requests_total", route=route, status="404") == 2
    assert value("tickplane_gateway_requests_total", route="/api/v1/account", status="401") == 1
    assert value("tickplane_gateway_request_duration_seconds_count", route=route) == 2
    assert not any("123456789" in key for key in lines)  # ids never become labels
    assert value("tickplane_gateway_websocket_clients", stream="orders") == 1
    assert float(lines["tickplane_gateway_projection_seq"]) > 0
    assert float(lines["tickplane_gateway_projection_lag_events"]) >= 0
