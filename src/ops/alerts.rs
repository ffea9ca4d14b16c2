//! `alerts`: the alerts raised, newest first; `active`: each AI type's (and the total's)
//! current level where it is not ok, with the alert that announced it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::status::{build, current_view};
use super::OpResult;
use crate::db::{AlertFilter, AlertRow, Db};
use crate::domain::alert::draft;
use crate::domain::input::Since;
use crate::domain::validate::GLOBAL_SCOPE;
use crate::domain::{Clock, Level};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AlertsRequest {
    /// only alerts raised since then (ignored by `active`)
    #[serde(default)]
    pub since: Option<Since>,
    /// warning, critical or emergency
    #[serde(default)]
    pub level: Option<String>,
    /// an AI type, or `*` for the total
    #[serde(default)]
    pub ai_type: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertsReport {
    pub alerts: Vec<AlertRow>,
}

/// An AI type (or the total) whose current level is not ok, and the alert that announced it.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveLevel {
    /// the active alert of this level (null if no monitor has raised it yet)
    pub id: Option<i64>,
    pub ai_type: String,
    pub level: Level,
    pub usage_percentage: f64,
    pub total_tokens: i64,
    pub limit: i64,
    pub message: String,
    pub recommended_action: String,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActiveReport {
    pub month: String,
    pub alerts: Vec<ActiveLevel>,
}

pub async fn alerts(db: &Db, clock: &Clock, req: &AlertsRequest) -> OpResult<AlertsReport> {
    let filter = AlertFilter {
        since: req.since.map(|s| s.resolve(clock.now)).transpose()?,
        level: req.level.clone(),
        ai_type: req.ai_type.clone(),
        active_in: None,
    };
    Ok(AlertsReport {
        alerts: db.alerts(&filter).await?,
    })
}

/// Levels are computed now from the month's usage (as `status` shows them), so an AI type
/// over 80% is listed even before a monitor has raised its alert.
pub async fn active(db: &Db, clock: &Clock, req: &AlertsRequest) -> OpResult<ActiveReport> {
    let month = clock.periods().month;
    let view = current_view(db, clock, &month).await?;
    let report = build(&view, &month, None, clock);
    let raised = db
        .alerts(&AlertFilter {
            active_in: Some(month.clone()),
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
    let mut alerts = Vec::new();
    for (ai_type, level, used, limit, burn) in scopes {
        if level == Level::Ok
            || req.ai_type.as_ref().is_some_and(|a| *a != ai_type)
            || req.level.as_ref().is_some_and(|l| l != level.as_str())
        {
            continue;
        }
        let alert = raised
            .iter()
            .find(|r| r.ai_type == ai_type && r.level == level.as_str());
        let d = draft(&ai_type, level, &month, used, limit, burn);
        alerts.push(ActiveLevel {
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
    Ok(ActiveReport { month, alerts })
}
