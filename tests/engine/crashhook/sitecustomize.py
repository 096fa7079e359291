"""kill -9 inside a journal commit, for the crash test (tests/engine/test_crash.py);
and an exception inside a turn, for the failed loop's test (tests/engine/test_service.py).

Python imports this module at start when its folder is on PYTHONPATH. With
TICKPLANE_TEST_KILL_IN_COMMIT="<commits>:<seed>" set, the journal writer's copy of a
commit's records (`journal._copy_records`, the module function its compiled `_write`
calls) is wrapped: at the given multi-record commit (the `commits`-th one that copies
more than one record), it copies the commit's parts up to a random point, the last one
possibly in part, and the process sends itself SIGKILL, as a kill -9 landing inside the
copy would. With TICKPLANE_TEST_FAIL_ACCOUNT="<account>", the engine's encoding
(`wire.ENCODER`) of a reply whose events hold an order of that account, or that is that
account's view (GetAccount), raises OverflowError, as a number past 64 bits would: after
the engine applied the request and before it committed the turn, or for a query.
Without the variables it does nothing.
"""

from __future__ import annotations

import os

_SPEC = os.environ.get("TICKPLANE_TEST_KILL_IN_COMMIT")

if _SPEC:
    import random
    import signal
    from typing import Any

    from tickplane.engine import journal

    _commits, _seed = (int(x) for x in _SPEC.split(":"))
    _rng = random.Random(_seed)
    _real = journal._copy_records
    _seen = 0

    def _copy(m: Any, pos: int, parts: tuple[bytes, ...]) -> None:
        global _seen
        if len(parts) >= 4:  # a header and a payload a record: two records or more
            _seen += 1
            if _seen == _commits:
                whole = _rng.randrange(1, len(parts))  # at least one part copies
                cut = _rng.randrange(len(parts[whole]) + 1)
                _real(m, pos, (*parts[:whole], parts[whole][:cut]))
                os.kill(os.getpid(), signal.SIGKILL)
        _real(m, pos, parts)

    journal._copy_records = _copy

_FAIL = os.environ.get("TICKPLANE_TEST_FAIL_ACCOUNT")

if _FAIL:
    from typing import Any as _Any

    from tickplane.core import wire

    _encode = wire.ENCODER.encode

    class _FailingEncoder:
        """`wire.ENCODER` (what the engine's loop encodes with, bound when its module
        is imported, after this one), failing on the account's messages."""

        def encode(self, msg: _Any) -> bytes:
            events = getattr(msg, "events", None) or ()
            view = getattr(msg, "account", None)
            if any(getattr(ev, "account", None) == _FAIL for ev in events) or (
                getattr(view, "account", None) == _FAIL
            ):
                raise OverflowError("int too big to convert (TICKPLANE_TEST_FAIL_ACCOUNT)")
            return _encode(msg)

    wire.ENCODER = _FailingEncoder()  # type: ignore[misc]
