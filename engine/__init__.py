"""Tickplane's engine: the compiled order book and matching core, the market-data replay,
and (later) the engine process and strategy runtime.

Layers, lowest first: `book` (C structs, the L3 book, the market-data `Book`) <-
`matching` (the matching contract) <- `replay`, `match` (JSON Lines front end),
`lobster` (LOBSTER files). Nothing here imports the gateway, terminal or operator.
"""
