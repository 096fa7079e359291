-- An untriggered trailing stop is `held`, like a stop or stop-limit (the engine's order
-- view said so; the gateway's projection and this table said `new` until this version).
UPDATE orders SET status = 'held'
WHERE status = 'new' AND order_type = 'trailing_stop' AND NOT triggered;
