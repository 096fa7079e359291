-- The orders submitted through the gateway, as it saw them: what was asked, the engine's
-- order id and the outcome the engine acknowledged. Idempotency: one row per
-- (account, client_order_id); a row without order_id is a submission in flight.
CREATE TABLE api_orders (
    id              bigserial PRIMARY KEY,
    order_id        bigint UNIQUE,
    account         text NOT NULL,
    client_order_id text,
    fingerprint     text NOT NULL,
    symbol          text NOT NULL,
    side            text NOT NULL,
    type            text NOT NULL,
    qty             bigint NOT NULL,
    limit_price     bigint,
    stop_price      bigint,
    time_in_force   text NOT NULL,
    post_only       boolean NOT NULL,
    status          text NOT NULL,
    reason          text,
    filled_qty      bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account, client_order_id)
);
CREATE INDEX api_orders_account ON api_orders (account, order_id);
