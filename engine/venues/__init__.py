"""Venues: where the engine routes orders it does not match itself.

`base` holds the interface (`Venue`, `VenueOrder`, the `Venue*` events, `SymbolSpec`);
`alpaca` the Alpaca adapter (imported on demand: it pulls in alpaca-py).
"""

from tickplane.engine.venues.base import (
    OffTickPrice,
    SymbolSpec,
    Venue,
    VenueAccepted,
    VenueCanceled,
    VenueEvent,
    VenueFilled,
    VenueOrder,
    VenueRejected,
    VenueReplaced,
    VenueStatus,
)

__all__ = [
    "OffTickPrice",
    "SymbolSpec",
    "Venue",
    "VenueAccepted",
    "VenueCanceled",
    "VenueEvent",
    "VenueFilled",
    "VenueOrder",
    "VenueRejected",
    "VenueReplaced",
    "VenueStatus",
]
