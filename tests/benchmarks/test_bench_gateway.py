"""A quick run of the gateway benchmark harness at tiny sizes (a real engine and real
uvicorn gateways).

Not part of the default test run (pytest skips tests/benchmarks unless named):
``python -m pytest tests/benchmarks/test_bench_gateway.py``.
"""

from __future__ import annotations

import json

from tests.benchmarks import bench_gateway

FIGURES = (
    "http_orders_per_sec",
    "http_order_p50_ms",
    "http_order_p99_ms",
    "bare_http_per_sec",
    "http_vs_bare",
    "ws_orders_per_sec",
    "ws_single_orders_per_sec",
    "ws_deep_orders_per_sec",
)


def test_every_figure_is_measured() -> None:
    result = bench_gateway.run(
        True,
        1,
        seconds=0.5,
        connections=4,
        ws_connections=2,
        ws_batch=20,
        recorder=False,
        command="test",
    )
    json.dumps(result)  # JSON-ready
    for name in FIGURES:
        assert isinstance(result[name], int | float), name
        assert result[name] > 0, name
    assert result["http_order_p99_ms"] >= result["http_order_p50_ms"]
    for name in ("ws_cpu_us_per_order", "ws_single_cpu_us_per_order"):
        per = result[name]
        assert set(per) == {"engine", "gateway", "load_generator", "total"}, name
        assert all(per[k] > 0 for k in ("engine", "gateway", "total")), per
    assert result["command"] == "test"
    assert set(result["targets"]) == set(bench_gateway.TARGETS)
    assert all(isinstance(t["met"], bool) for t in result["targets"].values())
    assert not any(k.startswith("recorder_") for k in result)
