-- Read models live in generation schemas (gen_1, gen_2, ...), each built by
-- consuming the topics from the beginning (see generation.sql). Readers use
-- the views in schema `rm`, which point at the live generation; a rebuild
-- fills a new generation while the old one serves, then switches the views
-- in one transaction.
CREATE SCHEMA rm;

CREATE TABLE projection_generations (
    generation   INTEGER PRIMARY KEY,
    status       TEXT NOT NULL CHECK (status IN ('building', 'live', 'retired', 'failed')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    switched_at  TIMESTAMPTZ
);

-- Written by `projector rebuild`, carried out by the running projector.
CREATE TABLE rebuild_requests (
    id            BIGSERIAL PRIMARY KEY,
    requested_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    generation    INTEGER,
    error         TEXT
);
