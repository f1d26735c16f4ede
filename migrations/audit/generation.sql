-- The tables of one audit-log generation. Not a migration: the audit-log
-- service (libs/projection) runs it with search_path set to a new, empty
-- generation schema; readers use the views `audit.<table>`. A rebuild
-- replays every *.events topic into a new generation and reproduces the
-- same records and hashes (docs/audit.md).

-- One row per message, once (by message_id), chained per source partition.
CREATE TABLE records (
    topic           TEXT NOT NULL,
    partition       INTEGER NOT NULL,
    seq             BIGINT NOT NULL,
    source_offset   BIGINT NOT NULL,
    message_id      UUID NOT NULL UNIQUE,
    message_type    TEXT NOT NULL,
    aggregate_key   TEXT,
    actor           TEXT NOT NULL,
    correlation_id  TEXT NOT NULL,
    causation_id    TEXT NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    -- Canonical JSON without the fields the writer schema marks
    -- "orderflow.sensitive": the exact text that was hashed.
    payload         TEXT NOT NULL,
    prev_hash       TEXT NOT NULL,
    hash            TEXT NOT NULL,
    PRIMARY KEY (topic, partition, seq)
);
CREATE INDEX records_newest ON records (occurred_at DESC, message_id DESC);
CREATE INDEX records_actor ON records (actor, occurred_at DESC, message_id DESC);
CREATE INDEX records_entity ON records (aggregate_key, occurred_at DESC, message_id DESC);
CREATE INDEX records_type ON records (message_type, occurred_at DESC, message_id DESC);
CREATE INDEX records_correlation ON records (correlation_id);

-- The last record of each chain, written with it: the next record links to
-- it, and verification notices records cut off at the end.
CREATE TABLE heads (
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    seq        BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- The hash of every Nth record of a chain: quick verification recomputes
-- only what came after the newest one.
CREATE TABLE checkpoints (
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    seq        BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    PRIMARY KEY (topic, partition, seq)
);

-- Where retention cut a chain: the last record removed and its hash; the
-- first remaining record links to it.
CREATE TABLE anchors (
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    seq        BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    removed    BIGINT NOT NULL,
    cut_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (topic, partition)
);
