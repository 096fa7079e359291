-- Exactly once for market data: each sink's last md_seq per symbol (tops of book are
-- numbered per symbol, outside the event seq), updated in the same transaction as the
-- md_top_of_book rows. A database of the earlier recorder starts from what it holds.
CREATE TABLE recorder_md_progress (
    engine      text NOT NULL,
    sink        text NOT NULL,
    symbol      text NOT NULL,
    last_md_seq bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (engine, sink, symbol)
);

INSERT INTO recorder_md_progress (engine, sink, symbol, last_md_seq)
SELECT engine, 'postgres', symbol, max(md_seq) FROM md_top_of_book GROUP BY engine, symbol;
