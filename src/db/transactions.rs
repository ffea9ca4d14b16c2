//! Each operation as one `Db` call: the transaction it needs around the `ledger` or `Store`
//! statements that make it up.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::ledger::{self, MonthlyReset, RecordInput, Recorded, Released, Reserved, Reset};
use super::{
    acquire, read_tx, write_tx, write_tx_or_rollback, AlertFilter, AlertRow, ArchiveRow,
    ClosedMonth, Db, Hold, LimitRows, LimitScope, LogFilter, LogPage, LogQuery, MonthRow, Pool,
    Store, WindowRow,
};
use crate::domain::alert::{draft, levels_reached};
use crate::domain::burn::Burn;
use crate::domain::level::percentage;
use crate::domain::limits::{LimitFields, LimitRow};
use crate::domain::pricing::{Price, PriceTable};
use crate::domain::report::RollupRow;
use crate::domain::{Clock, Decision, Level};
use crate::error::OpError;

/// What `status` reads: the month's rows, the limits, and the current day and hour windows.
#[derive(Debug, Clone, Default)]
pub struct UsageView {
    pub rows: Vec<MonthRow>,
    pub limits: LimitRows,
    pub windows: Vec<WindowRow>,
    /// holds past their TTL that no write has swept yet: they no longer count
    pub stale_holds: Vec<Hold>,
    /// set when monthly-reset has closed the month: `rows` are then its archived figures
    pub closed: Option<ClosedMonth>,
}

impl Db {
    pub async fn check(&self, ask: &ledger::ReserveAsk, clock: &Clock) -> Result<Decision> {
        Ok(read_tx!(self, c => ledger::check(c, ask, clock).await?))
    }

    pub async fn reserve(&self, ask: &ledger::ReserveAsk, clock: &Clock) -> Result<Reserved> {
        Ok(write_tx!(self, c => ledger::reserve(c, ask, clock).await?))
    }

    /// Decides many reservations together, in one transaction (see `ledger::reserve_batch`).
    pub async fn reserve_batch(
        &self,
        asks: &[ledger::ReserveAsk],
        clock: &Clock,
    ) -> Result<Vec<Reserved>> {
        Ok(write_tx!(self, c => ledger::reserve_batch(c, asks, clock).await?))
    }

    /// Records and reservations decided together, in one transaction (see
    /// `ledger::admission_batch`).
    pub async fn admission_batch(
        &self,
        records: &[RecordInput],
        asks: &[ledger::ReserveAsk],
        clock: &Clock,
        waiting: &(dyn Fn(ledger::BatchItem) -> bool + Sync),
    ) -> Result<ledger::BatchAnswers> {
        Ok(write_tx!(self, c => ledger::admission_batch(c, records, asks, clock, waiting).await?))
    }

    pub async fn release(&self, id: &str, clock: &Clock) -> Result<Released> {
        Ok(write_tx!(self, c => ledger::release(c, id, clock).await?))
    }

    pub async fn record(&self, input: &RecordInput, clock: &Clock) -> Result<Recorded> {
        Ok(write_tx!(self, c => ledger::record(c, input, clock).await?))
    }

    /// `periods`: the day and hour whose windows to read (none for a past month).
    pub async fn usage_view(
        &self,
        month: &str,
        periods: &[&str],
        clock: &Clock,
    ) -> Result<UsageView> {
        Ok(read_tx!(self, c => {
            let usage = ledger::month_usage(c, month).await?;
            UsageView {
                rows: usage.rows,
                limits: c.limit_rows(super::LimitFilter::AiTypes).await?,
                windows: c.window_rows(periods).await?,
                stale_holds: c.stale_holds(clock.now).await?,
                closed: usage.closed,
            }
        }))
    }

    /// The database server's clock (None for SQLite, which runs on this host's).
    pub async fn server_now(&self) -> Result<Option<DateTime<Utc>>> {
        match self.pool() {
            Pool::Sqlite(_) => Ok(None),
            Pool::Postgres(pool) => acquire(pool, self.place()).await?.server_now().await,
        }
    }

    pub async fn limit_rows(&self) -> Result<LimitRows> {
        Ok(read_tx!(self, c => c.limit_rows(super::LimitFilter::All).await?))
    }

    /// Applies `changes` to one row of limits, under the admission lock so no reservation
    /// decides against half-changed limits; returns every row after the change.
    pub async fn set_limits(
        &self,
        scope: &LimitScope,
        changes: &LimitRow,
        clock: &Clock,
    ) -> Result<LimitRows> {
        Ok(write_tx!(self, c => {
            c.lock_admission().await?;
            c.update_limits(scope, changes, clock.now).await?;
            c.limit_rows(super::LimitFilter::All).await?
        }))
    }

    /// Puts the chosen values of one row of limits back: an AI type's to the default's (its
    /// row goes when nothing of its own is left), the default's and the global's to the
    /// values tokenctl installs. Returns every row after the change.
    pub async fn unset_limits(
        &self,
        scope: &LimitScope,
        fields: LimitFields,
        clock: &Clock,
    ) -> Result<LimitRows> {
        Ok(write_tx!(self, c => {
            c.lock_admission().await?;
            let rows = c.limit_rows(super::LimitFilter::All).await?;
            let builtin = match scope {
                LimitScope::Default => LimitRow::builtin_default(),
                LimitScope::Global => LimitRow::builtin_global(),
                LimitScope::AiType(_) | LimitScope::User(_) | LimitScope::DefaultUser => {
                    LimitRow::default()
                }
            };
            let current = rows.row(scope).cloned().unwrap_or_default();
            let new = current.with_reset(fields, &builtin);
            // a row that only inherits is no row: the AI type or user follows the default again
            let keep = matches!(scope, LimitScope::Default | LimitScope::Global)
                || new != LimitRow::default();
            c.replace_limits(scope, keep.then_some(&new), clock.now).await?;
            c.limit_rows(super::LimitFilter::All).await?
        }))
    }

    /// Removes a model's database prices (the one from `effective_from` only, when given): the
    /// built-in one, if any, applies again. How many were removed, and the table after.
    pub async fn unset_price(
        &self,
        model: &str,
        effective_from: Option<&str>,
    ) -> Result<(u64, PriceTable)> {
        let (removed, rows) = write_tx!(self, c => {
            c.lock_admission().await?;
            let removed = c.delete_price(model, effective_from).await?;
            (removed, c.price_rows().await?)
        });
        Ok((removed, PriceTable::new(rows)))
    }

    pub async fn prices(&self) -> Result<PriceTable> {
        Ok(PriceTable::new(read_tx!(self, c => c.price_rows().await?)))
    }

    /// Stores prices for every host, all or none (a catalogue import is one transaction, under
    /// the admission lock so no request is priced against half of it). Per price, whether it
    /// changed anything; the table after.
    pub async fn set_prices(
        &self,
        prices: &[Price],
        clock: &Clock,
    ) -> Result<(Vec<bool>, PriceTable)> {
        let (changed, rows) = write_tx!(self, c => {
            c.lock_admission().await?;
            let mut changed = Vec::with_capacity(prices.len());
            for price in prices {
                changed.push(c.upsert_price(price, clock.now).await?);
            }
            (changed, c.price_rows().await?)
        });
        Ok((changed, PriceTable::new(rows)))
    }

    /// A user's limits and counters (holds past their TTL no longer counting).
    pub async fn user_view(
        &self,
        user_id: &str,
        clock: &Clock,
    ) -> Result<(crate::domain::ScopeLimits, crate::domain::Snapshot)> {
        let who = crate::domain::Who {
            ai_type: "",
            user_id: Some(user_id),
        };
        let periods = clock.periods();
        Ok(read_tx!(self, c => {
            let limits = ledger::limits_for_request(c, who).await?;
            let snap = ledger::snapshot(c, who, &periods, clock.now, super::InFlightCaps::default()).await?;
            let stale = c.stale_holds(clock.now).await?;
            (
                limits.user.unwrap_or_default(),
                ledger::without_stale(snap, who, &periods, &stale),
            )
        }))
    }

    /// What a report of every user shows, from rollups that do not grow with the number of
    /// users: the (day, AI type, model) rows, each day's count of users, the range's, and its
    /// top `n` users (see `top_users`).
    pub async fn report_parts(
        &self,
        filter: &super::RollupFilter<'_>,
        days: &[String],
        through_today: bool,
        n: usize,
    ) -> Result<ReportParts> {
        Ok(read_tx!(self, c => ReportParts {
            model_rows: c.model_rollup_rows(filter).await?,
            day_users: c.day_user_counts(filter).await?,
            unique_users: c.distinct_users(filter, through_today).await?,
            top_users: match filter.ai_type {
                None => top_users(c, filter, days, n).await?,
                Some(_) => c.top_users_scan(filter, n as i64).await?,
            },
        }))
    }

    /// The daily rollups of a report, oldest day first.
    pub async fn rollups(&self, filter: &super::RollupFilter<'_>) -> Result<Vec<RollupRow>> {
        Ok(read_tx!(self, c => c.rollup_rows(filter).await?))
    }

    pub async fn monthly_reset(&self, clock: &Clock, dry_run: bool) -> Result<MonthlyReset> {
        Ok(
            write_tx_or_rollback!(self, dry_run, c => ledger::monthly_reset(c, clock, dry_run).await?),
        )
    }

    pub async fn reset(
        &self,
        ai_type: Option<&str>,
        clock: &Clock,
        dry_run: bool,
    ) -> Result<Reset> {
        Ok(
            write_tx_or_rollback!(self, dry_run, c => ledger::reset(c, ai_type, clock, dry_run).await?),
        )
    }

    pub async fn archive(
        &self,
        ai_type: Option<&str>,
        month: Option<&str>,
    ) -> Result<Vec<ArchiveRow>> {
        Ok(read_tx!(self, c => c.archive_rows(ai_type, month).await?))
    }

    /// One reservation, whatever its state (None: no such id).
    pub async fn reservation(&self, id: &str) -> Result<Option<super::Reservation>> {
        Ok(read_tx!(self, c => c.reservation(id).await?))
    }

    /// Whether the database answers now (what `/readyz` asks).
    pub async fn ping(&self) -> Result<()> {
        read_tx!(self, c => c.ping().await?);
        Ok(())
    }

    /// Reservations holding tokens now (what `/metrics` reports as holds in flight).
    pub async fn held_count(&self, now: DateTime<Utc>) -> Result<i64> {
        Ok(read_tx!(self, c => c.held_count(now).await?))
    }

    /// Saves a new token of `tokenctl serve`; false when a token of that name is active.
    pub async fn create_api_token(
        &self,
        name: &str,
        scope: &str,
        secret_sha256: &str,
        clock: &Clock,
    ) -> Result<bool> {
        Ok(write_tx!(self, c => c.insert_api_token(name, scope, secret_sha256, clock.now).await?))
    }

    pub async fn api_tokens(&self, include_revoked: bool) -> Result<Vec<super::ApiTokenRow>> {
        Ok(read_tx!(self, c => c.api_tokens(include_revoked).await?))
    }

    pub async fn revoke_api_token(&self, name: &str, clock: &Clock) -> Result<bool> {
        Ok(write_tx!(self, c => c.revoke_api_token(name, clock.now).await?))
    }

    /// (name, scope) of the active token with this secret hash.
    pub async fn api_token_by_secret(
        &self,
        secret_sha256: &str,
    ) -> Result<Option<(String, String)>> {
        // one statement: no transaction needed around it (and a read on the hot path)
        match self.pool() {
            Pool::Sqlite(pool) => {
                acquire(pool, self.place())
                    .await?
                    .api_token_by_secret(secret_sha256)
                    .await
            }
            Pool::Postgres(pool) => {
                acquire(pool, self.place())
                    .await?
                    .api_token_by_secret(secret_sha256)
                    .await
            }
        }
    }

    pub async fn count_logs_before(&self, cutoff: DateTime<Utc>) -> Result<i64> {
        Ok(read_tx!(self, c => c.count_logs_before(cutoff).await?))
    }

    /// Deletes logs older than `cutoff`, at most `batch` rows per transaction, so that
    /// recording goes on meanwhile and memory stays bounded. `progress` hears the running
    /// total. Returns the number deleted.
    pub async fn prune_logs(
        &self,
        cutoff: DateTime<Utc>,
        batch: i64,
        mut progress: impl FnMut(u64),
    ) -> Result<u64> {
        let Some((mut from, high)) = read_tx!(self, c => c.log_ids_before(cutoff).await?) else {
            return Ok(0);
        };
        let mut deleted = 0u64;
        loop {
            let step = write_tx!(self, c => c.delete_old_logs(cutoff, from, high, batch).await?);
            deleted += step.deleted;
            progress(deleted);
            match step.next {
                Some(next) => from = next,
                None => return Ok(deleted),
            }
        }
    }

    /// Every AI type with usage in any month or limits of its own, sorted.
    pub async fn known_ai_types(&self) -> Result<Vec<String>> {
        Ok(read_tx!(self, c => c.known_ai_types().await?))
    }

    /// A page of the request log, newest first. `before` is the last id of the page before;
    /// an id that is not (or no longer) in the log is an error, not an empty page.
    pub async fn logs(&self, f: &LogFilter) -> Result<LogPage> {
        let mut rows = read_tx!(self, c => {
            let after_row = match f.before {
                None => None,
                Some(id) => match c.log_time(id).await? {
                    Some(at) => Some((at, id)),
                    None => {
                        return Err(OpError::not_found(format!(
                            "no request with id {id} in the log (pruned by monthly-reset, or mistyped)"
                        ))
                        .into())
                    }
                },
            };
            c.log_page(&LogQuery {
                ai_type: f.ai_type.as_deref(),
                since: f.since,
                after_row,
                limit: f.limit.saturating_add(1),
            })
            .await?
        });
        // one row more than asked says whether there is another page
        let more = rows.len() as i64 > f.limit;
        rows.truncate(f.limit.max(0) as usize);
        let next_before = if more {
            rows.last().map(|r| r.id)
        } else {
            None
        };
        Ok(LogPage { rows, next_before })
    }

    /// The time zone stored for every host, if one was set.
    pub async fn timezone(&self) -> Result<Option<String>> {
        Ok(read_tx!(self, c => c.setting(TIMEZONE_KEY).await?))
    }

    pub async fn set_timezone(&self, zone: &str, clock: &Clock) -> Result<()> {
        write_tx!(self, c => {
            c.lock_admission().await?;
            c.set_setting(TIMEZONE_KEY, zone, clock.now).await?
        });
        Ok(())
    }
}

const TIMEZONE_KEY: &str = "timezone";
/// Reports count requests in flight up to this many.
const REPORT_COUNT_CAP: i64 = 1_000_000;

impl Db {
    /// One monitor tick in one transaction under the admission lock: reads the month,
    /// lets `levels` turn it into each scope's level (and whatever report the caller wants),
    /// then re-arms alerts of levels usage fell below, raises those newly entered, and keeps
    /// each month row's level and status current. Deciding and writing under one lock means two
    /// monitors never act on each other's stale numbers. Returns the report and the alerts
    /// raised now.
    pub async fn monitor_tick<T>(
        &self,
        month: &str,
        window_keys: &[&str],
        clock: &Clock,
        levels: impl FnOnce(&UsageView) -> (T, Vec<ScopeLevel>),
    ) -> Result<(T, Vec<AlertRow>)> {
        Ok(write_tx!(self, c => {
            c.lock_admission().await?;
            let usage = ledger::month_usage(c, month).await?;
            let view = UsageView {
                rows: usage.rows,
                limits: c.limit_rows(super::LimitFilter::AiTypes).await?,
                windows: c.window_rows(window_keys).await?,
                stale_holds: c.stale_holds(clock.now).await?,
                closed: usage.closed,
            };
            let (report, scopes) = levels(&view);
            let mut raised = Vec::new();
            for sc in &scopes {
                c.rearm_alerts(&sc.ai_type, &sc.month, sc.level, clock.now).await?;
                for level in levels_reached(sc.level) {
                    let d = draft(&sc.ai_type, level, &sc.month, sc.used, sc.limit, sc.burn);
                    if let Some(row) = c.raise_alert(&d, clock.now).await? {
                        raised.push(row);
                    }
                }
                if let Some(status) = &sc.row_status {
                    if status != sc.level.row_status() {
                        c.set_month_level(&sc.ai_type, &sc.month, percentage(sc.used, sc.limit), sc.level.row_status()).await?;
                    }
                }
            }
            (report, raised)
        }))
    }

    pub async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<AlertRow>> {
        Ok(read_tx!(self, c => c.alert_rows(filter).await?))
    }
}

/// One AI type's (or the total's, as '*') level in a monitor tick.
#[derive(Debug, Clone)]
pub struct ScopeLevel {
    pub ai_type: String,
    pub month: String,
    pub level: Level,
    pub used: i64,
    pub limit: i64,
    pub burn: Burn,
    /// the month row's status column, for AI types (None for the total)
    pub row_status: Option<String>,
}

impl Db {
    /// Everything `distribution` shows, from the window rollups and reservations only.
    pub async fn distribution_view(
        &self,
        month: &str,
        scope: &str,
        clock: &Clock,
    ) -> Result<DistributionView> {
        let periods = clock.periods();
        Ok(read_tx!(self, c => DistributionView {
            month_closed: c.closed_month(month).await?.is_some(),
            windows: c.month_windows(month, scope).await?,
            limits: c.limit_rows(super::LimitFilter::AiTypes).await?,
            last_starts: c.last_starts().await?,
            snapshot: ledger::snapshot(
                    c,
                    crate::domain::Who {
                        ai_type: if scope == crate::domain::validate::GLOBAL_SCOPE { "" } else { scope },
                        user_id: None,
                    },
                    &periods,
                    clock.now,
                    // a report: count every request in flight
                    super::InFlightCaps { ai_type: Some(REPORT_COUNT_CAP), global: Some(REPORT_COUNT_CAP) },
                )
                .await?,
        }))
    }
}

/// What `report_parts` reads.
#[derive(Debug, Clone)]
pub struct ReportParts {
    pub model_rows: Vec<RollupRow>,
    pub day_users: Vec<(String, i64)>,
    pub unique_users: i64,
    pub top_users: Vec<crate::domain::report::UserUsage>,
}

/// The range's top `n` users by cost, exactly, without adding up every user's days (Fagin's
/// threshold algorithm): each day's biggest spenders are read down an index, a batch at a
/// time, and the totals of the users found so far are read. A user not found yet spent, on
/// each day, at most the last figure read for that day, so at most their sum (`bound`); once
/// the n-th user found spent more, no one else can be in the top n. Each round reads twice as
/// deep; past `MAX_DEPTH` a day (spending spread evenly over very many users) every user's
/// days are added up instead.
async fn top_users<S: Store>(
    c: &mut S,
    filter: &super::RollupFilter<'_>,
    days: &[String],
    n: usize,
) -> Result<Vec<crate::domain::report::UserUsage>> {
    const MAX_DEPTH: i64 = 3_200;
    if n == 0 {
        return Ok(Vec::new());
    }
    // per day: the last figure read, None once its list is read to the end
    let mut last: Vec<Option<i64>> = vec![Some(0); days.len()];
    let mut seen = std::collections::BTreeSet::new();
    let mut totals = Vec::new();
    let (mut depth, mut step) = (0_i64, (4 * n).max(50) as i64);
    loop {
        let mut found = Vec::new();
        for (day, last) in days.iter().zip(&mut last) {
            if last.is_none() {
                continue;
            }
            let rows = c.top_users_of_day(day, depth, step).await?;
            *last = match rows.last() {
                Some((_, cost)) if rows.len() as i64 == step => Some(*cost),
                _ => None,
            };
            found.extend(
                rows.into_iter()
                    .filter_map(|(u, _)| seen.insert(u.clone()).then_some(u)),
            );
        }
        depth += step;
        totals.extend(c.user_totals(&found, filter.since, filter.until).await?);
        crate::domain::report::rank_users(&mut totals);
        let bound: i128 = last.iter().flatten().map(|c| *c as i128).sum();
        let read_to_the_end = last.iter().all(Option::is_none);
        let exact = read_to_the_end
            || totals
                .get(n - 1)
                .is_some_and(|nth| nth.total_cost.nanos() as i128 > bound);
        if exact {
            totals.truncate(n);
            return Ok(totals);
        }
        if depth >= MAX_DEPTH {
            return c.top_users_scan(filter, n as i64).await;
        }
        step = depth;
    }
}

#[derive(Debug, Clone)]
pub struct DistributionView {
    pub windows: Vec<WindowRow>,
    pub limits: LimitRows,
    pub last_starts: Vec<(String, DateTime<Utc>)>,
    /// the current counters (in flight, month usage) of the AI type, or of the total
    pub snapshot: crate::domain::Snapshot,
    /// monthly-reset has archived the month: its windows are gone
    pub month_closed: bool,
}

/// Every operation's future is `Send`, so a multi-threaded server can run it on any worker
/// thread: checked at compile time (this function is never called).
#[allow(dead_code)]
fn operations_are_send(db: &Db, clock: &Clock, input: &RecordInput, filter: &AlertFilter) {
    fn send<T: Send>(_: &T) {}
    let ask = ledger::ReserveAsk::default();
    send(&db.check(&ask, clock));
    send(&db.reserve(&ask, clock));
    send(&db.release("r", clock));
    send(&db.record(input, clock));
    send(&db.usage_view("2026-11", &[], clock));
    send(&db.server_now());
    send(&db.limit_rows());
    send(&db.prices());
    send(&db.monthly_reset(clock, false));
    send(&db.reset(None, clock, false));
    send(&db.archive(None, None));
    send(&db.prune_logs(clock.now, 1, |_| {}));
    send(&db.logs(&LogFilter::default()));
    send(&db.alerts(filter));
    send(&db.distribution_view("2026-11", "*", clock));
    send(&db.monitor_tick("2026-11", &[], clock, |_| ((), Vec::new())));
}
