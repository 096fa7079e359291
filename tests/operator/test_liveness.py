"""The operator's liveness probe fails when its resync loop stalls, not when it errs."""

from __future__ import annotations

import pytest
from kubernetes import client

from tickplane.operator.handlers import OperatorContext


def test_liveness_follows_the_resync_loop() -> None:
    ctx = OperatorContext(api=client.ApiClient(), default_image="i", resync_seconds=20)
    assert ctx.check_alive().startswith("resync ")
    ctx.last_resync -= 119  # six intervals of 20 s is the limit
    ctx.check_alive()
    ctx.last_resync -= 2
    with pytest.raises(RuntimeError, match="has not finished a round"):
        ctx.check_alive()
