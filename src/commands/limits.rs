//! `limits`, `limits set` and `limits unset`: flags to `ops::limits` requests, and the table.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::Cell;

use super::App;
use crate::cli::{LimitsSetArgs, LimitsUnsetArgs};
use crate::db::LimitScope;
use crate::domain::limits::LimitFields;
use crate::domain::validate::GLOBAL_SCOPE;
use crate::domain::{Limits, Usd};
use crate::ops::limits::{
    describe, limits, set as set_limits, unset as unset_limits, LimitChanges, LimitTarget,
    LimitsReport, SetLimitsRequest, UnsetLimitsRequest, UserLimitValues,
};
use crate::output::{print_json, thousands, warn, Grid, Show, TableView};

/// The row of the limits every AI type without its own follows.
const DEFAULT_ROW: &str = "(default)";
/// The row of the limits every user without their own has.
const DEFAULT_USER_ROW: &str = "(default user)";

pub async fn show(app: &App, json: bool, view: TableView) -> Result<ExitCode> {
    let report = limits(&app.db).await?;
    print(app, &report, json, view)
}

pub async fn set(app: &App, args: LimitsSetArgs) -> Result<ExitCode> {
    let req = SetLimitsRequest {
        target: LimitTarget {
            ai_type: args.ai_type,
            global: args.global,
            user: args.user,
            default_user: args.default_user,
        },
        changes: LimitChanges {
            monthly: args.monthly,
            daily: args.daily,
            hourly: args.hourly,
            per_request: args.per_request,
            rpm: args.rpm,
            rpd: args.rpd,
            cooldown_seconds: args.cooldown,
            max_concurrent: args.max_concurrent,
            pacing: args.pacing,
            daily_cost_usd: args.daily_cost_usd,
            monthly_cost_usd: args.monthly_cost_usd,
        },
    };
    let report = set_limits(&app.db, &app.clock, &req).await?;
    if !args.json {
        crate::outln!("updated limits for {}", describe(&req.target.scope()?));
    }
    print(app, &report, args.json, TableView::default())
}

pub async fn unset(app: &App, args: LimitsUnsetArgs) -> Result<ExitCode> {
    let req = UnsetLimitsRequest {
        target: LimitTarget {
            ai_type: args.ai_type,
            global: args.global,
            user: args.user,
            default_user: args.default_user,
        },
        fields: LimitFields {
            monthly: args.all || args.monthly,
            daily: args.all || args.daily,
            hourly: args.all || args.hourly,
            per_request: args.all || args.per_request,
            rpm: args.all || args.rpm,
            rpd: args.all || args.rpd,
            cooldown_seconds: args.all || args.cooldown,
            max_concurrent: args.all || args.max_concurrent,
            pacing: args.all || args.pacing,
            daily_cost: args.all || args.daily_cost_usd,
            monthly_cost: args.all || args.monthly_cost_usd,
        },
    };
    let report = unset_limits(&app.db, &app.clock, &req).await?;
    if !args.json {
        let scope = req.target.scope()?;
        let back_to = match scope {
            LimitScope::AiType(_) => "the default's",
            LimitScope::User(_) => "the default user's",
            LimitScope::DefaultUser => "none",
            _ => "tokenctl's own defaults",
        };
        crate::outln!("put limits of {} back to {back_to}", describe(&scope));
    }
    print(app, &report, args.json, TableView::default())
}

fn print(app: &App, report: &LimitsReport, json: bool, view: TableView) -> Result<ExitCode> {
    for w in &report.warnings {
        warn(w);
    }
    if json {
        print_json(report)?;
        return Ok(ExitCode::SUCCESS);
    }
    // USD limits are opt-in: their columns take room in the default view only once one is set
    let g = &report.global;
    let any_dollars = g.daily_cost.is_some()
        || g.monthly_cost.is_some()
        || std::iter::once(&report.default)
            .chain(report.ai_types.iter().map(|a| &a.limits))
            .any(|l| l.daily_cost.is_some() || l.monthly_cost.is_some())
        || std::iter::once(&report.default_user)
            .chain(report.users.iter().map(|u| &u.limits))
            .any(|l| *l != UserLimitValues::default());
    let dollars_shown = if any_dollars {
        Show::Always
    } else {
        Show::Wide
    };
    let mut grid = Grid::new()
        .text("Applies to", Show::Always)
        .number("Monthly", Show::Always)
        .number("Daily", Show::Always)
        .number("Hourly", Show::Fit(1))
        .number("Per request", Show::Fit(1))
        .number("RPM", Show::Fit(2))
        .number("RPD", Show::Fit(2))
        .number("Cooldown", Show::Fit(3))
        .number("In flight", Show::Fit(3))
        .text("Pacing", Show::Fit(3))
        .number("USD/day", dollars_shown)
        .number("USD/month", dollars_shown);
    let off = |v: Option<i64>| v.map(thousands).unwrap_or_else(|| "off".into());
    let cooldown = |seconds: i64| {
        if seconds > 0 {
            format!("{}s", thousands(seconds))
        } else {
            "off".into()
        }
    };
    let on_off = |on: bool| if on { "on" } else { "off" };
    let usd = |v: Option<Usd>| v.map(|u| u.to_string()).unwrap_or_else(|| "-".into());
    let mut add = |name: &str, l: &Limits| {
        grid.row(vec![
            Cell::new(name),
            Cell::new(thousands(l.monthly)),
            Cell::new(thousands(l.daily)),
            Cell::new(thousands(l.hourly)),
            Cell::new(thousands(l.per_request)),
            Cell::new(off(l.rpm)),
            Cell::new(off(l.rpd)),
            Cell::new(cooldown(l.cooldown_seconds)),
            Cell::new(off(l.max_concurrent)),
            Cell::new(on_off(l.pacing)),
            Cell::new(usd(l.daily_cost)),
            Cell::new(usd(l.monthly_cost)),
        ]);
    };
    add(DEFAULT_ROW, &report.default);
    for a in &report.ai_types {
        add(&a.ai_type, &a.limits);
    }
    grid.row(vec![
        Cell::new(GLOBAL_SCOPE),
        Cell::new(thousands(g.monthly)),
        Cell::new(thousands(g.daily)),
        Cell::new(thousands(g.hourly)),
        Cell::new(g.per_request.map(thousands).unwrap_or_else(|| "-".into())),
        Cell::new(off(g.rpm)),
        Cell::new(off(g.rpd)),
        Cell::new(cooldown(g.cooldown_seconds)),
        Cell::new(off(g.max_concurrent)),
        Cell::new(on_off(g.pacing)),
        Cell::new(usd(g.daily_cost)),
        Cell::new(usd(g.monthly_cost)),
    ]);
    let none = |v: Option<i64>| v.map(thousands).unwrap_or_else(|| "-".into());
    let mut users = vec![(DEFAULT_USER_ROW.to_string(), &report.default_user)];
    users.extend(
        report
            .users
            .iter()
            .map(|u| (format!("user {}", u.user_id), &u.limits)),
    );
    for (name, l) in users {
        if *l == UserLimitValues::default() {
            continue;
        }
        grid.row(vec![
            Cell::new(name),
            Cell::new(none(l.monthly)),
            Cell::new(none(l.daily)),
            Cell::new("-"),
            Cell::new(none(l.per_request)),
            Cell::new("-"),
            Cell::new("-"),
            Cell::new("-"),
            Cell::new("-"),
            Cell::new("-"),
            Cell::new(usd(l.daily_cost)),
            Cell::new(usd(l.monthly_cost)),
        ]);
    }
    crate::out!("{}", grid.render(&app.style, view));
    if view.no_headers {
        return Ok(ExitCode::SUCCESS);
    }
    app.style.table_note(
        &grid,
        view,
        vec![format!(
            "{DEFAULT_ROW}: each AI type without limits of its own; {GLOBAL_SCOPE}: all AI types together"
        )],
    );
    let t = &report.default_thresholds;
    app.style.note(
        &format!(
            "Levels of the enforced monthly limit: warning {}% ({}), critical {}% ({}), emergency {}% ({}: every request denied).",
            t.warning_percent,
            thousands(t.warning_tokens),
            t.critical_percent,
            thousands(t.critical_tokens),
            t.emergency_percent,
            thousands(t.emergency_tokens)
        ),
        0,
    );
    Ok(ExitCode::SUCCESS)
}
