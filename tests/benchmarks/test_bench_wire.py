"""A quick run of the wire benchmark harness at tiny sizes (real engine processes).

Not part of the default test run (pytest skips tests/benchmarks unless named):
``python -m pytest tests/benchmarks/test_bench_wire.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.benchmarks import bench_wire


def test_every_figure_is_measured(tmp_path: Path) -> None:
    result = bench_wire.run(
        True,
        1,
        rtt_orders=200,
        rtt_batch_orders=50,
        client_orders=50,
        echo_messages=200,
        pipelined_requests=2_000,
        window=100,
        recovery_commands=3_000,
        loop_requests=600,
        journal_root=tmp_path,
        command="test",
    )
    json.dumps(result)  # JSON-ready
    for name in bench_wire.FIGURES:
        assert isinstance(result[name], int | float), name
        assert result[name] > 0, name
    assert result["command"] == "test"
    assert result["recovery_commands"] == 3_000
    assert result["recovery_events"] == 3_000  # one event per command in this flow
    assert result["engine_pinned_cpu"] in result["environment"]["cpus_usable"]
    assert set(result["targets"]) == set(bench_wire.TARGETS)
    assert all(isinstance(t["met"], bool) for t in result["targets"].values())
    assert result["rtt_vs_echo"] == round(
        result["engine_rtt_p50_us"] / result["zmq_echo_p50_us"], 2
    )
    details = result["details"]
    assert details["zmq_echo_libzmq_p50_us"] > 0  # the echo through the engine's path
    assert details["zmq_echo_libzmq_pipelined_per_sec"] > 0
    assert details["rtt_vs_libzmq_echo"] == round(
        result["engine_rtt_p50_us"] / details["zmq_echo_libzmq_p50_us"], 2
    )
    kinds = ("pipelined", "pipelined_batched", "zmq_echo_pipelined", "zmq_echo_libzmq_pipelined")
    for kind in kinds:  # where a request's CPU went
        split = details[f"{kind}_cpu_us_per_request"]
        assert set(split) == {"engine_loop", "engine_zmq", "client_loop", "client_zmq"}
        assert split["engine_loop"] > 0 and split["client_loop"] > 0, split
    assert details["pipelined_requests_per_turn"] >= 1
    assert details["pipelined_batched_frames_per_turn"] >= 1
    stages = result["details"]["rtt_engine_stage_mean_us"]
    assert set(stages) == {"handle", "journal", "ack", "publish"}
    assert all(v > 0 for v in stages.values())  # the engine's own clock, per round trip
    request = result["details"]["rtt_request_stage_mean_us"]
    assert list(request) == ["decode", "risk", "journal", "match", "ack"]
    assert all(v > 0 for v in request.values())
    assert list(tmp_path.iterdir()) == []  # the journals are gone
