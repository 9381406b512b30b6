-- The transactional outbox: a todo's notification waits here, written in the same
-- statement as the todo, until the relay (todo/outbox.py) has enqueued its job.
-- `trace` is the creating request's trace context (JSON text headers, '' for none),
-- so the job still runs in the request's trace.
CREATE TABLE notification_outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    todo_id    bigint      NOT NULL,
    trace      text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
