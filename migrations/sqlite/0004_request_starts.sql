-- Request starts for the rate limits, one row per AI type and one for the total ('*'): the
-- last start (cooldown) and the starts in the current minute (rpm). Starts per day are the
-- `requests` of the day windows.
CREATE TABLE IF NOT EXISTS token_request_starts (
    ai_type         TEXT    PRIMARY KEY,
    last_start_at   TEXT    NOT NULL,
    minute          TEXT    NOT NULL,
    minute_requests INTEGER NOT NULL DEFAULT 0
);
