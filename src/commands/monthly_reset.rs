//! `monthly-reset`: runs `ops::reset::monthly_reset`, with a progress bar on a terminal while
//! logs are pruned.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use super::App;
use crate::cli::MonthlyResetArgs;
use crate::db::ledger::MonthlyReset;
use crate::ops::reset::{monthly_reset, MonthlyResetRequest, PruneProgress};
use crate::output::{print_json, thousands};

/// A progress bar on a terminal while logs are pruned.
struct Bar(ProgressBar);

impl PruneProgress for Bar {
    fn start(&self, rows: u64) {
        self.0.set_length(rows);
    }
    fn deleted(&self, rows: u64) {
        self.0.set_position(rows);
    }
}

pub async fn run(app: &App, args: MonthlyResetArgs) -> Result<ExitCode> {
    let req = MonthlyResetRequest {
        dry_run: args.dry_run,
        prune_logs_older_than: args.prune_logs_older_than,
    };
    let bar = (std::io::stderr().is_terminal() && !args.json && !args.dry_run).then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "pruning logs {bar:40} {human_pos}/{human_len} rows, {eta} left",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Bar(bar)
    });
    let report = monthly_reset(
        &app.db,
        &app.clock,
        &req,
        bar.as_ref().map(|b| b as &dyn PruneProgress),
    )
    .await?;
    if let Some(bar) = bar {
        bar.0.finish_and_clear();
    }
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_reset(&report.reset);
    if let (Some(cutoff), Some(n)) = (report.prune_cutoff, report.pruned_logs) {
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
    Ok(ExitCode::SUCCESS)
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
