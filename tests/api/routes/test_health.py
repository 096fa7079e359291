"""`/api/v1/health`, `/api/v1/ready` and the OpenAPI document."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_health_needs_no_key(client: TestClient) -> None:
    r = client.get("/api/v1/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_ready_needs_no_key_and_reveals_only_the_status(client: TestClient) -> None:
    r = client.get("/api/v1/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready"}


def test_openapi_documents_routes_and_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/v1/orders",
        "/api/v1/orders/{order_id}",
        "/api/v1/orders/by-client-id/{client_order_id}",
        "/api/v1/executions",
        "/api/v1/positions",
        "/api/v1/account",
        "/api/v1/symbols",
        "/api/v1/book/{symbol}",
        "/api/v1/trades/{symbol}",
        "/api/v1/admin/accounts/{account}/kill",
    ):
        assert path in paths, path
    # (a name the Alpaca-compatible API shares is qualified by its module)
    schemas = {
        name.removeprefix("tickplane__api__schemas__"): schema
        for name, schema in spec["components"]["schemas"].items()
    }
    for name in ("OrderCreate", "OrderPublic", "AccountPublic", "PositionPublic"):
        assert schemas[name]["examples"], name
    assert "KeyId" in spec["components"]["securitySchemes"]
