//! `reset`: zero the current month, for testing. Archives what it clears first.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::App;
use crate::cli::ResetArgs;
use crate::db::ledger::Reset;
use crate::domain::count::saturating_sum;
use crate::error::{OpError, EXIT_FAILURE};
use crate::ops::reset::{reset, ResetRequest};
use crate::output::{print_json, thousands};

/// Off a terminal, nothing can confirm: refuse before touching the database.
pub fn confirm_possible(args: ResetArgs) -> Result<ResetArgs, OpError> {
    if !args.yes && !args.dry_run && !std::io::stdin().is_terminal() {
        return Err(OpError::invalid(
            "reset needs --yes when standard input is not a terminal; nothing was changed",
        ));
    }
    Ok(args)
}

fn who(args: &ResetArgs) -> String {
    args.ai_type
        .clone()
        .map(|a| format!("AI type {a}"))
        .unwrap_or_else(|| "every AI type".into())
}

pub async fn run(app: &App, args: ResetArgs) -> Result<ExitCode> {
    if !args.yes && !args.dry_run {
        let dry_run = ResetRequest {
            ai_type: args.ai_type.clone(),
            dry_run: true,
        };
        let preview = reset(&app.db, &app.clock, &dry_run).await?;
        if preview.reset.is_empty() {
            // nothing to confirm: asking "clear 0 tokens?" would only confuse
            print_text(&preview, &who(&args));
            return Ok(ExitCode::SUCCESS);
        }
        let total = saturating_sum(preview.reset.iter().map(|r| r.total_tokens));
        eprint!(
            "Reset {} for {}: archive and clear {} tokens in {} row(s), their day and hour windows and open reservations? [y/N] ",
            preview.month,
            who(&args),
            thousands(total),
            preview.archived_count
        );
        std::io::stderr().flush().ok();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .context("cannot read the answer")?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            eprintln!("aborted; nothing was changed");
            return Ok(ExitCode::from(EXIT_FAILURE));
        }
    }
    let req = ResetRequest {
        ai_type: args.ai_type.clone(),
        dry_run: args.dry_run,
    };
    let done = reset(&app.db, &app.clock, &req).await?;
    if args.json {
        print_json(&done)?;
    } else {
        print_text(&done, &who(&args));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(r: &Reset, who: &str) {
    let verb = if r.dry_run { "would reset" } else { "reset" };
    if r.reset.is_empty() {
        crate::outln!(
            "{}: nothing to reset for {who} (no usage recorded)",
            r.month
        );
        return;
    }
    for e in &r.reset {
        crate::outln!(
            "{}: {verb} {}: {} tokens archived (manual) and cleared",
            r.month,
            e.ai_type,
            thousands(e.total_tokens)
        );
    }
    if r.dry_run {
        crate::outln!("dry run: nothing was changed");
    }
}
