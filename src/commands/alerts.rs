//! `alerts`: raised alerts, newest first; `--active`: each AI type's current level where it
//! is not ok.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::Cell;
use serde::Serialize;

use super::App;
use crate::cli::AlertsArgs;
use crate::db::{AlertFilter, AlertRow};
use crate::domain::validate::GLOBAL_SCOPE;
use crate::output::{print_json, thousands, Grid, Show, TableView};

#[derive(Debug, Serialize)]
struct AlertsReport {
    alerts: Vec<AlertRow>,
}

pub async fn run(app: &App, args: AlertsArgs) -> Result<ExitCode> {
    let since = args.since.map(|s| s.resolve(app.clock.now)).transpose()?;
    let filter = AlertFilter {
        since,
        level: args.level.clone(),
        ai_type: args.ai_type.clone(),
        active_in: args.active.then(|| app.clock.periods().month),
    };
    if args.active {
        return active(app, &filter, args.json, args.table.into()).await;
    }
    let alerts = app.db.alerts(&filter).await?;
    if args.json {
        print_json(&AlertsReport { alerts })?;
        return Ok(ExitCode::SUCCESS);
    }
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

/// An AI type (or the total) whose current level is not ok, and the alert that announced it.
#[derive(Debug, Serialize)]
struct ActiveLevel {
    /// the active alert of this level (null if no monitor has raised it yet)
    id: Option<i64>,
    ai_type: String,
    level: crate::domain::Level,
    usage_percentage: f64,
    total_tokens: i64,
    limit: i64,
    message: String,
    recommended_action: String,
    created_at: Option<chrono::DateTime<chrono::Utc>>,
}

async fn active(app: &App, filter: &AlertFilter, json: bool, table: TableView) -> Result<ExitCode> {
    let periods = app.clock.periods();
    let hours = crate::domain::burn::window_hours(&app.clock);
    let keys: Vec<&str> = std::iter::once(periods.day.as_str())
        .chain(hours.iter().map(|(k, _)| k.as_str()))
        .collect();
    let view = app.db.usage_view(&periods.month, &keys, &app.clock).await?;
    let report = super::status::build(&view, &periods.month, None, &app.clock);
    let raised = app
        .db
        .alerts(&AlertFilter {
            active_in: Some(periods.month.clone()),
            ..AlertFilter::default()
        })
        .await?;
    let scopes = report
        .ai_types
        .iter()
        .map(|a| {
            (
                a.ai_type.clone(),
                a.level,
                a.total_tokens,
                a.monthly_limit,
                a.burn,
            )
        })
        .chain(std::iter::once((
            GLOBAL_SCOPE.to_string(),
            report.global.level,
            report.global.total_tokens,
            report.global.enforced_limit,
            report.global.burn,
        )));
    let mut out = Vec::new();
    for (ai_type, level, used, limit, burn) in scopes {
        if level == crate::domain::Level::Ok
            || filter.ai_type.as_ref().is_some_and(|a| *a != ai_type)
            || filter.level.as_ref().is_some_and(|l| l != level.as_str())
        {
            continue;
        }
        let alert = raised
            .iter()
            .find(|r| r.ai_type == ai_type && r.level == level.as_str());
        let d = crate::domain::alert::draft(&ai_type, level, &periods.month, used, limit, burn);
        out.push(ActiveLevel {
            id: alert.map(|a| a.id),
            level,
            usage_percentage: d.usage_percentage,
            total_tokens: used,
            limit,
            message: alert.map(|a| a.message.clone()).unwrap_or(d.message),
            recommended_action: d.recommended_action,
            created_at: alert.map(|a| a.created_at),
            ai_type,
        });
    }
    if json {
        #[derive(Serialize)]
        struct Report {
            alerts: Vec<ActiveLevel>,
        }
        print_json(&Report { alerts: out })?;
        return Ok(ExitCode::SUCCESS);
    }
    if out.is_empty() {
        crate::outln!(
            "Nothing active: every AI type, and the total, is below 80% of its limit in {}.",
            periods.month
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
    for a in &out {
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
        for a in &out {
            app.style.note(&format!("- {}", a.recommended_action), 2);
        }
    }
    Ok(ExitCode::SUCCESS)
}
