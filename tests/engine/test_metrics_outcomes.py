"""The engine's order counters by outcome, and its metrics list in the docs: every new
order is counted once in `tickplane_engine_orders_total{outcome}` (the Grafana "Orders
by outcome" panel), whichever check refused it, and every metric the engine registers is
named in docs/engine-service.md, "Metrics"."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.conftest import inprocess_config
from tickplane.core import wire
from tickplane.engine.metrics import EngineMetrics
from tickplane.engine.service import EngineService

PEER = b"\x00peer"  # no such peer: the ROUTER drops the replies, as for a gone client
DOCS = Path(__file__).resolve().parents[2] / "docs" / "engine-service.md"


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[EngineService]:
    service = EngineService(
        inprocess_config(tmp_path, "outcomes", risk={"default": {"max_order_qty": 5}})
    )
    service.open()
    yield service
    service.close()


def _samples(svc: EngineService, family: str, label: str) -> dict[str, float]:
    """A counter family's values by one label."""
    out: dict[str, float] = {}
    for fam in svc.metrics.registry.collect():
        if fam.name == family:
            for s in fam.samples:
                if s.name.endswith("_total"):
                    out[s.labels[label]] = s.value
    return out


def _new(req: int, qty: int = 1, symbol: str = "GOOG", account: str = "a") -> wire.NewOrder:
    return wire.NewOrder(req, account, symbol, "buy", "limit", qty, 100)


def test_every_new_order_outcome_is_counted(svc: EngineService) -> None:
    svc.process(
        [
            (PEER, wire.encode(_new(1))),  # accepted
            (PEER, wire.encode(_new(2, qty=10))),  # risk: max_order_qty
            (PEER, wire.encode(_new(3, symbol="MSFT"))),  # unknown_symbol
            (PEER, wire.encode(_new(4, account=""))),  # bad_account
            # in a Batch frame too: one accepted, one refused by risk
            (PEER, wire.encode(wire.Batch([_new(6), _new(7, qty=9)]))),
        ]
    )
    orders = _samples(svc, "tickplane_engine_orders", "outcome")
    assert orders == {"accepted": 2, "rejected": 4}
    refused = _samples(svc, "tickplane_engine_request_rejects", "reason")
    assert refused == {"max_order_qty": 2, "unknown_symbol": 1, "bad_account": 1}
    # a refused cancel is a request refused, not an order's outcome
    svc.process([(PEER, wire.encode(wire.CancelOrder(8, "a", 999)))])
    assert _samples(svc, "tickplane_engine_orders", "outcome") == orders


def _registered() -> set[str]:
    """The names the engine exposes: a counter's with its `_total`."""
    names = set()
    for fam in EngineMetrics("e").registry.collect():
        names.add(fam.name + "_total" if fam.type == "counter" else fam.name)
    return names


def _documented() -> set[str]:
    """The metric names in the docs' "Metrics" section (`_x` is `tickplane_engine_x`)."""
    text = DOCS.read_text()
    section = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"`(tickplane_engine)?(_[a-z_]+)", section)
    return {"tickplane_engine" + name for _, name in found}


def test_every_metric_is_documented() -> None:
    registered, documented = _registered(), _documented()
    assert registered - documented == set(), "registered, not in the docs"
    assert documented - registered == set(), "in the docs, not registered"
