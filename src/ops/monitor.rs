//! One monitor tick: read the month, decide each AI type's and the total's level, raise the
//! alerts of levels newly entered and re-arm those usage fell below, all under the admission
//! lock. Where the alerts go (file, webhook) is the front end's business.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::status::build;
use super::OpResult;
use crate::db::transactions::ScopeLevel;
use crate::db::{AlertRow, Db};
use crate::domain::burn::{window_hours, Burn};
use crate::domain::validate::GLOBAL_SCOPE;
use crate::domain::{Clock, Level};

#[derive(Debug, Clone, Serialize)]
pub struct ScopeState {
    pub ai_type: String,
    pub total_tokens: i64,
    pub limit: i64,
    pub usage_percentage: f64,
    pub level: Level,
    #[serde(flatten)]
    pub burn: Burn,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    pub at: DateTime<Utc>,
    pub month: String,
    pub ai_types: Vec<ScopeState>,
    pub global: ScopeState,
    pub new_alerts: Vec<AlertRow>,
}

/// One tick against the database: read, decide levels, raise and re-arm alerts.
pub async fn tick(db: &Db, clock: &Clock) -> OpResult<Tick> {
    let periods = clock.periods();
    let hours = window_hours(clock);
    let keys: Vec<&str> = std::iter::once(periods.day.as_str())
        .chain(hours.iter().map(|(k, _)| k.as_str()))
        .collect();
    let month = periods.month.clone();
    let ((ai_types, global), new_alerts) = db
        .monitor_tick(&periods.month, &keys, clock, |view| {
            let report = build(view, &month, None, clock);
            let mut scopes: Vec<ScopeLevel> = report
                .ai_types
                .iter()
                .map(|a| ScopeLevel {
                    ai_type: a.ai_type.clone(),
                    month: month.clone(),
                    level: a.level,
                    used: a.total_tokens,
                    limit: a.monthly_limit,
                    burn: a.burn,
                    row_status: Some(a.status.clone()),
                })
                .collect();
            scopes.push(ScopeLevel {
                ai_type: GLOBAL_SCOPE.to_string(),
                month: month.clone(),
                level: report.global.level,
                used: report.global.total_tokens,
                limit: report.global.enforced_limit,
                burn: report.global.burn,
                row_status: None,
            });
            let state = |s: &ScopeLevel| ScopeState {
                ai_type: s.ai_type.clone(),
                total_tokens: s.used,
                limit: s.limit,
                usage_percentage: crate::domain::level::percentage(s.used, s.limit),
                level: s.level,
                burn: s.burn,
            };
            let (global, ai_types) = scopes
                .split_last()
                .expect("the global scope was pushed last");
            (
                (
                    ai_types.iter().map(state).collect::<Vec<_>>(),
                    state(global),
                ),
                scopes,
            )
        })
        .await?;
    Ok(Tick {
        at: clock.now,
        month,
        ai_types,
        global,
        new_alerts,
    })
}
