"""The operator's own Prometheus metrics (served by `tickplane operator --metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["GUARANTEED", "RECONCILES", "RECONCILE_SECONDS", "RESTARTS"]

RECONCILES = Counter(
    "tickplane_operator_reconciles_total",
    "Reconciliations of a custom resource, by kind and result (ok, error).",
    ["kind", "result"],
)
RECONCILE_SECONDS = Histogram(
    "tickplane_operator_reconcile_seconds",
    "Time one reconciliation took.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RESTARTS = Counter(
    "tickplane_operator_engine_restarts_total",
    "Engine pods the operator deleted to roll them to a new revision.",
)
GUARANTEED = Gauge(
    "tickplane_operator_engine_guaranteed",
    "1 when the engine's pod has the Guaranteed QoS class (the apiserver's own verdict), "
    "so the static CPU manager can give it whole cores; 0 otherwise.",
    ["namespace", "engine"],
)
