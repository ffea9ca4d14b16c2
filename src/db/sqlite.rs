//! The statements only SQLite runs this way (the shared ones are in `shared.rs`). Timestamps
//! are stored as fixed-width UTC text so they compare as text; rows written by other programs
//! may use other formats, which `parse_time` accepts. The admission lock is `BEGIN IMMEDIATE`.

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{Row, SqliteConnection};

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
/// The larger of two values (PostgreSQL's GREATEST): times are text here, and compare as text.
const GREATEST: &str = "MAX";
/// `last_request_at` as text, whatever another program stored in it; `ReadTime` parses it.
const LAST_REQUEST_AT: &str = "CAST(last_request_at AS TEXT) AS last_request_at";

pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(super) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(text, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    // no offset: UTC, as tokenctl writes
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, fmt) {
            return Some(t.and_utc());
        }
    }
    None
}

fn limit_row(row: &sqlx::sqlite::SqliteRow) -> Result<LimitRow> {
    Ok(LimitRow {
        monthly: row.try_get("monthly_limit")?,
        daily: row.try_get("daily_limit")?,
        hourly: row.try_get("hourly_limit")?,
        per_request: row.try_get("per_request_limit")?,
        rpm: row.try_get("rpm")?,
        rpd: row.try_get("rpd")?,
        cooldown_seconds: row.try_get("cooldown_seconds")?,
        max_concurrent: row.try_get("max_concurrent")?,
        pacing: row.try_get::<Option<i64>, _>("pacing")?.map(|v| v != 0),
    })
}

/// `{col} = {col} + excluded.{col}` for a count another program may have left odd: NULL and
/// negative count as 0 (as `domain::count` reads them), text is kept rather than overwritten
/// (the total then reads as tokens_in + tokens_out), and the sum saturates instead of wrapping.
fn add_count(col: &str) -> String {
    format!(
        "{col} = CASE WHEN {col} IS NULL THEN excluded.{col}
                      WHEN typeof({col}) IN ('integer', 'real') THEN MIN(MAX({col}, 0) + excluded.{col}, 9223372036854775807)
                      ELSE {col} END"
    )
}

row_readers!(sqlx::sqlite::SqliteRow);

impl Store for SqliteConnection {
    super::shared::statements!();

    async fn lock_admission(&mut self) -> Result<()> {
        // The write transaction began with BEGIN IMMEDIATE: this connection already holds
        // SQLite's single write lock.
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (scope, ai_type) DO UPDATE SET
                 monthly_limit = COALESCE(excluded.monthly_limit, monthly_limit),
                 daily_limit = COALESCE(excluded.daily_limit, daily_limit),
                 hourly_limit = COALESCE(excluded.hourly_limit, hourly_limit),
                 per_request_limit = COALESCE(excluded.per_request_limit, per_request_limit),
                 rpm = COALESCE(excluded.rpm, rpm),
                 rpd = COALESCE(excluded.rpd, rpd),
                 cooldown_seconds = COALESCE(excluded.cooldown_seconds, cooldown_seconds),
                 max_concurrent = COALESCE(excluded.max_concurrent, max_concurrent),
                 pacing = COALESCE(excluded.pacing, pacing),
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
        .bind(c.pacing.map(i64::from))
        .bind(ts(at))
        .execute(&mut *self)
        .await
        .context("cannot save limits")?;
        Ok(())
    }

    async fn server_now(&mut self) -> Result<Option<DateTime<Utc>>> {
        Ok(None)
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
             WHERE ai_type IN (?1, ?2) AND period IN (?3, ?4)",
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
            "SELECT ai_type, minute, minute_requests, last_start_at FROM token_request_starts WHERE ai_type IN (?1, ?2)",
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
            let last: String = r.try_get("last_start_at")?;
            rate.last_start_at = parse_time(&last);
        }
        for (cap, mine) in [(caps.ai_type, true), (caps.global, false)] {
            let Some(limit) = cap else { continue };
            let sql = if mine {
                "SELECT expires_at FROM token_reservations WHERE ai_type = ?3 AND state = 'held' AND expires_at > ?1
                 ORDER BY expires_at LIMIT ?2"
            } else {
                "SELECT expires_at FROM token_reservations WHERE state = 'held' AND expires_at > ?1 AND ?3 = ?3
                 ORDER BY expires_at LIMIT ?2"
            };
            let q = sqlx::query_scalar(sql)
                .bind(ts(now))
                .bind(limit.saturating_add(1))
                .bind(ai_type);
            let times: Vec<String> = q
                .fetch_all(&mut *self)
                .await
                .context("cannot count requests in flight")?;
            let times: Vec<DateTime<Utc>> = times.iter().filter_map(|t| parse_time(t)).collect();
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
        let now = ts(at);
        sqlx::query(
            "INSERT INTO token_usage (ai_type, month_year, monthly_limit, reserved_tokens, created_at, updated_at)
             VALUES (?1, ?2, ?3, MAX(?4, 0), ?5, ?5)
             ON CONFLICT (ai_type, month_year) DO UPDATE SET
                 reserved_tokens = MAX(0, reserved_tokens + ?4)",
        )
        .bind(&h.ai_type)
        .bind(&h.month)
        .bind(monthly_limit)
        .bind(delta)
        .bind(&now)
        .execute(&mut *self)
        .await
        .context("cannot update reserved tokens")?;
        sqlx::query(
            "INSERT INTO token_usage_windows (ai_type, period, month_year, reserved)
             VALUES (?1, ?3, ?5, MAX(?6, 0)), (?1, ?4, ?5, MAX(?6, 0)), (?2, ?3, ?5, MAX(?6, 0)), (?2, ?4, ?5, MAX(?6, 0))
             ON CONFLICT (ai_type, period) DO UPDATE SET reserved = MAX(0, reserved + ?6)",
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
            "SELECT ai_type, COALESCE(month_year, substr(created_at, 1, 7)) AS month_year,
                    tokens_in, tokens_out, cost_usd, reservation_id
             FROM token_usage_logs WHERE request_id = ?1 OR reservation_id = ?2 ORDER BY id LIMIT 1",
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
        // SQLite has no arrays: one placeholder per period
        let marks = vec!["?"; periods.len()].join(", ");
        let sql = format!("SELECT ai_type, period, tokens, reserved, requests FROM token_usage_windows WHERE period IN ({marks})");
        let mut query = sqlx::query(&sql);
        for period in periods {
            query = query.bind(*period);
        }
        let rows = query
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
            "INSERT INTO token_usage_archive (ai_type, month_year, monthly_limit, tokens_in, tokens_out, total_tokens,
                 request_count, usage_percentage, status, last_request_at, created_at, updated_at, cost_usd, archived_at, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?11, ?13)
             ON CONFLICT (ai_type, month_year) WHERE reason = 'monthly' DO UPDATE SET
                 monthly_limit = COALESCE(monthly_limit, excluded.monthly_limit),
                 tokens_in = MIN(tokens_in + excluded.tokens_in, 9223372036854775807),
                 tokens_out = MIN(tokens_out + excluded.tokens_out, 9223372036854775807),
                 total_tokens = MIN(total_tokens + excluded.total_tokens, 9223372036854775807),
                 request_count = MIN(request_count + excluded.request_count, 9223372036854775807),
                 usage_percentage = CASE WHEN COALESCE(monthly_limit, excluded.monthly_limit, 0) > 0
                     THEN MIN(total_tokens + excluded.total_tokens, 9223372036854775807) * 100.0 / COALESCE(monthly_limit, excluded.monthly_limit)
                     ELSE 0 END,
                 cost_usd = cost_usd + excluded.cost_usd,
                 last_request_at = NULLIF(MAX(COALESCE(last_request_at, ''), COALESCE(excluded.last_request_at, '')), ''),
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
        .bind(row.last_request_at.map(ts))
        .bind(ts(at))
        .bind(row.cost_usd)
        .bind(reason.as_str())
        .execute(&mut *self)
        .await
        .context("cannot write the archive")?;
        Ok(())
    }

    async fn lock_month_rows(&mut self, _month: &str, _ai_type: Option<&str>) -> Result<()> {
        // BEGIN IMMEDIATE already keeps every other writer out
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
                 status = 'active', reserved_tokens = 0, cost_usd = 0, updated_at = ?3
             WHERE month_year = ?1 AND (?2 IS NULL OR ai_type = ?2)",
            "UPDATE token_reservations SET state = 'released', ended_at = ?3
             WHERE state = 'held' AND month_year = ?1 AND (?2 IS NULL OR ai_type = ?2)",
        ] {
            sqlx::query(sql)
                .bind(month)
                .bind(ai_type)
                .bind(ts(at))
                .execute(&mut *self)
                .await
                .context("cannot reset this month")?;
        }
        if let Some(ai_type) = ai_type {
            // the total's windows lose exactly what this AI type's windows held
            sqlx::query(
                "UPDATE token_usage_windows AS g SET
                     tokens = MAX(0, g.tokens - COALESCE((SELECT a.tokens FROM token_usage_windows a WHERE a.ai_type = ?2 AND a.period = g.period), 0)),
                     reserved = MAX(0, g.reserved - COALESCE((SELECT a.reserved FROM token_usage_windows a WHERE a.ai_type = ?2 AND a.period = g.period), 0)),
                     requests = MAX(0, g.requests - COALESCE((SELECT a.requests FROM token_usage_windows a WHERE a.ai_type = ?2 AND a.period = g.period), 0))
                 WHERE g.ai_type = '*' AND g.month_year = ?1",
            )
            .bind(month)
            .bind(ai_type)
            .execute(&mut *self)
            .await
            .context("cannot reset the total's windows")?;
        }
        // cooldown and the minute's count go with it (the total's too when every AI type is reset)
        sqlx::query("DELETE FROM token_request_starts WHERE (?1 IS NULL AND TRUE) OR ai_type = ?1")
            .bind(ai_type)
            .execute(&mut *self)
            .await
            .context("cannot reset request starts")?;
        sqlx::query("DELETE FROM token_usage_windows WHERE month_year = ?1 AND (?2 IS NULL OR ai_type = ?2)")
            .bind(month)
            .bind(ai_type)
            .execute(&mut *self)
            .await
            .context("cannot reset this month's windows")?;
        Ok(())
    }

    /// SQLite removes a row's entries from every index as it deletes the row, so the cost is
    /// the index walk. Each batch is a range of the `created_at` index, deleted with the very
    /// plan of a plain `DELETE … WHERE created_at < cutoff`: first find the `created_at` of the
    /// first row the batch leaves, then delete everything before it. (Deleting a list of ids
    /// instead cost 40% more CPU; a bound computed inside the DELETE made SQLite scan the whole
    /// range each time.) Deleted rows leave the index at once, so the next batch starts at the
    /// front again and needs no cursor.
    async fn delete_old_logs(
        &mut self,
        cutoff: DateTime<Utc>,
        from: i64,
        _high: i64,
        batch: i64,
    ) -> Result<PruneStep> {
        let cutoff = ts(cutoff);
        let bound: Option<String> = sqlx::query_scalar(
            "SELECT created_at FROM token_usage_logs WHERE created_at < ?1 \
             ORDER BY created_at LIMIT 1 OFFSET ?2",
        )
        .bind(&cutoff)
        .bind(batch)
        .fetch_optional(&mut *self)
        .await
        .context("cannot find old logs")?;
        let delete =
            |op: &'static str| format!("DELETE FROM token_usage_logs WHERE created_at {op} ?1");
        let mut deleted = sqlx::query(&delete("<"))
            .bind(bound.as_ref().unwrap_or(&cutoff))
            .execute(&mut *self)
            .await
            .context("cannot delete old logs")?
            .rows_affected();
        if let (0, Some(bound)) = (deleted, &bound) {
            // more than a batch of rows at one instant: they go together
            deleted = sqlx::query(&delete("<="))
                .bind(bound)
                .execute(&mut *self)
                .await
                .context("cannot delete old logs")?
                .rows_affected();
        }
        Ok(PruneStep {
            deleted,
            next: bound.is_some().then_some(from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_written_by_other_programs() {
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            parse_time("2026-11-23 10:00:00+02"),
            Some(utc("2026-11-23T08:00:00Z"))
        );
        assert_eq!(
            parse_time("2026-11-23 10:00:00"),
            Some(utc("2026-11-23T10:00:00Z"))
        );
        assert_eq!(
            parse_time("2026-11-23T10:00:00.123456Z"),
            Some(utc("2026-11-23T10:00:00.123456Z"))
        );
        assert_eq!(
            parse_time("2026-11-23 10:00"),
            Some(utc("2026-11-23T10:00:00Z"))
        );
        assert_eq!(parse_time("yesterday"), None);
    }
}
