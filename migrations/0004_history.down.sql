DROP TABLE IF EXISTS history_coverage;
ALTER TABLE pending_repairs DROP COLUMN IF EXISTS kind;
