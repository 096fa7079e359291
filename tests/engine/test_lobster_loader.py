"""Tests of the LOBSTER loader (``tickplane.engine.lobster``)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from tickplane.engine import lobster
from tickplane.engine.lobster import (
    DUMMY_ASK_PRICE,
    DUMMY_BID_PRICE,
    EXCERPT_ROWS,
    MESSAGE_DTYPE,
    LobsterDay,
    excerpt_paths,
    load,
    sample_paths,
    shared_paths,
)

STEM = "GOOG_2012-06-21_34200000_57600000"
# Rows of the full GOOG sample files, per level count.
FULL_ROWS = {1: 49_482, 5: 112_673, 10: 147_916}

MSG_LINES = [
    "34200.01,1,11,100,5800000,1",
    "34200.02,1,12,50,5801000,-1",
    "34200.03,3,11,100,5800000,1",
]
# Two levels; the second bid level is empty after message 3 (dummy price, size 0) and the
# second ask level never exists.
BOOK_LINES = [
    f"5801000,0,5800000,100,{DUMMY_ASK_PRICE},0,{DUMMY_BID_PRICE},0",
    f"5801000,50,5800000,100,{DUMMY_ASK_PRICE},0,{DUMMY_BID_PRICE},0",
    f"5801000,50,{DUMMY_BID_PRICE},0,{DUMMY_ASK_PRICE},0,{DUMMY_BID_PRICE},0",
]


def write_pair(
    folder: Path,
    msg_lines: list[str] = MSG_LINES,
    book_lines: list[str] = BOOK_LINES,
    levels: int | None = 2,
) -> tuple[Path, Path]:
    """Write a message/orderbook CSV pair named like LOBSTER's (or plainly if no levels)."""
    if levels is None:
        msg, book = folder / "messages.csv", folder / "book.csv"
    else:
        msg = folder / f"{STEM}_message_{levels}.csv"
        book = folder / f"{STEM}_orderbook_{levels}.csv"
    msg.write_text("\n".join(msg_lines) + "\n")
    book.write_text("\n".join(book_lines) + "\n")
    return msg, book


# --- the committed excerpts and the full sample ---------------------------------------


@pytest.mark.parametrize("levels", [1, 5, 10])
def test_excerpt_loads_with_rows_dtype_and_levels(levels: int) -> None:
    day = load(zip_path=excerpt_paths()[levels])
    assert isinstance(day, LobsterDay)
    assert len(day) == EXCERPT_ROWS
    assert day.levels == levels
    assert day.name == STEM
    assert day.messages.dtype == MESSAGE_DTYPE
    assert day.orderbook.dtype == np.int64
    assert day.orderbook.shape == (EXCERPT_ROWS, 4 * levels)
    assert day.orderbook.flags["C_CONTIGUOUS"]
    assert set(np.unique(day.messages["type"])) <= {1, 2, 3, 4, 5, 7}
    assert set(np.unique(day.messages["direction"])) <= {-1, 1}


def test_excerpt_first_row_values() -> None:
    day = load(zip_path=excerpt_paths()[10])
    first = day.messages[0]
    assert first["time"] == pytest.approx(34200.015105074)
    assert (first["type"], first["id"], first["size"]) == (4, 15818974, 4)
    assert (first["price"], first["direction"]) == (5794000, 1)
    assert day.orderbook[0, :4].tolist() == [5802300, 100, 5794000, 496]
    assert day.ask_prices[0, 1] == 5804300
    assert day.bid_sizes.shape == (EXCERPT_ROWS, 10)


def test_excerpts_are_small() -> None:
    total = sum(p.stat().st_size for p in excerpt_paths().values())
    assert total < 300_000


@pytest.mark.parametrize("levels", [1, 5, 10])
def test_full_sample_when_present(levels: int) -> None:
    paths = shared_paths()
    if paths is None:
        pytest.skip("the shared LOBSTER sample files are not beside this checkout")
    day = load(zip_path=paths[levels])
    assert len(day) == FULL_ROWS[levels]
    assert day.orderbook.shape == (FULL_ROWS[levels], 4 * levels)
    excerpt = load(zip_path=excerpt_paths()[levels])
    assert np.array_equal(day.messages[:EXCERPT_ROWS], excerpt.messages)
    assert np.array_equal(day.orderbook[:EXCERPT_ROWS], excerpt.orderbook)


def test_sample_paths_prefers_shared_then_excerpts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = sample_paths()
    assert sorted(paths) == [1, 5, 10]
    assert all(p.is_file() for p in paths.values())
    folder = tmp_path / "data" / "lobster"
    folder.mkdir(parents=True)
    for p in excerpt_paths().values():
        (folder / p.name).write_bytes(p.read_bytes())
    monkeypatch.setenv("TICKPLANE_SHARED", str(tmp_path))
    assert sample_paths() == {n: folder / p.name for n, p in excerpt_paths().items()}


# --- CSV pairs, zips and levels --------------------------------------------------------


def test_zip_and_csv_pair_are_equal(tmp_path: Path) -> None:
    source = excerpt_paths()[5]
    with zipfile.ZipFile(source) as archive:
        archive.extractall(tmp_path)
    from_zip = load(zip_path=source)
    from_csv = load(
        messages=tmp_path / f"{STEM}_message_5.csv",
        orderbook=tmp_path / f"{STEM}_orderbook_5.csv",
    )
    assert from_csv.levels == from_zip.levels == 5
    assert from_csv.name == from_zip.name
    assert np.array_equal(from_csv.messages, from_zip.messages)
    assert np.array_equal(from_csv.orderbook, from_zip.orderbook)


def test_zip_in_a_subfolder_and_extra_members(tmp_path: Path) -> None:
    msg, book = write_pair(tmp_path)
    archive = tmp_path / "day.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.write(msg, f"nested/{msg.name}")
        out.write(book, f"nested/{book.name}")
        out.writestr("nested/README.txt", "hello")
    day = load(zip_path=archive)
    assert (len(day), day.levels, day.name) == (3, 2, STEM)


def test_dummy_prices_are_kept(tmp_path: Path) -> None:
    msg, book = write_pair(tmp_path)
    day = load(messages=msg, orderbook=book)
    assert day.levels == 2
    assert day.ask_prices[:, 1].tolist() == [DUMMY_ASK_PRICE] * 3
    assert day.bid_prices[:, 1].tolist() == [DUMMY_BID_PRICE] * 3
    assert day.bid_prices[2, 0] == DUMMY_BID_PRICE
    assert day.bid_sizes[2].tolist() == [0, 0]
    assert day.messages["direction"].tolist() == [1, -1, 1]


def test_levels_from_column_count_when_names_do_not_say(tmp_path: Path) -> None:
    msg, book = write_pair(tmp_path, levels=None)
    day = load(messages=msg, orderbook=book)
    assert day.levels == 2
    assert day.name == "messages"
    assert load(messages=msg, orderbook=book, levels=2).levels == 2


def test_single_row_files(tmp_path: Path) -> None:
    msg, book = write_pair(tmp_path, MSG_LINES[:1], BOOK_LINES[:1])
    day = load(messages=msg, orderbook=book)
    assert day.messages.shape == (1,)
    assert day.orderbook.shape == (1, 8)


# --- malformed input ---------------------------------------------------------------------


def test_given_levels_must_match(tmp_path: Path) -> None:
    msg, book = write_pair(tmp_path, levels=None)
    with pytest.raises(ValueError, match=r"book\.csv, line 1: 8 columns, but a 3-level"):
        load(messages=msg, orderbook=book, levels=3)
    named_msg, named_book = write_pair(tmp_path)
    with pytest.raises(ValueError, match=r"levels=5 was given but .*orderbook_2\.csv"):
        load(messages=named_msg, orderbook=named_book, levels=5)


def test_name_levels_must_match_columns(tmp_path: Path) -> None:
    msg, book = write_pair(tmp_path, levels=3)
    with pytest.raises(ValueError, match=r"orderbook_3\.csv, line 1: 8 columns, but a 3-level"):
        load(messages=msg, orderbook=book)


def test_different_row_counts(tmp_path: Path) -> None:
    msg, book = write_pair(tmp_path, MSG_LINES, BOOK_LINES[:2])
    with pytest.raises(ValueError, match=r"message_2\.csv has 3 rows but .*orderbook_2\.csv has 2"):
        load(messages=msg, orderbook=book)


def test_message_with_missing_column_names_file_and_line(tmp_path: Path) -> None:
    lines = [*MSG_LINES[:2], "34200.03,3,11,100,5800000"]
    msg, book = write_pair(tmp_path, lines)
    with pytest.raises(ValueError, match=r"message_2\.csv, line 3: 5 columns, expected 6"):
        load(messages=msg, orderbook=book)


def test_orderbook_with_extra_column_names_file_and_line(tmp_path: Path) -> None:
    lines = [BOOK_LINES[0], BOOK_LINES[1] + ",7", BOOK_LINES[2]]
    msg, book = write_pair(tmp_path, MSG_LINES, lines)
    with pytest.raises(ValueError, match=r"orderbook_2\.csv, line 2: 9 columns, expected 8"):
        load(messages=msg, orderbook=book)


def test_orderbook_column_count_not_a_multiple_of_four(tmp_path: Path) -> None:
    lines = [line.rsplit(",", 1)[0] for line in BOOK_LINES]
    msg, book = write_pair(tmp_path, MSG_LINES, lines, levels=None)
    with pytest.raises(ValueError, match=r"book\.csv, line 1: 7 columns; an orderbook has 4"):
        load(messages=msg, orderbook=book)


def test_non_numeric_value(tmp_path: Path) -> None:
    lines = [MSG_LINES[0], "34200.02,1,12,fifty,5801000,-1", MSG_LINES[2]]
    msg, book = write_pair(tmp_path, lines)
    with pytest.raises(ValueError, match=r"message_2\.csv, line 2: size 'fifty' is not"):
        load(messages=msg, orderbook=book)
    lines = [BOOK_LINES[0], BOOK_LINES[1], BOOK_LINES[2].replace("5801000", "580.1")]
    msg, book = write_pair(tmp_path, MSG_LINES, lines)
    with pytest.raises(ValueError, match=r"orderbook_2\.csv, line 3: column 1 '580\.1'"):
        load(messages=msg, orderbook=book)


def test_unknown_message_type_and_direction(tmp_path: Path) -> None:
    lines = [MSG_LINES[0], MSG_LINES[1], "34200.03,6,11,100,5800000,1"]
    msg, book = write_pair(tmp_path, lines)
    with pytest.raises(ValueError, match=r"message_2\.csv, line 3: type 6 is not one of"):
        load(messages=msg, orderbook=book)
    lines = ["", MSG_LINES[0], "34200.02,1,12,50,5801000,0", MSG_LINES[2]]
    msg, book = write_pair(tmp_path, lines)
    with pytest.raises(ValueError, match=r"message_2\.csv, line 3: direction 0 is neither"):
        load(messages=msg, orderbook=book)


def test_empty_file(tmp_path: Path) -> None:
    msg, book = write_pair(tmp_path)
    msg.write_text("")
    with pytest.raises(ValueError, match=r"message_2\.csv: the file is empty"):
        load(messages=msg, orderbook=book)


def test_zip_without_an_orderbook(tmp_path: Path) -> None:
    msg, _ = write_pair(tmp_path)
    archive = tmp_path / "day.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.write(msg, msg.name)
    with pytest.raises(ValueError, match=r"day\.zip: expected one \*_orderbook_N\.csv member"):
        load(zip_path=archive)


def test_not_a_zip(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.zip"
    bogus.write_text("not a zip")
    with pytest.raises(ValueError, match=r"bogus\.zip: not a zip file"):
        load(zip_path=bogus)


def test_bad_arguments(tmp_path: Path) -> None:
    msg, book = write_pair(tmp_path)
    with pytest.raises(ValueError, match="not both"):
        load(zip_path=excerpt_paths()[1], messages=msg)
    with pytest.raises(ValueError, match="give zip_path, or both"):
        load(messages=msg)
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        load(messages=tmp_path / "nope.csv", orderbook=book)
    with pytest.raises(FileNotFoundError, match=r"nope\.zip"):
        load(zip_path=tmp_path / "nope.zip")


def test_module_exports() -> None:
    assert set(lobster.__all__) <= set(dir(lobster))
