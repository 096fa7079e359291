"""The engine's per-request latency metrics: `tickplane_engine_request_seconds` counts
every request, and one request a turn is timed stage by stage
(`tickplane_engine_request_stage_seconds`, docs/engine-service.md "Metrics")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.conftest import inprocess_config
from tickplane.core import wire
from tickplane.engine.service import EngineService

STAGES = ("decode", "risk", "journal", "match", "ack")
PEER = b"\x00peer"  # no such peer: the ROUTER drops the replies, as for a gone client


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[EngineService]:
    service = EngineService(inprocess_config(tmp_path, "latency"))
    service.open()
    yield service
    service.close()


def _histograms(svc: EngineService) -> dict[tuple[str, str], float]:
    """(sample name, stage label or "") -> value, for the two latency families."""
    out: dict[tuple[str, str], float] = {}
    for family in svc.metrics.registry.collect():
        if family.name in (
            "tickplane_engine_request_seconds",
            "tickplane_engine_request_stage_seconds",
        ):
            for s in family.samples:
                if s.name.endswith(("_count", "_sum")):
                    out[(s.name, s.labels.get("stage", ""))] = s.value
    return out


def _count(h: dict[tuple[str, str], float], stage: str = "") -> float:
    name = "request_stage_seconds" if stage else "request_seconds"
    return h.get((f"tickplane_engine_{name}_count", stage), 0.0)


def _sum(h: dict[tuple[str, str], float], stage: str = "") -> float:
    name = "request_stage_seconds" if stage else "request_seconds"
    return h.get((f"tickplane_engine_{name}_sum", stage), 0.0)


def _order(req: int, symbol: str = "GOOG") -> tuple[bytes, bytes]:
    return PEER, wire.encode(wire.NewOrder(req, "a", symbol, "buy", "limit", 1, 100))


def test_a_lone_request_is_timed_stage_by_stage(svc: EngineService) -> None:
    svc.process([_order(1)])
    h = _histograms(svc)
    assert _count(h) == 1
    for stage in STAGES:
        assert _count(h, stage) == 1, stage
        assert _sum(h, stage) > 0, stage
    # The stages are parts of the request's time in the engine, never more than it.
    assert sum(_sum(h, stage) for stage in STAGES) <= _sum(h)


def test_every_request_counts_once_and_one_a_turn_is_staged(svc: EngineService) -> None:
    svc.process([_order(1), _order(2), _order(3)])
    svc.process([_order(4), _order(5)])
    h = _histograms(svc)
    assert _count(h) == 5  # each request, not each batch
    assert all(_count(h, stage) == 2 for stage in STAGES)


def test_a_refused_first_request_gives_no_stage_sample(svc: EngineService) -> None:
    # Its stages never ran, and the next request's would start at the wrong time.
    svc.process([_order(1, symbol="NOPE"), _order(2)])
    h = _histograms(svc)
    assert _count(h) == 2
    assert all(_count(h, stage) == 0 for stage in STAGES)
    svc.process([_order(3)])
    assert all(_count(_histograms(svc), stage) == 1 for stage in STAGES)


def test_the_first_request_of_a_batch_frame_is_staged(svc: EngineService) -> None:
    frame = wire.encode(
        wire.Batch([wire.NewOrder(i, "a", "GOOG", "buy", "limit", 1, 100) for i in (1, 2, 3)])
    )
    svc.process([(PEER, frame)])
    h = _histograms(svc)
    assert _count(h) == 1  # one frame, one reply (a `Replies`)
    assert all(_count(h, stage) == 1 for stage in STAGES)
    assert svc.state.seq == 3
