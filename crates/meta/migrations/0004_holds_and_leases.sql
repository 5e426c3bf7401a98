-- nimbus metadata schema, version 4: legal holds on objects, and execution leases.

-- An object with a hold cannot be overwritten or deleted: the artifact of every registered
-- model version is held by it, so what was approved is what is served.
CREATE TABLE object_holds (
    bucket      TEXT NOT NULL,
    object_key  TEXT NOT NULL,
    -- who holds it, for messages: "model group titanic version 3"
    holder      TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (bucket, object_key, holder)
);

-- The server instance running an execution, and until when its lease lasts (renewed by a
-- heartbeat). Recovery takes over only executions whose lease has expired.
ALTER TABLE executions ADD COLUMN owner TEXT;
ALTER TABLE executions ADD COLUMN lease_until_ms BIGINT;
-- Who asked a running execution to stop; its owner stops it at its next heartbeat.
ALTER TABLE executions ADD COLUMN stop_requested_by TEXT;
