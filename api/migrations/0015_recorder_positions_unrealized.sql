-- PositionChanged carries the position's unrealized P&L at its trade's price (the mark at
-- that moment); NULL for rows written from an engine that predates the field.
ALTER TABLE positions ADD COLUMN unrealized_pnl bigint;
