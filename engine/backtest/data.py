"""What a backtest replays: a LOBSTER day, or OHLCV bars from a CSV file.

`open_data` picks the source from what `--data` names:
- a LOBSTER zip, or a message CSV and an orderbook CSV (two paths, or a
  `*_message_N.csv` whose `*_orderbook_N.csv` sits beside it): `LobsterData`;
- any other CSV: `BarData`, with a header naming `time` (or `ts`, `date`,
  `datetime`: ISO 8601, or seconds since the epoch), `open`, `high`, `low`, `close`
  and optionally `volume` and `symbol`;
- a `postgresql://` URL: the trades and tops of book the recorder stored for a
  symbol (`recorded.py`), so a day traded on the platform can be backtested.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tickplane.engine.backtest.recorded import RecordedData, load_recorded
from tickplane.engine.lobster import LobsterDay, load
from tickplane.engine.strategy.model import Bar

__all__ = ["BarData", "DataError", "LobsterData", "RecordedData", "open_data"]

_MESSAGE = re.compile(r"^(?P<stem>.*)_message_(?P<levels>\d+)\.csv$", re.IGNORECASE)


class DataError(ValueError):
    """Backtest data that cannot be read (the message says which and why)."""


@dataclass(frozen=True)
class LobsterData:
    """A LOBSTER day; prices in 1/10,000 dollars, one cent a tick."""

    day: LobsterDay
    symbol: str
    source: str
    tick: int = 100
    price_scale: float = 1e-4  # currency per price unit

    @property
    def events(self) -> int:
        return len(self.day)

    def timestamps(self) -> npt.NDArray[np.int64]:
        """Message times in ns after midnight (exact to the LOBSTER file's 1e-9 s)."""
        return np.rint(self.day.messages["time"] * 1e9).astype(np.int64)


@dataclass(frozen=True)
class BarData:
    """OHLCV bars; prices as integer ticks of `1 / price_scale` (1/10,000 by default)."""

    bars: list[Bar]
    symbol: str
    source: str
    tick: int = 1
    price_scale: float = 1e-4

    @property
    def events(self) -> int:
        return len(self.bars)


def open_data(
    paths: list[str], *, symbol: str | None = None
) -> LobsterData | BarData | RecordedData:
    """The source `--data` names (see the module docstring). DataError if unusable."""
    if not paths:
        raise DataError("--data needs a file")
    first = paths[0]
    if first.startswith(("postgresql://", "postgres://")):
        try:
            return load_recorded(first, symbol)
        except ValueError as exc:
            raise DataError(str(exc)) from None
    try:
        if len(paths) == 2:
            day = load(messages=paths[0], orderbook=paths[1])
            return LobsterData(day, _lobster_symbol(day.name, symbol), f"{paths[0]} {paths[1]}")
        if len(paths) > 2:
            raise DataError("--data takes one file, or a message file and an orderbook file")
        p = Path(first)
        if p.suffix.lower() == ".zip":
            day = load(zip_path=p)
            return LobsterData(day, _lobster_symbol(day.name, symbol), first)
        m = _MESSAGE.match(p.name)
        if m:
            book = p.with_name(f"{m.group('stem')}_orderbook_{m.group('levels')}.csv")
            if not book.is_file():
                raise DataError(f"{first}: a LOBSTER message file needs its orderbook file {book}")
            day = load(messages=p, orderbook=book)
            return LobsterData(day, _lobster_symbol(day.name, symbol), first)
        return load_bars(p, symbol=symbol)
    except FileNotFoundError as exc:
        raise DataError(str(exc)) from None
    except DataError:
        raise
    except ValueError as exc:
        raise DataError(str(exc)) from None


def _lobster_symbol(name: str, given: str | None) -> str:
    return given or name.split("_")[0] or "LOBSTER"


def _parse_time(text: str, where: str) -> int:
    t = text.strip()
    try:
        # Exact: epoch nanoseconds exceed a float's 53 bits, so whole and fractional
        # seconds are converted apart.
        whole, _, frac = t.partition(".")
        if whole.lstrip("-").isdigit() and (not frac or frac.isdigit()):
            ns = int(whole) * 1_000_000_000
            return ns + (int(frac[:9].ljust(9, "0")) if frac else 0) * (
                -1 if t.startswith("-") else 1
            )
        return round(float(t) * 1e9)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise DataError(f"{where}: {t!r} is neither ISO 8601 nor epoch seconds") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def load_bars(path: Path, *, symbol: str | None = None, price_scale: float = 1e-4) -> BarData:
    """Read a CSV of bars (module docstring); bars must be in time order."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    bars: list[Bar] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = {(n or "").strip().lower(): n for n in reader.fieldnames or []}
        tcol = next((fields[k] for k in ("time", "ts", "datetime", "date") if k in fields), None)
        missing = [k for k in ("open", "high", "low", "close") if k not in fields]
        if tcol is None or missing:
            raise DataError(
                f"{path}: a bar CSV needs a header with time (or ts, date, datetime), "
                f"open, high, low, close; missing: {', '.join(missing or ['time'])}"
            )
        last = None
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            try:
                o, h, lo, c = (
                    round(float(row[fields[k]]) / price_scale)
                    for k in ("open", "high", "low", "close")
                )
                v = round(float(row[fields["volume"]])) if "volume" in fields else 0
            except (TypeError, ValueError):
                raise DataError(f"{where}: open/high/low/close/volume must be numbers") from None
            ts = _parse_time(row[tcol] or "", where)
            if last is not None and ts <= last:
                raise DataError(f"{where}: bars must be in strictly increasing time order")
            if not (lo <= min(o, c) and h >= max(o, c)) or lo <= 0:
                raise DataError(f"{where}: needs 0 < low <= open, close <= high")
            last = ts
            sym = symbol or (row.get(fields["symbol"]) if "symbol" in fields else None) or path.stem
            bars.append(Bar(ts, sym, o, h, lo, c, v))
    if not bars:
        raise DataError(f"{path}: no bars")
    return BarData(bars, bars[0].symbol, str(path), price_scale=price_scale)
