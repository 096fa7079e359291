"""`tickplane match COMMANDS.jsonl --events EVENTS.jsonl --book BOOK.json`."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest


def tickplane(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tickplane.cli.main", *args],
        input=stdin,
        capture_output=True,
        timeout=300,
        check=False,
    )


def new(i: int, side: str, price: int, qty: int = 1, **kw: object) -> dict[str, object]:
    cmd = {"op": "new", "id": f"o{i}", "account": f"a{i % 3}", "symbol": "X", "side": side,
           "type": "limit", "qty": qty, "price": price}  # fmt: skip
    cmd.update(kw)
    return cmd


COMMANDS = [
    new(1, "sell", 101, 5),
    new(2, "sell", 102, 5),
    new(3, "buy", 100, 5),
    new(4, "buy", 0, 1, type="stop", stop_price=102),
    {"op": "replace", "id": "o3", "qty": 3},
    new(5, "buy", 102, 7),
    {"op": "cancel", "id": "o3"},
]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_files_in_files_out(tmp_path: Path) -> None:
    cmds = _write(tmp_path / "c.jsonl", [json.dumps(c) for c in COMMANDS])
    res = tickplane("match", str(cmds), "--events", str(tmp_path / "e.jsonl"),
                    "--book", str(tmp_path / "b.json"))  # fmt: skip
    assert res.returncode == 0, res.stderr.decode()
    events = [json.loads(x) for x in (tmp_path / "e.jsonl").read_text().splitlines()]
    trades = [(e["price"], e["qty"], e["maker"]) for e in events if e["type"] == "trade"]
    assert trades == [(101, 5, "o1"), (102, 2, "o2"), (102, 1, "o2")]  # o4: the stop
    triggered = [e["id"] for e in events if e["type"] == "triggered"]
    assert triggered == ["o4"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    book = json.loads((tmp_path / "b.json").read_text())
    assert book == {"X": {"bids": [], "asks": [[102, [["o2", 2]]]], "stops": []}}


def test_stdin_to_stdout_is_the_same_stream(tmp_path: Path) -> None:
    lines = [json.dumps(c) for c in COMMANDS]
    cmds = _write(tmp_path / "c.jsonl", lines)
    via_files = tickplane("match", str(cmds), "--events", str(tmp_path / "e.jsonl"))
    assert via_files.returncode == 0
    via_pipe = tickplane("match", "-", stdin="\n".join(lines).encode())
    assert via_pipe.returncode == 0
    assert via_pipe.stdout == (tmp_path / "e.jsonl").read_bytes()


def test_bad_lines_are_rejected_with_their_line_number_and_change_nothing(
    tmp_path: Path,
) -> None:
    lines = [
        json.dumps(COMMANDS[0]),
        "{not json",
        "",
        json.dumps(new(9, "buy", True)),  # a boolean price
        json.dumps(new(10, "buy", 10**40)),  # a huge number
        json.dumps(new(11, "buy", 100, colour="red")),  # an unknown field
        '["an", "array"]',
        json.dumps({"op": "explode", "id": "o1"}),
        json.dumps({"op": "cancel"}),
    ]
    cmds = _write(tmp_path / "c.jsonl", lines)
    res = tickplane("match", str(cmds), "--book", str(tmp_path / "b.json"))
    assert res.returncode == 0
    events = [json.loads(x) for x in res.stdout.splitlines()]
    assert [(e["type"], e.get("reason"), e.get("line")) for e in events] == [
        ("accepted", None, None),
        ("rejected", "bad_json", 2),
        ("rejected", "bad_price", None),
        ("rejected", "bad_price", None),
        ("rejected", "unknown_field", None),
        ("rejected", "bad_json", 7),
        ("rejected", "bad_op", None),
        ("rejected", "unknown_order", None),
    ]
    stderr = res.stderr.decode()
    assert ":2: not a JSON object" in stderr and ":7: not a JSON object" in stderr
    assert "Traceback" not in stderr
    book = json.loads((tmp_path / "b.json").read_text())
    assert book == {"X": {"bids": [], "asks": [[101, [["o1", 5]]]], "stops": []}}


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    res = tickplane("match", str(tmp_path / "nope.jsonl"))
    assert res.returncode == 2
    assert b"nope.jsonl" in res.stderr and b"Traceback" not in res.stderr


@pytest.mark.parametrize("seed", [5])
def test_output_is_identical_byte_for_byte_across_runs(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    lines = []
    for i in range(3000):
        r = rng.random()
        if r < 0.7:
            kind = rng.choice(["limit", "limit", "market", "stop", "stop_limit"])
            cmd = new(i, rng.choice(["buy", "sell"]), rng.randint(95, 105), rng.randint(1, 9),
                      type=kind, stop_price=rng.randint(95, 105),
                      tif=rng.choice(["gtc", "day", "ioc", "fok"]))  # fmt: skip
        elif r < 0.85:
            cmd = {"op": "cancel", "id": f"o{rng.randrange(i + 1)}"}
        else:
            cmd = {"op": "replace", "id": f"o{rng.randrange(i + 1)}", "qty": rng.randint(1, 9)}
        lines.append(json.dumps(cmd))
    cmds = _write(tmp_path / "c.jsonl", lines)
    outs = []
    for run in range(2):
        ev, bk = tmp_path / f"e{run}.jsonl", tmp_path / f"b{run}.json"
        res = tickplane("match", str(cmds), "--events", str(ev), "--book", str(bk))
        assert res.returncode == 0, res.stderr.decode()
        outs.append((ev.read_bytes(), bk.read_bytes()))
    assert outs[0] == outs[1]
    assert outs[0][0].count(b'"trade"') > 100


def test_integers_beyond_64_bits_are_echoed_exactly() -> None:
    from tickplane.engine.match import Matcher

    m = Matcher()
    big = 2**64
    events = m.process(f'{{"op": "cancel", "id": {big}}}')
    assert events[0]["id"] == big and isinstance(events[0]["id"], int)
    assert events[0]["reason"] == "unknown_order"
    line = json.dumps(new(1, "buy", 5)).replace('"qty": 1', f'"qty": {big}')
    events = m.process(line)
    assert events[0]["reason"] == "bad_qty"
