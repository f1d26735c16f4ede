-- Erasure (EraseUser): the row stays as a tombstone — the id, the roles,
-- the version — and its personal data goes. An erased user has no email
-- (so the address is free to register again) and an `erased_at`.
ALTER TABLE users ALTER COLUMN email DROP NOT NULL;
ALTER TABLE users ADD COLUMN erased_at TIMESTAMPTZ;
ALTER TABLE users ADD CONSTRAINT users_erased_hold_nothing
    CHECK (erased_at IS NULL OR (email IS NULL AND password_hash = '' AND first_name = '' AND last_name = ''));
