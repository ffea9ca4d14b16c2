-- tokenctl schema for PostgreSQL. Written to adopt a database where the existing backend
-- already created token_usage / token_usage_logs: tables are created if missing, and the
-- columns tokenctl adds are added if missing, each with a default.

CREATE TABLE IF NOT EXISTS token_usage (
    id               BIGSERIAL PRIMARY KEY,
    ai_type          TEXT             NOT NULL,
    month_year       TEXT             NOT NULL,
    monthly_limit    BIGINT,
    tokens_in        BIGINT           NOT NULL DEFAULT 0,
    tokens_out       BIGINT           NOT NULL DEFAULT 0,
    total_tokens     BIGINT           NOT NULL DEFAULT 0,
    request_count    BIGINT           NOT NULL DEFAULT 0,
    usage_percentage DOUBLE PRECISION NOT NULL DEFAULT 0,
    status           TEXT             NOT NULL DEFAULT 'active',
    last_request_at  TIMESTAMPTZ,
    created_at       TIMESTAMPTZ      NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ      NOT NULL DEFAULT now()
);
ALTER TABLE token_usage ADD COLUMN IF NOT EXISTS reserved_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE token_usage ADD COLUMN IF NOT EXISTS cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX IF NOT EXISTS token_usage_ai_type_month ON token_usage (ai_type, month_year);
CREATE INDEX IF NOT EXISTS token_usage_month ON token_usage (month_year);

-- Day ('YYYY-MM-DD') and hour ('YYYY-MM-DDTHH') counters per AI type, and for all AI types
-- together under ai_type '*'. They double as the per-hour rollups reports read.
CREATE TABLE IF NOT EXISTS token_usage_windows (
    ai_type    TEXT   NOT NULL,
    period     TEXT   NOT NULL,
    month_year TEXT   NOT NULL,
    tokens     BIGINT NOT NULL DEFAULT 0,
    reserved   BIGINT NOT NULL DEFAULT 0,
    requests   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (ai_type, period)
);
CREATE INDEX IF NOT EXISTS token_usage_windows_month ON token_usage_windows (month_year);

CREATE TABLE IF NOT EXISTS token_usage_logs (
    id                 BIGSERIAL PRIMARY KEY,
    ai_type            TEXT             NOT NULL,
    model              TEXT,
    tokens_in          BIGINT           NOT NULL DEFAULT 0,
    tokens_out         BIGINT           NOT NULL DEFAULT 0,
    total_tokens       BIGINT           NOT NULL DEFAULT 0,
    cost_usd           DOUBLE PRECISION NOT NULL DEFAULT 0,
    request_id         TEXT,
    user_id            TEXT,
    session_id         TEXT,
    request_type       TEXT,
    processing_time_ms BIGINT,
    success            BOOLEAN          NOT NULL DEFAULT TRUE,
    error_message      TEXT,
    created_at         TIMESTAMPTZ      NOT NULL DEFAULT now()
);
ALTER TABLE token_usage_logs ADD COLUMN IF NOT EXISTS month_year TEXT;
ALTER TABLE token_usage_logs ADD COLUMN IF NOT EXISTS reservation_id TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS token_usage_logs_request_id ON token_usage_logs (request_id) WHERE request_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS token_usage_logs_reservation_id ON token_usage_logs (reservation_id) WHERE reservation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS token_usage_logs_created_at ON token_usage_logs (created_at);
CREATE INDEX IF NOT EXISTS token_usage_logs_ai_type_created_at ON token_usage_logs (ai_type, created_at);

-- A hold ends exactly once: state moves from 'held' to 'settled', 'released' or 'expired'
-- under the admission lock, and only a 'held' row still counts in reserved columns.
CREATE TABLE IF NOT EXISTS token_reservations (
    id               TEXT        PRIMARY KEY,
    ai_type          TEXT        NOT NULL,
    estimated_tokens BIGINT      NOT NULL,
    month_year       TEXT        NOT NULL,
    day              TEXT        NOT NULL,
    hour             TEXT        NOT NULL,
    state            TEXT        NOT NULL DEFAULT 'held',
    created_at       TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    ended_at         TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS token_reservations_state_expires ON token_reservations (state, expires_at);

CREATE TABLE IF NOT EXISTS token_limits (
    scope             TEXT        NOT NULL,
    ai_type           TEXT        NOT NULL DEFAULT '',
    monthly_limit     BIGINT,
    daily_limit       BIGINT,
    hourly_limit      BIGINT,
    per_request_limit BIGINT,
    rpm               BIGINT,
    rpd               BIGINT,
    cooldown_seconds  BIGINT,
    max_concurrent    BIGINT,
    pacing            BOOLEAN,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, ai_type)
);
INSERT INTO token_limits (scope, ai_type, monthly_limit, per_request_limit, rpm, rpd, cooldown_seconds, max_concurrent, pacing)
VALUES ('default', '', 140000, 1000, 42, 3400, 0, 0, FALSE),
       ('global',  '', 140000, NULL, 42, 3400, NULL, 2, FALSE)
ON CONFLICT DO NOTHING;

CREATE TABLE IF NOT EXISTS model_prices (
    model           TEXT             PRIMARY KEY,
    input_per_mtok  DOUBLE PRECISION NOT NULL,
    output_per_mtok DOUBLE PRECISION NOT NULL,
    updated_at      TIMESTAMPTZ      NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS token_usage_archive (
    id               BIGSERIAL PRIMARY KEY,
    ai_type          TEXT             NOT NULL,
    month_year       TEXT             NOT NULL,
    monthly_limit    BIGINT,
    tokens_in        BIGINT           NOT NULL DEFAULT 0,
    tokens_out       BIGINT           NOT NULL DEFAULT 0,
    total_tokens     BIGINT           NOT NULL DEFAULT 0,
    request_count    BIGINT           NOT NULL DEFAULT 0,
    usage_percentage DOUBLE PRECISION NOT NULL DEFAULT 0,
    status           TEXT,
    last_request_at  TIMESTAMPTZ,
    created_at       TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ,
    cost_usd         DOUBLE PRECISION NOT NULL DEFAULT 0,
    archived_at      TIMESTAMPTZ      NOT NULL,
    reason           TEXT             NOT NULL CHECK (reason IN ('monthly', 'manual'))
);
CREATE INDEX IF NOT EXISTS token_usage_archive_month ON token_usage_archive (month_year, ai_type);

CREATE TABLE IF NOT EXISTS token_usage_alerts (
    id               BIGSERIAL PRIMARY KEY,
    ai_type          TEXT             NOT NULL,
    level            TEXT             NOT NULL,
    month_year       TEXT             NOT NULL,
    usage_percentage DOUBLE PRECISION NOT NULL,
    total_tokens     BIGINT           NOT NULL,
    "limit"          BIGINT           NOT NULL,
    message          TEXT             NOT NULL,
    created_at       TIMESTAMPTZ      NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS token_usage_alerts_created_at ON token_usage_alerts (created_at);
