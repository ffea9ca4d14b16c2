//! `tokenctl serve`: the operations over HTTP, for the backend's hot path and for dashboards.
//! A handler deserializes the request into the operation's typed request, calls the operation
//! and serializes its response: every body is the matching command's `--json` document.
//!
//! Around the handlers, outermost first: the access log (one line per request, and the
//! latency histogram), a deadline per request, the body size limit, then per route group the
//! token check of its scope.

mod api;
mod auth;
mod batch;
mod dashboard;
mod metrics;
mod reply;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

pub use api::ApiDoc;
pub use auth::Auth;

use crate::db::Db;
use crate::domain::Clock;
use crate::error::{ErrorKind, OpError};

/// How the access log is written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-11-25T10:00:00.123Z POST /v1/reservations 201 1.8ms reason=ok token=backend`
    Text,
    /// one JSON object per line, for log shippers
    Json,
}

impl LogFormat {
    /// A line about the server itself on stderr, in the access log's format: with
    /// `--log-format json` every line is one JSON object, for log shippers.
    pub fn notice(self, event: &str, message: &str) {
        match self {
            LogFormat::Text => eprintln!("tokenctl serve: {message}"),
            LogFormat::Json => eprintln!(
                "{}",
                serde_json::json!({
                    "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "event": event,
                    "message": message,
                })
            ),
        }
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("log format must be text or json, got '{s}'")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub auth: Auth,
    pub log_format: LogFormat,
    /// a request not answered by then gets 503 (its transaction, if any, is rolled back)
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// after SIGTERM, how long requests in flight may take to finish
    pub shutdown_grace: Duration,
    /// the zone this host was told to use (TOKENCTL_TZ), checked against the database's
    pub local_zone: Option<String>,
}

/// What every handler shares.
#[derive(Clone)]
pub struct Server(Arc<Inner>);

struct Inner {
    db: Db,
    /// reservations are decided in batches (group commit)
    batcher: batch::Batcher,
    /// the agreed clock (zone, offset from the database's); each request reads it afresh
    clock: RwLock<Clock>,
    config: ServeConfig,
    metrics: metrics::Metrics,
    tokens: auth::TokenCache,
}

/// How often the clock is agreed with the database again (its zone may be changed by
/// `config set --timezone`, and this host's clock may drift).
const CLOCK_RESYNC: Duration = Duration::from_secs(30);

impl Server {
    /// A server over `db`; its reservation batcher starts now (inside the runtime).
    pub fn new(db: Db, clock: Clock, config: ServeConfig) -> Server {
        Server(Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let for_clock = weak.clone();
            let for_metrics = weak.clone();
            let batcher = batch::Batcher::start(
                db.clone(),
                move || {
                    for_clock
                        .upgrade()
                        .map(|inner| Server(inner).clock())
                        .unwrap_or(clock)
                },
                move |size| {
                    if let Some(inner) = for_metrics.upgrade() {
                        inner.metrics.batch(size);
                    }
                },
            );
            Inner {
                db,
                batcher,
                clock: RwLock::new(clock),
                config,
                metrics: metrics::Metrics::new(),
                tokens: auth::TokenCache::default(),
            }
        }))
    }

    pub fn db(&self) -> &Db {
        &self.0.db
    }

    /// "Now" for one request.
    pub fn clock(&self) -> Clock {
        self.0
            .clock
            .read()
            .map(|c| c.refreshed())
            .unwrap_or_else(|poisoned| poisoned.into_inner().refreshed())
    }

    fn metrics(&self) -> &metrics::Metrics {
        &self.0.metrics
    }

    /// Decides and holds: the reservations of the moment decided together (group commit).
    pub async fn reserve(
        &self,
        req: crate::ops::admit::ReserveRequest,
    ) -> crate::ops::OpResult<crate::db::ledger::Reserved> {
        self.0.batcher.reserve(req.ask()?).await
    }

    /// Records a finished request's usage (a settle, or usage without a reservation), with
    /// the admissions of the moment (group commit).
    pub async fn record(
        &self,
        req: crate::ops::admit::RecordRequest,
    ) -> crate::ops::OpResult<crate::db::ledger::Recorded> {
        let (input, cut_note) = crate::ops::admit::record_input(&self.0.db, req).await?;
        let mut recorded = self.0.batcher.record(input).await?;
        recorded.warnings.extend(cut_note);
        Ok(recorded)
    }

    /// Every route, with the layers every request passes through.
    pub fn router(&self) -> Router {
        api::routes(self.clone())
            .layer(DefaultBodyLimit::max(self.0.config.max_body_bytes))
            .layer(middleware::from_fn_with_state(self.clone(), deadline))
            .layer(middleware::from_fn_with_state(self.clone(), access_log))
    }

    /// Serves on `listener` until `shutdown` completes, then lets requests in flight finish
    /// for up to the grace period.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let resync = tokio::spawn(resync_clock(self.clone()));
        let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            let _ = stopping_tx.send(true);
        };
        let grace = self.0.config.shutdown_grace;
        let app = self.router();
        let serving = axum::serve(listener, app).with_graceful_shutdown(signal);
        let mut stopping = stopping_rx.clone();
        let give_up = async move {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        };
        let result = tokio::select! {
            r = serving => r.context("the server stopped"),
            _ = give_up => {
                self.0.config.log_format.notice(
                    "stopping_anyway",
                    &format!(
                        "requests still running after {} s: stopping anyway (their transactions roll back)",
                        grace.as_secs()
                    ),
                );
                Ok(())
            }
        };
        resync.abort();
        result
    }
}

/// Agrees the clock with the database again now and then; keeps the last one on failure
/// (the writes read the database's clock inside their transactions anyway).
async fn resync_clock(server: Server) {
    loop {
        tokio::time::sleep(CLOCK_RESYNC).await;
        let base = server.clock();
        let unsynced = Clock {
            offset: chrono::Duration::zero(),
            ..base
        };
        let zone = server.0.config.local_zone.clone();
        if let Ok(shared) = crate::ops::clock::shared(&server.0.db, unsynced, zone.as_deref()).await
        {
            if let Ok(mut clock) = server.0.clock.write() {
                *clock = shared.clock;
            }
        }
    }
}

/// A request not answered within the configured time gets 503: the client may try again,
/// and whatever the request had begun is rolled back with its dropped transaction.
async fn deadline(State(server): State<Server>, req: Request, next: Next) -> Response {
    let limit = server.0.config.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => reply::ApiError::Op(OpError::new(
            ErrorKind::Unavailable,
            format!(
                "no answer within {} s (serve --request-timeout)",
                limit.as_secs_f64()
            ),
        ))
        .into_response(),
    }
}

/// The name of the token a request came with (never its secret), for the access log.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

/// One line per request on stderr, and the latency histogram.
async fn access_log(State(server): State<Server>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(req).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    server
        .metrics()
        .answered(method.as_str(), &route, status, elapsed.as_secs_f64());
    if response.extensions().get::<ErrorKind>() == Some(&ErrorKind::Unavailable) {
        server.metrics().database_error();
    }
    let reason = response
        .headers()
        .get(reply::REASON_HEADER)
        .and_then(|v| v.to_str().ok())
        .or_else(|| response.extensions().get::<reply::ErrorCode>().map(|c| c.0))
        .unwrap_or("-");
    let token = response
        .extensions()
        .get::<Caller>()
        .map(|t| t.0.as_str())
        .unwrap_or("-");
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let ms = elapsed.as_secs_f64() * 1000.0;
    let line = match server.0.config.log_format {
        LogFormat::Text => format!(
            "{at} {method} {} {status} {ms:.1}ms reason={reason} token={}",
            crate::error::printable(&path),
            crate::error::printable(token)
        ),
        LogFormat::Json => serde_json::json!({
            "at": at,
            "method": method.as_str(),
            "path": path,
            "status": status,
            "latency_ms": (ms * 1000.0).round() / 1000.0,
            "reason": reason,
            "token": token,
        })
        .to_string(),
    };
    eprintln!("{line}");
    response
}

/// Whether `addr` can only be reached from this host.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}
