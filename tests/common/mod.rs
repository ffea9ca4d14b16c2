//! Test support: every test runs the real `tokenctl` binary against its own database —
//! a fresh SQLite file, or a fresh PostgreSQL database created on the server named by
//! TOKENCTL_TEST_POSTGRES_URL (default: postgres://postgres@127.0.0.1:5432/postgres) and
//! dropped afterwards. There is no skipping: without a server, PostgreSQL tests fail and say
//! how to get one (scripts/test.sh starts one).
#![allow(dead_code)]

pub mod serve;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;
use sqlx::{Connection, Executor};

pub const NOW: &str = "2026-11-23T10:15:00Z";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Env {
    pub backend: Backend,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub now: String,
    pg_database: Option<String>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn admin_url() -> String {
    std::env::var("TOKENCTL_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn with_database(admin: &str, db: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b.to_string(), format!("?{q}")),
        None => (admin.to_string(), String::new()),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[after_scheme..].find('/') {
        Some(i) => base[..after_scheme + i].to_string(),
        None => base,
    };
    format!("{root}/{db}{query}")
}

fn pg_admin(sql: &str) {
    pg_admin_at(&admin_url(), sql)
}

fn pg_admin_at(admin: &str, sql: &str) {
    runtime().block_on(async {
        let mut c = sqlx::PgConnection::connect(admin)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is needed for this test and is not reachable at {admin}: {e}. \
                 Run the tests with scripts/test.sh, which finds or starts a server, \
                 or set TOKENCTL_TEST_POSTGRES_URL."
                )
            });
        c.execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
}

impl Env {
    pub fn new(backend: Backend) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg_database) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("tokenctl.db").display()),
                None,
            ),
            Backend::Postgres => {
                let name = format!(
                    "tokenctl_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst),
                    uuid::Uuid::new_v4().simple().to_string().get(..8).unwrap()
                );
                pg_admin(&format!("CREATE DATABASE {name}"));
                (with_database(&admin_url(), &name), Some(name))
            }
        };
        Env {
            backend,
            url,
            dir,
            now: NOW.to_string(),
            pg_database,
        }
    }

    /// An environment on a database the test manages itself (one in its own `Cluster`):
    /// nothing is created here, nor dropped afterwards.
    pub fn on_url(backend: Backend, url: &str) -> Env {
        Env {
            backend,
            url: url.to_string(),
            dir: tempfile::tempdir().unwrap(),
            now: NOW.to_string(),
            pg_database: None,
        }
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.dir.path().join("tokenctl.db")
    }

    /// A `tokenctl` command with this test's database and clock, and no stray environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_under(&[], args)
    }

    /// `tokenctl args` run by `wrapper` (e.g. `faketime -f +15m`), with this test's database
    /// and clock and no stray environment.
    pub fn cmd_under(&self, wrapper: &[&str], args: &[&str]) -> Command {
        let tokenctl = env!("CARGO_BIN_EXE_tokenctl");
        let mut c = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(tokenctl);
                c
            }
            None => Command::new(tokenctl),
        };
        c.args(args)
            .env_remove("DATABASE_URL")
            .env_remove("TOKENCTL_TZ")
            .env_remove("PGPASSWORD")
            .env_remove("COLUMNS")
            .env("TOKENCTL_DATABASE_URL", &self.url)
            .env("TOKENCTL_NOW", &self.now)
            .env("XDG_DATA_HOME", self.dir.path().join("xdg"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        c
    }

    pub fn at(&self, now: &str) -> Env {
        Env {
            backend: self.backend,
            url: self.url.clone(),
            dir: tempfile::tempdir().unwrap(),
            now: now.into(),
            pg_database: None,
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and expects exit code `code`; returns (stdout, stderr).
    pub fn expect(&self, code: i32, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(
            out.status.code(),
            Some(code),
            "tokenctl {args:?}\nstdout: {stdout}\nstderr: {stderr}"
        );
        (stdout, stderr)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        self.expect(0, args).0
    }

    /// Runs with --json appended and parses the one document on stdout.
    pub fn json_code(&self, code: i32, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--json");
        let (stdout, _) = self.expect(code, &all);
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not one JSON document ({e}): {stdout}"))
    }

    pub fn json(&self, args: &[&str]) -> Value {
        self.json_code(0, args)
    }

    pub fn record(&self, ai: &str, tokens_in: i64, tokens_out: i64) -> Value {
        self.json(&[
            "record",
            "--ai-type",
            ai,
            "--tokens-in",
            &tokens_in.to_string(),
            "--tokens-out",
            &tokens_out.to_string(),
        ])
    }

    /// `n` reservations of 10 tokens that must all be allowed.
    pub fn reserve_ok_n(&self, ai: &str, n: usize) {
        for _ in 0..n {
            let v = self.json(&["reserve", "--ai-type", ai, "--estimated-tokens", "10"]);
            assert_eq!(v["allowed"], true, "{v}");
        }
    }

    pub fn status_of(&self, ai: &str) -> Value {
        let s = self.json(&["status", "--ai-type", ai]);
        s["ai_types"][0].clone()
    }

    /// Runs SQL as "another program" would, straight on the database.
    pub fn sql(&self, sql: &str) {
        let url = self.url.clone();
        runtime().block_on(async move {
            match self.backend {
                Backend::Sqlite => {
                    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                    c.execute(sql)
                        .await
                        .unwrap_or_else(|e| panic!("{sql}: {e}"));
                }
                Backend::Postgres => {
                    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                    c.execute(sql)
                        .await
                        .unwrap_or_else(|e| panic!("{sql}: {e}"));
                }
            }
        });
    }

    /// The first column of the first row of `sql`, as an i64.
    pub fn scalar(&self, sql: &str) -> i64 {
        let url = self.url.clone();
        runtime().block_on(async move {
            match self.backend {
                Backend::Sqlite => {
                    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                    sqlx::query_scalar::<_, i64>(sql)
                        .fetch_one(&mut c)
                        .await
                        .unwrap_or_else(|e| panic!("{sql}: {e}"))
                }
                Backend::Postgres => {
                    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                    sqlx::query_scalar::<_, i64>(sql)
                        .fetch_one(&mut c)
                        .await
                        .unwrap_or_else(|e| panic!("{sql}: {e}"))
                }
            }
        })
    }

    pub fn text(&self, sql: &str) -> Option<String> {
        let url = self.url.clone();
        runtime().block_on(async move {
            match self.backend {
                Backend::Sqlite => {
                    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                    sqlx::query_scalar::<_, Option<String>>(sql)
                        .fetch_one(&mut c)
                        .await
                        .unwrap()
                }
                Backend::Postgres => {
                    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                    sqlx::query_scalar::<_, Option<String>>(sql)
                        .fetch_one(&mut c)
                        .await
                        .unwrap()
                }
            }
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_database {
            pg_admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// A PostgreSQL cluster of one test's own, made with initdb and pg_ctl as scripts/test.sh makes
/// one when it finds no server: for what the shared server cannot show, such as a command
/// started while PostgreSQL is down. `new` leaves it stopped, on a free port; dropping it stops
/// it and deletes its folder, also when the test fails.
pub struct Cluster {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// initdb refuses to run as root: as root, the cluster runs as the postgres system user
    as_postgres: bool,
}

impl Cluster {
    pub fn new() -> Cluster {
        let bin = postgres_bin();
        let dir = tempfile::Builder::new()
            .prefix("tokenctl-pg.")
            .tempdir()
            .unwrap();
        let as_postgres = is_root();
        if as_postgres {
            run_ok(Command::new("chown").arg("postgres").arg(dir.path()));
        }
        let cluster = Cluster {
            port: free_port(),
            bin,
            dir,
            as_postgres,
        };
        run_ok(cluster.tool("initdb").arg("-D").arg(cluster.data()).args([
            "--auth=trust",
            "--username=postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ]));
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn tool(&self, name: &str) -> Command {
        let exe = self.bin.join(name);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        c.stdin(Stdio::null());
        c
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        run_ok(
            self.tool("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.path().join("log"))
                .args(["-w", "-o", &options, "start"]),
        );
    }

    /// Stops the server at once (as a crash or a killed host would), keeping its data.
    pub fn stop(&self) {
        run_ok(self.tool("pg_ctl").arg("-D").arg(self.data()).args([
            "-m",
            "immediate",
            "-w",
            "stop",
        ]));
    }

    pub fn create_database(&self, name: &str) {
        pg_admin_at(&self.url("postgres"), &format!("CREATE DATABASE {name}"));
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // nothing in a throwaway cluster needs a clean shutdown; a cluster never started
        // makes pg_ctl fail, which is fine
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The newest installed server's bin folder (Debian keeps them in /usr/lib/postgresql/N/bin),
/// else where pg_config says.
fn postgres_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return bin;
    }
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match from_pg_config {
        Some(bin) if bin.join("initdb").exists() => bin,
        _ => panic!(
            "this test starts its own PostgreSQL and needs initdb and pg_ctl \
             (Debian: apt-get install postgresql)"
        ),
    }
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A port nothing listens on now (the OS picks it; taken back at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run_ok(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An integer of a JSON document, or a panic that shows the value.
pub fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// Sum of total_tokens over token_usage and token_usage_archive: what no reset may change.
pub fn grand_total(env: &Env) -> i64 {
    env.scalar("SELECT CAST((SELECT COALESCE(SUM(total_tokens), 0) FROM token_usage) + (SELECT COALESCE(SUM(total_tokens), 0) FROM token_usage_archive) AS BIGINT)")
}

/// Starts `tokenctl args` in the background, its output captured.
pub fn spawn(env: &Env, args: &[&str]) -> std::process::Child {
    env.cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// Defines `mod $name { fn sqlite(); fn postgres(); }`: one scenario, both backends.
#[macro_export]
macro_rules! both {
    ($name:ident, |$env:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn sqlite() {
                let $env = $crate::common::Env::new($crate::common::Backend::Sqlite);
                $body
            }
            #[test]
            fn postgres() {
                let $env = $crate::common::Env::new($crate::common::Backend::Postgres);
                $body
            }
        }
    };
}
