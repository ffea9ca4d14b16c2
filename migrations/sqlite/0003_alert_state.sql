-- Alerts are raised once per level per AI type per month and re-armed when usage falls back
-- below the level: an alert is "active" until cleared_at is set, and the partial unique index
-- lets only one monitor (of any number running at once, on any host) raise it.
ALTER TABLE token_usage_alerts ADD COLUMN cleared_at TEXT;
ALTER TABLE token_usage_alerts ADD COLUMN recommended_action TEXT;
ALTER TABLE token_usage_alerts ADD COLUMN burn_rate_per_hour REAL;
ALTER TABLE token_usage_alerts ADD COLUMN projected_month_total INTEGER;
ALTER TABLE token_usage_alerts ADD COLUMN projected_exhaustion_at TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS token_usage_alerts_active
    ON token_usage_alerts (ai_type, month_year, level) WHERE cleared_at IS NULL;
