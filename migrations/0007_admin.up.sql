-- A swap's pause is well under a microsecond when no input waits: it is kept
-- in nanoseconds (pause_us read 0 for every swap).
ALTER TABLE fleet_votes ADD COLUMN pause_ns BIGINT;

-- The component a rollback returns to, kept across restarts.
ALTER TABLE active_component ADD COLUMN previous_sha256 TEXT REFERENCES components (sha256);
