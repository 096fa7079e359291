"""Tickplane's shared core: the event types and the engine's wire protocol.

Every part may import it; it imports no part. Engine, gateway, recorder, strategies
and tests meet here instead of importing each other.
"""
