//! `archive`: archived months, newest first.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::{Cell, CellAlignment};
use serde::Serialize;

use super::App;
use crate::cli::ArchiveArgs;
use crate::db::ArchiveRow;
use crate::output::{print_json, thousands};

#[derive(Debug, Serialize)]
struct ArchiveReport {
    archive: Vec<ArchiveRow>,
}

pub async fn run(app: &App, args: ArchiveArgs) -> Result<ExitCode> {
    let rows = app
        .db
        .archive(args.ai_type.as_deref(), args.month.as_deref())
        .await?;
    if args.json {
        print_json(&ArchiveReport { archive: rows })?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        crate::outln!(
            "The archive is empty{}.",
            if args.ai_type.is_some() || args.month.is_some() {
                " for that selection"
            } else {
                ""
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = app.style.table();
    table.set_header(vec![
        "Month",
        "AI type",
        "Used",
        "Limit",
        "Requests",
        "Cost (USD)",
        "Reason",
        "Archived at",
    ]);
    let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
    for r in &rows {
        table.add_row(vec![
            Cell::new(&r.month_year),
            Cell::new(&r.ai_type),
            right(thousands(r.total_tokens)),
            right(r.monthly_limit.map(thousands).unwrap_or_else(|| "-".into())),
            right(thousands(r.request_count)),
            right(format!("{:.4}", r.cost_usd)),
            Cell::new(&r.reason),
            Cell::new(
                r.archived_at
                    .with_timezone(&app.clock.tz)
                    .format("%Y-%m-%d %H:%M")
                    .to_string(),
            ),
        ]);
    }
    crate::outln!("{table}");
    Ok(ExitCode::SUCCESS)
}
