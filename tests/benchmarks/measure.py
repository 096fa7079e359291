"""Timing helpers shared by the benchmark harnesses."""

from __future__ import annotations

import gc
import statistics
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["median", "quiet_gc"]


def median(values: list[float]) -> float:
    return float(statistics.median(values))


@contextmanager
def quiet_gc() -> Iterator[None]:
    """Collect, then keep the garbage collector out of the timed section (as timeit does)."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
