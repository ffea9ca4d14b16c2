//! `alerts` and `alerts --active`: prints `ops::alerts`' reports.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::Cell;

use super::App;
use crate::cli::AlertsArgs;
use crate::ops::alerts::{active, alerts, ActiveReport, AlertsRequest};
use crate::output::{print_json, thousands, Grid, Show, TableView};

pub async fn run(app: &App, args: AlertsArgs) -> Result<ExitCode> {
    let req = AlertsRequest {
        since: args.since,
        level: args.level.clone(),
        ai_type: args.ai_type.clone(),
    };
    if args.active {
        let report = active(&app.db, &app.clock, &req).await?;
        return print_active(app, &report, args.json, args.table.into());
    }
    let report = alerts(&app.db, &app.clock, &req).await?;
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let alerts = report.alerts;
    if alerts.is_empty() {
        crate::outln!("No alerts.");
        return Ok(ExitCode::SUCCESS);
    }
    let view: TableView = args.table.into();
    let mut grid = Grid::new()
        .text("Raised", Show::Always)
        .text("AI type", Show::Always)
        .text("Level", Show::Always)
        .number("%", Show::Always)
        .number("Used", Show::Fit(1))
        .number("Limit", Show::Fit(1))
        .text("Message", Show::Wide);
    for a in &alerts {
        let level = match a.level.as_str() {
            "emergency" => crate::domain::Level::Emergency,
            "critical" => crate::domain::Level::Critical,
            _ => crate::domain::Level::Warning,
        };
        grid.row(vec![
            Cell::new(
                a.created_at
                    .with_timezone(&app.clock.tz)
                    .format("%Y-%m-%d %H:%M")
                    .to_string(),
            ),
            Cell::new(&a.ai_type),
            app.style.level_cell(level),
            Cell::new(format!("{:.2}", a.usage_percentage)),
            Cell::new(thousands(a.total_tokens)),
            Cell::new(thousands(a.limit)),
            Cell::new(&a.message),
        ]);
    }
    crate::out!("{}", grid.render(&app.style, view));
    if !view.no_headers {
        app.style
            .table_note(&grid, view, vec!["* is all AI types together".into()]);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_active(
    app: &App,
    report: &ActiveReport,
    json: bool,
    table: TableView,
) -> Result<ExitCode> {
    if json {
        print_json(report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let out = &report.alerts;
    if out.is_empty() {
        crate::outln!(
            "Nothing active: every AI type, and the total, is below 80% of its limit in {}.",
            report.month
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut grid = Grid::new()
        .text("AI type", Show::Always)
        .text("Level", Show::Always)
        .number("%", Show::Always)
        .number("Used", Show::Fit(1))
        .number("Limit", Show::Fit(1))
        .text("Since", Show::Fit(2))
        .text("Recommended action", Show::Wide);
    for a in out {
        grid.row(vec![
            Cell::new(&a.ai_type),
            app.style.level_cell(a.level),
            Cell::new(format!("{:.2}", a.usage_percentage)),
            Cell::new(thousands(a.total_tokens)),
            Cell::new(thousands(a.limit)),
            Cell::new(
                a.created_at
                    .map(|t| {
                        t.with_timezone(&app.clock.tz)
                            .format("%Y-%m-%d %H:%M")
                            .to_string()
                    })
                    .unwrap_or_else(|| "not raised yet".into()),
            ),
            Cell::new(&a.recommended_action),
        ]);
    }
    crate::out!("{}", grid.render(&app.style, table));
    if table.wide && !table.no_headers {
        app.style
            .table_note(&grid, table, vec!["* is all AI types together".into()]);
    }
    if !table.no_headers && !table.wide {
        // the actions are sentences: under the table, wrapped to the width, not in a column
        // squeezed to a few characters
        app.style
            .table_note(&grid, table, vec!["* is all AI types together".into()]);
        crate::outln!("What to do:");
        for a in out {
            app.style.note(&format!("- {}", a.recommended_action), 2);
        }
    }
    Ok(ExitCode::SUCCESS)
}
