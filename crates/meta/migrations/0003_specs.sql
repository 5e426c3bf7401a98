-- nimbus metadata schema, version 3: declared resources (functions, APIs) stored as JSON
-- documents, one row per (kind, name). The server keeps a compiled copy in memory.

CREATE TABLE specs (
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    spec        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);
