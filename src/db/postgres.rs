//! The statements only PostgreSQL runs this way (the shared ones are in `shared.rs`).
//! Timestamps are TIMESTAMPTZ; counters BIGINT (SUM of BIGINT is NUMERIC in PostgreSQL, hence
//! the casts back). The admission lock is a transaction-scoped advisory lock.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use super::shared::{row_readers, usage_row, ReadTime, Stamp, ALERT_COLUMNS, HOLD_COLUMNS};
use super::{
    in_flight, level_rank, log_page_sql, log_row, AlertFilter, AlertRow, ArchiveReason, ArchiveRow,
    ClosedMonth, Hold, HoldState, InFlightCaps, LimitRows, LimitScope, LogEntry, LogQuery, LogRow,
    LoggedRequest, MonthRow, PruneStep, Reservation, Store, UsageDelta, WindowRow,
    ARCHIVE_RESERVED_TEXT, KNOWN_AI_TYPES, LEVEL_RANK, USAGE_RESERVED_TEXT, USAGE_TEXT_COLUMNS,
};
use crate::domain::alert::AlertDraft;
use crate::domain::level::percentage;
use crate::domain::limits::{LimitRow, DEFAULT_MONTHLY};
use crate::domain::prices::{Price, PriceSource};
use crate::domain::validate::GLOBAL_SCOPE;
use crate::domain::{Counter, Level, Periods, Snapshot};

// The dialect the shared statements (`shared.rs`) are written in.
/// The larger of two values (spelled MAX on SQLite).
const GREATEST: &str = "GREATEST";
/// `last_request_at` as a time, whatever the column type of a table adopted from the old system.
const LAST_REQUEST_AT: &str = "last_request_at::TIMESTAMPTZ AS last_request_at";

fn limit_row(row: &sqlx::postgres::PgRow) -> Result<LimitRow> {
    Ok(LimitRow {
        monthly: row.try_get("monthly_limit")?,
        daily: row.try_get("daily_limit")?,
        hourly: row.try_get("hourly_limit")?,
        per_request: row.try_get("per_request_limit")?,
        rpm: row.try_get("rpm")?,
        rpd: row.try_get("rpd")?,
        cooldown_seconds: row.try_get("cooldown_seconds")?,
        max_concurrent: row.try_get("max_concurrent")?,
        pacing: row.try_get("pacing")?,
    })
}

/// "tokenctl" in ASCII: the advisory lock every admission writer takes first.
const ADMISSION_LOCK_KEY: i64 = 0x746f_6b65_6e63_746c;

/// `{col} = {col} + excluded.{col}` for a count another program may have left odd: NULL and
/// negative count as 0 and a fraction is rounded up (as `domain::count` reads them), and the
/// sum saturates instead of failing with "bigint out of range" (which would stop every record of that AI type).
fn add_count(col: &str) -> String {
    format!(
        "{col} = LEAST(CEIL(GREATEST(COALESCE(token_usage.{col}, 0), 0)::NUMERIC) + excluded.{col}, 9223372036854775807)::BIGINT"
    )
}

row_readers!(sqlx::postgres::PgRow);

impl Store for PgConnection {
    super::shared::statements!();

    async fn lock_admission(&mut self) -> Result<()> {
        // Transaction-scoped: released by COMMIT or ROLLBACK, also when the process dies.
        // Like SQLite's busy timeout: wait for another writer, but not forever (a stopped
        // process holding the lock must not wedge every host).
        sqlx::query("SELECT set_config('lock_timeout', $2, true), pg_advisory_xact_lock($1)")
            .bind(ADMISSION_LOCK_KEY)
            .bind(format!("{}s", super::LOCK_WAIT.as_secs()))
            .execute(&mut *self)
            .await
            .with_context(|| {
                format!(
                    "another tokenctl held the admission lock for more than {} s (a long monthly-reset?)",
                    super::LOCK_WAIT.as_secs()
                )
            })?;
        Ok(())
    }

    async fn update_limits(
        &mut self,
        scope: &LimitScope,
        c: &LimitRow,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let (scope, ai_type) = scope.key();
        sqlx::query(
            "INSERT INTO token_limits (scope, ai_type, monthly_limit, daily_limit, hourly_limit, per_request_limit,
                                       rpm, rpd, cooldown_seconds, max_concurrent, pacing, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (scope, ai_type) DO UPDATE SET
                 monthly_limit = COALESCE(excluded.monthly_limit, token_limits.monthly_limit),
                 daily_limit = COALESCE(excluded.daily_limit, token_limits.daily_limit),
                 hourly_limit = COALESCE(excluded.hourly_limit, token_limits.hourly_limit),
                 per_request_limit = COALESCE(excluded.per_request_limit, token_limits.per_request_limit),
                 rpm = COALESCE(excluded.rpm, token_limits.rpm),
                 rpd = COALESCE(excluded.rpd, token_limits.rpd),
                 cooldown_seconds = COALESCE(excluded.cooldown_seconds, token_limits.cooldown_seconds),
                 max_concurrent = COALESCE(excluded.max_concurrent, token_limits.max_concurrent),
                 pacing = COALESCE(excluded.pacing, token_limits.pacing),
                 updated_at = excluded.updated_at",
        )
        .bind(scope)
        .bind(ai_type)
        .bind(c.monthly)
        .bind(c.daily)
        .bind(c.hourly)
        .bind(c.per_request)
        .bind(c.rpm)
        .bind(c.rpd)
        .bind(c.cooldown_seconds)
        .bind(c.max_concurrent)
        .bind(c.pacing)
        .bind(at)
        .execute(&mut *self)
        .await
        .context("cannot save limits")?;
        Ok(())
    }

    async fn server_now(&mut self) -> Result<Option<DateTime<Utc>>> {
        // clock_timestamp(), not now(): now() is when the transaction began, before the
        // admission lock was granted
        let t = sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(&mut *self)
            .await
            .context("cannot read the database's clock")?;
        Ok(Some(t))
    }

    async fn snapshot(
        &mut self,
        ai_type: &str,
        p: &Periods,
        now: DateTime<Utc>,
        caps: InFlightCaps,
    ) -> Result<Snapshot> {
        let mut snap = Snapshot::default();
        let windows = sqlx::query(
            "SELECT ai_type, period, tokens, reserved, requests FROM token_usage_windows
             WHERE ai_type IN ($1, $2) AND period IN ($3, $4)",
        )
        .bind(ai_type)
        .bind(GLOBAL_SCOPE)
        .bind(&p.day)
        .bind(&p.hour)
        .fetch_all(&mut *self)
        .await
        .context("cannot read today's usage")?;
        for w in &windows {
            let counter = Counter {
                used: w.try_get("tokens")?,
                reserved: w.try_get("reserved")?,
            };
            let who: String = w.try_get("ai_type")?;
            let period: String = w.try_get("period")?;
            let global = who == GLOBAL_SCOPE;
            if period == p.day {
                let requests: i64 = w.try_get("requests")?;
                if global {
                    snap.global_rate.day_requests = requests;
                } else {
                    snap.ai_rate.day_requests = requests;
                }
            }
            match (global, period == p.day) {
                (false, true) => snap.ai_day = counter,
                (false, false) => snap.ai_hour = counter,
                (true, true) => snap.global_day = counter,
                (true, false) => snap.global_hour = counter,
            }
        }
        let starts = sqlx::query(
            "SELECT ai_type, minute, minute_requests, last_start_at FROM token_request_starts WHERE ai_type IN ($1, $2)",
        )
        .bind(ai_type)
        .bind(GLOBAL_SCOPE)
        .fetch_all(&mut *self)
        .await
        .context("cannot read request starts")?;
        for r in &starts {
            let who: String = r.try_get("ai_type")?;
            let rate = if who == GLOBAL_SCOPE {
                &mut snap.global_rate
            } else {
                &mut snap.ai_rate
            };
            let minute: String = r.try_get("minute")?;
            // a minute later than this clock's: another writer's clock is ahead; its count
            // is the latest there is, so it counts (a writer behind cannot dodge the rpm)
            if minute.as_str() >= p.minute.as_str() {
                rate.minute_requests = r.try_get("minute_requests")?;
            }
            rate.last_start_at = Some(r.try_get("last_start_at")?);
        }
        for (cap, mine) in [(caps.ai_type, true), (caps.global, false)] {
            let Some(limit) = cap else { continue };
            let sql = if mine {
                "SELECT expires_at FROM token_reservations WHERE ai_type = $3 AND state = 'held' AND expires_at > $1
                 ORDER BY expires_at LIMIT $2"
            } else {
                "SELECT expires_at FROM token_reservations WHERE state = 'held' AND expires_at > $1 AND $3 = $3
                 ORDER BY expires_at LIMIT $2"
            };
            let q = sqlx::query_scalar(sql)
                .bind(now)
                .bind(limit.saturating_add(1))
                .bind(ai_type);
            let times: Vec<DateTime<Utc>> = q
                .fetch_all(&mut *self)
                .await
                .context("cannot count requests in flight")?;
            let rate = if mine {
                &mut snap.ai_rate
            } else {
                &mut snap.global_rate
            };
            (rate.in_flight, rate.slot_free_at) = in_flight(&times, limit);
        }
        Ok(snap)
    }

    async fn add_reserved(
        &mut self,
        h: &Hold,
        delta: i64,
        monthly_limit: i64,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO token_usage (ai_type, month_year, monthly_limit, reserved_tokens, created_at, updated_at)
             VALUES ($1, $2, $3, GREATEST($4, 0), $5, $5)
             ON CONFLICT (ai_type, month_year) DO UPDATE SET
                 reserved_tokens = GREATEST(0, token_usage.reserved_tokens + $4)",
        )
        .bind(&h.ai_type)
        .bind(&h.month)
        .bind(monthly_limit)
        .bind(delta)
        .bind(at)
        .execute(&mut *self)
        .await
        .context("cannot update reserved tokens")?;
        sqlx::query(
            "INSERT INTO token_usage_windows (ai_type, period, month_year, reserved)
             VALUES ($1, $3, $5, GREATEST($6, 0)), ($1, $4, $5, GREATEST($6, 0)), ($2, $3, $5, GREATEST($6, 0)), ($2, $4, $5, GREATEST($6, 0))
             ON CONFLICT (ai_type, period) DO UPDATE SET reserved = GREATEST(0, token_usage_windows.reserved + $6)",
        )
        .bind(&h.ai_type)
        .bind(GLOBAL_SCOPE)
        .bind(&h.day)
        .bind(&h.hour)
        .bind(&h.month)
        .bind(delta)
        .execute(&mut *self)
        .await
        .context("cannot update reserved tokens")?;
        Ok(())
    }

    async fn find_log(
        &mut self,
        request_id: Option<&str>,
        reservation_id: Option<&str>,
    ) -> Result<Option<LoggedRequest>> {
        let row = sqlx::query(
            "SELECT ai_type, COALESCE(month_year, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM')) AS month_year,
                    tokens_in::BIGINT AS tokens_in, tokens_out::BIGINT AS tokens_out, cost_usd::FLOAT8 AS cost_usd, reservation_id
             FROM token_usage_logs WHERE request_id = $1 OR reservation_id = $2 ORDER BY id LIMIT 1",
        )
        .bind(request_id)
        .bind(reservation_id)
        .fetch_optional(&mut *self)
        .await
        .context("cannot read the request log")?;
        row.map(|r| -> Result<LoggedRequest> {
            Ok(LoggedRequest {
                reservation_id: r.try_get("reservation_id")?,
                ai_type: r.try_get("ai_type")?,
                month: r.try_get("month_year")?,
                tokens_in: r.try_get("tokens_in")?,
                tokens_out: r.try_get("tokens_out")?,
                cost_usd: r.try_get("cost_usd")?,
            })
        })
        .transpose()
    }

    async fn window_rows(&mut self, periods: &[&str]) -> Result<Vec<WindowRow>> {
        if periods.is_empty() {
            return Ok(Vec::new());
        }
        let periods: Vec<String> = periods.iter().map(|p| p.to_string()).collect();
        let rows = sqlx::query("SELECT ai_type, period, tokens, reserved, requests FROM token_usage_windows WHERE period = ANY($1)")
            .bind(&periods)
            .fetch_all(&mut *self)
            .await
            .context("cannot read usage windows")?;
        rows.iter().map(window_row).collect()
    }

    async fn archive_row(
        &mut self,
        row: &MonthRow,
        reason: ArchiveReason,
        at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO token_usage_archive AS a (ai_type, month_year, monthly_limit, tokens_in, tokens_out, total_tokens,
                 request_count, usage_percentage, status, last_request_at, created_at, updated_at, cost_usd, archived_at, reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $11, $13)
             ON CONFLICT (ai_type, month_year) WHERE reason = 'monthly' DO UPDATE SET
                 monthly_limit = COALESCE(a.monthly_limit, excluded.monthly_limit),
                 tokens_in = LEAST(a.tokens_in::NUMERIC + excluded.tokens_in, 9223372036854775807)::BIGINT,
                 tokens_out = LEAST(a.tokens_out::NUMERIC + excluded.tokens_out, 9223372036854775807)::BIGINT,
                 total_tokens = LEAST(a.total_tokens::NUMERIC + excluded.total_tokens, 9223372036854775807)::BIGINT,
                 request_count = LEAST(a.request_count::NUMERIC + excluded.request_count, 9223372036854775807)::BIGINT,
                 usage_percentage = CASE WHEN COALESCE(a.monthly_limit, excluded.monthly_limit, 0) > 0
                     THEN LEAST(a.total_tokens::NUMERIC + excluded.total_tokens, 9223372036854775807) * 100.0
                          / COALESCE(a.monthly_limit, excluded.monthly_limit)
                     ELSE 0 END,
                 cost_usd = a.cost_usd + excluded.cost_usd,
                 last_request_at = GREATEST(a.last_request_at, excluded.last_request_at),
                 updated_at = excluded.updated_at",
        )
        .bind(&row.ai_type)
        .bind(&row.month)
        .bind(row.monthly_limit)
        .bind(row.tokens_in)
        .bind(row.tokens_out)
        .bind(row.total_tokens)
        .bind(row.request_count)
        .bind(percentage(row.total_tokens, row.monthly_limit.unwrap_or(0)))
        .bind(&row.status)
        .bind(row.last_request_at)
        .bind(at)
        .bind(row.cost_usd)
        .bind(reason.as_str())
        .execute(&mut *self)
        .await
        .context("cannot write the archive")?;
        Ok(())
    }

    async fn lock_month_rows(&mut self, month: &str, ai_type: Option<&str>) -> Result<()> {
        // the existing backend does not take the admission lock: row locks keep it from
        // changing a row between its copy to the archive and its zeroing
        sqlx::query("SELECT 1 FROM token_usage WHERE month_year = $1 AND ($2::TEXT IS NULL OR ai_type = $2) FOR UPDATE")
            .bind(month)
            .bind(ai_type)
            .execute(&mut *self)
            .await
            .context("cannot lock this month's rows")?;
        Ok(())
    }

    async fn clear_month(
        &mut self,
        month: &str,
        ai_type: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        for sql in [
            "UPDATE token_usage SET tokens_in = 0, tokens_out = 0, total_tokens = 0, request_count = 0, usage_percentage = 0,
                 status = 'active', reserved_tokens = 0, cost_usd = 0, updated_at = $3
             WHERE month_year = $1 AND ($2 IS NULL OR ai_type = $2)",
            "UPDATE token_reservations SET state = 'released', ended_at = $3
             WHERE state = 'held' AND month_year = $1 AND ($2 IS NULL OR ai_type = $2)",
        ] {
            sqlx::query(sql)
                .bind(month)
                .bind(ai_type)
                .bind(at)
                .execute(&mut *self)
                .await
                .context("cannot reset this month")?;
        }
        if let Some(ai_type) = ai_type {
            // the total's windows lose exactly what this AI type's windows held
            sqlx::query(
                "UPDATE token_usage_windows AS g SET
                     tokens = GREATEST(0, g.tokens - a.tokens),
                     reserved = GREATEST(0, g.reserved - a.reserved),
                     requests = GREATEST(0, g.requests - a.requests)
                 FROM token_usage_windows AS a
                 WHERE g.ai_type = '*' AND g.month_year = $1 AND a.ai_type = $2 AND a.period = g.period",
            )
            .bind(month)
            .bind(ai_type)
            .execute(&mut *self)
            .await
            .context("cannot reset the total's windows")?;
        }
        // cooldown and the minute's count go with it (the total's too when every AI type is reset)
        sqlx::query("DELETE FROM token_request_starts WHERE ($1 IS NULL AND TRUE) OR ai_type = $1")
            .bind(ai_type)
            .execute(&mut *self)
            .await
            .context("cannot reset request starts")?;
        sqlx::query("DELETE FROM token_usage_windows WHERE month_year = $1 AND ($2 IS NULL OR ai_type = $2)")
            .bind(month)
            .bind(ai_type)
            .execute(&mut *self)
            .await
            .context("cannot reset this month's windows")?;
        Ok(())
    }

    /// PostgreSQL deletes by marking heap rows (indexes are cleaned later by vacuum), so the
    /// cost is the heap walk: batches go up the id range, which follows the heap. Walking
    /// `created_at` instead was 12× slower: each batch re-read the dead index entries of the
    /// batches before it. Each batch commits without waiting for its WAL flush: a crash can
    /// only bring back the last few batches' old rows, which the next prune deletes again,
    /// and no counter depends on them; waiting for 200 flushes on a busy disk was most of the
    /// gap to a plain DELETE.
    async fn delete_old_logs(
        &mut self,
        cutoff: DateTime<Utc>,
        from: i64,
        high: i64,
        batch: i64,
    ) -> Result<PruneStep> {
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *self)
            .await
            .context("cannot delete old logs")?;
        let to = from.saturating_add(batch).min(high.saturating_add(1));
        let done = sqlx::query(
            "DELETE FROM token_usage_logs WHERE id >= $1 AND id < $2 AND created_at < $3",
        )
        .bind(from)
        .bind(to)
        .bind(cutoff)
        .execute(&mut *self)
        .await
        .context("cannot delete old logs")?;
        Ok(PruneStep {
            deleted: done.rows_affected(),
            next: (to <= high).then_some(to),
        })
    }
}
