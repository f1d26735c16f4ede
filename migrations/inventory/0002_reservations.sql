-- What each order holds (or held) of the stock: one row per order, so a
-- republished OrderPlaced reserves nothing twice; its units per product.
CREATE TABLE reservations (
    order_id    UUID PRIMARY KEY,
    state       TEXT NOT NULL CHECK (state IN ('HELD', 'SOLD', 'RELEASED', 'FAILED')),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE reservation_lines (
    order_id    UUID NOT NULL REFERENCES reservations (order_id),
    sku         TEXT NOT NULL REFERENCES products (sku),
    quantity    BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, sku)
);
