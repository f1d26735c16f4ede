-- What libs/projection keeps about every projection in a database, in a
-- schema of its own. Idempotent: run by `orderflow_projection::install` at
-- start-up (under a lock), so the library owns this DDL once and no service
-- copies it. Changing it means adding statements that are idempotent too.
CREATE SCHEMA IF NOT EXISTS projection;

-- A projection's generations: each is a schema `<projection>_gen_<n>` built
-- by consuming the topics from the beginning. At most one is live.
CREATE TABLE IF NOT EXISTS projection.generations (
    projection       TEXT NOT NULL,
    generation       INTEGER NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('building', 'live', 'retired', 'failed')),
    -- The template the generation's tables were made from: a live one made
    -- from another template is rebuilt before anything is applied to it.
    template_sha256  TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    switched_at      TIMESTAMPTZ,
    PRIMARY KEY (projection, generation)
);
CREATE UNIQUE INDEX IF NOT EXISTS generations_one_live ON projection.generations (projection) WHERE status = 'live';

-- Fencing: the active instance bumps `epoch` when it becomes active, and
-- every one of its transactions reads it `FOR SHARE` and aborts when it is
-- not its own any more. An instance that lost its advisory lock (a Postgres
-- restart) therefore cannot write once another one took over.
CREATE TABLE IF NOT EXISTS projection.lease (
    projection   TEXT PRIMARY KEY,
    epoch        BIGINT NOT NULL,
    holder       TEXT NOT NULL,
    acquired_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Rebuilds asked for (`request_rebuild`), carried out by the active instance.
CREATE TABLE IF NOT EXISTS projection.rebuild_requests (
    id            BIGSERIAL PRIMARY KEY,
    projection    TEXT NOT NULL,
    requested_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    generation    INTEGER,
    error         TEXT
);
-- An operator who gives up on a rebuild (`cancel_rebuild`, Ctrl-C in
-- `orderflow projection rebuild`): the active instance drops the rebuilt
-- generation and the live one serves on, untouched.
ALTER TABLE projection.rebuild_requests ADD COLUMN IF NOT EXISTS cancel_requested_at TIMESTAMPTZ;
