-- API keys: a key id (public) and a secret (shown once, stored as a salted digest).
CREATE TABLE api_keys (
    key_id        text PRIMARY KEY,
    account       text NOT NULL,
    scope         text NOT NULL CHECK (scope IN ('trader', 'admin')),
    secret_salt   bytea NOT NULL,
    secret_hash   bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
CREATE INDEX api_keys_account ON api_keys (account);
