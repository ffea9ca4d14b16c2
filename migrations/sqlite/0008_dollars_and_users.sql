-- Dollars and users (USD limits, per-user limits, dated prices with cache rates, daily rollups).
-- Money is kept as whole nano-dollars (1e-9 USD) in BIGINT columns named *_nanos, so that sums
-- are exact on every host; the float cost_usd columns the existing backend reads stay, written
-- from the exact figure.

-- Counters: a request's priced cost (exact), what unpriced requests are charged against cost
-- limits (at the dearest price known: never $0), and the cost reservations hold.
ALTER TABLE token_usage ADD COLUMN cost_nanos BIGINT NOT NULL DEFAULT 0;
ALTER TABLE token_usage ADD COLUMN unpriced_requests BIGINT NOT NULL DEFAULT 0;
ALTER TABLE token_usage_windows ADD COLUMN cost_nanos BIGINT NOT NULL DEFAULT 0;
ALTER TABLE token_usage_windows ADD COLUMN unpriced_cost_nanos BIGINT NOT NULL DEFAULT 0;
ALTER TABLE token_usage_windows ADD COLUMN reserved_cost_nanos BIGINT NOT NULL DEFAULT 0;

-- and unpriced requests, kept when a month is archived
ALTER TABLE token_usage_archive ADD COLUMN unpriced_requests BIGINT NOT NULL DEFAULT 0;

-- A log row's exact cost (null, as cost_usd, when its model has no price) and its cache tokens.
ALTER TABLE token_usage_logs ADD COLUMN cost_nanos BIGINT;
ALTER TABLE token_usage_logs ADD COLUMN cache_read_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE token_usage_logs ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;

ALTER TABLE token_reservations ADD COLUMN user_id TEXT;
ALTER TABLE token_reservations ADD COLUMN model TEXT;
ALTER TABLE token_reservations ADD COLUMN estimated_cost_nanos BIGINT NOT NULL DEFAULT 0;

-- USD limits for every scope; scopes 'user' (ai_type holds the user id) and 'default_user'.
ALTER TABLE token_limits ADD COLUMN daily_cost_nanos BIGINT;
ALTER TABLE token_limits ADD COLUMN monthly_cost_nanos BIGINT;

-- One user's counters over every AI type, a row per month ('YYYY-MM') and day ('YYYY-MM-DD'),
-- read by primary key: admission never reads the log, however many users there are.
CREATE TABLE IF NOT EXISTS token_user_usage (
    user_id             TEXT   NOT NULL,
    period              TEXT   NOT NULL,
    month_year          TEXT   NOT NULL,
    tokens              BIGINT NOT NULL DEFAULT 0,
    reserved            BIGINT NOT NULL DEFAULT 0,
    requests            BIGINT NOT NULL DEFAULT 0,
    cost_nanos          BIGINT NOT NULL DEFAULT 0,
    unpriced_cost_nanos BIGINT NOT NULL DEFAULT 0,
    reserved_cost_nanos BIGINT NOT NULL DEFAULT 0,
    unpriced_requests   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, period)
);
CREATE INDEX IF NOT EXISTS token_user_usage_month ON token_user_usage (month_year);
-- a day's users by what they spent: where a report's top users are found without reading
-- every user's rows (see ops::report)
CREATE INDEX IF NOT EXISTS token_user_usage_period_cost ON token_user_usage (period, cost_nanos, user_id, requests);

-- What reports read instead of the log: per day (in the configured zone), AI type, user and
-- model ('' for none), written in record's transaction.
CREATE TABLE IF NOT EXISTS token_usage_daily (
    day                TEXT   NOT NULL,
    ai_type            TEXT   NOT NULL,
    user_id            TEXT   NOT NULL DEFAULT '',
    model              TEXT   NOT NULL DEFAULT '',
    requests           BIGINT NOT NULL DEFAULT 0,
    tokens_in          BIGINT NOT NULL DEFAULT 0,
    tokens_out         BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens  BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    total_tokens       BIGINT NOT NULL DEFAULT 0,
    cost_nanos         BIGINT NOT NULL DEFAULT 0,
    unpriced_requests  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, ai_type, user_id, model)
);
CREATE INDEX IF NOT EXISTS token_usage_daily_user ON token_usage_daily (user_id, day);

-- The same per (day, AI type, model), users summed: a report's trend, models and AI types
-- from a few rows a day however many users there are. Then the users: how many made a
-- request each day, and the last day each one did (users active since a day, counted by
-- an index range).
CREATE TABLE IF NOT EXISTS token_usage_daily_models (
    day                TEXT   NOT NULL,
    ai_type            TEXT   NOT NULL,
    model              TEXT   NOT NULL DEFAULT '',
    requests           BIGINT NOT NULL DEFAULT 0,
    tokens_in          BIGINT NOT NULL DEFAULT 0,
    tokens_out         BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens  BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    total_tokens       BIGINT NOT NULL DEFAULT 0,
    cost_nanos         BIGINT NOT NULL DEFAULT 0,
    unpriced_requests  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, ai_type, model)
);
CREATE TABLE IF NOT EXISTS token_day_users (
    day   TEXT   PRIMARY KEY,
    users BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS token_users (
    user_id  TEXT PRIMARY KEY,
    last_day TEXT NOT NULL
);
-- how many users were last active on each day: users active since a day is a sum of a few rows
CREATE TABLE IF NOT EXISTS token_last_days (
    day   TEXT   PRIMARY KEY,
    users BIGINT NOT NULL DEFAULT 0
);

-- Prices per million tokens with the date they apply from ('1970-01-01': always), cache rates
-- and the long-context tier; model_prices (USD as floats, one per model) is read no more.
CREATE TABLE IF NOT EXISTS token_model_prices (
    model                 TEXT   NOT NULL,
    effective_from        TEXT   NOT NULL,
    input_nanos           BIGINT NOT NULL,
    output_nanos          BIGINT NOT NULL,
    cache_read_nanos      BIGINT,
    cache_write_nanos     BIGINT,
    long_above_tokens     BIGINT,
    long_input_nanos      BIGINT,
    long_output_nanos     BIGINT,
    long_cache_read_nanos BIGINT,
    long_cache_write_nanos BIGINT,
    updated_at            TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (model, effective_from)
);
INSERT INTO token_model_prices (model, effective_from, input_nanos, output_nanos, updated_at)
SELECT model, '1970-01-01', CAST(ROUND(input_per_mtok * 1e9) AS INTEGER), CAST(ROUND(output_per_mtok * 1e9) AS INTEGER), updated_at
FROM model_prices
WHERE true
ON CONFLICT DO NOTHING;

-- Carried over: the month's cost so far, and rollups of the log kept so far (by UTC day; a
-- request logged at cost 0 with tokens was unpriced: earlier versions wrote 0 for those).
-- token_usage_logs.cost_usd may be NULL from now on: Db::migrate lifts its NOT NULL (SQLite
-- cannot alter a column), see sqlite::allow_null_cost.
UPDATE token_usage SET cost_nanos = CAST(ROUND(cost_usd * 1e9) AS INTEGER) WHERE typeof(cost_usd) IN ('integer', 'real') AND cost_usd > 0;
INSERT INTO token_usage_daily (day, ai_type, user_id, model, requests, tokens_in, tokens_out, total_tokens,
                               cost_nanos, unpriced_requests)
SELECT substr(created_at, 1, 10), ai_type, COALESCE(user_id, ''), COALESCE(model, ''),
       COUNT(*), SUM(tokens_in), SUM(tokens_out), SUM(total_tokens), CAST(ROUND(SUM(COALESCE(cost_usd, 0)) * 1e9) AS INTEGER),
       SUM(CASE WHEN COALESCE(cost_usd, 0) = 0 AND total_tokens > 0 THEN 1 ELSE 0 END)
FROM token_usage_logs
WHERE true
GROUP BY 1, 2, 3, 4
ON CONFLICT DO NOTHING;

-- and the rest of the reports' rollups, and the users' day and month counters, from it
INSERT INTO token_usage_daily_models (day, ai_type, model, requests, tokens_in, tokens_out, total_tokens,
                                      cost_nanos, unpriced_requests)
SELECT day, ai_type, model, SUM(requests), SUM(tokens_in), SUM(tokens_out), SUM(total_tokens), SUM(cost_nanos),
       SUM(unpriced_requests)
FROM token_usage_daily
WHERE true
GROUP BY day, ai_type, model
ON CONFLICT DO NOTHING;
INSERT INTO token_day_users (day, users)
SELECT day, COUNT(DISTINCT user_id) FROM token_usage_daily WHERE user_id <> '' GROUP BY day
ON CONFLICT DO NOTHING;
INSERT INTO token_users (user_id, last_day)
SELECT user_id, MAX(day) FROM token_usage_daily WHERE user_id <> '' GROUP BY user_id
ON CONFLICT DO NOTHING;
INSERT INTO token_last_days (day, users)
SELECT last_day, COUNT(*) FROM token_users WHERE true GROUP BY last_day
ON CONFLICT DO NOTHING;
INSERT INTO token_user_usage (user_id, period, month_year, tokens, requests, cost_nanos, unpriced_requests)
SELECT user_id, day, SUBSTR(day, 1, 7), SUM(total_tokens), SUM(requests), SUM(cost_nanos), SUM(unpriced_requests)
FROM token_usage_daily WHERE user_id <> '' GROUP BY user_id, day
ON CONFLICT DO NOTHING;
INSERT INTO token_user_usage (user_id, period, month_year, tokens, requests, cost_nanos, unpriced_requests)
SELECT user_id, SUBSTR(day, 1, 7), SUBSTR(day, 1, 7), SUM(total_tokens), SUM(requests), SUM(cost_nanos), SUM(unpriced_requests)
FROM token_usage_daily WHERE user_id <> '' GROUP BY user_id, SUBSTR(day, 1, 7)
ON CONFLICT DO NOTHING;

-- The months still open: what their USD limits count so far (the AI types' and the total's
-- month and day window rows carry the dollars), and their unpriced requests.
UPDATE token_usage SET unpriced_requests = COALESCE((
    SELECT SUM(d.unpriced_requests) FROM token_usage_daily d
    WHERE d.ai_type = token_usage.ai_type AND SUBSTR(d.day, 1, 7) = token_usage.month_year), 0);
INSERT INTO token_usage_windows (ai_type, period, month_year, cost_nanos)
SELECT ai_type, month_year, month_year, cost_nanos FROM token_usage WHERE cost_nanos > 0
ON CONFLICT (ai_type, period) DO UPDATE SET cost_nanos = excluded.cost_nanos;
INSERT INTO token_usage_windows (ai_type, period, month_year, cost_nanos)
SELECT '*', month_year, month_year, SUM(cost_nanos) FROM token_usage WHERE cost_nanos > 0 GROUP BY month_year
ON CONFLICT (ai_type, period) DO UPDATE SET cost_nanos = excluded.cost_nanos;
INSERT INTO token_usage_windows (ai_type, period, month_year, cost_nanos)
SELECT ai_type, day, SUBSTR(day, 1, 7), SUM(cost_nanos) FROM token_usage_daily
WHERE SUBSTR(day, 1, 7) IN (SELECT month_year FROM token_usage) GROUP BY ai_type, day
ON CONFLICT (ai_type, period) DO UPDATE SET cost_nanos = excluded.cost_nanos;
INSERT INTO token_usage_windows (ai_type, period, month_year, cost_nanos)
SELECT '*', day, SUBSTR(day, 1, 7), SUM(cost_nanos) FROM token_usage_daily
WHERE SUBSTR(day, 1, 7) IN (SELECT month_year FROM token_usage) GROUP BY day
ON CONFLICT (ai_type, period) DO UPDATE SET cost_nanos = excluded.cost_nanos;
