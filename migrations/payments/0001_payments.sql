-- The payment service's own state.

-- One payment per order: its id is derived from the order id (UUIDv5), and
-- the order id is unique too, so no redelivery can make a second one.
CREATE TABLE payments (
    id                  UUID PRIMARY KEY,
    order_id            UUID NOT NULL UNIQUE,
    customer_id         UUID NOT NULL,
    -- Minor units of `currency`: what was authorized.
    amount              BIGINT NOT NULL CHECK (amount >= 0),
    currency            TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN
                          ('AUTHORIZED', 'DECLINED', 'CAPTURED', 'PARTIALLY_REFUNDED', 'REFUNDED', 'VOIDED')),
    captured            BIGINT NOT NULL DEFAULT 0,
    refunded            BIGINT NOT NULL DEFAULT 0,
    provider_reference  TEXT,
    -- Incremented by every change; events carry it.
    version             BIGINT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    -- Never a refund above the capture, whatever the redelivery.
    CHECK (refunded >= 0 AND refunded <= captured AND captured <= amount)
);

CREATE TABLE refunds (
    id          UUID PRIMARY KEY,
    payment_id  UUID NOT NULL REFERENCES payments (id),
    amount      BIGINT NOT NULL CHECK (amount > 0),
    -- REQUESTED (a RefundPayment command) or ORDER_CANCELLED.
    reason      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX refunds_payment ON refunds (payment_id);
