-- The trace context of what asked for a call (the W3C traceparent of the
-- asking message's span), so the call's own span joins that trace. Null
-- for calls asked for with trace export off, and for older rows.
ALTER TABLE effects ADD COLUMN traceparent TEXT;
