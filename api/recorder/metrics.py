"""The recorder's Prometheus metrics (served on its metrics port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BATCH_SECONDS",
    "ERRORS",
    "EVENTS_WRITTEN",
    "LAG",
    "LAST_SEQ",
    "SINK_UP",
    "TOPS_MISSING",
    "TOPS_WRITTEN",
]

EVENTS_WRITTEN = Counter(
    "tickplane_recorder_events_written_total",
    "Sequenced events a sink wrote (each seq counted once)",
    ["sink"],
)
TOPS_WRITTEN = Counter(
    "tickplane_recorder_top_of_book_written_total",
    "Top-of-book messages a sink wrote",
    ["sink"],
)
TOPS_MISSING = Counter(
    "tickplane_recorder_top_of_book_missing_total",
    "Tops of book a sink could not get: older than the engine's market-data log, or "
    "lost with the engine's last moments before a kill -9",
    ["sink"],
)
ERRORS = Counter(
    "tickplane_recorder_errors_total",
    "Failed writes or connections of a sink (each followed by a backoff and a retry)",
    ["sink"],
)
LAG = Gauge(
    "tickplane_recorder_lag_events",
    "Sequence numbers the engine has published that a sink has not written yet",
    ["sink"],
)
LAST_SEQ = Gauge("tickplane_recorder_last_seq", "The last seq a sink wrote", ["sink"])
SINK_UP = Gauge("tickplane_recorder_sink_up", "1 while a sink is connected and writing", ["sink"])
BATCH_SECONDS = Histogram(
    "tickplane_recorder_batch_seconds",
    "Time to write one batch to a sink",
    ["sink"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
