-- The ingress's own bookkeeping in the readmodels database: which answer a
-- client already got for an Idempotency-Key (ingress/src/idempotency.rs).
-- Applied by the ingress at every start-up, so every statement is
-- idempotent; a change is a new statement below, never an edit.
CREATE SCHEMA IF NOT EXISTS ingress;

CREATE TABLE IF NOT EXISTS ingress.idempotency_keys (
    -- The caller: a token's subject, or `anonymous`.
    scope      text        NOT NULL,
    key        text        NOT NULL,
    -- Method, path and body of the first request with this key.
    request    bytea       NOT NULL,
    -- The answer; NULL while the first request runs.
    status     smallint,
    headers    jsonb,
    body       bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

CREATE INDEX IF NOT EXISTS idempotency_keys_created_at ON ingress.idempotency_keys (created_at);
