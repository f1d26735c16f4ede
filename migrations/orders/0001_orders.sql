-- The order service's own state.

-- Who may order: learnt from users.events (no call to the user service).
CREATE TABLE customers (
    id          UUID PRIMARY KEY,
    active      BOOLEAN NOT NULL,
    -- The version of the last users event applied.
    version     BIGINT NOT NULL
);

CREATE TABLE orders (
    id                UUID PRIMARY KEY,
    customer_id       UUID NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'SHIPPED', 'DELIVERED', 'CANCELLED')),
    items             JSONB NOT NULL,
    currency          TEXT NOT NULL,
    -- Minor units, computed here with checked arithmetic.
    total             BIGINT NOT NULL,
    shipping_address  JSONB NOT NULL,
    notes             TEXT,
    -- Why a CANCELLED order was cancelled (REQUESTED, PAYMENT_DECLINED, PAYMENT_TIMEOUT).
    reason            TEXT,
    payment_id        UUID,
    -- Incremented by every change; events carry it.
    version           BIGINT NOT NULL,
    -- The PlaceOrder command and its request: the payment deadline's
    -- cancellation is published as caused by them.
    command_id        UUID NOT NULL,
    correlation_id    TEXT NOT NULL,
    traceparent       TEXT NOT NULL,
    placed_at         TIMESTAMPTZ NOT NULL,
    payment_deadline  TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
-- The deadline scan looks only at PENDING orders.
CREATE INDEX orders_pending_deadline ON orders (payment_deadline) WHERE status = 'PENDING';
