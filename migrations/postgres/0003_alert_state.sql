-- Alerts are raised once per level per AI type per month and re-armed when usage falls back
-- below the level: an alert is "active" until cleared_at is set, and the partial unique index
-- lets only one monitor (of any number running at once, on any host) raise it.
ALTER TABLE token_usage_alerts ADD COLUMN IF NOT EXISTS cleared_at TIMESTAMPTZ;
ALTER TABLE token_usage_alerts ADD COLUMN IF NOT EXISTS recommended_action TEXT;
ALTER TABLE token_usage_alerts ADD COLUMN IF NOT EXISTS burn_rate_per_hour DOUBLE PRECISION;
ALTER TABLE token_usage_alerts ADD COLUMN IF NOT EXISTS projected_month_total BIGINT;
ALTER TABLE token_usage_alerts ADD COLUMN IF NOT EXISTS projected_exhaustion_at TIMESTAMPTZ;
CREATE UNIQUE INDEX IF NOT EXISTS token_usage_alerts_active
    ON token_usage_alerts (ai_type, month_year, level) WHERE cleared_at IS NULL;
