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
}
