//! `status`: usage per AI type and in total for a month.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::Result;
use chrono::{DateTime, Utc};
use comfy_table::Cell;
use serde::Serialize;

use super::App;
use crate::cli::StatusArgs;
use crate::db::ops::UsageView;
use crate::domain::burn::{burn, window_hours, Burn};
use crate::domain::count::saturating_sum;
use crate::domain::level::percentage;
use crate::domain::number::thousands_f;
use crate::domain::validate::GLOBAL_SCOPE;
use crate::domain::{Clock, ClockSource, GlobalLimits, Level, Limits};
use crate::output::{print_json, thousands, warn, Grid, Show, TableView};

#[derive(Debug, Clone, Serialize)]
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
}

#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
pub struct GlobalStatus {
    pub enforced_limit: i64,
    pub total_tokens: i64,
    pub reserved_tokens: i64,
    pub usage_percentage: f64,
    pub remaining: i64,
    pub level: Level,
    pub request_count: i64,
    #[serde(serialize_with = "crate::domain::number::usd")]
    pub cost_usd: f64,
    pub today_tokens: Option<i64>,
    pub hour_tokens: Option<i64>,
    pub daily_limit: i64,
    pub hourly_limit: i64,
    #[serde(flatten)]
    pub burn: Burn,
}

#[derive(Debug, Clone, Serialize)]
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
    #[serde(serialize_with = "crate::domain::number::usd")]
    pub cost_usd: f64,
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
            let own = view
                .limits
                .ai_types
                .iter()
                .find(|(a, _)| *a == name)
                .map(|(_, r)| r);
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
                cost_usd: row.cost_usd,
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
        cost_usd: view.rows.iter().fold(0.0, |sum, r| sum + r.cost_usd),
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
    }
}

fn stale_for(view: &UsageView, ai_type: &str, month: &str) -> i64 {
    view.stale_holds
        .iter()
        .filter(|h| h.ai_type == ai_type && h.month == month)
        .map(|h| h.estimated_tokens)
        .sum()
}

pub async fn run(app: &App, args: StatusArgs) -> Result<ExitCode> {
    let periods = app.clock.periods();
    let month = args
        .month
        .clone()
        .map(String::from)
        .unwrap_or_else(|| periods.month.clone());
    let hours = window_hours(&app.clock);
    let windows: Vec<&str> = if month == periods.month {
        std::iter::once(periods.day.as_str())
            .chain(hours.iter().map(|(k, _)| k.as_str()))
            .collect()
    } else {
        vec![]
    };
    let view = app.db.usage_view(&month, &windows, &app.clock).await?;
    let report = build(&view, &month, args.ai_type.as_deref(), &app.clock);
    for w in view.rows.iter().flat_map(|r| &r.warnings) {
        warn(w);
    }
    if let Some(one) = &args.ai_type {
        let known = view.rows.iter().any(|r| &r.ai_type == one)
            || view.limits.ai_types.iter().any(|(a, _)| a == one);
        if !known {
            let names: Vec<&str> = view.rows.iter().map(|r| r.ai_type.as_str()).collect();
            warn(&format!(
                "no AI type '{one}' in {month}: nothing recorded and no limits of its own{}",
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" (known: {})", names.join(", "))
                }
            ));
        }
    }
    if args.json {
        print_json(&report)?;
    } else {
        print_table(app, &report, args.table.into());
    }
    Ok(ExitCode::SUCCESS)
}

fn opt(n: Option<i64>) -> String {
    n.map(thousands).unwrap_or_else(|| "-".into())
}

/// One row of the status table: an AI type's, or the total's (`*`).
struct StatusRow<'a> {
    name: &'a str,
    level: Level,
    used: i64,
    limit: i64,
    percentage: f64,
    remaining: i64,
    today: Option<i64>,
    hour: Option<i64>,
    held: i64,
    requests: i64,
    cost_usd: f64,
    burn: &'a Burn,
    last_request_at: Option<DateTime<Utc>>,
}

fn print_table(app: &App, r: &StatusReport, view: TableView) {
    let when = |t: Option<DateTime<Utc>>| {
        t.map(|t| {
            t.with_timezone(&app.clock.tz)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
    };
    if !view.no_headers {
        crate::outln!(
            "Token usage for {} ({}){}",
            r.month,
            r.timezone,
            if r.from_archive {
                ", from the archive"
            } else {
                ""
            }
        );
    }
    if r.ai_types.is_empty() && !view.no_headers {
        crate::outln!("No usage recorded for {} yet.", r.month);
    }
    let mut grid = Grid::new()
        .text("AI type", Show::Always)
        .text("Level", Show::Always)
        .number("Used", Show::Always)
        .number("Limit", Show::Always)
        .number("%", Show::Always)
        .number("Remaining", Show::Fit(1))
        .number("Today", Show::Fit(3))
        .number("Cost USD", Show::Fit(2))
        .number("Requests", Show::Fit(4))
        .number("This hour", Show::Wide)
        .number("Held", Show::Wide)
        .number("Burn/h", Show::Wide)
        .text("Limit reached", Show::Wide)
        .text("Last request", Show::Wide);
    let g = &r.global;
    let total = StatusRow {
        name: GLOBAL_SCOPE,
        level: g.level,
        used: g.total_tokens,
        limit: g.enforced_limit,
        percentage: g.usage_percentage,
        remaining: g.remaining,
        today: g.today_tokens,
        hour: g.hour_tokens,
        held: g.reserved_tokens,
        requests: g.request_count,
        cost_usd: g.cost_usd,
        burn: &g.burn,
        last_request_at: r.ai_types.iter().filter_map(|a| a.last_request_at).max(),
    };
    let rows = r.ai_types.iter().map(|a| StatusRow {
        name: &a.ai_type,
        level: a.level,
        used: a.total_tokens,
        limit: a.monthly_limit,
        percentage: a.usage_percentage,
        remaining: a.remaining,
        today: a.today_tokens,
        hour: a.hour_tokens,
        held: a.reserved_tokens,
        requests: a.request_count,
        cost_usd: a.cost_usd,
        burn: &a.burn,
        last_request_at: a.last_request_at,
    });
    for row in rows.chain(std::iter::once(total)) {
        grid.row(vec![
            Cell::new(row.name),
            app.style.level_cell(row.level),
            Cell::new(thousands(row.used)),
            Cell::new(thousands(row.limit)),
            Cell::new(format!("{:.2}", row.percentage)),
            Cell::new(thousands(row.remaining)),
            Cell::new(opt(row.today)),
            Cell::new(format!("{:.4}", row.cost_usd)),
            Cell::new(thousands(row.requests)),
            Cell::new(opt(row.hour)),
            Cell::new(thousands(row.held)),
            Cell::new(
                row.burn
                    .burn_rate_per_hour
                    .map(thousands_f)
                    .unwrap_or_else(|| "-".into()),
            ),
            Cell::new(when(row.burn.projected_exhaustion_at)),
            Cell::new(when(row.last_request_at)),
        ]);
    }
    crate::out!("{}", grid.render(&app.style, view));
    if !view.no_headers {
        let mut notes = vec!["* is all AI types together".to_string()];
        if g.reserved_tokens > 0 {
            notes.push(format!(
                "{} tokens held by reservations",
                thousands(g.reserved_tokens)
            ));
        }
        app.style.table_note(&grid, view, notes);
    }
}
