-- The engine is the truth: idempotency by client_order_id is the engine's, and what the
-- gateway shows of orders is its projection of the engine's events. The gateway's own
-- order table goes.
DROP TABLE IF EXISTS api_orders;
