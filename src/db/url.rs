//! Which database a URL names, how to describe it in a message, and what in it is secret.

use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::error::OpError;

#[derive(Debug, Clone)]
pub enum DbUrl {
    Sqlite {
        path: PathBuf,
        memory: bool,
        is_default: bool,
    },
    Postgres {
        url: String,
        description: String,
        secrets: Vec<String>,
    },
}

impl DbUrl {
    pub fn parse(raw: &str) -> Result<DbUrl, OpError> {
        let raw = raw.trim();
        let lower = raw.to_ascii_lowercase();
        if lower.starts_with("sqlite:") {
            let rest = &raw["sqlite:".len()..];
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let rest = rest.split('?').next().unwrap_or("");
            if rest == ":memory:" {
                return Ok(DbUrl::Sqlite {
                    path: PathBuf::from(":memory:"),
                    memory: true,
                    is_default: false,
                });
            }
            if rest.is_empty() {
                return Err(OpError::invalid("the SQLite URL names no file: use sqlite:///absolute/path.db or sqlite://relative.db"));
            }
            return Ok(DbUrl::Sqlite {
                path: PathBuf::from(rest),
                memory: false,
                is_default: false,
            });
        }
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            let secrets = secrets_of(raw);
            let opts = PgConnectOptions::from_str(raw).map_err(|e| {
                OpError::invalid(format!(
                    "invalid PostgreSQL URL: {}",
                    redact_with(&e.to_string(), &secrets)
                ))
            })?;
            let description = format!(
                "PostgreSQL at {}:{}/{} as {}",
                opts.get_host(),
                opts.get_port(),
                opts.get_database().unwrap_or(opts.get_username()),
                opts.get_username()
            );
            return Ok(DbUrl::Postgres {
                url: raw.to_string(),
                description: redact_with(&description, &secrets),
                secrets,
            });
        }
        let scheme = raw.split(':').next().unwrap_or("");
        Err(OpError::invalid(format!(
            "unsupported database URL scheme '{scheme}': use sqlite://PATH or postgres://USER@HOST/DB"
        )))
    }

    pub fn default_sqlite(path: PathBuf) -> DbUrl {
        DbUrl::Sqlite {
            path,
            memory: false,
            is_default: true,
        }
    }

    /// "SQLite database /path" or "PostgreSQL at host:port/db as user": no password.
    pub fn describe(&self) -> String {
        match self {
            DbUrl::Sqlite { path, .. } => format!("SQLite database {}", path.display()),
            DbUrl::Postgres { description, .. } => description.clone(),
        }
    }

    pub fn secrets(&self) -> Vec<String> {
        match self {
            DbUrl::Sqlite { .. } => Vec::new(),
            DbUrl::Postgres { secrets, .. } => secrets.clone(),
        }
    }

    pub fn redact(&self, text: &str) -> String {
        redact_with(text, &self.secrets())
    }
}

fn redact_with(text: &str, secrets: &[String]) -> String {
    crate::error::redact(text, secrets)
}

/// The password in a URL's user info or `password=` parameter, as written and decoded, and
/// PGPASSWORD, which libpq-style clients (and sqlx) also read.
fn secrets_of(raw: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(after_scheme) = raw.split_once("://").map(|(_, r)| r) {
        let authority = after_scheme.split(['/', '?']).next().unwrap_or("");
        if let Some((userinfo, _host)) = authority.rsplit_once('@') {
            if let Some((_, password)) = userinfo.split_once(':') {
                found.push(password.to_string());
            }
        }
        if let Some((_, query)) = after_scheme.split_once('?') {
            for pair in query.split('&') {
                if let Some(("password", value)) = pair.split_once('=') {
                    found.push(value.to_string());
                }
            }
        }
    }
    if let Ok(p) = std::env::var("PGPASSWORD") {
        found.push(p);
    }
    let decoded: Vec<String> = found.iter().map(|s| percent_decode(s)).collect();
    found.extend(decoded);
    found.retain(|s| !s.is_empty());
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found.dedup();
    found
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_are_described_without_password() {
        let u = DbUrl::parse("postgres://app:s3cr%40t@db.example:6543/tokens").unwrap();
        assert_eq!(u.describe(), "PostgreSQL at db.example:6543/tokens as app");
        assert!(u.secrets().contains(&"s3cr%40t".to_string()));
        assert!(u.secrets().contains(&"s3cr@t".to_string()));
        assert_eq!(u.redact("bad password s3cr@t"), "bad password ***");
    }

    #[test]
    fn sqlite_forms() {
        match DbUrl::parse("sqlite:///tmp/x.db?mode=rwc").unwrap() {
            DbUrl::Sqlite { path, .. } => assert_eq!(path, PathBuf::from("/tmp/x.db")),
            _ => panic!(),
        }
        match DbUrl::parse("sqlite:rel.db").unwrap() {
            DbUrl::Sqlite { path, .. } => assert_eq!(path, PathBuf::from("rel.db")),
            _ => panic!(),
        }
        assert!(DbUrl::parse("mysql://x").is_err());
        assert!(DbUrl::parse("sqlite://").is_err());
    }
}
