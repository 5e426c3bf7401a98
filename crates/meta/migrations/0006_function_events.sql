-- nimbus metadata schema, version 6: asynchronous invocations of functions.

-- An event accepted with `X-Amz-Invocation-Type: Event` waits here until it has run: it
-- survives a restart. A server takes due events by writing its instance id and a lease; one
-- that succeeded is deleted; one whose attempts are used up stays with status 'failed' and
-- its last error (`nimbus functions failures NAME`).
CREATE TABLE function_events (
    id              TEXT PRIMARY KEY,
    function_name   TEXT NOT NULL,
    qualifier       TEXT NOT NULL,
    payload         TEXT NOT NULL,
    -- 'queued' or 'failed'
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    due_ms          BIGINT NOT NULL,
    owner           TEXT,
    lease_until_ms  BIGINT NOT NULL,
    last_error      TEXT,
    last_request_id TEXT,
    created_ms      BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL
);
CREATE INDEX function_events_due ON function_events (status, due_ms);
CREATE INDEX function_events_by_function ON function_events (function_name, status);
