"""Decimal prices and share quantities <-> ticks and lots, and the id mapping."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickplane.api.alpaca.errors import AlpacaError, from_api_error
from tickplane.api.alpaca.ids import asset_uuid, engine_order_id, order_uuid
from tickplane.api.alpaca.units import SymbolUnits
from tickplane.api.errors import ApiError

CENT = SymbolUnits("GOOG", Decimal("0.01"), 1)
COARSE = SymbolUnits("BRK", Decimal("0.05"), 10)


def test_prices_map_to_ticks_exactly() -> None:
    assert CENT.ticks("580.12", "limit_price") == 58012
    assert CENT.ticks(580.12, "limit_price") == 58012  # a float as alpaca-py sends it
    assert CENT.ticks(580, "limit_price") == 58000
    assert COARSE.ticks("10.05", "limit_price") == 201
    assert CENT.price(58012) == "580.12"
    assert COARSE.price(201) == "10.05"
    assert CENT.price(None) is None


@pytest.mark.parametrize(
    ("units", "value", "words"),
    [
        (CENT, "580.125", "tick size"),
        (COARSE, "10.02", "tick size"),
        (CENT, True, "number"),
        (CENT, "abc", "number"),
        (CENT, "NaN", "finite"),
        (CENT, "Infinity", "finite"),
        (CENT, 0, "positive"),
        (CENT, "-1", "positive"),
        (CENT, None, "number"),
    ],
)
def test_bad_prices_are_refused_with_a_reason(
    units: SymbolUnits, value: object, words: str
) -> None:
    with pytest.raises(AlpacaError) as err:
        units.ticks(value, "limit_price")
    assert err.value.status == 422
    assert err.value.code == 40010001
    assert words in err.value.message


def test_quantities_are_whole_shares_in_whole_lots() -> None:
    assert CENT.lots(5) == 5
    assert CENT.lots(5.0) == 5  # alpaca-py sends qty as a float
    assert CENT.lots("7") == 7
    assert COARSE.lots("30") == 3
    assert COARSE.shares(3) == "30"
    for bad, words in ((1.5, "fractional"), ("0.1", "fractional"), (0, "positive")):
        with pytest.raises(AlpacaError, match=words):
            CENT.lots(bad)
    with pytest.raises(AlpacaError, match="lot size 10"):
        COARSE.lots(15)
    with pytest.raises(AlpacaError, match="number"):
        CENT.lots(False)


def test_money_is_tick_lots_in_currency() -> None:
    assert CENT.money(58012) == "580.12"
    assert COARSE.money(201) == "100.50"  # 201 ticks of 0.05 on a lot of 10 shares
    assert CENT.money(-150) == "-1.50"


@given(st.integers(min_value=1, max_value=2**63 - 1))
def test_order_ids_round_trip_through_uuids(order_id: int) -> None:
    text = order_uuid(order_id)
    assert engine_order_id(text) == order_id
    assert engine_order_id(text.upper()) == order_id


def test_foreign_uuids_are_no_order_of_ours() -> None:
    assert engine_order_id(asset_uuid("GOOG")) is None
    assert engine_order_id("not-a-uuid") is None
    assert engine_order_id("00000000-0000-0000-0000-000000000001") is None
    assert asset_uuid("GOOG") == asset_uuid("GOOG") != asset_uuid("AAPL")


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (401, "unauthorized", (401, 40110000)),
        (404, "unknown_order", (404, 40410000)),
        (403, "max_order_qty", (403, 40310000)),
        (403, "kill_switch", (403, 40310000)),
        # The engine's order-rate refusal is a business refusal: never 429 (the SDK
        # would retry it silently).
        (429, "order_rate", (403, 40310000)),
        (429, "rate_limited", (429, 42910000)),  # the key's request rate: a real 429
        (422, "unknown_symbol", (422, 40010001)),
        (422, "client_order_id_reused", (422, 40010001)),
        (503, "engine_unavailable", (503, 50310000)),
    ],
)
def test_gateway_errors_in_alpacas_terms(
    status: int, reason: str, expected: tuple[int, int]
) -> None:
    err = from_api_error(ApiError(status, reason, "why"))
    assert (err.status, err.code) == expected
    assert "why" in err.message


def test_an_engine_shutting_down_is_a_503() -> None:
    """The engine's refusal of a request it got while stopping (a restart): nothing was
    done, retry later; not bad input."""
    err = ApiError.from_engine("shutting_down", "the engine is shutting down")
    assert err.status == 503
    alpaca = from_api_error(err)
    assert (alpaca.status, alpaca.code) == (503, 50310000)


@given(
    st.one_of(
        st.decimals(),
        st.floats(),
        st.integers(),
        st.text(max_size=30),
        st.from_regex(r"-?[0-9]{0,3}(\.[0-9]{0,4})?[eE]-?[0-9]{1,10}", fullmatch=True),
    )
)
def test_any_input_maps_to_a_wire_int_or_an_alpaca_error(value: object) -> None:
    for units in (CENT, COARSE):
        for convert in (units.ticks, units.lots):
            try:
                out = convert(value, "f")
            except AlpacaError as err:
                assert err.status == 422
                continue
            assert 0 < out < 2**63
