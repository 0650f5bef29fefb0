-- A flush's row in fleet_updates holds its columns as arrays of thousands of
-- elements: large enough for TOAST, which compressed each with pglz, a sixth of
-- PostgreSQL's CPU under a steady feed (`perf`, pipeline bench at 10,000
-- trades/s). The rows live a minute and are read back once per instance:
-- stored out of line, uncompressed.
ALTER TABLE fleet_updates
    ALTER COLUMN product_id SET STORAGE EXTERNAL,
    ALTER COLUMN granularity SET STORAGE EXTERNAL,
    ALTER COLUMN ts SET STORAGE EXTERNAL,
    ALTER COLUMN open SET STORAGE EXTERNAL,
    ALTER COLUMN high SET STORAGE EXTERNAL,
    ALTER COLUMN low SET STORAGE EXTERNAL,
    ALTER COLUMN close SET STORAGE EXTERNAL,
    ALTER COLUMN volume SET STORAGE EXTERNAL,
    ALTER COLUMN trades SET STORAGE EXTERNAL,
    ALTER COLUMN last_trade_id SET STORAGE EXTERNAL,
    ALTER COLUMN complete SET STORAGE EXTERNAL,
    ALTER COLUMN revision SET STORAGE EXTERNAL;
