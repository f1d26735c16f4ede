-- The tables of one read-model generation. Not a migration: the projector
-- (libs/projection) runs it with search_path set to a new, empty generation
-- schema, and adds its own `projection_offsets` table. Changing it is how the
-- read models change shape: a generation made from another text of this file
-- is rebuilt by replay, then the `rm` views switch to it.

CREATE TABLE users (
    id             UUID PRIMARY KEY,
    email          TEXT NOT NULL,
    first_name     TEXT NOT NULL,
    last_name      TEXT NOT NULL,
    roles          TEXT[] NOT NULL,
    active         BOOLEAN NOT NULL,
    -- The version of the last event applied; older or repeated events are ignored.
    version        BIGINT NOT NULL,
    registered_at  TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    -- Set by UserErased: email and names are empty from then on, and so are
    -- the shipping address and notes of every order of theirs.
    erased_at      TIMESTAMPTZ
);
CREATE INDEX users_email ON users (email);
CREATE INDEX users_registered ON users (registered_at, id);

-- Only the login needs this; it is fed by users.credentials alone.
CREATE TABLE credentials (
    user_id        UUID PRIMARY KEY,
    email          TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    roles          TEXT[] NOT NULL,
    active         BOOLEAN NOT NULL,
    version        BIGINT NOT NULL
);
CREATE INDEX credentials_email ON credentials (email);

-- What became of each command (GET /api/v1/commands/{id}).
CREATE TABLE commands (
    command_id     UUID PRIMARY KEY,
    command_type   TEXT,
    aggregate_id   TEXT,
    actor          TEXT,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'rejected', 'failed')),
    reason         TEXT,
    message        TEXT,
    -- The aggregate version a succeeded command produced: its credentials
    -- record carries the same one, so the ingress can wait for the login.
    version        BIGINT,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

-- Orders as the API shows them (fed by orders.events).
CREATE TABLE orders (
    id                UUID PRIMARY KEY,
    customer_id       UUID NOT NULL,
    status            TEXT NOT NULL,
    items             JSONB NOT NULL,
    currency          TEXT NOT NULL,
    total             BIGINT NOT NULL,
    shipping_address  JSONB NOT NULL,
    notes             TEXT,
    -- Why a CANCELLED order was cancelled, and the words for it.
    reason            TEXT,
    reason_message    TEXT,
    payment_id        UUID,
    -- The PlaceOrder command: a `Prefer: wait` on it is woken when the
    -- order leaves PENDING.
    command_id        UUID,
    version           BIGINT NOT NULL,
    placed_at         TIMESTAMPTZ NOT NULL,
    payment_deadline  TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX orders_placed ON orders (placed_at DESC, id DESC);
CREATE INDEX orders_customer ON orders (customer_id, placed_at DESC, id DESC);
CREATE INDEX orders_status ON orders (status, placed_at DESC);

-- Payments (fed by payments.events): one per order.
CREATE TABLE payments (
    id                  UUID PRIMARY KEY,
    order_id            UUID NOT NULL UNIQUE,
    customer_id         UUID NOT NULL,
    amount              BIGINT NOT NULL,
    currency            TEXT NOT NULL,
    status              TEXT NOT NULL,
    captured            BIGINT NOT NULL DEFAULT 0,
    refunded            BIGINT NOT NULL DEFAULT 0,
    -- Why a DECLINED payment was declined.
    reason              TEXT,
    reason_message      TEXT,
    provider_reference  TEXT,
    version             BIGINT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX payments_created ON payments (created_at DESC, id DESC);
CREATE INDEX payments_customer ON payments (customer_id, created_at DESC, id DESC);

-- One order with its payment and its customer's name: what
-- GET /api/v1/orders/{id} answers, in one query.
-- Where each order's stock stands (inventory.events, keyed by the order; a
-- row may come before its order's): HELD, SOLD, RELEASED, or FAILED with
-- the line that could not be held. `rank` orders the states (held or
-- failed 1, sold 2, released 3): a state never moves back.
CREATE TABLE order_stock (
    order_id    UUID PRIMARY KEY,
    state       TEXT NOT NULL,
    rank        SMALLINT NOT NULL,
    sku         TEXT,
    reason      TEXT,
    requested   BIGINT,
    available   BIGINT,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE VIEW order_details AS
SELECT o.id, o.customer_id, o.status, o.items, o.currency, o.total, o.shipping_address, o.notes,
       o.reason, o.reason_message, o.version, o.placed_at, o.payment_deadline, o.updated_at,
       u.first_name AS customer_first_name, u.last_name AS customer_last_name,
       p.id AS payment_id, p.status AS payment_status, p.amount AS payment_amount,
       p.captured AS payment_captured, p.refunded AS payment_refunded, p.reason AS payment_reason,
       p.updated_at AS payment_updated_at,
       s.state AS stock_state, s.sku AS stock_failed_sku, s.reason AS stock_failed_reason,
       s.available AS stock_failed_available
FROM orders o
LEFT JOIN users u ON u.id = o.customer_id
LEFT JOIN payments p ON p.order_id = o.id
LEFT JOIN order_stock s ON s.order_id = o.id;

-- The catalog (inventory.events): what every client may read.
CREATE TABLE products (
    sku            TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL,
    price          BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    on_hand        BIGINT NOT NULL,
    reserved       BIGINT NOT NULL,
    -- What may still be sold.
    available      BIGINT GENERATED ALWAYS AS (on_hand - reserved) STORED,
    -- The newest change applied (the product's one counter).
    version        BIGINT NOT NULL,
    -- The last change of each kind applied: what the product is (created,
    -- updated: keyed by sku) and its stock (created, adjusted: by sku; an
    -- order's reservation, sale or release: by the order, on another
    -- partition, so applied in any order with the product's own). Each
    -- kind ignores what is not newer than its own last, so a stock move
    -- applied first never hides a later rename, nor the other way round.
    catalog_version BIGINT NOT NULL,
    stock_version  BIGINT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
-- The newest stock move of a product whose creation is not applied yet
-- (an order's events may be applied before the product's, in a rebuild
-- above all): taken into the product when its creation is applied.
CREATE TABLE product_stock_early (
    sku            TEXT PRIMARY KEY,
    on_hand        BIGINT NOT NULL,
    reserved       BIGINT NOT NULL,
    version        BIGINT NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
-- The list's order (newest last) and its filters.
CREATE INDEX products_created ON products (created_at, sku);
CREATE INDEX products_name ON products (lower(name));
