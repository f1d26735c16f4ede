-- What payments.events said about each order's money, so that shipping can
-- require a captured payment that was not refunded in full (issue 22).
-- Written by PaymentCaptured (captured) and PaymentRefunded (refunded: the
-- event's refunded_total, an absolute figure), each only if its payment
-- version is newer than `payment_version`: a stale duplicate changes nothing.
ALTER TABLE orders
    ADD COLUMN captured         BIGINT NOT NULL DEFAULT 0 CHECK (captured >= 0),
    ADD COLUMN refunded         BIGINT NOT NULL DEFAULT 0 CHECK (refunded >= 0),
    -- The payment's version in the last payments event applied (0: none).
    ADD COLUMN payment_version  BIGINT NOT NULL DEFAULT 0;

-- Orders confirmed before this migration had their captures consumed and
-- dropped: the saga captures the whole total on confirmation, so take that
-- as captured. Refunds made before it are not known here (version 0 lets
-- any later payments event of the order through).
UPDATE orders SET captured = total WHERE status IN ('CONFIRMED', 'SHIPPED', 'DELIVERED');
