-- What the notification job did, one row per job: the job id is the key, so a job
-- that runs again (at-least-once delivery) records nothing twice.
CREATE TABLE notifications (
    job_id   text        PRIMARY KEY,
    todo_id  bigint      NOT NULL,
    title    text        NOT NULL,
    sent_at  timestamptz NOT NULL DEFAULT now()
);
