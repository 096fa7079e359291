-- The recorder's tables: what one or more engines' event streams amount to (orders,
-- executions, positions, accounts) and their market-data history, plus the recorder's
-- own progress. Every table carries the engine's name: order ids and seqs are per engine.
--
-- executions, md_trades and md_top_of_book grow without bound and are time-partitioned
-- on `ts`: TimescaleDB hypertables (1-day chunks) when the extension can be created,
-- otherwise native declarative partitions by day that the recorder creates ahead
-- (recorder_ensure_partitions). `ts_event` keeps the engine's exact nanoseconds.

-- Exactly-once: each sink's last seq, updated in the same transaction as its rows.
CREATE TABLE recorder_progress (
    engine      text NOT NULL,
    sink        text NOT NULL,
    last_seq    bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (engine, sink)
);

-- Current state of every order, upserted from its events. `status`: new,
-- partially_filled, filled, canceled, rejected. A rejected new order has no symbol
-- (the engine's reject names only the id and the account).
CREATE TABLE orders (
    engine           text NOT NULL,
    id               bigint NOT NULL,
    account          text NOT NULL,
    symbol           text,
    side             text,
    order_type       text,
    tif              text,
    post_only        boolean NOT NULL DEFAULT false,
    client_order_id  text,
    qty              bigint NOT NULL DEFAULT 0,
    price            bigint,
    stop_price       bigint,
    open_qty         bigint NOT NULL DEFAULT 0,
    filled_qty       bigint NOT NULL DEFAULT 0,
    filled_notional  numeric NOT NULL DEFAULT 0,
    triggered        boolean NOT NULL DEFAULT false,
    status           text NOT NULL,
    reason           text,
    created_seq      bigint NOT NULL,
    updated_seq      bigint NOT NULL,
    created_ts_event bigint NOT NULL,
    updated_ts_event bigint NOT NULL,
    PRIMARY KEY (engine, id)
);
CREATE INDEX orders_account ON orders (engine, account, id);
CREATE INDEX orders_client_order_id ON orders (engine, account, client_order_id)
    WHERE client_order_id IS NOT NULL;

-- Latest position per account and symbol (the engine's PositionChanged).
CREATE TABLE positions (
    engine        text NOT NULL,
    account       text NOT NULL,
    symbol        text NOT NULL,
    position      bigint NOT NULL,
    cost_basis    bigint NOT NULL,
    realized_pnl  bigint NOT NULL,
    updated_seq   bigint NOT NULL,
    updated_ts_event bigint NOT NULL,
    PRIMARY KEY (engine, account, symbol)
);

-- Accounts the engine has seen: cash (from its latest position change) and kill switch.
CREATE TABLE accounts (
    engine        text NOT NULL,
    account       text NOT NULL,
    cash          bigint NOT NULL DEFAULT 0,
    kill_switch   boolean NOT NULL DEFAULT false,
    created_seq   bigint NOT NULL,
    updated_seq   bigint NOT NULL,
    PRIMARY KEY (engine, account)
);

-- The partitioned tables, TimescaleDB or native.
DO $recorder$
DECLARE
    timescale boolean := false;
    suffix text;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS timescaledb;
        EXCEPTION WHEN OTHERS THEN
            -- Installed but not preloaded (shared_preload_libraries): native partitions.
            RAISE NOTICE 'timescaledb not usable (%), using native partitioning', SQLERRM;
        END;
    END IF;
    -- Hypertables when create_hypertable exists (the extension's, once created). The
    -- tests, on a PostgreSQL without TimescaleDB, run this branch with a stand-in of
    -- that signature (tests/api/recorder: test_hypertable_path_without_timescaledb).
    timescale := EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'create_hypertable');
    suffix := CASE WHEN timescale THEN '' ELSE ' PARTITION BY RANGE (ts)' END;

    -- One row per order per trade: the taker's and the maker's side of each Trade.
    EXECUTE 'CREATE TABLE executions (
        engine           text NOT NULL,
        seq              bigint NOT NULL,
        liquidity        text NOT NULL,
        ts               timestamptz NOT NULL,
        ts_event         bigint NOT NULL,
        order_id         bigint NOT NULL,
        account          text NOT NULL,
        symbol           text NOT NULL,
        side             text NOT NULL,
        price            bigint NOT NULL,
        qty              bigint NOT NULL,
        counter_order_id bigint NOT NULL,
        PRIMARY KEY (engine, seq, liquidity, ts)
    )' || suffix;
    -- Public trade prints (no accounts).
    EXECUTE 'CREATE TABLE md_trades (
        engine      text NOT NULL,
        seq         bigint NOT NULL,
        ts          timestamptz NOT NULL,
        ts_event    bigint NOT NULL,
        symbol      text NOT NULL,
        price       bigint NOT NULL,
        qty         bigint NOT NULL,
        taker_side  text NOT NULL,
        PRIMARY KEY (engine, seq, ts)
    )' || suffix;
    -- Best bid and ask after each change (the engine's TopOfBook, numbered by md_seq).
    EXECUTE 'CREATE TABLE md_top_of_book (
        engine      text NOT NULL,
        symbol      text NOT NULL,
        md_seq      bigint NOT NULL,
        ts          timestamptz NOT NULL,
        ts_event    bigint NOT NULL,
        bid_price   bigint,
        bid_qty     bigint,
        ask_price   bigint,
        ask_qty     bigint,
        last_price  bigint,
        PRIMARY KEY (engine, symbol, md_seq, ts)
    )' || suffix;

    IF timescale THEN
        EXECUTE $q$SELECT create_hypertable('executions', 'ts', chunk_time_interval => interval '1 day')$q$;
        EXECUTE $q$SELECT create_hypertable('md_trades', 'ts', chunk_time_interval => interval '1 day')$q$;
        EXECUTE $q$SELECT create_hypertable('md_top_of_book', 'ts', chunk_time_interval => interval '1 day')$q$;
    END IF;
END
$recorder$;

CREATE INDEX executions_account ON executions (engine, account, ts);
CREATE INDEX executions_order ON executions (engine, order_id);
CREATE INDEX md_trades_symbol ON md_trades (engine, symbol, ts);

-- Day partitions [first, last] of every natively partitioned recorder table; a no-op
-- for hypertables (TimescaleDB makes its own chunks). Safe to call concurrently.
CREATE FUNCTION recorder_ensure_partitions(first_day date, last_day date)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    parent text;
    day date;
    child text;
    created integer := 0;
BEGIN
    FOREACH parent IN ARRAY ARRAY['executions', 'md_trades', 'md_top_of_book'] LOOP
        IF NOT EXISTS (
            SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
            WHERE c.relname = parent AND c.relnamespace = current_schema()::regnamespace
        ) THEN
            CONTINUE;
        END IF;
        day := first_day;
        WHILE day <= last_day LOOP
            child := parent || '_p' || to_char(day, 'YYYYMMDD');
            IF to_regclass(quote_ident(child)) IS NULL THEN
                BEGIN
                    EXECUTE format(
                        'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                        child, parent, day::timestamp AT TIME ZONE 'UTC',
                        (day + 1)::timestamp AT TIME ZONE 'UTC'
                    );
                    created := created + 1;
                EXCEPTION WHEN duplicate_table THEN
                    NULL;  -- another recorder created it in between
                END;
            END IF;
            day := day + 1;
        END LOOP;
    END LOOP;
    RETURN created;
END
$fn$;
