//! `distribution`: how evenly usage is spread over a month's days and a day's hours, and the
//! rate limits in force. Read from the per-day and per-hour rollups that `record` keeps in the
//! same transaction, so it never scans the request log.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::App;
use crate::cli::DistributionArgs;
use crate::db::ops::DistributionView;
use crate::domain::number::thousands_f;
use crate::domain::validate::GLOBAL_SCOPE;
use crate::domain::{pacing, Clock, GlobalLimits, Limits};
use crate::error::OpError;
use crate::output::{print_json, thousands, warn};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DayUsage {
    pub date: String,
    pub tokens: i64,
    pub requests: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HourUsage {
    pub hour: u32,
    pub tokens: i64,
    pub requests: i64,
}

#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
pub struct DailyDistribution {
    pub date: String,
    pub total_tokens: i64,
    pub hours_with_usage: usize,
    pub avg_hourly_usage: f64,
    pub hourly_usage_data: Vec<HourUsage>,
}

#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
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

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// --month and --day must agree; both are checked before the database is opened.
pub fn check_args(args: DistributionArgs) -> Result<DistributionArgs, OpError> {
    if let (Some(m), Some(d)) = (&args.month, &args.day) {
        if !d.starts_with(&**m) {
            return Err(OpError::invalid(format!("--day {d} is not in --month {m}")));
        }
    }
    Ok(args)
}

fn month_and_day(args: &DistributionArgs, clock: &Clock) -> (String, String) {
    let today = clock.periods();
    let month = args
        .month
        .clone()
        .map(String::from)
        .or_else(|| args.day.as_ref().map(|d| d[..7].to_string()))
        .unwrap_or_else(|| today.month.clone());
    let day = args.day.clone().unwrap_or_else(|| {
        if month == today.month {
            today.day.clone()
        } else {
            last_day_of(&month)
        }
    });
    (month, day)
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

    let own = ai_type.and_then(|a| {
        view.limits
            .ai_types
            .iter()
            .find(|(n, _)| n == a)
            .map(|(_, r)| r)
    });
    let limits = Limits::resolve(&view.limits.default, own);
    let global = GlobalLimits::resolve(&view.limits.global, &view.limits.default);
    let (monthly, daily, hourly, pacing_on, committed) = match ai_type {
        Some(_) => (
            limits.monthly,
            limits.daily,
            limits.hourly,
            limits.pacing,
            view.snapshot.ai_month.committed(),
        ),
        None => (
            global.monthly,
            global.daily,
            global.hourly,
            global.pacing,
            view.snapshot.global_month.committed(),
        ),
    };
    let _ = committed;
    let periods = clock.periods();
    let pct = |x: i64| {
        if monthly > 0 {
            round2(x as f64 * 100.0 / monthly as f64)
        } else {
            0.0
        }
    };
    let rate = if ai_type.is_some() {
        view.snapshot.ai_rate
    } else {
        view.snapshot.global_rate
    };
    Distribution {
        month: month.to_string(),
        day: day.to_string(),
        ai_type: ai_type.map(str::to_string),
        monthly_distribution: MonthlyDistribution {
            total_tokens: total,
            days_with_usage: days.len(),
            avg_daily_usage: if days.is_empty() {
                0.0
            } else {
                round2(total as f64 / days.len() as f64)
            },
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
            avg_hourly_usage: if hours.is_empty() {
                0.0
            } else {
                round2(day_total as f64 / hours.len() as f64)
            },
            hourly_usage_data: hours,
        },
        rate_limiting_status: RateLimitingStatus {
            monthly_limit: monthly,
            daily_limit: daily,
            hourly_limit: hourly,
            max_daily_percentage: pct(daily),
            max_hourly_percentage: pct(hourly),
            rpm: if ai_type.is_some() {
                limits.rpm
            } else {
                global.rpm
            },
            rpd: if ai_type.is_some() {
                limits.rpd
            } else {
                global.rpd
            },
            ai_cooldown_period: if ai_type.is_some() {
                limits.cooldown_seconds
            } else {
                global.cooldown_seconds
            },
            max_concurrent_requests: if ai_type.is_some() {
                limits.max_concurrent
            } else {
                global.max_concurrent
            },
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
    }
}

pub async fn run(app: &App, args: DistributionArgs) -> Result<ExitCode> {
    let (month, day) = month_and_day(&args, &app.clock);
    let scope = args.ai_type.as_deref().unwrap_or(GLOBAL_SCOPE);
    let view = app.db.distribution_view(&month, scope, &app.clock).await?;
    let mut report = build(&view, &month, &day, args.ai_type.as_deref(), &app.clock);
    report.month_archived = view.month_closed;
    if view.month_closed {
        warn(&format!(
            "{month} was archived by monthly-reset: its per-day and per-hour detail is gone with it \
             (its totals: tokenctl status --month {month})"
        ));
    }
    if args.json {
        print_json(&report)?;
    } else {
        print_chart(app, &report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The columns a bar takes (its characters are one column each).
fn bar_chars(bar: &str) -> usize {
    bar.chars().filter(|c| !c.is_ascii()).count()
}

fn bar(value: i64, max: i64, width: usize) -> String {
    if max <= 0 || value <= 0 {
        return String::new();
    }
    let eighths = ((value as f64 / max as f64) * width as f64 * 8.0).round() as usize;
    let full = "█".repeat(eighths / 8);
    let part = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"][eighths % 8];
    format!("{full}{part}")
}

fn print_chart(app: &App, r: &Distribution) {
    use owo_colors::OwoColorize;
    let who = r.ai_type.clone().unwrap_or_else(|| "all AI types".into());
    let m = &r.monthly_distribution;
    crate::outln!("Usage per day, {} ({who})", r.month);
    if m.daily_usage_data.is_empty() {
        crate::outln!("  no usage recorded");
    }
    let limit = r.rate_limiting_status.daily_limit;
    let scale = m.max_daily_usage.max(1);
    // the bar takes what the width leaves: "  2026-11-05  " + bar + " 12,345,678 tokens 99,999 req"
    let bar_width = app
        .style
        .width
        .saturating_sub(14 + 1 + 11 + 8 + 6 + 4)
        .clamp(8, 60);
    for d in &m.daily_usage_data {
        let b = bar(d.tokens, scale, bar_width);
        let b = if app.style.color && d.tokens > limit {
            b.red().to_string()
        } else {
            b
        };
        // padded by hand: the colour codes around a red bar are not columns
        let pad = " ".repeat((bar_width + 1).saturating_sub(bar_chars(&b)));
        crate::outln!(
            "  {}  {b}{pad}{:>11} tokens {:>6} req",
            d.date,
            thousands(d.tokens),
            thousands(d.requests)
        );
    }
    app.style.note(
        &format!(
            "  total {}, {} day(s) with usage; average {}, max {}, min {}",
            thousands(m.total_tokens),
            m.days_with_usage,
            thousands_f(m.avg_daily_usage),
            thousands(m.max_daily_usage),
            thousands(m.min_daily_usage),
        ),
        2,
    );
    app.style.note(
        &format!(
            "  spread {:.2}% (0 = even, 100 = all on one day); daily limit {}",
            m.usage_spread_percentage,
            thousands(limit)
        ),
        2,
    );
    let d = &r.daily_distribution;
    crate::outln!("Usage per hour, {} ({who})", d.date);
    let hmax = d
        .hourly_usage_data
        .iter()
        .map(|h| h.tokens)
        .max()
        .unwrap_or(0)
        .max(r.rate_limiting_status.hourly_limit)
        .max(1);
    // "  00:00  " is 5 columns shorter than a date: the bars line up with the days'
    let hour_bar = bar_width + 5;
    for h in &d.hourly_usage_data {
        crate::outln!(
            "  {:02}:00  {:<width$}{:>11} tokens {:>6} req",
            h.hour,
            bar(h.tokens, hmax, hour_bar),
            thousands(h.tokens),
            thousands(h.requests),
            width = hour_bar + 1
        );
    }
    app.style.note(
        &format!(
            "  total {}, {} hour(s) with usage; average {}",
            thousands(d.total_tokens),
            d.hours_with_usage,
            thousands_f(d.avg_hourly_usage)
        ),
        2,
    );
    let s = &r.rate_limiting_status;
    let off = |v: Option<i64>| v.map(thousands).unwrap_or_else(|| "off".into());
    app.style.note(
        &format!(
            "Rate limits: rpm {}, rpd {}, cooldown {}, in flight {} of {}, pacing {}",
            off(s.rpm),
            off(s.rpd),
            if s.ai_cooldown_period > 0 {
                format!("{} s", s.ai_cooldown_period)
            } else {
                "off".into()
            },
            s.active_requests,
            off(s.max_concurrent_requests),
            match s.paced_allowance_now {
                Some(a) => format!("on (allowed now: {})", thousands(a)),
                None => "off".into(),
            }
        ),
        2,
    );
    for (ai, at) in &s.last_ai_requests {
        crate::outln!(
            "  last request of {ai}: {}",
            at.with_timezone(&app.clock.tz).format("%Y-%m-%d %H:%M:%S")
        );
    }
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
