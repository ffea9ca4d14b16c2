//! `quota`: what one user has left, today and this month (the old plan's `check_quota`).

use serde::{Deserialize, Serialize};

use super::limits::UserLimitValues;
use super::OpResult;
use crate::db::Db;
use crate::domain::decision::{decide_in, Asked};
use crate::domain::limits::UNLIMITED;
use crate::domain::usage::CostCounter;
use crate::domain::{Clock, Counter, Scope, Usd};
use crate::error::OpError;

#[derive(Debug, Clone, Deserialize)]
pub struct QuotaRequest {
    pub user_id: String,
}

/// A user's room under their own limits (null where no limit applies). Used figures count
/// open reservations; a model without a price counts at the dearest price known.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Quota {
    pub user_id: String,
    pub daily_tokens_remaining: Option<i64>,
    pub monthly_tokens_remaining: Option<i64>,
    pub daily_cost_remaining: Option<Usd>,
    pub monthly_cost_remaining: Option<Usd>,
    /// whether a 1-token request fits the user's own limits now (the AI type's and the total's
    /// apply too: `check --user-id` decides on all)
    pub can_make_request: bool,
    /// `ok`, or the first of the user's limits that is reached
    pub reason: String,
    pub daily_tokens_used: i64,
    pub monthly_tokens_used: i64,
    pub daily_cost_used: Usd,
    pub monthly_cost_used: Usd,
    pub limits: UserLimitValues,
    pub day: String,
    pub month: String,
}

pub async fn quota(db: &Db, clock: &Clock, req: &QuotaRequest) -> OpResult<Quota> {
    let user_id = crate::domain::validate::user_id(&req.user_id)
        .map_err(|e| OpError::invalid(format!("user_id: {e}")))?;
    let (limits, snap) = db.user_view(&user_id, clock).await?;
    let periods = clock.periods();
    let usage = snap.usage(&Scope::User);
    let tokens_left = |limit: i64, c: Counter| {
        (limit != UNLIMITED).then(|| limit.saturating_sub(c.committed()).max(0))
    };
    let cost_left = |limit: Option<Usd>, c: CostCounter| {
        limit.map(|l| l.saturating_sub(c.committed()).max(Usd::ZERO))
    };
    // the smallest request there is: one token at a nano-dollar
    let asked = Asked {
        ai_type: "",
        user_id: Some(&user_id),
        tokens: 1,
        cost: Usd::from_nanos(1),
    };
    let decision = decide_in(
        &asked,
        &[(Scope::User, limits.clone())],
        &snap,
        &periods,
        clock.now,
    );
    Ok(Quota {
        daily_tokens_remaining: tokens_left(limits.daily, usage.day),
        monthly_tokens_remaining: tokens_left(limits.monthly, usage.month),
        daily_cost_remaining: cost_left(limits.daily_cost, usage.day_cost),
        monthly_cost_remaining: cost_left(limits.monthly_cost, usage.month_cost),
        can_make_request: decision.allowed,
        reason: decision.reason.as_str().to_string(),
        daily_tokens_used: usage.day.committed(),
        monthly_tokens_used: usage.month.committed(),
        daily_cost_used: usage.day_cost.committed(),
        monthly_cost_used: usage.month_cost.committed(),
        limits: UserLimitValues::from(&limits),
        day: periods.day,
        month: periods.month,
        user_id,
    })
}
