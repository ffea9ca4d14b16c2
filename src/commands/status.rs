//! `status`: prints the month's report (`ops::status`) as a table or one JSON document.

use std::process::ExitCode;

use anyhow::Result;
use chrono::{DateTime, Utc};
use comfy_table::Cell;

use super::App;
use crate::cli::StatusArgs;
use crate::domain::burn::Burn;
use crate::domain::number::thousands_f;
use crate::domain::validate::GLOBAL_SCOPE;
use crate::domain::Level;
use crate::ops::status::{status, StatusReport, StatusRequest};
use crate::output::{print_json, thousands, warn, Grid, Show, TableView};

pub async fn run(app: &App, args: StatusArgs) -> Result<ExitCode> {
    let req = StatusRequest {
        month: args.month,
        ai_type: args.ai_type,
    };
    let report = status(&app.db, &app.clock, &req).await?;
    for w in &report.warnings {
        warn(w);
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
    cost_usd: crate::domain::Usd,
    cost_complete: bool,
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
        cost_complete: g.cost_complete,
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
        cost_complete: a.cost_complete,
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
            // `*`: some requests have no price, so the cost shown leaves them out
            Cell::new(format!(
                "{}{}",
                row.cost_usd,
                if row.cost_complete { "" } else { "*" }
            )),
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
