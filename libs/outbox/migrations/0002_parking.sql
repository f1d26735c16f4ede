-- A row that keeps failing to publish is parked (with the later rows of its
-- key, so per-key order holds) instead of stopping all output.
ALTER TABLE outbox
    ADD COLUMN attempts    INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN last_error  TEXT,
    ADD COLUMN parked_at   TIMESTAMPTZ;
CREATE INDEX outbox_parked_keys ON outbox (topic, message_key) WHERE parked_at IS NOT NULL AND published_at IS NULL;

-- Inbox rows are pruned by age (see orderflow_contracts::topics::INBOX_RETENTION).
CREATE INDEX inbox_handled_at ON inbox (handled_at);
