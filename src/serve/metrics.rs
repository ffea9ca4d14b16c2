//! `/metrics`: what the server counts as it answers (decisions by reason, latency, database
//! errors, batch sizes) and, read at each scrape from the usage rollups (`status`, never the
//! request log), where each AI type and the total stand.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::db::Db;
use crate::domain::{Clock, Level};
use crate::ops::OpResult;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// check or reserve
    pub endpoint: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    /// the route as declared (`/v1/reservations/{id}/settle`), so ids do not make new series
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AiTypeLabels {
    /// an AI type, or `*` for the total over all of them
    pub ai_type: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    latency: HistogramFamily<RouteLabels>,
    database_errors: Counter,
    batch_size: Histogram,
    holds_in_flight: Gauge,
    tokens_used: Family<AiTypeLabels, Gauge>,
    tokens_limit: Family<AiTypeLabels, Gauge>,
    tokens_remaining: Family<AiTypeLabels, Gauge>,
    tokens_reserved: Family<AiTypeLabels, Gauge>,
    level: Family<AiTypeLabels, Gauge>,
    requests: Family<AiTypeLabels, Gauge>,
    cost: Family<AiTypeLabels, Gauge<f64, AtomicU64>>,
    /// one scrape at a time: each clears and refills the usage gauges
    scrape: tokio::sync::Mutex<()>,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~4 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tokenctl");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "admission_decisions",
            "Admission decisions (check and reserve) by reason: ok or why it was denied",
            decisions.clone(),
        );
        let latency: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its answer",
            prometheus_client::registry::Unit::Seconds,
            latency.clone(),
        );
        let database_errors = Counter::default();
        registry.register(
            "database_errors",
            "Requests that failed because the database could not be reached or did not answer in time",
            database_errors.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "admission_batch_size",
            "Reservations decided together in one transaction (group commit)",
            batch_size.clone(),
        );
        let holds_in_flight = Gauge::default();
        registry.register(
            "holds_in_flight",
            "Reservations holding tokens now (held, not past their TTL)",
            holds_in_flight.clone(),
        );
        let mut family = |name: &str, help: &str| {
            let f = Family::<AiTypeLabels, Gauge>::default();
            registry.register(name, help, f.clone());
            f
        };
        let tokens_used = family(
            "tokens_used",
            "Tokens used this month (ai_type \"*\": the total)",
        );
        let tokens_limit = family("tokens_limit", "The enforced monthly token limit");
        let tokens_remaining = family(
            "tokens_remaining",
            "Tokens left this month under the enforced limit",
        );
        let tokens_reserved = family("tokens_reserved", "Tokens held by open reservations");
        let level = family(
            "level",
            "Level against the monthly limit: 0 ok, 1 warning, 2 critical, 3 emergency",
        );
        let requests = family("requests", "Requests recorded this month");
        let cost = Family::<AiTypeLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "cost_usd",
            "Cost recorded this month, in US dollars",
            cost.clone(),
        );
        Metrics {
            registry,
            decisions,
            latency,
            database_errors,
            batch_size,
            holds_in_flight,
            tokens_used,
            tokens_limit,
            tokens_remaining,
            tokens_reserved,
            level,
            requests,
            cost,
            scrape: tokio::sync::Mutex::new(()),
        }
    }

    pub fn decided(&self, endpoint: &'static str, reason: &'static str) {
        self.decisions
            .get_or_create(&DecisionLabels { endpoint, reason })
            .inc();
    }

    pub fn answered(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .observe(seconds);
    }

    pub fn database_error(&self) {
        self.database_errors.inc();
    }

    pub fn batch(&self, size: usize) {
        self.batch_size.observe(size as f64);
    }

    /// The exposition, after reading where usage stands now.
    pub async fn scrape(&self, db: &Db, clock: &Clock) -> OpResult<String> {
        let _one_at_a_time = self.scrape.lock().await;
        let report = crate::ops::status::status(db, clock, &Default::default()).await?;
        let held = db.held_count(clock.now).await?;
        self.holds_in_flight.set(held);
        for f in [
            &self.tokens_used,
            &self.tokens_limit,
            &self.tokens_remaining,
            &self.tokens_reserved,
            &self.level,
            &self.requests,
        ] {
            f.clear();
        }
        self.cost.clear();
        let g = &report.global;
        let rows = report
            .ai_types
            .iter()
            .map(|a| {
                (
                    a.ai_type.as_str(),
                    a.total_tokens,
                    a.monthly_limit,
                    a.remaining,
                    a.reserved_tokens,
                    a.level,
                    a.request_count,
                    a.cost_usd.to_f64(),
                )
            })
            .chain(std::iter::once((
                crate::domain::validate::GLOBAL_SCOPE,
                g.total_tokens,
                g.enforced_limit,
                g.remaining,
                g.reserved_tokens,
                g.level,
                g.request_count,
                g.cost_usd.to_f64(),
            )));
        for (ai_type, used, limit, remaining, reserved, level, requests, cost) in rows {
            let labels = AiTypeLabels {
                ai_type: ai_type.to_string(),
            };
            self.tokens_used.get_or_create(&labels).set(used);
            self.tokens_limit.get_or_create(&labels).set(limit);
            self.tokens_remaining.get_or_create(&labels).set(remaining);
            self.tokens_reserved.get_or_create(&labels).set(reserved);
            self.level.get_or_create(&labels).set(level_number(level));
            self.requests.get_or_create(&labels).set(requests);
            self.cost.get_or_create(&labels).set(cost);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(|e| crate::error::OpError::internal(format!("cannot encode metrics: {e}")))?;
        Ok(text)
    }
}

fn level_number(level: Level) -> i64 {
    match level {
        Level::Ok => 0,
        Level::Warning => 1,
        Level::Critical => 2,
        Level::Emergency => 3,
    }
}
