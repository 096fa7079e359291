"""The engine's live figures for `TradingEngine.status`: read from its HTTP port.

`/status` gives the CPUs the engine may use, the one its hot loop is pinned to, and its
last sequence number; `/metrics` gives order counts and the request latency histogram,
from which two successive scrapes make orders per second and a p99 over the interval.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tickplane.core.engine_metrics import Scrape, histogram_quantile, parse, window

__all__ = ["EngineFigures", "scrape", "strategy_pnl", "window_figures"]


@dataclass(frozen=True)
class EngineFigures:
    """What the status shows of a running engine."""

    cpus: list[int]
    pinned_cpu: int | None
    last_sequence: int | None
    orders_per_second: float | None
    p99_latency_seconds: float | None


def window_figures(before: Scrape | None, now: Scrape) -> tuple[float | None, float | None]:
    """(orders per second, p99 seconds) between two scrapes; None without a previous one
    or across an engine restart."""
    figures = window(before, now)
    if figures is None:
        return None, None
    rate, buckets = figures
    return rate, histogram_quantile(0.99, buckets)


def _get(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        body: bytes = r.read()
        return body


def scrape(
    base_url: str, before: Scrape | None, *, timeout: float = 2.0
) -> tuple[EngineFigures, Scrape]:
    """Read `/status` and `/metrics`; raise OSError (or ValueError) when unreachable."""
    status: dict[str, Any] = json.loads(_get(f"{base_url}/status", timeout))
    sample = parse(_get(f"{base_url}/metrics", timeout).decode(), time.monotonic())
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
