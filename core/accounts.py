"""What an account may be called: one rule for the engine's requests on the wire, its
configuration, the gateway's keys, the command line and the operator's CRDs.

No spaces, no slash (risk.pairs keys are ACCOUNT/SYMBOL), nothing that needs quoting.
The engine refuses a request naming any other account (`bad_account`, engine/service.py);
only its recovery takes a journal's accounts as written, for an engine from before the
rule took any 1-64 printable characters, and an account it holds so can still have its
orders canceled and queried by name (not place new ones).
"""

from __future__ import annotations

import re

__all__ = ["ACCOUNT_NAME", "ACCOUNT_PATTERN", "ACCOUNT_RULE", "is_account"]

#: The regular expression of an account name without anchors, to compose into others
#: (RE2-compatible and free of backslashes, so a CEL string literal holds it as written).
ACCOUNT_NAME = r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}"
#: A whole account name.
ACCOUNT_PATTERN = f"^{ACCOUNT_NAME}$"
#: The rule in words, for error messages.
ACCOUNT_RULE = "1-64 letters, digits or . _ : @ -, starting with a letter or digit"

_ACCOUNT = re.compile(ACCOUNT_PATTERN)


def is_account(name: str) -> bool:
    """Whether `name` is a valid account name."""
    return _ACCOUNT.fullmatch(name) is not None
