use serde::Serialize;

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

/// Every counter an admission decision reads, for one AI type at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub ai_month: Counter,
    pub ai_day: Counter,
    pub ai_hour: Counter,
    pub global_month: Counter,
    pub global_day: Counter,
    pub global_hour: Counter,
    pub ai_rate: Rate,
    pub global_rate: Rate,
    /// the month was closed by monthly-reset: nothing more may be admitted in it
    pub month_closed: bool,
    /// odd values found in rows another program wrote, and how they were read
    pub warnings: Vec<String>,
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
