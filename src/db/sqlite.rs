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

/// Lets `token_usage_logs.cost_usd` hold NULL (an unpriced request's cost is unknown, not 0).
/// SQLite cannot alter a column, and rebuilding the log would drop any column the existing
/// backend added; removing a NOT NULL is one of the edits SQLite documents as safe to make in
/// the stored schema text ("Making Other Kinds Of Table Schema Changes", sqlite.org/lang_altertable.html):
/// the rows on disk do not change. Idempotent: run on every migration, a no-op once done.
pub(super) async fn allow_null_cost(pool: &sqlx::SqlitePool) -> Result<()> {
    const COST_NOT_NULL: &str =
        "SELECT \"notnull\" FROM pragma_table_info('token_usage_logs') WHERE name = 'cost_usd'";
    let not_null: Option<i64> = sqlx::query_scalar(COST_NOT_NULL)
        .fetch_optional(pool)
        .await
        .context("cannot read the log's columns")?;
    if not_null != Some(1) {
        return Ok(());
    }
    let mut conn = pool.acquire().await.context("cannot open the database")?;
    // the write lock first (waiting for it as every writer does), then look again: another
    // process opening the database at the same moment may have made the change already
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .context("cannot edit the schema")?;
    let edited = relax_cost_column(&mut conn, COST_NOT_NULL).await;
    let end = if edited.is_ok() { "COMMIT" } else { "ROLLBACK" };
    sqlx::query(end)
        .execute(&mut *conn)
        .await
        .context("cannot edit the schema")?;
    // this connection parsed the schema mid-edit: closed, not handed back to the pool (except
    // the one connection of an in-memory database, which is the database: nothing else can
    // hold the schema from before)
    // (sqlx names an in-memory database file:sqlx-in-memory-N)
    let file = pool
        .connect_options()
        .get_filename()
        .to_string_lossy()
        .into_owned();
    let in_memory = file == ":memory:" || file.starts_with("file:sqlx-in-memory-");
    if !in_memory {
        let _ = sqlx::Connection::close(conn.detach()).await;
    }
    edited
}

/// The edit itself, inside the caller's write transaction.
async fn relax_cost_column(conn: &mut sqlx::SqliteConnection, check: &str) -> Result<()> {
    let not_null: Option<i64> = sqlx::query_scalar(check)
        .fetch_optional(&mut *conn)
        .await
        .context("cannot read the log's columns")?;
    if not_null != Some(1) {
        return Ok(());
    }
    let sql: String = sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'token_usage_logs'",
    )
    .fetch_one(&mut *conn)
    .await
    .context("cannot read the log's schema")?;
    let Some(relaxed) = without_not_null(&sql, "cost_usd") else {
        anyhow::bail!("cannot find the cost_usd column in the log's schema to let it hold NULL");
    };
    let version: i64 = sqlx::query_scalar("PRAGMA schema_version")
        .fetch_one(&mut *conn)
        .await
        .context("cannot read the schema version")?;
    // SQLite's order: edit the text, then move the version (every connection, this one too,
    // then reads the schema again), then check the file
    sqlx::query("PRAGMA writable_schema = ON")
        .execute(&mut *conn)
        .await
        .context("cannot edit the schema")?;
    sqlx::query(
        "UPDATE sqlite_master SET sql = $1 WHERE type = 'table' AND name = 'token_usage_logs'",
    )
    .bind(&relaxed)
    .execute(&mut *conn)
    .await
    .context("cannot edit the schema")?;
    for sql in [
        format!("PRAGMA schema_version = {}", version + 1),
        "PRAGMA writable_schema = OFF".to_string(),
    ] {
        sqlx::query(&sql)
            .execute(&mut *conn)
            .await
            .context("cannot edit the schema")?;
    }
    let check: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut *conn)
        .await
        .context("cannot check the schema")?;
    anyhow::ensure!(
        check == "ok",
        "the schema edit left the database inconsistent: {check}"
    );
    Ok(())
}

/// `create_table` with `NOT NULL` removed from the definition of `column` (None when the
/// column is not found). Definitions are split at top-level commas, outside quotes.
fn without_not_null(create_table: &str, column: &str) -> Option<String> {
    let open = create_table.find('(')?;
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, open + 1);
    let mut parts: Vec<(usize, usize)> = Vec::new();
    for (i, c) in create_table.char_indices().skip_while(|(i, _)| *i <= open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') if depth == 0 => {
                parts.push((start, i));
                break;
            }
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
    }
    let (from, to) = parts.into_iter().find(|&(from, to)| {
        let def = create_table[from..to].trim_start();
        let name = def.split_whitespace().next().unwrap_or("");
        name.trim_matches(|c| c == '"' || c == '`' || c == '[' || c == ']')
            .eq_ignore_ascii_case(column)
    })?;
    let def = &create_table[from..to];
    let upper = def.to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    if !words.windows(2).any(|w| w == ["NOT", "NULL"]) {
        return Some(create_table.to_string());
    }
    // remove the first "NOT <spaces> NULL" of the definition, keeping everything else
    let not_at = upper.match_indices("NOT").find_map(|(at, _)| {
        let rest = &upper[at + 3..];
        let gap = rest.len() - rest.trim_start().len();
        (gap > 0 && rest.trim_start().starts_with("NULL")).then_some((at, at + 3 + gap + 4))
    })?;
    let relaxed_def = format!("{}{}", &def[..not_at.0], &def[not_at.1..]);
    Some(format!(
        "{}{}{}",
        &create_table[..from],
        relaxed_def,
        &create_table[to..]
    ))
}

#[cfg(test)]
mod schema_tests {
    use super::without_not_null;

    #[test]
    fn not_null_is_lifted_from_one_column_only() {
        let sql = "CREATE TABLE token_usage_logs (\n id INTEGER PRIMARY KEY,\n tokens_in INTEGER NOT NULL DEFAULT 0,\n cost_usd           REAL    NOT NULL DEFAULT 0,\n note TEXT DEFAULT 'a,b' NOT NULL\n)";
        let out = without_not_null(sql, "cost_usd").unwrap();
        assert!(
            out.contains("cost_usd           REAL     DEFAULT 0,"),
            "{out}"
        );
        assert!(
            out.contains("tokens_in INTEGER NOT NULL DEFAULT 0"),
            "{out}"
        );
        assert!(out.contains("note TEXT DEFAULT 'a,b' NOT NULL"), "{out}");
        assert_eq!(without_not_null(sql, "missing"), None);
        let quoted = "CREATE TABLE t (\"cost_usd\" real not null, x int)";
        assert_eq!(
            without_not_null(quoted, "cost_usd").unwrap(),
            "CREATE TABLE t (\"cost_usd\" real , x int)"
        );
    }
}
