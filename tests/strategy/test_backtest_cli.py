"""`tickplane backtest` end to end on the committed GOOG excerpt: every strategy, JSON
results, byte-for-byte determinism, the report, and clear errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tickplane.engine.lobster import excerpt_paths

EXCERPT = excerpt_paths()[10]


def tickplane(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tickplane.cli.main", *args],
        capture_output=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    ("strategy", "params"),
    [
        ("market_maker", ["qty=50"]),
        ("twap", ["total_qty=500", "duration_s=60", "slices=6"]),
        ("sma_crossover", ["fast=2", "slow=5", "bar_seconds=5"]),
    ],
)
def test_each_builtin_runs_and_reports(tmp_path: Path, strategy: str, params: list[str]) -> None:
    args = [
        "backtest",
        "--strategy",
        strategy,
        "--data",
        str(EXCERPT),
        "--params",
        *params,
        "--latency-us",
        "100",
        "--fee-bps",
        "0.5",
        "--json",
        "--no-progress",
    ]
    first = tickplane(*args, "--report", str(tmp_path / "r"))
    assert first.returncode == 0, first.stderr.decode()
    out = json.loads(first.stdout)
    for key in (
        "trades",
        "pnl",
        "sharpe",
        "max_drawdown",
        "fill_ratio",
        "events",
        "turnover",
        "realized_pnl",
        "unrealized_pnl",
        "queue",
    ):
        assert key in out
    assert out["events"] == 3000 and out["strategy"] == strategy
    assert out["trades"] > 0, out
    assert out["latency_us"] == 100.0 and out["fees"] > 0
    second = tickplane(*args, "--report", str(tmp_path / "r2"))
    assert second.stdout == first.stdout  # deterministic, byte for byte
    report = tmp_path / "r"
    for f in report.iterdir():  # the report too, plots included
        assert (tmp_path / "r2" / f.name).read_bytes() == f.read_bytes(), f.name
    for name in (
        "index.html",
        "equity.png",
        "position.png",
        "price.png",
        "trades.csv",
        "summary.json",
    ):
        assert (report / name).stat().st_size > 0, name
    assert json.loads((report / "summary.json").read_text()) == out
    assert len((report / "trades.csv").read_text().splitlines()) == out["trades"] + 1
    assert '<img src="equity.png"' in (report / "index.html").read_text()


def test_latency_changes_the_result(tmp_path: Path) -> None:
    base = [
        "backtest",
        "--strategy",
        "market_maker",
        "--data",
        str(EXCERPT),
        "--json",
        "--no-progress",
    ]
    fast = json.loads(tickplane(*base, "--latency-us", "0").stdout)
    slow = json.loads(tickplane(*base, "--latency-us", "50000").stdout)
    assert fast["queue"] != slow["queue"] or fast["trades"] != slow["trades"]


def test_a_message_orderbook_pair_is_the_same_as_its_zip(tmp_path: Path) -> None:
    with zipfile.ZipFile(EXCERPT) as z:
        names = [n for n in z.namelist() if n.endswith(".csv")]
        z.extractall(tmp_path, names)
    msg = next(tmp_path / n for n in names if "_message_" in n)
    book = next(tmp_path / n for n in names if "_orderbook_" in n)
    common = ["backtest", "--strategy", "market_maker", "--json", "--no-progress"]
    pair = json.loads(tickplane(*common, "--data", str(msg), str(book)).stdout)
    alone = json.loads(tickplane(*common, "--data", str(msg)).stdout)  # finds its orderbook
    zipped = json.loads(tickplane(*common, "--data", str(EXCERPT)).stdout)
    for d in (pair, alone, zipped):
        d.pop("data")
    assert pair == zipped == alone


def test_bars_from_csv(tmp_path: Path) -> None:
    csv = tmp_path / "bars.csv"
    rows = ["time,open,high,low,close,volume"]
    closes = [10, 11, 12, 13, 12, 11, 10, 9, 10, 11, 12, 13, 14, 13, 12, 11, 10, 9]
    for i, c in enumerate(closes):
        rows.append(f"{1_600_000_000 + 60 * i},{c},{c + 0.5},{c - 0.5},{c},100")
    csv.write_text("\n".join(rows) + "\n")
    r = tickplane(
        "backtest",
        "--strategy",
        "sma_crossover",
        "--data",
        str(csv),
        "--params",
        "fast=2",
        "slow=4",
        "--json",
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr.decode()
    out = json.loads(r.stdout)
    assert out["events"] == len(closes) and out["trades"] >= 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "nosuch", "--data", str(EXCERPT)], "unknown strategy"),
        (["--strategy", "twap", "--data", str(EXCERPT), "--params", "slices=zero"], "slices"),
        (["--strategy", "twap", "--data", "/nonexistent.zip"], "/nonexistent.zip"),
        (["--strategy", "twap", "--data", "postgresql://localhost/x"], "symbol"),
        (["--strategy", "twap", "--data", str(EXCERPT), "--latency-us", "-1"], "latency"),
    ],
)
def test_bad_input_is_a_clear_error(args: list[str], message: str) -> None:
    r = tickplane("backtest", *args, "--json")
    assert r.returncode == 2
    err = r.stderr.decode()
    assert err.startswith("tickplane: error:") and message in err
    assert "Traceback" not in err and r.stdout == b""


def test_bad_bar_csv_names_the_line(tmp_path: Path) -> None:
    csv = tmp_path / "bars.csv"
    csv.write_text("time,open,high,low,close\n1,10,11,9,10\n2,10,x,9,10\n")
    r = tickplane("backtest", "--strategy", "sma_crossover", "--data", str(csv))
    assert r.returncode == 2 and f"{csv}:3" in r.stderr.decode()
