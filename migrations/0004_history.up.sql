-- The horizon's history (issue: candles equal the exchange's from the first
-- start on).
--
-- pending_repairs.kind: 'gap' for minutes where trades were missed (and the
-- minute the live trades began in), 'backfill' for the span of the horizon
-- that was never stored. Gaps go first; both survive a restart.
ALTER TABLE pending_repairs ADD COLUMN kind TEXT NOT NULL DEFAULT 'gap'
    CHECK (kind IN ('gap', 'backfill'));

-- What the backfill has covered per product: every minute in
-- [covered_from, covered_through] is stored as the exchange had it, or is
-- waiting in pending_repairs. A restart fetches only what lies outside.
CREATE TABLE history_coverage (
    exchange        TEXT        NOT NULL,
    product_id      TEXT        NOT NULL,
    covered_from    TIMESTAMPTZ NOT NULL,
    covered_through TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (exchange, product_id)
);
