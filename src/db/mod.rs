//! The only place SQL lives. `Db` is a pool of either backend; `Store` is the set of
//! statements the operations need. Statements the backends share are written once in
//! `shared.rs`; `sqlite.rs` and `postgres.rs` hold only what really differs and say why.
//! `ledger` composes them into transactions, once, for both.
//!
//! Atomicity: every admission write (reserve, record, release, expiry) runs in one
//! transaction that first takes the admission lock — `BEGIN IMMEDIATE` on SQLite, a
//! transaction-scoped advisory lock on PostgreSQL — so read-decide-write is serial across
//! every process on every host sharing the database.

pub mod ledger;
mod postgres;
mod shared;
mod sqlite;
pub mod transactions;
mod url;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Row};

use crate::domain::alert::AlertDraft;
use crate::domain::count;
use crate::domain::limits::LimitRow;
use crate::domain::pricing::Price;
use crate::domain::report::{RollupRow, UserUsage};
use crate::domain::{Level, Periods, Snapshot};
use crate::domain::{Usd, Who};
pub use url::DbUrl;

/// One connection: a CLI invocation runs its operations one after another, and a single
/// connection reports why it could not connect (a pool only says it timed out).
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    /// where the database is, for errors: host, port, database and user, never a password
    place: Arc<str>,
}

/// The connections, one pool per backend. The admission lock stays in the database
/// (`BEGIN IMMEDIATE`, a transaction-scoped advisory lock), so what one process with many
/// connections does is as atomic as what many processes do.
#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// `Db` is shared between tasks and threads (an HTTP server's handlers): checked here, at
/// compile time.
const _: () = {
    const fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Db>();
};

/// A connection from `pool`, or an error that says which database did not answer.
pub(crate) async fn acquire<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
    place: &str,
) -> Result<sqlx::pool::PoolConnection<DB>> {
    pool.acquire()
        .await
        .with_context(|| format!("cannot connect to {place}"))
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a writer waits for another's transaction: SQLite's busy timeout, PostgreSQL's
/// lock_timeout on the admission lock.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Runs `$body` with `$conn: &mut <backend connection>` inside one write transaction and
/// commits it; an error anywhere rolls everything back.
macro_rules! write_tx {
    ($db:expr, $conn:ident => $body:expr) => {
        $crate::db::write_tx_or_rollback!($db, false, $conn => $body)
    };
}

/// Like `write_tx`, but rolls back instead of committing when `$dry_run` is true: a dry run
/// does exactly what the real run would, and keeps none of it.
macro_rules! write_tx_or_rollback {
    ($db:expr, $dry_run:expr, $conn:ident => $body:expr) => {{
        let db: &$crate::db::Db = $db;
        match db.pool() {
            $crate::db::Pool::Sqlite(pool) => {
                let mut conn = $crate::db::acquire(pool, db.place()).await?;
                let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE")
                    .await
                    .context("cannot start a transaction")?;
                let out = {
                    let $conn = &mut *tx;
                    $body
                };
                if $dry_run {
                    tx.rollback().await.context("cannot roll back")?;
                } else {
                    tx.commit().await.context("cannot commit")?;
                }
                out
            }
            $crate::db::Pool::Postgres(pool) => {
                let mut conn = $crate::db::acquire(pool, db.place()).await?;
                let mut tx = sqlx::Connection::begin(&mut *conn)
                    .await
                    .context("cannot start a transaction")?;
                let out = {
                    let $conn = &mut *tx;
                    $body
                };
                if $dry_run {
                    tx.rollback().await.context("cannot roll back")?;
                } else {
                    tx.commit().await.context("cannot commit")?;
                }
                out
            }
        }
    }};
}

/// Runs `$body` with `$conn` in a read-only transaction: every statement sees one snapshot.
macro_rules! read_tx {
    ($db:expr, $conn:ident => $body:expr) => {{
        let db: &$crate::db::Db = $db;
        match db.pool() {
            $crate::db::Pool::Sqlite(pool) => {
                let mut conn = $crate::db::acquire(pool, db.place()).await?;
                let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN DEFERRED")
                    .await
                    .context("cannot start a transaction")?;
                let out = {
                    let $conn = &mut *tx;
                    $body
                };
                tx.commit().await.context("cannot end a transaction")?;
                out
            }
            $crate::db::Pool::Postgres(pool) => {
                let mut conn = $crate::db::acquire(pool, db.place()).await?;
                let mut tx = sqlx::Connection::begin_with(
                    &mut *conn,
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                )
                .await
                .context("cannot start a transaction")?;
                let out = {
                    let $conn = &mut *tx;
                    $body
                };
                tx.commit().await.context("cannot end a transaction")?;
                out
            }
        }
    }};
}
pub(crate) use {read_tx, write_tx, write_tx_or_rollback};

/// Opens the pool's first connection, so a database that is not there fails now, named. A
/// pool retries a refused connection until its timeout and then says only "pool timed out":
/// when the pool has no connection after a moment, one made by hand says why (refused, no
/// answer) at once. The usual case opens one connection, not two.
async fn first_connection(pool: &PgPool, opts: &PgConnectOptions) -> Result<()> {
    let acquire = pool.acquire();
    tokio::pin!(acquire);
    tokio::select! {
        conn = &mut acquire => {
            conn?;
            return Ok(());
        }
        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
    }
    let by_hand = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(opts))
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {} seconds", CONNECT_TIMEOUT.as_secs()))?;
    by_hand?.close().await?;
    // the server answers now (it was starting up): the pool's attempt gets there too
    acquire.await?;
    Ok(())
}

/// Opens a SQLite pool, waiting out the moments when WAL mode answers SQLITE_BUSY to a
/// new connection without calling the busy handler: while the last connection of another
/// process checkpoints and removes the WAL on close, or while one recovers it after a
/// crash (sqlite.org/wal.html, "Sometimes queries return SQLITE_BUSY"). Both last
/// milliseconds; the wait is bounded by the same LOCK_WAIT as any other lock.
async fn open_sqlite(
    pool_options: SqlitePoolOptions,
    opts: SqliteConnectOptions,
) -> std::result::Result<SqlitePool, sqlx::Error> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        match pool_options.clone().connect_with(opts.clone()).await {
            Err(sqlx::Error::Database(e))
                if is_sqlite_busy(e.code().as_deref()) && started.elapsed() < LOCK_WAIT =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// SQLITE_BUSY and its extended codes (BUSY_RECOVERY, BUSY_SNAPSHOT, BUSY_TIMEOUT) share
/// the low byte 5.
fn is_sqlite_busy(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| c & 0xff == 5)
}

impl Db {
    /// Opens the database with one connection (a command: one operation at a time), creating a
    /// SQLite file, and the default's folder, on first use, and applies pending migrations.
    pub async fn open(url: &DbUrl) -> Result<Db> {
        Db::open_pool(url, 1).await
    }

    /// `open` with up to `connections` connections, for operations that run at once.
    pub async fn open_pool(url: &DbUrl, connections: u32) -> Result<Db> {
        Db::open_pool_waiting(url, connections, CONNECT_TIMEOUT).await
    }

    /// `open_pool` whose operations wait at most `acquire_timeout` for a connection: a server
    /// answers 503 that soon when its database is gone, instead of hanging.
    pub async fn open_pool_waiting(
        url: &DbUrl,
        connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Db> {
        let db = Db::connect_pool_waiting(url, connections, acquire_timeout).await?;
        if !db.is_up_to_date().await {
            db.migrate()
                .await
                .with_context(|| format!("cannot prepare {}", url.describe()))?;
        }
        Ok(db)
    }

    /// One query instead of the migrator's several (and its lock): every command runs this.
    async fn is_up_to_date(&self) -> bool {
        let latest = match &self.pool {
            Pool::Sqlite(_) => sqlx::migrate!("migrations/sqlite")
                .iter()
                .map(|m| m.version)
                .max(),
            Pool::Postgres(_) => sqlx::migrate!("migrations/postgres")
                .iter()
                .map(|m| m.version)
                .max(),
        };
        let applied = self.applied_versions().await.unwrap_or_default();
        if !latest.is_some_and(|v| applied.contains(&v)) {
            return false;
        }
        match &self.pool {
            // the one change the migrator cannot make there (see `sqlite::allow_null_cost`):
            // a process killed between the two is finished by the next one
            Pool::Sqlite(pool) => sqlx::query_scalar::<_, i64>(
                "SELECT \"notnull\" FROM pragma_table_info('token_usage_logs') WHERE name = 'cost_usd'",
            )
            .fetch_optional(pool)
            .await
            .is_ok_and(|not_null| not_null != Some(1)),
            Pool::Postgres(_) => true,
        }
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn place(&self) -> &str {
        &self.place
    }

    /// Connects with one connection; migrations are not applied (see `open`).
    pub async fn connect(url: &DbUrl) -> Result<Db> {
        Db::connect_pool(url, 1).await
    }

    /// Connects a pool of up to `connections` (at least one is opened now, so a database that
    /// is not there fails here, named); migrations are not applied (see `open_pool`).
    pub async fn connect_pool(url: &DbUrl, connections: u32) -> Result<Db> {
        Db::connect_pool_waiting(url, connections, CONNECT_TIMEOUT).await
    }

    async fn connect_pool_waiting(
        url: &DbUrl,
        connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Db> {
        let connections = connections.max(1);
        let place: Arc<str> = url.describe().into();
        let pool = match url {
            DbUrl::Sqlite {
                path,
                memory,
                is_default,
                ..
            } => {
                if *is_default {
                    if let Some(dir) = path.parent() {
                        std::fs::create_dir_all(dir).with_context(|| {
                            format!("cannot create the folder {}", dir.display())
                        })?;
                    }
                }
                let opts = if *memory {
                    SqliteConnectOptions::from_str("sqlite::memory:")?
                } else {
                    SqliteConnectOptions::new()
                        .filename(path)
                        .create_if_missing(true)
                }
                .journal_mode(SqliteJournalMode::Wal)
                // WAL + NORMAL survives a crash of the process (kill -9) without losing a
                // commit; only a power cut can drop the last transactions.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(LOCK_WAIT)
                .foreign_keys(true);
                let pool_options = if *memory {
                    // each connection to :memory: is a database of its own: keep exactly one,
                    // for as long as the pool lives
                    SqlitePoolOptions::new()
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None)
                } else {
                    SqlitePoolOptions::new().max_connections(connections)
                }
                .acquire_timeout(LOCK_WAIT);
                Pool::Sqlite(
                    open_sqlite(pool_options, opts)
                        .await
                        .with_context(|| format!("cannot open {place}"))?,
                )
            }
            DbUrl::Postgres { url: raw, .. } => {
                let mut opts = PgConnectOptions::from_str(raw)
                    .map_err(|e| {
                        crate::error::OpError::invalid(format!(
                            "invalid PostgreSQL URL: {}",
                            url.redact(&e.to_string())
                        ))
                    })?
                    .application_name("tokenctl");
                // sslmode=prefer (the default) buys nothing over loopback and costs a TLS
                // handshake per invocation (~8 ms); an explicit sslmode is always obeyed.
                let host = opts.get_host().to_string();
                let loopback = matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1")
                    || host.starts_with('/');
                let sslmode_given = raw.to_ascii_lowercase().contains("sslmode=")
                    || std::env::var_os("PGSSLMODE").is_some();
                if loopback && !sslmode_given {
                    opts = opts.ssl_mode(sqlx::postgres::PgSslMode::Disable);
                }
                let pool = PgPoolOptions::new()
                    .max_connections(connections)
                    // no ping before each transaction (a round trip each): a connection the
                    // server killed fails its next statement once, visibly, and is replaced
                    .test_before_acquire(false)
                    .acquire_timeout(acquire_timeout)
                    .connect_lazy_with(opts.clone());
                first_connection(&pool, &opts)
                    .await
                    .with_context(|| format!("cannot connect to {place}"))?;
                Pool::Postgres(pool)
            }
        };
        Ok(Db { pool, place })
    }

    /// Applies pending migrations; returns the versions applied now.
    pub async fn migrate(&self) -> Result<Vec<i64>> {
        // Two processes opening a fresh SQLite file at once can race on the migrations
        // table; the loser simply finds them applied on its next try.
        let mut attempt = 0;
        loop {
            let before = self.applied_versions().await.unwrap_or_default();
            let result = match &self.pool {
                // A host running an older tokenctl must keep working after a newer one
                // migrated the shared database (migrations are additive).
                Pool::Sqlite(pool) => {
                    let mut m = sqlx::migrate!("migrations/sqlite");
                    m.set_ignore_missing(true);
                    match m.run(pool).await {
                        Ok(()) => sqlite::allow_null_cost(pool).await,
                        Err(e) => Err(e.into()),
                    }
                }
                Pool::Postgres(pool) => {
                    let mut m = sqlx::migrate!("migrations/postgres");
                    m.set_ignore_missing(true);
                    m.run(pool).await.map_err(anyhow::Error::from)
                }
            };
            match result {
                Ok(()) => {
                    let after = self.applied_versions().await?;
                    return Ok(after.into_iter().filter(|v| !before.contains(v)).collect());
                }
                Err(_) if attempt < 5 && matches!(self.pool, Pool::Sqlite(_)) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(e) => return Err(e).context("migrations failed"),
            }
        }
    }

    async fn applied_versions(&self) -> Result<Vec<i64>> {
        let sql = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
        let versions = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await?,
            Pool::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await?,
        };
        Ok(versions)
    }

    pub fn backend_name(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }
}

pub fn default_sqlite_path() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .context("neither XDG_DATA_HOME nor HOME is set: pass --database-url")?;
            PathBuf::from(home).join(".local").join("share")
        }
    };
    Ok(base.join("tokenctl").join("tokenctl.db"))
}

// ---- values that cross the Store boundary ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HoldState {
    Held,
    Settled,
    Released,
    Expired,
}

impl HoldState {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldState::Held => "held",
            HoldState::Settled => "settled",
            HoldState::Released => "released",
            HoldState::Expired => "expired",
        }
    }

    fn parse(s: &str) -> HoldState {
        match s {
            "settled" => HoldState::Settled,
            "released" => HoldState::Released,
            "expired" => HoldState::Expired,
            _ => HoldState::Held,
        }
    }
}

/// Tokens (and dollars) held for one reservation, and the periods whose counters hold them.
#[derive(Debug, Clone)]
pub struct Hold {
    pub id: String,
    pub ai_type: String,
    pub user_id: Option<String>,
    pub model: Option<String>,
    pub estimated_tokens: i64,
    pub estimated_cost: Usd,
    pub month: String,
    pub day: String,
    pub hour: String,
}

impl Hold {
    pub fn who(&self) -> Who<'_> {
        Who {
            ai_type: &self.ai_type,
            user_id: self.user_id.as_deref(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Reservation {
    pub hold: Hold,
    pub state: HoldState,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct LimitRows {
    pub default: LimitRow,
    pub global: LimitRow,
    pub ai_types: Vec<(String, LimitRow)>,
    /// what every user without limits of their own has (none unless set)
    pub default_user: Option<LimitRow>,
    pub users: Vec<(String, LimitRow)>,
}

/// Which rows of `token_limits` to read: all of them, or those one request is decided by.
#[derive(Debug, Clone, Copy)]
pub enum LimitFilter<'a> {
    /// every row: `limits`
    All,
    /// every AI type's, none of the users' (who may be many): status, monitor, distribution
    AiTypes,
    For(Who<'a>),
}

impl LimitRows {
    /// The row of `scope`; None for an AI type without a row of its own.
    pub fn row(&self, scope: &LimitScope) -> Option<&LimitRow> {
        match scope {
            LimitScope::Default => Some(&self.default),
            LimitScope::Global => Some(&self.global),
            LimitScope::AiType(a) => self.ai_types.iter().find(|(n, _)| n == a).map(|(_, r)| r),
            LimitScope::DefaultUser => self.default_user.as_ref(),
            LimitScope::User(u) => self.users.iter().find(|(n, _)| n == u).map(|(_, r)| r),
        }
    }

    /// The limits of `user_id` (their own over the default user's).
    pub fn user_limits(&self, user_id: &str) -> crate::domain::ScopeLimits {
        crate::domain::ScopeLimits::for_user(
            self.default_user.as_ref(),
            self.row(&LimitScope::User(user_id.to_string())),
        )
    }

    /// Every row with its scope: the default's, the total's, then each AI type's.
    pub fn iter(&self) -> impl Iterator<Item = (LimitScope, &LimitRow)> {
        [
            (LimitScope::Default, &self.default),
            (LimitScope::Global, &self.global),
        ]
        .into_iter()
        .chain(
            self.ai_types
                .iter()
                .map(|(a, r)| (LimitScope::AiType(a.clone()), r)),
        )
        .chain(
            self.default_user
                .iter()
                .map(|r| (LimitScope::DefaultUser, r)),
        )
        .chain(
            self.users
                .iter()
                .map(|(u, r)| (LimitScope::User(u.clone()), r)),
        )
    }

    /// Puts `row` in the place of `scope`.
    pub fn set(&mut self, scope: LimitScope, row: LimitRow) {
        match scope {
            LimitScope::Default => self.default = row,
            LimitScope::Global => self.global = row,
            LimitScope::AiType(a) => match self.ai_types.iter_mut().find(|(n, _)| *n == a) {
                Some((_, r)) => *r = row,
                None => self.ai_types.push((a, row)),
            },
            LimitScope::DefaultUser => self.default_user = Some(row),
            LimitScope::User(u) => match self.users.iter_mut().find(|(n, _)| *n == u) {
                Some((_, r)) => *r = row,
                None => self.users.push((u, row)),
            },
        }
    }
}

/// Which row of `token_limits` a change goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitScope {
    Default,
    Global,
    AiType(String),
    /// every user without limits of their own
    DefaultUser,
    User(String),
}

impl LimitScope {
    fn key(&self) -> (&str, &str) {
        match self {
            LimitScope::Default => ("default", ""),
            LimitScope::Global => ("global", ""),
            LimitScope::AiType(a) => ("ai_type", a.as_str()),
            LimitScope::DefaultUser => ("default_user", ""),
            LimitScope::User(u) => ("user", u.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LogEntry {
    pub ai_type: String,
    pub model: Option<String>,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    /// None when the model has no price: unknown, not 0
    pub cost: Option<Usd>,
    pub request_id: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub request_type: Option<String>,
    pub processing_time_ms: Option<i64>,
    pub success: bool,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub month: String,
    pub reservation_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LoggedRequest {
    pub reservation_id: Option<String>,
    pub ai_type: String,
    pub month: String,
    pub tokens_in: i64,
    pub tokens_out: i64,
    /// None: its model had no price
    pub cost: Option<Usd>,
}

/// What one finished request adds to the counters of its periods, and to the day's rollup.
#[derive(Debug, Clone)]
pub struct UsageDelta<'a> {
    pub ai_type: &'a str,
    pub user_id: Option<&'a str>,
    pub model: Option<&'a str>,
    pub periods: &'a Periods,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    /// the exact cost; None when the model has no price
    pub cost: Option<Usd>,
    /// what an unpriced request is charged against USD limits (the dearest price known)
    pub unpriced_charge: Usd,
    pub monthly_limit: i64,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct MonthRow {
    pub ai_type: String,
    pub month: String,
    pub monthly_limit: Option<i64>,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub total_tokens: i64,
    pub request_count: i64,
    pub status: String,
    pub last_request_at: Option<DateTime<Utc>>,
    pub reserved_tokens: i64,
    /// the exact cost of its priced requests (from `cost_nanos`; from `cost_usd` where another
    /// program added to that alone)
    pub cost: Usd,
    /// requests whose model had no price: the cost is then incomplete
    pub unpriced_requests: i64,
    /// odd values another program left in the row, and how they were read
    pub warnings: Vec<String>,
}

/// The counts of a `token_usage` (or archive) row as text, whatever the column types of a
/// table adopted from the existing backend: `domain::count` reads them by one rule.
const USAGE_TEXT_COLUMNS: &str =
    "ai_type, month_year, CAST(monthly_limit AS TEXT) AS monthly_limit,
    CAST(tokens_in AS TEXT) AS tokens_in, CAST(tokens_out AS TEXT) AS tokens_out,
    CAST(total_tokens AS TEXT) AS total_tokens, CAST(request_count AS TEXT) AS request_count,
    CAST(cost_usd AS TEXT) AS cost_usd, COALESCE(CAST(status AS TEXT), 'active') AS status";
/// `token_usage`'s own columns beside those (the archive has none: it holds nothing, and its
/// cost is `cost_usd`).
const USAGE_RESERVED_TEXT: &str = "CAST(reserved_tokens AS TEXT) AS reserved_tokens,
    CAST(cost_nanos AS TEXT) AS cost_nanos, CAST(unpriced_requests AS TEXT) AS unpriced_requests";
const ARCHIVE_RESERVED_TEXT: &str = "CAST(NULL AS TEXT) AS reserved_tokens,
    CAST(NULL AS TEXT) AS cost_nanos, CAST(unpriced_requests AS TEXT) AS unpriced_requests";

/// One usage row as selected with `USAGE_TEXT_COLUMNS`.
#[derive(Debug, Default)]
pub(crate) struct UsageRowText {
    pub ai_type: String,
    pub month_year: String,
    pub monthly_limit: Option<String>,
    pub tokens_in: Option<String>,
    pub tokens_out: Option<String>,
    pub total_tokens: Option<String>,
    pub request_count: Option<String>,
    pub reserved_tokens: Option<String>,
    pub cost_usd: Option<String>,
    pub cost_nanos: Option<String>,
    pub unpriced_requests: Option<String>,
    pub status: String,
    pub last_request_at: Option<DateTime<Utc>>,
}

impl UsageRowText {
    fn read<R: Row>(r: &R, last_request_at: Option<DateTime<Utc>>) -> Result<UsageRowText>
    where
        for<'a> &'a str: sqlx::ColumnIndex<R>,
        for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(UsageRowText {
            ai_type: r.try_get("ai_type")?,
            month_year: r.try_get("month_year")?,
            monthly_limit: r.try_get("monthly_limit")?,
            tokens_in: r.try_get("tokens_in")?,
            tokens_out: r.try_get("tokens_out")?,
            total_tokens: r.try_get("total_tokens")?,
            request_count: r.try_get("request_count")?,
            reserved_tokens: r.try_get("reserved_tokens")?,
            cost_usd: r.try_get("cost_usd")?,
            cost_nanos: r.try_get("cost_nanos")?,
            unpriced_requests: r.try_get("unpriced_requests")?,
            status: r.try_get("status")?,
            last_request_at,
        })
    }

    fn into_month_row(self) -> MonthRow {
        let name = format!("token_usage row {} {}", self.ai_type, self.month_year);
        let counts = count::read_row(
            &name,
            count::RawCounts {
                tokens_in: self.tokens_in.as_deref(),
                tokens_out: self.tokens_out.as_deref(),
                total_tokens: self.total_tokens.as_deref(),
                request_count: self.request_count.as_deref(),
            },
        );
        MonthRow {
            monthly_limit: match self.monthly_limit.as_deref() {
                None => None,
                some => count::read_count(some).value(),
            },
            tokens_in: counts.tokens_in,
            tokens_out: counts.tokens_out,
            total_tokens: counts.total_tokens,
            request_count: counts.request_count,
            status: self.status,
            last_request_at: self.last_request_at,
            reserved_tokens: count::read_count(self.reserved_tokens.as_deref())
                .value()
                .unwrap_or(0),
            cost: {
                let exact = count::read_count(self.cost_nanos.as_deref())
                    .value()
                    .map(Usd::from_nanos)
                    .unwrap_or_default();
                let float =
                    Usd::from_f64(count::read_cost(self.cost_usd.as_deref())).unwrap_or_default();
                // cost_usd is written from cost_nanos; more there means another program added
                // to it (a nano-dollar of float rounding is not that)
                if float.nanos() > exact.nanos().saturating_add(1_000) {
                    float
                } else {
                    exact
                }
            },
            unpriced_requests: count::read_count(self.unpriced_requests.as_deref())
                .value()
                .unwrap_or(0),
            warnings: counts.warnings,
            ai_type: self.ai_type,
            month: self.month_year,
        }
    }
}

/// A month `monthly-reset` has closed: nothing is admitted in it any more, and usage recorded
/// late in it is added to its archived figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedMonth {
    pub month_year: String,
    /// the global limit in force when it was closed (None when closed before this was kept)
    pub global_limit: Option<i64>,
    pub closed_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct WindowRow {
    pub ai_type: String,
    pub period: String,
    pub tokens: i64,
    pub reserved: i64,
    pub requests: i64,
}

/// The statements the operations are made of. Each backend implements every one; `ledger`
/// composes them. Methods run on the caller's connection or transaction.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// Serialises admission writers. Call first in a write transaction.
    async fn lock_admission(&mut self) -> Result<()>;
    /// The default, global and default-user rows, and those of the AI type and user of a
    /// request (or of every AI type and user).
    async fn limit_rows(&mut self, filter: LimitFilter<'_>) -> Result<LimitRows>;
    async fn update_limits(
        &mut self,
        scope: &LimitScope,
        changes: &LimitRow,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Writes a whole row of limits as given (None clears a value), or deletes the row when
    /// `row` is None.
    async fn replace_limits(
        &mut self,
        scope: &LimitScope,
        row: Option<&LimitRow>,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Removes a model's database prices (only the one from `effective_from` when given);
    /// how many were removed.
    async fn delete_price(&mut self, model: &str, effective_from: Option<&str>) -> Result<u64>;
    /// The database server's clock, read now; None where the database has no clock of its own
    /// (SQLite runs in this process, on this host's clock).
    async fn server_now(&mut self) -> Result<Option<DateTime<Utc>>>;
    /// The day, hour and rate counters a decision reads (the month's come from `month_rows`);
    /// holds past their TTL do not count as in flight.
    /// `caps`: the concurrency limits of the AI type and of the total; requests in flight are
    /// counted only where one applies, and only as far as it needs.
    async fn snapshot(
        &mut self,
        who: Who<'_>,
        periods: &Periods,
        now: DateTime<Utc>,
        caps: InFlightCaps,
    ) -> Result<Snapshot>;
    /// Counts `requests` request starts of one AI type for the rate limits: the day and hour
    /// windows' `requests` and the minute counter and last start of the AI type and of the
    /// total.
    async fn count_start(
        &mut self,
        ai_type: &str,
        requests: i64,
        periods: &Periods,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Holds still held in `month` (of one AI type, or all).
    async fn held_in_month(&mut self, month: &str, ai_type: Option<&str>) -> Result<Vec<Hold>>;
    /// Holds whose TTL has passed but that still count (read only).
    async fn stale_holds(&mut self, now: DateTime<Utc>) -> Result<Vec<Hold>>;
    /// Marks stale holds expired and returns them; the caller gives their tokens back.
    async fn expire_holds(&mut self, now: DateTime<Utc>) -> Result<Vec<Hold>>;
    /// Adds `delta` tokens and `cost` dollars (negative to give back) to the reserved counters
    /// of the hold's periods: its AI type's, the total's and its user's.
    async fn add_reserved(
        &mut self,
        hold: &Hold,
        delta: i64,
        cost: i64,
        monthly_limit: i64,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Marks a point the transaction can go back to (one at a time: batches nest none).
    async fn savepoint(&mut self) -> Result<()>;
    /// Keeps what was done since the savepoint.
    async fn release_savepoint(&mut self) -> Result<()>;
    /// Undoes what was done since the savepoint; the transaction goes on.
    async fn rollback_to_savepoint(&mut self) -> Result<()>;
    /// Saves holds made at `created_at`, each with when it expires, in one statement.
    async fn insert_holds(
        &mut self,
        holds: &[(Hold, DateTime<Utc>)],
        created_at: DateTime<Utc>,
    ) -> Result<()>;
    async fn reservation(&mut self, id: &str) -> Result<Option<Reservation>>;
    async fn end_reservation(
        &mut self,
        id: &str,
        state: HoldState,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Inserts the log row; false when its request id or reservation was logged already.
    async fn insert_log(&mut self, entry: &LogEntry) -> Result<bool>;
    async fn find_log(
        &mut self,
        request_id: Option<&str>,
        reservation_id: Option<&str>,
    ) -> Result<Option<LoggedRequest>>;
    /// Adds a finished request to its month row and windows. Counts another program left
    /// odd are read as `domain::count` does: NULL and negative as 0, text kept as it is.
    async fn add_usage(&mut self, delta: &UsageDelta<'_>) -> Result<()>;
    /// Adds a finished request to its day's rollup (what reports read instead of the log),
    /// whether or not its month is still open.
    async fn add_to_rollup(&mut self, delta: &UsageDelta<'_>) -> Result<()>;
    /// Adds a finished request to its user's day and month (when it names one): their
    /// limits' counters, and who a report counts as active that day.
    async fn add_user_usage(&mut self, delta: &UsageDelta<'_>) -> Result<()>;
    /// The closure of `month`, or of a later month (closing a month closes every one before).
    async fn closed_month(&mut self, month: &str) -> Result<Option<ClosedMonth>>;
    /// Marks months closed (those already marked stay as they were).
    async fn close_months(
        &mut self,
        months: &[String],
        global_limit: i64,
        at: DateTime<Utc>,
    ) -> Result<()>;
    async fn set_month_level(
        &mut self,
        ai_type: &str,
        month: &str,
        percentage: f64,
        status: &str,
    ) -> Result<()>;
    async fn month_rows(&mut self, month: &str) -> Result<Vec<MonthRow>>;
    async fn window_rows(&mut self, periods: &[&str]) -> Result<Vec<WindowRow>>;
    async fn price_rows(&mut self) -> Result<Vec<Price>>;
    /// Stores a price (replacing one of the same model and date); false when the same price
    /// was there already.
    async fn upsert_price(&mut self, price: &Price, at: DateTime<Utc>) -> Result<bool>;
    /// The daily rollups a report reads, oldest day first.
    async fn rollup_rows(&mut self, filter: &RollupFilter<'_>) -> Result<Vec<RollupRow>>;
    /// The rollups per (day, AI type, model) of a range, users summed (`filter.user_id` is
    /// not read): a few rows a day, however many users there are.
    async fn model_rollup_rows(&mut self, filter: &RollupFilter<'_>) -> Result<Vec<RollupRow>>;
    /// How many users made a request, per day of a range (of one AI type, when given).
    async fn day_user_counts(&mut self, filter: &RollupFilter<'_>) -> Result<Vec<(String, i64)>>;
    /// How many users made a request in a range: by each user's last day when the range runs
    /// through today and is of every AI type (an index range), else from the rollups.
    async fn distinct_users(
        &mut self,
        filter: &RollupFilter<'_>,
        through_today: bool,
    ) -> Result<i64>;
    /// The users who spent most on `day`, most first, `take` of them after the first `skip`:
    /// (user, nano-dollars).
    async fn top_users_of_day(
        &mut self,
        day: &str,
        skip: i64,
        take: i64,
    ) -> Result<Vec<(String, i64)>>;
    /// What each of `users` used over a range of days.
    async fn user_totals(
        &mut self,
        users: &[String],
        since: &str,
        until: &str,
    ) -> Result<Vec<UserUsage>>;
    /// The top `n` users of a range, by adding up every rollup row of it.
    async fn top_users_scan(&mut self, filter: &RollupFilter<'_>, n: i64)
        -> Result<Vec<UserUsage>>;

    /// Raises an alert unless the same level is already active for that AI type and month
    /// (then None): the unique index decides, so concurrent monitors raise it once.
    async fn raise_alert(
        &mut self,
        draft: &AlertDraft,
        at: DateTime<Utc>,
    ) -> Result<Option<AlertRow>>;
    /// Re-arms: ends the active alerts of levels above `level` (usage fell below them).
    async fn rearm_alerts(
        &mut self,
        ai_type: &str,
        month: &str,
        level: Level,
        at: DateTime<Utc>,
    ) -> Result<u64>;
    async fn alert_rows(&mut self, filter: &AlertFilter) -> Result<Vec<AlertRow>>;
    /// The day and hour windows of `month` for one AI type, or '*' for the total.
    async fn month_windows(&mut self, month: &str, ai_type: &str) -> Result<Vec<WindowRow>>;
    /// (ai_type, last request start) of every AI type.
    async fn last_starts(&mut self) -> Result<Vec<(String, DateTime<Utc>)>>;
    async fn setting(&mut self, key: &str) -> Result<Option<String>>;
    async fn set_setting(&mut self, key: &str, value: &str, at: DateTime<Utc>) -> Result<()>;

    // ---- lifecycle: monthly-reset, reset, archive ----

    /// Gives every known AI type (with usage in any month, or with limits of its own) a zero
    /// row for `month` if it has none; returns how many were created.
    async fn init_month(&mut self, month: &str, at: DateTime<Utc>) -> Result<u64>;
    /// Deletes the rows of months before `month`, with their window counters and reservations,
    /// and returns the rows as they were (one statement: a row the existing backend updates
    /// meanwhile goes with its update, never deleted unseen).
    async fn take_months_before(&mut self, month: &str) -> Result<Vec<MonthRow>>;
    /// Writes a row to the archive. `Monthly`: a month has one such row per AI type (a unique
    /// key), so archiving a month again adds to it instead of leaving a fragment.
    async fn archive_row(
        &mut self,
        row: &MonthRow,
        reason: ArchiveReason,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Keeps the existing backend from changing `month`'s rows until the transaction ends.
    async fn lock_month_rows(&mut self, month: &str, ai_type: Option<&str>) -> Result<()>;
    /// Zeroes `month` for one AI type or all: counters, holds, day and hour windows, request
    /// starts, level.
    async fn clear_month(
        &mut self,
        month: &str,
        ai_type: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<()>;
    async fn archive_rows(
        &mut self,
        ai_type: Option<&str>,
        month: Option<&str>,
    ) -> Result<Vec<ArchiveRow>>;
    async fn count_logs_before(&mut self, cutoff: DateTime<Utc>) -> Result<i64>;
    /// One round trip that needs the database to answer.
    async fn ping(&mut self) -> Result<()>;
    /// How many reservations hold tokens at `now` (held and not past their TTL).
    async fn held_count(&mut self, now: DateTime<Utc>) -> Result<i64>;
    // ---- serve's bearer tokens ----

    /// Saves a token (only its secret's SHA-256); false when a token not revoked already has
    /// this name.
    async fn insert_api_token(
        &mut self,
        name: &str,
        scope: &str,
        secret_sha256: &str,
        at: DateTime<Utc>,
    ) -> Result<bool>;
    /// Every token, newest first; revoked ones only with `include_revoked`.
    async fn api_tokens(&mut self, include_revoked: bool) -> Result<Vec<ApiTokenRow>>;
    /// Revokes the token of this name that is not revoked yet; false when there is none.
    async fn revoke_api_token(&mut self, name: &str, at: DateTime<Utc>) -> Result<bool>;
    /// (name, scope) of the token, not revoked, whose secret has this SHA-256.
    async fn api_token_by_secret(
        &mut self,
        secret_sha256: &str,
    ) -> Result<Option<(String, String)>>;
    /// The lowest and highest id of the log rows older than `cutoff`.
    async fn log_ids_before(&mut self, cutoff: DateTime<Utc>) -> Result<Option<(i64, i64)>>;
    /// Every AI type with usage in any month or limits of its own, sorted.
    async fn known_ai_types(&mut self) -> Result<Vec<String>>;
    /// When the log row `id` was written (None: no such row).
    async fn log_time(&mut self, id: i64) -> Result<Option<DateTime<Utc>>>;
    /// A page of the log (see `log_page_sql`).
    async fn log_page(&mut self, q: &LogQuery<'_>) -> Result<Vec<LogRow>>;
    /// Deletes one batch of at most `batch` log rows older than `cutoff`, starting at id `from`
    /// (`high` is the highest such id when the prune began), and says where the next batch
    /// starts (None: done). The two backends walk the rows in different orders; see each.
    async fn delete_old_logs(
        &mut self,
        cutoff: DateTime<Utc>,
        from: i64,
        high: i64,
        batch: i64,
    ) -> Result<PruneStep>;
}

/// What one pruning transaction did.
#[derive(Debug, Clone, Copy)]
pub struct PruneStep {
    pub deleted: u64,
    /// Where the next batch starts; None when no old row is left.
    pub next: Option<i64>,
}

/// A bearer token of `tokenctl serve`, as listed (never its secret: only a hash is stored).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApiTokenRow {
    pub name: String,
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One day's rollup rows of a report, filtered.
#[derive(Debug, Clone, Default)]
pub struct RollupFilter<'a> {
    pub since: &'a str,
    pub until: &'a str,
    pub ai_type: Option<&'a str>,
    pub user_id: Option<&'a str>,
}

/// The concurrency limits a snapshot counts requests in flight against.
#[derive(Debug, Clone, Copy, Default)]
pub struct InFlightCaps {
    pub ai_type: Option<i64>,
    pub global: Option<i64>,
}

pub(crate) use crate::domain::usage::in_flight;

#[derive(Debug, Clone, serde::Serialize)]
pub struct AlertRow {
    pub id: i64,
    pub ai_type: String,
    pub level: String,
    pub month_year: String,
    pub usage_percentage: f64,
    pub total_tokens: i64,
    pub limit: i64,
    pub message: String,
    pub recommended_action: Option<String>,
    pub burn_rate_per_hour: Option<f64>,
    pub projected_month_total: Option<i64>,
    pub projected_exhaustion_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// when usage fell back below the level (re-armed); null while active
    pub cleared_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub since: Option<DateTime<Utc>>,
    pub level: Option<String>,
    pub ai_type: Option<String>,
    /// only alerts still active in this month
    pub active_in: Option<String>,
}

/// Every AI type with usage in any month or limits of its own: the same in both backends.
const KNOWN_AI_TYPES: &str = "SELECT ai_type FROM token_usage
     UNION SELECT ai_type FROM token_limits WHERE scope = 'ai_type'
     ORDER BY 1";

/// Which requests `logs` shows: `limit` of them, newest first, older than the request `before`
/// (an id from the page before), since a time, of one AI type.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub ai_type: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub before: Option<i64>,
    pub limit: i64,
}

/// One page of the log, and the id to pass as `before` for the next (None: no more).
#[derive(Debug, Clone)]
pub struct LogPage {
    pub rows: Vec<LogRow>,
    pub next_before: Option<i64>,
}

/// One request of the log. Counts are read by `domain::count`'s rule, so a row another
/// program wrote with odd values shows as it is read everywhere else.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogRow {
    pub id: i64,
    pub created_at: Option<DateTime<Utc>>,
    pub ai_type: String,
    pub model: Option<String>,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub total_tokens: i64,
    #[serde(serialize_with = "crate::domain::number::usd")]
    pub cost_usd: f64,
    pub success: bool,
    pub error_message: Option<String>,
    pub request_id: Option<String>,
    pub reservation_id: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub request_type: Option<String>,
    pub processing_time_ms: Option<i64>,
    pub month_year: Option<String>,
}

/// A page of the log as a backend runs it: the position of `before` already looked up.
pub struct LogQuery<'a> {
    pub ai_type: Option<&'a str>,
    pub since: Option<DateTime<Utc>>,
    /// (created_at, id) of the last row of the page before
    pub after_row: Option<(DateTime<Utc>, i64)>,
    pub limit: i64,
}

/// The statement of a page of the log. Binds, in order: ai_type, since, the page
/// before's (created_at, id), limit — each only when the query has it. Newest first by
/// (created_at, id): every page is one range of the index on (created_at) or on
/// (ai_type, created_at), so the 1,000th page costs what the first does.
pub(crate) fn log_page_sql(q: &LogQuery<'_>) -> String {
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    let mut conditions = Vec::new();
    if q.ai_type.is_some() {
        conditions.push(format!("ai_type = {}", next()));
    }
    if q.since.is_some() {
        conditions.push(format!("created_at >= {}", next()));
    }
    if q.after_row.is_some() {
        let (at, id) = (next(), next());
        conditions.push(format!(
            "created_at <= {at} AND (created_at < {at} OR id < {id})"
        ));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    format!(
        "SELECT id, created_at, ai_type, model, CAST(tokens_in AS TEXT) AS tokens_in,
                CAST(tokens_out AS TEXT) AS tokens_out, CAST(total_tokens AS TEXT) AS total_tokens,
                CAST(cost_usd AS TEXT) AS cost_usd, CAST(success AS TEXT) AS success,
                error_message, request_id, reservation_id, user_id, session_id, request_type,
                CAST(processing_time_ms AS TEXT) AS processing_time_ms, month_year
         FROM token_usage_logs {filter}
         ORDER BY created_at DESC, id DESC LIMIT {}",
        next()
    )
}

/// A row of `log_page_sql` with its time already read (each backend stores time its way).
pub(crate) fn log_row<R: Row>(r: &R, created_at: Option<DateTime<Utc>>) -> Result<LogRow>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let text = |name: &str| -> Result<Option<String>> { Ok(r.try_get(name)?) };
    let number = |name: &str| -> Result<i64> {
        Ok(count::read_count(text(name)?.as_deref())
            .value()
            .unwrap_or(0))
    };
    let tokens_in = number("tokens_in")?;
    let tokens_out = number("tokens_out")?;
    Ok(LogRow {
        id: r.try_get("id")?,
        created_at,
        ai_type: r.try_get("ai_type")?,
        model: text("model")?,
        tokens_in,
        tokens_out,
        // what an old row left blank is what it adds up to
        total_tokens: match text("total_tokens")? {
            Some(t) => count::read_count(Some(&t))
                .value()
                .unwrap_or(tokens_in.saturating_add(tokens_out)),
            None => tokens_in.saturating_add(tokens_out),
        },
        cost_usd: text("cost_usd")?
            .and_then(|c| c.trim().parse::<f64>().ok())
            .filter(|c| c.is_finite())
            .unwrap_or(0.0),
        // SQLite stores 1/0, PostgreSQL true/false; NULL (an old row) is the column's default
        success: !matches!(
            text("success")?.as_deref().map(str::trim),
            Some("0" | "false" | "f")
        ),
        error_message: text("error_message")?,
        request_id: text("request_id")?,
        reservation_id: text("reservation_id")?,
        user_id: text("user_id")?,
        session_id: text("session_id")?,
        request_type: text("request_type")?,
        processing_time_ms: text("processing_time_ms")?
            .and_then(|v| count::read_count(Some(&v)).value()),
        month_year: text("month_year")?,
    })
}

/// SQL giving a level's rank (ok 0 … emergency 3), for "levels above".
const LEVEL_RANK: &str =
    "CASE level WHEN 'warning' THEN 1 WHEN 'critical' THEN 2 WHEN 'emergency' THEN 3 ELSE 0 END";

pub(crate) fn level_rank(level: Level) -> i64 {
    match level {
        Level::Ok => 0,
        Level::Warning => 1,
        Level::Critical => 2,
        Level::Emergency => 3,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveReason {
    Monthly,
    Manual,
}

impl ArchiveReason {
    fn as_str(self) -> &'static str {
        match self {
            ArchiveReason::Monthly => "monthly",
            ArchiveReason::Manual => "manual",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ArchivedRow {
    pub ai_type: String,
    pub month_year: String,
    pub total_tokens: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ArchiveRow {
    pub ai_type: String,
    pub month_year: String,
    pub monthly_limit: Option<i64>,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub total_tokens: i64,
    pub request_count: i64,
    #[serde(serialize_with = "crate::domain::number::usd")]
    pub cost_usd: f64,
    /// requests whose model had no price (cost_usd leaves them out)
    pub unpriced_requests: i64,
    pub last_request_at: Option<DateTime<Utc>>,
    pub archived_at: DateTime<Utc>,
    pub reason: String,
}

/// A closed month's rows: its `monthly` archive rows plus any usage rows written since (the
/// existing backend's late rows, until the next monthly-reset merges them). Per AI type the
/// counts add up (saturating) and the archived limit is the month's.
pub(crate) fn merge_archived(live: Vec<MonthRow>, archived: Vec<ArchiveRow>) -> Vec<MonthRow> {
    let mut rows: Vec<MonthRow> = archived
        .into_iter()
        .filter(|a| a.reason == ArchiveReason::Monthly.as_str())
        .map(|a| MonthRow {
            ai_type: a.ai_type,
            month: a.month_year,
            monthly_limit: a.monthly_limit,
            tokens_in: a.tokens_in,
            tokens_out: a.tokens_out,
            total_tokens: a.total_tokens,
            request_count: a.request_count,
            cost: Usd::from_f64(a.cost_usd).unwrap_or_default(),
            unpriced_requests: a.unpriced_requests,
            last_request_at: a.last_request_at,
            ..MonthRow::default()
        })
        .collect();
    for row in live {
        match rows.iter_mut().find(|r| r.ai_type == row.ai_type) {
            Some(r) => {
                r.tokens_in = r.tokens_in.saturating_add(row.tokens_in);
                r.tokens_out = r.tokens_out.saturating_add(row.tokens_out);
                r.total_tokens = r.total_tokens.saturating_add(row.total_tokens);
                r.request_count = r.request_count.saturating_add(row.request_count);
                r.reserved_tokens = r.reserved_tokens.saturating_add(row.reserved_tokens);
                r.cost = r.cost.saturating_add(row.cost);
                r.unpriced_requests = r.unpriced_requests.saturating_add(row.unpriced_requests);
                r.monthly_limit = r.monthly_limit.or(row.monthly_limit);
                r.last_request_at = r.last_request_at.max(row.last_request_at);
                r.warnings.extend(row.warnings);
            }
            None => rows.push(row),
        }
    }
    rows.sort_by(|a, b| a.ai_type.cmp(&b.ai_type));
    rows
}

impl ArchiveRow {
    fn new(row: MonthRow, archived_at: DateTime<Utc>, reason: String) -> ArchiveRow {
        ArchiveRow {
            ai_type: row.ai_type,
            month_year: row.month,
            monthly_limit: row.monthly_limit,
            tokens_in: row.tokens_in,
            tokens_out: row.tokens_out,
            total_tokens: row.total_tokens,
            request_count: row.request_count,
            cost_usd: row.cost.to_f64(),
            unpriced_requests: row.unpriced_requests,
            last_request_at: row.last_request_at,
            archived_at,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_month_reads_as_its_archive_plus_late_rows() {
        let at = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let archived = |ai: &str, total: i64, reason: &str| ArchiveRow {
            ai_type: ai.into(),
            month_year: "2026-11".into(),
            monthly_limit: Some(10_000),
            tokens_in: total,
            tokens_out: 0,
            total_tokens: total,
            request_count: 1,
            cost_usd: 0.5,
            unpriced_requests: 0,
            last_request_at: Some(at),
            archived_at: at,
            reason: reason.into(),
        };
        let late = MonthRow {
            ai_type: "a".into(),
            month: "2026-11".into(),
            monthly_limit: Some(50_000),
            total_tokens: 900,
            request_count: 1,
            ..MonthRow::default()
        };
        let rows = merge_archived(
            vec![late],
            vec![
                archived("b", 7, "monthly"),
                archived("a", 9_900, "monthly"),
                archived("a", 400, "manual"),
            ],
        );
        let a = &rows[0];
        assert_eq!(
            (a.ai_type.as_str(), a.total_tokens, a.request_count),
            ("a", 10_800, 2)
        );
        assert_eq!(
            a.monthly_limit,
            Some(10_000),
            "the archived month's own limit"
        );
        assert_eq!(
            rows.len(),
            2,
            "a manual reset's archive row is not the month's usage"
        );
    }

    #[test]
    fn a_slot_frees_when_enough_holds_expire() {
        let t = |m: i64| DateTime::<Utc>::from_timestamp(1_800_000_000 + m * 60, 0).unwrap();
        // limit 2, two in flight: the first expiry frees a slot
        assert_eq!(in_flight(&[t(5), t(10)], 2), (2, Some(t(5))));
        // limit lowered to 2 with 3 (of more) fetched: two must expire
        assert_eq!(in_flight(&[t(5), t(10), t(15)], 2), (3, Some(t(10))));
        // room left: nothing to wait for
        assert_eq!(in_flight(&[t(5)], 2), (1, None));
    }
}
