-- The todos. `order` is a reserved word, hence the quotes; position is optional.
CREATE TABLE todos (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title       text        NOT NULL CHECK (char_length(title) BETWEEN 1 AND 255),
    description text        NOT NULL DEFAULT '',
    completed   boolean     NOT NULL DEFAULT false,
    "order"     integer,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- GET /todos?completed=...: keyset pages by id within one completion state.
CREATE INDEX todos_completed_id ON todos (completed, id);
