-- The seed's trading_pairs kept the exchange's order sizes; /api/products
-- shows them again (NULL until the exchange's listing gives them).
ALTER TABLE trading_pairs ADD COLUMN min_size NUMERIC, ADD COLUMN max_size NUMERIC;
