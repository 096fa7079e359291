"""Tickplane's gateway (FastAPI) and recorder. Not built yet: see the gateway issue."""
