//! How failures reach the user: one line on stderr, the spec's exit code, never a password.

use std::process::ExitCode;

/// What kind of failure an operation reports. Each front end maps it once: the CLI to an
/// exit code (`exit_code`), an HTTP server to a status (`http_status`). A denial is not an
/// error: it is a decision, data like any other answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// bad input (a flag, a value, a URL): nothing was written
    InvalidInput,
    /// what the input names is not there (a reservation id, a log row)
    NotFound,
    /// the input contradicts what is stored (another AI type's reservation, a reused id)
    Conflict,
    /// the database did not answer, or a lock was not had in time: trying again may work
    Unavailable,
    /// anything else
    Internal,
}

/// A failure an operation reports on purpose, with its kind.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct OpError {
    pub kind: ErrorKind,
    pub message: String,
}

impl OpError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> OpError {
        OpError {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> OpError {
        OpError::new(ErrorKind::InvalidInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> OpError {
        OpError::new(ErrorKind::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> OpError {
        OpError::new(ErrorKind::Conflict, message)
    }

    pub fn internal(message: impl Into<String>) -> OpError {
        OpError::new(ErrorKind::Internal, message)
    }
}

/// Any failure from below the operations (the database, a file) as the operation reports it:
/// its kind (`ErrorKind::of`) and its whole cause chain as one line, so a connection failure
/// still names the host, port, database and user.
impl From<anyhow::Error> for OpError {
    fn from(err: anyhow::Error) -> OpError {
        match err.downcast::<OpError>() {
            Ok(op) => op,
            Err(err) => OpError::new(ErrorKind::of(&err), one_line(&err)),
        }
    }
}

impl ErrorKind {
    /// The kind of any failure: an `OpError`'s own; a database that did not answer or a lock
    /// not had in time is `Unavailable`; the rest `Internal`.
    pub fn of(err: &anyhow::Error) -> ErrorKind {
        for cause in err.chain() {
            if let Some(e) = cause.downcast_ref::<OpError>() {
                return e.kind;
            }
        }
        for cause in err.chain() {
            if let Some(e) = cause.downcast_ref::<sqlx::Error>() {
                return match e {
                    sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed => ErrorKind::Unavailable,
                    // PostgreSQL: lock_timeout (55P03), statement timeout or cancel (57014),
                    // server shutting down (57P01..57P03); SQLite: busy (5), locked (6)
                    sqlx::Error::Database(d)
                        if matches!(
                            d.code().as_deref(),
                            Some("55P03" | "57014" | "57P01" | "57P02" | "57P03" | "5" | "6")
                        ) =>
                    {
                        ErrorKind::Unavailable
                    }
                    _ => ErrorKind::Internal,
                };
            }
            if cause.downcast_ref::<std::io::Error>().is_some() {
                return ErrorKind::Unavailable;
            }
        }
        ErrorKind::Internal
    }

    /// The spec's exit codes: input the user can fix is 2, everything else 1.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::InvalidInput | ErrorKind::NotFound | ErrorKind::Conflict => EXIT_USAGE,
            ErrorKind::Unavailable | ErrorKind::Internal => EXIT_FAILURE,
        }
    }

    /// The `code` of an HTTP error body: the kind's JSON name.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }

    /// The HTTP status a server answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidInput => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }
}

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_DENIED: u8 = 3;

pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    ExitCode::from(ErrorKind::of(err).exit_code())
}

/// The whole error chain as one line: "context: cause: cause".
/// A message as it may reach a terminal: control characters (an escape sequence typed into
/// `--ai-type`, say) are shown escaped, never obeyed.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string().replace('\n', " ");
        let text = text.trim().to_string();
        // sqlx repeats its cause inside its own message; skip a part already said
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// Replaces every secret in `text` with "***".
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret.as_str(), "***");
    }
    out
}

/// Hides the password of every URL in `text` ("postgres://u:pw@h" → "postgres://u:***@h"):
/// for messages that quote what the user typed, such as argument errors.
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '/' | '?'))
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority
            .rfind('@')
            .and_then(|at| authority[..at].find(':').map(|colon| (colon, at)))
        {
            Some((colon, at)) => {
                out.push_str(&authority[..colon + 1]);
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_json_name_as_code() {
        for kind in [
            ErrorKind::InvalidInput,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Unavailable,
            ErrorKind::Internal,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.code());
        }
    }

    #[test]
    fn redaction_and_one_line() {
        let err = anyhow::anyhow!("connection to postgres://u:hunter2@db/x failed\nretry")
            .context("cannot connect");
        let line = redact(&one_line(&err), &["hunter2".into()]);
        assert_eq!(
            line,
            "cannot connect: connection to postgres://u:***@db/x failed retry"
        );
    }
}
