"""The Monitoring page's recorder pane: each sink's sequence lag, from the recorder itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from streamlit.testing.v1 import AppTest

import tickplane.ui
from tests.cli.running import platform
from tickplane.api.recorder import metrics as recorder_metrics
from tickplane.ui.views.monitoring import SinkLag, recorder_lag

APP = str(Path(tickplane.ui.__file__).resolve().parent / "app.py")


def test_the_pane_reads_the_recorders_own_series() -> None:
    # The recorder's real metric objects, so a rename on either side fails here.
    recorder_metrics.LAG.labels("kafka").set(1234)
    recorder_metrics.LAST_SEQ.labels("kafka").set(98765)
    recorder_metrics.SINK_UP.labels("kafka").set(0)
    sinks = recorder_lag(generate_latest(REGISTRY).decode())
    assert sinks["kafka"] == SinkLag(lag=1234.0, last_seq=98765.0, up=False)


def test_monitoring_shows_each_sinks_lag(
    tmp_path: Path, postgres: Any, redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = postgres.create_database("ui")
    services = ("--database-url", dsn, "--redis-url", redis.url)
    with platform(tmp_path / "platform", *services) as (_proc, info):
        monkeypatch.setenv("TICKPLANE_UI_GATEWAY_URL", info["gateway"])
        monkeypatch.setenv("TICKPLANE_UI_ENGINE_URL", "")
        monkeypatch.setenv(
            "TICKPLANE_UI_RECORDER_URL", info["recorder_metrics"].removesuffix("/metrics")
        )
        at = AppTest.from_file(APP, default_timeout=30)
        at.session_state["key_id"] = info["key_id"]
        at.session_state["secret"] = info["secret"]
        at.session_state["page"] = "Monitoring"
        at.run()
        assert not at.exception
        shown = {m.label: m for m in at.metric}
        for sink in ("postgres", "redis"):
            got = shown[f"Recorder lag: {sink}"]
            assert int(got.value.replace(",", "")) >= 0
            assert got.delta is not None and got.delta.startswith("seq ")
