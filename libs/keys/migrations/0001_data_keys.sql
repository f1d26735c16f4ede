-- One data key per subject (a user), wrapped by a key-encryption key.
-- Destroying a key (erasure) empties `wrapped` and keeps the row, so the
-- subject can never get a new key and nothing personal is sealed for them
-- again; `key_id` stays unique, so a sealed value never opens with
-- another key.
CREATE TABLE data_keys (
    subject      text PRIMARY KEY,
    key_id       uuid NOT NULL UNIQUE,
    kek_id       text,
    wrapped      bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz,
    CONSTRAINT destroyed_keys_keep_nothing CHECK (
        (destroyed_at IS NULL AND wrapped IS NOT NULL AND kek_id IS NOT NULL)
        OR (destroyed_at IS NOT NULL AND wrapped IS NULL AND kek_id IS NULL)
    )
);

-- The re-wrap after a key-encryption key rotation finds what is left.
CREATE INDEX data_keys_by_kek ON data_keys (kek_id) WHERE wrapped IS NOT NULL;
