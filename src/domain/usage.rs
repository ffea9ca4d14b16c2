use serde::Serialize;

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

/// The counters of one scope: tokens in each period, and its requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ScopeUsage {
    pub month: Counter,
    pub day: Counter,
    pub hour: Counter,
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
