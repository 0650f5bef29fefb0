ALTER TABLE active_component DROP COLUMN IF EXISTS previous_sha256;
ALTER TABLE fleet_votes DROP COLUMN IF EXISTS pause_ns;
