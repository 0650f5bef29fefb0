DROP TABLE IF EXISTS live_candles;
DROP TABLE IF EXISTS trading_pairs;
DROP TYPE IF EXISTS granularity;
