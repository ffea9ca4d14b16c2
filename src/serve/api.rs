//! The routes: each handler turns the request into the operation's typed request, calls the
//! operation, and answers with its document (see `reply`). The OpenAPI document is generated
//! from the annotations here and the schemas of the types themselves.

use axum::extract::{FromRequest, FromRequestParts, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::auth;
use super::reply::{admission, ok, with_status, ApiError, ApiResult};
use super::Server;
use crate::db::ledger::{Recorded, Released, Reserved};
use crate::domain::input::{AiType, Day, Month, Since, Ttl};
use crate::domain::{validate, Decision};
use crate::error::OpError;
use crate::ops::admit::{self, CheckRequest, Estimate, RecordRequest, ReleaseRequest, ReserveRequest};
use crate::ops::tokens::TokenScope;
use crate::ops::{alerts, distribution, limits, status};

/// A JSON body, refused with a JSON error (400, or 413 over the size limit).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(T);

/// A query string, refused with a JSON error.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(T);

/// A path parameter, refused with a JSON error.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(T);

pub fn routes(server: Server) -> Router {
    let read = Router::new()
        .route("/api/token-usage/monthly", get(monthly))
        .route("/api/token-usage/monthly/{ai_type}", get(monthly_of))
        .route("/api/token-usage/summary", get(summary))
        .route("/api/token-usage/limits", get(limits_report))
        .route("/api/token-usage/alerts", get(alerts_report))
        .route("/api/token-usage/status/{ai_type}", get(status_of))
        .route("/api/token-usage/distribution", get(distribution_report))
        .route("/metrics", get(metrics))
        .route_layer(from_fn_with_state((server.clone(), TokenScope::Read), auth::require));
    let admit = Router::new()
        .route("/v1/check", post(check))
        .route("/v1/reservations", post(reserve))
        .route("/v1/reservations/{id}/settle", post(settle))
        .route("/v1/reservations/{id}/release", post(release))
        .route("/v1/usage", post(usage))
        .route_layer(from_fn_with_state((server.clone(), TokenScope::Admit), auth::require));
    let open = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi));
    read.merge(admit)
        .merge(open)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(server)
}

async fn not_found() -> ApiError {
    ApiError::Op(OpError::not_found(
        "no such endpoint: GET /openapi.json lists them",
    ))
}

async fn method_not_allowed() -> Response {
    let mut r = ApiError::Op(OpError::invalid(
        "this endpoint does not take this method: GET /openapi.json lists them",
    ))
    .into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthQuery {
    /// YYYY-MM (default: the current month)
    #[param(value_type = Option<String>)]
    month: Option<Month>,
}

/// Usage of every AI type and the total: `tokenctl status --json`.
#[utoipa::path(get, path = "/api/token-usage/monthly", params(MonthQuery), tag = "read",
    responses((status = 200, description = "`status --json`", body = Object), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn monthly(State(s): State<Server>, Query(q): Query<MonthQuery>) -> ApiResult {
    let req = status::StatusRequest {
        month: q.month,
        ai_type: None,
    };
    ok(&status::status(s.db(), &s.clock(), &req).await?)
}

/// One AI type's usage and the total: `tokenctl status --ai-type A --json`.
#[utoipa::path(get, path = "/api/token-usage/monthly/{ai_type}", params(("ai_type" = String, Path), MonthQuery),
    tag = "read",
    responses((status = 200, description = "`status --ai-type A --json`", body = Object), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn monthly_of(
    State(s): State<Server>,
    Path(ai_type): Path<AiType>,
    Query(q): Query<MonthQuery>,
) -> ApiResult {
    let req = status::StatusRequest {
        month: q.month,
        ai_type: Some(ai_type),
    };
    ok(&status::status(s.db(), &s.clock(), &req).await?)
}

/// `status`'s total for the current month, with how many AI types stand at each level.
#[utoipa::path(get, path = "/api/token-usage/summary", tag = "read",
    responses((status = 200, description = "the total, and AI types per level", body = Object),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn summary(State(s): State<Server>) -> ApiResult {
    ok(&status::summary(s.db(), &s.clock()).await?)
}

/// The limits in force: `tokenctl limits --json`.
#[utoipa::path(get, path = "/api/token-usage/limits", tag = "read",
    responses((status = 200, description = "`limits --json`", body = Object),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn limits_report(State(s): State<Server>) -> ApiResult {
    ok(&limits::limits(s.db()).await?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// a duration back from now (24h, 7d) or an RFC 3339 time; ignored with `active`
    #[param(value_type = Option<String>)]
    since: Option<Since>,
    /// warning, critical or emergency
    level: Option<String>,
    /// an AI type, or `*` for the total
    ai_type: Option<String>,
    /// each AI type's current level where it is not ok: `alerts --active`
    active: Option<bool>,
}

/// Alerts raised, newest first (`alerts --json`), or the active levels (`alerts --active --json`).
#[utoipa::path(get, path = "/api/token-usage/alerts", params(AlertsQuery), tag = "read",
    responses((status = 200, description = "`alerts --json` or `alerts --active --json`", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn alerts_report(State(s): State<Server>, Query(q): Query<AlertsQuery>) -> ApiResult {
    let invalid = |field: &str, e: String| ApiError::Op(OpError::invalid(format!("{field}: {e}")));
    let req = alerts::AlertsRequest {
        since: q.since,
        level: q
            .level
            .map(|l| validate::alert_level(&l).map_err(|e| invalid("level", e)))
            .transpose()?,
        ai_type: q
            .ai_type
            .map(|a| validate::ai_type_or_global(&a).map_err(|e| invalid("ai_type", e)))
            .transpose()?,
    };
    let clock = s.clock();
    if q.active.unwrap_or(false) {
        ok(&alerts::active(s.db(), &clock, &req).await?)
    } else {
        ok(&alerts::alerts(s.db(), &clock, &req).await?)
    }
}

/// One AI type's row of `status`, and whether a 1-token request of it would pass now.
#[utoipa::path(get, path = "/api/token-usage/status/{ai_type}", params(("ai_type" = String, Path)), tag = "read",
    responses((status = 200, description = "the `status` row with `allowed` and `reason`", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn status_of(State(s): State<Server>, Path(ai_type): Path<AiType>) -> ApiResult {
    ok(&status::ai_type_now(s.db(), &s.clock(), &ai_type).await?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DistributionQuery {
    /// YYYY-MM (default: the current month, or the day's)
    #[param(value_type = Option<String>)]
    month: Option<Month>,
    /// YYYY-MM-DD: the day whose hours to show
    #[param(value_type = Option<String>)]
    day: Option<Day>,
    /// default: all AI types together
    #[param(value_type = Option<String>)]
    ai_type: Option<AiType>,
}

/// How evenly usage is spread: `tokenctl distribution --json`.
#[utoipa::path(get, path = "/api/token-usage/distribution", params(DistributionQuery), tag = "read",
    responses((status = 200, description = "`distribution --json`", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn distribution_report(State(s): State<Server>, Query(q): Query<DistributionQuery>) -> ApiResult {
    let req = distribution::DistributionRequest {
        month: q.month,
        day: q.day,
        ai_type: q.ai_type,
    };
    req.check()?;
    ok(&distribution::distribution(s.db(), &s.clock(), &req).await?)
}

/// Prometheus metrics (OpenMetrics text), names prefixed `tokenctl_`.
#[utoipa::path(get, path = "/metrics", tag = "read",
    responses((status = 200, description = "OpenMetrics text exposition", content_type = "application/openmetrics-text", body = String),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn metrics(State(s): State<Server>) -> ApiResult {
    let text = s.metrics().scrape(s.db(), &s.clock()).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Whether a request of this size may go ahead now (holds nothing): `tokenctl check --json`.
#[utoipa::path(post, path = "/v1/check", request_body = CheckRequest, tag = "admit",
    responses((status = 200, description = "allowed", body = Decision),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "denied, and waiting will not help (or the token lacks the scope)", body = Decision),
        (status = 413, body = ErrorBody),
        (status = 429, description = "denied; Retry-After says when it may pass", body = Decision),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn check(State(s): State<Server>, Body(req): Body<CheckRequest>) -> ApiResult {
    let req = CheckRequest {
        estimate: req.estimate.counted()?,
        ..req
    };
    let clock = s.clock();
    let decision = admit::check(s.db(), &clock, &req).await?;
    s.metrics().decided("check", decision.reason.as_str());
    Ok(admission(&decision, &decision, false, clock.now, &clock.periods()))
}

/// A reservation's body: `check`'s, and how long the hold lasts.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReserveBody {
    #[serde(flatten)]
    check: CheckRequest,
    /// how long the hold lasts unless settled or released (default 600, at most 7 days)
    #[schema(minimum = 1, maximum = 604800)]
    ttl_seconds: Option<u64>,
}

/// Decide and, when allowed, hold the estimate against every limit: `tokenctl reserve --json`.
#[utoipa::path(post, path = "/v1/reservations", request_body = ReserveBody, tag = "admit",
    responses((status = 201, description = "held: settle or release it by its reservation_id", body = Reserved),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "denied, and waiting will not help (or the token lacks the scope)", body = Reserved),
        (status = 413, body = ErrorBody),
        (status = 429, description = "denied; Retry-After says when it may pass", body = Reserved),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn reserve(State(s): State<Server>, Body(body): Body<ReserveBody>) -> ApiResult {
    let ttl: Ttl = match body.ttl_seconds {
        Some(n) => format!("{n}s").parse(),
        None => "10m".parse(),
    }
    .map_err(|e| ApiError::Op(OpError::invalid(format!("ttl_seconds: {e}"))))?;
    let req = ReserveRequest {
        ai_type: body.check.ai_type,
        estimate: body.check.estimate.counted()?,
        ttl,
    };
    let clock = s.clock();
    let reserved = s.reserve(req).await?;
    s.metrics().decided("reserve", reserved.decision.reason.as_str());
    Ok(admission(
        &reserved.decision,
        &reserved,
        reserved.reservation_id.is_some(),
        clock.now,
        &clock.periods(),
    ))
}

/// Settle a reservation with what its request used: `tokenctl record --reservation ID --json`.
#[utoipa::path(post, path = "/v1/reservations/{id}/settle", params(("id" = String, Path)),
    request_body = RecordRequest, tag = "admit",
    responses((status = 200, description = "recorded (`duplicate` when it was already)", body = Recorded),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "no such reservation", body = ErrorBody),
        (status = 409, description = "the reservation is another AI type's, or the request id another request's", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn settle(
    State(s): State<Server>,
    Path(id): Path<String>,
    Body(req): Body<RecordRequest>,
) -> ApiResult {
    ok(&admit::settle(s.db(), &s.clock(), &id, req).await?)
}

/// Give back a reservation whose request never ran: `tokenctl release --json`.
#[utoipa::path(post, path = "/v1/reservations/{id}/release", params(("id" = String, Path)), tag = "admit",
    responses((status = 200, description = "released (or already ended: see `state`)", body = Released),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "no such reservation", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn release(State(s): State<Server>, Path(id): Path<String>) -> ApiResult {
    let req = ReleaseRequest { reservation_id: id };
    ok(&admit::release(s.db(), &s.clock(), &req).await?)
}

/// Record what one finished request used: `tokenctl record --json`.
#[utoipa::path(post, path = "/v1/usage", request_body = RecordRequest, tag = "admit",
    responses((status = 201, description = "recorded", body = Recorded),
        (status = 200, description = "a duplicate (this request id was recorded before): nothing changed", body = Recorded),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn usage(State(s): State<Server>, Body(req): Body<RecordRequest>) -> ApiResult {
    let recorded = admit::record(s.db(), &s.clock(), req).await?;
    let status = if recorded.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    with_status(status, &recorded)
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "open", responses((status = 200, description = "running", body = Object)))]
async fn healthz() -> ApiResult {
    ok(&serde_json::json!({"status": "ok"}))
}

/// 200 when the database answers, else 503: take this instance out of rotation.
#[utoipa::path(get, path = "/readyz", tag = "open",
    responses((status = 200, description = "the database answers", body = Object),
        (status = 503, description = "the database does not answer", body = ErrorBody)))]
async fn readyz(State(s): State<Server>) -> ApiResult {
    s.db().ping().await.map_err(|e| ApiError::Op(e.into()))?;
    ok(&serde_json::json!({"status": "ready"}))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "open", responses((status = 200, description = "OpenAPI 3", body = Object)))]
async fn openapi() -> Response {
    axum::Json(ApiDoc::openapi()).into_response()
}

/// An error's body.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// what went wrong, in one line
    error: String,
    /// invalid_input, not_found, conflict, unavailable, internal, payload_too_large
    code: String,
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "tokenctl", description = "Keep an AI backend's LLM token spend under control. \
Every body is the `--json` document of the matching tokenctl command. Tokens: `tokenctl tokens create \
--name NAME --scope read|admit|admin`; send `Authorization: Bearer SECRET`."),
    paths(monthly, monthly_of, summary, limits_report, alerts_report, status_of, distribution_report,
        metrics, check, reserve, settle, release, usage, healthz, readyz, openapi),
    components(schemas(ErrorBody, Estimate)),
    modifiers(&BearerAuth),
    tags((name = "read", description = "scope read"), (name = "admit", description = "scope admit"),
        (name = "open", description = "no token needed"))
)]
pub struct ApiDoc;
