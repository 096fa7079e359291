-- Order classes (docs/order-classes.md) in the orders table: a bracket's, OTO's or OCO's
-- parent and legs carry `order_class`, a leg its `parent_id` and `leg` role
-- (take_profit, stop_loss), a trailing stop (class `simple`) its trail. NULL: a plain
-- order (and every order recorded before this migration: rebuild from the engine's log
-- to fill them, api/recorder/README.md).
--
-- `status` gains `held`, as the engine, the gateway's projection and the APIs say it:
-- a stop or stop-limit not yet triggered, and a bracket's or OTO's leg its parent's
-- fills have not activated yet (working nothing: open_qty 0).
ALTER TABLE orders
    ADD COLUMN order_class text,
    ADD COLUMN parent_id bigint,
    ADD COLUMN leg text,
    ADD COLUMN trail_price bigint,
    ADD COLUMN trail_percent double precision;

-- A parent's legs, for the statement that ends them with it (postgres_sink._END_LEGS);
-- plain orders are not in it.
CREATE INDEX orders_parent ON orders (engine, parent_id) WHERE parent_id IS NOT NULL;

-- Stops recorded before held: they said `new` until triggered.
UPDATE orders SET status = 'held'
WHERE status = 'new' AND order_type IN ('stop', 'stop_limit') AND NOT triggered;
