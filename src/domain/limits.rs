//! Limits as stored (rows that may leave values unset) and as enforced (every value resolved).
//!
//! Resolution for an AI type: its own row, else the default row, else derived from its monthly
//! limit. The global total has a row of its own. Rate limits (rpm, rpd, cooldown, concurrency)
//! use 0 for "off".

use serde::Serialize;

use super::money::Usd;
use super::number::thousands;

/// A token limit a user has not been given: users have none unless `limits set --user` or
/// `--default-user` gives them one.
pub const UNLIMITED: i64 = i64::MAX;

/// Default daily cap as a percentage of the monthly limit: about twice the even daily share
/// (100% / 30 days ≈ 3.3%), so a quiet day can be caught up but the month cannot be spent in
/// fewer than 15 days.
pub const DERIVED_DAILY_PERCENT: i64 = 7;
/// Default hourly cap: 1% of the month (never below the per-request limit, so a full-size
/// request fits in any fresh hour); a day's cap takes at least 7 hours to spend.
pub const DERIVED_HOURLY_PERCENT: i64 = 1;

/// One row of `token_limits`. `None` means "not set here".
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LimitRow {
    pub monthly: Option<i64>,
    pub daily: Option<i64>,
    pub hourly: Option<i64>,
    pub per_request: Option<i64>,
    pub rpm: Option<i64>,
    pub rpd: Option<i64>,
    pub cooldown_seconds: Option<i64>,
    pub max_concurrent: Option<i64>,
    pub pacing: Option<bool>,
    /// USD a day and a month (none by default)
    pub daily_cost: Option<Usd>,
    pub monthly_cost: Option<Usd>,
}

/// Which values `limits unset` puts back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitFields {
    pub monthly: bool,
    pub daily: bool,
    pub hourly: bool,
    pub per_request: bool,
    pub rpm: bool,
    pub rpd: bool,
    pub cooldown_seconds: bool,
    pub max_concurrent: bool,
    pub pacing: bool,
    pub daily_cost: bool,
    pub monthly_cost: bool,
}

impl LimitRow {
    /// The default row as first installed by `migrations/*/0001_init.sql` (the spec's
    /// defaults; daily and hourly derived).
    pub fn builtin_default() -> LimitRow {
        LimitRow {
            monthly: Some(DEFAULT_MONTHLY),
            per_request: Some(DEFAULT_PER_REQUEST),
            rpm: Some(DEFAULT_RPM),
            rpd: Some(DEFAULT_RPD),
            cooldown_seconds: Some(0),
            max_concurrent: Some(0),
            pacing: Some(false),
            ..LimitRow::default()
        }
    }

    /// The global row as first installed by `migrations/*/0001_init.sql`.
    pub fn builtin_global() -> LimitRow {
        LimitRow {
            monthly: Some(DEFAULT_MONTHLY),
            rpm: Some(DEFAULT_RPM),
            rpd: Some(DEFAULT_RPD),
            max_concurrent: Some(DEFAULT_GLOBAL_MAX_CONCURRENT),
            pacing: Some(false),
            ..LimitRow::default()
        }
    }

    /// This row with the chosen values put back to `builtin`'s (None: not set here, so
    /// inherited or derived again).
    pub fn with_reset(&self, f: LimitFields, builtin: &LimitRow) -> LimitRow {
        let pick =
            |reset: bool, ours: Option<i64>, theirs: Option<i64>| if reset { theirs } else { ours };
        LimitRow {
            monthly: pick(f.monthly, self.monthly, builtin.monthly),
            daily: pick(f.daily, self.daily, builtin.daily),
            hourly: pick(f.hourly, self.hourly, builtin.hourly),
            per_request: pick(f.per_request, self.per_request, builtin.per_request),
            rpm: pick(f.rpm, self.rpm, builtin.rpm),
            rpd: pick(f.rpd, self.rpd, builtin.rpd),
            cooldown_seconds: pick(
                f.cooldown_seconds,
                self.cooldown_seconds,
                builtin.cooldown_seconds,
            ),
            max_concurrent: pick(
                f.max_concurrent,
                self.max_concurrent,
                builtin.max_concurrent,
            ),
            pacing: if f.pacing {
                builtin.pacing
            } else {
                self.pacing
            },
            daily_cost: if f.daily_cost {
                builtin.daily_cost
            } else {
                self.daily_cost
            },
            monthly_cost: if f.monthly_cost {
                builtin.monthly_cost
            } else {
                self.monthly_cost
            },
        }
    }

    /// Values of `changes` that are set replace ours.
    pub fn merged(&self, changes: &LimitRow) -> LimitRow {
        LimitRow {
            monthly: changes.monthly.or(self.monthly),
            daily: changes.daily.or(self.daily),
            hourly: changes.hourly.or(self.hourly),
            per_request: changes.per_request.or(self.per_request),
            rpm: changes.rpm.or(self.rpm),
            rpd: changes.rpd.or(self.rpd),
            cooldown_seconds: changes.cooldown_seconds.or(self.cooldown_seconds),
            max_concurrent: changes.max_concurrent.or(self.max_concurrent),
            pacing: changes.pacing.or(self.pacing),
            daily_cost: changes.daily_cost.or(self.daily_cost),
            monthly_cost: changes.monthly_cost.or(self.monthly_cost),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == LimitRow::default()
    }
}

/// The limits enforced on one AI type.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Limits {
    pub monthly: i64,
    pub daily: i64,
    pub hourly: i64,
    pub per_request: i64,
    pub rpm: Option<i64>,
    pub rpd: Option<i64>,
    pub cooldown_seconds: i64,
    pub max_concurrent: Option<i64>,
    pub pacing: bool,
    pub daily_cost: Option<Usd>,
    pub monthly_cost: Option<Usd>,
}

/// The limits of one scope (`domain::Scope`), as a decision checks them: the total's are
/// these (`GlobalLimits`); an AI type's (`Limits`) convert to them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScopeLimits {
    pub monthly: i64,
    pub daily: i64,
    pub hourly: i64,
    /// a ceiling on any single request of the scope (null: none); for the total, whatever the
    /// request's AI type allows
    pub per_request: Option<i64>,
    pub rpm: Option<i64>,
    pub rpd: Option<i64>,
    /// seconds between two requests of the scope (0: off)
    pub cooldown_seconds: i64,
    pub max_concurrent: Option<i64>,
    pub pacing: bool,
    /// USD a day and a month (null: none)
    pub daily_cost: Option<Usd>,
    pub monthly_cost: Option<Usd>,
}

/// The limits enforced on all AI types together.
pub type GlobalLimits = ScopeLimits;

impl From<&Limits> for ScopeLimits {
    fn from(l: &Limits) -> ScopeLimits {
        ScopeLimits {
            monthly: l.monthly,
            daily: l.daily,
            hourly: l.hourly,
            per_request: Some(l.per_request),
            rpm: l.rpm,
            rpd: l.rpd,
            cooldown_seconds: l.cooldown_seconds,
            max_concurrent: l.max_concurrent,
            pacing: l.pacing,
            daily_cost: l.daily_cost,
            monthly_cost: l.monthly_cost,
        }
    }
}

impl ScopeLimits {
    /// A user's limits: their own row over the default user's; what neither sets, the user
    /// does not have. Users have token and USD limits (daily, monthly, per request) only:
    /// rates, cooldown, concurrency and pacing are the AI types' and the total's.
    pub fn for_user(default_user: Option<&LimitRow>, own: Option<&LimitRow>) -> ScopeLimits {
        let row = match (default_user, own) {
            (Some(d), Some(o)) => d.merged(o),
            (Some(r), None) | (None, Some(r)) => r.clone(),
            (None, None) => LimitRow::default(),
        };
        ScopeLimits {
            monthly: row.monthly.unwrap_or(UNLIMITED),
            daily: row.daily.unwrap_or(UNLIMITED),
            hourly: UNLIMITED,
            per_request: row.per_request,
            rpm: None,
            rpd: None,
            cooldown_seconds: 0,
            max_concurrent: None,
            pacing: false,
            daily_cost: row.daily_cost,
            monthly_cost: row.monthly_cost,
        }
    }
}

pub const DEFAULT_MONTHLY: i64 = 140_000;
pub const DEFAULT_PER_REQUEST: i64 = 1_000;
/// 85% of the provider's 50 requests per minute and 4,000 per day (spec)
pub const DEFAULT_RPM: i64 = 42;
pub const DEFAULT_RPD: i64 = 3_400;
/// requests in flight, all AI types together (spec)
pub const DEFAULT_GLOBAL_MAX_CONCURRENT: i64 = 2;

fn off_if_zero(v: Option<i64>) -> Option<i64> {
    v.filter(|n| *n > 0)
}

pub fn derived_daily(monthly: i64) -> i64 {
    ceil_percent(monthly, DERIVED_DAILY_PERCENT)
}

pub fn derived_hourly(monthly: i64, daily: i64, per_request: i64) -> i64 {
    ceil_percent(monthly, DERIVED_HOURLY_PERCENT)
        .max(per_request)
        .min(daily)
}

fn ceil_percent(value: i64, percent: i64) -> i64 {
    ((value as i128 * percent as i128 + 99) / 100) as i64
}

impl Limits {
    pub fn resolve(default: &LimitRow, own: Option<&LimitRow>) -> Limits {
        let row = match own {
            Some(own) => default.merged(own),
            None => default.clone(),
        };
        let monthly = row.monthly.unwrap_or(DEFAULT_MONTHLY);
        let per_request = row.per_request.unwrap_or(DEFAULT_PER_REQUEST);
        let daily = row.daily.unwrap_or_else(|| derived_daily(monthly));
        let hourly = row
            .hourly
            .unwrap_or_else(|| derived_hourly(monthly, daily, per_request));
        Limits {
            monthly,
            daily,
            hourly,
            per_request,
            rpm: off_if_zero(row.rpm),
            rpd: off_if_zero(row.rpd),
            cooldown_seconds: row.cooldown_seconds.unwrap_or(0).max(0),
            max_concurrent: off_if_zero(row.max_concurrent),
            pacing: row.pacing.unwrap_or(false),
            daily_cost: row.daily_cost,
            monthly_cost: row.monthly_cost,
        }
    }

    /// Settings that contradict each other, one sentence each, naming `who`.
    pub fn warnings(&self, who: &str) -> Vec<String> {
        let mut out = Vec::new();
        if self.per_request > self.hourly {
            out.push(format!(
                "{who}: hourly limit {} is below the per-request limit {}: a full-size request can never run",
                thousands(self.hourly),
                thousands(self.per_request)
            ));
        }
        if self.per_request > self.daily {
            out.push(format!(
                "{who}: daily limit {} is below the per-request limit {}",
                thousands(self.daily),
                thousands(self.per_request)
            ));
        }
        if self.per_request > self.monthly {
            out.push(format!(
                "{who}: monthly limit {} is below the per-request limit {}",
                thousands(self.monthly),
                thousands(self.per_request)
            ));
        }
        out.extend(window_warnings(who, self.monthly, self.daily, self.hourly));
        out
    }
}

impl GlobalLimits {
    pub fn resolve(global: &LimitRow, default: &LimitRow) -> GlobalLimits {
        let monthly = global.monthly.unwrap_or(DEFAULT_MONTHLY);
        let per_request = default.per_request.unwrap_or(DEFAULT_PER_REQUEST);
        let daily = global.daily.unwrap_or_else(|| derived_daily(monthly));
        let hourly = global
            .hourly
            .unwrap_or_else(|| derived_hourly(monthly, daily, per_request));
        GlobalLimits {
            monthly,
            daily,
            hourly,
            per_request: global.per_request,
            rpm: off_if_zero(global.rpm),
            rpd: off_if_zero(global.rpd),
            cooldown_seconds: global.cooldown_seconds.unwrap_or(0).max(0),
            max_concurrent: off_if_zero(global.max_concurrent),
            pacing: global.pacing.unwrap_or(false),
            daily_cost: global.daily_cost,
            monthly_cost: global.monthly_cost,
        }
    }

    pub fn warnings(&self, per_request: i64) -> Vec<String> {
        let mut out = Vec::new();
        if per_request > self.hourly {
            out.push(format!(
                "global: hourly limit {} is below the per-request limit {}: a full-size request can never run",
                thousands(self.hourly),
                thousands(per_request)
            ));
        }
        out.extend(window_warnings(
            "global",
            self.monthly,
            self.daily,
            self.hourly,
        ));
        out
    }
}

fn window_warnings(who: &str, monthly: i64, daily: i64, hourly: i64) -> Vec<String> {
    let (monthly_n, daily_n, hourly_n) = (monthly, daily, hourly);
    let (monthly, daily, hourly) = (thousands(monthly), thousands(daily), thousands(hourly));
    let mut out = Vec::new();
    if daily_n > monthly_n {
        out.push(format!(
            "{who}: daily limit {daily} is above the monthly limit {monthly}"
        ));
    }
    if hourly_n > daily_n {
        out.push(format!(
            "{who}: hourly limit {hourly} is above the daily limit {daily}"
        ));
    }
    if (hourly_n as i128) * 24 < daily_n as i128 {
        out.push(format!(
            "{who}: daily limit {daily} can never be reached at {hourly} tokens per hour"
        ));
    }
    if (daily_n as i128) * 28 < monthly_n as i128 {
        out.push(format!(
            "{who}: monthly limit {monthly} cannot be reached in a 28-day month at {daily} tokens per day"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_puts_values_back() {
        let own = LimitRow {
            monthly: Some(500_000),
            daily: Some(12_000),
            ..LimitRow::default()
        };
        let back = own.with_reset(
            LimitFields {
                daily: true,
                ..LimitFields::default()
            },
            &LimitRow::default(),
        );
        assert_eq!((back.monthly, back.daily), (Some(500_000), None));
        let d = Limits::resolve(&LimitRow::builtin_default(), Some(&back));
        assert_eq!(d.daily, 35_000, "derived from the monthly again");
        let g = LimitRow {
            max_concurrent: Some(9),
            ..LimitRow::builtin_global()
        }
        .with_reset(
            LimitFields {
                max_concurrent: true,
                ..LimitFields::default()
            },
            &LimitRow::builtin_global(),
        );
        assert_eq!(g.max_concurrent, Some(2));
    }

    fn seeded_default() -> LimitRow {
        LimitRow {
            monthly: Some(140_000),
            per_request: Some(1_000),
            rpm: Some(42),
            rpd: Some(3_400),
            cooldown_seconds: Some(0),
            pacing: Some(false),
            ..LimitRow::default()
        }
    }

    #[test]
    fn default_profile_is_coherent_and_lets_a_full_request_through_every_hour() {
        let l = Limits::resolve(&seeded_default(), None);
        assert_eq!(
            (l.monthly, l.daily, l.hourly, l.per_request),
            (140_000, 9_800, 1_400, 1_000)
        );
        assert_eq!(l.rpm, Some(42));
        assert_eq!(l.cooldown_seconds, 0);
        assert!(
            l.warnings("default").is_empty(),
            "{:?}",
            l.warnings("default")
        );
    }

    #[test]
    fn overrides_inherit_the_rest_and_rederive_windows() {
        let own = LimitRow {
            monthly: Some(500_000),
            ..LimitRow::default()
        };
        let l = Limits::resolve(&seeded_default(), Some(&own));
        assert_eq!((l.monthly, l.daily, l.hourly), (500_000, 35_000, 5_000));
        assert_eq!(l.per_request, 1_000);
    }

    #[test]
    fn small_monthly_keeps_hourly_at_the_request_limit() {
        let own = LimitRow {
            monthly: Some(20_000),
            ..LimitRow::default()
        };
        let l = Limits::resolve(&seeded_default(), Some(&own));
        assert_eq!((l.daily, l.hourly), (1_400, 1_000));
    }

    #[test]
    fn incoherent_settings_are_named() {
        let own = LimitRow {
            hourly: Some(500),
            daily: Some(200_000),
            ..LimitRow::default()
        };
        let w = Limits::resolve(&seeded_default(), Some(&own)).warnings("imperium");
        assert!(
            w.iter()
                .any(|s| s.contains("hourly limit 500 is below the per-request limit 1,000")),
            "{w:?}"
        );
        assert!(
            w.iter()
                .any(|s| s.contains("daily limit 200,000 is above the monthly limit 140,000")),
            "{w:?}"
        );
    }

    #[test]
    fn zero_turns_rate_limits_off() {
        let own = LimitRow {
            rpm: Some(0),
            max_concurrent: Some(0),
            ..LimitRow::default()
        };
        let l = Limits::resolve(&seeded_default(), Some(&own));
        assert_eq!((l.rpm, l.max_concurrent), (None, None));
    }
}
