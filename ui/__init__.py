"""Tickplane's Streamlit terminal, a client of the gateway's HTTP API. Not built yet."""
