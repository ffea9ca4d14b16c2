//! Pacing: spend the month evenly. The cumulative usage allowed at instant t is the enforced
//! monthly limit times the elapsed fraction of the month, plus an allowance of one day's even
//! share (monthly ÷ days in the month), so a request can run at the start of the month and a
//! quiet morning can be caught up later in the day.

use chrono::{DateTime, Duration, Utc};

use super::Periods;

fn month_seconds(p: &Periods) -> i64 {
    (p.month_end - p.month_start).num_seconds().max(1)
}

/// One day's even share of the month, rounded up.
pub fn allowance(monthly: i64, p: &Periods) -> i64 {
    let days = (month_seconds(p) as f64 / 86_400.0).round().max(1.0) as i64;
    (monthly + days - 1) / days
}

/// The cumulative usage allowed at `t`.
pub fn allowed_at(monthly: i64, p: &Periods, t: DateTime<Utc>) -> i64 {
    let elapsed = (t - p.month_start).num_seconds().clamp(0, month_seconds(p));
    let paced = (monthly as i128 * elapsed as i128 / month_seconds(p) as i128) as i64;
    paced.saturating_add(allowance(monthly, p))
}

/// The first instant at which cumulative usage `need` is allowed; None if not this month.
pub fn fits_at(monthly: i64, p: &Periods, need: i64) -> Option<DateTime<Utc>> {
    let extra = need - allowance(monthly, p);
    if extra <= 0 {
        return Some(p.month_start);
    }
    if monthly <= 0 || extra > monthly {
        return None;
    }
    let secs = (extra as i128 * month_seconds(p) as i128 + monthly as i128 - 1) / monthly as i128;
    let at = p.month_start + Duration::seconds(secs as i64);
    (at < p.month_end).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::super::clock::periods_at;
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn november_with_the_default_limit() {
        let p = periods_at(t("2026-11-11T00:00:00Z"), chrono_tz::Tz::UTC);
        assert_eq!(allowance(140_000, &p), 4_667);
        // a third of November has passed: 46,666 paced + 4,667
        assert_eq!(
            allowed_at(140_000, &p, t("2026-11-11T00:00:00Z")),
            46_666 + 4_667
        );
        assert_eq!(allowed_at(140_000, &p, p.month_start), 4_667);
        // 60,000 fits once 55,333 is paced: 11.857 days in
        assert_eq!(
            fits_at(140_000, &p, 60_000),
            Some(t("2026-11-12T20:34:11Z"))
        );
        assert_eq!(fits_at(140_000, &p, 4_000), Some(p.month_start));
        assert_eq!(fits_at(140_000, &p, 200_000), None);
    }

    #[test]
    fn february_of_a_leap_year() {
        let p = periods_at(t("2028-02-15T00:00:00Z"), chrono_tz::Tz::UTC);
        assert_eq!(allowance(29_000, &p), 1_000);
        assert_eq!(
            allowed_at(29_000, &p, t("2028-02-15T00:00:00Z")),
            14_000 + 1_000
        );
    }
}
