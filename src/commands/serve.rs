//! `tokenctl serve`: checks what it was asked for, opens the database, and runs the server
//! until SIGTERM or SIGINT.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::ServeArgs;
use crate::db::{Db, DbUrl};
use crate::domain::Clock;
use crate::error::OpError;
use crate::serve::{is_loopback, Auth, LogFormat, ServeConfig, Server};

pub async fn run(url: &DbUrl, clock: Clock, args: ServeArgs) -> Result<ExitCode> {
    let loopback = is_loopback(&args.listen);
    if args.insecure_no_auth && !loopback {
        return Err(OpError::invalid(format!(
            "--insecure-no-auth is allowed only on a loopback address (127.0.0.1, ::1), not {}: \
             create a token instead (tokenctl tokens create --name NAME --scope admit)",
            args.listen
        ))
        .into());
    }
    // a request waits at most this long for a database connection, then gets 503: fail
    // closed, and fast, when the database is gone
    let db = Db::open_pool_waiting(url, args.connections, Duration::from_secs(5)).await?;
    let clock = super::shared_clock(&db, clock).await?;
    let has_tokens = crate::ops::tokens::any_active(&db).await?;
    if !args.insecure_no_auth && !loopback && !has_tokens {
        return Err(OpError::invalid(format!(
            "no token exists, so every request to {} would be refused: create one first \
             (tokenctl tokens create --name NAME --scope admit)",
            args.listen
        ))
        .into());
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the address listened on")?;
    let auth = if args.insecure_no_auth {
        Auth::Open
    } else {
        Auth::Tokens
    };
    args.log_format.notice(
        "listening",
        &format!(
            "listening on http://{addr} ({})",
            match (auth, has_tokens) {
                (Auth::Open, _) => "no auth: every endpoint open to this host",
                (Auth::Tokens, true) => "Authorization: Bearer TOKEN",
                (Auth::Tokens, false) =>
                    "no token exists yet: every request but /healthz, /readyz and /openapi.json gets 401 until one is created",
            }
        ),
    );
    let config = ServeConfig {
        auth,
        log_format: args.log_format,
        request_timeout: Duration::from_secs(args.request_timeout),
        max_body_bytes: usize::try_from(args.max_body_bytes).unwrap_or(usize::MAX),
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        local_zone: super::local_zone(),
    };
    let format = args.log_format;
    Server::new(db, clock, config)
        .run(listener, shutdown_signal(format))
        .await?;
    format.notice("stopped", "stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (service managers) or SIGINT (Ctrl-C).
async fn shutdown_signal(format: LogFormat) {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    format.notice(
        "stopping",
        "stopping: no new connections; finishing the requests in flight",
    );
}
