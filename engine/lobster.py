"""Load LOBSTER message/orderbook files (``tickplane.engine.lobster``).

LOBSTER (https://lobsterdata.com) reconstructs NASDAQ order flow into two CSV files per
trading day: a *message* file (one event a row: time, type, order id, size, price,
direction) and an *orderbook* file whose row ``i`` is the top ``N`` levels of the book
after message ``i`` (``ask price, ask size, bid price, bid size`` for each level). Sample
files come as one zip per level count holding both CSVs (and a README).

This module only parses: it turns a zip or a CSV pair into numpy arrays, checks that the
two files agree, and says precisely what is wrong (file and line) when they do not. It is
pure Python + numpy; parsing uses numpy's C reader (``np.loadtxt``), so the 34 MB
10-level orderbook loads in a fraction of a second.

Empty levels keep LOBSTER's dummy values (``9999999999`` for a missing ask price,
``-9999999999`` for a missing bid price, size 0): nothing is rewritten.
"""

from __future__ import annotations

import io
import os
import re
import warnings
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "DUMMY_ASK_PRICE",
    "DUMMY_BID_PRICE",
    "EXCERPT_ROWS",
    "MESSAGE_DTYPE",
    "MESSAGE_TYPES",
    "SAMPLE_LEVELS",
    "LobsterDay",
    "excerpt_paths",
    "load",
    "sample_paths",
    "shared_paths",
]

#: One LOBSTER message: seconds after midnight, event type, order id, shares, price in
#: 1/10,000 dollars, direction (1 buy limit order, -1 sell limit order).
MESSAGE_DTYPE: Final = np.dtype(
    [
        ("time", "f8"),
        ("type", "i1"),
        ("id", "i8"),
        ("size", "i8"),
        ("price", "i8"),
        ("direction", "i1"),
    ]
)

#: Event types a message file may hold: 1 submission, 2 partial cancellation, 3 deletion,
#: 4 visible execution, 5 hidden execution, 7 trading halt indicator.
MESSAGE_TYPES: Final = (1, 2, 3, 4, 5, 7)

#: Price LOBSTER writes for an ask level that does not exist (its size is 0).
DUMMY_ASK_PRICE: Final = 9_999_999_999
#: Price LOBSTER writes for a bid level that does not exist (its size is 0).
DUMMY_BID_PRICE: Final = -9_999_999_999

#: Level counts of the GOOG sample files.
SAMPLE_LEVELS: Final = (1, 5, 10)
#: Rows (messages, and orderbook rows) kept in each committed excerpt.
EXCERPT_ROWS: Final = 3000

_SAMPLE_NAME = "LOBSTER_SampleFile_GOOG_2012-06-21_{levels}.zip"
_MESSAGE_RE = re.compile(r"^(?P<stem>.*)_message_(?P<levels>\d+)\.csv$", re.IGNORECASE)
_ORDERBOOK_RE = re.compile(r"^(?P<stem>.*)_orderbook_(?P<levels>\d+)\.csv$", re.IGNORECASE)

Messages = npt.NDArray[np.void]
Orderbook = npt.NDArray[np.int64]


@dataclass(frozen=True)
class LobsterDay:
    """One LOBSTER trading day: messages and the book after each of them.

    Attributes:
        messages: structured array of ``MESSAGE_DTYPE``, one element per message.
        orderbook: int64 array of shape ``(len(messages), 4 * levels)``; row ``i`` is the
            book after message ``i``: ask price, ask size, bid price, bid size per level.
        levels: number of levels in the orderbook file.
        name: the files' common stem, e.g. ``GOOG_2012-06-21_34200000_57600000``.
    """

    messages: Messages
    orderbook: Orderbook
    levels: int
    name: str

    def __len__(self) -> int:
        return int(self.messages.shape[0])

    @property
    def ask_prices(self) -> Orderbook:
        """Ask prices, shape ``(rows, levels)``, best first (a view)."""
        return self.orderbook[:, 0::4]

    @property
    def ask_sizes(self) -> Orderbook:
        """Ask sizes, shape ``(rows, levels)``, best first (a view)."""
        return self.orderbook[:, 1::4]

    @property
    def bid_prices(self) -> Orderbook:
        """Bid prices, shape ``(rows, levels)``, best first (a view)."""
        return self.orderbook[:, 2::4]

    @property
    def bid_sizes(self) -> Orderbook:
        """Bid sizes, shape ``(rows, levels)``, best first (a view)."""
        return self.orderbook[:, 3::4]


def load(
    *,
    zip_path: str | os.PathLike[str] | None = None,
    messages: str | os.PathLike[str] | None = None,
    orderbook: str | os.PathLike[str] | None = None,
    levels: int | None = None,
) -> LobsterDay:
    """Load a LOBSTER day from a zip, or from a message CSV and an orderbook CSV.

    Args:
        zip_path: a LOBSTER zip holding one ``*_message_N.csv`` and one
            ``*_orderbook_N.csv`` (other members, such as the README, are ignored).
        messages: the message CSV (with ``orderbook``, instead of ``zip_path``).
        orderbook: the orderbook CSV (with ``messages``).
        levels: the expected number of levels; by default it is taken from the file
            names (``..._orderbook_10.csv``) or else the orderbook's column count.

    Returns:
        The parsed day.

    Raises:
        ValueError: the arguments are inconsistent, or the files are malformed (wrong
            column count, bad values, different row counts...); the message names the
            file and, where it applies, the line.
        FileNotFoundError: a path does not exist.
    """
    if zip_path is not None:
        if messages is not None or orderbook is not None:
            raise ValueError("give either zip_path or messages + orderbook, not both")
        return _load_zip(Path(zip_path), levels)
    if messages is None or orderbook is None:
        raise ValueError("give zip_path, or both messages and orderbook")
    msg_path, book_path = Path(messages), Path(orderbook)
    name = _stem(msg_path.name, _MESSAGE_RE) or msg_path.stem
    return _build(
        msg_text=_read_text(msg_path),
        msg_source=str(msg_path),
        book_text=_read_text(book_path),
        book_source=str(book_path),
        levels=levels,
        name_levels=(_name_levels(msg_path.name), _name_levels(book_path.name)),
        name=name,
    )


def shared_paths() -> dict[int, Path] | None:
    """The full GOOG sample zips in the shared data folder, per level, if present.

    The folder is ``$TICKPLANE_SHARED/data/lobster`` when that variable is set, else the
    first ``shared/data/lobster`` found beside this file or one of its parents (the
    repository lives at ``<work>/main`` and the shared folder at ``<work>/shared``).
    """
    candidates: list[Path] = []
    env = os.environ.get("TICKPLANE_SHARED")
    if env:
        candidates.append(Path(env) / "data" / "lobster")
    here = Path(__file__).resolve()
    candidates.extend(parent / "shared" / "data" / "lobster" for parent in here.parents)
    for folder in candidates:
        paths = _sample_set(folder)
        if paths is not None:
            return paths
    return None


def excerpt_paths() -> dict[int, Path]:
    """The committed excerpts (first ``EXCERPT_ROWS`` rows of each sample), per level.

    Raises:
        FileNotFoundError: not running from a source checkout (the excerpts live under
            ``tests/data/lobster/`` in the repository, not in the installed package).
    """
    here = Path(__file__).resolve()
    for parent in here.parents:
        paths = _sample_set(parent / "tests" / "data" / "lobster")
        if paths is not None:
            return paths
    raise FileNotFoundError(
        "the LOBSTER excerpts (tests/data/lobster/) were not found above "
        f"{here.parent}; run from a source checkout of Tickplane"
    )


def sample_paths() -> dict[int, Path]:
    """The GOOG 2012-06-21 sample zip for each level count (1, 5, 10).

    The full files from the shared data folder when present (see ``shared_paths``), else
    the small committed excerpts (see ``excerpt_paths``), so that code and tests run on a
    fresh clone.
    """
    return shared_paths() or excerpt_paths()


# --- internals ------------------------------------------------------------------------


def _sample_set(folder: Path) -> dict[int, Path] | None:
    paths = {n: folder / _SAMPLE_NAME.format(levels=n) for n in SAMPLE_LEVELS}
    if all(p.is_file() for p in paths.values()):
        return paths
    return None


def _stem(filename: str, pattern: re.Pattern[str]) -> str | None:
    match = pattern.match(filename)
    return match.group("stem") if match else None


def _name_levels(filename: str) -> int | None:
    for pattern in (_MESSAGE_RE, _ORDERBOOK_RE):
        match = pattern.match(filename)
        if match:
            return int(match.group("levels"))
    return None


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return _decode(path.read_bytes(), str(path))


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(f"{source}, line {line}: not a LOBSTER CSV (non-ASCII bytes)") from exc


def _load_zip(path: Path, levels: int | None) -> LobsterDay:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: not a zip file") from exc
    with archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        msg_member = _one_member(path, names, _MESSAGE_RE, "message")
        book_member = _one_member(path, names, _ORDERBOOK_RE, "orderbook")
        msg_base, book_base = msg_member.rsplit("/", 1)[-1], book_member.rsplit("/", 1)[-1]
        msg_source, book_source = f"{path}:{msg_member}", f"{path}:{book_member}"
        msg_text = _decode(archive.read(msg_member), msg_source)
        book_text = _decode(archive.read(book_member), book_source)
    return _build(
        msg_text=msg_text,
        msg_source=msg_source,
        book_text=book_text,
        book_source=book_source,
        levels=levels,
        name_levels=(_name_levels(msg_base), _name_levels(book_base)),
        name=_stem(msg_base, _MESSAGE_RE) or path.stem,
    )


def _one_member(path: Path, names: Iterable[str], pattern: re.Pattern[str], kind: str) -> str:
    found = [n for n in names if pattern.match(n.rsplit("/", 1)[-1])]
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise ValueError(
            f"{path}: expected one *_{kind}_N.csv member, found {what} "
            f"(members: {', '.join(sorted(names)) or 'none'})"
        )
    return found[0]


def _build(
    *,
    msg_text: str,
    msg_source: str,
    book_text: str,
    book_source: str,
    levels: int | None,
    name_levels: tuple[int | None, int | None],
    name: str,
) -> LobsterDay:
    msg_levels, book_levels = name_levels
    if msg_levels is not None and book_levels is not None and msg_levels != book_levels:
        raise ValueError(
            f"{msg_source} is a {msg_levels}-level file but {book_source} is a "
            f"{book_levels}-level file"
        )
    named = book_levels if book_levels is not None else msg_levels
    if levels is not None and levels < 1:
        raise ValueError(f"levels must be at least 1, got {levels}")
    if levels is not None and named is not None and levels != named:
        raise ValueError(f"levels={levels} was given but {book_source} is named for {named}")

    msgs = _parse_messages(msg_text, msg_source)
    book = _parse_orderbook(book_text, book_source)

    columns = int(book.shape[1])
    if columns % 4:
        raise ValueError(
            f"{book_source}, line 1: {columns} columns; an orderbook has 4 per level "
            "(ask price, ask size, bid price, bid size)"
        )
    found = columns // 4
    expected = levels if levels is not None else named
    if expected is not None and found != expected:
        raise ValueError(
            f"{book_source}, line 1: {columns} columns, but a {expected}-level orderbook "
            f"has {4 * expected}"
        )
    if msgs.shape[0] != book.shape[0]:
        raise ValueError(
            f"{msg_source} has {msgs.shape[0]} rows but {book_source} has {book.shape[0]}; "
            "row i of the orderbook is the book after message i, so they must match"
        )
    return LobsterDay(messages=msgs, orderbook=book, levels=found, name=name)


def _loadtxt(
    text: str, source: str, dtype: np.dtype[Any], ndmin: Literal[1, 2]
) -> npt.NDArray[Any]:
    """``np.loadtxt`` over ``text``; an empty input or a parse error raises a ValueError."""
    if not text.strip():
        raise ValueError(f"{source}: the file is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            parsed: npt.NDArray[Any] = np.loadtxt(
                io.StringIO(text), delimiter=",", dtype=dtype, ndmin=ndmin
            )
            return parsed
        except ValueError as exc:
            raise ValueError(_diagnose(text, source, dtype) or f"{source}: {exc}") from exc


def _diagnose(text: str, source: str, dtype: np.dtype[Any]) -> str | None:
    """Find the first bad line of a CSV numpy refused and say what is wrong with it.

    Only runs after a failed fast parse, so it can afford a Python loop.
    """
    dt = dtype
    fields: list[tuple[str, np.dtype[np.generic]]]
    if dt.names:
        fields = [(n, dt.fields[n][0]) for n in dt.names] if dt.fields else []
        width: int | None = len(fields)
    else:
        fields, width = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split(",")
        if width is None:
            width = len(cells)
        if len(cells) != width:
            return (
                f"{source}, line {number}: {len(cells)} columns, expected {width} "
                f"(got {line.strip()[:80]!r})"
            )
        for column, cell in enumerate(cells):
            field_name, field_dtype = fields[column] if fields else (f"column {column + 1}", dt)
            try:
                value = np.array([cell.strip()]).astype(field_dtype)
                if field_dtype.kind == "i" and "." in cell:
                    raise ValueError("not an integer")
                if field_dtype.kind == "f" and not np.isfinite(value[0]):
                    raise ValueError("not finite")
            except (ValueError, OverflowError):
                return (
                    f"{source}, line {number}: {field_name} {cell.strip()!r} is not "
                    f"a valid {field_dtype.name}"
                )
    return None


def _parse_messages(text: str, source: str) -> Messages:
    msgs: Messages = _loadtxt(text, source, MESSAGE_DTYPE, ndmin=1)
    problems: list[tuple[int, str]] = []
    bad = ~np.isin(msgs["type"], MESSAGE_TYPES)
    if bad.any():
        i = int(np.argmax(bad))
        problems.append((i, f"type {int(msgs['type'][i])} is not one of {MESSAGE_TYPES}"))
    bad = ~np.isin(msgs["direction"], (-1, 1))
    if bad.any():
        i = int(np.argmax(bad))
        problems.append((i, f"direction {int(msgs['direction'][i])} is neither 1 nor -1"))
    bad = msgs["size"] < 0
    if bad.any():
        i = int(np.argmax(bad))
        problems.append((i, f"size {int(msgs['size'][i])} is negative"))
    if problems:
        row, what = min(problems)
        raise ValueError(f"{source}, line {_line_of_row(text, row)}: {what}")
    return msgs


def _parse_orderbook(text: str, source: str) -> Orderbook:
    book = _loadtxt(text, source, np.dtype(np.int64), ndmin=2)
    return np.ascontiguousarray(book, dtype=np.int64)


def _line_of_row(text: str, row: int) -> int:
    """The 1-based line number of data row ``row`` (blank lines are skipped by numpy)."""
    seen = -1
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            seen += 1
            if seen == row:
                return number
    return row + 1
