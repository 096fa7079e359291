"""Venues: where the engine routes orders it does not match itself.

`base` holds the interface (`Venue`, `VenueOrder`, `HandBack`, the `Venue*` events,
`SymbolSpec`);
`alpaca` the Alpaca adapter (imported on demand: it pulls in alpaca-py).
"""

from tickplane.engine.venues.base import (
    HandBack,
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
    "HandBack",
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
