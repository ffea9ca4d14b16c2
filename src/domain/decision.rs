//! Whether a request of `estimated_tokens` may go ahead, and if not, the first reason in the
//! spec's order with the numbers involved. Each check is tried on every scope (the AI type's
//! limits, then the total's) before the next check: the first denial in the spec's order wins,
//! and between scopes, the first scope.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::level::{percentage, Level, EMERGENCY_PERCENT};
use super::money::Usd;
use super::number::thousands;
use super::pricing::PriceBasis;
pub use super::scope::Scope;
use super::usage::ScopeUsage;
use super::{pacing, GlobalLimits, Limits, Periods, ScopeLimits, Snapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Ok,
    /// the clock is in a month `monthly-reset` has closed (tokenctl's own, before the spec's)
    MonthClosed,
    EmergencyShutdown,
    RequestLimitExceeded,
    MonthlyLimitExceeded,
    GlobalLimitExceeded,
    DailyLimitExceeded,
    HourlyLimitExceeded,
    RpmLimitExceeded,
    RpdLimitExceeded,
    CooldownActive,
    ConcurrencyLimitExceeded,
    PacingLimitExceeded,
    MonthlyCostLimitExceeded,
    DailyCostLimitExceeded,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::MonthClosed => "month_closed",
            Reason::EmergencyShutdown => "emergency_shutdown",
            Reason::RequestLimitExceeded => "request_limit_exceeded",
            Reason::MonthlyLimitExceeded => "monthly_limit_exceeded",
            Reason::GlobalLimitExceeded => "global_limit_exceeded",
            Reason::DailyLimitExceeded => "daily_limit_exceeded",
            Reason::HourlyLimitExceeded => "hourly_limit_exceeded",
            Reason::RpmLimitExceeded => "rpm_limit_exceeded",
            Reason::RpdLimitExceeded => "rpd_limit_exceeded",
            Reason::CooldownActive => "cooldown_active",
            Reason::ConcurrencyLimitExceeded => "concurrency_limit_exceeded",
            Reason::PacingLimitExceeded => "pacing_limit_exceeded",
            Reason::MonthlyCostLimitExceeded => "monthly_cost_limit_exceeded",
            Reason::DailyCostLimitExceeded => "daily_cost_limit_exceeded",
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
    pub message: String,
    pub ai_type: String,
    /// the user the request is made for (null: none named)
    pub user_id: Option<String>,
    pub estimated_tokens: i64,
    /// what the request may cost at most, as held against USD limits (see `reserve --help`)
    pub estimated_cost_usd: Usd,
    pub retry_after: Option<DateTime<Utc>>,
    /// whose limit decided: null when allowed
    pub scope: Option<Scope>,
    /// the value and the current usage of the limit that decided (null when allowed): tokens,
    /// requests or seconds; for a USD limit, dollars in `cost_limit_usd` and `cost_usage_usd`
    pub limit: Option<i64>,
    pub usage: Option<i64>,
    pub cost_limit_usd: Option<Usd>,
    pub cost_usage_usd: Option<Usd>,
    /// what `estimated_cost_usd` was priced on: the model's price, or the dearest known
    pub cost_basis: Option<PriceBasis>,
    pub level: Level,
    pub global_level: Level,
    pub request_limit: i64,
    pub monthly_limit: i64,
    /// this AI type's month: used plus held by open reservations
    pub current_usage: i64,
    pub reserved_tokens: i64,
    pub usage_percentage: f64,
    pub global_limit: i64,
    pub global_usage: i64,
    pub daily_limit: i64,
    pub daily_usage: i64,
    pub hourly_limit: i64,
    pub hourly_usage: i64,
    pub global_daily_limit: i64,
    pub global_daily_usage: i64,
    pub global_hourly_limit: i64,
    pub global_hourly_usage: i64,
    pub month: String,
    /// odd values found in rows another program wrote, and how they were read
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A token limit as a client sees it: how many it allows, how many are left, and when the
/// window starts afresh (what the `x-ratelimit-*-tokens` headers carry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenWindow {
    pub limit: i64,
    pub remaining: i64,
    pub resets_at: DateTime<Utc>,
}

impl Decision {
    /// Of the token limits this decision was checked against (the AI type's and the total's
    /// month, day and hour), the one with the least room left; of equals, the one that
    /// reopens last (until then, that is all the room there is).
    pub fn tightest_window(&self, periods: &Periods) -> TokenWindow {
        [
            (self.monthly_limit, self.current_usage, periods.month_end),
            (self.global_limit, self.global_usage, periods.month_end),
            (self.daily_limit, self.daily_usage, periods.day_end),
            (
                self.global_daily_limit,
                self.global_daily_usage,
                periods.day_end,
            ),
            (self.hourly_limit, self.hourly_usage, periods.hour_end),
            (
                self.global_hourly_limit,
                self.global_hourly_usage,
                periods.hour_end,
            ),
        ]
        .into_iter()
        .map(|(limit, used, resets_at)| TokenWindow {
            limit,
            remaining: limit.saturating_sub(used).max(0),
            resets_at,
        })
        .min_by_key(|w| (w.remaining, std::cmp::Reverse(w.resets_at)))
        .expect("six windows")
    }
}

struct Denial {
    reason: Reason,
    scope: Scope,
    limit: i64,
    usage: i64,
    /// (limit, usage) in dollars, for a USD limit
    cost: Option<(Usd, Usd)>,
    message: String,
    retry_after: Option<DateTime<Utc>>,
}

/// What is asked: `tokens` (and at most `cost`) for an AI type, and for a user when it names one.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub ai_type: &'a str,
    pub user_id: Option<&'a str>,
    pub tokens: i64,
    pub cost: Usd,
}

/// The decision for a request of `ai_type`, under its own limits and the total's.
pub fn decide(
    ai_type: &str,
    estimated_tokens: i64,
    limits: &Limits,
    global: &GlobalLimits,
    snap: &Snapshot,
    periods: &Periods,
    now: DateTime<Utc>,
) -> Decision {
    let scopes = [
        (Scope::AiType, ScopeLimits::from(limits)),
        (Scope::Global, global.clone()),
    ];
    let asked = Asked {
        ai_type,
        user_id: None,
        tokens: estimated_tokens,
        cost: Usd::ZERO,
    };
    decide_in(&asked, &scopes, snap, periods, now)
}

/// `decide` under the limits of any scopes, checked in the order given. The document's flat
/// fields (`monthly_limit`, `global_daily_usage`, …) are the AI type's and the total's.
pub fn decide_in(
    asked: &Asked<'_>,
    scopes: &[(Scope, ScopeLimits)],
    snap: &Snapshot,
    periods: &Periods,
    now: DateTime<Utc>,
) -> Decision {
    let limits_of = |scope: &Scope| {
        scopes
            .iter()
            .find(|(s, _)| s == scope)
            .map(|(_, l)| l.clone())
            .unwrap_or_default()
    };
    let (mine, total) = (limits_of(&Scope::AiType), limits_of(&Scope::Global));
    let (my, all) = (snap.usage(&Scope::AiType), snap.usage(&Scope::Global));
    let (ai_type, estimated_tokens) = (asked.ai_type, asked.tokens);
    let ask = Ask {
        ai_type,
        user_id: asked.user_id,
        est: estimated_tokens,
        cost: asked.cost,
        periods,
        now,
    };
    let (allowed, reason, message, retry_after, scope, limit, usage, cost) =
        match first_denial(&ask, scopes, snap, &total) {
            None => (
                true,
                Reason::Ok,
                format!(
                    "allowed: {ai_type} may use {} tokens ({} of {} used this month)",
                    thousands(estimated_tokens),
                    thousands(my.month.committed()),
                    thousands(mine.monthly)
                ),
                None,
                None,
                None,
                None,
                None,
            ),
            Some(d) => (
                false,
                d.reason,
                d.message,
                d.retry_after,
                Some(d.scope),
                d.cost.is_none().then_some(d.limit),
                d.cost.is_none().then_some(d.usage),
                d.cost,
            ),
        };
    Decision {
        allowed,
        reason,
        message,
        ai_type: ai_type.to_string(),
        user_id: asked.user_id.map(str::to_string),
        estimated_tokens,
        estimated_cost_usd: asked.cost,
        retry_after,
        scope,
        limit,
        usage,
        cost_basis: None,
        cost_limit_usd: cost.map(|(limit, _)| limit),
        cost_usage_usd: cost.map(|(_, usage)| usage),
        level: Level::of(my.month.used, mine.monthly),
        global_level: Level::of(all.month.used, total.monthly),
        request_limit: mine.per_request.unwrap_or_default(),
        monthly_limit: mine.monthly,
        current_usage: my.month.committed(),
        reserved_tokens: my.month.reserved,
        usage_percentage: percentage(my.month.used, mine.monthly),
        global_limit: total.monthly,
        global_usage: all.month.committed(),
        daily_limit: mine.daily,
        daily_usage: my.day.committed(),
        hourly_limit: mine.hourly,
        hourly_usage: my.hour.committed(),
        global_daily_limit: total.daily,
        global_daily_usage: all.day.committed(),
        global_hourly_limit: total.hourly,
        global_hourly_usage: all.hour.committed(),
        month: periods.month.clone(),
        warnings: snap.warnings.clone(),
    }
}

/// The request being decided.
struct Ask<'a> {
    ai_type: &'a str,
    user_id: Option<&'a str>,
    est: i64,
    cost: Usd,
    periods: &'a Periods,
    now: DateTime<Utc>,
}

/// The spec's checks, in its order.
#[derive(Debug, Clone, Copy)]
enum Check {
    Emergency,
    RequestSize,
    Monthly,
    Daily,
    Hourly,
    Rpm,
    Rpd,
    Cooldown,
    Concurrency,
    Pacing,
    MonthlyCost,
    DailyCost,
}

const CHECKS: [Check; 12] = [
    Check::Emergency,
    Check::RequestSize,
    Check::Monthly,
    Check::Daily,
    Check::Hourly,
    Check::Rpm,
    Check::Rpd,
    Check::Cooldown,
    Check::Concurrency,
    Check::Pacing,
    Check::MonthlyCost,
    Check::DailyCost,
];

/// The first denial: a closed month first (tokenctl's own, before the spec's), then each
/// check in the spec's order, on every scope in turn.
fn first_denial(
    ask: &Ask,
    scopes: &[(Scope, ScopeLimits)],
    snap: &Snapshot,
    total: &ScopeLimits,
) -> Option<Denial> {
    if snap.month_closed {
        // the month's usage is archived: admitting more would spend a budget already closed
        let used = snap.usage(&Scope::Global).month.used;
        return Some(Denial {
            reason: Reason::MonthClosed,
            scope: Scope::Global,
            limit: total.monthly,
            usage: used,
            cost: None,
            message: format!(
                "{} is closed: monthly-reset archived it ({} tokens used by all AI types), so nothing more is admitted in it; this clock ({}) is behind the month the budget is in",
                ask.periods.month,
                thousands(used),
                ask.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            retry_after: Some(ask.periods.month_end),
        });
    }
    CHECKS.iter().find_map(|check| {
        scopes
            .iter()
            .find_map(|(scope, limits)| check.deny(ask, scope, limits, &snap.usage(scope)))
    })
}

/// When the window ending at `end` frees enough room: at its end, if the request fits an
/// empty window at all; never (None) if it is larger than the limit itself.
fn retry_at(end: DateTime<Utc>, estimated: i64, limit: i64) -> Option<DateTime<Utc>> {
    (estimated <= limit).then_some(end)
}

/// How denials name a scope. A new scope says here how its messages read.
impl Scope {
    /// How an emergency denial begins, and who used the month.
    /// How an emergency denial begins, and who used the month (None: the scope has no
    /// emergency level; a user's limits are quotas, not a shared budget's thresholds).
    fn emergency(&self, ai_type: &str) -> Option<(String, &'static str)> {
        match self {
            Scope::AiType => Some((format!("Emergency shutdown for {ai_type}"), "")),
            Scope::User => None,
            Scope::Global => Some(("Global emergency shutdown".into(), " by all AI types")),
        }
    }

    /// What follows a request-size denial.
    fn request_note(&self, user_id: Option<&str>) -> String {
        match self {
            Scope::AiType => String::new(),
            Scope::User => format!(" (user {})", user_id.unwrap_or_default()),
            Scope::Global => " (global ceiling)".to_string(),
        }
    }

    /// A window's limit by name ("Daily"; "Global daily"), and whose it is after the name.
    fn window(&self, name: &str, ai_type: &str, user_id: Option<&str>) -> (String, String) {
        match self {
            Scope::AiType => (name.to_string(), format!(" for {ai_type}")),
            Scope::User => (
                name.to_string(),
                format!(" for user {}", user_id.unwrap_or_default()),
            ),
            Scope::Global => (format!("Global {}", name.to_lowercase()), String::new()),
        }
    }

    /// Whose a rate limit is, after its title.
    fn whose(&self, ai_type: &str, user_id: Option<&str>) -> String {
        match self {
            Scope::AiType => format!(" for {ai_type}"),
            Scope::User => format!(" for user {}", user_id.unwrap_or_default()),
            Scope::Global => " for all AI types together".to_string(),
        }
    }
}

impl Check {
    /// This check on one scope: the denial, if its limit is reached.
    fn deny(self, ask: &Ask, scope: &Scope, l: &ScopeLimits, u: &ScopeUsage) -> Option<Denial> {
        let (ai_type, est, periods) = (ask.ai_type, ask.est, ask.periods);
        let user_id = ask.user_id;
        let denial = |reason, limit, usage, message, retry_after| Denial {
            reason,
            scope: scope.clone(),
            limit,
            usage,
            cost: None,
            message,
            retry_after,
        };
        match self {
            Check::Emergency => {
                let (title, by) = scope.emergency(ai_type)?;
                if Level::of(u.month.used, l.monthly) != Level::Emergency {
                    return None;
                }
                Some(denial(
                    Reason::EmergencyShutdown,
                    l.monthly,
                    u.month.used,
                    format!(
                        "{title}: {} of {} tokens used this month{by} ({:.2}%), at or above the {EMERGENCY_PERCENT}% emergency threshold",
                        thousands(u.month.used),
                        thousands(l.monthly),
                        percentage(u.month.used, l.monthly)
                    ),
                    Some(periods.month_end),
                ))
            }
            Check::RequestSize => {
                let limit = l.per_request.filter(|c| est > *c)?;
                Some(denial(
                    Reason::RequestLimitExceeded,
                    limit,
                    est,
                    format!(
                        "Request token limit exceeded for {ai_type}: estimated_tokens={} request_limit={}{}",
                        thousands(est),
                        thousands(limit),
                        scope.request_note(user_id)
                    ),
                    None,
                ))
            }
            Check::Monthly | Check::Daily | Check::Hourly => {
                let (reason, name, limit, counter, end) = match self {
                    Check::Monthly => (
                        match scope {
                            Scope::AiType | Scope::User => Reason::MonthlyLimitExceeded,
                            Scope::Global => Reason::GlobalLimitExceeded,
                        },
                        "Monthly",
                        l.monthly,
                        u.month,
                        periods.month_end,
                    ),
                    Check::Daily => (
                        Reason::DailyLimitExceeded,
                        "Daily",
                        l.daily,
                        u.day,
                        periods.day_end,
                    ),
                    _ => (
                        Reason::HourlyLimitExceeded,
                        "Hourly",
                        l.hourly,
                        u.hour,
                        periods.hour_end,
                    ),
                };
                let usage = counter.committed();
                if usage.saturating_add(est) <= limit {
                    return None;
                }
                let (name, whose) = scope.window(name, ai_type, user_id);
                Some(denial(
                    reason,
                    limit,
                    usage,
                    format!(
                        "{name} token limit exceeded{whose}: current_usage={} + estimated_tokens={} > limit={}",
                        thousands(usage),
                        thousands(est),
                        thousands(limit)
                    ),
                    retry_at(end, est, limit),
                ))
            }
            Check::Rpm | Check::Rpd | Check::Concurrency => {
                // (reason, limit, count, (title, noun, key), retry)
                let (reason, limit, n, (title, noun, key), retry) = match self {
                    Check::Rpm => (
                        Reason::RpmLimitExceeded,
                        l.rpm,
                        u.rate.minute_requests,
                        (
                            "Requests per minute exceeded",
                            "requests started this minute",
                            "rpm_limit",
                        ),
                        Some(periods.minute_end),
                    ),
                    Check::Rpd => (
                        Reason::RpdLimitExceeded,
                        l.rpd,
                        u.rate.day_requests,
                        (
                            "Requests per day exceeded",
                            "requests started today",
                            "rpd_limit",
                        ),
                        Some(periods.day_end),
                    ),
                    _ => (
                        Reason::ConcurrencyLimitExceeded,
                        l.max_concurrent,
                        u.rate.in_flight,
                        ("Too many requests in flight", "in flight", "max_concurrent"),
                        u.rate.slot_free_at,
                    ),
                };
                let limit = limit?;
                (n + 1 > limit).then(|| {
                    denial(
                        reason,
                        limit,
                        n,
                        format!(
                            "{title}{}: {} {noun}, {key}={}",
                            scope.whose(ai_type, user_id),
                            thousands(n),
                            thousands(limit)
                        ),
                        retry,
                    )
                })
            }
            Check::Cooldown => {
                let cooldown = l.cooldown_seconds;
                let last = u.rate.last_start_at.filter(|_| cooldown > 0)?;
                let free = last + chrono::Duration::seconds(cooldown);
                if free <= ask.now {
                    return None;
                }
                let ago = (ask.now - last).num_seconds().max(0);
                Some(denial(
                    Reason::CooldownActive,
                    cooldown,
                    ago,
                    format!(
                        "Cooldown active{}: last request started {} s ago, cooldown={} s",
                        scope.whose(ai_type, user_id),
                        thousands(ago),
                        thousands(cooldown)
                    ),
                    Some(free),
                ))
            }
            Check::Pacing => {
                if !l.pacing {
                    return None;
                }
                let allowed = pacing::allowed_at(l.monthly, periods, ask.now);
                let committed = u.month.committed();
                let need = committed.saturating_add(est);
                if need <= allowed {
                    return None;
                }
                Some(denial(
                    Reason::PacingLimitExceeded,
                    allowed,
                    committed,
                    format!(
                        "Pacing limit exceeded{}: current_usage={} + estimated_tokens={} > paced allowance={} at this point of the month",
                        scope.whose(ai_type, user_id),
                        thousands(committed),
                        thousands(est),
                        thousands(allowed)
                    ),
                    Some(
                        pacing::fits_at(l.monthly, periods, need).unwrap_or(periods.month_end),
                    ),
                ))
            }
            Check::MonthlyCost | Check::DailyCost => {
                let (reason, name, limit, counter, end) = match self {
                    Check::MonthlyCost => (
                        Reason::MonthlyCostLimitExceeded,
                        "Monthly",
                        l.monthly_cost,
                        u.month_cost,
                        periods.month_end,
                    ),
                    _ => (
                        Reason::DailyCostLimitExceeded,
                        "Daily",
                        l.daily_cost,
                        u.day_cost,
                        periods.day_end,
                    ),
                };
                let limit = limit?;
                let spent = counter.committed();
                if spent.saturating_add(ask.cost) <= limit {
                    return None;
                }
                let (name, whose) = scope.window(name, ai_type, user_id);
                Some(Denial {
                    reason,
                    scope: scope.clone(),
                    limit: limit.nanos(),
                    usage: spent.nanos(),
                    cost: Some((limit, spent)),
                    message: format!(
                        "{name} cost limit exceeded{whose}: spent {} + held {} + this request's at most {} > limit {}",
                        counter.used,
                        counter.reserved,
                        ask.cost,
                        limit
                    ),
                    retry_after: (ask.cost <= limit).then_some(end),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::clock::periods_at;
    use super::super::limits::LimitRow;
    use super::super::Counter;
    use super::*;

    fn setup() -> (Limits, GlobalLimits, Periods) {
        let row = LimitRow {
            monthly: Some(140_000),
            per_request: Some(1_000),
            ..Default::default()
        };
        let at = DateTime::parse_from_rfc3339("2026-11-23T10:15:00Z")
            .unwrap()
            .with_timezone(&Utc);
        (
            Limits::resolve(&row, None),
            GlobalLimits::resolve(&row, &row),
            periods_at(at, chrono_tz::Tz::UTC),
        )
    }

    fn used(n: i64) -> Counter {
        Counter {
            used: n,
            reserved: 0,
        }
    }

    #[test]
    fn the_1073_token_request_is_denied_with_both_numbers() {
        let (l, g, p) = setup();
        let d = decide(
            "imperium",
            1073,
            &l,
            &g,
            &Snapshot::default(),
            &p,
            p.month_start,
        );
        assert!(!d.allowed);
        assert_eq!(d.reason, Reason::RequestLimitExceeded);
        assert!(
            d.message.contains("estimated_tokens=1,073"),
            "{}",
            d.message
        );
        assert!(d.message.contains("request_limit=1,000"), "{}", d.message);
        assert_eq!(d.retry_after, None);
    }

    #[test]
    fn the_tightest_window_is_the_one_with_least_room() {
        let (l, g, p) = setup();
        let mut d = decide(
            "imperium",
            10,
            &l,
            &g,
            &Snapshot::default(),
            &p,
            p.month_start,
        );
        // room everywhere: the hour (smallest window) is tightest, resetting at the hour's end
        let w = d.tightest_window(&p);
        assert_eq!(w.limit, d.hourly_limit);
        assert_eq!(w.resets_at, p.hour_end);
        // the day and the hour with the same room left: that room lasts until the day ends
        d.daily_limit = d.hourly_limit;
        let w = d.tightest_window(&p);
        assert_eq!((w.limit, w.resets_at), (d.hourly_limit, p.day_end));
        d.daily_limit = d.hourly_limit * 10;
        // the month nearly spent: it is tighter than any day or hour, until the month ends
        d.current_usage = d.monthly_limit - 5;
        let w = d.tightest_window(&p);
        assert_eq!(
            (w.limit, w.remaining, w.resets_at),
            (d.monthly_limit, 5, p.month_end)
        );
        // over the limit (usage another program recorded): no room, never negative
        d.current_usage = d.monthly_limit + 50;
        assert_eq!(d.tightest_window(&p).remaining, 0);
    }

    #[test]
    fn a_request_at_the_limit_is_allowed() {
        let (l, g, p) = setup();
        let d = decide(
            "imperium",
            1000,
            &l,
            &g,
            &Snapshot::default(),
            &p,
            p.month_start,
        );
        assert!(d.allowed, "{}", d.message);
        assert_eq!(d.reason, Reason::Ok);
    }

    #[test]
    fn emergency_comes_first_and_global_emergency_denies_everyone() {
        let (l, g, p) = setup();
        let mut snap = Snapshot::default();
        snap.usage_mut(&Scope::AiType).month = used(137_200);
        snap.usage_mut(&Scope::Global).month = used(137_200);
        let d = decide("imperium", 5_000, &l, &g, &snap, &p, p.month_start);
        assert_eq!(
            (d.reason, d.scope),
            (Reason::EmergencyShutdown, Some(Scope::AiType))
        );
        assert_eq!(d.retry_after, Some(p.month_end));
        let mut snap = Snapshot::default();
        snap.usage_mut(&Scope::Global).month = used(137_200);
        let d = decide("guardian", 10, &l, &g, &snap, &p, p.month_start);
        assert_eq!(
            (d.reason, d.scope),
            (Reason::EmergencyShutdown, Some(Scope::Global))
        );
    }

    #[test]
    fn reservations_count_against_the_limits() {
        let (l, g, p) = setup();
        let mut snap = Snapshot::default();
        for scope in Scope::CHECKED {
            snap.usage_mut(&scope).month = Counter {
                used: 100_000,
                reserved: 39_500,
            };
        }
        let d = decide("imperium", 600, &l, &g, &snap, &p, p.month_start);
        assert_eq!(d.reason, Reason::MonthlyLimitExceeded);
        assert_eq!(d.current_usage, 139_500);
        assert!(
            d.message
                .contains("current_usage=139,500 + estimated_tokens=600 > limit=140,000"),
            "{}",
            d.message
        );
        assert!(decide("imperium", 500, &l, &g, &snap, &p, p.month_start).allowed);
    }

    #[test]
    fn order_monthly_then_global_then_daily_then_hourly() {
        let (l, g, p) = setup();
        let mut snap = Snapshot::default();
        snap.usage_mut(&Scope::Global).month = Counter {
            used: 100_000,
            reserved: 39_900,
        };
        snap.usage_mut(&Scope::AiType).day = used(9_800);
        snap.usage_mut(&Scope::AiType).hour = used(1_400);
        assert_eq!(
            decide("a", 200, &l, &g, &snap, &p, p.month_start).reason,
            Reason::GlobalLimitExceeded
        );
        snap.usage_mut(&Scope::Global).month = used(0);
        let d = decide("a", 200, &l, &g, &snap, &p, p.month_start);
        assert_eq!(
            (d.reason, d.retry_after),
            (Reason::DailyLimitExceeded, Some(p.day_end))
        );
        snap.usage_mut(&Scope::AiType).day = used(0);
        let d = decide("a", 200, &l, &g, &snap, &p, p.month_start);
        assert_eq!(
            (d.reason, d.retry_after),
            (Reason::HourlyLimitExceeded, Some(p.hour_end))
        );
        assert_eq!(
            d.retry_after.unwrap().to_rfc3339(),
            "2026-11-23T11:00:00+00:00"
        );
        snap.usage_mut(&Scope::AiType).hour = used(0);
        snap.usage_mut(&Scope::Global).hour = used(1_300);
        let d = decide("a", 200, &l, &g, &snap, &p, p.month_start);
        assert_eq!(
            (d.reason, d.scope),
            (Reason::HourlyLimitExceeded, Some(Scope::Global))
        );
    }

    #[test]
    fn each_check_runs_on_every_scope_before_the_next_check() {
        let (l, g, p) = setup();
        let mut snap = Snapshot::default();
        // the AI type's hour is full, and so is the total's day: daily comes before hourly;
        // with both days full, the first scope's
        snap.usage_mut(&Scope::AiType).hour = used(1_400);
        snap.usage_mut(&Scope::Global).day = used(9_800);
        let cases = [
            (0, Scope::Global, "Global daily token limit exceeded: current_usage=9,800 + estimated_tokens=200 > limit=9,800"),
            (9_800, Scope::AiType, "Daily token limit exceeded for a: current_usage=9,800 + estimated_tokens=200 > limit=9,800"),
        ];
        for (own_day, scope, message) in cases {
            snap.usage_mut(&Scope::AiType).day = used(own_day);
            let d = decide("a", 200, &l, &g, &snap, &p, p.month_start);
            assert_eq!(
                (d.reason, d.scope, d.limit, d.message.as_str()),
                (
                    Reason::DailyLimitExceeded,
                    Some(scope),
                    Some(9_800),
                    message
                )
            );
        }
    }

    #[test]
    fn scopes_are_checked_in_the_order_given_with_their_own_counters() {
        let (l, g, p) = setup();
        let mut snap = Snapshot::default();
        snap.usage_mut(&Scope::AiType).rate.minute_requests = 5;
        snap.usage_mut(&Scope::Global).rate.minute_requests = 5;
        let rpm = |n| ScopeLimits {
            rpm: Some(n),
            ..ScopeLimits::from(&l)
        };
        let total_first = [
            (
                Scope::Global,
                ScopeLimits {
                    rpm: Some(5),
                    ..g.clone()
                },
            ),
            (Scope::AiType, rpm(5)),
        ];
        let asked = Asked {
            ai_type: "a",
            user_id: None,
            tokens: 10,
            cost: Usd::ZERO,
        };
        let d = decide_in(&asked, &total_first, &snap, &p, p.month_start);
        assert_eq!(
            (d.reason, d.scope),
            (Reason::RpmLimitExceeded, Some(Scope::Global))
        );
        assert_eq!(
            d.message,
            "Requests per minute exceeded for all AI types together: 5 requests started this minute, rpm_limit=5"
        );
        // a scope's room is its own: only the one whose limit is reached denies
        let d = decide_in(
            &asked,
            &[(Scope::AiType, rpm(6)), (Scope::Global, g.clone())],
            &snap,
            &p,
            p.month_start,
        );
        assert!(d.allowed, "{}", d.message);
        let d = decide_in(&asked, &[(Scope::AiType, rpm(5))], &snap, &p, p.month_start);
        assert_eq!(
            (d.reason, d.scope, d.retry_after),
            (
                Reason::RpmLimitExceeded,
                Some(Scope::AiType),
                Some(p.minute_end)
            )
        );
    }

    #[test]
    fn a_user_over_their_daily_dollars_is_denied_while_the_ai_type_has_room() {
        let (l, g, p) = setup();
        let alice = ScopeLimits::for_user(
            None,
            Some(&LimitRow {
                daily_cost: Some(Usd::dollars(5)),
                ..LimitRow::default()
            }),
        );
        let mut snap = Snapshot::default();
        snap.usage_mut(&Scope::User).day_cost = super::super::usage::CostCounter {
            used: Usd::parse("4.98").unwrap(),
            reserved: Usd::ZERO,
        };
        let scopes = [
            (Scope::AiType, ScopeLimits::from(&l)),
            (Scope::User, alice),
            (Scope::Global, g.clone()),
        ];
        let ask = |cost: &str| Asked {
            ai_type: "imperium",
            user_id: Some("alice"),
            tokens: 100,
            cost: Usd::parse(cost).unwrap(),
        };
        let d = decide_in(&ask("0.03"), &scopes, &snap, &p, p.month_start);
        assert_eq!(
            (d.reason, d.scope.clone(), d.retry_after),
            (
                Reason::DailyCostLimitExceeded,
                Some(Scope::User),
                Some(p.day_end)
            )
        );
        assert_eq!(d.cost_limit_usd, Some(Usd::dollars(5)));
        assert_eq!(d.limit, None, "a USD limit's figures are in dollars");
        assert_eq!(
            d.message,
            "Daily cost limit exceeded for user alice: spent $4.98 + held $0.00 + this request's at most $0.03 > limit $5.00"
        );
        assert!(decide_in(&ask("0.02"), &scopes, &snap, &p, p.month_start).allowed);
        // the same usage under no user limit: only the AI type's and the total's apply
        let open = [
            (Scope::AiType, ScopeLimits::from(&l)),
            (Scope::User, ScopeLimits::for_user(None, None)),
            (Scope::Global, g),
        ];
        assert!(decide_in(&ask("0.03"), &open, &snap, &p, p.month_start).allowed);
    }

    #[test]
    fn cost_checks_come_after_every_token_check_and_on_every_scope() {
        let (mut l, g, p) = setup();
        l.monthly_cost = Some(Usd::dollars(1));
        let mut snap = Snapshot::default();
        snap.usage_mut(&Scope::AiType).month_cost.used = Usd::dollars(1);
        let asked = Asked {
            ai_type: "a",
            user_id: None,
            tokens: 5_000,
            cost: Usd::from_nanos(1),
        };
        let scopes = [(Scope::AiType, ScopeLimits::from(&l)), (Scope::Global, g)];
        let d = decide_in(&asked, &scopes, &snap, &p, p.month_start);
        assert_eq!(d.reason, Reason::RequestLimitExceeded, "tokens first");
        let d = decide_in(
            &Asked {
                tokens: 10,
                ..asked
            },
            &scopes,
            &snap,
            &p,
            p.month_start,
        );
        assert_eq!(
            (d.reason, d.retry_after),
            (Reason::MonthlyCostLimitExceeded, Some(p.month_end))
        );
        // a request dearer than the whole limit never fits: no retry
        let d = decide_in(
            &Asked {
                tokens: 10,
                cost: Usd::dollars(2),
                ..asked
            },
            &[(Scope::AiType, ScopeLimits::from(&l))],
            &Snapshot::default(),
            &p,
            p.month_start,
        );
        assert_eq!(
            (d.reason, d.retry_after),
            (Reason::MonthlyCostLimitExceeded, None)
        );
    }
}
