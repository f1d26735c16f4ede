-- The inventory service's own state: the catalog and its stock.
CREATE TABLE products (
    -- As given (case matters), 1 to 64 of A-Z a-z 0-9 - _ . (checked at decode).
    sku          TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    -- Minor units of `currency` (ISO 4217).
    price        BIGINT NOT NULL CHECK (price >= 0),
    currency     TEXT NOT NULL,
    -- Units in the warehouse, and how many of them orders hold: what may
    -- still be sold is on_hand - reserved, never below zero.
    on_hand      BIGINT NOT NULL CHECK (on_hand >= 0),
    reserved     BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand),
    -- Incremented by every change; events carry it so projections can
    -- ignore what they already applied.
    version      BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
