"""`quick_order`, the fast path ahead of `OrderCreate`: where it answers, `OrderCreate`
answers the same; what it does not take for certain it leaves to `OrderCreate`."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tickplane.api.quick_orders import QuickOrder, quick_order
from tickplane.api.schemas import MAX_INT, OrderCreate, PlainOrderCreate

CLASS_FIELDS = ("order_class", "take_profit", "stop_loss", "trail_price", "trail_percent")
PLAIN = {"symbol": "GOOG", "side": "buy", "type": "limit", "qty": 10, "limit_price": 58000}


def _same_as_order_create(fields: dict[str, Any]) -> None:
    quick = quick_order(fields)
    try:
        model = OrderCreate.model_validate(fields)
    except ValidationError:
        assert quick is None, (fields, quick)
        return
    if quick is not None:
        dumped = model.model_dump()
        # the fast path takes plain orders only: none of the order-class fields
        assert [dumped.pop(f) for f in CLASS_FIELDS] == [None] * len(CLASS_FIELDS), fields
        assert msgspec.structs.asdict(quick) == dumped, fields


@pytest.mark.parametrize(
    "fields",
    [
        PLAIN,
        {**PLAIN, "time_in_force": "ioc", "client_order_id": "c-1", "post_only": True},
        {"symbol": "GOOG", "side": "sell", "type": "market", "qty": 5},
        {
            "symbol": "AAPL",
            "side": "sell",
            "type": "stop_limit",
            "qty": 3,
            "stop_price": 18000,
            "limit_price": 17990,
        },
        {"symbol": "BRK.B", "side": "buy", "type": "stop", "qty": 1, "stop_price": 5},
        {"symbol": "GOOG", "side": "buy", "qty": 1, "limit_price": MAX_INT},
    ],
)
def test_the_plain_shape_takes_the_fast_path_with_order_creates_result(
    fields: dict[str, Any],
) -> None:
    assert quick_order(fields) is not None
    _same_as_order_create(fields)


@pytest.mark.parametrize(
    "fields",
    [
        {**PLAIN, "qty": "10"},  # numeric strings are OrderCreate's to read
        {**PLAIN, "qty": 10.0},
        {**PLAIN, "qty": True},
        {**PLAIN, "qty": 0},
        {**PLAIN, "limit_price": MAX_INT + 1},
        {**PLAIN, "price": 58000, "limit_price": None},  # the alias
        {**PLAIN, "symbol": "GOOG\n"},
        {**PLAIN, "symbol": ""},
        {**PLAIN, "symbol": "G" * 33},
        {**PLAIN, "side": "BUY"},
        {**PLAIN, "post_only": 1},
        {**PLAIN, "client_order_id": "has space"},
        {**PLAIN, "client_order_id": "x\n"},
        {**PLAIN, "extra": 1},
        {"symbol": "GOOG", "side": "buy", "qty": 1},  # a limit order without its price
        {"symbol": "GOOG", "side": "buy", "type": "market", "qty": 1, "post_only": True},
        {"symbol": "GOOG", "side": "buy", "type": "market", "qty": 1, "stop_price": 3},
        # order classes and trailing stops are OrderCreate's
        {**PLAIN, "order_class": "oto", "take_profit": {"limit_price": 58100}},
        {**PLAIN, "order_class": "simple"},
        {"symbol": "GOOG", "side": "sell", "type": "trailing_stop", "qty": 1, "trail_price": 5},
    ],
)
def test_anything_else_is_left_to_order_create(fields: dict[str, Any]) -> None:
    assert quick_order(fields) is None
    _same_as_order_create(fields)


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-2, max_value=2**63),
    st.sampled_from([1, 5, 58000, MAX_INT, MAX_INT + 1]),
    st.floats(allow_nan=True),
    st.sampled_from(
        [
            "GOOG",
            "buy",
            "sell",
            "limit",
            "market",
            "stop",
            "stop_limit",
            "ioc",
            "gtc",
            "day",
            "fok",
            "10",
            " 7 ",
            "c-1",
            "a b",
            "x\n",
            "",
        ]
    ),
    st.text(max_size=40),
)
_names = st.sampled_from([*OrderCreate.model_fields, "price", "other"])


@settings(max_examples=400, deadline=None)
@given(
    base=st.sampled_from(
        [
            PLAIN,
            {"symbol": "GOOG", "side": "sell", "type": "market", "qty": 5},
            {
                "symbol": "X",
                "side": "buy",
                "type": "stop_limit",
                "qty": 3,
                "stop_price": 2,
                "limit_price": 1,
            },
        ]
    ),
    changes=st.dictionaries(_names, _values, max_size=3),
    dropped=st.sets(st.sampled_from(list(OrderCreate.model_fields)), max_size=2),
)
def test_fuzzed_fields_get_order_creates_answer(
    base: dict[str, Any], changes: dict[str, Any], dropped: set[str]
) -> None:
    fields = {k: v for k, v in {**base, **changes}.items() if k not in dropped}
    _same_as_order_create(fields)


def test_it_knows_every_field_and_rule_of_order_create() -> None:
    """A new OrderCreate field or validator must be taught to QuickOrder (or the fast
    path would take orders OrderCreate refuses, or drop a field)."""
    assert list(QuickOrder.__struct_fields__) == [
        "symbol",
        "side",
        "qty",
        "type",
        "limit_price",
        "stop_price",
        "time_in_force",
        "post_only",
        "client_order_id",
    ]
    # the order-class fields are not QuickOrder's: an order with any goes to OrderCreate
    assert set(QuickOrder.__struct_fields__) == set(PlainOrderCreate.model_fields)
    assert set(OrderCreate.model_fields) - set(PlainOrderCreate.model_fields) == set(CLASS_FIELDS)
    decorators = PlainOrderCreate.__pydantic_decorators__
    assert set(decorators.model_validators) == {"_single_price", "_prices_fit_the_type"}
    # (OrderCreate overrides the rule: an OCO's limit_price may be its take-profit's)
    assert set(OrderCreate.__pydantic_decorators__.model_validators) == {
        "_single_price",
        "_prices_fit_the_type",
    }
    assert not decorators.field_validators and not decorators.validators
