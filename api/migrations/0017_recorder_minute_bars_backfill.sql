-- The backfill of md_minute_bars (0016) from the trades recorded before it, in steps:
-- each step rebuilds the minute bars of the trades of one partition of md_trades (a
-- day; a chunk under TimescaleDB) in a transaction of its own, and takes that partition
-- off the queue in the same transaction. The migration runner (api/db.py,
-- backfill_minute_bars) runs the steps after the migrations' transaction: no step holds
-- the migrations' lock, a step interrupted rolls back alone, and the next run resumes
-- with the partitions still queued. Rebuilding a partition's minutes twice gives the
-- same rows, so a step whose commit a crash lost is simply run again.

-- The queue: the partitions whose trades still need their bars (md_trades itself when
-- it has none: a plain table).
CREATE TABLE md_minute_bars_backfill (
    part  regclass PRIMARY KEY
);

-- Queued only when the bars are empty while there are trades: a database that applied
-- 0016 in its first form built all its bars then (and the recorder kept them since); one
-- that applies the present 0016 in the same run as this migration has none yet. Only
-- the partitions that exist now: the trades of later ones are the recorder's, which
-- writes their bars with them.
INSERT INTO md_minute_bars_backfill (part)
SELECT coalesce(i.inhrelid, 'md_trades'::regclass)::regclass
FROM (VALUES (1)) AS one (x) LEFT JOIN pg_inherits AS i ON i.inhparent = 'md_trades'::regclass
WHERE EXISTS (SELECT 1 FROM md_trades) AND NOT EXISTS (SELECT 1 FROM md_minute_bars);

-- One step, in the caller's transaction: the minute bars of the next queued partition's
-- trades (by name: the days in order), rebuilt from md_trades, and the partition off the
-- queue; false once the queue is empty. Concurrent callers take turns on the queue's
-- rows. A partition dropped since it was queued is just taken off. Partitions are whole
-- days (or chunks of whole minutes), so no minute has trades in two of them. The
-- recorder merges each batch's minutes into md_minute_bars: writers (not readers) wait
-- for the rebuild, so none merges into a minute while it is rebuilt, and a batch not
-- committed before it is merged into the rebuilt minutes after.
CREATE FUNCTION recorder_backfill_minute_bars_step()
RETURNS boolean LANGUAGE plpgsql AS $fn$
DECLARE
    next regclass;
    first_ts timestamptz;
    last_ts timestamptz;
BEGIN
    SELECT part INTO next FROM md_minute_bars_backfill ORDER BY part::text LIMIT 1 FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_class WHERE oid = next) THEN
        EXECUTE format('SELECT min(ts), max(ts) FROM %s', next) INTO first_ts, last_ts;
        IF first_ts IS NOT NULL THEN
            LOCK TABLE md_minute_bars IN SHARE ROW EXCLUSIVE MODE;
            PERFORM recorder_rebuild_minute_bars(first_ts, last_ts);
        END IF;
    END IF;
    DELETE FROM md_minute_bars_backfill WHERE part = next;
    RETURN true;
END
$fn$;
