"""What an account may be called: one rule for the engine's configuration, the gateway's
keys, the command line and the operator's CRDs.

The engine itself takes any 1-64 printable characters on the wire (engine/service.py);
everything that names an account ahead of time keeps to this narrower form: no spaces, no
slash (risk.pairs keys are ACCOUNT/SYMBOL), nothing that needs quoting.
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
