//! Whether a request of `estimated_tokens` may go ahead, and if not, the first reason in the
//! spec's order with the numbers involved.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::level::{percentage, Level, EMERGENCY_PERCENT};
use super::number::thousands;
use super::usage::Rate;
use super::{pacing, GlobalLimits, Limits, Periods, Snapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
        }
    }
}

/// Whether the limit that decided was the AI type's own or the total over all AI types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    AiType,
    Global,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
    pub message: String,
    pub ai_type: String,
    pub estimated_tokens: i64,
    pub retry_after: Option<DateTime<Utc>>,
    /// whose limit decided: null when allowed
    pub scope: Option<Scope>,
    /// the value and the current usage of the limit that decided (null when allowed)
    pub limit: Option<i64>,
    pub usage: Option<i64>,
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

struct Denial {
    reason: Reason,
    scope: Scope,
    limit: i64,
    usage: i64,
    message: String,
    retry_after: Option<DateTime<Utc>>,
}

pub fn decide(
    ai_type: &str,
    estimated_tokens: i64,
    limits: &Limits,
    global: &GlobalLimits,
    snap: &Snapshot,
    periods: &Periods,
    now: DateTime<Utc>,
) -> Decision {
    let level = Level::of(snap.ai_month.used, limits.monthly);
    let global_level = Level::of(snap.global_month.used, global.monthly);
    let denial = first_denial(
        ai_type,
        estimated_tokens,
        limits,
        global,
        snap,
        periods,
        now,
        level,
        global_level,
    );
    let (allowed, reason, message, retry_after, scope, limit, usage) = match denial {
        None => (
            true,
            Reason::Ok,
            format!(
                "allowed: {ai_type} may use {} tokens ({} of {} used this month)",
                thousands(estimated_tokens),
                thousands(snap.ai_month.committed()),
                thousands(limits.monthly)
            ),
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
            Some(d.limit),
            Some(d.usage),
        ),
    };
    Decision {
        allowed,
        reason,
        message,
        ai_type: ai_type.to_string(),
        estimated_tokens,
        retry_after,
        scope,
        limit,
        usage,
        level,
        global_level,
        request_limit: limits.per_request,
        monthly_limit: limits.monthly,
        current_usage: snap.ai_month.committed(),
        reserved_tokens: snap.ai_month.reserved,
        usage_percentage: percentage(snap.ai_month.used, limits.monthly),
        global_limit: global.monthly,
        global_usage: snap.global_month.committed(),
        daily_limit: limits.daily,
        daily_usage: snap.ai_day.committed(),
        hourly_limit: limits.hourly,
        hourly_usage: snap.ai_hour.committed(),
        global_daily_limit: global.daily,
        global_daily_usage: snap.global_day.committed(),
        global_hourly_limit: global.hourly,
        global_hourly_usage: snap.global_hour.committed(),
        month: periods.month.clone(),
        warnings: snap.warnings.clone(),
    }
}

/// When the window ending at `end` frees enough room: at its end, if the request fits an
/// empty window at all; never (None) if it is larger than the limit itself.
fn retry_at(end: DateTime<Utc>, estimated: i64, limit: i64) -> Option<DateTime<Utc>> {
    (estimated <= limit).then_some(end)
}

#[allow(clippy::too_many_arguments)]
fn first_denial(
    ai_type: &str,
    est: i64,
    limits: &Limits,
    global: &GlobalLimits,
    snap: &Snapshot,
    periods: &Periods,
    now: DateTime<Utc>,
    level: Level,
    global_level: Level,
) -> Option<Denial> {
    if snap.month_closed {
        // the month's usage is archived: admitting more would spend a budget already closed
        return Some(Denial {
            reason: Reason::MonthClosed,
            scope: Scope::Global,
            limit: global.monthly,
            usage: snap.global_month.used,
            message: format!(
                "{} is closed: monthly-reset archived it ({} tokens used by all AI types), so nothing more is admitted in it; this clock ({}) is behind the month the budget is in",
                periods.month,
                thousands(snap.global_month.used),
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            retry_after: Some(periods.month_end),
        });
    }
    if level == Level::Emergency {
        return Some(Denial {
            reason: Reason::EmergencyShutdown,
            scope: Scope::AiType,
            limit: limits.monthly,
            usage: snap.ai_month.used,
            message: format!(
                "Emergency shutdown for {ai_type}: {} of {} tokens used this month ({:.2}%), at or above the {EMERGENCY_PERCENT}% emergency threshold",
                thousands(snap.ai_month.used),
                thousands(limits.monthly),
                percentage(snap.ai_month.used, limits.monthly)
            ),
            retry_after: Some(periods.month_end),
        });
    }
    if global_level == Level::Emergency {
        return Some(Denial {
            reason: Reason::EmergencyShutdown,
            scope: Scope::Global,
            limit: global.monthly,
            usage: snap.global_month.used,
            message: format!(
                "Global emergency shutdown: {} of {} tokens used this month by all AI types ({:.2}%), at or above the {EMERGENCY_PERCENT}% emergency threshold",
                thousands(snap.global_month.used),
                thousands(global.monthly),
                percentage(snap.global_month.used, global.monthly)
            ),
            retry_after: Some(periods.month_end),
        });
    }
    if est > limits.per_request {
        return Some(Denial {
            reason: Reason::RequestLimitExceeded,
            scope: Scope::AiType,
            limit: limits.per_request,
            usage: est,
            message: format!(
                "Request token limit exceeded for {ai_type}: estimated_tokens={} request_limit={}",
                thousands(est),
                thousands(limits.per_request)
            ),
            retry_after: None,
        });
    }
    if let Some(ceiling) = global.per_request.filter(|c| est > *c) {
        return Some(Denial {
            reason: Reason::RequestLimitExceeded,
            scope: Scope::Global,
            limit: ceiling,
            usage: est,
            message: format!(
                "Request token limit exceeded for {ai_type}: estimated_tokens={} request_limit={} (global ceiling)",
                thousands(est),
                thousands(ceiling)
            ),
            retry_after: None,
        });
    }
    // (reason, whose, name, limit, usage, window end)
    #[allow(clippy::type_complexity)]
    let windows: [(Reason, Scope, &str, i64, i64, DateTime<Utc>); 6] = [
        (
            Reason::MonthlyLimitExceeded,
            Scope::AiType,
            "Monthly",
            limits.monthly,
            snap.ai_month.committed(),
            periods.month_end,
        ),
        (
            Reason::GlobalLimitExceeded,
            Scope::Global,
            "Global monthly",
            global.monthly,
            snap.global_month.committed(),
            periods.month_end,
        ),
        (
            Reason::DailyLimitExceeded,
            Scope::AiType,
            "Daily",
            limits.daily,
            snap.ai_day.committed(),
            periods.day_end,
        ),
        (
            Reason::DailyLimitExceeded,
            Scope::Global,
            "Global daily",
            global.daily,
            snap.global_day.committed(),
            periods.day_end,
        ),
        (
            Reason::HourlyLimitExceeded,
            Scope::AiType,
            "Hourly",
            limits.hourly,
            snap.ai_hour.committed(),
            periods.hour_end,
        ),
        (
            Reason::HourlyLimitExceeded,
            Scope::Global,
            "Global hourly",
            global.hourly,
            snap.global_hour.committed(),
            periods.hour_end,
        ),
    ];
    for (reason, scope, name, limit, usage, end) in windows {
        if usage.saturating_add(est) > limit {
            let whose = match scope {
                Scope::AiType => format!(" for {ai_type}"),
                Scope::Global => String::new(),
            };
            return Some(Denial {
                reason,
                scope,
                limit,
                usage,
                message: format!(
                    "{name} token limit exceeded{whose}: current_usage={} + estimated_tokens={} > limit={}",
                    thousands(usage),
                    thousands(est),
                    thousands(limit)
                ),
                retry_after: retry_at(end, est, limit),
            });
        }
    }
    rate_denial(ai_type, est, limits, global, snap, periods, now)
}

fn whose(scope: Scope, ai_type: &str) -> String {
    match scope {
        Scope::AiType => format!(" for {ai_type}"),
        Scope::Global => " for all AI types together".to_string(),
    }
}

/// Request rates, cooldown, requests in flight and pacing, in the spec's order.
fn rate_denial(
    ai_type: &str,
    est: i64,
    limits: &Limits,
    global: &GlobalLimits,
    snap: &Snapshot,
    periods: &Periods,
    now: DateTime<Utc>,
) -> Option<Denial> {
    // Counted limits share one shape: the AI type's first, then the total's.
    let counted = |reason: Reason,
                   limit_pair: [Option<i64>; 2],
                   count: fn(&Rate) -> i64,
                   what: (&str, &str, &str),
                   retry: &dyn Fn(&Rate) -> Option<DateTime<Utc>>|
     -> Option<Denial> {
        let scopes = [
            (Scope::AiType, &snap.ai_rate),
            (Scope::Global, &snap.global_rate),
        ];
        let (title, noun, key) = what;
        scopes
            .into_iter()
            .zip(limit_pair)
            .find_map(|((scope, rate), limit)| {
                let limit = limit?;
                let n = count(rate);
                (n + 1 > limit).then(|| Denial {
                    reason,
                    scope,
                    limit,
                    usage: n,
                    message: format!(
                        "{title}{}: {} {noun}, {key}={}",
                        whose(scope, ai_type),
                        thousands(n),
                        thousands(limit)
                    ),
                    retry_after: retry(rate),
                })
            })
    };
    if let Some(d) = counted(
        Reason::RpmLimitExceeded,
        [limits.rpm, global.rpm],
        |r| r.minute_requests,
        (
            "Requests per minute exceeded",
            "requests started this minute",
            "rpm_limit",
        ),
        &|_| Some(periods.minute_end),
    ) {
        return Some(d);
    }
    if let Some(d) = counted(
        Reason::RpdLimitExceeded,
        [limits.rpd, global.rpd],
        |r| r.day_requests,
        (
            "Requests per day exceeded",
            "requests started today",
            "rpd_limit",
        ),
        &|_| Some(periods.day_end),
    ) {
        return Some(d);
    }
    let cooldowns = [
        (Scope::AiType, limits.cooldown_seconds, &snap.ai_rate),
        (Scope::Global, global.cooldown_seconds, &snap.global_rate),
    ];
    for (scope, cooldown, rate) in cooldowns {
        let Some(last) = rate.last_start_at.filter(|_| cooldown > 0) else {
            continue;
        };
        let free = last + chrono::Duration::seconds(cooldown);
        if free > now {
            let ago = (now - last).num_seconds().max(0);
            return Some(Denial {
                reason: Reason::CooldownActive,
                scope,
                limit: cooldown,
                usage: ago,
                message: format!(
                    "Cooldown active{}: last request started {} s ago, cooldown={} s",
                    whose(scope, ai_type),
                    thousands(ago),
                    thousands(cooldown)
                ),
                retry_after: Some(free),
            });
        }
    }
    if let Some(d) = counted(
        Reason::ConcurrencyLimitExceeded,
        [limits.max_concurrent, global.max_concurrent],
        |r| r.in_flight,
        ("Too many requests in flight", "in flight", "max_concurrent"),
        &|r| r.slot_free_at,
    ) {
        return Some(d);
    }
    let pacing = [
        (
            Scope::AiType,
            limits.pacing,
            limits.monthly,
            snap.ai_month.committed(),
        ),
        (
            Scope::Global,
            global.pacing,
            global.monthly,
            snap.global_month.committed(),
        ),
    ];
    for (scope, on, monthly, committed) in pacing {
        if !on {
            continue;
        }
        let allowed = pacing::allowed_at(monthly, periods, now);
        let need = committed.saturating_add(est);
        if need > allowed {
            return Some(Denial {
                reason: Reason::PacingLimitExceeded,
                scope,
                limit: allowed,
                usage: committed,
                message: format!(
                    "Pacing limit exceeded{}: current_usage={} + estimated_tokens={} > paced allowance={} at this point of the month",
                    whose(scope, ai_type),
                    thousands(committed),
                    thousands(est),
                    thousands(allowed)
                ),
                retry_after: Some(pacing::fits_at(monthly, periods, need).unwrap_or(periods.month_end)),
            });
        }
    }
    None
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
        let snap = Snapshot {
            ai_month: used(137_200),
            global_month: used(137_200),
            ..Default::default()
        };
        let d = decide("imperium", 5_000, &l, &g, &snap, &p, p.month_start);
        assert_eq!(
            (d.reason, d.scope),
            (Reason::EmergencyShutdown, Some(Scope::AiType))
        );
        assert_eq!(d.retry_after, Some(p.month_end));
        let snap = Snapshot {
            global_month: used(137_200),
            ..Default::default()
        };
        let d = decide("guardian", 10, &l, &g, &snap, &p, p.month_start);
        assert_eq!(
            (d.reason, d.scope),
            (Reason::EmergencyShutdown, Some(Scope::Global))
        );
    }

    #[test]
    fn reservations_count_against_the_limits() {
        let (l, g, p) = setup();
        let snap = Snapshot {
            ai_month: Counter {
                used: 100_000,
                reserved: 39_500,
            },
            global_month: Counter {
                used: 100_000,
                reserved: 39_500,
            },
            ..Default::default()
        };
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
        let mut snap = Snapshot {
            global_month: Counter {
                used: 100_000,
                reserved: 39_900,
            },
            ai_day: used(9_800),
            ai_hour: used(1_400),
            ..Default::default()
        };
        assert_eq!(
            decide("a", 200, &l, &g, &snap, &p, p.month_start).reason,
            Reason::GlobalLimitExceeded
        );
        snap.global_month = used(0);
        let d = decide("a", 200, &l, &g, &snap, &p, p.month_start);
        assert_eq!(
            (d.reason, d.retry_after),
            (Reason::DailyLimitExceeded, Some(p.day_end))
        );
        snap.ai_day = used(0);
        let d = decide("a", 200, &l, &g, &snap, &p, p.month_start);
        assert_eq!(
            (d.reason, d.retry_after),
            (Reason::HourlyLimitExceeded, Some(p.hour_end))
        );
        assert_eq!(
            d.retry_after.unwrap().to_rfc3339(),
            "2026-11-23T11:00:00+00:00"
        );
        snap.ai_hour = used(0);
        snap.global_hour = used(1_300);
        let d = decide("a", 200, &l, &g, &snap, &p, p.month_start);
        assert_eq!(
            (d.reason, d.scope),
            (Reason::HourlyLimitExceeded, Some(Scope::Global))
        );
    }
}
