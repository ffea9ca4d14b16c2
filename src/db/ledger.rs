//! The admission and accounting operations, written once over `Store` and run inside the
//! transaction the caller opened (see `Db` methods in `commands`).

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{
    ArchiveReason, ArchivedRow, ClosedMonth, Hold, HoldState, InFlightCaps, LimitFilter,
    LimitScope, LogEntry, LoggedRequest, MonthRow, Store, UsageDelta,
};
use crate::domain::count::saturating_sum;
use crate::domain::decision::{decide_in, Asked};
use crate::domain::level::percentage;
use crate::domain::pricing::{PriceTable, ReservationPrice, TokenCounts};
use crate::domain::{
    thousands, Clock, Counter, Decision, GlobalLimits, Level, Limits, Periods, Scope, ScopeLimits,
    Snapshot, Usd, Who,
};
use crate::error::OpError;

/// Takes the admission lock, then reads the clock. In that order, a writer that waited on the
/// lock (behind a monthly-reset, say) decides at the instant it really writes, so it cannot
/// file usage in a month that closed while it waited; and on PostgreSQL the clock is the
/// database server's, the same for every host.
pub async fn lock_and_read_clock<S: Store>(s: &mut S, clock: &Clock) -> Result<Clock> {
    s.lock_admission().await?;
    if clock.pinned {
        return Ok(*clock);
    }
    let db_now = s.server_now().await?;
    Ok(clock.synced(db_now, chrono::Utc::now()))
}

/// A month's usage rows: for a closed month, its archived rows with any usage that arrived
/// after (rows the existing backend wrote since), so it reads as its true total.
#[derive(Debug, Clone, Default)]
pub struct MonthUsage {
    pub rows: Vec<MonthRow>,
    pub closed: Option<ClosedMonth>,
}

impl MonthUsage {
    /// Used and held tokens of one AI type, or of all (None); sums saturate.
    pub fn counter(&self, ai_type: Option<&str>) -> Counter {
        let who = Who {
            ai_type: ai_type.unwrap_or_default(),
            user_id: None,
        };
        match ai_type {
            Some(_) => self.scope_counter(&Scope::AiType, who),
            None => self.scope_counter(&Scope::Global, who),
        }
    }

    /// Used and held tokens of one scope, for a decision about `who`; sums saturate. A user's
    /// month is not in these rows (it is counted in the user's own), so it reads as zero here.
    pub fn scope_counter(&self, scope: &Scope, who: Who<'_>) -> Counter {
        if *scope == Scope::User {
            return Counter::default();
        }
        let counted = || {
            self.rows.iter().filter(move |r| {
                scope.counts(
                    who,
                    Who {
                        ai_type: &r.ai_type,
                        user_id: None,
                    },
                )
            })
        };
        Counter {
            used: saturating_sum(counted().map(|r| r.total_tokens)),
            reserved: saturating_sum(counted().map(|r| r.reserved_tokens)),
        }
    }

    /// The priced cost of one scope's month in these rows (other programs add to them too).
    pub fn scope_cost(&self, scope: &Scope, who: Who<'_>) -> Usd {
        if *scope == Scope::User {
            return Usd::ZERO;
        }
        Usd::sum(
            self.rows
                .iter()
                .filter(|r| {
                    scope.counts(
                        who,
                        Who {
                            ai_type: &r.ai_type,
                            user_id: None,
                        },
                    )
                })
                .map(|r| r.cost),
        )
    }

    pub fn warnings(&self) -> Vec<String> {
        self.rows.iter().flat_map(|r| r.warnings.clone()).collect()
    }
}

pub async fn month_usage<S: Store>(s: &mut S, month: &str) -> Result<MonthUsage> {
    let closed = s.closed_month(month).await?;
    month_usage_given(s, month, closed).await
}

/// `month_usage` when the caller has already read whether the month is closed.
async fn month_usage_given<S: Store>(
    s: &mut S,
    month: &str,
    closed: Option<ClosedMonth>,
) -> Result<MonthUsage> {
    let mut rows = s.month_rows(month).await?;
    if closed.is_some() {
        let archived = s.archive_rows(None, Some(month)).await?;
        rows = super::merge_archived(rows, archived);
    }
    Ok(MonthUsage { rows, closed })
}

/// Every counter a decision reads: the month's from its rows (tolerant of odd values other
/// programs wrote, and of a closed month's archive), the rest from `Store::snapshot`.
pub async fn snapshot<S: Store>(
    s: &mut S,
    who: Who<'_>,
    periods: &Periods,
    now: DateTime<Utc>,
    caps: InFlightCaps,
) -> Result<Snapshot> {
    let usage = month_usage(s, &periods.month).await?;
    snapshot_with(s, who, periods, now, caps, &usage).await
}

/// `snapshot` with the month's rows already read.
async fn snapshot_with<S: Store>(
    s: &mut S,
    who: Who<'_>,
    periods: &Periods,
    now: DateTime<Utc>,
    caps: InFlightCaps,
    usage: &MonthUsage,
) -> Result<Snapshot> {
    let mut snap = s.snapshot(who, periods, now, caps).await?;
    for scope in [Scope::AiType, Scope::Global] {
        let u = snap.usage_mut(&scope);
        u.month = usage.scope_counter(&scope, who);
        // the window's month row counts tokenctl's requests (unpriced ones at their charge);
        // the month rows also what another program added: the larger is the one to trust
        u.month_cost.used = u.month_cost.used.max(usage.scope_cost(&scope, who));
    }
    snap.month_closed = usage.closed.is_some();
    snap.warnings = usage.warnings();
    Ok(snap)
}

/// The limits a request is decided by: its AI type's, the total's and, when it names a user,
/// the user's.
#[derive(Debug, Clone)]
pub struct LimitsInForce {
    pub ai_type: Limits,
    pub global: GlobalLimits,
    pub user: Option<ScopeLimits>,
}

impl LimitsInForce {
    /// Each scope's limits, in the order a decision checks them.
    pub fn scopes(&self) -> Vec<(Scope, ScopeLimits)> {
        let mut out = vec![(Scope::AiType, ScopeLimits::from(&self.ai_type))];
        if let Some(user) = &self.user {
            out.push((Scope::User, user.clone()));
        }
        out.push((Scope::Global, self.global.clone()));
        out
    }

    pub fn caps(&self) -> InFlightCaps {
        InFlightCaps {
            ai_type: self.ai_type.max_concurrent,
            global: self.global.max_concurrent,
        }
    }
}

/// The limits in force for one AI type and for the total.
pub async fn limits_for<S: Store>(s: &mut S, ai_type: &str) -> Result<(Limits, GlobalLimits)> {
    let l = limits_for_request(
        s,
        Who {
            ai_type,
            user_id: None,
        },
    )
    .await?;
    Ok((l.ai_type, l.global))
}

/// The limits in force for a request of `who`.
pub async fn limits_for_request<S: Store>(s: &mut S, who: Who<'_>) -> Result<LimitsInForce> {
    let rows = s.limit_rows(LimitFilter::For(who)).await?;
    let own = rows.row(&LimitScope::AiType(who.ai_type.to_string()));
    Ok(LimitsInForce {
        ai_type: Limits::resolve(&rows.default, own),
        global: GlobalLimits::resolve(&rows.global, &rows.default),
        user: who.user_id.map(|u| rows.user_limits(u)),
    })
}

/// Holds past their TTL stop counting, exactly once: the state change and the give-back
/// happen in the same transaction, under the admission lock.
pub async fn expire_stale_holds<S: Store>(s: &mut S, now: DateTime<Utc>) -> Result<usize> {
    let expired = s.expire_holds(now).await?;
    // given back per AI type, user and period, not per hold: thousands expiring at once (a
    // backend that died with its requests in flight) cost a few statements, not thousands
    let mut groups: Vec<(Hold, i64, Usd)> = Vec::new();
    for hold in &expired {
        let same = |(g, ..): &&mut (Hold, i64, Usd)| {
            g.ai_type == hold.ai_type
                && g.user_id == hold.user_id
                && g.month == hold.month
                && g.day == hold.day
                && g.hour == hold.hour
        };
        match groups.iter_mut().find(same) {
            Some((_, sum, cost)) => {
                *sum = sum.saturating_add(hold.estimated_tokens);
                *cost = cost.saturating_add(hold.estimated_cost);
            }
            None => groups.push((hold.clone(), hold.estimated_tokens, hold.estimated_cost)),
        }
    }
    let mut monthly: Vec<(String, i64)> = Vec::new();
    for (hold, sum, cost) in &groups {
        let limit = match monthly.iter().find(|(a, _)| *a == hold.ai_type) {
            Some((_, limit)) => *limit,
            None => {
                let (limits, _) = limits_for(s, &hold.ai_type).await?;
                monthly.push((hold.ai_type.clone(), limits.monthly));
                limits.monthly
            }
        };
        s.add_reserved(hold, -sum, -cost.nanos(), limit, now)
            .await?;
    }
    Ok(expired.len())
}

/// Snapshot minus holds that have expired but were not swept yet (for read-only decisions).
pub fn without_stale(
    mut snap: Snapshot,
    who: Who<'_>,
    periods: &Periods,
    stale: &[Hold],
) -> Snapshot {
    for h in stale {
        for (scope, usage) in &mut snap.scopes {
            if !scope.counts(who, h.who()) {
                continue;
            }
            let windows = [
                (&h.month, &periods.month, &mut usage.month),
                (&h.day, &periods.day, &mut usage.day),
                (&h.hour, &periods.hour, &mut usage.hour),
            ];
            for (held_in, now_in, counter) in windows {
                if held_in == now_in {
                    counter.reserved = (counter.reserved - h.estimated_tokens).max(0);
                }
            }
            let dollars = [
                (&h.month, &periods.month, &mut usage.month_cost),
                (&h.day, &periods.day, &mut usage.day_cost),
            ];
            for (held_in, now_in, counter) in dollars {
                if held_in == now_in {
                    counter.reserved = counter
                        .reserved
                        .saturating_sub(h.estimated_cost)
                        .max(Usd::ZERO);
                }
            }
        }
    }
    snap
}

/// What a request may cost at most, as `reserve` holds it against USD limits.
pub fn price_bound(prices: &PriceTable, ask: &ReserveAsk, periods: &Periods) -> ReservationPrice {
    prices.reservation_bound(
        ask.model.as_deref(),
        ask.prompt_tokens,
        ask.estimated,
        periods.date(),
    )
}

/// The decision for a request, without writing anything.
pub async fn check<S: Store>(s: &mut S, ask: &ReserveAsk, clock: &Clock) -> Result<Decision> {
    let who = ask.who();
    let limits = limits_for_request(s, who).await?;
    let periods = clock.periods();
    let snap = snapshot(s, who, &periods, clock.now, limits.caps()).await?;
    let stale = s.stale_holds(clock.now).await?;
    let snap = without_stale(snap, who, &periods, &stale);
    let prices = PriceTable::new(s.price_rows().await?);
    let bound = price_bound(&prices, ask, &periods);
    Ok(decide_priced(ask, &limits, &snap, &periods, clock, &bound))
}

/// The decision for `ask` at the price bound `bound`.
fn decide_priced(
    ask: &ReserveAsk,
    limits: &LimitsInForce,
    snap: &Snapshot,
    periods: &Periods,
    clock: &Clock,
    bound: &ReservationPrice,
) -> Decision {
    let asked = Asked {
        ai_type: &ask.ai_type,
        user_id: ask.user_id.as_deref(),
        tokens: ask.estimated,
        cost: bound.cost,
    };
    let mut d = decide_in(&asked, &limits.scopes(), snap, periods, clock.now);
    d.cost_basis = Some(bound.basis.clone());
    d
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Reserved {
    #[serde(flatten)]
    pub decision: Decision,
    pub reservation_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// One reservation asked for: `estimated` tokens of `ai_type` (for `user_id`, of `model`),
/// held for `ttl` when allowed. `prompt_tokens`, when known, is the part of the estimate that
/// is prompt: it prices the bound (see `PriceTable::reservation_bound`).
#[derive(Debug, Clone, Default)]
pub struct ReserveAsk {
    pub ai_type: String,
    pub user_id: Option<String>,
    pub model: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub estimated: i64,
    pub ttl: Duration,
}

impl ReserveAsk {
    pub fn who(&self) -> Who<'_> {
        Who {
            ai_type: &self.ai_type,
            user_id: self.user_id.as_deref(),
        }
    }
}

/// Decides and, when allowed, holds `estimated` tokens against every limit, in one step.
pub async fn reserve<S: Store>(s: &mut S, ask: &ReserveAsk, clock: &Clock) -> Result<Reserved> {
    let mut decided = reserve_batch(s, std::slice::from_ref(ask), clock).await?;
    Ok(decided.remove(0))
}

/// Decides `asks` in their order, as one at a time would, under one admission lock: the
/// counters are read once (per AI type), each ask is decided against them by the pure rules
/// and, when allowed, counted in them before the next is decided; then every hold and counter
/// is written with a few set-based statements. One transaction and one commit for the lot is
/// what lets `serve` admit more per second than one row can be updated one by one.
pub async fn reserve_batch<S: Store>(
    s: &mut S,
    asks: &[ReserveAsk],
    clock: &Clock,
) -> Result<Vec<Reserved>> {
    let clock = &lock_and_read_clock(s, clock).await?;
    expire_stale_holds(s, clock.now).await?;
    reserve_locked(s, asks, clock).await
}

/// One request of an `admission_batch`, by its place in `records` or `asks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchItem {
    Record(usize),
    Reserve(usize),
}

/// What a batch decided: per record and per ask, its answer, or None when its caller had
/// stopped waiting by the time its turn came (it was left undone).
pub type BatchAnswers = (Vec<Option<Result<Recorded>>>, Vec<Option<Reserved>>);

/// What `serve` decides in one transaction: the usage of finished requests (settles and
/// records) and reservations, under one admission lock and one commit. The records go first,
/// each in a savepoint of its own, so one refused (a request id another request used, say)
/// leaves the others; then the reservations are decided against counters that include them.
/// `waiting` is asked about each request when its turn comes, after the lock is held: one
/// whose caller has gone (its deadline passed while the batch waited for the lock) is left
/// undone, as a request cut off before its commit leaves nothing.
pub async fn admission_batch<S: Store>(
    s: &mut S,
    records: &[RecordInput],
    asks: &[ReserveAsk],
    clock: &Clock,
    waiting: &(dyn Fn(BatchItem) -> bool + Sync),
) -> Result<BatchAnswers> {
    let clock = &lock_and_read_clock(s, clock).await?;
    expire_stale_holds(s, clock.now).await?;
    let mut recorded = Vec::with_capacity(records.len());
    for (i, input) in records.iter().enumerate() {
        if !waiting(BatchItem::Record(i)) {
            recorded.push(None);
            continue;
        }
        s.savepoint().await?;
        match record_locked(s, input, clock).await {
            Ok(r) => {
                s.release_savepoint().await?;
                recorded.push(Some(Ok(r)));
            }
            Err(e) => {
                s.rollback_to_savepoint().await?;
                recorded.push(Some(Err(e)));
            }
        }
    }
    let wanted: Vec<usize> = (0..asks.len())
        .filter(|&i| waiting(BatchItem::Reserve(i)))
        .collect();
    let mut reserved = vec![None; asks.len()];
    if !wanted.is_empty() {
        let chosen: Vec<ReserveAsk> = wanted.iter().map(|&i| asks[i].clone()).collect();
        let decided = reserve_locked(s, &chosen, clock).await?;
        for (i, r) in wanted.into_iter().zip(decided) {
            reserved[i] = Some(r);
        }
    }
    Ok((recorded, reserved))
}

/// `reserve_batch` once the admission lock is held and stale holds are swept.
async fn reserve_locked<S: Store>(
    s: &mut S,
    asks: &[ReserveAsk],
    clock: &Clock,
) -> Result<Vec<Reserved>> {
    let periods = clock.periods();
    let usage = month_usage(s, &periods.month).await?;
    let prices = PriceTable::new(s.price_rows().await?);
    // per (AI type, user) in the batch: its limits and its counters (the total's inside each)
    let mut seen: Vec<(ReserveAsk, LimitsInForce, Snapshot)> = Vec::new();
    for ask in asks {
        if seen.iter().any(|(a, ..)| a.who() == ask.who()) {
            continue;
        }
        let limits = limits_for_request(s, ask.who()).await?;
        let snap = snapshot_with(s, ask.who(), &periods, clock.now, limits.caps(), &usage).await?;
        seen.push((ask.clone(), limits, snap));
    }
    let mut decided = Vec::with_capacity(asks.len());
    let mut holds: Vec<(Hold, DateTime<Utc>)> = Vec::new();
    for ask in asks {
        let at = seen
            .iter()
            .position(|(a, ..)| a.who() == ask.who())
            .expect("every AI type and user was read");
        let (_, limits, snap) = &seen[at];
        let bound = price_bound(&prices, ask, &periods);
        let decision = decide_priced(ask, limits, snap, &periods, clock, &bound);
        if !decision.allowed {
            decided.push(Reserved {
                decision,
                reservation_id: None,
                expires_at: None,
            });
            continue;
        }
        let expires_at = clock.now + ask.ttl;
        let global_cap = limits.global.max_concurrent;
        // the hold counts for its AI type, its user, and the total, as every other request
        // of the batch sees them
        for (other, limits, snap) in &mut seen {
            for scope in Scope::CHECKED {
                if scope.counts(other.who(), ask.who()) {
                    let cap = match scope {
                        Scope::AiType => limits.ai_type.max_concurrent,
                        Scope::User => None,
                        Scope::Global => global_cap,
                    };
                    snap.count_hold(
                        &scope,
                        ask.estimated,
                        bound.cost,
                        clock.now,
                        expires_at,
                        cap,
                    );
                }
            }
        }
        let hold = Hold {
            id: format!("rsv_{}", uuid::Uuid::new_v4().simple()),
            ai_type: ask.ai_type.clone(),
            user_id: ask.user_id.clone(),
            model: ask.model.clone(),
            estimated_tokens: ask.estimated,
            estimated_cost: bound.cost,
            month: periods.month.clone(),
            day: periods.day.clone(),
            hour: periods.hour.clone(),
        };
        decided.push(Reserved {
            decision,
            reservation_id: Some(hold.id.clone()),
            expires_at: Some(expires_at),
        });
        holds.push((hold, expires_at));
    }
    if holds.is_empty() {
        return Ok(decided);
    }
    s.insert_holds(&holds, clock.now).await?;
    // the counters in a few statements: per (AI type, user), then starts per AI type
    let mut groups: Vec<(&Hold, i64, Usd, i64)> = Vec::new();
    for (h, _) in &holds {
        match groups.iter_mut().find(|(g, ..)| g.who() == h.who()) {
            Some((_, tokens, cost, _)) => {
                *tokens = tokens.saturating_add(h.estimated_tokens);
                *cost = cost.saturating_add(h.estimated_cost);
            }
            None => groups.push((h, h.estimated_tokens, h.estimated_cost, 0)),
        }
    }
    for (first, tokens, cost, _) in &groups {
        let monthly = seen
            .iter()
            .find(|(a, ..)| a.ai_type == first.ai_type)
            .map(|(_, l, _)| l.ai_type.monthly)
            .unwrap_or_default();
        s.add_reserved(first, *tokens, cost.nanos(), monthly, clock.now)
            .await?;
    }
    let mut starts: Vec<(&str, i64)> = Vec::new();
    for (h, _) in &holds {
        match starts.iter_mut().find(|(a, _)| *a == h.ai_type) {
            Some((_, n)) => *n += 1,
            None => starts.push((&h.ai_type, 1)),
        }
    }
    for (ai_type, n) in starts {
        s.count_start(ai_type, n, &periods, clock.now).await?;
    }
    Ok(decided)
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Released {
    pub reservation_id: String,
    pub ai_type: String,
    pub estimated_tokens: i64,
    /// true when this call gave the tokens back; false when the hold had already ended
    pub released: bool,
    /// the reservation's state now
    pub state: HoldState,
    pub message: String,
}

pub async fn release<S: Store>(s: &mut S, id: &str, clock: &Clock) -> Result<Released> {
    let clock = &lock_and_read_clock(s, clock).await?;
    expire_stale_holds(s, clock.now).await?;
    let r = s
        .reservation(id)
        .await?
        .ok_or_else(|| OpError::not_found(format!("no reservation with id '{id}'")))?;
    let released = r.state == HoldState::Held;
    let message = match r.state {
        HoldState::Held => {
            let (limits, _) = limits_for(s, &r.hold.ai_type).await?;
            s.end_reservation(id, HoldState::Released, clock.now)
                .await?;
            s.add_reserved(
                &r.hold,
                -r.hold.estimated_tokens,
                -r.hold.estimated_cost.nanos(),
                limits.monthly,
                clock.now,
            )
            .await?;
            format!(
                "released {} tokens held for {}",
                thousands(r.hold.estimated_tokens),
                r.hold.ai_type
            )
        }
        HoldState::Released => "already released: nothing to give back".to_string(),
        HoldState::Expired => "already expired: its tokens were given back then".to_string(),
        HoldState::Settled => "already settled by a record: its real usage counts".to_string(),
    };
    Ok(Released {
        reservation_id: id.to_string(),
        ai_type: r.hold.ai_type,
        estimated_tokens: r.hold.estimated_tokens,
        released,
        state: if released {
            HoldState::Released
        } else {
            r.state
        },
        message,
    })
}

#[derive(Debug, Clone, Default)]
pub struct RecordInput {
    pub ai_type: String,
    pub tokens_in: i64,
    pub tokens_out: i64,
    /// prompt tokens read from the provider's cache, and written to it, besides `tokens_in`
    /// (Anthropic's convention; for OpenAI, pass its cached tokens here and the rest of the
    /// prompt as tokens_in). Priced at their own rates; token limits count in + out.
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub model: Option<String>,
    pub request_id: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub request_type: Option<String>,
    pub duration_ms: Option<i64>,
    pub failed: bool,
    pub error: Option<String>,
    pub reservation: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Recorded {
    pub ai_type: String,
    pub month: String,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub total_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    /// the exact cost; null when the model has no price (unknown, never a silent $0)
    pub cost_usd: Option<Usd>,
    /// what an unpriced request is charged against USD limits: the dearest price known (null
    /// when priced)
    pub unpriced_charge_usd: Option<Usd>,
    /// the month's total for this AI type after this request
    pub month_total_tokens: i64,
    pub monthly_limit: i64,
    pub usage_percentage: f64,
    pub level: Level,
    /// true when this request id (or reservation) was recorded before: nothing changed
    pub duplicate: bool,
    pub model: Option<String>,
    pub user_id: Option<String>,
    /// false when the model has no price: `cost_usd` is null and totals say `cost_complete: false`
    pub priced: bool,
    pub reservation_id: Option<String>,
    /// what the settled reservation was in before: held, expired or released
    pub reservation_was: Option<HoldState>,
    /// false when --reservation named no reservation (the usage still counts); null without one
    pub reservation_found: Option<bool>,
    pub success: bool,
    /// true when the month was closed by monthly-reset: the usage was added to its archive row
    pub month_closed: bool,
    /// odd values found in rows another program wrote, and how they were read
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Records one finished request in one transaction: log row, month counters, windows, and
/// the settling of its reservation. Idempotent by request id and by reservation.
pub async fn record<S: Store>(s: &mut S, input: &RecordInput, clock: &Clock) -> Result<Recorded> {
    let clock = &lock_and_read_clock(s, clock).await?;
    expire_stale_holds(s, clock.now).await?;
    record_locked(s, input, clock).await
}

/// `record` once the admission lock is held and stale holds are swept.
async fn record_locked<S: Store>(
    s: &mut S,
    input: &RecordInput,
    clock: &Clock,
) -> Result<Recorded> {
    let reservation = match &input.reservation {
        Some(id) => {
            // An unknown id (removed with its archived month by monthly-reset, or mistyped):
            // the tokens were still used, so they count, without settling anything.
            let r = s.reservation(id).await?;
            if let Some(r) = &r {
                if r.hold.ai_type != input.ai_type {
                    return Err(OpError::conflict(format!(
                        "reservation '{id}' belongs to ai_type '{}', not '{}'",
                        r.hold.ai_type, input.ai_type
                    ))
                    .into());
                }
            }
            r
        }
        None => None,
    };
    let reservation_found = input.reservation.as_ref().map(|_| reservation.is_some());
    let (limits, _) = limits_for(s, &input.ai_type).await?;
    let periods = clock.periods();
    let prices = PriceTable::new(s.price_rows().await?);
    let tokens = TokenCounts {
        input: input.tokens_in,
        output: input.tokens_out,
        cache_read: input.cache_read_tokens,
        cache_write: input.cache_write_tokens,
    };
    let price = input
        .model
        .as_deref()
        .and_then(|m| prices.lookup(m, periods.date()));
    let cost = price.map(|p| p.cost(&tokens));
    // unknown is not free: against USD limits it counts at the dearest rates known
    let unpriced_charge = match cost {
        Some(_) => None,
        None => Some(prices.dearest(periods.date()).cost(&tokens)),
    };
    // A settled reservation was recorded before: a retried settle changes nothing, even
    // when the first settle's log row has since been pruned.
    if let Some(r) = &reservation {
        if r.state == HoldState::Settled {
            let logged = s
                .find_log(None, Some(&r.hold.id))
                .await?
                .unwrap_or(LoggedRequest {
                    reservation_id: Some(r.hold.id.clone()),
                    ai_type: input.ai_type.clone(),
                    month: periods.month.clone(),
                    tokens_in: input.tokens_in,
                    tokens_out: input.tokens_out,
                    cost,
                });
            return duplicate(s, logged, &limits, input, reservation_found).await;
        }
    }
    // the user a settle is for: the record's, else the one the reservation was made for
    let user_id = input
        .user_id
        .clone()
        .or_else(|| reservation.as_ref().and_then(|r| r.hold.user_id.clone()));
    let entry = LogEntry {
        ai_type: input.ai_type.clone(),
        model: input.model.clone(),
        tokens_in: input.tokens_in,
        tokens_out: input.tokens_out,
        cache_read_tokens: input.cache_read_tokens,
        cache_write_tokens: input.cache_write_tokens,
        cost,
        request_id: input.request_id.clone(),
        user_id: user_id.clone(),
        session_id: input.session_id.clone(),
        request_type: input.request_type.clone(),
        processing_time_ms: input.duration_ms,
        success: !input.failed,
        error_message: input.error.clone(),
        created_at: clock.now,
        month: periods.month.clone(),
        reservation_id: input.reservation.clone(),
    };
    if !s.insert_log(&entry).await? {
        let first = s
            .find_log(input.request_id.as_deref(), input.reservation.as_deref())
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!("the request was logged before but its log row cannot be found")
            })?;
        if input.reservation.is_some() && first.reservation_id != input.reservation {
            // the request id belongs to another request: settling this reservation as its
            // duplicate would lose this request's usage
            return Err(OpError::conflict(format!(
                "request id '{}' was already recorded for another request; nothing recorded",
                input.request_id.as_deref().unwrap_or_default()
            ))
            .into());
        }
        return duplicate(s, first, &limits, input, reservation_found).await;
    }
    let closed = s.closed_month(&periods.month).await?;
    if let Some(r) = &reservation {
        if r.state == HoldState::Held {
            s.add_reserved(
                &r.hold,
                -r.hold.estimated_tokens,
                -r.hold.estimated_cost.nanos(),
                limits.monthly,
                clock.now,
            )
            .await?;
        }
        s.end_reservation(&r.hold.id, HoldState::Settled, clock.now)
            .await?;
    } else if closed.is_none() {
        // a request that ran without a reservation starts (and counts for rate limits) now;
        // a reserved one was counted when it was admitted
        s.count_start(&input.ai_type, 1, &periods, clock.now)
            .await?;
    }
    let delta = UsageDelta {
        ai_type: &input.ai_type,
        user_id: user_id.as_deref(),
        model: input.model.as_deref(),
        periods: &periods,
        tokens_in: input.tokens_in,
        tokens_out: input.tokens_out,
        cache_read_tokens: input.cache_read_tokens,
        cache_write_tokens: input.cache_write_tokens,
        cost,
        unpriced_charge: unpriced_charge.unwrap_or_default(),
        monthly_limit: limits.monthly,
        at: clock.now,
    };
    s.add_to_rollup(&delta).await?;
    s.add_user_usage(&delta).await?;
    if closed.is_some() {
        // Recorded late, in a month monthly-reset has closed (this clock is behind, or the
        // request waited): the tokens were spent, so they are added to that month's archived
        // figure; the month is never started again from zero. Its day and hour windows are
        // gone with the archive, so they are not counted there.
        s.archive_row(&late_usage_row(&delta), ArchiveReason::Monthly, clock.now)
            .await?;
    } else {
        s.add_usage(&delta).await?;
    }
    let usage = month_usage_given(s, &periods.month, closed.clone()).await?;
    let month_total = usage.counter(Some(&input.ai_type)).used;
    // a closed month is measured against the limit it was archived with
    let monthly_limit = match &closed {
        Some(_) => usage
            .rows
            .iter()
            .find(|r| r.ai_type == input.ai_type)
            .and_then(|r| r.monthly_limit)
            .unwrap_or(limits.monthly),
        None => limits.monthly,
    };
    let level = Level::of(month_total, monthly_limit);
    let pct = percentage(month_total, monthly_limit);
    if closed.is_none() {
        s.set_month_level(&input.ai_type, &periods.month, pct, level.row_status())
            .await?;
    }
    Ok(Recorded {
        ai_type: input.ai_type.clone(),
        month: periods.month,
        tokens_in: input.tokens_in,
        tokens_out: input.tokens_out,
        total_tokens: input.tokens_in.saturating_add(input.tokens_out),
        cache_read_tokens: input.cache_read_tokens,
        cache_write_tokens: input.cache_write_tokens,
        cost_usd: cost,
        unpriced_charge_usd: unpriced_charge,
        month_total_tokens: month_total,
        monthly_limit,
        usage_percentage: pct,
        level,
        duplicate: false,
        model: input.model.clone(),
        user_id,
        priced: cost.is_some(),
        reservation_id: input.reservation.clone(),
        reservation_was: reservation.map(|r| r.state),
        reservation_found,
        success: !input.failed,
        month_closed: closed.is_some(),
        warnings: usage.warnings(),
    })
}

/// One late request as a row to add to its closed month's archived figure.
fn late_usage_row(d: &UsageDelta<'_>) -> MonthRow {
    MonthRow {
        ai_type: d.ai_type.to_string(),
        month: d.periods.month.clone(),
        monthly_limit: Some(d.monthly_limit),
        tokens_in: d.tokens_in,
        tokens_out: d.tokens_out,
        total_tokens: d.tokens_in.saturating_add(d.tokens_out),
        request_count: 1,
        status: Level::Ok.row_status().to_string(),
        last_request_at: Some(d.at),
        cost: d.cost.unwrap_or_default(),
        unpriced_requests: i64::from(d.cost.is_none()),
        ..MonthRow::default()
    }
}

/// What a repeated record reports: the first record's numbers, and nothing changed.
async fn duplicate<S: Store>(
    s: &mut S,
    first: LoggedRequest,
    limits: &Limits,
    input: &RecordInput,
    reservation_found: Option<bool>,
) -> Result<Recorded> {
    let usage = month_usage(s, &first.month).await?;
    let month_total = usage.counter(Some(&first.ai_type)).used;
    let mut warnings = usage.warnings();
    if (first.ai_type.as_str(), first.tokens_in, first.tokens_out)
        != (input.ai_type.as_str(), input.tokens_in, input.tokens_out)
    {
        // a reused id, not a retry: say so, or the second request's usage vanishes unseen
        warnings.push(format!(
            "{} was recorded before with other numbers (ai_type {}, {} in, {} out); this call's \
             (ai_type {}, {} in, {} out) were not recorded: use a new request id for a new request",
            match (&input.request_id, &input.reservation) {
                (Some(id), _) => format!("request id '{id}'"),
                (None, Some(id)) => format!("reservation '{id}'"),
                (None, None) => "this request".to_string(),
            },
            first.ai_type,
            thousands(first.tokens_in),
            thousands(first.tokens_out),
            input.ai_type,
            thousands(input.tokens_in),
            thousands(input.tokens_out)
        ));
    }
    Ok(Recorded {
        ai_type: first.ai_type,
        month: first.month,
        tokens_in: first.tokens_in,
        tokens_out: first.tokens_out,
        total_tokens: first.tokens_in.saturating_add(first.tokens_out),
        cache_read_tokens: input.cache_read_tokens,
        cache_write_tokens: input.cache_write_tokens,
        cost_usd: first.cost,
        unpriced_charge_usd: None,
        month_total_tokens: month_total,
        monthly_limit: limits.monthly,
        usage_percentage: percentage(month_total, limits.monthly),
        level: Level::of(month_total, limits.monthly),
        duplicate: true,
        model: input.model.clone(),
        user_id: input.user_id.clone(),
        priced: first.cost.is_some(),
        reservation_id: input.reservation.clone(),
        reservation_was: None,
        reservation_found,
        success: !input.failed,
        month_closed: usage.closed.is_some(),
        warnings,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct MonthSummary {
    pub month_year: String,
    pub ai_types: usize,
    pub total_tokens: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MonthlyReset {
    /// the current month, which stays
    pub month: String,
    pub dry_run: bool,
    pub archived: Vec<super::ArchivedRow>,
    pub archived_count: usize,
    pub archived_months: Vec<MonthSummary>,
    pub initialized_count: u64,
}

/// Archives every month before the current one and starts the current one, in the caller's
/// transaction: all of it commits together or not at all.
pub async fn monthly_reset<S: Store>(
    s: &mut S,
    clock: &Clock,
    dry_run: bool,
) -> Result<MonthlyReset> {
    let clock = &lock_and_read_clock(s, clock).await?;
    let month = clock.periods().month;
    if let Some(closed) = s.closed_month(&month).await? {
        // this clock is behind a monthly-reset that already ran: starting its month again
        // would reopen a closed month
        return Err(anyhow::anyhow!(
            "{month} was already closed by a monthly-reset at {} (through {}): this clock ({}) is behind; nothing done",
            closed.closed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            closed.month_year,
            clock.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    // before archiving: AI types known only from past months still get a fresh row
    let initialized_count = s.init_month(&month, clock.now).await?;
    let taken = s.take_months_before(&month).await?;
    for row in &taken {
        s.archive_row(row, ArchiveReason::Monthly, clock.now)
            .await?;
    }
    let (_, global) = limits_for(s, "").await?;
    let mut closing: Vec<String> = taken.iter().map(|r| r.month.clone()).collect();
    closing.push(previous_month(&month));
    closing.sort();
    closing.dedup();
    s.close_months(&closing, global.monthly, clock.now).await?;
    let mut archived: Vec<ArchivedRow> = taken
        .into_iter()
        .map(|r| ArchivedRow {
            ai_type: r.ai_type,
            month_year: r.month,
            total_tokens: r.total_tokens,
        })
        .collect();
    archived.sort_by(|a, b| (&a.month_year, &a.ai_type).cmp(&(&b.month_year, &b.ai_type)));
    let mut archived_months: Vec<MonthSummary> = Vec::new();
    for row in &archived {
        match archived_months.last_mut() {
            Some(m) if m.month_year == row.month_year => {
                m.ai_types += 1;
                m.total_tokens = m.total_tokens.saturating_add(row.total_tokens);
            }
            _ => archived_months.push(MonthSummary {
                month_year: row.month_year.clone(),
                ai_types: 1,
                total_tokens: row.total_tokens,
            }),
        }
    }
    Ok(MonthlyReset {
        month,
        dry_run,
        archived_count: archived.len(),
        archived,
        archived_months,
        initialized_count,
    })
}

/// 'YYYY-MM' of the month before `month` ('YYYY-MM').
fn previous_month(month: &str) -> String {
    let (y, m) = month.split_once('-').unwrap_or((month, "01"));
    let (y, m): (i32, u32) = (y.parse().unwrap_or(0), m.parse().unwrap_or(1));
    if m <= 1 {
        format!("{:04}-12", y - 1)
    } else {
        format!("{y:04}-{:02}", m - 1)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ResetEntry {
    pub ai_type: String,
    pub total_tokens: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reset {
    pub month: String,
    pub dry_run: bool,
    pub reset: Vec<ResetEntry>,
    pub archived_count: usize,
}

pub async fn reset<S: Store>(
    s: &mut S,
    ai_type: Option<&str>,
    clock: &Clock,
    dry_run: bool,
) -> Result<Reset> {
    let clock = &lock_and_read_clock(s, clock).await?;
    expire_stale_holds(s, clock.now).await?;
    let month = clock.periods().month;
    if s.closed_month(&month).await?.is_some() {
        return Err(anyhow::anyhow!(
            "{month} was already closed by monthly-reset: this clock ({}) is behind; nothing reset",
            clock.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    s.lock_month_rows(&month, ai_type).await?;
    let rows: Vec<MonthRow> = s
        .month_rows(&month)
        .await?
        .into_iter()
        .filter(|r| ai_type.is_none_or(|a| r.ai_type == a))
        .filter(|r| r.total_tokens != 0 || r.request_count != 0 || r.reserved_tokens != 0)
        .collect();
    for row in &rows {
        s.archive_row(row, ArchiveReason::Manual, clock.now).await?;
    }
    // a user's counters are not cleared (their spending stands), but holds that reset ends
    // are given back to them as to everyone, so none stays counted for a request never made
    for hold in s.held_in_month(&month, ai_type).await? {
        if hold.user_id.is_some() {
            let (limits, _) = limits_for(s, &hold.ai_type).await?;
            s.add_reserved(
                &hold,
                -hold.estimated_tokens,
                -hold.estimated_cost.nanos(),
                limits.monthly,
                clock.now,
            )
            .await?;
        }
    }
    s.clear_month(&month, ai_type, clock.now).await?;
    Ok(Reset {
        month,
        dry_run,
        archived_count: rows.len(),
        reset: rows
            .into_iter()
            .map(|r| ResetEntry {
                ai_type: r.ai_type,
                total_tokens: r.total_tokens,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_months() {
        assert_eq!(previous_month("2026-12"), "2026-11");
        assert_eq!(previous_month("2027-01"), "2026-12");
    }

    #[test]
    fn counters_saturate_and_filter_by_ai_type() {
        let row = |ai: &str, total: i64, reserved: i64| MonthRow {
            ai_type: ai.into(),
            total_tokens: total,
            reserved_tokens: reserved,
            ..MonthRow::default()
        };
        let usage = MonthUsage {
            rows: vec![
                row("a", i64::MAX - 5, 0),
                row("b", i64::MAX - 5, 3),
                row("c", 10, 4),
            ],
            closed: None,
        };
        assert_eq!(usage.counter(None).used, i64::MAX);
        assert_eq!(
            usage.counter(Some("c")),
            Counter {
                used: 10,
                reserved: 4
            }
        );
        assert_eq!(usage.counter(None).reserved, 7);
    }
}
