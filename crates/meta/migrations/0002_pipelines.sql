-- nimbus metadata schema, version 2: training pipelines and their executions.

CREATE TABLE pipelines (
    name            TEXT PRIMARY KEY,
    -- the definition as JSON (nimbus-pipeline's PipelineSpec)
    definition      TEXT NOT NULL,
    digest          TEXT NOT NULL,
    next_execution  BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL,
    updated_by      TEXT NOT NULL
);

CREATE TABLE executions (
    id                  TEXT PRIMARY KEY,
    pipeline            TEXT NOT NULL REFERENCES pipelines (name),
    number              BIGINT NOT NULL,
    -- the definition as it was when the execution started
    definition          TEXT NOT NULL,
    parameters          TEXT NOT NULL,
    status              TEXT NOT NULL,
    outcome             TEXT NOT NULL,
    registered_version  BIGINT,
    started_ms          BIGINT NOT NULL,
    ended_ms            BIGINT,
    started_by          TEXT NOT NULL
);
CREATE INDEX executions_by_pipeline ON executions (pipeline, number);

CREATE TABLE execution_steps (
    execution_id  TEXT NOT NULL REFERENCES executions (id),
    step          TEXT NOT NULL,
    position      BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    status        TEXT NOT NULL,
    started_ms    BIGINT,
    ended_ms      BIGINT,
    cache_key     TEXT,
    outputs       TEXT NOT NULL,
    log           TEXT NOT NULL,
    progress      TEXT NOT NULL,
    error         TEXT,
    PRIMARY KEY (execution_id, step)
);
CREATE INDEX execution_steps_by_cache_key ON execution_steps (cache_key);
