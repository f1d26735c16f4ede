-- The user service's own state.
CREATE TABLE users (
    id             UUID PRIMARY KEY,
    -- Lower-cased by the ingress; unique, so two registrations of one email
    -- (even at the same moment, on two replicas) yield one user.
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    first_name     TEXT NOT NULL,
    last_name      TEXT NOT NULL,
    roles          TEXT[] NOT NULL,
    active         BOOLEAN NOT NULL DEFAULT true,
    -- Incremented by every change; events carry it so projections can
    -- ignore what they already applied.
    version        BIGINT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
