"""The Grafana dashboard of manifests/monitoring/, written from the panel list below.

Run `python scripts/monitoring/dashboard.py` after editing; tests/monitoring checks that
the committed JSON is what this renders, and that every query returns data from a live
platform scraped by a real Prometheus.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[2] / "manifests" / "monitoring" / "grafana-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
ENGINE = '{job=~"$job"}'  # the engine panels follow the dashboard's engine selector
RATE = "[$__rate_interval]"


def quantile(q: float, histogram: str, by: str = "", selector: str = "") -> str:
    """`histogram_quantile` over a histogram's buckets, summed by `by` (and `le`)."""
    labels = ", ".join(x for x in (by, "le") if x)
    return f"histogram_quantile({q}, sum by ({labels}) (rate({histogram}_bucket{selector}{RATE})))"


def panel(
    kind: str, title: str, targets: list[tuple[str, str]], unit: str, pos: tuple[int, int, int, int]
) -> dict[str, Any]:
    x, y, w, h = pos
    return {
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def stat(title: str, expr: str, unit: str, x: int) -> dict[str, Any]:
    return panel("stat", title, [(expr, "")], unit, (x, 0, 4, 4))


def series(title: str, targets: list[tuple[str, str]], unit: str, x: int, y: int) -> dict[str, Any]:
    return panel("timeseries", title, targets, unit, (x, y, 12, 8))


LATENCY = "tickplane_engine_request_seconds"
FSYNC = "tickplane_engine_journal_fsync_seconds"
PANELS = [
    stat("Engines ready", f"sum(tickplane_engine_ready{ENGINE})", "none", 0),
    stat("Orders/s", f"sum(rate(tickplane_engine_orders_total{ENGINE}{RATE}))", "ops", 4),
    stat("p99 latency", quantile(0.99, LATENCY, selector=ENGINE), "s", 8),
    stat("Last sequence", f"max(tickplane_engine_sequence{ENGINE})", "none", 12),
    stat("Kill switches", f"sum(tickplane_engine_kill_switches_engaged{ENGINE})", "none", 16),
    stat("Venue connected", f"min(tickplane_engine_venue_connected{ENGINE})", "bool", 20),
    series(
        "Engine request latency (the loop taking it to its reply leaving)",
        [(quantile(q, LATENCY, selector=ENGINE), f"p{q * 100:g}") for q in (0.5, 0.99, 0.999)],
        "s",
        0,
        4,
    ),
    series(
        "Engine stage latency p99 (a request's stages, then publishing after the replies)",
        [
            (
                quantile(0.99, "tickplane_engine_request_stage_seconds", "stage", ENGINE),
                "{{stage}}",
            ),
            (
                quantile(
                    0.99, "tickplane_engine_stage_seconds", selector='{job=~"$job",stage="publish"}'
                ),
                "publish",
            ),
        ],
        "s",
        12,
        4,
    ),
    series(
        "Orders by outcome",
        [
            (
                f"sum by (outcome) (rate(tickplane_engine_orders_total{ENGINE}{RATE}))",
                "{{outcome}}",
            )
        ],
        "ops",
        0,
        12,
    ),
    series(
        "Trades",
        [(f"sum(rate(tickplane_engine_trades_total{ENGINE}{RATE}))", "trades/s")],
        "ops",
        12,
        12,
    ),
    series(
        "Rejects by reason",
        [
            (
                f"sum by (reason) (rate(tickplane_engine_request_rejects_total{ENGINE}{RATE}))",
                "{{reason}}",
            )
        ],
        "ops",
        0,
        20,
    ),
    series(
        "Journal fsync",
        [
            (
                quantile(q, "tickplane_engine_journal_fsync_seconds", selector=ENGINE),
                f"p{q * 100:g}",
            )
            for q in (0.5, 0.99)
        ],
        "s",
        12,
        20,
    ),
    series(
        "CPUs per engine (pinned=true: the hot loop)",
        [
            (
                f"max by (instance, cpu, pinned) (tickplane_engine_cpus{ENGINE})",
                "{{instance}} cpu {{cpu}} pinned={{pinned}}",
            )
        ],
        "none",
        0,
        28,
    ),
    series(
        "Batch size",
        [
            (quantile(q, "tickplane_engine_batch_size", selector=ENGINE), f"p{q * 100:g}")
            for q in (0.5, 0.99)
        ],
        "none",
        12,
        28,
    ),
    series(
        "Gateway requests by route",
        [(f"sum by (route) (rate(tickplane_gateway_requests_total{RATE}))", "{{route}}")],
        "reqps",
        0,
        36,
    ),
    series(
        "Gateway 4xx and 5xx by route",
        [
            (
                f'sum by (route) (rate(tickplane_gateway_requests_total{{status=~"4.."}}{RATE}))',
                "4xx {{route}}",
            ),
            (
                f"sum by (route) (rate(tickplane_gateway_errors_total{RATE})) or vector(0)",
                "5xx {{route}}",
            ),
        ],
        "reqps",
        12,
        36,
    ),
    series(
        "Gateway duration p99 by route",
        [(quantile(0.99, "tickplane_gateway_request_duration_seconds", "route"), "{{route}}")],
        "s",
        0,
        44,
    ),
    series(
        "Gateway projection lag and WebSocket clients",
        [
            ("max(tickplane_gateway_projection_lag_events)", "projection lag (events)"),
            ("sum by (stream) (tickplane_gateway_websocket_clients)", "ws clients {{stream}}"),
        ],
        "none",
        12,
        44,
    ),
    series(
        "Recorder lag by sink (events)",
        [("max by (sink) (tickplane_recorder_lag_events)", "{{sink}}")],
        "none",
        0,
        52,
    ),
    series(
        "Recorder events written by sink",
        [(f"sum by (sink) (rate(tickplane_recorder_events_written_total{RATE}))", "{{sink}}")],
        "ops",
        12,
        52,
    ),
    series(
        "Strategy P&L (ticks x lots)",
        [("sum by (strategy, symbol) (tickplane_strategy_pnl)", "{{strategy}} {{symbol}}")],
        "none",
        0,
        60,
    ),
    series(
        "Strategy position (lots)",
        [("sum by (strategy, symbol) (tickplane_strategy_position)", "{{strategy}} {{symbol}}")],
        "none",
        12,
        60,
    ),
    series(
        "Operator reconciles by result",
        [
            (
                f"sum by (kind, result) (rate(tickplane_operator_reconciles_total{RATE}))",
                "{{kind}} {{result}}",
            )
        ],
        "ops",
        0,
        68,
    ),
    series(
        "Operator reconcile duration p99",
        [(quantile(0.99, "tickplane_operator_reconcile_seconds", "kind"), "{{kind}}")],
        "s",
        12,
        68,
    ),
]

DASHBOARD = {
    "uid": "tickplane-overview",
    "title": "Tickplane",
    "tags": ["tickplane"],
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "refresh": "10s",
    "time": {"from": "now-1h", "to": "now"},
    "templating": {
        "list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus"},
            {
                "name": "job",
                "type": "query",
                "label": "Engine job",
                "datasource": DATASOURCE,
                "query": "label_values(tickplane_engine_info, job)",
                "includeAll": True,
                "allValue": ".*",
                "multi": True,
                "current": {"text": "All", "value": "$__all"},
            },
        ]
    },
    "panels": [dict(p, id=i + 1) for i, p in enumerate(PANELS)],
}


def render() -> str:
    """The dashboard's JSON text."""
    return json.dumps(DASHBOARD, indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
