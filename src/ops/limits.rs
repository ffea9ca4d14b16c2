//! `limits`, `limits set` and `limits unset`: the limits in force for the default, each AI
//! type and the total, and changes to one row of them.

use serde::{Deserialize, Serialize};

use super::OpResult;
use crate::db::{Db, LimitRows, LimitScope};
use crate::domain::input::{AiType, Count, Limit};
use crate::domain::level::{Level, CRITICAL_PERCENT, EMERGENCY_PERCENT, WARNING_PERCENT};
use crate::domain::limits::{LimitFields, LimitRow};
use crate::domain::{Clock, GlobalLimits, Limits, ScopeLimits, Usd};
use crate::error::OpError;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AiTypeLimits {
    pub ai_type: String,
    /// what is enforced
    #[serde(flatten)]
    pub limits: Limits,
    /// the values set for this AI type itself (the rest follow the default)
    pub overrides: LimitRow,
    pub thresholds: Thresholds,
}

/// One user's limits: their own values over the default user's.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserLimits {
    pub user_id: String,
    #[serde(flatten)]
    pub limits: UserLimitValues,
    /// the values set for this user itself (the rest follow the default user's)
    pub overrides: LimitRow,
}

/// The limits a user has (null: none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UserLimitValues {
    pub monthly: Option<i64>,
    pub daily: Option<i64>,
    pub per_request: Option<i64>,
    pub daily_cost: Option<Usd>,
    pub monthly_cost: Option<Usd>,
}

impl From<&ScopeLimits> for UserLimitValues {
    fn from(l: &ScopeLimits) -> UserLimitValues {
        let set = |v: i64| (v != crate::domain::limits::UNLIMITED).then_some(v);
        UserLimitValues {
            monthly: set(l.monthly),
            daily: set(l.daily),
            per_request: l.per_request,
            daily_cost: l.daily_cost,
            monthly_cost: l.monthly_cost,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LimitsReport {
    /// applies to every AI type without a value of its own
    pub default: Limits,
    pub default_thresholds: Thresholds,
    pub global: GlobalLimits,
    pub global_thresholds: Thresholds,
    pub ai_types: Vec<AiTypeLimits>,
    /// what every user without limits of their own has (all null: none)
    pub default_user: UserLimitValues,
    /// users with limits of their own
    pub users: Vec<UserLimits>,
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
    let users = rows
        .users
        .iter()
        .map(|(user_id, own)| UserLimits {
            user_id: user_id.clone(),
            limits: UserLimitValues::from(&rows.user_limits(user_id)),
            overrides: own.clone(),
        })
        .collect();
    LimitsReport {
        default_thresholds: Thresholds::of(default.monthly),
        global_thresholds: Thresholds::of(global.monthly),
        default,
        global,
        ai_types,
        default_user: UserLimitValues::from(&ScopeLimits::for_user(
            rows.default_user.as_ref(),
            None,
        )),
        users,
        warnings,
    }
}

/// Which row of limits a change goes to: an AI type's, the global total's (`global`), a
/// user's, the default user's, else the default every AI type without its own follows.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LimitTarget {
    #[serde(default)]
    pub ai_type: Option<AiType>,
    #[serde(default)]
    pub global: bool,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub default_user: bool,
}

impl LimitTarget {
    pub fn scope(&self) -> OpResult<LimitScope> {
        let named = [
            self.ai_type.is_some(),
            self.global,
            self.user.is_some(),
            self.default_user,
        ];
        if named.iter().filter(|n| **n).count() > 1 {
            return Err(OpError::invalid(
                "name one of: an AI type, the global total, a user or the default user",
            ));
        }
        Ok(match (&self.ai_type, &self.user) {
            (Some(a), _) => LimitScope::AiType(a.to_string()),
            (_, Some(u)) => LimitScope::User(
                crate::domain::validate::user_id(u)
                    .map_err(|e| OpError::invalid(format!("user: {e}")))?,
            ),
            _ if self.global => LimitScope::Global,
            _ if self.default_user => LimitScope::DefaultUser,
            _ => LimitScope::Default,
        })
    }
}

/// Users have token and USD quotas (daily, monthly, per request), not the budget machinery of
/// AI types: a rate limit, cooldown, concurrency cap or pacing on one person is refused rather
/// than stored and silently ignored.
fn users_take_only_quotas(scope: &LimitScope, row: &LimitRow) -> OpResult<()> {
    if !matches!(scope, LimitScope::User(_) | LimitScope::DefaultUser) {
        return Ok(());
    }
    let refused = [
        ("--hourly", row.hourly.is_some()),
        ("--rpm", row.rpm.is_some()),
        ("--rpd", row.rpd.is_some()),
        ("--cooldown", row.cooldown_seconds.is_some()),
        ("--max-concurrent", row.max_concurrent.is_some()),
        ("--pacing", row.pacing.is_some()),
    ];
    let named: Vec<&str> = refused
        .iter()
        .filter(|(_, on)| *on)
        .map(|(f, _)| *f)
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    Err(OpError::invalid(format!(
        "users have token and USD limits only (--monthly, --daily, --per-request, --daily-cost-usd, --monthly-cost-usd), not {}",
        named.join(", ")
    )))
}

/// Whom a row of limits applies to, in words.
pub fn describe(scope: &LimitScope) -> String {
    match scope {
        LimitScope::Default => "the default (every AI type without its own value)".to_string(),
        LimitScope::Global => "the global total".to_string(),
        LimitScope::AiType(a) => a.clone(),
        LimitScope::DefaultUser => {
            "the default user (every user without limits of their own)".to_string()
        }
        LimitScope::User(u) => format!("user {u}"),
    }
}

/// The values to set; the rest stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitChanges {
    pub monthly: Option<Limit>,
    pub daily: Option<Limit>,
    pub hourly: Option<Limit>,
    pub per_request: Option<Limit>,
    pub rpm: Option<Count>,
    pub rpd: Option<Count>,
    pub cooldown_seconds: Option<Count>,
    pub max_concurrent: Option<Count>,
    pub pacing: Option<bool>,
    #[serde(default)]
    pub daily_cost_usd: Option<Usd>,
    #[serde(default)]
    pub monthly_cost_usd: Option<Usd>,
}

impl LimitChanges {
    fn row(&self) -> OpResult<LimitRow> {
        let row = LimitRow {
            monthly: self.monthly.map(Limit::get),
            daily: self.daily.map(Limit::get),
            hourly: self.hourly.map(Limit::get),
            per_request: self.per_request.map(Limit::get),
            rpm: self.rpm.map(Count::get),
            rpd: self.rpd.map(Count::get),
            cooldown_seconds: self.cooldown_seconds.map(Count::get),
            max_concurrent: self.max_concurrent.map(Count::get),
            pacing: self.pacing,
            daily_cost: self.daily_cost_usd,
            monthly_cost: self.monthly_cost_usd,
        };
        if row == LimitRow::default() {
            return Err(OpError::invalid("give at least one limit to set"));
        }
        Ok(row)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SetLimitsRequest {
    #[serde(flatten)]
    pub target: LimitTarget,
    #[serde(flatten)]
    pub changes: LimitChanges,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UnsetLimitsRequest {
    #[serde(flatten)]
    pub target: LimitTarget,
    /// the values to put back
    pub fields: LimitFields,
}

pub async fn limits(db: &Db) -> OpResult<LimitsReport> {
    Ok(build(&db.limit_rows().await?))
}

/// Changes one row under the admission lock; the report is of every row after the change.
pub async fn set(db: &Db, clock: &Clock, req: &SetLimitsRequest) -> OpResult<LimitsReport> {
    let (scope, row) = (req.target.scope()?, req.changes.row()?);
    users_take_only_quotas(&scope, &row)?;
    Ok(build(&db.set_limits(&scope, &row, clock).await?))
}

/// Puts values back: an AI type's to the default's, the default's and the total's to
/// tokenctl's own.
pub async fn unset(db: &Db, clock: &Clock, req: &UnsetLimitsRequest) -> OpResult<LimitsReport> {
    if req.fields == LimitFields::default() {
        return Err(OpError::invalid("name at least one limit to put back"));
    }
    let scope = req.target.scope()?;
    Ok(build(&db.unset_limits(&scope, req.fields, clock).await?))
}
