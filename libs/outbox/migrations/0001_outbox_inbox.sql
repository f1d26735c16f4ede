-- The transactional outbox and the idempotency inbox, owned by libs/outbox
-- and applied by it (into its own migrations table) in every service
-- database that emits or consumes messages.

CREATE TABLE IF NOT EXISTS outbox (
    id             BIGSERIAL PRIMARY KEY,
    topic          TEXT NOT NULL,
    message_key    TEXT NOT NULL,
    payload        BYTEA NOT NULL,
    header_names   TEXT[] NOT NULL,
    header_values  BYTEA[] NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set only after the broker confirmed the record.
    published_at   TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE IF NOT EXISTS inbox (
    -- The message_id header; for a message without one, topic/partition/offset.
    message_id    TEXT PRIMARY KEY,
    topic         TEXT NOT NULL,
    message_type  TEXT NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('handled', 'dead_lettered')),
    handled_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
