"""Helpers for tests that use the control plane through the Kubernetes Python client."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from kubernetes.client.exceptions import ApiException

__all__ = ["as_dict", "eventually"]

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], *, timeout: float = 30.0, what: str = "") -> T:
    """Poll `probe` until it returns something other than None (or fail after `timeout`).

    A 404 or 409 from the apiserver means not yet (an object not created yet, a conflict
    with a controller's write); any other error fails at once.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
            last = exc
        else:
            if value is not None:
                return value
            last = value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last})")


def as_dict(value: object) -> dict[str, Any]:
    """A custom object as the client returns it (typed `object`), checked to be a dict."""
    assert isinstance(value, dict)
    return cast(dict[str, Any], value)
