"""Reading the engine's figures from its `/metrics`: the interface, read by several parts.

The engine exposes Prometheus text on its HTTP port. The operator (for
`TradingEngine.status`) and the terminal (its Monitoring page) both turn two successive
scrapes into orders per second and latency quantiles over the interval between them; the
names and the arithmetic live here, once. The arithmetic is Prometheus' own:
`rate()` of a counter and `histogram_quantile()` over bucket deltas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "ORDERS_TOTAL",
    "REQUEST_SECONDS",
    "Scrape",
    "histogram_quantile",
    "parse",
    "window",
]

ORDERS_TOTAL = "tickplane_engine_orders_total"
REQUEST_SECONDS = "tickplane_engine_request_seconds"

Buckets = tuple[tuple[float, float], ...]  # (upper bound, cumulative count), by bound


@dataclass(frozen=True)
class Scrape:
    """One scrape of the engine's counters: when, orders so far, the latency buckets."""

    at: float  # seconds, any clock both scrapes share
    orders: float
    buckets: Buckets


def parse(text: str, at: float) -> Scrape:
    """Orders so far (every outcome) and the request latency histogram's cumulative
    buckets (summed over labels), from one `/metrics` text."""
    orders = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == ORDERS_TOTAL:
                orders += s.value
            elif s.name == REQUEST_SECONDS + "_bucket":
                bound = float(s.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + s.value
    return Scrape(at, orders, tuple(sorted(buckets.items())))


def histogram_quantile(q: float, buckets: Buckets | list[tuple[float, float]]) -> float | None:
    """The q-quantile of a cumulative histogram, interpolated linearly inside the bucket
    holding the rank as Prometheus does; None with no observations."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower
            width = count - below
            return lower + (bound - lower) * ((rank - below) / width if width else 0.0)
        lower, below = bound, count
    return lower


def window(before: Scrape | None, now: Scrape) -> tuple[float, Buckets] | None:
    """Orders per second and the latency buckets of what happened between two scrapes;
    None for a first scrape, or when the engine restarted in between (counters reset)."""
    if before is None or now.at <= before.at or now.orders < before.orders:
        return None
    rate = (now.orders - before.orders) / (now.at - before.at)
    old = dict(before.buckets)
    return rate, tuple((b, max(c - old.get(b, 0.0), 0.0)) for b, c in now.buckets)
