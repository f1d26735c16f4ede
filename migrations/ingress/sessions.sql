-- Sessions: one row per login, so its tokens can be revoked together
-- (ingress/src/sessions.rs). Applied by the ingress at every start-up
-- after idempotency.sql, so every statement is idempotent; a change is a
-- new statement below (or a new file), never an edit.
CREATE SCHEMA IF NOT EXISTS ingress;

CREATE TABLE IF NOT EXISTS ingress.sessions (
    -- The `sid` claim of every token the login and its refreshes issued.
    sid            uuid        PRIMARY KEY,
    user_id        uuid        NOT NULL,
    -- The `jti` of the session's one refresh token that still works; any
    -- other refresh token of the session was used already (rotation), so
    -- presenting it again revokes the session.
    refresh_jti    uuid        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    refreshed_at   timestamptz,
    -- When the current refresh token expires: no token of the session
    -- outlives it, so the row can go some time after.
    expires_at     timestamptz NOT NULL,
    -- Set once, when the session ends before it expires.
    revoked_at     timestamptz,
    -- `logout` or `refresh token reused`.
    revoked_reason text
);

CREATE INDEX IF NOT EXISTS sessions_expires_at ON ingress.sessions (expires_at);
