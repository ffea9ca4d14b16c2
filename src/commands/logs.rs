//! `logs`: the last requests, newest first, a page at a time.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::Cell;

use super::App;
use crate::cli::LogsArgs;
use crate::ops::logs::{logs, LogsRequest};
use crate::output::{print_json, thousands, Grid, Show, TableView};

pub async fn run(app: &App, args: LogsArgs) -> Result<ExitCode> {
    let req = LogsRequest {
        ai_type: args.ai_type.clone(),
        since: args.since,
        before: args.before,
        limit: args.limit,
    };
    let page = logs(&app.db, &app.clock, &req).await?;
    if args.json {
        print_json(&page)?;
        return Ok(ExitCode::SUCCESS);
    }
    let view: TableView = args.table.into();
    if page.logs.is_empty() {
        if !view.no_headers {
            crate::outln!(
                "No requests{}.",
                if args.ai_type.is_some() || args.since.is_some() || args.before.is_some() {
                    " for that selection"
                } else {
                    " recorded yet"
                }
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut grid = Grid::new()
        .number("Id", Show::Always)
        .text("Time", Show::Always)
        .text("AI type", Show::Always)
        .text("Model", Show::Fit(2))
        .number("Tokens", Show::Always)
        .number("In", Show::Fit(3))
        .number("Out", Show::Fit(3))
        .number("Cost USD", Show::Fit(1))
        .text("Result", Show::Always)
        .text("Request id", Show::Wide)
        .text("User", Show::Wide)
        .text("Session", Show::Wide)
        .text("Type", Show::Wide)
        .number("ms", Show::Wide)
        .text("Error", Show::Wide);
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for r in &page.logs {
        grid.row(vec![
            Cell::new(r.id),
            Cell::new(
                r.created_at
                    .map(|t| {
                        t.with_timezone(&app.clock.tz)
                            .format("%m-%d %H:%M:%S")
                            .to_string()
                    })
                    .unwrap_or_else(|| "-".into()),
            ),
            Cell::new(&r.ai_type),
            Cell::new(dash(&r.model)),
            Cell::new(thousands(r.total_tokens)),
            Cell::new(thousands(r.tokens_in)),
            Cell::new(thousands(r.tokens_out)),
            Cell::new(format!("{:.4}", r.cost_usd)),
            Cell::new(if r.success { "ok" } else { "failed" }),
            Cell::new(dash(&r.request_id)),
            Cell::new(dash(&r.user_id)),
            Cell::new(dash(&r.session_id)),
            Cell::new(dash(&r.request_type)),
            Cell::new(
                r.processing_time_ms
                    .map(thousands)
                    .unwrap_or_else(|| "-".into()),
            ),
            Cell::new(dash(&r.error_message)),
        ]);
    }
    crate::out!("{}", grid.render(&app.style, view));
    if !view.no_headers {
        let mut notes = vec![format!("Newest first, times in {}", app.clock.tz.name())];
        if let Some(id) = page.next_before {
            notes.push(format!("older: tokenctl logs --before {id}"));
        }
        app.style.table_note(&grid, view, notes);
    }
    Ok(ExitCode::SUCCESS)
}
