-- Settings every host must share, such as the time zone periods are computed in.
CREATE TABLE IF NOT EXISTS tokenctl_settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
