-- The projector publishes nothing but dead letters, and those go through an
-- outbox like everything else (libs/outbox).
CREATE TABLE outbox (
    id             BIGSERIAL PRIMARY KEY,
    topic          TEXT NOT NULL,
    message_key    TEXT NOT NULL,
    payload        BYTEA NOT NULL,
    header_names   TEXT[] NOT NULL,
    header_values  BYTEA[] NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at   TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE inbox (
    message_id    TEXT PRIMARY KEY,
    topic         TEXT NOT NULL,
    message_type  TEXT NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('handled', 'dead_lettered')),
    handled_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
