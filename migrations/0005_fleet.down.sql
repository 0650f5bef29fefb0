DROP TABLE IF EXISTS fleet_votes;
DROP TABLE IF EXISTS fleet_operations;
DROP TABLE IF EXISTS fleet_component;
DROP TABLE IF EXISTS fleet_updates;
DROP TABLE IF EXISTS fleet_instances;
