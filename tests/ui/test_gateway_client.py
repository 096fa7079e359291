"""`GatewayClient` against a real gateway: what each kind of answer becomes."""

from __future__ import annotations

import pytest

from tests.cli.running import free_ports
from tests.ui.conftest import Platform
from tickplane.ui.gateway import GatewayClient, GatewayDown, NotAvailable, Rejected


def test_answers_become_data_or_one_of_three_errors(ui_platform: Platform) -> None:
    key = ui_platform.key("carol")
    gw = GatewayClient(ui_platform.gateway, key["key_id"], key["secret"])
    assert gw.health()
    assert gw.check_key() == "carol"
    goog = next(s for s in gw.symbols() if s.name == "GOOG")
    assert (str(goog.tick_size), goog.lot_size) == ("0.01", 1)
    book = gw.book("GOOG", 3)
    assert book.best_bid is not None and book.best_ask is not None
    assert book.best_bid < book.best_ask and len(book.bids) == 3

    assert gw.strategies() == []  # served (api/routes/strategies.py); carol runs none
    with pytest.raises(NotAvailable):  # a route this gateway does not serve
        gw._call("GET", "/no-such-route")
    with pytest.raises(Rejected) as unknown:  # a route it serves, an order that is not ours
        gw.cancel(10**12)
    assert (unknown.value.status, unknown.value.reason) == (404, "unknown_order")
    with pytest.raises(Rejected) as bad:
        gw.submit({"symbol": "GOOG", "side": "buy", "type": "limit", "qty": 0, "limit_price": 1})
    assert bad.value.status == 422

    stranger = GatewayClient(ui_platform.gateway, key["key_id"], "wrong")
    with pytest.raises(Rejected) as refused:
        stranger.check_key()
    assert refused.value.status == 401

    nowhere = GatewayClient(f"http://127.0.0.1:{free_ports(1)}", key["key_id"], key["secret"])
    with pytest.raises(GatewayDown, match="cannot reach"):
        nowhere.orders()
    for client in (gw, stranger, nowhere):
        client.close()
