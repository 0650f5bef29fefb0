DROP TABLE IF EXISTS active_component;
DROP TABLE IF EXISTS components;
