-- Migration 8 stored fleet_updates' arrays out of line uncompressed, which
-- took pglz off PostgreSQL's CPU but wrote every array to the WAL whole: a
-- published row cost 348 bytes of WAL against 251 with pglz (the candle's
-- upsert is 227 of them). lz4 compresses them at about the speed of storing
-- them as they are: 263-266 bytes, 0.96x the rows/s of uncompressed and
-- 1.12x those of pglz (`cargo bench -p spot-host --bench storage`).
--
-- Only where this server was built with lz4 (PostgreSQL 14 and later,
-- `--with-lz4`, as Debian's and the postgres images are); elsewhere the
-- arrays stay uncompressed.
DO $$
BEGIN
    ALTER TABLE fleet_updates
        ALTER COLUMN product_id SET STORAGE EXTENDED, ALTER COLUMN product_id SET COMPRESSION lz4,
        ALTER COLUMN granularity SET STORAGE EXTENDED, ALTER COLUMN granularity SET COMPRESSION lz4,
        ALTER COLUMN ts SET STORAGE EXTENDED, ALTER COLUMN ts SET COMPRESSION lz4,
        ALTER COLUMN open SET STORAGE EXTENDED, ALTER COLUMN open SET COMPRESSION lz4,
        ALTER COLUMN high SET STORAGE EXTENDED, ALTER COLUMN high SET COMPRESSION lz4,
        ALTER COLUMN low SET STORAGE EXTENDED, ALTER COLUMN low SET COMPRESSION lz4,
        ALTER COLUMN close SET STORAGE EXTENDED, ALTER COLUMN close SET COMPRESSION lz4,
        ALTER COLUMN volume SET STORAGE EXTENDED, ALTER COLUMN volume SET COMPRESSION lz4,
        ALTER COLUMN trades SET STORAGE EXTENDED, ALTER COLUMN trades SET COMPRESSION lz4,
        ALTER COLUMN last_trade_id SET STORAGE EXTENDED, ALTER COLUMN last_trade_id SET COMPRESSION lz4,
        ALTER COLUMN complete SET STORAGE EXTENDED, ALTER COLUMN complete SET COMPRESSION lz4,
        ALTER COLUMN revision SET STORAGE EXTENDED, ALTER COLUMN revision SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE WARNING 'this PostgreSQL has no lz4: fleet_updates arrays stay uncompressed';
END
$$;
