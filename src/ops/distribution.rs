//! `distribution`: how evenly usage is spread over a month's days and a day's hours, and the
//! rate limits in force. Read from the per-day and per-hour rollups that `record` keeps in the
//! same transaction, so it never scans the request log.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::OpResult;
use crate::db::transactions::DistributionView;
use crate::db::{Db, LimitScope};
use crate::domain::input::{AiType, Day, Month};
use crate::domain::validate::GLOBAL_SCOPE;
use crate::domain::{pacing, Clock, GlobalLimits, Limits, Scope};
use crate::error::OpError;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DistributionRequest {
    /// default: the current month, or the day's
    #[serde(default)]
    pub month: Option<Month>,
    /// the day whose hours to show (default: today, or the month's last day)
    #[serde(default)]
    pub day: Option<Day>,
    /// default: all AI types together
    #[serde(default)]
    pub ai_type: Option<AiType>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct DayUsage {
    pub date: String,
    pub tokens: i64,
    pub requests: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct HourUsage {
    pub hour: u32,
    pub tokens: i64,
    pub requests: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MonthlyDistribution {
    pub total_tokens: i64,
    pub days_with_usage: usize,
    pub avg_daily_usage: f64,
    pub max_daily_usage: i64,
    pub min_daily_usage: i64,
    /// the Gini coefficient × 100 of the daily totals over the month's elapsed days, idle days
    /// included: 0 = every day used the same, near 100 = all of it on one day
    pub usage_spread_percentage: f64,
    /// the days the spread is computed over (1st … today, or the whole of a past month)
    pub days_elapsed: usize,
    pub daily_usage_data: Vec<DayUsage>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DailyDistribution {
    pub date: String,
    pub total_tokens: i64,
    pub hours_with_usage: usize,
    pub avg_hourly_usage: f64,
    pub hourly_usage_data: Vec<HourUsage>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RateLimitingStatus {
    pub monthly_limit: i64,
    pub daily_limit: i64,
    pub hourly_limit: i64,
    pub max_daily_percentage: f64,
    pub max_hourly_percentage: f64,
    pub rpm: Option<i64>,
    pub rpd: Option<i64>,
    pub ai_cooldown_period: i64,
    pub max_concurrent_requests: Option<i64>,
    pub global_max_concurrent_requests: Option<i64>,
    pub pacing: bool,
    /// with pacing: the cumulative usage allowed now (monthly × elapsed fraction + one day's share)
    pub paced_allowance_now: Option<i64>,
    /// requests in flight (held reservations not yet expired)
    pub active_requests: i64,
    pub last_ai_requests: BTreeMap<String, DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Distribution {
    pub month: String,
    pub day: String,
    /// null: all AI types together
    pub ai_type: Option<String>,
    pub monthly_distribution: MonthlyDistribution,
    pub daily_distribution: DailyDistribution,
    pub rate_limiting_status: RateLimitingStatus,
    /// true when monthly-reset has archived the month: its per-day and per-hour detail went
    /// with it (only its totals are kept: `status --month`)
    pub month_archived: bool,
    /// for the front end to show, not part of the document
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// The Gini coefficient of `values` (0 = all equal, (n−1)/n = all in one): the mean absolute
/// difference between any two values, divided by twice the mean.
pub fn gini(values: &[i64]) -> f64 {
    let n = values.len() as f64;
    let sum: i64 = values.iter().sum();
    if values.len() < 2 || sum <= 0 {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let weighted: f64 = sorted
        .iter()
        .enumerate()
        .map(|(i, x)| (i as f64 + 1.0) * *x as f64)
        .sum();
    2.0 * weighted / (n * sum as f64) - (n + 1.0) / n
}

fn day_number(date: &str) -> usize {
    date.get(8..10).and_then(|d| d.parse().ok()).unwrap_or(0)
}

/// Days of `month` that have begun: up to today for the current month, all of a past one.
fn elapsed_days(month: &str, clock: &Clock) -> usize {
    let today = clock.periods();
    match month.cmp(today.month.as_str()) {
        std::cmp::Ordering::Equal => day_number(&today.day),
        std::cmp::Ordering::Less => day_number(&last_day_of(month)),
        std::cmp::Ordering::Greater => 0,
    }
}

/// `total` over `n` periods with usage, to the hundredth (0 for none).
fn average(total: i64, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        round2(total as f64 / n as f64)
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl DistributionRequest {
    /// The month and the day must agree: checked before anything is read.
    pub fn check(&self) -> OpResult<()> {
        if let (Some(m), Some(d)) = (&self.month, &self.day) {
            if !d.starts_with(&**m) {
                return Err(OpError::invalid(format!("--day {d} is not in --month {m}")));
            }
        }
        Ok(())
    }

    /// The month and the day shown: the current ones, or the day's month, or the month's
    /// last day.
    fn month_and_day(&self, clock: &Clock) -> (String, String) {
        let today = clock.periods();
        let month = self
            .month
            .clone()
            .map(String::from)
            .or_else(|| self.day.as_ref().map(|d| d[..7].to_string()))
            .unwrap_or_else(|| today.month.clone());
        let day = self.day.clone().map(String::from).unwrap_or_else(|| {
            if month == today.month {
                today.day.clone()
            } else {
                last_day_of(&month)
            }
        });
        (month, day)
    }
}

fn last_day_of(month: &str) -> String {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").unwrap_or_default();
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(first);
    next.pred_opt()
        .unwrap_or(first)
        .format("%Y-%m-%d")
        .to_string()
}

/// The report from the rollups: pure, tested without a database.
pub fn build(
    view: &DistributionView,
    month: &str,
    day: &str,
    ai_type: Option<&str>,
    clock: &Clock,
) -> Distribution {
    let days: Vec<DayUsage> = view
        .windows
        .iter()
        .filter(|w| w.period.len() == 10 && w.tokens > 0)
        .map(|w| DayUsage {
            date: w.period.clone(),
            tokens: w.tokens,
            requests: w.requests,
        })
        .collect();
    let total: i64 = days.iter().map(|d| d.tokens).sum();
    let max = days.iter().map(|d| d.tokens).max().unwrap_or(0);
    let min = days.iter().map(|d| d.tokens).min().unwrap_or(0);
    let elapsed = elapsed_days(month, clock);
    let mut per_day: Vec<i64> = days
        .iter()
        .filter(|d| day_number(&d.date) <= elapsed)
        .map(|d| d.tokens)
        .collect();
    per_day.resize(elapsed.max(per_day.len()), 0);
    let spread = round2(gini(&per_day) * 100.0);
    let hours: Vec<HourUsage> = view
        .windows
        .iter()
        .filter(|w| {
            w.period.len() == 13 && w.period.starts_with(day) && (w.tokens > 0 || w.requests > 0)
        })
        .map(|w| HourUsage {
            hour: w.period[11..13].parse().unwrap_or(0),
            tokens: w.tokens,
            requests: w.requests,
        })
        .collect();
    let day_total: i64 = hours.iter().map(|h| h.tokens).sum();

    let own = ai_type.and_then(|a| view.limits.row(&LimitScope::AiType(a.to_string())));
    let limits = Limits::resolve(&view.limits.default, own);
    let global = GlobalLimits::resolve(&view.limits.global, &view.limits.default);
    // the AI type's limits, or the total's
    let (monthly, daily, hourly, pacing_on) = match ai_type {
        Some(_) => (limits.monthly, limits.daily, limits.hourly, limits.pacing),
        None => (global.monthly, global.daily, global.hourly, global.pacing),
    };
    let (rpm, rpd, cooldown, max_concurrent) = match ai_type {
        Some(_) => (
            limits.rpm,
            limits.rpd,
            limits.cooldown_seconds,
            limits.max_concurrent,
        ),
        None => (
            global.rpm,
            global.rpd,
            global.cooldown_seconds,
            global.max_concurrent,
        ),
    };
    let periods = clock.periods();
    let pct = |x: i64| {
        if monthly > 0 {
            round2(x as f64 * 100.0 / monthly as f64)
        } else {
            0.0
        }
    };
    let scope = if ai_type.is_some() {
        Scope::AiType
    } else {
        Scope::Global
    };
    let rate = view.snapshot.usage(&scope).rate;
    Distribution {
        month: month.to_string(),
        day: day.to_string(),
        ai_type: ai_type.map(str::to_string),
        monthly_distribution: MonthlyDistribution {
            total_tokens: total,
            days_with_usage: days.len(),
            avg_daily_usage: average(total, days.len()),
            max_daily_usage: max,
            min_daily_usage: min,
            usage_spread_percentage: spread,
            days_elapsed: elapsed,
            daily_usage_data: days,
        },
        daily_distribution: DailyDistribution {
            date: day.to_string(),
            total_tokens: day_total,
            hours_with_usage: hours.len(),
            avg_hourly_usage: average(day_total, hours.len()),
            hourly_usage_data: hours,
        },
        rate_limiting_status: RateLimitingStatus {
            monthly_limit: monthly,
            daily_limit: daily,
            hourly_limit: hourly,
            max_daily_percentage: pct(daily),
            max_hourly_percentage: pct(hourly),
            rpm,
            rpd,
            ai_cooldown_period: cooldown,
            max_concurrent_requests: max_concurrent,
            global_max_concurrent_requests: global.max_concurrent,
            pacing: pacing_on,
            paced_allowance_now: pacing_on
                .then(|| pacing::allowed_at(monthly, &periods, clock.now)),
            active_requests: rate.in_flight,
            last_ai_requests: view
                .last_starts
                .iter()
                .filter(|(a, _)| ai_type.is_none_or(|only| only == a))
                .cloned()
                .collect(),
        },
        month_archived: false,
        warnings: Vec::new(),
    }
}

pub async fn distribution(
    db: &Db,
    clock: &Clock,
    req: &DistributionRequest,
) -> OpResult<Distribution> {
    req.check()?;
    let (month, day) = req.month_and_day(clock);
    let scope = req.ai_type.as_deref().unwrap_or(GLOBAL_SCOPE);
    let view = db.distribution_view(&month, scope, clock).await?;
    let mut report = build(&view, &month, &day, req.ai_type.as_deref(), clock);
    report.month_archived = view.month_closed;
    if view.month_closed {
        report.warnings.push(format!(
            "{month} was archived by monthly-reset: its per-day and per-hour detail is gone with it \
             (its totals: tokenctl status --month {month})"
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::gini;

    #[test]
    fn gini_of_daily_totals() {
        assert_eq!(gini(&[100, 100, 100]), 0.0);
        assert_eq!(gini(&[0, 0, 0]), 0.0);
        assert_eq!(gini(&[500]), 0.0);
        // everything on one of 30 days: 29/30
        let mut one = vec![0; 29];
        one.push(140_000);
        assert!((gini(&one) - 29.0 / 30.0).abs() < 1e-12);
        // 200, 400, 0, 0, 1,050: Σ|xi − xj| over ordered pairs 10,000 / (2 · 5² · 330)
        assert!((gini(&[200, 400, 0, 0, 1_050]) - 10_000.0 / 16_500.0).abs() < 1e-12);
    }
}
