"""schemathesis over the `/v2` OpenAPI: whatever it sends, the answer is never a 5xx,
and every error is in Alpaca's shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from .conftest import Gateway, Trader, trader_maker


@pytest.fixture(scope="session")
def fuzzer(make_trader: Callable[[], Trader]) -> Trader:
    return make_trader()


@pytest.fixture(scope="session")
def md_fuzzer(md_gateway: Gateway) -> Trader:
    return trader_maker(md_gateway)()


@pytest.fixture
def v2_schema(gateway: Gateway) -> Any:
    """The gateway's OpenAPI, its `/v2` operations only (the native API has its own)."""
    spec = requests.get(gateway.url + "/openapi.json", timeout=10).json()
    spec["paths"] = {p: op for p, op in spec["paths"].items() if p.startswith("/v2/")}
    return schemathesis.openapi.from_dict(spec)


@pytest.fixture
def md_schema(md_gateway: Gateway) -> Any:
    """The market-data operations of a gateway with the recorder's PostgreSQL (its
    queries see whatever the fuzzer sends that gets past validation)."""
    spec = requests.get(md_gateway.url + "/openapi.json", timeout=10).json()
    spec["paths"] = {p: op for p, op in spec["paths"].items() if p.startswith("/v2/stocks")}
    return schemathesis.openapi.from_dict(spec)


schema = schemathesis.pytest.from_fixture("v2_schema")
md = schemathesis.pytest.from_fixture("md_schema")


FUZZ = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def check(case: Any, gateway: Gateway, trader: Trader) -> None:
    """No 5xx; every error `{code, message}`."""
    response = case.call(base_url=gateway.url, headers=trader.headers, timeout=10)
    where = (case.method, case.formatted_path, response.text)
    assert response.status_code < 500, where
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"code", "message"}, where
        assert isinstance(body["code"], int) and body["message"], where


@schema.parametrize()
@FUZZ
def test_v2_never_answers_5xx(case: Any, fuzzer: Trader, gateway: Gateway) -> None:
    check(case, gateway, fuzzer)


@md.parametrize()
@FUZZ
def test_market_data_never_answers_5xx(case: Any, md_fuzzer: Trader, md_gateway: Gateway) -> None:
    check(case, md_gateway, md_fuzzer)
