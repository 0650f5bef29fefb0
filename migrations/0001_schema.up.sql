-- The seed's schema, with its known mistakes fixed:
-- * prices and volumes are unconstrained NUMERIC: DECIMAL(20,10) overflowed on the
--   daily volume of high-supply tokens (tens of billions of units) and rounded
--   prices below 1e-10 away. The host writes the exact decimal it computed.
-- * no BIGSERIAL id: an upsert burns one id per attempted row, updates included.
-- * no second index on (exchange, product_id, granularity, timestamp DESC): it
--   duplicates the primary key (a backward scan serves the same queries) and cost
--   19-38 % of write throughput.
-- * fillfactor 70: the table is update-heavy; free room in each page keeps updates
--   in place (HOT) instead of rewriting the index and bloating the table.

CREATE TYPE granularity AS ENUM (
    'ONE_MINUTE', 'FIVE_MINUTES', 'FIFTEEN_MINUTES', 'THIRTY_MINUTES',
    'ONE_HOUR', 'TWO_HOURS', 'SIX_HOURS', 'ONE_DAY'
);

CREATE TABLE trading_pairs (
    exchange       TEXT        NOT NULL,
    product_id     TEXT        NOT NULL,
    base_currency  TEXT,
    quote_currency TEXT,
    status         TEXT,
    first_seen     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (exchange, product_id)
);

CREATE TABLE live_candles (
    exchange      TEXT        NOT NULL,
    product_id    TEXT        NOT NULL,
    granularity   granularity NOT NULL,
    "timestamp"   TIMESTAMPTZ NOT NULL,
    open          NUMERIC     NOT NULL,
    high          NUMERIC     NOT NULL,
    low           NUMERIC     NOT NULL,
    close         NUMERIC     NOT NULL,
    volume        NUMERIC     NOT NULL,
    -- Trades counted and the highest trade id counted: what a restarted host gives
    -- back to the component so re-sent trades are recognised (NULL when unknown,
    -- e.g. a minute repaired from Coinbase's REST candles).
    trades        INTEGER     NOT NULL DEFAULT 0,
    last_trade_id BIGINT,
    complete      BOOLEAN     NOT NULL DEFAULT false,
    -- Orders the writes of one key: a write whose revision is not newer than the
    -- stored row's changes nothing (see the writer's upsert).
    revision      BIGINT      NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (exchange, product_id, granularity, "timestamp")
) WITH (fillfactor = 70);

-- TimescaleDB when the server has it loaded (1-day chunks, as in the seed);
-- a plain table otherwise. Installed but not in shared_preload_libraries (as
-- Debian's and several hosted servers come), CREATE EXTENSION would fail:
-- the table stays plain (the host says so at start, and how to enable it;
-- `spot-server timescaledb` converts it later).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND 'timescaledb' = ANY(string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
    THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM create_hypertable('live_candles', 'timestamp',
                                  chunk_time_interval => INTERVAL '1 day',
                                  if_not_exists => TRUE);
    END IF;
END
$$;
