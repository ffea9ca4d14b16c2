//! `limits` and `limits set`.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::{Cell, CellAlignment};
use serde::Serialize;

use super::App;
use crate::cli::{LimitsSetArgs, LimitsUnsetArgs};
use crate::db::{LimitRows, LimitScope};
use crate::domain::level::{Level, CRITICAL_PERCENT, EMERGENCY_PERCENT, WARNING_PERCENT};
use crate::domain::limits::{LimitFields, LimitRow};
use crate::domain::{GlobalLimits, Limits};
use crate::output::{print_json, thousands, warn};

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

pub async fn show(app: &App, json: bool) -> Result<ExitCode> {
    let report = build(&app.db.limit_rows().await?);
    print(app, &report, json)
}

pub async fn set(app: &App, args: LimitsSetArgs) -> Result<ExitCode> {
    let scope = scope_of(&args.ai_type, args.global);
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
    print(app, &report, args.json)
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
    let scope = scope_of(&args.ai_type, args.global);
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
    print(app, &report, args.json)
}

fn print(app: &App, report: &LimitsReport, json: bool) -> Result<ExitCode> {
    for w in &report.warnings {
        warn(w);
    }
    if json {
        print_json(report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = app.style.table();
    table.set_header(vec![
        "Applies to",
        "Monthly",
        "Daily",
        "Hourly",
        "Per request",
        "RPM",
        "RPD",
        "Cooldown",
        "In flight",
        "Pacing",
    ]);
    let off = |v: Option<i64>| v.map(thousands).unwrap_or_else(|| "off".into());
    let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
    let mut add = |name: String, l: &Limits| {
        table.add_row(vec![
            Cell::new(name),
            right(thousands(l.monthly)),
            right(thousands(l.daily)),
            right(thousands(l.hourly)),
            right(thousands(l.per_request)),
            right(off(l.rpm)),
            right(off(l.rpd)),
            right(if l.cooldown_seconds > 0 {
                format!("{}s", l.cooldown_seconds)
            } else {
                "off".into()
            }),
            right(off(l.max_concurrent)),
            Cell::new(if l.pacing { "on" } else { "off" }),
        ]);
    };
    add("default (each AI type)".into(), &report.default);
    for a in &report.ai_types {
        add(a.ai_type.clone(), &a.limits);
    }
    let g = &report.global;
    table.add_row(vec![
        Cell::new("global (all AI types)"),
        right(thousands(g.monthly)),
        right(thousands(g.daily)),
        right(thousands(g.hourly)),
        right(g.per_request.map(thousands).unwrap_or_else(|| "-".into())),
        right(off(g.rpm)),
        right(off(g.rpd)),
        right(if g.cooldown_seconds > 0 {
            format!("{}s", g.cooldown_seconds)
        } else {
            "off".into()
        }),
        right(off(g.max_concurrent)),
        Cell::new(if g.pacing { "on" } else { "off" }),
    ]);
    crate::outln!("{table}");
    let t = &report.default_thresholds;
    crate::outln!(
        "Levels of the enforced monthly limit: warning {}% ({}), critical {}% ({}), emergency {}% ({}: every request denied)",
        t.warning_percent,
        thousands(t.warning_tokens),
        t.critical_percent,
        thousands(t.critical_tokens),
        t.emergency_percent,
        thousands(t.emergency_tokens)
    );
    Ok(ExitCode::SUCCESS)
}
