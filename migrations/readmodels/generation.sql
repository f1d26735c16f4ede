-- The tables of one read-model generation. Not a migration: the projector
-- (libs/projection) runs it with search_path set to a new, empty generation
-- schema, and adds its own `projection_offsets` table. Changing it is how the
-- read models change shape: a generation made from another text of this file
-- is rebuilt by replay, then the `rm` views switch to it.

CREATE TABLE users (
    id             UUID PRIMARY KEY,
    email          TEXT NOT NULL,
    first_name     TEXT NOT NULL,
    last_name      TEXT NOT NULL,
    roles          TEXT[] NOT NULL,
    active         BOOLEAN NOT NULL,
    -- The version of the last event applied; older or repeated events are ignored.
    version        BIGINT NOT NULL,
    registered_at  TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX users_email ON users (email);
CREATE INDEX users_registered ON users (registered_at, id);

-- Only the login needs this; it is fed by users.credentials alone.
CREATE TABLE credentials (
    user_id        UUID PRIMARY KEY,
    email          TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    roles          TEXT[] NOT NULL,
    active         BOOLEAN NOT NULL,
    version        BIGINT NOT NULL
);
CREATE INDEX credentials_email ON credentials (email);

-- What became of each command (GET /api/v1/commands/{id}).
CREATE TABLE commands (
    command_id     UUID PRIMARY KEY,
    command_type   TEXT,
    aggregate_id   TEXT,
    actor          TEXT,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'rejected')),
    reason         TEXT,
    message        TEXT,
    -- The aggregate version a succeeded command produced: its credentials
    -- record carries the same one, so the ingress can wait for the login.
    version        BIGINT,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
