-- tokenctl schema for SQLite. Timestamps are UTC text, 'YYYY-MM-DDTHH:MM:SS.ffffffZ', so they
-- sort and compare as text. Counters are INTEGER (64-bit).

-- One row per AI type and month: the columns the existing backend reads and writes, plus
-- reserved_tokens (held by open reservations) and cost_usd, both defaulted so that a row
-- another program inserts with only its own columns is valid.
CREATE TABLE IF NOT EXISTS token_usage (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    ai_type          TEXT    NOT NULL,
    month_year       TEXT    NOT NULL,
    monthly_limit    INTEGER,
    tokens_in        INTEGER NOT NULL DEFAULT 0,
    tokens_out       INTEGER NOT NULL DEFAULT 0,
    total_tokens     INTEGER NOT NULL DEFAULT 0,
    request_count    INTEGER NOT NULL DEFAULT 0,
    usage_percentage REAL    NOT NULL DEFAULT 0,
    status           TEXT    NOT NULL DEFAULT 'active',
    last_request_at  TEXT,
    created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    reserved_tokens  INTEGER NOT NULL DEFAULT 0,
    cost_usd         REAL    NOT NULL DEFAULT 0,
    UNIQUE (ai_type, month_year)
);
CREATE INDEX IF NOT EXISTS token_usage_month ON token_usage (month_year);

-- Day ('YYYY-MM-DD') and hour ('YYYY-MM-DDTHH') counters per AI type, and for all AI types
-- together under ai_type '*'. They double as the per-hour rollups reports read.
CREATE TABLE IF NOT EXISTS token_usage_windows (
    ai_type    TEXT    NOT NULL,
    period     TEXT    NOT NULL,
    month_year TEXT    NOT NULL,
    tokens     INTEGER NOT NULL DEFAULT 0,
    reserved   INTEGER NOT NULL DEFAULT 0,
    requests   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (ai_type, period)
);
CREATE INDEX IF NOT EXISTS token_usage_windows_month ON token_usage_windows (month_year);

CREATE TABLE IF NOT EXISTS token_usage_logs (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    ai_type            TEXT    NOT NULL,
    model              TEXT,
    tokens_in          INTEGER NOT NULL DEFAULT 0,
    tokens_out         INTEGER NOT NULL DEFAULT 0,
    total_tokens       INTEGER NOT NULL DEFAULT 0,
    cost_usd           REAL    NOT NULL DEFAULT 0,
    request_id         TEXT,
    user_id            TEXT,
    session_id         TEXT,
    request_type       TEXT,
    processing_time_ms INTEGER,
    success            INTEGER NOT NULL DEFAULT 1,
    error_message      TEXT,
    created_at         TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    month_year         TEXT,
    reservation_id     TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS token_usage_logs_request_id ON token_usage_logs (request_id) WHERE request_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS token_usage_logs_reservation_id ON token_usage_logs (reservation_id) WHERE reservation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS token_usage_logs_created_at ON token_usage_logs (created_at);
CREATE INDEX IF NOT EXISTS token_usage_logs_ai_type_created_at ON token_usage_logs (ai_type, created_at);

-- A hold ends exactly once: state moves from 'held' to 'settled', 'released' or 'expired'
-- under the admission lock, and only a 'held' row still counts in reserved columns.
CREATE TABLE IF NOT EXISTS token_reservations (
    id               TEXT    PRIMARY KEY,
    ai_type          TEXT    NOT NULL,
    estimated_tokens INTEGER NOT NULL,
    month_year       TEXT    NOT NULL,
    day              TEXT    NOT NULL,
    hour             TEXT    NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'held',
    created_at       TEXT    NOT NULL,
    expires_at       TEXT    NOT NULL,
    ended_at         TEXT
);
CREATE INDEX IF NOT EXISTS token_reservations_state_expires ON token_reservations (state, expires_at);

-- scope 'default' (every AI type without its own value), 'global' (all AI types together) or
-- 'ai_type' (with ai_type set). NULL = not set here; rate limits use 0 for off.
CREATE TABLE IF NOT EXISTS token_limits (
    scope             TEXT NOT NULL,
    ai_type           TEXT NOT NULL DEFAULT '',
    monthly_limit     INTEGER,
    daily_limit       INTEGER,
    hourly_limit      INTEGER,
    per_request_limit INTEGER,
    rpm               INTEGER,
    rpd               INTEGER,
    cooldown_seconds  INTEGER,
    max_concurrent    INTEGER,
    pacing            INTEGER,
    updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (scope, ai_type)
);
INSERT OR IGNORE INTO token_limits (scope, ai_type, monthly_limit, per_request_limit, rpm, rpd, cooldown_seconds, max_concurrent, pacing)
VALUES ('default', '', 140000, 1000, 42, 3400, 0, 0, 0),
       ('global',  '', 140000, NULL, 42, 3400, NULL, 2, 0);

CREATE TABLE IF NOT EXISTS model_prices (
    model           TEXT PRIMARY KEY,
    input_per_mtok  REAL NOT NULL,
    output_per_mtok REAL NOT NULL,
    updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE IF NOT EXISTS token_usage_archive (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    ai_type          TEXT    NOT NULL,
    month_year       TEXT    NOT NULL,
    monthly_limit    INTEGER,
    tokens_in        INTEGER NOT NULL DEFAULT 0,
    tokens_out       INTEGER NOT NULL DEFAULT 0,
    total_tokens     INTEGER NOT NULL DEFAULT 0,
    request_count    INTEGER NOT NULL DEFAULT 0,
    usage_percentage REAL    NOT NULL DEFAULT 0,
    status           TEXT,
    last_request_at  TEXT,
    created_at       TEXT,
    updated_at       TEXT,
    cost_usd         REAL    NOT NULL DEFAULT 0,
    archived_at      TEXT    NOT NULL,
    reason           TEXT    NOT NULL CHECK (reason IN ('monthly', 'manual'))
);
CREATE INDEX IF NOT EXISTS token_usage_archive_month ON token_usage_archive (month_year, ai_type);

CREATE TABLE IF NOT EXISTS token_usage_alerts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    ai_type          TEXT    NOT NULL,
    level            TEXT    NOT NULL,
    month_year       TEXT    NOT NULL,
    usage_percentage REAL    NOT NULL,
    total_tokens     INTEGER NOT NULL,
    "limit"          INTEGER NOT NULL,
    message          TEXT    NOT NULL,
    created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS token_usage_alerts_created_at ON token_usage_alerts (created_at);
