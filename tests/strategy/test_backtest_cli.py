"""`tickplane backtest` end to end on the committed GOOG excerpt: every strategy, JSON
results, byte-for-byte determinism, the report, and clear errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tickplane.cli.main import main
from tickplane.engine.lobster import excerpt_paths

EXCERPT = excerpt_paths()[10]


def tickplane(*args: str) -> subprocess.CompletedProcess[bytes]:
    """The real command, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "tickplane.cli.main", *args], capture_output=True, timeout=120
    )


def inproc(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The same command in this process (no interpreter start-up): rc, stdout, stderr."""
    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize(
    ("strategy", "params"),
    [
        ("market_maker", ["qty=50"]),
        ("twap", ["total_qty=500", "duration_s=60", "slices=6"]),
        ("sma_crossover", ["fast=2", "slow=5", "bar_seconds=5"]),
    ],
)
def test_each_builtin_runs_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], strategy: str, params: list[str]
) -> None:
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
    rc, out2, _ = inproc(capsys, *args, "--report", str(tmp_path / "r2"))
    assert rc == 0 and out2.encode() == first.stdout  # deterministic, byte for byte
    report = tmp_path / "r"
    for f in report.iterdir():  # the report too, plots included
        assert (tmp_path / "r2" / f.name).read_bytes() == f.read_bytes(), f.name
    for name in (
        "index.html",
        "equity.png",
        "position.png",
        "price.png",
        "queue.png",
        "trades.csv",
        "summary.json",
    ):
        assert (report / name).stat().st_size > 0, name
    assert json.loads((report / "summary.json").read_text()) == out
    assert len((report / "trades.csv").read_text().splitlines()) == out["trades"] + 1
    assert '<img src="equity.png"' in (report / "index.html").read_text()


def test_latency_changes_the_result(capsys: pytest.CaptureFixture[str]) -> None:
    base = [
        "backtest",
        "--strategy",
        "market_maker",
        "--data",
        str(EXCERPT),
        "--json",
        "--no-progress",
    ]
    fast = json.loads(inproc(capsys, *base, "--latency-us", "0")[1])
    slow = json.loads(inproc(capsys, *base, "--latency-us", "50000")[1])
    assert fast["queue"] != slow["queue"] or fast["trades"] != slow["trades"]


def test_a_message_orderbook_pair_is_the_same_as_its_zip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with zipfile.ZipFile(EXCERPT) as z:
        names = [n for n in z.namelist() if n.endswith(".csv")]
        z.extractall(tmp_path, names)
    msg = next(tmp_path / n for n in names if "_message_" in n)
    book = next(tmp_path / n for n in names if "_orderbook_" in n)
    common = ["backtest", "--strategy", "market_maker", "--json", "--no-progress"]
    pair = json.loads(inproc(capsys, *common, "--data", str(msg), str(book))[1])
    alone = json.loads(inproc(capsys, *common, "--data", str(msg))[1])  # finds its orderbook
    zipped = json.loads(inproc(capsys, *common, "--data", str(EXCERPT))[1])
    for d in (pair, alone, zipped):
        d.pop("data")
    assert pair == zipped == alone


def test_bars_from_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "bars.csv"
    rows = ["time,open,high,low,close,volume"]
    closes = [10, 11, 12, 13, 12, 11, 10, 9, 10, 11, 12, 13, 14, 13, 12, 11, 10, 9]
    for i, c in enumerate(closes):
        rows.append(f"{1_600_000_000 + 60 * i},{c},{c + 0.5},{c - 0.5},{c},100")
    csv.write_text("\n".join(rows) + "\n")
    rc, text, err = inproc(
        capsys,
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
    assert rc == 0, err
    out = json.loads(text)
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
def test_bad_input_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    rc, out, err = inproc(capsys, "backtest", *args, "--json")
    assert rc == 2
    assert err.startswith("tickplane: error:") and message in err
    assert "Traceback" not in err and out == ""


def test_strategy_run_takes_account_names_only(capsys: pytest.CaptureFixture[str]) -> None:
    """The engine refuses an account outside core/accounts.py's rule: `strategy run`
    says so before it connects."""
    args = ["--strategy", "twap", "--engine", "tcp://127.0.0.1:1", "--symbol", "GOOG"]
    args += ["--duration", "1"]  # without the check: it stops, and the test fails
    with pytest.raises(SystemExit) as stopped:
        main(["strategy", "run", *args, "--account", "desk one"])
    out, err = capsys.readouterr()
    assert stopped.value.code == 2 and out == ""
    assert "'desk one' is not an account name: 1-64 letters" in err


def test_bad_input_from_the_real_command() -> None:
    r = tickplane("backtest", "--strategy", "twap", "--data", "/nonexistent.zip", "--json")
    assert r.returncode == 2 and r.stdout == b""
    assert r.stderr.decode().startswith("tickplane: error: /nonexistent.zip")


def test_bad_bar_csv_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "bars.csv"
    csv.write_text("time,open,high,low,close\n1,10,11,9,10\n2,10,x,9,10\n")
    rc, _, err = inproc(capsys, "backtest", "--strategy", "sma_crossover", "--data", str(csv))
    assert rc == 2 and f"{csv}:3" in err


def test_a_strategy_of_your_own_by_module_and_class(capsys: pytest.CaptureFixture[str]) -> None:
    name = "tests.strategy.custom_strategy:Dip"
    args = ["backtest", "--data", str(EXCERPT), "--json", "--no-progress"]
    rc, out, err = inproc(capsys, *args, "--strategy", name, "--params", "qty=7")
    assert rc == 0, err
    res = json.loads(out)
    assert res["strategy"] == "dip" and res["filled_qty"] == 7 and res["params"] == {"qty": 7}
    for bad, why in (
        ("tests.strategy.custom_strategy:NotAStrategy", "not a Strategy subclass"),
        ("tests.strategy.nosuch:Dip", "cannot import"),
    ):
        rc, _, err = inproc(capsys, *args, "--strategy", bad)
        assert rc == 2 and why in err
