-- A trailing stop's stop moves with the trades after it (the engine's OrderTrailed): the
-- orders table keeps its current stop_price (as it does a held leg's replaced stop) and
-- the watermark it trails. NULL: not a trailing stop, or no trade since it was placed.
ALTER TABLE orders ADD COLUMN hwm bigint;
