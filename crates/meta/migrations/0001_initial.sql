-- nimbus metadata schema, version 1.
-- Dialect-neutral: TEXT and BIGINT columns only, so SQLite and PostgreSQL share this file.
-- Times are epoch milliseconds; structured values (schemas, metrics, tags) are JSON text.

CREATE TABLE users (
    name        TEXT PRIMARY KEY,
    arn         TEXT NOT NULL,
    is_admin    BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE access_keys (
    access_key_id  TEXT PRIMARY KEY,
    user_name      TEXT NOT NULL REFERENCES users (name),
    -- the secret, encrypted with the master key (never stored in clear)
    secret_sealed  TEXT NOT NULL,
    status         TEXT NOT NULL,
    created_ms     BIGINT NOT NULL
);

CREATE TABLE buckets (
    name        TEXT PRIMARY KEY,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE objects (
    bucket        TEXT NOT NULL REFERENCES buckets (name),
    object_key    TEXT NOT NULL,
    size          BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    -- where the bytes live in the object backend; a fresh location per write
    location      TEXT NOT NULL,
    created_ms    BIGINT NOT NULL,
    PRIMARY KEY (bucket, object_key)
);

CREATE TABLE model_groups (
    name          TEXT PRIMARY KEY,
    description   TEXT NOT NULL,
    -- the number the next registered version gets; bumped in the registering transaction
    next_version  BIGINT NOT NULL,
    created_ms    BIGINT NOT NULL,
    created_by    TEXT NOT NULL
);

CREATE TABLE model_versions (
    group_name          TEXT NOT NULL REFERENCES model_groups (name),
    version             BIGINT NOT NULL,
    artifact_uri        TEXT NOT NULL,
    artifact_sha256     TEXT NOT NULL,
    artifact_size       BIGINT NOT NULL,
    format              TEXT NOT NULL,
    input_schema        TEXT NOT NULL,
    output_schema       TEXT NOT NULL,
    metrics             TEXT NOT NULL,
    parameters          TEXT NOT NULL,
    lineage             TEXT NOT NULL,
    tags                TEXT NOT NULL,
    description         TEXT NOT NULL,
    status              TEXT NOT NULL,
    status_by           TEXT,
    status_ms           BIGINT,
    status_description  TEXT,
    created_ms          BIGINT NOT NULL,
    created_by          TEXT NOT NULL,
    PRIMARY KEY (group_name, version)
);

CREATE TABLE model_aliases (
    group_name  TEXT NOT NULL,
    alias       TEXT NOT NULL,
    version     BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (group_name, alias),
    FOREIGN KEY (group_name, version) REFERENCES model_versions (group_name, version)
);

-- every approval-status change and alias move, in order: the registry's audit trail
CREATE TABLE model_events (
    id          TEXT PRIMARY KEY,
    group_name  TEXT NOT NULL,
    version     BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at_ms       BIGINT NOT NULL
);
CREATE INDEX model_events_by_group ON model_events (group_name, at_ms);
