//! Burn rate and projection: how fast an AI type (or the total) is spending, and where that
//! leads by the end of the month.
//!
//! The rate is the tokens of the last 24 hour-buckets (the current hour and the 23 before it)
//! divided by the time they span up to now — 23 hours plus the minutes of the current hour, but
//! never reaching back before the month began, and at least one hour. A day-long window
//! smooths out one busy hour but still follows a change in behaviour within the day.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::clock::periods_at;
use super::{Clock, Periods};

pub const WINDOW_HOURS: i64 = 24;

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Burn {
    pub burn_rate_per_hour: Option<f64>,
    pub projected_month_total: Option<i64>,
    /// when the enforced limit is reached at this rate; null if not within this month
    pub projected_exhaustion_at: Option<DateTime<Utc>>,
}

/// The hour keys of the window ending now, newest first, with each hour's start.
pub fn window_hours(clock: &Clock) -> Vec<(String, DateTime<Utc>)> {
    let mut out: Vec<(String, DateTime<Utc>)> = Vec::new();
    for k in 0..WINDOW_HOURS {
        let p = periods_at(clock.now - Duration::hours(k), clock.tz);
        if out.iter().all(|(key, _)| *key != p.hour) {
            out.push((p.hour, p.hour_start));
        }
    }
    out
}

/// `buckets`: (hour start, tokens) of the window's hours that have usage.
pub fn burn(
    now: DateTime<Utc>,
    periods: &Periods,
    used: i64,
    limit: i64,
    buckets: &[(DateTime<Utc>, i64)],
) -> Burn {
    let oldest = now - Duration::hours(WINDOW_HOURS);
    let in_month: Vec<&(DateTime<Utc>, i64)> = buckets
        .iter()
        .filter(|(start, _)| *start >= periods.month_start && *start > oldest)
        .collect();
    // the oldest bucket's hour starts 23 hours before the current one
    let current_hour_start = periods.hour_start;
    let window_start =
        (current_hour_start - Duration::hours(WINDOW_HOURS - 1)).max(periods.month_start);
    let hours = ((now - window_start).num_seconds() as f64 / 3600.0).max(1.0);
    let tokens: i64 = in_month.iter().map(|(_, t)| *t).sum();
    let rate = tokens as f64 / hours;
    let hours_left = ((periods.month_end - now).num_seconds().max(0)) as f64 / 3600.0;
    let projected = used.saturating_add((rate * hours_left).round() as i64);
    let exhaustion = if rate > 0.0 && used < limit {
        // a huge limit at a slow rate is reached past any date there is: never this month
        let secs = ((limit - used) as f64 / rate * 3600.0).ceil() as i64;
        Duration::try_seconds(secs)
            .and_then(|d| now.checked_add_signed(d))
            .filter(|at| *at < periods.month_end)
    } else {
        None
    };
    Burn {
        burn_rate_per_hour: Some((rate * 100.0).round() / 100.0),
        projected_month_total: Some(projected),
        projected_exhaustion_at: exhaustion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn steady_usage_over_the_last_day() {
        // 1,000 tokens in each of the last 24 hours, 30 minutes into the current hour
        let now = t("2026-11-23T10:30:00Z");
        let p = periods_at(now, chrono_tz::Tz::UTC);
        let buckets: Vec<_> = (0..24)
            .map(|k| (t("2026-11-23T10:00:00Z") - Duration::hours(k), 1_000))
            .collect();
        let b = burn(now, &p, 50_000, 140_000, &buckets);
        // 24,000 tokens over 23.5 hours
        assert_eq!(b.burn_rate_per_hour, Some(1021.28));
        // 7 days 13.5 hours (181.5 h) remain in November
        assert_eq!(
            b.projected_month_total,
            Some(50_000 + (24_000.0f64 / 23.5 * 181.5).round() as i64)
        );
        // 90,000 tokens to go at 1,021.28/h: 88.1 hours → 2026-11-27T02:38:45Z
        assert_eq!(b.projected_exhaustion_at, Some(t("2026-11-27T02:37:30Z")));
    }

    #[test]
    fn a_limit_far_beyond_the_rate_is_never_reached_this_month() {
        // 1 token an hour against a 10^18 limit: 10^18 hours away, past any date
        let now = t("2026-11-23T10:30:00Z");
        let p = periods_at(now, chrono_tz::Tz::UTC);
        let b = burn(
            now,
            &p,
            24,
            1_000_000_000_000_000_000,
            &[(t("2026-11-23T10:00:00Z"), 24)],
        );
        assert_eq!(b.projected_exhaustion_at, None);
        assert!(b.burn_rate_per_hour.unwrap() > 0.0);
    }

    #[test]
    fn early_in_the_month_the_window_starts_at_the_first() {
        let now = t("2026-12-01T03:00:00Z");
        let p = periods_at(now, chrono_tz::Tz::UTC);
        let buckets = vec![
            (t("2026-12-01T00:00:00Z"), 600),
            (t("2026-11-30T23:00:00Z"), 5_000),
        ];
        let b = burn(now, &p, 600, 140_000, &buckets);
        assert_eq!(
            b.burn_rate_per_hour,
            Some(200.0),
            "600 tokens over 3 hours; November does not count"
        );
        // 139,400 tokens to go at 200/h: 697 hours
        assert_eq!(b.projected_exhaustion_at, Some(t("2026-12-30T04:00:00Z")));
        let slow = burn(now, &p, 600, 1_000_000, &buckets);
        assert_eq!(
            slow.projected_exhaustion_at, None,
            "not within December at 200/h"
        );
    }

    #[test]
    fn idle_and_exhausted() {
        let now = t("2026-11-23T10:30:00Z");
        let p = periods_at(now, chrono_tz::Tz::UTC);
        let idle = burn(now, &p, 1_000, 140_000, &[]);
        assert_eq!(
            (
                idle.burn_rate_per_hour,
                idle.projected_month_total,
                idle.projected_exhaustion_at
            ),
            (Some(0.0), Some(1_000), None)
        );
        let done = burn(
            now,
            &p,
            140_000,
            140_000,
            &[(t("2026-11-23T10:00:00Z"), 500)],
        );
        assert_eq!(done.projected_exhaustion_at, None);
    }
}
