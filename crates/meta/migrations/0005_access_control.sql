-- nimbus metadata schema, version 5: access control (IAM policies, API keys and usage plans,
-- the OAuth2 authorization server).

-- Tags of a user, JSON object: the values of aws:PrincipalTag/... in policy conditions.
ALTER TABLE users ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';

CREATE TABLE iam_groups (
    name        TEXT PRIMARY KEY,
    arn         TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE iam_group_members (
    group_name  TEXT NOT NULL REFERENCES iam_groups (name),
    user_name   TEXT NOT NULL REFERENCES users (name),
    PRIMARY KEY (group_name, user_name)
);

CREATE TABLE iam_roles (
    name          TEXT PRIMARY KEY,
    arn           TEXT NOT NULL,
    -- who may assume the role, a policy document with Principal (JSON)
    trust_policy  TEXT NOT NULL,
    tags          TEXT NOT NULL,
    description   TEXT NOT NULL,
    created_ms    BIGINT NOT NULL
);

-- Managed policies: a named document attached to users, groups and roles.
CREATE TABLE iam_policies (
    name         TEXT PRIMARY KEY,
    arn          TEXT NOT NULL,
    document     TEXT NOT NULL,
    description  TEXT NOT NULL,
    -- built in (AdministratorAccess): cannot be changed or deleted
    builtin      BIGINT NOT NULL,
    created_ms   BIGINT NOT NULL,
    updated_ms   BIGINT NOT NULL
);

-- principal_kind is 'user', 'group' or 'role'.
CREATE TABLE iam_attachments (
    principal_kind  TEXT NOT NULL,
    principal_name  TEXT NOT NULL,
    policy_name     TEXT NOT NULL REFERENCES iam_policies (name),
    PRIMARY KEY (principal_kind, principal_name, policy_name)
);

CREATE TABLE iam_inline_policies (
    principal_kind  TEXT NOT NULL,
    principal_name  TEXT NOT NULL,
    policy_name     TEXT NOT NULL,
    document        TEXT NOT NULL,
    PRIMARY KEY (principal_kind, principal_name, policy_name)
);

INSERT INTO iam_policies (name, arn, document, description, builtin, created_ms, updated_ms)
VALUES ('AdministratorAccess', 'arn:aws:iam::aws:policy/AdministratorAccess',
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}',
        'Every action on every resource', 1, 0, 0);

-- The admin users of earlier versions hold AdministratorAccess from now on.
INSERT INTO iam_attachments (principal_kind, principal_name, policy_name)
SELECT 'user', name, 'AdministratorAccess' FROM users WHERE is_admin = 1;

-- API keys of usage plans. The value is never stored: only its keyed hash (HMAC-SHA256 with a
-- key derived from the master key), so a lookup is one index probe.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    value_hash  TEXT NOT NULL UNIQUE,
    usage_plan  TEXT,
    enabled     BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL
);

-- Requests granted to a key in one quota period (the period's start, epoch ms). Grants are
-- reserved here in blocks before they are handed out, so a crash can only under-grant.
CREATE TABLE quota_usage (
    key_id           TEXT NOT NULL,
    period_start_ms  BIGINT NOT NULL,
    used             BIGINT NOT NULL,
    PRIMARY KEY (key_id, period_start_ms)
);

-- The OAuth2 authorization server (Cognito-compatible): resource servers and their scopes,
-- app clients, and the RS256 signing keys.
CREATE TABLE oauth_resource_servers (
    identifier  TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    -- JSON array of {"name","description"}
    scopes      TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE oauth_clients (
    client_id         TEXT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    secret_sealed     TEXT NOT NULL,
    -- JSON array of "resource/scope" the client may ask for
    scopes            TEXT NOT NULL,
    token_validity_s  BIGINT NOT NULL,
    created_ms        BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    -- the PKCS#8 private key, sealed with the master key
    private_sealed  TEXT NOT NULL,
    -- the public key as a JWK (JSON)
    public_jwk      TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    -- set when a newer key took over; kept in the JWKS until its last token expires
    retired_ms      BIGINT
);
