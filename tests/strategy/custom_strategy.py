"""A strategy of a user's own, loaded by `--strategy tests.strategy.custom_strategy:Dip`."""

from __future__ import annotations

import msgspec

from tickplane.engine.strategy import Quote, Strategy


class DipParams(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    qty: int = 10


class Dip(Strategy):
    """Buys `qty` at market once, on the first quote."""

    name = "dip"
    Params = DipParams

    def on_quote(self, quote: Quote) -> None:
        if not self.orders:
            self.submit("buy", self.params.qty)


class NotAStrategy:
    pass
