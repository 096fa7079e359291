"""The LOBSTER replay contract: 100% known-window match on every GOOG sample file.

Uses the full files of ../shared/data when present, else the committed excerpts."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tickplane.engine.lobster import LobsterDay, load, sample_paths
from tickplane.engine.lobster_replay import replay

LEVELS = sorted(sample_paths())


def tickplane(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tickplane.cli.main", *args],
        input=stdin,
        capture_output=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module", params=LEVELS, ids=[f"{n}-levels" for n in LEVELS])
def day(request: pytest.FixtureRequest) -> LobsterDay:
    return load(zip_path=sample_paths()[request.param])


def test_every_row_matches_the_known_window(day: LobsterDay) -> None:
    r = replay(day)
    assert r.messages == len(day)
    assert r.rows_compared == len(day) - 1
    assert r.rows_matched == r.rows_compared, f"first mismatch at row {r.first_mismatch}"
    assert r.first_mismatch == -1
    assert r.apply_seconds > 0


def test_chunked_replay_equals_one_pass(day: LobsterDay) -> None:
    whole = replay(day)
    chunked = replay(day, chunk=997)
    assert (chunked.rows_compared, chunked.rows_matched) == (
        whole.rows_compared,
        whole.rows_matched,
    )


def test_a_lost_message_is_detected(day: LobsterDay) -> None:
    """The check can fail: drop one add that touches the visible book."""
    msgs = day.messages
    adds = np.flatnonzero(msgs["type"] == 1)
    victim = int(adds[len(adds) // 2])
    broken = msgs.copy()
    broken[victim]["type"] = 7  # turn it into a no-op (a halt message)
    r = replay(LobsterDay(broken, day.orderbook, day.levels, day.name))
    assert r.rows_matched < r.rows_compared
    assert r.first_mismatch == victim


def test_cli_json_reports_the_contract_fields(tmp_path: Path) -> None:
    path = sample_paths()[LEVELS[-1]]
    res = tickplane("replay", "lobster", "--zip", str(path), "--json")
    assert res.returncode == 0, res.stderr.decode()
    out = json.loads(res.stdout)
    for key in ("messages", "rows_compared", "rows_matched", "apply_seconds", "msgs_per_sec"):
        assert key in out
    assert out["rows_matched"] == out["rows_compared"] == out["messages"] - 1
    # The same day from the two CSV files gives the same answer.
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        z.extractall(tmp_path)
    msg = next(n for n in names if "_message_" in n)
    book = next(n for n in names if "_orderbook_" in n)
    res2 = tickplane(
        "replay", "lobster", "--messages", str(tmp_path / msg),
        "--orderbook", str(tmp_path / book), "--levels", str(LEVELS[-1]), "--json",
    )  # fmt: skip
    assert res2.returncode == 0, res2.stderr.decode()
    out2 = json.loads(res2.stdout)
    assert {k: out2[k] for k in ("messages", "rows_compared", "rows_matched")} == {
        k: out[k] for k in ("messages", "rows_compared", "rows_matched")
    }


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    res = tickplane("replay", "lobster", "--messages", "x.csv")
    assert res.returncode == 2
    assert b"--messages and --orderbook go together" in res.stderr
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    res = tickplane("replay", "lobster", "--zip", str(bad), "--json")
    assert res.returncode == 2
    assert b"tickplane: error:" in res.stderr
    assert b"Traceback" not in res.stderr
