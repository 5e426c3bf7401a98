-- nimbus metadata schema, version 7: published function versions and aliases.

-- A published version is a frozen copy of a function's declaration: its number is taken in
-- the publishing transaction (one more than the highest), never reused while the function
-- exists, and the row is never updated. For a model function the declaration's selector is
-- the registry version it resolved to when published.
CREATE TABLE function_versions (
    function_name  TEXT NOT NULL,
    version        BIGINT NOT NULL,
    -- the declaration as JSON, and the hex SHA-256 of that text
    spec           TEXT NOT NULL,
    digest         TEXT NOT NULL,
    description    TEXT NOT NULL,
    created_ms     BIGINT NOT NULL,
    created_by     TEXT NOT NULL,
    PRIMARY KEY (function_name, version)
);

-- An alias names a version ('$LATEST' or a number, as text) and optionally routes a share
-- of invocations to one other published version (Lambda's AdditionalVersionWeights).
CREATE TABLE function_aliases (
    function_name       TEXT NOT NULL,
    alias               TEXT NOT NULL,
    version             TEXT NOT NULL,
    additional_version  BIGINT,
    -- the additional version's share in millionths (0 to 999999), so the column stays BIGINT
    additional_weight   BIGINT NOT NULL,
    description         TEXT NOT NULL,
    updated_ms          BIGINT NOT NULL,
    PRIMARY KEY (function_name, alias)
);
