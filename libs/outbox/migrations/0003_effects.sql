-- Calls to outside systems (a payment provider): recorded when a service
-- first needs one, run by the kit's effector outside any partition's
-- transaction, at most `effects.max_attempts` times each, and kept with
-- their result, which the input that asked for the call reads when it is
-- handled again (libs/runtime/src/effects.rs).
CREATE TABLE effects (
    -- Unique per call; the service derives it from what the call is for
    -- (the payment, the refund), so asking twice records one call.
    id          UUID PRIMARY KEY,
    -- What kind of call (metrics and logs): `authorize`, `refund`, ...
    kind        TEXT NOT NULL,
    -- The call's arguments, as the service wrote them.
    call        JSONB NOT NULL,
    -- The key of the message waiting for it: woken when the call ends.
    wake_key    TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    -- What the call answered (done).
    result      JSONB,
    last_error  TEXT,
    -- pending: when to call (again); running: when the claim lapses (a
    -- process that died mid-call leaves it to another).
    due_at      TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX effects_due ON effects (due_at) WHERE state IN ('pending', 'running');
