"""Typed strategy parameters from configuration.

A strategy declares its parameters as a msgspec `Struct` (`Strategy.Params`); values
come from the `Strategy` resource's `params` (a JSON object) or the command line
(`--params fast=10 slow=30`, or one JSON object). They are converted and validated
against the declared types; a wrong name or value is a `ParamsError` naming it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import msgspec

__all__ = ["NoParams", "ParamsError", "load_params", "parse_cli_params"]

P = TypeVar("P", bound=msgspec.Struct)


class ParamsError(ValueError):
    """Parameters that do not fit the strategy's declared `Params`."""


class NoParams(msgspec.Struct, forbid_unknown_fields=True):
    """For strategies without parameters."""


def load_params(cls: type[P], values: Mapping[str, Any] | None) -> P:
    """Convert `values` into the strategy's `Params` (strings are parsed: "10" -> 10)."""
    try:
        return msgspec.convert(dict(values or {}), cls, strict=False)
    except msgspec.ValidationError as exc:
        raise ParamsError(f"bad strategy params: {exc}") from None


def parse_cli_params(items: Sequence[str] | None) -> dict[str, Any]:
    """`["fast=10", "slow=30"]` or `['{"fast": 10}']` -> a dict (values stay strings
    when not JSON; `load_params` converts them to the declared types)."""
    out: dict[str, Any] = {}
    for item in items or []:
        text = item.strip()
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ParamsError(f"--params {text!r}: not a JSON object ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise ParamsError(f"--params {text!r}: not a JSON object")
            out.update(obj)
            continue
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise ParamsError(f"--params {text!r}: expected NAME=VALUE or a JSON object")
        out[key.strip()] = value.strip()
    return out
