//! The usage report: a period's daily rollups folded into totals, a day-by-day trend and the
//! largest users, models and AI types. Pure arithmetic over rows already read, so the same
//! figures come out of the CLI, the JSON and the CSV whatever database they were read from.
//!
//! A request whose model had no price has an unknown cost, not a zero one: every figure that
//! counts such a request says so (`cost_complete: false`), so a partial sum is never read as
//! the whole bill.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use serde::Serialize;

use super::money::Usd;

/// One day's usage of one (AI type, user, model): the daily rollup `record` keeps.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RollupRow {
    pub day: NaiveDate,
    pub ai_type: String,
    pub user_id: Option<String>,
    pub model: Option<String>,
    pub requests: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub total_tokens: i64,
    /// Cost of its priced requests only.
    pub cost: Usd,
    /// Requests whose model had no price: their cost is unknown, not 0.
    pub unpriced_requests: i64,
}

/// The days a report covers, both inclusive (a calendar month is its first and last day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Period {
    pub since: NaiveDate,
    pub until: NaiveDate,
}

impl Period {
    pub fn contains(&self, day: NaiveDate) -> bool {
        self.since <= day && day <= self.until
    }

    /// Every day of the period, oldest first; none when `since` is after `until`. Not
    /// `iter_days`, which never yields chrono's last day.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> {
        let until = self.until;
        std::iter::successors(Some(self.since).filter(|d| *d <= until), move |d| {
            d.succ_opt().filter(|n| *n <= until)
        })
    }
}

/// What `tokenctl report` shows and `--json` prints; its keys are the JSON API's, so renaming a
/// field breaks callers.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub period: Period,
    pub totals: Totals,
    /// One entry per day of the period, zero-filled: a chart of it shows quiet days as gaps
    /// instead of joining the busy ones.
    pub daily_usage: Vec<DailyUsage>,
    pub top_users: Vec<UserUsage>,
    pub model_usage: Vec<ModelUsage>,
    pub ai_type_usage: Vec<AiTypeUsage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Totals {
    pub requests: i64,
    pub tokens: i64,
    /// Of the priced requests (see `cost_complete`).
    pub cost_usd: Usd,
    pub unique_users: usize,
    pub cost_complete: bool,
    pub unpriced_requests: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DailyUsage {
    pub date: NaiveDate,
    pub total_requests: i64,
    pub total_tokens: i64,
    pub total_cost: Usd,
    pub unique_users: usize,
    pub cost_complete: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UserUsage {
    pub user_id: String,
    pub total_tokens: i64,
    pub total_cost: Usd,
    pub request_count: i64,
    pub cost_complete: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ModelUsage {
    /// None for requests recorded without a model.
    pub model: Option<String>,
    pub total_tokens: i64,
    pub total_cost: Usd,
    pub request_count: i64,
    pub cost_complete: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AiTypeUsage {
    pub ai_type: String,
    pub total_tokens: i64,
    pub total_cost: Usd,
    pub request_count: i64,
    pub cost_complete: bool,
}

impl Report {
    /// Whether nothing at all was recorded in the period (every in-period row has a model
    /// bucket, "no model" included).
    pub fn is_empty(&self) -> bool {
        self.model_usage.is_empty()
    }
}

/// What every breakdown adds up; sums saturate, since a rollup read from a database is not
/// trusted to be small.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    requests: i64,
    tokens: i64,
    cost: Usd,
    unpriced: i64,
}

impl Sums {
    fn add(&mut self, r: &RollupRow) {
        self.requests = self.requests.saturating_add(r.requests);
        self.tokens = self.tokens.saturating_add(r.total_tokens);
        self.cost = self.cost.saturating_add(r.cost);
        self.unpriced = self.unpriced.saturating_add(r.unpriced_requests);
    }

    fn complete(&self) -> bool {
        self.unpriced <= 0
    }
}

/// Largest cost first, then most tokens, then by name: the order is total, so two runs over
/// the same rows print the same lines.
fn rank<K: Ord>(buckets: BTreeMap<K, Sums>) -> Vec<(K, Sums)> {
    let mut v: Vec<(K, Sums)> = buckets.into_iter().collect();
    v.sort_by(|(ka, a), (kb, b)| {
        b.cost
            .cmp(&a.cost)
            .then(b.tokens.cmp(&a.tokens))
            .then_with(|| ka.cmp(kb))
    });
    v
}

/// Users in a report's order: by cost, then tokens (both descending), then id.
pub fn rank_users(users: &mut [UserUsage]) {
    users.sort_by(|a, b| {
        b.total_cost
            .cmp(&a.total_cost)
            .then(b.total_tokens.cmp(&a.total_tokens))
            .then_with(|| a.user_id.cmp(&b.user_id))
    });
}

/// The report of `period` from `rows` (rows outside it are ignored), with at most `top` users.
pub fn build(period: Period, rows: &[RollupRow], top: usize) -> Report {
    let rows: Vec<&RollupRow> = rows.iter().filter(|r| period.contains(r.day)).collect();

    let mut total = Sums::default();
    let mut users: BTreeSet<&str> = BTreeSet::new();
    let mut days: BTreeMap<NaiveDate, (Sums, BTreeSet<&str>)> = BTreeMap::new();
    let mut by_user: BTreeMap<&str, Sums> = BTreeMap::new();
    // on a tie of cost and tokens, "no model" comes first (None sorts before Some)
    let mut by_model: BTreeMap<Option<&str>, Sums> = BTreeMap::new();
    let mut by_ai_type: BTreeMap<&str, Sums> = BTreeMap::new();
    for r in &rows {
        total.add(r);
        let day = days.entry(r.day).or_default();
        day.0.add(r);
        if let Some(u) = r.user_id.as_deref() {
            users.insert(u);
            day.1.insert(u);
            by_user.entry(u).or_default().add(r);
        }
        by_model.entry(r.model.as_deref()).or_default().add(r);
        by_ai_type.entry(r.ai_type.as_str()).or_default().add(r);
    }

    let daily_usage = period
        .days()
        .map(|date| {
            let (s, u) = days.get(&date).cloned().unwrap_or_default();
            DailyUsage {
                date,
                total_requests: s.requests,
                total_tokens: s.tokens,
                total_cost: s.cost,
                unique_users: u.len(),
                cost_complete: s.complete(),
            }
        })
        .collect();
    let top_users = rank(by_user)
        .into_iter()
        .take(top)
        .map(|(u, s)| UserUsage {
            user_id: u.to_string(),
            total_tokens: s.tokens,
            total_cost: s.cost,
            request_count: s.requests,
            cost_complete: s.complete(),
        })
        .collect();
    let model_usage = rank(by_model)
        .into_iter()
        .map(|(m, s)| ModelUsage {
            model: m.map(str::to_string),
            total_tokens: s.tokens,
            total_cost: s.cost,
            request_count: s.requests,
            cost_complete: s.complete(),
        })
        .collect();
    let ai_type_usage = rank(by_ai_type)
        .into_iter()
        .map(|(a, s)| AiTypeUsage {
            ai_type: a.to_string(),
            total_tokens: s.tokens,
            total_cost: s.cost,
            request_count: s.requests,
            cost_complete: s.complete(),
        })
        .collect();
    Report {
        period,
        totals: Totals {
            requests: total.requests,
            tokens: total.tokens,
            cost_usd: total.cost,
            unique_users: users.len(),
            cost_complete: total.complete(),
            unpriced_requests: total.unpriced,
        },
        daily_usage,
        top_users,
        model_usage,
        ai_type_usage,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    pub(crate) fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    #[allow(clippy::too_many_arguments)]
    /// A row with `requests` requests of `tokens` tokens each split 3:1 in:out.
    pub(crate) fn row(
        day: &str,
        ai_type: &str,
        user: Option<&str>,
        model: Option<&str>,
        requests: i64,
        tokens: i64,
        cost: &str,
        unpriced: i64,
    ) -> RollupRow {
        RollupRow {
            day: d(day),
            ai_type: ai_type.into(),
            user_id: user.map(Into::into),
            model: model.map(Into::into),
            requests,
            tokens_in: tokens / 4 * 3,
            tokens_out: tokens - tokens / 4 * 3,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            total_tokens: tokens,
            cost: usd(cost),
            unpriced_requests: unpriced,
        }
    }

    fn period(since: &str, until: &str) -> Period {
        Period {
            since: d(since),
            until: d(until),
        }
    }

    /// Five days, three of them with usage; one row before and one after the period.
    pub(crate) fn sample() -> (Period, Vec<RollupRow>) {
        let rows = vec![
            row(
                "2026-10-31",
                "chat",
                Some("alice"),
                Some("opus"),
                9,
                9_000,
                "9",
                0,
            ),
            row(
                "2026-11-01",
                "chat",
                Some("alice"),
                Some("opus"),
                2,
                1_000,
                "0.50",
                0,
            ),
            row(
                "2026-11-01",
                "chat",
                Some("bob"),
                Some("haiku"),
                3,
                600,
                "0.03",
                0,
            ),
            row(
                "2026-11-01",
                "batch",
                None,
                Some("opus"),
                1,
                4_000,
                "1.25",
                0,
            ),
            row(
                "2026-11-03",
                "chat",
                Some("bob"),
                Some("mystery"),
                2,
                800,
                "0",
                2,
            ),
            row(
                "2026-11-03",
                "batch",
                Some("carol"),
                None,
                1,
                100,
                "0.0105",
                0,
            ),
            row(
                "2026-11-05",
                "chat",
                Some("alice"),
                Some("haiku"),
                1,
                200,
                "0.01",
                0,
            ),
            row(
                "2026-11-06",
                "chat",
                Some("dave"),
                Some("opus"),
                5,
                5_000,
                "5",
                0,
            ),
        ];
        (period("2026-11-01", "2026-11-05"), rows)
    }

    #[test]
    fn totals_count_only_the_period() {
        let (p, rows) = sample();
        let r = build(p, &rows, 10);
        // 2+3+1+2+1+1 requests; 1000+600+4000+800+100+200 tokens;
        // 0.50+0.03+1.25+0+0.0105+0.01 dollars
        assert_eq!(r.totals.requests, 10);
        assert_eq!(r.totals.tokens, 6_700);
        assert_eq!(r.totals.cost_usd, usd("1.8005"));
        // alice, bob, carol (dave is after the period, the batch row has no user)
        assert_eq!(r.totals.unique_users, 3);
        assert_eq!(r.totals.unpriced_requests, 2);
        assert!(!r.totals.cost_complete);
        assert!(!r.is_empty());
    }

    #[test]
    fn every_day_is_listed_and_quiet_days_are_zero() {
        let (p, rows) = sample();
        let r = build(p, &rows, 10);
        let dates: Vec<String> = r.daily_usage.iter().map(|x| x.date.to_string()).collect();
        assert_eq!(
            dates,
            [
                "2026-11-01",
                "2026-11-02",
                "2026-11-03",
                "2026-11-04",
                "2026-11-05"
            ]
        );
        let first = &r.daily_usage[0];
        assert_eq!(
            (first.total_requests, first.total_tokens, first.unique_users),
            (6, 5_600, 2)
        );
        assert_eq!(first.total_cost, usd("1.78"));
        assert!(first.cost_complete);
        let quiet = &r.daily_usage[1];
        assert_eq!(
            (quiet.total_requests, quiet.total_tokens, quiet.unique_users),
            (0, 0, 0)
        );
        assert_eq!(quiet.total_cost, Usd::ZERO);
        assert!(quiet.cost_complete);
        let third = &r.daily_usage[2];
        assert_eq!((third.total_requests, third.unique_users), (3, 2));
        assert_eq!(third.total_cost, usd("0.0105"));
        assert!(!third.cost_complete);
        assert!(r.daily_usage[4].cost_complete);
    }

    #[test]
    fn breakdowns_rank_by_cost_and_flag_unpriced_requests() {
        let (p, rows) = sample();
        let r = build(p, &rows, 10);
        let users: Vec<(&str, i64, Usd, i64, bool)> = r
            .top_users
            .iter()
            .map(|u| {
                (
                    u.user_id.as_str(),
                    u.total_tokens,
                    u.total_cost,
                    u.request_count,
                    u.cost_complete,
                )
            })
            .collect();
        assert_eq!(
            users,
            [
                ("alice", 1_200, usd("0.51"), 3, true),
                ("bob", 1_400, usd("0.03"), 5, false),
                ("carol", 100, usd("0.0105"), 1, true),
            ]
        );
        let models: Vec<(Option<&str>, Usd, i64, bool)> = r
            .model_usage
            .iter()
            .map(|m| {
                (
                    m.model.as_deref(),
                    m.total_cost,
                    m.request_count,
                    m.cost_complete,
                )
            })
            .collect();
        assert_eq!(
            models,
            [
                (Some("opus"), usd("1.75"), 3, true),
                (Some("haiku"), usd("0.04"), 4, true),
                (None, usd("0.0105"), 1, true),
                (Some("mystery"), Usd::ZERO, 2, false),
            ]
        );
        let types: Vec<(&str, i64, Usd, i64, bool)> = r
            .ai_type_usage
            .iter()
            .map(|a| {
                (
                    a.ai_type.as_str(),
                    a.total_tokens,
                    a.total_cost,
                    a.request_count,
                    a.cost_complete,
                )
            })
            .collect();
        assert_eq!(
            types,
            [
                ("batch", 4_100, usd("1.2605"), 2, true),
                ("chat", 2_600, usd("0.54"), 8, false),
            ]
        );
    }

    #[test]
    fn top_users_are_cut_and_ties_ordered() {
        let rows = vec![
            row("2026-11-01", "chat", Some("zed"), None, 1, 100, "1", 0),
            row("2026-11-01", "chat", Some("amy"), None, 1, 100, "1", 0),
            row("2026-11-01", "chat", Some("max"), None, 1, 500, "1", 0),
            row("2026-11-01", "chat", Some("big"), None, 1, 1, "2", 0),
            row("2026-11-01", "chat", Some("low"), None, 1, 9_999, "0.5", 0),
        ];
        let p = period("2026-11-01", "2026-11-01");
        let names = |top| -> Vec<String> {
            build(p, &rows, top)
                .top_users
                .into_iter()
                .map(|u| u.user_id)
                .collect()
        };
        // cost first, then tokens, then the name
        assert_eq!(names(10), ["big", "max", "amy", "zed", "low"]);
        assert_eq!(names(3), ["big", "max", "amy"]);
        assert!(names(0).is_empty());
        // the cut leaves the totals whole
        assert_eq!(build(p, &rows, 1).totals.unique_users, 5);
    }

    #[test]
    fn an_empty_or_backward_period_is_zero_not_a_panic() {
        let (_, rows) = sample();
        let r = build(period("2026-12-01", "2026-12-03"), &rows, 5);
        assert!(r.is_empty());
        assert_eq!(r.daily_usage.len(), 3);
        assert!(r.totals.cost_complete);
        assert_eq!(r.totals.unique_users, 0);
        let back = build(period("2026-11-05", "2026-11-01"), &rows, 5);
        assert!(back.is_empty());
        assert!(back.daily_usage.is_empty());
        // the last day chrono knows ends the list instead of overflowing
        let end = NaiveDate::MAX;
        let r = build(
            Period {
                since: end,
                until: end,
            },
            &[],
            5,
        );
        assert_eq!(r.daily_usage.len(), 1);
    }

    #[test]
    fn sums_saturate() {
        let mut a = row(
            "2026-11-01",
            "chat",
            Some("u"),
            None,
            i64::MAX,
            i64::MAX,
            "0",
            0,
        );
        a.cost = Usd::from_nanos(i64::MAX);
        let b = a.clone();
        let r = build(period("2026-11-01", "2026-11-01"), &[a, b], 5);
        assert_eq!(r.totals.requests, i64::MAX);
        assert_eq!(r.totals.tokens, i64::MAX);
        assert_eq!(r.totals.cost_usd, Usd::from_nanos(i64::MAX));
        assert_eq!(r.daily_usage[0].total_tokens, i64::MAX);
    }

    #[test]
    fn serializes_with_the_documented_keys() {
        let rows = vec![
            row(
                "2026-11-01",
                "chat",
                Some("alice"),
                Some("opus"),
                2,
                1_000,
                "0.50",
                0,
            ),
            row("2026-11-02", "chat", None, None, 1, 10, "0", 1),
        ];
        let r = build(period("2026-11-01", "2026-11-02"), &rows, 5);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({
                "period": {"since": "2026-11-01", "until": "2026-11-02"},
                "totals": {"requests": 3, "tokens": 1010, "cost_usd": 0.5, "unique_users": 1,
                           "cost_complete": false, "unpriced_requests": 1},
                "daily_usage": [
                    {"date": "2026-11-01", "total_requests": 2, "total_tokens": 1000,
                     "total_cost": 0.5, "unique_users": 1, "cost_complete": true},
                    {"date": "2026-11-02", "total_requests": 1, "total_tokens": 10,
                     "total_cost": 0.0, "unique_users": 0, "cost_complete": false},
                ],
                "top_users": [{"user_id": "alice", "total_tokens": 1000, "total_cost": 0.5,
                               "request_count": 2, "cost_complete": true}],
                "model_usage": [
                    {"model": "opus", "total_tokens": 1000, "total_cost": 0.5,
                     "request_count": 2, "cost_complete": true},
                    {"model": null, "total_tokens": 10, "total_cost": 0.0,
                     "request_count": 1, "cost_complete": false},
                ],
                "ai_type_usage": [{"ai_type": "chat", "total_tokens": 1010, "total_cost": 0.5,
                                   "request_count": 3, "cost_complete": false}],
            })
        );
    }
}
