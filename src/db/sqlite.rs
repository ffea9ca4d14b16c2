//! What only SQLite does its way; the statements both backends share, and SQLite's spellings
//! where the dialects differ, are in `shared.rs`. Timestamps are stored as fixed-width UTC text
//! so they compare as text; rows written by other programs may use other formats, which
//! `parse_time` accepts. The admission lock is the write lock `BEGIN IMMEDIATE` takes.

use chrono::NaiveDateTime;
use sqlx::SqliteConnection;

// the names, and the dialect, the shared statements (`shared.rs`) are written with
use super::shared::prelude::*;
use super::shared::sqlite_dialect::*;

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

row_readers!(sqlx::sqlite::SqliteRow);

impl Store for SqliteConnection {
    super::shared::statements!();

    async fn lock_admission(&mut self) -> Result<()> {
        // The write transaction began with BEGIN IMMEDIATE: this connection already holds
        // SQLite's single write lock.
        Ok(())
    }

    async fn server_now(&mut self) -> Result<Option<DateTime<Utc>>> {
        // an embedded database has no clock of its own: the host's is the one there is
        Ok(None)
    }

    async fn lock_month_rows(&mut self, _month: &str, _ai_type: Option<&str>) -> Result<()> {
        // BEGIN IMMEDIATE already keeps every other writer out
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
