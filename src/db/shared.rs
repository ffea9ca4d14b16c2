//! Statements both backends run word for word, written once. Two things make that possible:
//! placeholders are `$N` (PostgreSQL's; sqlx's SQLite driver binds `$N` by number too), and a
//! time is bound as a [`Stamp`], which each backend encodes the way it stores time.
//! `statements!` expands these methods inside each backend's `impl Store`, so a helper such
//! as `alert_row` resolves to that backend's own. A statement that really differs stays in
//! `sqlite.rs` or `postgres.rs`, which say why.

use chrono::{DateTime, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Row, Sqlite, Type};

use super::{MonthRow, UsageRowText};

/// A point in time as a statement parameter or column: `timestamptz` on PostgreSQL;
/// fixed-width UTC text on SQLite (`2026-11-01T00:00:00.000000Z`), so that times compare
/// correctly as text there. Columns are read back as [`ReadTime`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp(pub DateTime<Utc>);

impl Type<Sqlite> for Stamp {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for Stamp {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(super::sqlite::ts(self.0), buf)
    }
}

impl Type<Postgres> for Stamp {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as Type<Postgres>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Postgres> for Stamp {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

/// A time read leniently, for columns other programs may have written: on SQLite, text that
/// does not parse as a time (or a value that is not text) reads as None instead of failing
/// the whole read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadTime(pub Option<DateTime<Utc>>);

impl ReadTime {
    /// The time, or the earliest one there is: an unreadable time never looks recent.
    pub(crate) fn or_min(self) -> DateTime<Utc> {
        self.0.unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

impl Type<Sqlite> for ReadTime {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(_: &SqliteTypeInfo) -> bool {
        true
    }
}

impl<'r> Decode<'r, Sqlite> for ReadTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <String as Decode<'r, Sqlite>>::decode(value).unwrap_or_default();
        Ok(ReadTime(super::sqlite::parse_time(&text)))
    }
}

impl Type<Postgres> for ReadTime {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for ReadTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <DateTime<Utc> as Decode<'r, Postgres>>::decode(value).map(|t| ReadTime(Some(t)))
    }
}

pub(super) const ALERT_COLUMNS: &str = "id, ai_type, level, month_year, usage_percentage, total_tokens, \"limit\", message, recommended_action, burn_rate_per_hour, projected_month_total, projected_exhaustion_at, created_at, cleared_at";

pub(super) const HOLD_COLUMNS: &str = "id, ai_type, estimated_tokens, month_year, day, hour";

/// Readers of the rows the shared statements select, for one backend's row type `$row`.
macro_rules! row_readers {
    ($row:ty) => {
        fn hold(row: &$row) -> Result<Hold> {
            Ok(Hold {
                id: row.try_get("id")?,
                ai_type: row.try_get("ai_type")?,
                estimated_tokens: row.try_get("estimated_tokens")?,
                month: row.try_get("month_year")?,
                day: row.try_get("day")?,
                hour: row.try_get("hour")?,
            })
        }

        fn window_row(r: &$row) -> Result<WindowRow> {
            Ok(WindowRow {
                ai_type: r.try_get("ai_type")?,
                period: r.try_get("period")?,
                tokens: r.try_get("tokens")?,
                reserved: r.try_get("reserved")?,
                requests: r.try_get("requests")?,
            })
        }

        fn alert_row(r: &$row) -> Result<AlertRow> {
            let time = |name: &str| -> Result<Option<DateTime<Utc>>> {
                Ok(r.try_get::<Option<ReadTime>, _>(name)?.and_then(|t| t.0))
            };
            Ok(AlertRow {
                id: r.try_get("id")?,
                ai_type: r.try_get("ai_type")?,
                level: r.try_get("level")?,
                month_year: r.try_get("month_year")?,
                usage_percentage: r.try_get("usage_percentage")?,
                total_tokens: r.try_get("total_tokens")?,
                limit: r.try_get("limit")?,
                message: r.try_get("message")?,
                recommended_action: r.try_get("recommended_action")?,
                burn_rate_per_hour: r.try_get("burn_rate_per_hour")?,
                projected_month_total: r.try_get("projected_month_total")?,
                projected_exhaustion_at: time("projected_exhaustion_at")?,
                created_at: time("created_at")?.unwrap_or(DateTime::<Utc>::MIN_UTC),
                cleared_at: time("cleared_at")?,
            })
        }
    };
}
pub(super) use row_readers;

/// A `token_usage` or archive row selected with `USAGE_TEXT_COLUMNS` and `LAST_REQUEST_AT`.
pub(super) fn usage_row<R: Row>(r: &R) -> anyhow::Result<MonthRow>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: Decode<'a, R::Database> + Type<R::Database>,
    for<'a> Option<String>: Decode<'a, R::Database> + Type<R::Database>,
    for<'a> Option<ReadTime>: Decode<'a, R::Database> + Type<R::Database>,
{
    let last: Option<ReadTime> = r.try_get("last_request_at")?;
    Ok(UsageRowText::read(r, last.and_then(|t| t.0))?.into_month_row())
}

/// The `Store` methods whose statements are the same on both backends.
macro_rules! statements {
    () => {
        async fn limit_rows(&mut self, ai_type: Option<&str>) -> Result<LimitRows> {
            let rows = sqlx::query(
                "SELECT scope, ai_type, monthly_limit, daily_limit, hourly_limit, per_request_limit, rpm, rpd,
                        cooldown_seconds, max_concurrent, pacing
                 FROM token_limits
                 WHERE scope IN ('default', 'global') OR (scope = 'ai_type' AND ($1 IS NULL OR ai_type = $1))
                 ORDER BY ai_type",
            )
            .bind(ai_type)
            .fetch_all(&mut *self)
            .await
            .context("cannot read limits")?;
            let mut out = LimitRows::default();
            for row in &rows {
                let scope: String = row.try_get("scope")?;
                let values = limit_row(row)?;
                match scope.as_str() {
                    "default" => out.default = values,
                    "global" => out.global = values,
                    _ => out.ai_types.push((row.try_get("ai_type")?, values)),
                }
            }
            Ok(out)
        }

        async fn delete_price(&mut self, model: &str) -> Result<bool> {
            let done = sqlx::query("DELETE FROM model_prices WHERE model = $1")
                .bind(model)
                .execute(&mut *self)
                .await
                .context("cannot remove the price")?;
            Ok(done.rows_affected() > 0)
        }

        async fn stale_holds(&mut self, now: DateTime<Utc>) -> Result<Vec<Hold>> {
            let rows = sqlx::query(&format!(
                "SELECT {HOLD_COLUMNS} FROM token_reservations WHERE state = 'held' AND expires_at <= $1"
            ))
            .bind(Stamp(now))
            .fetch_all(&mut *self)
            .await
            .context("cannot read reservations")?;
            rows.iter().map(hold).collect()
        }

        async fn expire_holds(&mut self, now: DateTime<Utc>) -> Result<Vec<Hold>> {
            let rows = sqlx::query(&format!(
                "UPDATE token_reservations SET state = 'expired', ended_at = $1
                 WHERE state = 'held' AND expires_at <= $1
                 RETURNING {HOLD_COLUMNS}"
            ))
            .bind(Stamp(now))
            .fetch_all(&mut *self)
            .await
            .context("cannot expire reservations")?;
            rows.iter().map(hold).collect()
        }

        async fn insert_hold(
            &mut self,
            h: &Hold,
            created_at: DateTime<Utc>,
            expires_at: DateTime<Utc>,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO token_reservations (id, ai_type, estimated_tokens, month_year, day, hour, state, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 'held', $7, $8)",
            )
            .bind(&h.id)
            .bind(&h.ai_type)
            .bind(h.estimated_tokens)
            .bind(&h.month)
            .bind(&h.day)
            .bind(&h.hour)
            .bind(Stamp(created_at))
            .bind(Stamp(expires_at))
            .execute(&mut *self)
            .await
            .context("cannot save the reservation")?;
            Ok(())
        }

        async fn end_reservation(
            &mut self,
            id: &str,
            state: HoldState,
            at: DateTime<Utc>,
        ) -> Result<()> {
            sqlx::query("UPDATE token_reservations SET state = $1, ended_at = $2 WHERE id = $3")
                .bind(state.as_str())
                .bind(Stamp(at))
                .bind(id)
                .execute(&mut *self)
                .await
                .context("cannot update the reservation")?;
            Ok(())
        }

        async fn insert_log(&mut self, e: &LogEntry) -> Result<bool> {
            let done = sqlx::query(
                "INSERT INTO token_usage_logs (ai_type, model, tokens_in, tokens_out, total_tokens, cost_usd, request_id,
                     user_id, session_id, request_type, processing_time_ms, success, error_message, created_at,
                     month_year, reservation_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&e.ai_type)
            .bind(&e.model)
            .bind(e.tokens_in)
            .bind(e.tokens_out)
            .bind(e.tokens_in + e.tokens_out)
            .bind(e.cost_usd)
            .bind(&e.request_id)
            .bind(&e.user_id)
            .bind(&e.session_id)
            .bind(&e.request_type)
            .bind(e.processing_time_ms)
            .bind(e.success)
            .bind(&e.error_message)
            .bind(Stamp(e.created_at))
            .bind(&e.month)
            .bind(&e.reservation_id)
            .execute(&mut *self)
            .await
            .context("cannot write the request log")?;
            Ok(done.rows_affected() == 1)
        }

        async fn set_month_level(
            &mut self,
            ai_type: &str,
            month: &str,
            percentage: f64,
            status: &str,
        ) -> Result<()> {
            sqlx::query("UPDATE token_usage SET usage_percentage = $1, status = $2 WHERE ai_type = $3 AND month_year = $4")
                .bind(percentage)
                .bind(status)
                .bind(ai_type)
                .bind(month)
                .execute(&mut *self)
                .await
                .context("cannot update the usage level")?;
            Ok(())
        }

        async fn price_rows(&mut self) -> Result<Vec<Price>> {
            let rows = sqlx::query(
                "SELECT model, input_per_mtok, output_per_mtok FROM model_prices ORDER BY model",
            )
            .fetch_all(&mut *self)
            .await
            .context("cannot read prices")?;
            rows.iter()
                .map(|r| {
                    Ok(Price {
                        model: r.try_get("model")?,
                        input_per_mtok: r.try_get("input_per_mtok")?,
                        output_per_mtok: r.try_get("output_per_mtok")?,
                        source: PriceSource::Database,
                    })
                })
                .collect()
        }

        async fn upsert_price(
            &mut self,
            model: &str,
            input: f64,
            output: f64,
            at: DateTime<Utc>,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO model_prices (model, input_per_mtok, output_per_mtok, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (model) DO UPDATE SET input_per_mtok = excluded.input_per_mtok,
                     output_per_mtok = excluded.output_per_mtok, updated_at = excluded.updated_at",
            )
            .bind(model)
            .bind(input)
            .bind(output)
            .bind(Stamp(at))
            .execute(&mut *self)
            .await
            .context("cannot save the price")?;
            Ok(())
        }

        async fn raise_alert(&mut self, d: &AlertDraft, at: DateTime<Utc>) -> Result<Option<AlertRow>> {
            let row = sqlx::query(&format!(
                "INSERT INTO token_usage_alerts (ai_type, level, month_year, usage_percentage, total_tokens, \"limit\", message,
                     recommended_action, burn_rate_per_hour, projected_month_total, projected_exhaustion_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT DO NOTHING
                 RETURNING {ALERT_COLUMNS}"
            ))
            .bind(&d.ai_type)
            .bind(d.level.as_str())
            .bind(&d.month)
            .bind(d.usage_percentage)
            .bind(d.total_tokens)
            .bind(d.limit)
            .bind(&d.message)
            .bind(&d.recommended_action)
            .bind(d.burn.burn_rate_per_hour)
            .bind(d.burn.projected_month_total)
            .bind(d.burn.projected_exhaustion_at.map(Stamp))
            .bind(Stamp(at))
            .fetch_optional(&mut *self)
            .await
            .context("cannot save the alert")?;
            row.as_ref().map(alert_row).transpose()
        }

        async fn rearm_alerts(
            &mut self,
            ai_type: &str,
            month: &str,
            level: Level,
            at: DateTime<Utc>,
        ) -> Result<u64> {
            let done = sqlx::query(&format!(
                "UPDATE token_usage_alerts SET cleared_at = $4
                 WHERE cleared_at IS NULL AND ai_type = $1 AND month_year = $2 AND {LEVEL_RANK} > $3"
            ))
            .bind(ai_type)
            .bind(month)
            .bind(level_rank(level))
            .bind(Stamp(at))
            .execute(&mut *self)
            .await
            .context("cannot re-arm alerts")?;
            Ok(done.rows_affected())
        }

        async fn alert_rows(&mut self, f: &AlertFilter) -> Result<Vec<AlertRow>> {
            let rows = sqlx::query(&format!(
                "SELECT {ALERT_COLUMNS} FROM token_usage_alerts
                 WHERE ($1 IS NULL OR created_at >= $1) AND ($2 IS NULL OR level = $2)
                   AND ($3 IS NULL OR ai_type = $3) AND ($4 IS NULL OR (month_year = $4 AND cleared_at IS NULL))
                 ORDER BY created_at DESC, id DESC"
            ))
            .bind(f.since.map(Stamp))
            .bind(&f.level)
            .bind(&f.ai_type)
            .bind(&f.active_in)
            .fetch_all(&mut *self)
            .await
            .context("cannot read alerts")?;
            rows.iter().map(alert_row).collect()
        }

        async fn month_windows(&mut self, month: &str, ai_type: &str) -> Result<Vec<WindowRow>> {
            let rows = sqlx::query(
                "SELECT ai_type, period, tokens, reserved, requests FROM token_usage_windows
                 WHERE month_year = $1 AND ai_type = $2 ORDER BY period",
            )
            .bind(month)
            .bind(ai_type)
            .fetch_all(&mut *self)
            .await
            .context("cannot read the month's windows")?;
            rows.iter().map(window_row).collect()
        }

        async fn setting(&mut self, key: &str) -> Result<Option<String>> {
            let value = sqlx::query_scalar("SELECT value FROM tokenctl_settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&mut *self)
                .await
                .context("cannot read settings")?;
            Ok(value)
        }

        async fn set_setting(&mut self, key: &str, value: &str, at: DateTime<Utc>) -> Result<()> {
            sqlx::query(
                "INSERT INTO tokenctl_settings (key, value, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(key)
            .bind(value)
            .bind(Stamp(at))
            .execute(&mut *self)
            .await
            .context("cannot save settings")?;
            Ok(())
        }

        async fn count_logs_before(&mut self, cutoff: DateTime<Utc>) -> Result<i64> {
            let n = sqlx::query_scalar("SELECT COUNT(*) FROM token_usage_logs WHERE created_at < $1")
                .bind(Stamp(cutoff))
                .fetch_one(&mut *self)
                .await
                .context("cannot count old logs")?;
            Ok(n)
        }

        async fn log_ids_before(&mut self, cutoff: DateTime<Utc>) -> Result<Option<(i64, i64)>> {
            let (low, high): (Option<i64>, Option<i64>) =
                sqlx::query_as("SELECT MIN(id), MAX(id) FROM token_usage_logs WHERE created_at < $1")
                    .bind(Stamp(cutoff))
                    .fetch_one(&mut *self)
                    .await
                    .context("cannot find old logs")?;
            Ok(low.zip(high))
        }

        async fn known_ai_types(&mut self) -> Result<Vec<String>> {
            sqlx::query_scalar(KNOWN_AI_TYPES)
                .fetch_all(&mut *self)
                .await
                .context("cannot read the AI types")
        }
        async fn replace_limits(
            &mut self,
            scope: &LimitScope,
            row: Option<&LimitRow>,
            at: DateTime<Utc>,
        ) -> Result<()> {
            let (scope, ai_type) = scope.key();
            let Some(row) = row else {
                sqlx::query("DELETE FROM token_limits WHERE scope = $1 AND ai_type = $2")
                    .bind(scope)
                    .bind(ai_type)
                    .execute(&mut *self)
                    .await
                    .context("cannot save limits")?;
                return Ok(());
            };
            sqlx::query(
                "INSERT INTO token_limits (scope, ai_type, monthly_limit, daily_limit, hourly_limit, per_request_limit,
                                           rpm, rpd, cooldown_seconds, max_concurrent, pacing, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (scope, ai_type) DO UPDATE SET
                     monthly_limit = excluded.monthly_limit, daily_limit = excluded.daily_limit,
                     hourly_limit = excluded.hourly_limit, per_request_limit = excluded.per_request_limit,
                     rpm = excluded.rpm, rpd = excluded.rpd, cooldown_seconds = excluded.cooldown_seconds,
                     max_concurrent = excluded.max_concurrent, pacing = excluded.pacing,
                     updated_at = excluded.updated_at",
            )
            .bind(scope)
            .bind(ai_type)
            .bind(row.monthly)
            .bind(row.daily)
            .bind(row.hourly)
            .bind(row.per_request)
            .bind(row.rpm)
            .bind(row.rpd)
            .bind(row.cooldown_seconds)
            .bind(row.max_concurrent)
            .bind(row.pacing)
            .bind(Stamp(at))
            .execute(&mut *self)
            .await
            .context("cannot save limits")?;
            Ok(())
        }

        async fn reservation(&mut self, id: &str) -> Result<Option<Reservation>> {
            let row = sqlx::query(&format!(
                "SELECT {HOLD_COLUMNS}, state, expires_at FROM token_reservations WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&mut *self)
            .await
            .context("cannot read the reservation")?;
            row.map(|r| -> Result<Reservation> {
                Ok(Reservation {
                    hold: hold(&r)?,
                    state: HoldState::parse(&r.try_get::<String, _>("state")?),
                    expires_at: r.try_get::<ReadTime, _>("expires_at")?.or_min(),
                })
            })
            .transpose()
        }

        async fn closed_month(&mut self, month: &str) -> Result<Option<ClosedMonth>> {
            let row = sqlx::query(
                "SELECT month_year, global_limit, closed_at FROM token_closed_months
                 WHERE month_year >= $1 ORDER BY month_year LIMIT 1",
            )
            .bind(month)
            .fetch_optional(&mut *self)
            .await
            .context("cannot read closed months")?;
            row.map(|r| -> Result<ClosedMonth> {
                Ok(ClosedMonth {
                    month_year: r.try_get("month_year")?,
                    global_limit: r.try_get("global_limit")?,
                    closed_at: r.try_get::<ReadTime, _>("closed_at")?.or_min(),
                })
            })
            .transpose()
        }

        async fn last_starts(&mut self) -> Result<Vec<(String, DateTime<Utc>)>> {
            let rows = sqlx::query("SELECT ai_type, last_start_at FROM token_request_starts WHERE ai_type <> $1 ORDER BY ai_type")
                .bind(GLOBAL_SCOPE)
                .fetch_all(&mut *self)
                .await
                .context("cannot read request starts")?;
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get("ai_type")?,
                        r.try_get::<ReadTime, _>("last_start_at")?.or_min(),
                    ))
                })
                .collect()
        }

        async fn log_time(&mut self, id: i64) -> Result<Option<DateTime<Utc>>> {
            let at: Option<Option<ReadTime>> =
                sqlx::query_scalar("SELECT created_at FROM token_usage_logs WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *self)
                    .await
                    .context("cannot read the request log")?;
            Ok(at.flatten().and_then(|t| t.0))
        }

        async fn init_month(&mut self, month: &str, at: DateTime<Utc>) -> Result<u64> {
            let done = sqlx::query(
                "INSERT INTO token_usage (ai_type, month_year, monthly_limit, created_at, updated_at)
                 SELECT k.ai_type, $1,
                        COALESCE((SELECT l.monthly_limit FROM token_limits l WHERE l.scope = 'ai_type' AND l.ai_type = k.ai_type),
                                 (SELECT l.monthly_limit FROM token_limits l WHERE l.scope = 'default'), $3),
                        $2, $2
                 FROM (SELECT ai_type FROM token_usage UNION SELECT ai_type FROM token_limits WHERE scope = 'ai_type') AS k
                 -- SQLite needs a WHERE before ON CONFLICT in INSERT … SELECT to parse it
                 WHERE true
                 ON CONFLICT (ai_type, month_year) DO NOTHING",
            )
            .bind(month)
            .bind(Stamp(at))
            .bind(DEFAULT_MONTHLY)
            .execute(&mut *self)
            .await
            .context("cannot create this month's rows")?;
            Ok(done.rows_affected())
        }

        async fn count_start(&mut self, ai_type: &str, p: &Periods, at: DateTime<Utc>) -> Result<()> {
            sqlx::query(
                "INSERT INTO token_usage_windows (ai_type, period, month_year, requests)
                 VALUES ($1, $3, $5, 1), ($1, $4, $5, 1), ($2, $3, $5, 1), ($2, $4, $5, 1)
                 ON CONFLICT (ai_type, period) DO UPDATE SET requests = token_usage_windows.requests + 1",
            )
            .bind(ai_type)
            .bind(GLOBAL_SCOPE)
            .bind(&p.day)
            .bind(&p.hour)
            .bind(&p.month)
            .execute(&mut *self)
            .await
            .context("cannot count the request")?;
            sqlx::query(
                &format!(
                "INSERT INTO token_request_starts (ai_type, last_start_at, minute, minute_requests)
                 VALUES ($1, $3, $4, 1), ($2, $3, $4, 1)
                 ON CONFLICT (ai_type) DO UPDATE SET
                     minute_requests = CASE WHEN excluded.minute > token_request_starts.minute
                                            THEN 1 ELSE token_request_starts.minute_requests + 1 END,
                     minute = {GREATEST}(token_request_starts.minute, excluded.minute),
                     last_start_at = {GREATEST}(token_request_starts.last_start_at, excluded.last_start_at)"
            ),
            )
            .bind(ai_type)
            .bind(GLOBAL_SCOPE)
            .bind(Stamp(at))
            .bind(&p.minute)
            .execute(&mut *self)
            .await
            .context("cannot count the request")?;
            Ok(())
        }
        async fn add_usage(&mut self, d: &UsageDelta<'_>) -> Result<()> {
            let total = d.tokens_in.saturating_add(d.tokens_out);
            sqlx::query(&format!(
                "INSERT INTO token_usage (ai_type, month_year, monthly_limit, tokens_in, tokens_out, total_tokens,
                                          request_count, cost_usd, last_request_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $8, $8)
                 ON CONFLICT (ai_type, month_year) DO UPDATE SET
                     monthly_limit = excluded.monthly_limit,
                     {}, {}, {}, {},
                     cost_usd = COALESCE(token_usage.cost_usd, 0) + excluded.cost_usd,
                     last_request_at = excluded.last_request_at,
                     updated_at = excluded.updated_at",
                add_count("tokens_in"),
                add_count("tokens_out"),
                add_count("total_tokens"),
                add_count("request_count"),
            ))
            .bind(d.ai_type)
            .bind(&d.periods.month)
            .bind(d.monthly_limit)
            .bind(d.tokens_in)
            .bind(d.tokens_out)
            .bind(total)
            .bind(d.cost_usd)
            .bind(Stamp(d.at))
            .execute(&mut *self)
            .await
            .context("cannot update this month's usage")?;
            sqlx::query(
                "INSERT INTO token_usage_windows (ai_type, period, month_year, tokens, requests)
                 VALUES ($1, $3, $5, $6, 0), ($1, $4, $5, $6, 0), ($2, $3, $5, $6, 0), ($2, $4, $5, $6, 0)
                 ON CONFLICT (ai_type, period) DO UPDATE SET tokens = token_usage_windows.tokens + excluded.tokens",
            )
            .bind(d.ai_type)
            .bind(GLOBAL_SCOPE)
            .bind(&d.periods.day)
            .bind(&d.periods.hour)
            .bind(&d.periods.month)
            .bind(total)
            .execute(&mut *self)
            .await
            .context("cannot update today's usage")?;
            Ok(())
        }

        async fn log_page(&mut self, q: &LogQuery<'_>) -> Result<Vec<LogRow>> {
            let sql = log_page_sql(q);
            let mut query = sqlx::query(&sql);
            if let Some(a) = q.ai_type {
                query = query.bind(a);
            }
            if let Some(since) = q.since {
                query = query.bind(Stamp(since));
            }
            if let Some((at, id)) = q.after_row {
                query = query.bind(Stamp(at)).bind(id);
            }
            let rows = query
                .bind(q.limit)
                .fetch_all(&mut *self)
                .await
                .context("cannot read the request log")?;
            rows.iter()
                .map(|r| {
                    let at: Option<ReadTime> = r.try_get("created_at")?;
                    log_row(r, at.and_then(|t| t.0))
                })
                .collect()
        }
        async fn month_rows(&mut self, month: &str) -> Result<Vec<MonthRow>> {
            let rows = sqlx::query(&format!(
                "SELECT {USAGE_TEXT_COLUMNS}, {USAGE_RESERVED_TEXT}, {LAST_REQUEST_AT}
                 FROM token_usage WHERE month_year = $1 ORDER BY ai_type"
            ))
            .bind(month)
            .fetch_all(&mut *self)
            .await
            .context("cannot read usage")?;
            rows.iter().map(usage_row).collect()
        }

        async fn take_months_before(&mut self, month: &str) -> Result<Vec<MonthRow>> {
            let rows = sqlx::query(&format!(
                "DELETE FROM token_usage WHERE month_year < $1
                 RETURNING {USAGE_TEXT_COLUMNS}, {USAGE_RESERVED_TEXT}, {LAST_REQUEST_AT}"
            ))
            .bind(month)
            .fetch_all(&mut *self)
            .await
            .context("cannot archive past months")?;
            for sql in [
                "DELETE FROM token_usage_windows WHERE month_year < $1",
                "DELETE FROM token_reservations WHERE month_year < $1",
            ] {
                sqlx::query(sql)
                    .bind(month)
                    .execute(&mut *self)
                    .await
                    .context("cannot clear past months")?;
            }
            rows.iter().map(usage_row).collect()
        }

        async fn archive_rows(
            &mut self,
            ai_type: Option<&str>,
            month: Option<&str>,
        ) -> Result<Vec<ArchiveRow>> {
            let rows = sqlx::query(&format!(
                "SELECT {USAGE_TEXT_COLUMNS}, {ARCHIVE_RESERVED_TEXT}, {LAST_REQUEST_AT},
                        archived_at, reason
                 FROM token_usage_archive
                 WHERE ($1 IS NULL OR ai_type = $1) AND ($2 IS NULL OR month_year = $2)
                 ORDER BY month_year DESC, archived_at DESC, ai_type"
            ))
            .bind(ai_type)
            .bind(month)
            .fetch_all(&mut *self)
            .await
            .context("cannot read the archive")?;
            rows.iter()
                .map(|r| {
                    Ok(ArchiveRow::new(
                        usage_row(r)?,
                        r.try_get::<ReadTime, _>("archived_at")?.or_min(),
                        r.try_get("reason")?,
                    ))
                })
                .collect()
        }

        async fn close_months(
            &mut self,
            months: &[String],
            global_limit: i64,
            at: DateTime<Utc>,
        ) -> Result<()> {
            for month in months {
                sqlx::query(
                    "INSERT INTO token_closed_months (month_year, global_limit, closed_at) VALUES ($1, $2, $3)
                     ON CONFLICT (month_year) DO NOTHING",
                )
                .bind(month)
                .bind(global_limit)
                .bind(Stamp(at))
                .execute(&mut *self)
                .await
                .context("cannot close the month")?;
            }
            Ok(())
        }
    };
}
pub(super) use statements;
