"""Accounts, positions and P&L, updated on every trade (docs/risk.md, "Positions").

The engine calls `Positions.on_trade` once per trade on its single-threaded loop and
publishes the `PositionChanged` events it returns. Everything is exact integer
arithmetic in the engine's units:

- prices are int ticks, quantities int lots; cash, cost basis and P&L are tick-lots
  (price * qty); the service converts them to currency with the symbol's tick size;
- realized P&L is FIFO: a closing trade is matched against the oldest open lots of the
  position, so every realized figure is an exact integer (no rounding, no drift);
- the average entry price is the exact rational `cost_basis / position`, where
  `cost_basis` is the sum of price * qty over the open lots, signed like the position
  (long 5 @ 100 is +500, short 3 @ 100 is -300); a float is derived only for display;
- unrealized P&L is `position * mark - cost_basis`, with the mark the symbol's last
  trade price (every trade sets it; `mark` sets it from elsewhere); a
  `PositionChanged` carries it at its own trade's price, the mark at that moment;
- `cash` starts at the account's configured starting cash and moves by the notional of
  every trade (a buy pays, a sell receives), so at all times
  `equity = cash + sum(position * mark) = starting cash + realized + unrealized`.

Cash, cost basis, realized P&L and positions stay well inside 64-bit integers (risk's
`NOTIONAL_CEILING` bounds every trade); a position times a far mark may not (a billion
lots bought at one tick, then one lot traded at 10^12), so unrealized P&L and equity,
which only report, are held to the 64-bit range the wire carries (`_reported`): exact
inside it, the nearest bound outside it, and the identity above then holds no more.

No clock is read here: timestamps come from the caller, so replaying a journal through
a fresh `Positions` gives the same state and the same events, byte for byte.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Final

import msgspec

from tickplane.core.events import PositionChanged

__all__ = [
    "SNAPSHOT_VERSION",
    "AccountView",
    "PositionChanged",
    "PositionView",
    "Positions",
]

SNAPSHOT_VERSION: Final = 1


class PositionView(msgspec.Struct, frozen=True):
    """One account's position in one symbol, as `Positions.position` reports it."""

    account: str
    symbol: str
    position: int  # signed lots
    cost_basis: int  # tick-lots over the open lots, signed like the position
    realized_pnl: int  # tick-lots, cumulative for this account and symbol
    unrealized_pnl: int  # tick-lots against `mark` (0 without a mark)
    mark: int | None  # the symbol's mark price in ticks (its last trade)

    @property
    def avg_price(self) -> float | None:
        """Average entry price in ticks, for display only (None when flat)."""
        return self.cost_basis / self.position if self.position else None


class AccountView(msgspec.Struct, frozen=True):
    """An account's cash, equity and P&L, with its positions sorted by symbol."""

    account: str
    cash: int  # tick-lots
    equity: int  # cash + the marked value of every position
    realized_pnl: int  # over all symbols
    unrealized_pnl: int  # over all symbols
    positions: list[PositionView]


class _Position:
    """Mutable state of one (account, symbol): the FIFO lots and their integer sums."""

    __slots__ = ("cost", "lots", "net", "realized")

    def __init__(self) -> None:
        self.net = 0  # signed lots
        self.cost = 0  # signed tick-lots: sum(price * qty) over lots, sign of `net`
        self.realized = 0  # tick-lots
        # Open lots, oldest first: [price, qty] with qty > 0 (the side is net's sign).
        self.lots: deque[list[int]] = deque()


class _Account:
    __slots__ = ("cash", "positions")

    def __init__(self, cash: int) -> None:
        self.cash = cash
        self.positions: dict[str, _Position] = {}


class _PositionState(msgspec.Struct, array_like=True):
    symbol: str
    net: int
    cost: int
    realized: int
    lots: list[tuple[int, int]]


class _AccountState(msgspec.Struct, array_like=True):
    account: str
    cash: int
    positions: list[_PositionState]


class _Snapshot(msgspec.Struct):
    version: int
    marks: list[tuple[str, int]]
    accounts: list[_AccountState]


_decode_snapshot = msgspec.json.Decoder(_Snapshot).decode
_encode = msgspec.json.Encoder().encode


class Positions:
    """Cash, positions, FIFO cost basis and P&L of every account, from the trades.

    `starting_cash` gives some accounts their starting cash (tick-lots); any other
    account starts with `default_cash`. An account exists from its first trade (or its
    first query, which does not create it).
    """

    __slots__ = ("_accounts", "_default_cash", "_marks", "_starting_cash")

    def __init__(
        self, starting_cash: Mapping[str, int] | None = None, default_cash: int = 0
    ) -> None:
        self._starting_cash: dict[str, int] = dict(starting_cash or {})
        self._default_cash = default_cash
        self._accounts: dict[str, _Account] = {}
        self._marks: dict[str, int] = {}

    # --- updates --------------------------------------------------------------------------

    def on_trade(
        self, symbol: str, price: int, qty: int, buyer: str, seller: str, ts: int
    ) -> list[PositionChanged]:
        """Apply one trade of `qty` lots at `price` ticks between two accounts.

        Returns the buyer's then the seller's `PositionChanged` (`seq` is 0: the engine
        stamps it before publishing). A self-trade (`buyer == seller`) moves neither
        position, cash, cost basis nor realized P&L, so it returns no event. Every
        trade, self-trades included, sets the symbol's mark to `price`.
        """
        if qty <= 0 or price <= 0:
            raise ValueError(f"trade of {qty} lots at {price} ticks: both must be > 0")
        self._marks[symbol] = price
        if buyer == seller:
            return []
        return [
            self._apply(buyer, symbol, price, qty, ts),
            self._apply(seller, symbol, price, -qty, ts),
        ]

    def _apply(self, name: str, symbol: str, price: int, dq: int, ts: int) -> PositionChanged:
        """One side of a trade: `dq` lots signed (+ bought, - sold)."""
        acct = self._accounts.get(name)
        if acct is None:
            acct = self._accounts[name] = _Account(
                self._starting_cash.get(name, self._default_cash)
            )
        pos = acct.positions.get(symbol)
        if pos is None:
            pos = acct.positions[symbol] = _Position()
        acct.cash -= price * dq
        net = pos.net
        if net == 0 or (net > 0) == (dq > 0):
            # Opening or adding: one more lot (merged with the newest at the same price).
            lots = pos.lots
            q = dq if dq > 0 else -dq
            if lots and lots[-1][0] == price:
                lots[-1][1] += q
            else:
                lots.append([price, q])
            pos.cost += price * dq
            pos.net = net + dq
        else:
            self._reduce(pos, price, dq)
        unrealized = pos.net * price - pos.cost  # at this trade's price, the mark now
        if not _LOWEST <= unrealized <= _HIGHEST:
            unrealized = _reported(unrealized)
        return PositionChanged(
            0, ts, name, symbol, pos.net, pos.cost, pos.realized, acct.cash, unrealized
        )

    @staticmethod
    def _reduce(pos: _Position, price: int, dq: int) -> None:
        """Close against the oldest lots first; what is left over opens at `price`."""
        lots = pos.lots
        sign = 1 if pos.net > 0 else -1  # the side being closed
        left = -dq * sign  # lots still to close (> 0)
        realized = 0
        cost = 0  # unsigned cost of the closed lots
        while left and lots:
            lot = lots[0]
            lot_price, lot_qty = lot
            if lot_qty <= left:
                lots.popleft()
                take = lot_qty
            else:
                lot[1] = lot_qty - left
                take = left
            left -= take
            cost += lot_price * take
            realized += (price - lot_price) * take
        pos.realized += realized * sign
        if left:
            # Crossed through zero: the rest opens a new position on the other side.
            lots.append([price, left])
            pos.net = -sign * left
            pos.cost = pos.net * price
        else:
            pos.net += dq
            pos.cost -= cost * sign

    def mark(self, symbol: str, price: int) -> None:
        """Set the symbol's mark price (ticks) for unrealized P&L and equity."""
        if price <= 0:
            raise ValueError(f"mark of {symbol!r} at {price} ticks: must be > 0")
        self._marks[symbol] = price

    # --- queries --------------------------------------------------------------------------

    def net(self, account: str, symbol: str) -> int:
        """The account's signed position in lots (0 if it never traded the symbol)."""
        acct = self._accounts.get(account)
        if acct is None:
            return 0
        pos = acct.positions.get(symbol)
        return 0 if pos is None else pos.net

    def mark_price(self, symbol: str) -> int | None:
        """The symbol's mark price in ticks, None before its first trade or `mark`."""
        return self._marks.get(symbol)

    def accounts(self) -> list[str]:
        """Every account that has traded, sorted."""
        return sorted(self._accounts)

    def position(self, account: str, symbol: str) -> PositionView:
        """The account's position in `symbol` (all zero if it never traded it)."""
        acct = self._accounts.get(account)
        pos = None if acct is None else acct.positions.get(symbol)
        return self._view(account, symbol, pos)

    def _view(self, account: str, symbol: str, pos: _Position | None) -> PositionView:
        mark = self._marks.get(symbol)
        if pos is None:
            return PositionView(account, symbol, 0, 0, 0, 0, mark)
        unrealized = _reported(self._unrealized(symbol, pos))
        return PositionView(account, symbol, pos.net, pos.cost, pos.realized, unrealized, mark)

    def _unrealized(self, symbol: str, pos: _Position) -> int:
        """`pos` marked at the symbol's mark, exactly (0 without a mark: valued at cost)."""
        mark = self._marks.get(symbol)
        return 0 if mark is None else pos.net * mark - pos.cost

    def account(self, account: str) -> AccountView:
        """The account's cash, equity, P&L and positions (symbols it ever traded)."""
        acct = self._accounts.get(account)
        if acct is None:
            cash = self._starting_cash.get(account, self._default_cash)
            return AccountView(account, cash, cash, 0, 0, [])
        views = [self._view(account, s, acct.positions[s]) for s in sorted(acct.positions)]
        realized = sum(v.realized_pnl for v in views)
        # summed exact (a view's own may be held to the bound), then held to it once
        unrealized = sum(self._unrealized(s, p) for s, p in acct.positions.items())
        value = sum(v.cost_basis for v in views) + unrealized
        return AccountView(
            account,
            acct.cash,
            _reported(acct.cash + value),
            realized,
            _reported(unrealized),
            views,
        )

    # --- snapshots ------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole state as JSON bytes; identical states give identical bytes.

        Configuration (starting cash) is not included: it belongs to the caller, which
        passes it to the constructor of the `Positions` it restores into.
        """
        snap = _Snapshot(
            SNAPSHOT_VERSION,
            sorted(self._marks.items()),
            [
                _AccountState(
                    name,
                    acct.cash,
                    [
                        _PositionState(
                            sym, p.net, p.cost, p.realized, [(lp, lq) for lp, lq in p.lots]
                        )
                        for sym, p in sorted(acct.positions.items())
                    ],
                )
                for name, acct in sorted(self._accounts.items())
            ],
        )
        return _encode(snap)

    def restore(self, data: bytes) -> None:
        """Replace the state with a `snapshot()`'s; ValueError if it is not a valid one.

        The state is checked for consistency (lots sum to the position and cost basis);
        on any error the current state is left untouched.
        """
        try:
            snap = _decode_snapshot(data)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a positions snapshot: {exc}") from None
        if snap.version != SNAPSHOT_VERSION:
            raise ValueError(f"positions snapshot version {snap.version}, not {SNAPSHOT_VERSION}")
        accounts: dict[str, _Account] = {}
        for a in snap.accounts:
            acct = accounts[a.account] = _Account(a.cash)
            for p in a.positions:
                pos = acct.positions[p.symbol] = _Position()
                sign = 1 if p.net > 0 else -1
                if any(q <= 0 or lp <= 0 for lp, q in p.lots) or (
                    sum(q for _, q in p.lots) * sign != p.net
                    or sum(lp * q for lp, q in p.lots) * sign != p.cost
                ):
                    raise ValueError(
                        f"positions snapshot: {a.account!r} {p.symbol!r}: lots do not add "
                        f"up to position {p.net} and cost basis {p.cost}"
                    )
                pos.net, pos.cost, pos.realized = p.net, p.cost, p.realized
                pos.lots.extend([lp, q] for lp, q in p.lots)
        self._accounts = accounts
        self._marks = dict(snap.marks)


_LOWEST: Final = -(2**63)
_HIGHEST: Final = 2**63 - 1


def _reported(value: int) -> int:
    """`value` held to the 64-bit range the wire carries (see the module docstring)."""
    return _LOWEST if value < _LOWEST else _HIGHEST if value > _HIGHEST else value
