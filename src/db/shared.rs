//! Statements both backends run word for word, written once. Two things make that possible:
//! placeholders are `$N` (PostgreSQL's; sqlx's SQLite driver binds `$N` by number too), and a
//! time is bound as a [`Stamp`], which each backend encodes the way it stores time.
//! `statements!` expands these methods inside each backend's `impl Store`, so a helper such
//! as `alert_row` resolves to that backend's own. Where the dialects spell a thing
//! differently (a larger-of-two, a cast, a saturating sum) the statement names it, and
//! `dialect!` lists both spellings side by side. What really works differently (the admission
//! lock, the clock, reset's row locks, the order pruning walks) stays in `sqlite.rs` or
//! `postgres.rs`, which say why.

use chrono::{DateTime, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Database, Decode, Encode, Postgres, Row, Sqlite, Type};

use super::{LimitScope, MonthRow, UsageRowText};
use crate::domain::limits::LimitRow;
use crate::domain::Usd;

/// The names `statements!` and `row_readers!` are written with, for the backend files they
/// expand in.
pub(super) mod prelude {
    pub(in crate::db) use super::super::{
        in_flight, level_rank, log_page_sql, log_row, AlertFilter, AlertRow, ApiTokenRow,
        ArchiveReason, ArchiveRow, ClosedMonth, Hold, HoldState, InFlightCaps, LimitFilter,
        LimitRows, LimitScope, LogEntry, LogQuery, LogRow, LoggedRequest, MonthRow, PruneStep,
        Reservation, RollupFilter, Store, UsageDelta, WindowRow, ARCHIVE_RESERVED_TEXT,
        KNOWN_AI_TYPES, LEVEL_RANK, USAGE_RESERVED_TEXT, USAGE_TEXT_COLUMNS,
    };
    pub(in crate::db) use super::{
        bind_limits, for_column, rollup_upsert_sql, row_readers, upsert_limits_sql, usage_row,
        ReadTime, Stamp, Unset, ALERT_COLUMNS, HOLD_COLUMNS, LIMIT_VALUES,
    };
    pub(in crate::db) use crate::domain::alert::AlertDraft;
    pub(in crate::db) use crate::domain::level::percentage;
    pub(in crate::db) use crate::domain::limits::{LimitRow, DEFAULT_MONTHLY};
    pub(in crate::db) use crate::domain::pricing::{LongContext, Price, PriceSource, Rates};
    pub(in crate::db) use crate::domain::report::{RollupRow, UserUsage};
    pub(in crate::db) use crate::domain::usage::CostCounter;
    pub(in crate::db) use crate::domain::validate::GLOBAL_SCOPE;
    pub(in crate::db) use crate::domain::{Counter, Level, Periods, Scope, Snapshot};
    pub(in crate::db) use crate::domain::{Usd, Who};
    pub(in crate::db) use anyhow::{Context, Result};
    pub(in crate::db) use chrono::{DateTime, Utc};
    pub(in crate::db) use sqlx::Row;
}

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

pub(super) const HOLD_COLUMNS: &str =
    "id, ai_type, user_id, model, estimated_tokens, estimated_cost_nanos, month_year, day, hour";

/// The spellings in which the two dialects differ, side by side: SQLite's, then PostgreSQL's.
/// Each backend file imports its own column (`sqlite_dialect`, `postgres_dialect`), and the
/// shared statements are written with these names. `{col}` in a spelling stands for a column.
macro_rules! dialect {
    ($($(#[$doc:meta])* $name:ident: $sqlite:literal, $postgres:literal;)*) => {
        pub(super) mod sqlite_dialect {
            $($(#[$doc])* pub(in crate::db) const $name: &str = $sqlite;)*
        }
        pub(super) mod postgres_dialect {
            $($(#[$doc])* pub(in crate::db) const $name: &str = $postgres;)*
        }
    };
}

dialect! {
    /// The larger of two values: SQLite's two-argument MAX (times are text there, and compare
    /// as text).
    GREATEST: "MAX", "GREATEST";
    /// `last_request_at` as a time, whatever another program stored in it: as text on SQLite
    /// (`ReadTime` parses it), cast on PostgreSQL (the column type of a table adopted from the
    /// old system may be another).
    LAST_REQUEST_AT:
        "CAST(last_request_at AS TEXT) AS last_request_at",
        "last_request_at::TIMESTAMPTZ AS last_request_at";
    /// 'YYYY-MM' of a log row's `created_at`: a prefix of SQLite's UTC text; formatted from
    /// PostgreSQL's timestamptz.
    LOG_MONTH:
        "substr(created_at, 1, 7)",
        "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM')";
    /// `{col} = {col} + excluded.{col}` for a count another program may have left odd: NULL and
    /// negative count as 0, and the sum saturates instead of wrapping (SQLite) or failing with
    /// "bigint out of range" (PostgreSQL, which would stop every record of that AI type). SQLite
    /// keeps text rather than overwriting it (the total then reads as tokens_in + tokens_out);
    /// a PostgreSQL column holds numbers only, and a fraction is rounded up (as `domain::count`
    /// reads them).
    ADD_COUNT:
        "{col} = CASE WHEN {col} IS NULL THEN excluded.{col}
                      WHEN typeof({col}) IN ('integer', 'real') THEN MIN(MAX({col}, 0) + excluded.{col}, 9223372036854775807)
                      ELSE {col} END",
        "{col} = LEAST(CEIL(GREATEST(COALESCE(token_usage.{col}, 0), 0)::NUMERIC) + excluded.{col}, 9223372036854775807)::BIGINT";
    /// An archive row's `{col}` plus the one added, capped at the largest BIGINT: SQLite would
    /// turn the overflowing sum into a REAL, PostgreSQL fail with "bigint out of range".
    ARCHIVE_SUM:
        "MIN(a.{col} + excluded.{col}, 9223372036854775807)",
        "LEAST(a.{col}::NUMERIC + excluded.{col}, 9223372036854775807)::BIGINT";
}

/// What a daily rollup adds up per request, in the order `add_to_rollup` binds them (after
/// its key, and a request counted as 1).
const ROLLUP_COUNTS: [&str; 7] = [
    "tokens_in",
    "tokens_out",
    "cache_read_tokens",
    "cache_write_tokens",
    "total_tokens",
    "cost_nanos",
    "unpriced_requests",
];

/// The upsert of one request into the rollup `table` keyed by `keys` (bound first, then
/// `ROLLUP_COUNTS`): both rollups are written by this one statement shape.
pub(super) fn rollup_upsert_sql(table: &str, keys: &[&str]) -> String {
    let columns: Vec<&str> = keys
        .iter()
        .copied()
        .chain(["requests"])
        .chain(ROLLUP_COUNTS)
        .collect();
    let values: Vec<String> = (1..=keys.len())
        .map(|n| format!("${n}"))
        .chain(["1".to_string()])
        .chain((1..=ROLLUP_COUNTS.len()).map(|n| format!("${}", keys.len() + n)))
        .collect();
    let sums: Vec<String> = ["requests"]
        .into_iter()
        .chain(ROLLUP_COUNTS)
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}",
        columns.join(", "),
        values.join(", "),
        keys.join(", "),
        sums.join(", ")
    )
}

/// A dialect spelling (`ADD_COUNT`, `ARCHIVE_SUM`) for one column.
pub(super) fn for_column(spelling: &str, col: &str) -> String {
    spelling.replace("{col}", col)
}

/// The values of a `token_limits` row, in the order of its columns.
pub(super) const LIMIT_VALUES: [&str; 11] = [
    "monthly_limit",
    "daily_limit",
    "hourly_limit",
    "per_request_limit",
    "rpm",
    "rpd",
    "cooldown_seconds",
    "max_concurrent",
    "pacing",
    "daily_cost_nanos",
    "monthly_cost_nanos",
];

/// What an upsert of a `token_limits` row does with the values the new row leaves unset.
#[derive(Debug, Clone, Copy)]
pub(super) enum Unset {
    /// keep the stored ones (`limits set` changes only what it names)
    Keep,
    /// store them unset too (the row is replaced whole)
    Clear,
}

/// The upsert of one `token_limits` row; bind it with `bind_limits`.
pub(super) fn upsert_limits_sql(unset: Unset) -> String {
    let set: Vec<String> = LIMIT_VALUES
        .iter()
        .map(|c| match unset {
            Unset::Keep => format!("{c} = COALESCE(excluded.{c}, token_limits.{c})"),
            Unset::Clear => format!("{c} = excluded.{c}"),
        })
        .collect();
    let marks: Vec<String> = (1..=LIMIT_VALUES.len() + 3)
        .map(|n| format!("${n}"))
        .collect();
    format!(
        "INSERT INTO token_limits (scope, ai_type, {}, updated_at)
         VALUES ({})
         ON CONFLICT (scope, ai_type) DO UPDATE SET {}, updated_at = excluded.updated_at",
        LIMIT_VALUES.join(", "),
        marks.join(", "),
        set.join(", ")
    )
}

/// `upsert_limits_sql` with the row of `scope` bound, on either backend.
pub(super) fn bind_limits<'q, DB: Database>(
    sql: &'q str,
    scope: &'q LimitScope,
    row: &LimitRow,
    at: DateTime<Utc>,
) -> Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<bool>: Encode<'q, DB> + Type<DB>,
    Stamp: Encode<'q, DB> + Type<DB>,
{
    let (scope, ai_type) = scope.key();
    sqlx::query(sql)
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
        .bind(row.daily_cost.map(Usd::nanos))
        .bind(row.monthly_cost.map(Usd::nanos))
        .bind(Stamp(at))
}

impl LimitScope {
    /// The scope of a `token_limits` row, from its key (`key` is the other way).
    pub(super) fn from_key(scope: &str, ai_type: String) -> LimitScope {
        match scope {
            "default" => LimitScope::Default,
            "global" => LimitScope::Global,
            "default_user" => LimitScope::DefaultUser,
            "user" => LimitScope::User(ai_type),
            _ => LimitScope::AiType(ai_type),
        }
    }
}

/// Readers of the rows the shared statements select, for one backend's row type `$row`.
macro_rules! row_readers {
    ($row:ty) => {
        fn hold(row: &$row) -> Result<Hold> {
            Ok(Hold {
                id: row.try_get("id")?,
                ai_type: row.try_get("ai_type")?,
                user_id: row.try_get("user_id")?,
                model: row.try_get("model")?,
                estimated_tokens: row.try_get("estimated_tokens")?,
                estimated_cost: Usd::from_nanos(row.try_get("estimated_cost_nanos")?),
                month: row.try_get("month_year")?,
                day: row.try_get("day")?,
                hour: row.try_get("hour")?,
            })
        }

        fn rollup_row(r: &$row) -> Result<RollupRow> {
            let day: String = r.try_get("day")?;
            let text = |col: &str| -> Result<Option<String>> {
                Ok(Some(r.try_get::<String, _>(col)?).filter(|t| !t.is_empty()))
            };
            Ok(RollupRow {
                day: chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                    .with_context(|| format!("a daily rollup has the day '{day}'"))?,
                ai_type: r.try_get("ai_type")?,
                user_id: text("user_id")?,
                model: text("model")?,
                requests: r.try_get("requests")?,
                tokens_in: r.try_get("tokens_in")?,
                tokens_out: r.try_get("tokens_out")?,
                cache_read_tokens: r.try_get("cache_read_tokens")?,
                cache_write_tokens: r.try_get("cache_write_tokens")?,
                total_tokens: r.try_get("total_tokens")?,
                cost: Usd::from_nanos(r.try_get("cost_nanos")?),
                unpriced_requests: r.try_get("unpriced_requests")?,
            })
        }

        fn user_usage(r: &$row) -> Result<UserUsage> {
            let unpriced: i64 = r.try_get("unpriced")?;
            Ok(UserUsage {
                user_id: r.try_get("user_id")?,
                total_tokens: r.try_get("tokens")?,
                total_cost: Usd::from_nanos(r.try_get("cost_nanos")?),
                request_count: r.try_get("requests")?,
                cost_complete: unpriced == 0,
            })
        }

        /// Dollars a window or user row counts: priced and unpriced usage, and holds.
        fn cost_counter(r: &$row) -> Result<CostCounter> {
            let nanos = |col: &str| -> Result<i64> { Ok(r.try_get::<i64, _>(col)?) };
            Ok(CostCounter {
                used: Usd::from_nanos(
                    nanos("cost_nanos")?.saturating_add(nanos("unpriced_cost_nanos")?),
                ),
                reserved: Usd::from_nanos(nanos("reserved_cost_nanos")?),
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

        fn limit_row(row: &$row) -> Result<LimitRow> {
            Ok(LimitRow {
                monthly: row.try_get("monthly_limit")?,
                daily: row.try_get("daily_limit")?,
                hourly: row.try_get("hourly_limit")?,
                per_request: row.try_get("per_request_limit")?,
                rpm: row.try_get("rpm")?,
                rpd: row.try_get("rpd")?,
                cooldown_seconds: row.try_get("cooldown_seconds")?,
                max_concurrent: row.try_get("max_concurrent")?,
                // BOOLEAN on PostgreSQL; 1 or 0 on SQLite, which sqlx reads as a bool too
                pacing: row.try_get("pacing")?,
                daily_cost: row
                    .try_get::<Option<i64>, _>("daily_cost_nanos")?
                    .map(Usd::from_nanos),
                monthly_cost: row
                    .try_get::<Option<i64>, _>("monthly_cost_nanos")?
                    .map(Usd::from_nanos),
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
        async fn limit_rows(&mut self, filter: LimitFilter<'_>) -> Result<LimitRows> {
            // beside the shared rows: every AI type's ($1) or one ($2), every user's ($4) or one ($3)
            let (ai_types, ai_type, user, users) = match filter {
                LimitFilter::All => (true, None, None, true),
                LimitFilter::AiTypes => (true, None, None, false),
                LimitFilter::For(who) => (false, Some(who.ai_type), who.user_id, false),
            };
            let rows = sqlx::query(&format!(
                "SELECT scope, ai_type, {} FROM token_limits
                 WHERE scope IN ('default', 'global', 'default_user')
                    OR (scope = 'ai_type' AND ($1 OR ai_type = $2))
                    OR (scope = 'user' AND ($4 OR ai_type = $3))
                 ORDER BY ai_type",
                LIMIT_VALUES.join(", ")
            ))
            .bind(ai_types)
            .bind(ai_type)
            .bind(user)
            .bind(users)
            .fetch_all(&mut *self)
            .await
            .context("cannot read limits")?;
            let mut out = LimitRows::default();
            for row in &rows {
                let scope = LimitScope::from_key(&row.try_get::<String, _>("scope")?, row.try_get("ai_type")?);
                out.set(scope, limit_row(row)?);
            }
            Ok(out)
        }

        async fn delete_price(&mut self, model: &str, effective_from: Option<&str>) -> Result<u64> {
            let done = sqlx::query(
                "DELETE FROM token_model_prices WHERE model = $1 AND ($2 IS NULL OR effective_from = $2)",
            )
            .bind(model)
            .bind(effective_from)
            .execute(&mut *self)
            .await
            .context("cannot remove the price")?;
            Ok(done.rows_affected())
        }

        async fn held_in_month(&mut self, month: &str, ai_type: Option<&str>) -> Result<Vec<Hold>> {
            let rows = sqlx::query(&format!(
                "SELECT {HOLD_COLUMNS} FROM token_reservations
                 WHERE state = 'held' AND month_year = $1 AND ($2 IS NULL OR ai_type = $2)"
            ))
            .bind(month)
            .bind(ai_type)
            .fetch_all(&mut *self)
            .await
            .context("cannot read reservations")?;
            rows.iter().map(hold).collect()
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

        async fn savepoint(&mut self) -> Result<()> {
            sqlx::query("SAVEPOINT tokenctl_item")
                .execute(&mut *self)
                .await
                .context("cannot mark a savepoint")?;
            Ok(())
        }

        async fn release_savepoint(&mut self) -> Result<()> {
            sqlx::query("RELEASE SAVEPOINT tokenctl_item")
                .execute(&mut *self)
                .await
                .context("cannot release a savepoint")?;
            Ok(())
        }

        async fn rollback_to_savepoint(&mut self) -> Result<()> {
            sqlx::query("ROLLBACK TO SAVEPOINT tokenctl_item")
                .execute(&mut *self)
                .await
                .context("cannot roll back to a savepoint")?;
            Ok(())
        }

        async fn insert_holds(
            &mut self,
            holds: &[(Hold, DateTime<Utc>)],
            created_at: DateTime<Utc>,
        ) -> Result<()> {
            // a batch's holds in statements of at most 100 rows (800 parameters: under
            // SQLite's and PostgreSQL's limits alike)
            for chunk in holds.chunks(100) {
                let rows: Vec<String> = (0..chunk.len())
                    .map(|i| {
                        let marks: Vec<String> = (1..=11).map(|k| format!("${}", i * 11 + k)).collect();
                        format!("({}, 'held')", marks.join(", "))
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO token_reservations (id, ai_type, user_id, model, estimated_tokens, estimated_cost_nanos,
                         month_year, day, hour, created_at, expires_at, state)
                     VALUES {}",
                    rows.join(", ")
                );
                let mut q = sqlx::query(&sql);
                for (h, expires_at) in chunk {
                    q = q
                        .bind(&h.id)
                        .bind(&h.ai_type)
                        .bind(&h.user_id)
                        .bind(&h.model)
                        .bind(h.estimated_tokens)
                        .bind(h.estimated_cost.nanos())
                        .bind(&h.month)
                        .bind(&h.day)
                        .bind(&h.hour)
                        .bind(Stamp(created_at))
                        .bind(Stamp(*expires_at));
                }
                q.execute(&mut *self)
                    .await
                    .context("cannot save the reservation")?;
            }
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
                     month_year, reservation_id, cost_nanos, cache_read_tokens, cache_write_tokens)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&e.ai_type)
            .bind(&e.model)
            .bind(e.tokens_in)
            .bind(e.tokens_out)
            .bind(e.tokens_in.saturating_add(e.tokens_out))
            .bind(e.cost.map(Usd::to_f64))
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
            .bind(e.cost.map(Usd::nanos))
            .bind(e.cache_read_tokens)
            .bind(e.cache_write_tokens)
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
                "SELECT model, effective_from, input_nanos, output_nanos, cache_read_nanos, cache_write_nanos,
                        long_above_tokens, long_input_nanos, long_output_nanos, long_cache_read_nanos,
                        long_cache_write_nanos
                 FROM token_model_prices ORDER BY model, effective_from",
            )
            .fetch_all(&mut *self)
            .await
            .context("cannot read prices")?;
            rows.iter()
                .map(|r| {
                    let usd = |col: &str| -> Result<Option<Usd>> {
                        Ok(r.try_get::<Option<i64>, _>(col)?.map(Usd::from_nanos))
                    };
                    let rates = |prefix: &str| -> Result<Option<Rates>> {
                        let (input, output) = (usd(&format!("{prefix}input_nanos"))?, usd(&format!("{prefix}output_nanos"))?);
                        Ok(input.zip(output).map(|(input, output)| Rates {
                            input,
                            output,
                            cache_read: usd(&format!("{prefix}cache_read_nanos")).ok().flatten(),
                            cache_write: usd(&format!("{prefix}cache_write_nanos")).ok().flatten(),
                        }))
                    };
                    let above: Option<i64> = r.try_get("long_above_tokens")?;
                    let from: String = r.try_get("effective_from")?;
                    Ok(Price {
                        model: r.try_get("model")?,
                        rates: rates("")?.context("a stored price lacks its input or output rate")?,
                        long_context: above
                            .zip(rates("long_")?)
                            .map(|(above_tokens, rates)| LongContext { above_tokens, rates }),
                        // the date that stands for "always" reads as none
                        effective_from: chrono::NaiveDate::parse_from_str(&from, "%Y-%m-%d")
                            .ok()
                            .filter(|d| *d > chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()),
                        source: PriceSource::Database,
                    })
                })
                .collect()
        }

        async fn upsert_price(&mut self, p: &Price, at: DateTime<Utc>) -> Result<bool> {
            let from = p
                .effective_from
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| "1970-01-01".to_string());
            let long = p.long_context.as_ref();
            let nanos = |u: Option<Usd>| u.map(Usd::nanos);
            // only a changed price is written: an import of a whole catalogue says what changed
            let done = sqlx::query(
                "INSERT INTO token_model_prices (model, effective_from, input_nanos, output_nanos, cache_read_nanos,
                     cache_write_nanos, long_above_tokens, long_input_nanos, long_output_nanos, long_cache_read_nanos,
                     long_cache_write_nanos, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (model, effective_from) DO UPDATE SET
                     input_nanos = excluded.input_nanos, output_nanos = excluded.output_nanos,
                     cache_read_nanos = excluded.cache_read_nanos, cache_write_nanos = excluded.cache_write_nanos,
                     long_above_tokens = excluded.long_above_tokens, long_input_nanos = excluded.long_input_nanos,
                     long_output_nanos = excluded.long_output_nanos, long_cache_read_nanos = excluded.long_cache_read_nanos,
                     long_cache_write_nanos = excluded.long_cache_write_nanos, updated_at = excluded.updated_at
                 WHERE token_model_prices.input_nanos IS DISTINCT FROM excluded.input_nanos
                    OR token_model_prices.output_nanos IS DISTINCT FROM excluded.output_nanos
                    OR token_model_prices.cache_read_nanos IS DISTINCT FROM excluded.cache_read_nanos
                    OR token_model_prices.cache_write_nanos IS DISTINCT FROM excluded.cache_write_nanos
                    OR token_model_prices.long_above_tokens IS DISTINCT FROM excluded.long_above_tokens
                    OR token_model_prices.long_input_nanos IS DISTINCT FROM excluded.long_input_nanos
                    OR token_model_prices.long_output_nanos IS DISTINCT FROM excluded.long_output_nanos
                    OR token_model_prices.long_cache_read_nanos IS DISTINCT FROM excluded.long_cache_read_nanos
                    OR token_model_prices.long_cache_write_nanos IS DISTINCT FROM excluded.long_cache_write_nanos",
            )
            .bind(&p.model)
            .bind(from)
            .bind(p.rates.input.nanos())
            .bind(p.rates.output.nanos())
            .bind(nanos(p.rates.cache_read))
            .bind(nanos(p.rates.cache_write))
            .bind(long.map(|l| l.above_tokens))
            .bind(long.map(|l| l.rates.input.nanos()))
            .bind(long.map(|l| l.rates.output.nanos()))
            .bind(long.and_then(|l| nanos(l.rates.cache_read)))
            .bind(long.and_then(|l| nanos(l.rates.cache_write)))
            .bind(Stamp(at))
            .execute(&mut *self)
            .await
            .context("cannot save the price")?;
            Ok(done.rows_affected() > 0)
        }

        async fn rollup_rows(&mut self, f: &RollupFilter<'_>) -> Result<Vec<RollupRow>> {
            // only the filters given, each a plain comparison: `$n IS NULL OR user_id = $n`
            // would keep SQLite from the (user_id, day) index, and read every user's rows
            let mut conditions = vec!["day >= $1".to_string(), "day <= $2".to_string()];
            let mut values = vec![f.since, f.until];
            for (column, value) in [("ai_type", f.ai_type), ("user_id", f.user_id)] {
                if let Some(value) = value {
                    values.push(value);
                    conditions.push(format!("{column} = ${}", values.len()));
                }
            }
            let sql = format!(
                "SELECT day, ai_type, user_id, model, requests, tokens_in, tokens_out, cache_read_tokens,
                        cache_write_tokens, total_tokens, cost_nanos, unpriced_requests
                 FROM token_usage_daily
                 WHERE {}
                 ORDER BY day, ai_type, user_id, model",
                conditions.join(" AND ")
            );
            let mut query = sqlx::query(&sql);
            for value in values {
                query = query.bind(value);
            }
            let rows = query
                .fetch_all(&mut *self)
                .await
                .context("cannot read the daily rollups")?;
            rows.iter().map(rollup_row).collect()
        }

        async fn model_rollup_rows(&mut self, f: &RollupFilter<'_>) -> Result<Vec<RollupRow>> {
            let rows = sqlx::query(
                "SELECT day, ai_type, '' AS user_id, model, requests, tokens_in, tokens_out, cache_read_tokens,
                        cache_write_tokens, total_tokens, cost_nanos, unpriced_requests
                 FROM token_usage_daily_models
                 WHERE day >= $1 AND day <= $2 AND ($3 IS NULL OR ai_type = $3)
                 ORDER BY day, ai_type, model",
            )
            .bind(f.since)
            .bind(f.until)
            .bind(f.ai_type)
            .fetch_all(&mut *self)
            .await
            .context("cannot read the daily rollups")?;
            rows.iter().map(rollup_row).collect()
        }

        async fn day_user_counts(&mut self, f: &RollupFilter<'_>) -> Result<Vec<(String, i64)>> {
            let query = match f.ai_type {
                None => sqlx::query("SELECT day, users FROM token_day_users WHERE day >= $1 AND day <= $2")
                    .bind(f.since)
                    .bind(f.until),
                Some(ai_type) => sqlx::query(
                    "SELECT day, COUNT(DISTINCT user_id) AS users FROM token_usage_daily
                     WHERE day >= $1 AND day <= $2 AND ai_type = $3 AND user_id <> '' GROUP BY day",
                )
                .bind(f.since)
                .bind(f.until)
                .bind(ai_type),
            };
            let rows = query
                .fetch_all(&mut *self)
                .await
                .context("cannot count the days' users")?;
            rows.iter()
                .map(|r| Ok((r.try_get("day")?, r.try_get("users")?)))
                .collect()
        }

        async fn distinct_users(&mut self, f: &RollupFilter<'_>, through_today: bool) -> Result<i64> {
            let query = if through_today && f.ai_type.is_none() {
                // a few rows, one a day, however many users there are
                sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(users), 0) AS BIGINT) FROM token_last_days WHERE day >= $1",
                )
                .bind(f.since)
            } else {
                sqlx::query_scalar(
                    "SELECT COUNT(DISTINCT user_id) FROM token_usage_daily
                     WHERE day >= $1 AND day <= $2 AND user_id <> '' AND ($3 IS NULL OR ai_type = $3)",
                )
                .bind(f.since)
                .bind(f.until)
                .bind(f.ai_type)
            };
            query
                .fetch_one(&mut *self)
                .await
                .context("cannot count the users")
        }

        async fn top_users_of_day(&mut self, day: &str, skip: i64, take: i64) -> Result<Vec<(String, i64)>> {
            // backwards along the (period, cost_nanos, user_id) index: no sort
            let rows = sqlx::query(
                "SELECT user_id, cost_nanos FROM token_user_usage WHERE period = $1 AND requests > 0
                 ORDER BY cost_nanos DESC, user_id DESC LIMIT $2 OFFSET $3",
            )
            .bind(day)
            .bind(take)
            .bind(skip)
            .fetch_all(&mut *self)
            .await
            .context("cannot read the day's users")?;
            rows.iter()
                .map(|r| Ok((r.try_get("user_id")?, r.try_get("cost_nanos")?)))
                .collect()
        }

        async fn user_totals(&mut self, users: &[String], since: &str, until: &str) -> Result<Vec<UserUsage>> {
            let mut out = Vec::with_capacity(users.len());
            // 1,000 ids a statement: under both databases' limits on parameters
            for chunk in users.chunks(1000) {
                let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
                let sql = format!(
                    "SELECT user_id, CAST(SUM(tokens) AS BIGINT) AS tokens, CAST(SUM(cost_nanos) AS BIGINT) AS cost_nanos,
                            CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(unpriced_requests) AS BIGINT) AS unpriced
                     FROM token_user_usage
                     -- day rows only: a month's row ('YYYY-MM') sorts among them
                     WHERE period >= $1 AND period <= $2 AND LENGTH(period) = 10 AND user_id IN ({})
                     GROUP BY user_id
                     -- a reservation alone makes a row: a user is one who made a request
                     HAVING SUM(requests) > 0",
                    marks.join(", ")
                );
                let mut q = sqlx::query(&sql).bind(since).bind(until);
                for u in chunk {
                    q = q.bind(u);
                }
                let rows = q.fetch_all(&mut *self).await.context("cannot read the users' usage")?;
                for r in &rows {
                    out.push(user_usage(r)?);
                }
            }
            Ok(out)
        }

        async fn top_users_scan(&mut self, f: &RollupFilter<'_>, n: i64) -> Result<Vec<UserUsage>> {
            let rows = sqlx::query(
                "SELECT user_id, CAST(SUM(total_tokens) AS BIGINT) AS tokens, CAST(SUM(cost_nanos) AS BIGINT) AS cost_nanos,
                        CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(unpriced_requests) AS BIGINT) AS unpriced
                 FROM token_usage_daily
                 WHERE day >= $1 AND day <= $2 AND user_id <> '' AND ($3 IS NULL OR ai_type = $3)
                 GROUP BY user_id
                 ORDER BY cost_nanos DESC, tokens DESC, user_id
                 LIMIT $4",
            )
            .bind(f.since)
            .bind(f.until)
            .bind(f.ai_type)
            .bind(n)
            .fetch_all(&mut *self)
            .await
            .context("cannot read the top users")?;
            rows.iter().map(user_usage).collect()
        }

        async fn add_to_rollup(&mut self, d: &UsageDelta<'_>) -> Result<()> {
            let counts = [
                d.tokens_in,
                d.tokens_out,
                d.cache_read_tokens,
                d.cache_write_tokens,
                d.tokens_in.saturating_add(d.tokens_out),
                d.cost.unwrap_or_default().nanos(),
                i64::from(d.cost.is_none()),
            ];
            let (user, model) = (d.user_id.unwrap_or_default(), d.model.unwrap_or_default());
            let rollups: [(&str, &[&str], Vec<&str>); 2] = [
                (
                    "token_usage_daily",
                    &["day", "ai_type", "user_id", "model"],
                    vec![&d.periods.day, d.ai_type, user, model],
                ),
                (
                    "token_usage_daily_models",
                    &["day", "ai_type", "model"],
                    vec![&d.periods.day, d.ai_type, model],
                ),
            ];
            for (table, keys, key_values) in rollups {
                let sql = rollup_upsert_sql(table, keys);
                let mut q = sqlx::query(&sql);
                for k in key_values {
                    q = q.bind(k);
                }
                for n in counts {
                    q = q.bind(n);
                }
                q.execute(&mut *self)
                    .await
                    .context("cannot update the daily rollups")?;
            }
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
            // day and hour rows (the month's own row carries its dollars)
            let rows = sqlx::query(
                "SELECT ai_type, period, tokens, reserved, requests FROM token_usage_windows
                 WHERE month_year = $1 AND ai_type = $2 AND period <> month_year ORDER BY period",
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

        async fn insert_api_token(
            &mut self,
            name: &str,
            scope: &str,
            secret_sha256: &str,
            at: DateTime<Utc>,
        ) -> Result<bool> {
            let done = sqlx::query(
                "INSERT INTO tokenctl_api_tokens (name, scope, secret_sha256, created_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(name)
            .bind(scope)
            .bind(secret_sha256)
            .bind(Stamp(at))
            .execute(&mut *self)
            .await
            .context("cannot save the token")?;
            Ok(done.rows_affected() == 1)
        }

        async fn api_tokens(&mut self, include_revoked: bool) -> Result<Vec<ApiTokenRow>> {
            let rows = sqlx::query(
                "SELECT name, scope, created_at, revoked_at FROM tokenctl_api_tokens
                 WHERE revoked_at IS NULL OR $1 ORDER BY created_at DESC, id DESC",
            )
            .bind(include_revoked)
            .fetch_all(&mut *self)
            .await
            .context("cannot read the tokens")?;
            rows.iter()
                .map(|r| {
                    Ok(ApiTokenRow {
                        name: r.try_get("name")?,
                        scope: r.try_get("scope")?,
                        created_at: r.try_get::<ReadTime, _>("created_at")?.0.unwrap_or_default(),
                        revoked_at: r.try_get::<Option<ReadTime>, _>("revoked_at")?.and_then(|t| t.0),
                    })
                })
                .collect()
        }

        async fn revoke_api_token(&mut self, name: &str, at: DateTime<Utc>) -> Result<bool> {
            let done = sqlx::query(
                "UPDATE tokenctl_api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
            )
            .bind(name)
            .bind(Stamp(at))
            .execute(&mut *self)
            .await
            .context("cannot revoke the token")?;
            Ok(done.rows_affected() > 0)
        }

        async fn api_token_by_secret(&mut self, secret_sha256: &str) -> Result<Option<(String, String)>> {
            let row = sqlx::query(
                "SELECT name, scope FROM tokenctl_api_tokens WHERE secret_sha256 = $1 AND revoked_at IS NULL",
            )
            .bind(secret_sha256)
            .fetch_optional(&mut *self)
            .await
            .context("cannot read the tokens")?;
            row.map(|r| Ok((r.try_get("name")?, r.try_get("scope")?))).transpose()
        }

        async fn ping(&mut self) -> Result<()> {
            sqlx::query("SELECT 1")
                .execute(&mut *self)
                .await
                .context("the database does not answer")?;
            Ok(())
        }

        async fn held_count(&mut self, now: DateTime<Utc>) -> Result<i64> {
            let n = sqlx::query_scalar(
                "SELECT COUNT(*) FROM token_reservations WHERE state = 'held' AND expires_at > $1",
            )
            .bind(Stamp(now))
            .fetch_one(&mut *self)
            .await
            .context("cannot count reservations")?;
            Ok(n)
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
            let Some(row) = row else {
                let (scope, ai_type) = scope.key();
                sqlx::query("DELETE FROM token_limits WHERE scope = $1 AND ai_type = $2")
                    .bind(scope)
                    .bind(ai_type)
                    .execute(&mut *self)
                    .await
                    .context("cannot save limits")?;
                return Ok(());
            };
            let sql = upsert_limits_sql(Unset::Clear);
            bind_limits(&sql, scope, row, at)
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

        async fn count_start(
            &mut self,
            ai_type: &str,
            requests: i64,
            p: &Periods,
            at: DateTime<Utc>,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO token_usage_windows (ai_type, period, month_year, requests)
                 VALUES ($1, $3, $5, $6), ($1, $4, $5, $6), ($2, $3, $5, $6), ($2, $4, $5, $6)
                 ON CONFLICT (ai_type, period) DO UPDATE SET requests = token_usage_windows.requests + $6",
            )
            .bind(ai_type)
            .bind(GLOBAL_SCOPE)
            .bind(&p.day)
            .bind(&p.hour)
            .bind(&p.month)
            .bind(requests)
            .execute(&mut *self)
            .await
            .context("cannot count the request")?;
            sqlx::query(
                &format!(
                "INSERT INTO token_request_starts (ai_type, last_start_at, minute, minute_requests)
                 VALUES ($1, $3, $4, $5), ($2, $3, $4, $5)
                 ON CONFLICT (ai_type) DO UPDATE SET
                     minute_requests = CASE WHEN excluded.minute > token_request_starts.minute
                                            THEN $5 ELSE token_request_starts.minute_requests + $5 END,
                     minute = {GREATEST}(token_request_starts.minute, excluded.minute),
                     last_start_at = {GREATEST}(token_request_starts.last_start_at, excluded.last_start_at)"
            ),
            )
            .bind(ai_type)
            .bind(GLOBAL_SCOPE)
            .bind(Stamp(at))
            .bind(&p.minute)
            .bind(requests)
            .execute(&mut *self)
            .await
            .context("cannot count the request")?;
            Ok(())
        }
        async fn add_usage(&mut self, d: &UsageDelta<'_>) -> Result<()> {
            let total = d.tokens_in.saturating_add(d.tokens_out);
            sqlx::query(&format!(
                "INSERT INTO token_usage (ai_type, month_year, monthly_limit, tokens_in, tokens_out, total_tokens,
                                          request_count, cost_nanos, cost_usd, unpriced_requests, last_request_at,
                                          created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 1, $7, CAST($7 AS DOUBLE PRECISION) / 1000000000.0, $9, $8, $8, $8)
                 ON CONFLICT (ai_type, month_year) DO UPDATE SET
                     monthly_limit = excluded.monthly_limit,
                     {}, {}, {}, {},
                     cost_nanos = token_usage.cost_nanos + excluded.cost_nanos,
                     -- the existing backend's column stays a running sum, so what it adds there
                     -- itself is kept; tokenctl's own figures come from cost_nanos
                     cost_usd = COALESCE(token_usage.cost_usd, 0) + excluded.cost_usd,
                     unpriced_requests = token_usage.unpriced_requests + excluded.unpriced_requests,
                     last_request_at = excluded.last_request_at,
                     updated_at = excluded.updated_at",
                for_column(ADD_COUNT, "tokens_in"),
                for_column(ADD_COUNT, "tokens_out"),
                for_column(ADD_COUNT, "total_tokens"),
                for_column(ADD_COUNT, "request_count"),
            ))
            .bind(d.ai_type)
            .bind(&d.periods.month)
            .bind(d.monthly_limit)
            .bind(d.tokens_in)
            .bind(d.tokens_out)
            .bind(total)
            .bind(d.cost.unwrap_or_default().nanos())
            .bind(Stamp(d.at))
            .bind(i64::from(d.cost.is_none()))
            .execute(&mut *self)
            .await
            .context("cannot update this month's usage")?;
            // the AI type's and the total's day, hour and month rows (the month's for its dollars)
            sqlx::query(
                "INSERT INTO token_usage_windows (ai_type, period, month_year, tokens, requests, cost_nanos, unpriced_cost_nanos)
                 VALUES ($1, $3, $5, $6, 0, $7, $8), ($1, $4, $5, $6, 0, $7, $8), ($1, $5, $5, $6, 0, $7, $8),
                        ($2, $3, $5, $6, 0, $7, $8), ($2, $4, $5, $6, 0, $7, $8), ($2, $5, $5, $6, 0, $7, $8)
                 ON CONFLICT (ai_type, period) DO UPDATE SET
                     tokens = token_usage_windows.tokens + excluded.tokens,
                     cost_nanos = token_usage_windows.cost_nanos + excluded.cost_nanos,
                     unpriced_cost_nanos = token_usage_windows.unpriced_cost_nanos + excluded.unpriced_cost_nanos",
            )
            .bind(d.ai_type)
            .bind(GLOBAL_SCOPE)
            .bind(&d.periods.day)
            .bind(&d.periods.hour)
            .bind(&d.periods.month)
            .bind(total)
            .bind(d.cost.unwrap_or_default().nanos())
            .bind(d.unpriced_charge.nanos())
            .execute(&mut *self)
            .await
            .context("cannot update today's usage")?;
            Ok(())
        }

        async fn add_user_usage(&mut self, d: &UsageDelta<'_>) -> Result<()> {
            let total = d.tokens_in.saturating_add(d.tokens_out);
            let Some(user) = d.user_id else { return Ok(()) };
            // the user's day, then month; the day's request count says whether this is
            // their first request of the day (a reservation alone makes a row, not a user)
            let mut requests_today = 0;
            for period in [&d.periods.day, &d.periods.month] {
                let requests: i64 = sqlx::query_scalar(
                    "INSERT INTO token_user_usage (user_id, period, month_year, tokens, requests, cost_nanos,
                         unpriced_cost_nanos, unpriced_requests)
                     VALUES ($1, $2, $3, $4, 1, $5, $6, $7)
                     ON CONFLICT (user_id, period) DO UPDATE SET
                         tokens = token_user_usage.tokens + excluded.tokens,
                         requests = token_user_usage.requests + 1,
                         cost_nanos = token_user_usage.cost_nanos + excluded.cost_nanos,
                         unpriced_cost_nanos = token_user_usage.unpriced_cost_nanos + excluded.unpriced_cost_nanos,
                         unpriced_requests = token_user_usage.unpriced_requests + excluded.unpriced_requests
                     RETURNING requests",
                )
                .bind(user)
                .bind(period)
                .bind(&d.periods.month)
                .bind(total)
                .bind(d.cost.unwrap_or_default().nanos())
                .bind(d.unpriced_charge.nanos())
                .bind(i64::from(d.cost.is_none()))
                .fetch_one(&mut *self)
                .await
                .context("cannot update the user's usage")?;
                if *period == d.periods.day {
                    requests_today = requests;
                }
            }
            if requests_today == 1 {
                sqlx::query(
                    "INSERT INTO token_day_users (day, users) VALUES ($1, 1)
                     ON CONFLICT (day) DO UPDATE SET users = token_day_users.users + 1",
                )
                .bind(&d.periods.day)
                .execute(&mut *self)
                .await
                .context("cannot count the day's users")?;
                // the user's last active day moves on (never back: a clock behind records an
                // older day), and the count of users last active on each day with it
                let last: Option<String> =
                    sqlx::query_scalar("SELECT last_day FROM token_users WHERE user_id = $1")
                        .bind(user)
                        .fetch_optional(&mut *self)
                        .await
                        .context("cannot count the day's users")?;
                if last.as_deref().is_some_and(|l| l >= d.periods.day.as_str()) {
                    return Ok(());
                }
                sqlx::query(
                    "INSERT INTO token_users (user_id, last_day) VALUES ($1, $2)
                     ON CONFLICT (user_id) DO UPDATE SET last_day = excluded.last_day",
                )
                .bind(user)
                .bind(&d.periods.day)
                .execute(&mut *self)
                .await
                .context("cannot count the day's users")?;
                sqlx::query(
                    "INSERT INTO token_last_days (day, users) VALUES ($1, 1)
                     ON CONFLICT (day) DO UPDATE SET users = token_last_days.users + 1",
                )
                .bind(&d.periods.day)
                .execute(&mut *self)
                .await
                .context("cannot count the day's users")?;
                if let Some(last) = last {
                    sqlx::query("UPDATE token_last_days SET users = users - 1 WHERE day = $1")
                        .bind(last)
                        .execute(&mut *self)
                        .await
                        .context("cannot count the day's users")?;
                }
            }
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

        async fn update_limits(
            &mut self,
            scope: &LimitScope,
            c: &LimitRow,
            at: DateTime<Utc>,
        ) -> Result<()> {
            let sql = upsert_limits_sql(Unset::Keep);
            bind_limits(&sql, scope, c, at)
                .execute(&mut *self)
                .await
                .context("cannot save limits")?;
            Ok(())
        }

        async fn snapshot(
            &mut self,
            who: Who<'_>,
            p: &Periods,
            now: DateTime<Utc>,
            caps: InFlightCaps,
        ) -> Result<Snapshot> {
            let ai_type = who.ai_type;
            // each scope's window and start rows carry its key in their ai_type column
            let scopes = [
                (Scope::AiType, ai_type, caps.ai_type),
                (Scope::Global, GLOBAL_SCOPE, caps.global),
            ];
            let scope_of = |key: &str| scopes.iter().find(|(_, k, _)| *k == key).map(|(s, ..)| s);
            let mut snap = Snapshot::default();
            let windows = sqlx::query(
                "SELECT ai_type, period, tokens, reserved, requests, cost_nanos, unpriced_cost_nanos, reserved_cost_nanos
                 FROM token_usage_windows
                 WHERE ai_type IN ($1, $2) AND period IN ($3, $4, $5)",
            )
            .bind(ai_type)
            .bind(GLOBAL_SCOPE)
            .bind(&p.day)
            .bind(&p.hour)
            .bind(&p.month)
            .fetch_all(&mut *self)
            .await
            .context("cannot read today's usage")?;
            for w in &windows {
                let Some(scope) = scope_of(&w.try_get::<String, _>("ai_type")?) else {
                    continue;
                };
                let usage = snap.usage_mut(scope);
                let counter = Counter {
                    used: w.try_get("tokens")?,
                    reserved: w.try_get("reserved")?,
                };
                let cost = cost_counter(w)?;
                let period: String = w.try_get("period")?;
                if period == p.day {
                    usage.day = counter;
                    usage.day_cost = cost;
                    usage.rate.day_requests = w.try_get("requests")?;
                } else if period == p.month {
                    // the month's tokens are read from token_usage (rows other programs write)
                    usage.month_cost = cost;
                } else {
                    usage.hour = counter;
                }
            }
            if let Some(user) = who.user_id {
                let rows = sqlx::query(
                    "SELECT period, tokens, reserved, cost_nanos, unpriced_cost_nanos, reserved_cost_nanos
                     FROM token_user_usage WHERE user_id = $1 AND period IN ($2, $3)",
                )
                .bind(user)
                .bind(&p.day)
                .bind(&p.month)
                .fetch_all(&mut *self)
                .await
                .context("cannot read the user's usage")?;
                let usage = snap.usage_mut(&Scope::User);
                for r in &rows {
                    let counter = Counter {
                        used: r.try_get("tokens")?,
                        reserved: r.try_get("reserved")?,
                    };
                    if r.try_get::<String, _>("period")? == p.day {
                        (usage.day, usage.day_cost) = (counter, cost_counter(r)?);
                    } else {
                        (usage.month, usage.month_cost) = (counter, cost_counter(r)?);
                    }
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
                let Some(scope) = scope_of(&r.try_get::<String, _>("ai_type")?) else {
                    continue;
                };
                let rate = &mut snap.usage_mut(scope).rate;
                let minute: String = r.try_get("minute")?;
                // a minute later than this clock's: another writer's clock is ahead; its count
                // is the latest there is, so it counts (a writer behind cannot dodge the rpm)
                if minute.as_str() >= p.minute.as_str() {
                    rate.minute_requests = r.try_get("minute_requests")?;
                }
                rate.last_start_at = r.try_get::<ReadTime, _>("last_start_at")?.0;
            }
            for (scope, key, cap) in &scopes {
                let Some(limit) = *cap else { continue };
                let sql = match scope {
                    // users have no concurrency limit (ScopeLimits::for_user)
                    Scope::AiType | Scope::User => {
                        "SELECT expires_at FROM token_reservations WHERE ai_type = $3 AND state = 'held' AND expires_at > $1
                         ORDER BY expires_at LIMIT $2"
                    }
                    Scope::Global => {
                        "SELECT expires_at FROM token_reservations WHERE state = 'held' AND expires_at > $1 AND $3 = $3
                         ORDER BY expires_at LIMIT $2"
                    }
                };
                let times: Vec<ReadTime> = sqlx::query_scalar(sql)
                    .bind(Stamp(now))
                    .bind(limit.saturating_add(1))
                    .bind(*key)
                    .fetch_all(&mut *self)
                    .await
                    .context("cannot count requests in flight")?;
                let times: Vec<DateTime<Utc>> = times.iter().filter_map(|t| t.0).collect();
                let rate = &mut snap.usage_mut(scope).rate;
                (rate.in_flight, rate.slot_free_at) = in_flight(&times, limit);
                snap.held_until.push(((*scope).clone(), times));
            }
            Ok(snap)
        }

        async fn add_reserved(
            &mut self,
            h: &Hold,
            delta: i64,
            cost: i64,
            monthly_limit: i64,
            at: DateTime<Utc>,
        ) -> Result<()> {
            sqlx::query(&format!(
                "INSERT INTO token_usage (ai_type, month_year, monthly_limit, reserved_tokens, created_at, updated_at)
                 VALUES ($1, $2, $3, {GREATEST}($4, 0), $5, $5)
                 ON CONFLICT (ai_type, month_year) DO UPDATE SET
                     reserved_tokens = {GREATEST}(0, token_usage.reserved_tokens + $4)"
            ))
            .bind(&h.ai_type)
            .bind(&h.month)
            .bind(monthly_limit)
            .bind(delta)
            .bind(Stamp(at))
            .execute(&mut *self)
            .await
            .context("cannot update reserved tokens")?;
            sqlx::query(&format!(
                "INSERT INTO token_usage_windows (ai_type, period, month_year, reserved, reserved_cost_nanos)
                 VALUES ($1, $3, $5, {GREATEST}($6, 0), {GREATEST}($7, 0)), ($1, $4, $5, {GREATEST}($6, 0), {GREATEST}($7, 0)),
                        ($1, $5, $5, {GREATEST}($6, 0), {GREATEST}($7, 0)),
                        ($2, $3, $5, {GREATEST}($6, 0), {GREATEST}($7, 0)), ($2, $4, $5, {GREATEST}($6, 0), {GREATEST}($7, 0)),
                        ($2, $5, $5, {GREATEST}($6, 0), {GREATEST}($7, 0))
                 ON CONFLICT (ai_type, period) DO UPDATE SET
                     reserved = {GREATEST}(0, token_usage_windows.reserved + $6),
                     reserved_cost_nanos = {GREATEST}(0, token_usage_windows.reserved_cost_nanos + $7)"
            ))
            .bind(&h.ai_type)
            .bind(GLOBAL_SCOPE)
            .bind(&h.day)
            .bind(&h.hour)
            .bind(&h.month)
            .bind(delta)
            .bind(cost)
            .execute(&mut *self)
            .await
            .context("cannot update reserved tokens")?;
            if let Some(user) = &h.user_id {
                sqlx::query(&format!(
                    "INSERT INTO token_user_usage (user_id, period, month_year, reserved, reserved_cost_nanos)
                     VALUES ($1, $2, $3, {GREATEST}($4, 0), {GREATEST}($5, 0)), ($1, $3, $3, {GREATEST}($4, 0), {GREATEST}($5, 0))
                     ON CONFLICT (user_id, period) DO UPDATE SET
                         reserved = {GREATEST}(0, token_user_usage.reserved + $4),
                         reserved_cost_nanos = {GREATEST}(0, token_user_usage.reserved_cost_nanos + $5)"
                ))
                .bind(user)
                .bind(&h.day)
                .bind(&h.month)
                .bind(delta)
                .bind(cost)
                .execute(&mut *self)
                .await
                .context("cannot update the user's reserved tokens")?;
            }
            Ok(())
        }

        async fn find_log(
            &mut self,
            request_id: Option<&str>,
            reservation_id: Option<&str>,
        ) -> Result<Option<LoggedRequest>> {
            let row = sqlx::query(&format!(
                "SELECT ai_type, COALESCE(month_year, {LOG_MONTH}) AS month_year,
                        CAST(tokens_in AS BIGINT) AS tokens_in, CAST(tokens_out AS BIGINT) AS tokens_out,
                        cost_nanos, CAST(cost_usd AS DOUBLE PRECISION) AS cost_usd, reservation_id
                 FROM token_usage_logs WHERE request_id = $1 OR reservation_id = $2 ORDER BY id LIMIT 1"
            ))
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
                    // the exact figure; a row another program wrote has the float only
                    cost: match r.try_get::<Option<i64>, _>("cost_nanos")? {
                        Some(nanos) => Some(Usd::from_nanos(nanos)),
                        None => r.try_get::<Option<f64>, _>("cost_usd")?.and_then(Usd::from_f64),
                    },
                })
            })
            .transpose()
        }

        async fn window_rows(&mut self, periods: &[&str]) -> Result<Vec<WindowRow>> {
            if periods.is_empty() {
                return Ok(Vec::new());
            }
            // one placeholder per period (SQLite has no arrays)
            let marks: Vec<String> = (1..=periods.len()).map(|n| format!("${n}")).collect();
            let sql = format!(
                "SELECT ai_type, period, tokens, reserved, requests FROM token_usage_windows WHERE period IN ({})",
                marks.join(", ")
            );
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
            let sum = |col| for_column(ARCHIVE_SUM, col);
            sqlx::query(&format!(
                "INSERT INTO token_usage_archive AS a (ai_type, month_year, monthly_limit, tokens_in, tokens_out, total_tokens,
                     request_count, usage_percentage, status, last_request_at, created_at, updated_at, cost_usd, archived_at, reason,
                     unpriced_requests)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $11, $13, $14)
                 ON CONFLICT (ai_type, month_year) WHERE reason = 'monthly' DO UPDATE SET
                     monthly_limit = COALESCE(a.monthly_limit, excluded.monthly_limit),
                     tokens_in = {}, tokens_out = {}, total_tokens = {}, request_count = {},
                     usage_percentage = CASE WHEN COALESCE(a.monthly_limit, excluded.monthly_limit, 0) > 0
                         THEN {} * 100.0 / COALESCE(a.monthly_limit, excluded.monthly_limit)
                         ELSE 0 END,
                     cost_usd = a.cost_usd + excluded.cost_usd,
                     unpriced_requests = a.unpriced_requests + excluded.unpriced_requests,
                     -- the later of the two; SQLite's MAX is NULL when either is
                     last_request_at = COALESCE({GREATEST}(a.last_request_at, excluded.last_request_at),
                                                a.last_request_at, excluded.last_request_at),
                     updated_at = excluded.updated_at",
                sum("tokens_in"),
                sum("tokens_out"),
                sum("total_tokens"),
                sum("request_count"),
                sum("total_tokens"),
            ))
            .bind(&row.ai_type)
            .bind(&row.month)
            .bind(row.monthly_limit)
            .bind(row.tokens_in)
            .bind(row.tokens_out)
            .bind(row.total_tokens)
            .bind(row.request_count)
            .bind(percentage(row.total_tokens, row.monthly_limit.unwrap_or(0)))
            .bind(&row.status)
            .bind(row.last_request_at.map(Stamp))
            .bind(Stamp(at))
            .bind(row.cost.to_f64())
            .bind(reason.as_str())
            .bind(row.unpriced_requests)
            .execute(&mut *self)
            .await
            .context("cannot write the archive")?;
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
                     status = 'active', reserved_tokens = 0, cost_usd = 0, cost_nanos = 0, unpriced_requests = 0, updated_at = $3
                 WHERE month_year = $1 AND ($2 IS NULL OR ai_type = $2)",
                "UPDATE token_reservations SET state = 'released', ended_at = $3
                 WHERE state = 'held' AND month_year = $1 AND ($2 IS NULL OR ai_type = $2)",
            ] {
                sqlx::query(sql)
                    .bind(month)
                    .bind(ai_type)
                    .bind(Stamp(at))
                    .execute(&mut *self)
                    .await
                    .context("cannot reset this month")?;
            }
            if let Some(ai_type) = ai_type {
                // the total's windows lose exactly what this AI type's windows held
                sqlx::query(&format!(
                    "UPDATE token_usage_windows AS g SET
                         tokens = {GREATEST}(0, g.tokens - a.tokens),
                         reserved = {GREATEST}(0, g.reserved - a.reserved),
                         requests = {GREATEST}(0, g.requests - a.requests),
                         cost_nanos = {GREATEST}(0, g.cost_nanos - a.cost_nanos),
                         unpriced_cost_nanos = {GREATEST}(0, g.unpriced_cost_nanos - a.unpriced_cost_nanos),
                         reserved_cost_nanos = {GREATEST}(0, g.reserved_cost_nanos - a.reserved_cost_nanos)
                     FROM token_usage_windows AS a
                     WHERE g.ai_type = $3 AND g.month_year = $1 AND a.ai_type = $2 AND a.period = g.period"
                ))
                .bind(month)
                .bind(ai_type)
                .bind(GLOBAL_SCOPE)
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
    };
}
pub(super) use statements;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_rows_by_scope() {
        let monthly = |n| LimitRow {
            monthly: Some(n),
            ..LimitRow::default()
        };
        let mut rows = crate::db::LimitRows::default();
        rows.set(LimitScope::from_key("global", String::new()), monthly(1));
        rows.set(LimitScope::from_key("ai_type", "b".into()), monthly(2));
        rows.set(LimitScope::AiType("b".into()), monthly(3));
        assert_eq!(rows.global.monthly, Some(1));
        assert_eq!(rows.row(&LimitScope::AiType("b".into())), Some(&monthly(3)));
        assert_eq!(rows.row(&LimitScope::AiType("c".into())), None);
        let scopes: Vec<LimitScope> = rows.iter().map(|(s, _)| s).collect();
        assert_eq!(
            scopes,
            [
                LimitScope::Default,
                LimitScope::Global,
                LimitScope::AiType("b".into())
            ]
        );
        for (scope, row) in rows.iter() {
            let (name, ai_type) = scope.key();
            assert_eq!(LimitScope::from_key(name, ai_type.into()), scope);
            assert_eq!(rows.row(&scope), Some(row));
        }
    }
}
