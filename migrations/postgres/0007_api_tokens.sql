-- Bearer tokens of `tokenctl serve`: only a SHA-256 of each secret is kept (the secret is
-- shown once, at creation). A revoked token keeps its row (who had access, until when); a
-- name is unique among the tokens not revoked.
CREATE TABLE IF NOT EXISTS tokenctl_api_tokens (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL,
    scope         TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ
);
CREATE UNIQUE INDEX IF NOT EXISTS tokenctl_api_tokens_active_name
    ON tokenctl_api_tokens (name) WHERE revoked_at IS NULL;
