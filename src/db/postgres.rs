//! What only PostgreSQL does its way; the statements both backends share, and PostgreSQL's
//! spellings where the dialects differ, are in `shared.rs`. Timestamps are TIMESTAMPTZ;
//! counters BIGINT. The admission lock is a transaction-scoped advisory lock (no statement
//! takes a lock on the whole database), and the clock is the server's, one for every host.

use sqlx::PgConnection;

// the names, and the dialect, the shared statements (`shared.rs`) are written with
use super::shared::postgres_dialect::*;
use super::shared::prelude::*;

/// "tokenctl" in ASCII: the advisory lock every admission writer takes first.
const ADMISSION_LOCK_KEY: i64 = 0x746f_6b65_6e63_746c;

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

    async fn server_now(&mut self) -> Result<Option<DateTime<Utc>>> {
        // clock_timestamp(), not now(): now() is when the transaction began, before the
        // admission lock was granted
        let t = sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(&mut *self)
            .await
            .context("cannot read the database's clock")?;
        Ok(Some(t))
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
