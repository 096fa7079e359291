"""The Alpaca-compatible API: `/v2` (trading) and `/stream` (trade_updates), so that an
unmodified alpaca-py `TradingClient` and `TradingStream` trade against Tickplane.

See api/alpaca/README.md for what is mapped how and where Tickplane differs."""
