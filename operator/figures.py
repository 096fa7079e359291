"""The engine's live figures for `TradingEngine.status`: read from its HTTP port.

`/status` gives the CPUs the engine may use, the one its hot loop is pinned to, and its
last sequence number; `/metrics` gives order counts and the request latency histogram,
from which two successive scrapes make orders per second and a p99 over the interval.
"""

from __future__ import annotations

import json
import math
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["EngineFigures", "Sample", "parse_metrics", "scrape", "strategy_pnl", "window_figures"]

ORDERS = "tickplane_engine_orders"
LATENCY = "tickplane_engine_request_seconds"


@dataclass(frozen=True)
class Sample:
    """One scrape of the engine's counters."""

    at: float  # time.monotonic()
    orders: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count)


@dataclass(frozen=True)
class EngineFigures:
    """What the status shows of a running engine."""

    cpus: list[int]
    pinned_cpu: int | None
    last_sequence: int | None
    orders_per_second: float | None
    p99_latency_seconds: float | None


def parse_metrics(text: str, at: float) -> Sample:
    """Orders so far and the latency histogram's cumulative buckets (summed over labels)."""
    orders = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == ORDERS:
            orders += sum(s.value for s in family.samples if s.name.endswith("_total"))
        elif family.name == LATENCY:
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    le = float(s.labels["le"])
                    buckets[le] = buckets.get(le, 0.0) + s.value
    return Sample(at, orders, tuple(sorted(buckets.items())))


def _quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus' histogram_quantile: linear within the bucket holding the rank."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = upper, count
    return lower


def window_figures(before: Sample | None, now: Sample) -> tuple[float | None, float | None]:
    """(orders per second, p99 seconds) between two scrapes; None without a previous one."""
    if before is None or now.at <= before.at or now.orders < before.orders:
        return None, None  # first scrape, or the engine restarted (counters reset)
    rate = (now.orders - before.orders) / (now.at - before.at)
    old = dict(before.buckets)
    delta = [(le, count - old.get(le, 0.0)) for le, count in now.buckets]
    return rate, _quantile(0.99, delta)


def _get(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        body: bytes = r.read()
        return body


def scrape(
    base_url: str, before: Sample | None, *, timeout: float = 2.0
) -> tuple[EngineFigures, Sample]:
    """Read `/status` and `/metrics`; raise OSError (or ValueError) when unreachable."""
    status: dict[str, Any] = json.loads(_get(f"{base_url}/status", timeout))
    sample = parse_metrics(_get(f"{base_url}/metrics", timeout).decode(), time.monotonic())
    rate, p99 = window_figures(before, sample)
    figures = EngineFigures(
        cpus=[int(c) for c in status.get("cpus") or []],
        pinned_cpu=status.get("pinned_cpu"),
        last_sequence=status.get("last_seq"),
        orders_per_second=None if rate is None else round(rate, 3),
        p99_latency_seconds=p99,
    )
    return figures, sample


STRATEGY_PNL = "tickplane_strategy_pnl"


def strategy_pnl(metrics_url: str, *, timeout: float = 2.0) -> float | None:
    """A strategy runtime's P&L (ticks x lots) from its `/metrics`; None if it has none."""
    text = _get(metrics_url, timeout).decode()
    values = [
        s.value
        for family in text_string_to_metric_families(text)
        if family.name == STRATEGY_PNL
        for s in family.samples
    ]
    return sum(values) if values else None
