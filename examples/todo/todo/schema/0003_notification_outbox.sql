-- The transactional outbox: a todo's notification, written in the same statement as
-- the todo. The relay (todo/outbox.py) enqueues its job and sets `relayed_at`; the job
-- deletes the row when it records the notification. A row relayed long ago and still
-- here may have lost its job (Redis restarted without it): the relay enqueues it again.
-- `trace` is the creating request's trace context (JSON text headers, '' for none),
-- so the job still runs in the request's trace.
CREATE TABLE notification_outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    todo_id    bigint      NOT NULL,
    trace      text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    relayed_at timestamptz
);

-- The job deletes its todo's row when it records the notification.
CREATE INDEX notification_outbox_todo_id ON notification_outbox (todo_id);
