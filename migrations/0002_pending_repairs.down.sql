DROP TABLE IF EXISTS pending_repairs;
