//! `limits` and `limits set`.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::Cell;
use serde::Serialize;

use super::App;
use crate::cli::{LimitsSetArgs, LimitsUnsetArgs};
use crate::db::{LimitRows, LimitScope};
use crate::domain::level::{Level, CRITICAL_PERCENT, EMERGENCY_PERCENT, WARNING_PERCENT};
use crate::domain::limits::{LimitFields, LimitRow};
use crate::domain::validate::GLOBAL_SCOPE;
use crate::domain::{GlobalLimits, Limits};
use crate::output::{print_json, thousands, warn, Grid, Show, TableView};

/// The row of the limits every AI type without its own follows.
const DEFAULT_ROW: &str = "(default)";

#[derive(Debug, Clone, Serialize)]
pub struct Thresholds {
    pub warning_percent: i64,
    pub critical_percent: i64,
    pub emergency_percent: i64,
    pub warning_tokens: i64,
    pub critical_tokens: i64,
    pub emergency_tokens: i64,
}

impl Thresholds {
    fn of(monthly: i64) -> Thresholds {
        Thresholds {
            warning_percent: WARNING_PERCENT,
            critical_percent: CRITICAL_PERCENT,
            emergency_percent: EMERGENCY_PERCENT,
            warning_tokens: Level::Warning.threshold_tokens(monthly),
            critical_tokens: Level::Critical.threshold_tokens(monthly),
            emergency_tokens: Level::Emergency.threshold_tokens(monthly),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AiTypeLimits {
    pub ai_type: String,
    /// what is enforced
    #[serde(flatten)]
    pub limits: Limits,
    /// the values set for this AI type itself (the rest follow the default)
    pub overrides: LimitRow,
    pub thresholds: Thresholds,
}

#[derive(Debug, Clone, Serialize)]
pub struct LimitsReport {
    /// applies to every AI type without a value of its own
    pub default: Limits,
    pub default_thresholds: Thresholds,
    pub global: GlobalLimits,
    pub global_thresholds: Thresholds,
    pub ai_types: Vec<AiTypeLimits>,
    pub warnings: Vec<String>,
}

pub fn build(rows: &LimitRows) -> LimitsReport {
    let default = Limits::resolve(&rows.default, None);
    let global = GlobalLimits::resolve(&rows.global, &rows.default);
    let mut warnings = default.warnings("default");
    warnings.extend(global.warnings(default.per_request));
    let ai_types: Vec<AiTypeLimits> = rows
        .ai_types
        .iter()
        .map(|(name, own)| {
            let limits = Limits::resolve(&rows.default, Some(own));
            warnings.extend(limits.warnings(name));
            AiTypeLimits {
                ai_type: name.clone(),
                thresholds: Thresholds::of(limits.monthly),
                limits,
                overrides: own.clone(),
            }
        })
        .collect();
    LimitsReport {
        default_thresholds: Thresholds::of(default.monthly),
        global_thresholds: Thresholds::of(global.monthly),
        default,
        global,
        ai_types,
        warnings,
    }
}

pub async fn show(app: &App, json: bool, view: TableView) -> Result<ExitCode> {
    let report = build(&app.db.limit_rows().await?);
    print(app, &report, json, view)
}

pub async fn set(app: &App, args: LimitsSetArgs) -> Result<ExitCode> {
    let scope = scope_of(&args.ai_type.clone().map(String::from), args.global);
    let changes = LimitRow {
        monthly: args.monthly,
        daily: args.daily,
        hourly: args.hourly,
        per_request: args.per_request,
        rpm: args.rpm,
        rpd: args.rpd,
        cooldown_seconds: args.cooldown,
        max_concurrent: args.max_concurrent,
        pacing: args.pacing,
    };
    let rows = app.db.set_limits(&scope, &changes, &app.clock).await?;
    let report = build(&rows);
    if !args.json {
        crate::outln!("updated limits for {}", who(&scope));
    }
    print(app, &report, args.json, TableView::default())
}

fn scope_of(ai_type: &Option<String>, global: bool) -> LimitScope {
    match (ai_type, global) {
        (Some(a), _) => LimitScope::AiType(a.clone()),
        (None, true) => LimitScope::Global,
        (None, false) => LimitScope::Default,
    }
}

fn who(scope: &LimitScope) -> String {
    match scope {
        LimitScope::Default => "the default (every AI type without its own value)".to_string(),
        LimitScope::Global => "the global total".to_string(),
        LimitScope::AiType(a) => a.clone(),
    }
}

pub async fn unset(app: &App, args: LimitsUnsetArgs) -> Result<ExitCode> {
    let scope = scope_of(&args.ai_type.clone().map(String::from), args.global);
    let fields = LimitFields {
        monthly: args.all || args.monthly,
        daily: args.all || args.daily,
        hourly: args.all || args.hourly,
        per_request: args.all || args.per_request,
        rpm: args.all || args.rpm,
        rpd: args.all || args.rpd,
        cooldown_seconds: args.all || args.cooldown,
        max_concurrent: args.all || args.max_concurrent,
        pacing: args.all || args.pacing,
    };
    let rows = app.db.unset_limits(&scope, fields, &app.clock).await?;
    let report = build(&rows);
    if !args.json {
        let back_to = match scope {
            LimitScope::AiType(_) => "the default's",
            _ => "tokenctl's own defaults",
        };
        crate::outln!("put limits of {} back to {back_to}", who(&scope));
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
        .text("Pacing", Show::Fit(3));
    let off = |v: Option<i64>| v.map(thousands).unwrap_or_else(|| "off".into());
    let cooldown = |seconds: i64| {
        if seconds > 0 {
            format!("{}s", thousands(seconds))
        } else {
            "off".into()
        }
    };
    let on_off = |on: bool| if on { "on" } else { "off" };
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
        ]);
    };
    add(DEFAULT_ROW, &report.default);
    for a in &report.ai_types {
        add(&a.ai_type, &a.limits);
    }
    let g = &report.global;
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
    ]);
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
