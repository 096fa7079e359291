"""Type stubs for the compiled `tickplane.engine.events` (see events.pyx)."""

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from tickplane.core.events import Event
from tickplane.engine.matching import MatchingEngine

SIDES: dict[int, str]
ORDER_TYPES: dict[int, str]
REASONS: dict[int, str]
REASON_NAMES: tuple[str, ...]

class Names(Protocol):
    """Index -> name (a list of interned names, or anything indexable)."""

    def __getitem__(self, index: int, /) -> str: ...

NUMBERED: Names

def from_array(
    events: npt.NDArray[np.void], symbols: Names | Sequence[str], accounts: Names | Sequence[str]
) -> list[Event]: ...
def from_rows(
    rows: Iterable[tuple[int, ...]],
    symbols: Names | Sequence[str],
    accounts: Names | Sequence[str],
) -> list[Event]: ...
def from_core(
    core: MatchingEngine, symbols: Names | Sequence[str], accounts: Names | Sequence[str]
) -> list[Event]: ...
