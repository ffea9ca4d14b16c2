use chrono::{DateTime, Utc};
use serde::Serialize;

use super::money::Usd;
use super::scope::Scope;

/// Tokens counted against one limit in one period: what requests used, plus what open
/// reservations hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counter {
    pub used: i64,
    pub reserved: i64,
}

impl Counter {
    pub fn committed(&self) -> i64 {
        self.used.saturating_add(self.reserved)
    }
}

/// Dollars counted against one USD limit in one period: what requests cost (unpriced ones at
/// the dearest price known, so a cost limit is never met by usage it cannot see), plus what
/// open reservations hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CostCounter {
    pub used: Usd,
    pub reserved: Usd,
}

impl CostCounter {
    pub fn committed(&self) -> Usd {
        self.used.saturating_add(self.reserved)
    }
}

/// The counters of one scope: tokens and dollars in each period, and its requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ScopeUsage {
    pub month: Counter,
    pub day: Counter,
    pub hour: Counter,
    pub month_cost: CostCounter,
    pub day_cost: CostCounter,
    pub rate: Rate,
}

/// Every counter an admission decision reads, for one AI type at one instant: each scope's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// the counters of each scope read (a scope not here has counted nothing yet)
    pub scopes: Vec<(Scope, ScopeUsage)>,
    /// the month was closed by monthly-reset: nothing more may be admitted in it
    pub month_closed: bool,
    /// odd values found in rows another program wrote, and how they were read
    pub warnings: Vec<String>,
    /// per scope with a concurrency limit: when its held reservations expire, earliest first
    /// (as many as the limit plus one), so holds counted in memory move `rate.in_flight` and
    /// `rate.slot_free_at` exactly as re-reading them would
    #[serde(skip)]
    pub held_until: Vec<(Scope, Vec<DateTime<Utc>>)>,
}

impl Snapshot {
    /// The counters of `scope` (all zero when none were read).
    pub fn usage(&self, scope: &Scope) -> ScopeUsage {
        self.scopes
            .iter()
            .find(|(s, _)| s == scope)
            .map(|(_, u)| *u)
            .unwrap_or_default()
    }

    /// Counts a reservation admitted at `now` in `scope`'s counters, as its writes will (the
    /// hold in the month, day and hour; a request started; one more in flight until
    /// `expires_at`, against `cap`). Deciding a batch in memory goes through this between
    /// decisions, so each decision sees the ones before it, as one at a time would.
    #[allow(clippy::too_many_arguments)]
    pub fn count_hold(
        &mut self,
        scope: &Scope,
        estimated: i64,
        estimated_cost: Usd,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        cap: Option<i64>,
    ) {
        let usage = self.usage_mut(scope);
        for counter in [&mut usage.month, &mut usage.day, &mut usage.hour] {
            counter.reserved = counter.reserved.saturating_add(estimated);
        }
        for counter in [&mut usage.month_cost, &mut usage.day_cost] {
            counter.reserved = counter.reserved.saturating_add(estimated_cost);
        }
        let rate = &mut usage.rate;
        rate.minute_requests = rate.minute_requests.saturating_add(1);
        rate.day_requests = rate.day_requests.saturating_add(1);
        rate.last_start_at = Some(rate.last_start_at.map_or(now, |t| t.max(now)));
        let Some(cap) = cap else { return };
        let at = match self.held_until.iter().position(|(s, _)| s == scope) {
            Some(at) => at,
            None => {
                self.held_until.push((scope.clone(), Vec::new()));
                self.held_until.len() - 1
            }
        };
        let expiries = &mut self.held_until[at].1;
        let slot = expiries.partition_point(|t| *t <= expires_at);
        expiries.insert(slot, expires_at);
        expiries.truncate(usize::try_from(cap.saturating_add(1)).unwrap_or(usize::MAX));
        let (n, free_at) = in_flight(expiries, cap);
        let rate = &mut self.usage_mut(scope).rate;
        (rate.in_flight, rate.slot_free_at) = (n, free_at);
    }

    /// The counters of `scope`, to fill in (added, zero, when not there yet).
    pub fn usage_mut(&mut self, scope: &Scope) -> &mut ScopeUsage {
        let at = match self.scopes.iter().position(|(s, _)| s == scope) {
            Some(at) => at,
            None => {
                self.scopes.push((scope.clone(), ScopeUsage::default()));
                self.scopes.len() - 1
            }
        };
        &mut self.scopes[at].1
    }
}

/// Request counts for the rate limits: requests started (admitted by `reserve`, or recorded
/// without one) this minute and today, the last start, and requests in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Rate {
    pub minute_requests: i64,
    pub day_requests: i64,
    pub last_start_at: Option<chrono::DateTime<chrono::Utc>>,
    /// held reservations not yet expired (counted up to the limit plus one)
    pub in_flight: i64,
    /// when enough of them expire for one more to fit under the limit
    pub slot_free_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// (in flight, when a slot frees) from the earliest expiries of held reservations, fetched up
/// to `limit + 1`.
pub fn in_flight(expiries: &[DateTime<Utc>], limit: i64) -> (i64, Option<DateTime<Utc>>) {
    let k = expiries.len() as i64;
    let free_at = if k >= limit && limit >= 0 {
        expiries.get((k - limit) as usize).copied()
    } else {
        None
    };
    (k, free_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_counted_hold_moves_every_counter_a_reservation_writes() {
        let mut snap = Snapshot::default();
        snap.usage_mut(&Scope::AiType).month = Counter {
            used: 100,
            reserved: 50,
        };
        snap.usage_mut(&Scope::AiType).rate.last_start_at = Some(t(5));
        snap.count_hold(&Scope::AiType, 30, Usd::ZERO, t(3), t(600), None);
        let u = snap.usage(&Scope::AiType);
        assert_eq!(
            u.month,
            Counter {
                used: 100,
                reserved: 80
            }
        );
        assert_eq!((u.day.reserved, u.hour.reserved), (30, 30));
        assert_eq!((u.rate.minute_requests, u.rate.day_requests), (1, 1));
        // a clock behind the last start does not move it back
        assert_eq!(u.rate.last_start_at, Some(t(5)));
        // no concurrency limit: nothing is counted in flight
        assert_eq!(u.rate.in_flight, 0);
    }

    #[test]
    fn holds_in_flight_counted_in_memory_match_a_fresh_read() {
        // two held already (expiring at 100 and 300), a limit of 2: full, a slot frees at 100
        let mut snap = Snapshot::default();
        snap.held_until.push((Scope::Global, vec![t(100), t(300)]));
        (
            snap.usage_mut(&Scope::Global).rate.in_flight,
            snap.usage_mut(&Scope::Global).rate.slot_free_at,
        ) = in_flight(&[t(100), t(300)], 2);
        // a third, expiring first: what a fresh read of the earliest three would give
        snap.count_hold(&Scope::Global, 1, Usd::ZERO, t(0), t(50), Some(2));
        let rate = snap.usage(&Scope::Global).rate;
        assert_eq!(
            (rate.in_flight, rate.slot_free_at),
            in_flight(&[t(50), t(100), t(300)], 2)
        );
        assert_eq!((rate.in_flight, rate.slot_free_at), (3, Some(t(100))));
        // a fourth: still read as limit + 1 = 3 (the latest is not fetched), freeing at 100
        snap.count_hold(&Scope::Global, 1, Usd::ZERO, t(0), t(400), Some(2));
        let rate = snap.usage(&Scope::Global).rate;
        assert_eq!((rate.in_flight, rate.slot_free_at), (3, Some(t(100))));
        // a scope without a list yet (nothing was held) starts one
        snap.count_hold(&Scope::AiType, 1, Usd::ZERO, t(0), t(70), Some(1));
        let rate = snap.usage(&Scope::AiType).rate;
        assert_eq!((rate.in_flight, rate.slot_free_at), (1, Some(t(70))));
    }
}
