//! `status`: usage per AI type and in total for a month, with each one's level and burn rate.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::Usd;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::OpResult;
use crate::db::transactions::UsageView;
use crate::db::{Db, LimitScope};
use crate::domain::burn::{burn, window_hours, Burn};
use crate::domain::count::saturating_sum;
use crate::domain::input::{AiType, Month};
use crate::domain::level::percentage;
use crate::domain::validate::GLOBAL_SCOPE;
use crate::domain::{Clock, ClockSource, GlobalLimits, Level, Limits};
use crate::error::OpError;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StatusRequest {
    /// default: the current month
    #[serde(default)]
    pub month: Option<Month>,
    /// only this AI type (and the total)
    #[serde(default)]
    pub ai_type: Option<AiType>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatusReport {
    pub month: String,
    pub current_month: bool,
    /// true when the month was read from token_usage_archive (monthly-reset moved it there)
    pub from_archive: bool,
    pub timezone: String,
    /// whose clock "now" is, and how far this host's is from the database server's
    pub clock: ClockReport,
    pub global: GlobalStatus,
    pub ai_types: Vec<AiTypeStatus>,
    /// odd values read from rows other programs wrote, and an AI type asked for that has
    /// neither usage nor limits: for the front end to show, not part of the document
    #[serde(skip)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClockReport {
    /// `database` (PostgreSQL's server clock, shared by every host), `host` (SQLite) or
    /// `pinned` (TOKENCTL_NOW)
    pub source: ClockSource,
    pub now: DateTime<Utc>,
    /// this host's clock minus the database server's (null unless the source is the database)
    pub host_skew_seconds: Option<f64>,
}

impl ClockReport {
    pub fn of(clock: &Clock) -> ClockReport {
        ClockReport {
            source: clock.source,
            now: clock.now,
            host_skew_seconds: clock
                .host_skew()
                .map(|d| d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GlobalStatus {
    pub enforced_limit: i64,
    pub total_tokens: i64,
    pub reserved_tokens: i64,
    pub usage_percentage: f64,
    pub remaining: i64,
    pub level: Level,
    pub request_count: i64,
    /// the exact cost of priced requests
    pub cost_usd: Usd,
    /// false when some request has no price: cost_usd leaves it out (unknown, not $0)
    pub cost_complete: bool,
    pub unpriced_requests: i64,
    pub today_tokens: Option<i64>,
    pub hour_tokens: Option<i64>,
    pub daily_limit: i64,
    pub hourly_limit: i64,
    #[serde(flatten)]
    pub burn: Burn,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AiTypeStatus {
    pub ai_type: String,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub total_tokens: i64,
    pub reserved_tokens: i64,
    pub request_count: i64,
    pub monthly_limit: i64,
    pub usage_percentage: f64,
    /// monthly limit minus used and held tokens, never below 0
    pub remaining: i64,
    /// null for a month other than the current one
    pub today_tokens: Option<i64>,
    pub hour_tokens: Option<i64>,
    pub daily_limit: i64,
    pub hourly_limit: i64,
    pub level: Level,
    /// the `token_usage.status` column as stored
    pub status: String,
    pub last_request_at: Option<DateTime<Utc>>,
    /// the exact cost of priced requests
    pub cost_usd: Usd,
    /// false when some request has no price: cost_usd leaves it out (unknown, not $0)
    pub cost_complete: bool,
    pub unpriced_requests: i64,
    /// burn_rate_per_hour, projected_month_total, projected_exhaustion_at
    #[serde(flatten)]
    pub burn: Burn,
}

/// The report, from what the database holds. Pure: tested without a database.
pub fn build(view: &UsageView, month: &str, only: Option<&str>, clock: &Clock) -> StatusReport {
    let periods = clock.periods();
    let current = periods.month == month;
    let hours = window_hours(clock);
    let burn_of = |ai: &str, used: i64, limit: i64| -> Burn {
        if !current {
            return Burn::default();
        }
        let buckets: Vec<(DateTime<Utc>, i64)> = hours
            .iter()
            .filter_map(|(key, start)| {
                view.windows
                    .iter()
                    .find(|w| w.ai_type == ai && w.period == *key)
                    .map(|w| (*start, w.tokens))
            })
            .collect();
        burn(clock.now, &periods, used, limit, &buckets)
    };
    let window = |ai: &str, period: &str| -> Option<i64> {
        current.then(|| {
            view.windows
                .iter()
                .find(|w| w.ai_type == ai && w.period == period)
                .map(|w| w.tokens)
                .unwrap_or(0)
        })
    };
    let mut names: BTreeSet<String> = view.rows.iter().map(|r| r.ai_type.clone()).collect();
    names.extend(view.limits.ai_types.iter().map(|(a, _)| a.clone()));
    if let Some(one) = only {
        names.retain(|n| n == one);
        names.insert(one.to_string());
    }
    let ai_types: Vec<AiTypeStatus> = names
        .into_iter()
        .map(|name| {
            let own = view.limits.row(&LimitScope::AiType(name.clone()));
            let mut limits = Limits::resolve(&view.limits.default, own);
            let row = view
                .rows
                .iter()
                .find(|r| r.ai_type == name)
                .cloned()
                .unwrap_or_default();
            if !current {
                // a past month is measured against the limit it had (as `archive` shows it),
                // not today's
                limits.monthly = row.monthly_limit.unwrap_or(limits.monthly);
            }
            let reserved = (row.reserved_tokens - stale_for(view, &name, month)).max(0);
            AiTypeStatus {
                tokens_in: row.tokens_in,
                tokens_out: row.tokens_out,
                total_tokens: row.total_tokens,
                reserved_tokens: reserved,
                request_count: row.request_count,
                monthly_limit: limits.monthly,
                usage_percentage: percentage(row.total_tokens, limits.monthly),
                remaining: limits
                    .monthly
                    .saturating_sub(row.total_tokens)
                    .saturating_sub(reserved)
                    .max(0),
                today_tokens: window(&name, &periods.day),
                hour_tokens: window(&name, &periods.hour),
                daily_limit: limits.daily,
                hourly_limit: limits.hourly,
                level: Level::of(row.total_tokens, limits.monthly),
                status: if row.status.is_empty() {
                    "active".into()
                } else {
                    row.status.clone()
                },
                last_request_at: row.last_request_at,
                cost_usd: row.cost,
                cost_complete: row.unpriced_requests == 0,
                unpriced_requests: row.unpriced_requests,
                burn: burn_of(&name, row.total_tokens, limits.monthly),
                ai_type: name,
            }
        })
        .collect();
    let mut global_limits = GlobalLimits::resolve(&view.limits.global, &view.limits.default);
    if let Some(limit) = view
        .closed
        .as_ref()
        .filter(|c| c.month_year == month)
        .and_then(|c| c.global_limit)
    {
        global_limits.monthly = limit;
    }
    let total = saturating_sum(view.rows.iter().map(|r| r.total_tokens));
    let reserved = saturating_sum(
        view.rows
            .iter()
            .map(|r| (r.reserved_tokens - stale_for(view, &r.ai_type, month)).max(0)),
    );
    let global = GlobalStatus {
        enforced_limit: global_limits.monthly,
        total_tokens: total,
        reserved_tokens: reserved,
        usage_percentage: percentage(total, global_limits.monthly),
        remaining: global_limits
            .monthly
            .saturating_sub(total)
            .saturating_sub(reserved)
            .max(0),
        level: Level::of(total, global_limits.monthly),
        request_count: saturating_sum(view.rows.iter().map(|r| r.request_count)),
        cost_usd: Usd::sum(view.rows.iter().map(|r| r.cost)),
        cost_complete: view.rows.iter().all(|r| r.unpriced_requests == 0),
        unpriced_requests: saturating_sum(view.rows.iter().map(|r| r.unpriced_requests)),
        today_tokens: window(GLOBAL_SCOPE, &periods.day),
        hour_tokens: window(GLOBAL_SCOPE, &periods.hour),
        daily_limit: global_limits.daily,
        hourly_limit: global_limits.hourly,
        burn: burn_of(GLOBAL_SCOPE, total, global_limits.monthly),
    };
    StatusReport {
        month: month.to_string(),
        current_month: current,
        from_archive: view.closed.is_some(),
        timezone: clock.tz.name().to_string(),
        clock: ClockReport::of(clock),
        global,
        ai_types,
        warnings: Vec::new(),
    }
}

fn stale_for(view: &UsageView, ai_type: &str, month: &str) -> i64 {
    view.stale_holds
        .iter()
        .filter(|h| h.ai_type == ai_type && h.month == month)
        .map(|h| h.estimated_tokens)
        .sum()
}

/// The month's report. A past month closed by monthly-reset is read from the archive, in the
/// same transaction as its limits.
pub async fn status(db: &Db, clock: &Clock, req: &StatusRequest) -> OpResult<StatusReport> {
    let periods = clock.periods();
    let month = req
        .month
        .as_deref()
        .map(str::to_string)
        .unwrap_or_else(|| periods.month.clone());
    let view = current_view(db, clock, &month).await?;
    let mut report = build(&view, &month, req.ai_type.as_deref(), clock);
    report.warnings = view.rows.iter().flat_map(|r| r.warnings.clone()).collect();
    if let Some(one) = &req.ai_type {
        let known = view.rows.iter().any(|r| &r.ai_type == one)
            || view
                .limits
                .row(&LimitScope::AiType(one.to_string()))
                .is_some();
        if !known {
            let names: Vec<&str> = view.rows.iter().map(|r| r.ai_type.as_str()).collect();
            report.warnings.push(format!(
                "no AI type '{one}' in {month}: nothing recorded and no limits of its own{}",
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" (known: {})", names.join(", "))
                }
            ));
        }
    }
    Ok(report)
}

/// What the month's report reads: for the current month, today's and the last hours' windows
/// too (the burn rate is computed from them).
pub(crate) async fn current_view(db: &Db, clock: &Clock, month: &str) -> OpResult<UsageView> {
    let periods = clock.periods();
    let hours = window_hours(clock);
    let windows: Vec<&str> = if month == periods.month {
        std::iter::once(periods.day.as_str())
            .chain(hours.iter().map(|(k, _)| k.as_str()))
            .collect()
    } else {
        vec![]
    };
    Ok(db.usage_view(month, &windows, clock).await?)
}

/// `status`'s total, with how many AI types stand at each level: the old
/// `/api/token-usage/summary`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub month: String,
    #[serde(flatten)]
    pub global: GlobalStatus,
    /// AI types at each level this month (`ok`, `warning`, `critical`, `emergency`)
    pub ai_types_by_level: BTreeMap<Level, usize>,
    pub ai_type_count: usize,
}

pub async fn summary(db: &Db, clock: &Clock) -> OpResult<Summary> {
    let report = status(db, clock, &StatusRequest::default()).await?;
    let mut by_level: BTreeMap<Level, usize> =
        [Level::Ok, Level::Warning, Level::Critical, Level::Emergency]
            .into_iter()
            .map(|l| (l, 0))
            .collect();
    for a in &report.ai_types {
        *by_level.entry(a.level).or_default() += 1;
    }
    Ok(Summary {
        month: report.month,
        ai_type_count: report.ai_types.len(),
        global: report.global,
        ai_types_by_level: by_level,
    })
}

/// One AI type's row of `status` and whether a 1-token request of it would pass now: the old
/// `/api/token-usage/status/{ai_type}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AiTypeNow {
    pub month: String,
    #[serde(flatten)]
    pub status: AiTypeStatus,
    pub allowed: bool,
    pub reason: crate::domain::Reason,
    pub message: String,
    pub retry_after: Option<DateTime<Utc>>,
}

pub async fn ai_type_now(db: &Db, clock: &Clock, ai_type: &AiType) -> OpResult<AiTypeNow> {
    let req = StatusRequest {
        month: None,
        ai_type: Some(ai_type.clone()),
    };
    let report = status(db, clock, &req).await?;
    let one_token = crate::db::ledger::ReserveAsk {
        ai_type: ai_type.to_string(),
        estimated: 1,
        ..Default::default()
    };
    let decision = db.check(&one_token, clock).await?;
    let row = report
        .ai_types
        .into_iter()
        .find(|a| a.ai_type == **ai_type)
        .ok_or_else(|| OpError::internal(format!("status has no row for '{ai_type}'")))?;
    Ok(AiTypeNow {
        month: report.month,
        status: row,
        allowed: decision.allowed,
        reason: decision.reason,
        message: decision.message,
        retry_after: decision.retry_after,
    })
}
