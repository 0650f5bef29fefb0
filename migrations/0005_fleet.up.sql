-- The fleet: instances that share this database (ingesting shards and
-- stream-only replicas) see each other's candles, liveness and component.

-- Every instance announces itself at start and renews its row every few
-- seconds; a stop sets stopped_at. last_update_at is the time of its
-- writer's last flush that changed a row.
CREATE TABLE fleet_instances (
    instance         TEXT        PRIMARY KEY,
    role             TEXT        NOT NULL CHECK (role IN ('ingest', 'replica')),
    shard            INT,
    shard_count      INT,
    products         TEXT[]      NOT NULL DEFAULT '{}',
    component_sha256 TEXT,
    component        TEXT,
    started_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_update_at   TIMESTAMPTZ,
    stopped_at       TIMESTAMPTZ
);

-- What each writer flush changed in live_candles, one row per flush (the
-- flush's columns as arrays), written in the flush's own statement. A
-- NOTIFY on channel spot_updates after the commit names the row's id; the
-- other instances read it back. Rows are kept a minute: a listener
-- that was away resyncs from live_candles, not from here.
CREATE TABLE fleet_updates (
    id            BIGSERIAL   PRIMARY KEY,
    instance      TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    product_id    TEXT[]      NOT NULL,
    granularity   TEXT[]      NOT NULL,
    ts            INT8[]      NOT NULL,
    open          TEXT[]      NOT NULL,
    high          TEXT[]      NOT NULL,
    low           TEXT[]      NOT NULL,
    close         TEXT[]      NOT NULL,
    volume        TEXT[]      NOT NULL,
    trades        INT4[]      NOT NULL,
    last_trade_id INT8[]      NOT NULL,
    complete      BOOL[]      NOT NULL,
    revision      INT8[]      NOT NULL
);
CREATE INDEX fleet_updates_created_at ON fleet_updates (created_at);

-- The component the whole fleet runs, set by a committed fleet swap or
-- rollback; generation counts them. An instance that starts later, or that
-- missed the operation, runs it.
CREATE TABLE fleet_component (
    fleet           BOOLEAN     PRIMARY KEY DEFAULT true CHECK (fleet),
    generation      BIGINT      NOT NULL,
    sha256          TEXT        NOT NULL REFERENCES components (sha256),
    previous_sha256 TEXT        REFERENCES components (sha256),
    -- The initiator's COMPONENT_PATH component: an instance deployed with
    -- another one runs its own (a deploy wins over an older swap).
    base_sha256     TEXT        NOT NULL,
    activated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A fleet swap or rollback: proposed to the live instances of the moment
-- (expected), each votes after its golden run; committed only when every
-- one accepted, aborted by one refusal or a silence. One is open at a time.
CREATE TABLE fleet_operations (
    id          BIGSERIAL   PRIMARY KEY,
    action      TEXT        NOT NULL CHECK (action IN ('swap', 'rollback')),
    sha256      TEXT        NOT NULL REFERENCES components (sha256),
    initiator   TEXT        NOT NULL,
    expected    TEXT[]      NOT NULL,
    state       TEXT        NOT NULL DEFAULT 'proposed' CHECK (state IN ('proposed', 'committed', 'aborted')),
    reason      TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    decided_at  TIMESTAMPTZ
);
CREATE UNIQUE INDEX fleet_operations_one_open ON fleet_operations ((true)) WHERE state = 'proposed';

-- Each instance's answer to an operation, then what it did once decided.
CREATE TABLE fleet_votes (
    operation   BIGINT      NOT NULL REFERENCES fleet_operations (id) ON DELETE CASCADE,
    instance    TEXT        NOT NULL,
    accepted    BOOLEAN     NOT NULL,
    reason      TEXT,
    outcome     TEXT,
    pause_us    BIGINT,
    voted_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    done_at     TIMESTAMPTZ,
    PRIMARY KEY (operation, instance)
);
