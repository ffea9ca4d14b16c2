-- A month monthly-reset archived is closed: nothing is admitted in it any more, and usage
-- recorded late in it is added to its one 'monthly' archive row.
CREATE TABLE IF NOT EXISTS token_closed_months (
    month_year   TEXT PRIMARY KEY,
    global_limit INTEGER,
    closed_at    TEXT NOT NULL
);

-- Earlier versions could archive a month in fragments (a late write reopened it): merge each
-- AI type's fragments of a month into its first row before the unique key is made.
UPDATE token_usage_archive SET
    tokens_in = (SELECT SUM(f.tokens_in) FROM token_usage_archive f
                 WHERE f.reason = 'monthly' AND f.ai_type = token_usage_archive.ai_type AND f.month_year = token_usage_archive.month_year),
    tokens_out = (SELECT SUM(f.tokens_out) FROM token_usage_archive f
                  WHERE f.reason = 'monthly' AND f.ai_type = token_usage_archive.ai_type AND f.month_year = token_usage_archive.month_year),
    total_tokens = (SELECT SUM(f.total_tokens) FROM token_usage_archive f
                    WHERE f.reason = 'monthly' AND f.ai_type = token_usage_archive.ai_type AND f.month_year = token_usage_archive.month_year),
    request_count = (SELECT SUM(f.request_count) FROM token_usage_archive f
                     WHERE f.reason = 'monthly' AND f.ai_type = token_usage_archive.ai_type AND f.month_year = token_usage_archive.month_year),
    cost_usd = (SELECT SUM(f.cost_usd) FROM token_usage_archive f
                WHERE f.reason = 'monthly' AND f.ai_type = token_usage_archive.ai_type AND f.month_year = token_usage_archive.month_year)
WHERE reason = 'monthly'
  AND id = (SELECT MIN(f.id) FROM token_usage_archive f
            WHERE f.reason = 'monthly' AND f.ai_type = token_usage_archive.ai_type AND f.month_year = token_usage_archive.month_year);
DELETE FROM token_usage_archive
WHERE reason = 'monthly'
  AND id <> (SELECT MIN(f.id) FROM token_usage_archive f
             WHERE f.reason = 'monthly' AND f.ai_type = token_usage_archive.ai_type AND f.month_year = token_usage_archive.month_year);
CREATE UNIQUE INDEX IF NOT EXISTS token_usage_archive_monthly ON token_usage_archive (ai_type, month_year) WHERE reason = 'monthly';

INSERT OR IGNORE INTO token_closed_months (month_year, closed_at)
SELECT month_year, MAX(archived_at) FROM token_usage_archive WHERE reason = 'monthly' GROUP BY month_year;
