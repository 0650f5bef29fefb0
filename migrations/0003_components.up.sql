-- Components swapped in at runtime, and the one each shard runs, so a restart
-- does not silently go back to the component the deploy shipped.
CREATE TABLE components (
    sha256     TEXT        PRIMARY KEY,
    name       TEXT        NOT NULL,
    version    TEXT        NOT NULL,
    wasm       BYTEA       NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- base_sha256: the component at COMPONENT_PATH when this one was activated.
-- A deploy that ships another COMPONENT_PATH wins over an old swap.
CREATE TABLE active_component (
    shard        INT         PRIMARY KEY,
    sha256       TEXT        NOT NULL REFERENCES components (sha256),
    base_sha256  TEXT        NOT NULL,
    activated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
