//! `archive`: archived months, newest first.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::Cell;

use super::App;
use crate::cli::ArchiveArgs;
use crate::ops::archive::{archive, ArchiveRequest};
use crate::output::{print_json, thousands, Grid, Show, TableView};

pub async fn run(app: &App, args: ArchiveArgs) -> Result<ExitCode> {
    let req = ArchiveRequest {
        ai_type: args.ai_type.clone(),
        month: args.month.clone(),
    };
    let report = archive(&app.db, &req).await?;
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = report.archive;
    if rows.is_empty() && !args.table.no_headers {
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
    let view: TableView = args.table.into();
    let mut grid = Grid::new()
        .text("Month", Show::Always)
        .text("AI type", Show::Always)
        .number("Used", Show::Always)
        .number("Limit", Show::Always)
        .number("Cost USD", Show::Fit(1))
        .text("Reason", Show::Fit(2))
        .number("Requests", Show::Fit(3))
        .text("Archived at", Show::Fit(4))
        .number("Input", Show::Wide)
        .number("Output", Show::Wide)
        .text("Last request", Show::Wide);
    let when = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&app.clock.tz)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    };
    for r in &rows {
        grid.row(vec![
            Cell::new(&r.month_year),
            Cell::new(&r.ai_type),
            Cell::new(thousands(r.total_tokens)),
            Cell::new(r.monthly_limit.map(thousands).unwrap_or_else(|| "-".into())),
            Cell::new(format!("{:.4}", r.cost_usd)),
            Cell::new(&r.reason),
            Cell::new(thousands(r.request_count)),
            Cell::new(when(r.archived_at)),
            Cell::new(thousands(r.tokens_in)),
            Cell::new(thousands(r.tokens_out)),
            Cell::new(r.last_request_at.map(when).unwrap_or_else(|| "-".into())),
        ]);
    }
    crate::out!("{}", grid.render(&app.style, view));
    if !view.no_headers {
        app.style.table_note(&grid, view, Vec::new());
    }
    Ok(ExitCode::SUCCESS)
}
