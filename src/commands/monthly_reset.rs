//! `monthly-reset`: archive past months, start the current one, optionally prune old logs.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Result;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::App;
use crate::cli::MonthlyResetArgs;
use crate::db::ledger::MonthlyReset;
use crate::domain::clock::month_bounds;
use crate::output::{print_json, thousands};

/// Rows per pruning transaction: few enough commits that pruning costs about what one plain
/// DELETE does (README, "Pruning logs"), and small enough that memory stays bounded and
/// SQLite's write lock is held for about 0.3 s at a time, so recording goes on.
const PRUNE_BATCH: i64 = 200_000;

#[derive(Debug, Serialize)]
struct Report {
    #[serde(flatten)]
    reset: MonthlyReset,
    /// logs created before this were pruned (null without --prune-logs-older-than)
    prune_cutoff: Option<DateTime<Utc>>,
    /// logs deleted, or that would be deleted in a dry run
    pruned_logs: Option<u64>,
}

/// The first instant of the month `months` before the current one.
fn prune_cutoff(app: &App, months: u32) -> Option<DateTime<Utc>> {
    let (start, _) = month_bounds(&app.clock.periods().month, app.clock.tz)?;
    let local = start.with_timezone(&app.clock.tz).date_naive();
    let index = local.year() * 12 + local.month0() as i32 - months as i32;
    let first = NaiveDate::from_ymd_opt(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1)?;
    month_bounds(&first.format("%Y-%m").to_string(), app.clock.tz).map(|(s, _)| s)
}

pub async fn run(app: &App, args: MonthlyResetArgs) -> Result<ExitCode> {
    let reset = app.db.monthly_reset(&app.clock, args.dry_run).await?;
    if !args.json {
        print_reset(&reset);
    }
    let cutoff = args
        .prune_logs_older_than
        .and_then(|m| prune_cutoff(app, m));
    let pruned = match cutoff {
        None => None,
        Some(cutoff) if args.dry_run => Some(app.db.count_logs_before(cutoff).await? as u64),
        Some(cutoff) => Some(prune(app, cutoff, args.json).await?),
    };
    if let (Some(cutoff), Some(n), false) = (cutoff, pruned, args.json) {
        let verb = if args.dry_run {
            "would prune"
        } else {
            "pruned"
        };
        crate::outln!(
            "{verb} {} log rows from before {}",
            thousands(n as i64),
            cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    if args.json {
        print_json(&Report {
            reset,
            prune_cutoff: cutoff,
            pruned_logs: pruned,
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn prune(app: &App, cutoff: DateTime<Utc>, json: bool) -> Result<u64> {
    let bar = if std::io::stderr().is_terminal() && !json {
        let total = app.db.count_logs_before(cutoff).await?;
        let bar = ProgressBar::new(total.max(0) as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "pruning logs {bar:40} {human_pos}/{human_len} rows, {eta} left",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let deleted = app
        .db
        .prune_logs(cutoff, PRUNE_BATCH, |n| {
            if let Some(bar) = &bar {
                bar.set_position(n);
            }
        })
        .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(deleted)
}

fn print_reset(r: &MonthlyReset) {
    let verb = if r.dry_run {
        "would archive"
    } else {
        "archived"
    };
    if r.archived_months.is_empty() {
        crate::outln!(
            "{}: nothing to archive: no month before {} is left in token_usage",
            r.month,
            r.month
        );
    }
    for m in &r.archived_months {
        crate::outln!(
            "{verb} {}: {} AI type(s), {} tokens",
            m.month_year,
            m.ai_types,
            thousands(m.total_tokens)
        );
    }
    let init = if r.dry_run { "would start" } else { "started" };
    crate::outln!(
        "{init} {} with {} new AI type row(s)",
        r.month,
        r.initialized_count
    );
    if r.dry_run {
        crate::outln!("dry run: nothing was changed");
    }
}
