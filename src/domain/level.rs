use serde::Serialize;

/// Threshold percentages of the enforced monthly limit.
pub const WARNING_PERCENT: i64 = 80;
pub const CRITICAL_PERCENT: i64 = 95;
pub const EMERGENCY_PERCENT: i64 = 98;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Critical,
    Emergency,
}

impl Level {
    /// Level of `used` tokens against an enforced `limit`. Integer arithmetic, so 112,000 of
    /// 140,000 is exactly a warning and 111,999 is not. A zero limit allows nothing: emergency.
    pub fn of(used: i64, limit: i64) -> Level {
        if limit <= 0 {
            return Level::Emergency;
        }
        let used = used as i128 * 100;
        let limit = limit as i128;
        if used >= limit * EMERGENCY_PERCENT as i128 {
            Level::Emergency
        } else if used >= limit * CRITICAL_PERCENT as i128 {
            Level::Critical
        } else if used >= limit * WARNING_PERCENT as i128 {
            Level::Warning
        } else {
            Level::Ok
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Critical => "critical",
            Level::Emergency => "emergency",
        }
    }

    /// The `token_usage.status` value the existing backend understands ('active' when fine).
    pub fn row_status(self) -> &'static str {
        match self {
            Level::Ok => "active",
            other => other.as_str(),
        }
    }

    /// Tokens at which `limit` reaches this level's threshold.
    pub fn threshold_tokens(self, limit: i64) -> i64 {
        let pct = match self {
            Level::Ok => 0,
            Level::Warning => WARNING_PERCENT,
            Level::Critical => CRITICAL_PERCENT,
            Level::Emergency => EMERGENCY_PERCENT,
        };
        // ceil(limit * pct / 100): the first whole token count at or above the threshold
        ((limit as i128 * pct as i128 + 99) / 100) as i64
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Usage as a percentage of the limit, rounded to two decimals (what `status` and the
/// `usage_percentage` column show).
pub fn percentage(used: i64, limit: i64) -> f64 {
    if limit <= 0 {
        return if used > 0 { 100.0 } else { 0.0 };
    }
    ((used as f64 / limit as f64) * 10_000.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_of_the_default_limit() {
        assert_eq!(Level::of(111_999, 140_000), Level::Ok);
        assert_eq!(Level::of(112_000, 140_000), Level::Warning);
        assert_eq!(Level::of(132_999, 140_000), Level::Warning);
        assert_eq!(Level::of(133_000, 140_000), Level::Critical);
        assert_eq!(Level::of(137_199, 140_000), Level::Critical);
        assert_eq!(Level::of(137_200, 140_000), Level::Emergency);
        assert_eq!(Level::of(0, 0), Level::Emergency);
        assert_eq!(Level::Warning.threshold_tokens(140_000), 112_000);
        assert_eq!(Level::Critical.threshold_tokens(140_000), 133_000);
        assert_eq!(Level::Emergency.threshold_tokens(140_000), 137_200);
    }

    #[test]
    fn percentage_rounds_to_two_decimals() {
        assert_eq!(percentage(1_073, 140_000), 0.77);
        assert_eq!(percentage(140_000, 140_000), 100.0);
        assert_eq!(percentage(0, 0), 0.0);
    }
}
