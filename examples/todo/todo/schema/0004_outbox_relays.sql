-- How many times the relay enqueued a row. A row whose job never records its
-- notification (a task that always fails) is relayed at most `max_relays` times, then
-- parked: it stays in the outbox, logged once, for an operator to fix and reset.
ALTER TABLE notification_outbox ADD COLUMN relays integer NOT NULL DEFAULT 0;
