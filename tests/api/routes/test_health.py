"""`/api/v1/health` and `/api/v1/ready`."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_health_needs_no_key(client: TestClient) -> None:
    r = client.get("/api/v1/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_ready_with_engine_and_database(client: TestClient, trader: dict[str, str]) -> None:
    r = client.get("/api/v1/ready", headers=trader)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "engine": "ok", "database": "ok"}
    assert client.get("/api/v1/ready").status_code == 401


def test_openapi_documents_routes_and_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/api/v1/orders", "/api/v1/orders/{order_id}", "/api/v1/book/{symbol}"):
        assert path in paths
    assert spec["components"]["schemas"]["OrderCreate"]["examples"]
    assert "KeyId" in spec["components"]["securitySchemes"]
