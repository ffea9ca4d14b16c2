-- A month monthly-reset archived is closed: nothing is admitted in it any more, and usage
-- recorded late in it is added to its one 'monthly' archive row.
CREATE TABLE IF NOT EXISTS token_closed_months (
    month_year   TEXT        PRIMARY KEY,
    global_limit BIGINT,
    closed_at    TIMESTAMPTZ NOT NULL
);

-- Earlier versions could archive a month in fragments (a late write reopened it): merge each
-- AI type's fragments of a month into its first row before the unique key is made.
UPDATE token_usage_archive AS a SET
    tokens_in = f.tokens_in, tokens_out = f.tokens_out, total_tokens = f.total_tokens,
    request_count = f.request_count, cost_usd = f.cost_usd
FROM (SELECT MIN(id) AS keep, LEAST(SUM(tokens_in), 9223372036854775807)::BIGINT AS tokens_in,
             LEAST(SUM(tokens_out), 9223372036854775807)::BIGINT AS tokens_out,
             LEAST(SUM(total_tokens), 9223372036854775807)::BIGINT AS total_tokens,
             LEAST(SUM(request_count), 9223372036854775807)::BIGINT AS request_count, SUM(cost_usd) AS cost_usd
      FROM token_usage_archive WHERE reason = 'monthly' GROUP BY ai_type, month_year HAVING COUNT(*) > 1) AS f
WHERE a.id = f.keep;
DELETE FROM token_usage_archive AS a
USING (SELECT ai_type, month_year, MIN(id) AS keep FROM token_usage_archive WHERE reason = 'monthly'
       GROUP BY ai_type, month_year HAVING COUNT(*) > 1) AS f
WHERE a.reason = 'monthly' AND a.ai_type = f.ai_type AND a.month_year = f.month_year AND a.id <> f.keep;
CREATE UNIQUE INDEX IF NOT EXISTS token_usage_archive_monthly ON token_usage_archive (ai_type, month_year) WHERE reason = 'monthly';

INSERT INTO token_closed_months (month_year, closed_at)
SELECT month_year, MAX(archived_at) FROM token_usage_archive WHERE reason = 'monthly' GROUP BY month_year
ON CONFLICT DO NOTHING;
