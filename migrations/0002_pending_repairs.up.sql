-- Minutes where trades were missed and that are not repaired yet. A repair
-- waits until its minutes are over; a restart in between must not forget it
-- (the restored last trade id is already past the gap, so the gap would not
-- be seen again).
CREATE TABLE pending_repairs (
    exchange    TEXT        NOT NULL,
    product_id  TEXT        NOT NULL,
    from_minute TIMESTAMPTZ NOT NULL,
    to_minute   TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (exchange, product_id, from_minute, to_minute)
);
