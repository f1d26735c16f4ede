-- The development schema registry's storage (Confluent Schema Registry REST model).

-- Every distinct schema once. Ids come from a sequence and are never reused,
-- not even after a permanent delete.
CREATE SEQUENCE schema_ids START 1;

CREATE TABLE schemas (
    id           INTEGER PRIMARY KEY,
    schema_type  TEXT NOT NULL DEFAULT 'AVRO',
    -- The schema as clients get it back: parsed and re-serialised, so
    -- whitespace and attribute order are gone but defaults and docs stay.
    schema       TEXT NOT NULL,
    -- sha256 of `schema`: the identity of a schema; the same text under any
    -- subject resolves to the same id.
    fingerprint  TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE subject_versions (
    subject     TEXT NOT NULL,
    version     INTEGER NOT NULL CHECK (version > 0),
    schema_id   INTEGER NOT NULL REFERENCES schemas (id),
    -- Soft delete: hidden from reads unless asked for, still blocks reuse of
    -- the version number until permanently deleted.
    deleted     BOOLEAN NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, version)
);
CREATE INDEX subject_versions_schema_id ON subject_versions (schema_id);

-- Compatibility levels; subject '' is the global level.
CREATE TABLE compatibility_config (
    subject        TEXT PRIMARY KEY,
    compatibility  TEXT NOT NULL
);
