-- Minute bars of md_trades, kept by the recorder in the same transaction as the trades
-- (a continuous aggregate): the gateway's Alpaca bars of every timeframe are summed from
-- them instead of from every trade (a month of day bars reads ~8,000 minutes, not a
-- month of trades). `minute` is the start of the minute of the trades' `ts` (UTC); `open` is the price
-- of its first trade (`first_seq`), `close` of its last (`last_seq`), so that minutes
-- folded batch by batch merge exactly. Prices in ticks, volume in lots, notional in
-- tick-lots, as md_trades.
CREATE TABLE md_minute_bars (
    engine     text NOT NULL,
    symbol     text NOT NULL,
    minute     timestamptz NOT NULL,
    open       bigint NOT NULL,
    high       bigint NOT NULL,
    low        bigint NOT NULL,
    close      bigint NOT NULL,
    volume     bigint NOT NULL,
    trades     bigint NOT NULL,
    notional   numeric NOT NULL,
    first_seq  bigint NOT NULL,
    last_seq   bigint NOT NULL,
    PRIMARY KEY (engine, symbol, minute)
);

-- The minute bars of the minutes of `first` to `last` (both included), rebuilt from
-- md_trades: each step of the backfill (0017), and for trades written into md_trades by
-- other means than the recorder (an import, a test). Returns the number of minutes written.
CREATE FUNCTION recorder_rebuild_minute_bars(first timestamptz, last timestamptz)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    -- whole minutes (date_bin, not date_trunc: independent of the session's time zone)
    lo timestamptz := CASE WHEN isfinite(first)
                      THEN date_bin('1 minute', first, 'epoch') ELSE first END;
    hi timestamptz := CASE WHEN isfinite(last)
                      THEN date_bin('1 minute', last, 'epoch') + interval '1 minute' ELSE last END;
    written integer;
BEGIN
    DELETE FROM md_minute_bars WHERE minute >= lo AND minute < hi;
    INSERT INTO md_minute_bars
    SELECT engine, symbol, date_bin('1 minute', ts, 'epoch') AS minute,
           (min(ARRAY[seq, price]))[2], max(price), min(price), (max(ARRAY[seq, price]))[2],
           sum(qty), count(*), sum(price::numeric * qty), min(seq), max(seq)
    FROM md_trades
    WHERE ts >= lo AND ts < hi
    GROUP BY engine, symbol, date_bin('1 minute', ts, 'epoch');
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$fn$;

-- The bars of the trades already recorded are built by the backfill 0017 queues, a
-- partition of md_trades (a day) a transaction, after the migrations' transaction. This
-- migration first built them all here, in one statement in the migrations' transaction
-- (one aggregation of all of md_trades, holding the migrations' lock, md_minute_bars
-- hidden from the recorder meanwhile): a database that applied it then has them all,
-- and 0017 queues nothing for it. The table and function above are the same in both
-- forms, so both reach the same schema.
