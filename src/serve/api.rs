//! The routes: each handler turns the request into the operation's typed request, calls the
//! operation, and answers with its document (see `reply`). The OpenAPI document is generated
//! from the annotations here and the schemas of the types themselves.

use axum::extract::{FromRequest, FromRequestParts, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::auth;
use super::reply::{admission, ok, with_status, ApiError, ApiResult};
use super::Server;
use crate::db::ledger::{Recorded, Released, Reserved};
use crate::domain::input::{AiType, Count, Day, Month, Since, Ttl};
use crate::domain::{validate, Decision};
use crate::error::OpError;
use crate::ops::admit::{self, CheckRequest, RecordRequest, ReleaseRequest, ReserveRequest};
use crate::ops::tokens::TokenScope;
use crate::ops::{alerts, distribution, limits, quota, report, status};

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
        .route("/api/usage/analytics", get(analytics))
        .route("/api/usage/quota/{user_id}", get(user_quota))
        .route("/api/usage/export.csv", get(export_csv))
        .route("/metrics", get(metrics))
        .route_layer(from_fn_with_state(
            (server.clone(), TokenScope::Read),
            auth::require,
        ));
    let admit = Router::new()
        .route("/v1/check", post(check))
        .route("/v1/reservations", post(reserve))
        .route("/v1/reservations/{id}/settle", post(settle))
        .route("/v1/reservations/{id}/release", post(release))
        .route("/v1/usage", post(usage))
        .route_layer(from_fn_with_state(
            (server.clone(), TokenScope::Admit),
            auth::require,
        ));
    let open = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .route("/", get(super::dashboard::index))
        .route("/assets/{*path}", get(super::dashboard::asset));
    read.merge(admit)
        .merge(open)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(super::reply::catch_panic))
        .with_state(server)
}

async fn not_found() -> ApiError {
    ApiError::Op(OpError::not_found(
        "no such endpoint: GET /openapi.json lists them",
    ))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthQuery {
    /// YYYY-MM (default: the current month)
    #[param(schema_with = schemas::month)]
    month: Option<Month>,
}

/// Usage of every AI type and the total: `tokenctl status --json`.
#[utoipa::path(get, path = "/api/token-usage/monthly", params(MonthQuery), tag = "read",
    responses((status = 200, description = "`status --json`", body = status::StatusReport), (status = 400, body = ErrorBody),
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
#[utoipa::path(get, path = "/api/token-usage/monthly/{ai_type}", params(("ai_type" = AiType, Path), MonthQuery),
    tag = "read",
    responses((status = 200, description = "`status --ai-type A --json`", body = status::StatusReport), (status = 400, body = ErrorBody),
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
    responses((status = 200, description = "the total, and AI types per level", body = status::Summary),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn summary(State(s): State<Server>) -> ApiResult {
    ok(&status::summary(s.db(), &s.clock()).await?)
}

/// The limits in force: `tokenctl limits --json`.
#[utoipa::path(get, path = "/api/token-usage/limits", tag = "read",
    responses((status = 200, description = "`limits --json`", body = limits::LimitsReport),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn limits_report(State(s): State<Server>) -> ApiResult {
    ok(&limits::limits(s.db()).await?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    /// a duration back from now (24h, 7d) or an RFC 3339 time; ignored with `active`
    #[param(schema_with = schemas::since)]
    since: Option<Since>,
    /// warning, critical or emergency
    #[param(schema_with = schemas::alert_level)]
    level: Option<String>,
    /// an AI type, or `*` for the total
    #[param(schema_with = schemas::ai_type_or_total)]
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
#[utoipa::path(get, path = "/api/token-usage/status/{ai_type}", params(("ai_type" = AiType, Path)), tag = "read",
    responses((status = 200, description = "the `status` row with `allowed` and `reason`", body = status::AiTypeNow),
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
    #[param(schema_with = schemas::month)]
    month: Option<Month>,
    /// YYYY-MM-DD: the day whose hours to show (in `month`, when both are given)
    #[param(schema_with = schemas::day)]
    day: Option<Day>,
    /// default: all AI types together
    #[param(schema_with = schemas::ai_type)]
    ai_type: Option<AiType>,
}

/// How evenly usage is spread: `tokenctl distribution --json`.
#[utoipa::path(get, path = "/api/token-usage/distribution", params(DistributionQuery), tag = "read",
    responses((status = 200, description = "`distribution --json`", body = distribution::Distribution),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn distribution_report(
    State(s): State<Server>,
    Query(q): Query<DistributionQuery>,
) -> ApiResult {
    let req = distribution::DistributionRequest {
        month: q.month,
        day: q.day,
        ai_type: q.ai_type,
    };
    req.check()?;
    ok(&distribution::distribution(s.db(), &s.clock(), &req).await?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// the last N days, today included (default 30; at most 3,660); not with since
    #[param(minimum = 1, maximum = 3660)]
    days: Option<i64>,
    /// YYYY-MM-DD: the first day (in the configured zone)
    #[param(schema_with = schemas::day)]
    since: Option<Day>,
    /// YYYY-MM-DD: the last day, included (default today); with since
    #[param(schema_with = schemas::day)]
    until: Option<Day>,
    /// only this AI type
    #[param(schema_with = schemas::ai_type)]
    ai_type: Option<AiType>,
    /// only this user
    #[param(schema_with = schemas::user_id)]
    user_id: Option<String>,
    /// how many top users (default 10, at most 100,000)
    #[param(maximum = 100000)]
    top: Option<u32>,
}

impl AnalyticsQuery {
    fn request(self) -> report::ReportRequest {
        report::ReportRequest {
            days: self.days,
            since: self.since.as_ref().map(|d| d.date()),
            until: self.until.as_ref().map(|d| d.date()),
            ai_type: self.ai_type.map(|a| a.to_string()),
            user_id: self.user_id,
            top: self.top.map(|t| t as usize),
        }
    }
}

/// Usage analytics over a range of days: `tokenctl report --json`.
#[utoipa::path(get, path = "/api/usage/analytics", params(AnalyticsQuery), tag = "read",
    responses((status = 200, description = "`report --json`", body = crate::domain::report::Report),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn analytics(State(s): State<Server>, Query(q): Query<AnalyticsQuery>) -> ApiResult {
    ok(&report::report(s.db(), &s.clock(), &q.request()).await?)
}

/// The rollups of a range as CSV: `tokenctl report --csv` (one row per day, AI type, user, model).
#[utoipa::path(get, path = "/api/usage/export.csv", params(AnalyticsQuery), tag = "read",
    responses((status = 200, description = "RFC 4180 CSV with a header row", content_type = "text/csv", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn export_csv(State(s): State<Server>, Query(q): Query<AnalyticsQuery>) -> ApiResult {
    let (period, rows) = report::export(s.db(), &s.clock(), &q.request()).await?;
    let mut csv = Vec::new();
    crate::commands::report_view::write_csv(&rows, &mut csv)
        .map_err(|e| ApiError::Op(OpError::internal(format!("cannot write the CSV: {e}"))))?;
    let name = format!(
        "attachment; filename=\"tokenctl-usage-{}-{}.csv\"",
        period.since, period.until
    );
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_string(),
            ),
            (axum::http::header::CONTENT_DISPOSITION, name),
        ],
        csv,
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserPath {
    /// the user
    #[param(schema_with = schemas::user_id)]
    user_id: String,
}

/// One user's room under their own limits: `tokenctl quota --user-id U --json`.
#[utoipa::path(get, path = "/api/usage/quota/{user_id}", tag = "read",
    params(UserPath),
    responses((status = 200, description = "`quota --json`", body = quota::Quota),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn user_quota(
    State(s): State<Server>,
    Path(UserPath { user_id }): Path<UserPath>,
) -> ApiResult {
    ok(&quota::quota(s.db(), &s.clock(), &quota::QuotaRequest { user_id }).await?)
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
#[utoipa::path(post, path = "/v1/check", request_body = schemas::CheckBody, tag = "admit",
    responses((status = 200, description = "allowed", body = Decision, headers(("x-tokenctl-reason" = String, description = "the decision's reason (ok when allowed)"),
            ("x-ratelimit-limit-tokens" = i64, description = "the tightest token limit"),
            ("x-ratelimit-remaining-tokens" = i64, description = "tokens left under it"),
            ("x-ratelimit-reset-tokens" = i64, description = "seconds until its window resets"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "denied, and waiting will not help (a decision); or the token lacks the scope (an error)",
            body = schemas::CheckRefusal),
        (status = 413, body = ErrorBody),
        (status = 429, description = "denied; Retry-After says when it may pass", body = Decision, headers(("Retry-After" = i64, description = "whole seconds until it may pass"),
            ("x-tokenctl-reason" = String, description = "the decision's reason"),
            ("x-ratelimit-limit-tokens" = i64, description = "the tightest token limit"),
            ("x-ratelimit-remaining-tokens" = i64, description = "tokens left under it"),
            ("x-ratelimit-reset-tokens" = i64, description = "seconds until its window resets"))),
        (status = 503, description = "the database cannot be reached: never admit without it", body = ErrorBody,
            headers(("Retry-After" = i64, description = "whole seconds to wait before trying again")))),
    security(("bearer" = [])))]
async fn check(State(s): State<Server>, Body(req): Body<CheckRequest>) -> ApiResult {
    let req = CheckRequest {
        estimate: req.estimate.counted()?,
        ..req
    };
    let clock = s.clock();
    let decision = admit::check(s.db(), &clock, &req).await?;
    s.metrics().decided("check", decision.reason.as_str());
    Ok(admission(
        &decision,
        &decision,
        false,
        clock.now,
        &clock.periods(),
    ))
}

/// A reservation's body: `check`'s, and how long the hold lasts (its schema: `schemas::ReservationBody`).
#[derive(Debug, Deserialize)]
pub struct ReserveBody {
    #[serde(flatten)]
    check: CheckRequest,
    /// how long the hold lasts unless settled or released (default 600, at most 7 days)
    ttl_seconds: Option<Count>,
}

/// Decide and, when allowed, hold the estimate against every limit: `tokenctl reserve --json`.
#[utoipa::path(post, path = "/v1/reservations", request_body = schemas::ReservationBody, tag = "admit",
    responses((status = 201, description = "held: settle or release it by its reservation_id", body = Reserved, headers(("x-tokenctl-reason" = String, description = "the decision's reason (ok when allowed)"),
            ("x-ratelimit-limit-tokens" = i64, description = "the tightest token limit"),
            ("x-ratelimit-remaining-tokens" = i64, description = "tokens left under it"),
            ("x-ratelimit-reset-tokens" = i64, description = "seconds until its window resets"))),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "denied, and waiting will not help (a decision); or the token lacks the scope (an error)",
            body = schemas::ReserveRefusal),
        (status = 413, body = ErrorBody),
        (status = 429, description = "denied; Retry-After says when it may pass", body = Reserved, headers(("Retry-After" = i64, description = "whole seconds until it may pass"),
            ("x-tokenctl-reason" = String, description = "the decision's reason"),
            ("x-ratelimit-limit-tokens" = i64, description = "the tightest token limit"),
            ("x-ratelimit-remaining-tokens" = i64, description = "tokens left under it"),
            ("x-ratelimit-reset-tokens" = i64, description = "seconds until its window resets"))),
        (status = 503, description = "the database cannot be reached: never admit without it", body = ErrorBody,
            headers(("Retry-After" = i64, description = "whole seconds to wait before trying again")))),
    security(("bearer" = [])))]
async fn reserve(State(s): State<Server>, Body(body): Body<ReserveBody>) -> ApiResult {
    let ttl: Ttl = match body.ttl_seconds {
        Some(n) => format!("{}s", n.get()).parse(),
        None => "10m".parse(),
    }
    .map_err(|e| ApiError::Op(OpError::invalid(format!("ttl_seconds: {e}"))))?;
    let req = ReserveRequest {
        check: CheckRequest {
            estimate: body.check.estimate.counted()?,
            ..body.check
        },
        ttl,
    };
    let clock = s.clock();
    let reserved = s.reserve(req).await?;
    s.metrics()
        .decided("reserve", reserved.decision.reason.as_str());
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
    request_body = schemas::SettleBody, tag = "admit",
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
    ok(&s
        .record(admit::settle_request(s.db(), &id, req).await?)
        .await?)
}

/// Give back a reservation whose request never ran: `tokenctl release --json`.
#[utoipa::path(post, path = "/v1/reservations/{id}/release", params(("id" = String, Path)), tag = "admit",
    responses((status = 200, description = "released (or already ended: see `state`)", body = Released),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "no such reservation", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn release(State(s): State<Server>, Path(id): Path<String>) -> ApiResult {
    let req = ReleaseRequest { reservation_id: id };
    ok(&admit::release(s.db(), &s.clock(), &req).await?)
}

/// Record what one finished request used: `tokenctl record --json`.
#[utoipa::path(post, path = "/v1/usage", request_body = schemas::UsageBody, tag = "admit",
    responses((status = 201, description = "recorded", body = Recorded),
        (status = 200, description = "a duplicate (this request id was recorded before): nothing changed", body = Recorded),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
async fn usage(State(s): State<Server>, Body(req): Body<RecordRequest>) -> ApiResult {
    let recorded = s.record(req).await?;
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
    axum::Json(document()).into_response()
}

/// The OpenAPI document as served: utoipa's, plus the links from a new reservation to its
/// settle and release (added here as JSON: utoipa 5.5 writes a link's `operationId` as
/// `operation_id`).
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    if let Some(held) = doc.pointer_mut("/paths/~1v1~1reservations/post/responses/201") {
        let link = |operation: &str| {
            serde_json::json!({
                "operationId": operation,
                "parameters": {"id": "$response.body#/reservation_id"},
                "description": format!("{operation} this reservation"),
            })
        };
        held["links"] = serde_json::json!({"settle": link("settle"), "release": link("release")});
    }
    doc
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

/// The request bodies and parameters as the OpenAPI document tells them: what each rule
/// accepts, so that a client (or a fuzzer) built from the document sends what is accepted.
/// The handlers deserialize the operations' own types; these only describe them.
mod schemas {
    use utoipa::openapi::schema::{AnyOfBuilder, Object, ObjectBuilder, Schema, SchemaType, Type};
    use utoipa::openapi::RefOr;
    use utoipa::{PartialSchema, ToSchema};

    use crate::db::ledger::Reserved;
    use crate::domain::input::{self, AiType, Count, Day, Month, Since, Tokens};
    use crate::domain::validate::{MAX_ID_CHARS, MAX_TOKENS_PER_VALUE};
    use crate::domain::Decision;
    use crate::ops::admit::RecordRequest;

    fn reference<T: ToSchema>() -> RefOr<Schema> {
        RefOr::Ref(utoipa::openapi::Ref::from_schema_name(T::name()))
    }

    fn nullable(of: Type) -> SchemaType {
        SchemaType::from_iter([of, Type::Null])
    }

    /// A string of at most `max` characters without control characters, or null.
    fn id(describe: &str, max: usize) -> Object {
        ObjectBuilder::new()
            .schema_type(nullable(Type::String))
            .max_length(Some(max))
            .pattern(Some(input::id_pattern()))
            .description(Some(describe))
            .build()
    }

    pub fn month() -> RefOr<Schema> {
        Month::schema()
    }

    /// A user id: 1 to 255 characters, none of them a control character.
    pub fn user_id() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_ID_CHARS))
            .pattern(Some(input::id_pattern()))
            .description(Some("a user id"))
            .build()
    }

    pub fn day() -> RefOr<Schema> {
        Day::schema()
    }

    pub fn since() -> RefOr<Schema> {
        Since::schema()
    }

    pub fn ai_type() -> RefOr<Schema> {
        AiType::schema()
    }

    pub fn ai_type_or_total() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(crate::domain::validate::MAX_AI_TYPE_CHARS))
            .pattern(Some(input::ai_type_pattern(true)))
            .description(Some("an AI type, or * for the total"))
            .build()
    }

    pub fn alert_level() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["warning", "critical", "emergency"]))
            .build()
    }

    /// `check`'s body (`extra`: reserve's more), as the two ways to give a request's size.
    fn estimate(describe: &str, extra: &[(&str, Object)]) -> RefOr<Schema> {
        let with = |o: ObjectBuilder| {
            extra.iter().fold(
                o.property("ai_type", AiType::schema())
                    .required("ai_type")
                    .property(
                        "user_id",
                        id("the user it is made for: their limits (tokens and USD) must fit too", MAX_ID_CHARS),
                    )
                    .property(
                        "model",
                        ObjectBuilder::new()
                            .schema_type(nullable(Type::String))
                            .max_length(Some(200))
                            .description(Some("the model it will use: its price bounds the request's cost (without one, the dearest price known)")),
                    ),
                |o, (name, schema)| o.property(*name, schema.clone()),
            )
        };
        let by_count = with(ObjectBuilder::new())
            .property("estimated_tokens", Tokens::schema())
            .required("estimated_tokens")
            .description(Some("the request's size in tokens"));
        let by_prompt = with(ObjectBuilder::new())
            .property(
                "prompt",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("the prompt, estimated as ceil(words x 1.3) tokens")),
            )
            .required("prompt")
            .property("max_tokens", Tokens::schema())
            .required("max_tokens")
            .description(Some(format!(
                "the prompt and the most output tokens the request will ask for (together at most {MAX_TOKENS_PER_VALUE} tokens; estimated_tokens, when also given, wins)"
            )));
        AnyOfBuilder::new()
            .item(by_count)
            .item(by_prompt)
            .description(Some(describe))
            .into()
    }

    pub struct CheckBody;
    impl PartialSchema for CheckBody {
        fn schema() -> RefOr<Schema> {
            estimate(
                "an AI type and the request's size, said outright or as its prompt and max_tokens",
                &[],
            )
        }
    }
    impl ToSchema for CheckBody {}

    pub struct ReservationBody;
    impl PartialSchema for ReservationBody {
        fn schema() -> RefOr<Schema> {
            let ttl = ObjectBuilder::new()
                .schema_type(nullable(Type::Integer))
                .minimum(Some(1))
                .maximum(Some(604_800))
                .description(Some("how long the hold lasts unless settled or released, in seconds (default 600, at most 7 days)"))
                .build();
            estimate(
                "`check`'s body, and how long the hold lasts",
                &[("ttl_seconds", ttl)],
            )
        }
    }
    impl ToSchema for ReservationBody {}

    /// `record`'s fields (RecordRequest's own schema) with each rule's length and characters;
    /// `ai_type` required or not, `reservation` kept or not.
    fn record(ai_type_required: bool, with_reservation: bool) -> RefOr<Schema> {
        let RefOr::T(Schema::Object(mut o)) = RecordRequest::schema() else {
            unreachable!("RecordRequest's schema is an object")
        };
        let ids = [
            ("request_id", "the request's id (a provider's message id, say): recording it again changes nothing"),
            ("user_id", "who made the request"),
            ("session_id", "the conversation or job it belongs to"),
            ("request_type", "what kind of request (chat, embedding, …)"),
        ];
        for (name, describe) in ids {
            o.properties
                .insert(name.into(), id(describe, MAX_ID_CHARS).into());
        }
        for name in ["tokens_in", "tokens_out"] {
            o.properties.insert(name.into(), Tokens::schema());
        }
        o.properties.insert(
            "model".into(),
            ObjectBuilder::new()
                .schema_type(nullable(Type::String))
                .max_length(Some(200))
                .description(Some(
                    "the model, for its price (case and surrounding spaces do not matter)",
                ))
                .into(),
        );
        o.properties.insert(
            "duration_ms".into(),
            AnyOfBuilder::new()
                .item(Count::schema())
                .item(ObjectBuilder::new().schema_type(Type::Null))
                .into(),
        );
        for name in ["cache_read_tokens", "cache_write_tokens"] {
            o.properties.insert(
                name.into(),
                AnyOfBuilder::new()
                    .item(Tokens::schema())
                    .item(ObjectBuilder::new().schema_type(Type::Null))
                    .into(),
            );
        }
        if with_reservation {
            o.properties.insert(
                "reservation".into(),
                id(
                    "the reservation this usage settles (an unknown one: the usage still counts)",
                    MAX_ID_CHARS,
                )
                .into(),
            );
        } else {
            o.properties.remove("reservation");
        }
        if ai_type_required {
            o.properties.insert("ai_type".into(), AiType::schema());
            o.required.push("ai_type".into());
        } else {
            o.properties.insert(
                "ai_type".into(),
                AnyOfBuilder::new()
                    .item(AiType::schema())
                    .item(ObjectBuilder::new().schema_type(Type::Null))
                    .description(Some(
                        "may be left out: it is the reservation's (another one is 409)",
                    ))
                    .into(),
            );
        }
        RefOr::T(Schema::Object(o))
    }

    pub struct SettleBody;
    impl PartialSchema for SettleBody {
        fn schema() -> RefOr<Schema> {
            record(false, false)
        }
    }
    impl ToSchema for SettleBody {}

    pub struct UsageBody;
    impl PartialSchema for UsageBody {
        fn schema() -> RefOr<Schema> {
            record(true, true)
        }
    }
    impl ToSchema for UsageBody {}

    /// A 403 of an admission endpoint: a denial that waiting will not lift (the decision), or
    /// a token without scope admit (an error).
    fn refusal<T: ToSchema>() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(reference::<T>())
            .item(reference::<super::ErrorBody>())
            .into()
    }

    pub struct CheckRefusal;
    impl PartialSchema for CheckRefusal {
        fn schema() -> RefOr<Schema> {
            refusal::<Decision>()
        }
    }
    impl ToSchema for CheckRefusal {}

    pub struct ReserveRefusal;
    impl PartialSchema for ReserveRefusal {
        fn schema() -> RefOr<Schema> {
            refusal::<Reserved>()
        }
    }
    impl ToSchema for ReserveRefusal {}

    /// What each status means where an annotation says nothing more.
    pub fn describe(status: &str) -> Option<&'static str> {
        Some(match status {
            "400" => "bad input: {error, code: invalid_input}",
            "401" => "no token, or an unknown or revoked one",
            "403" => "the token lacks the scope this endpoint needs",
            "404" => "not found",
            "409" => {
                "a conflict: another AI type's reservation, or a request id another request used"
            }
            "413" => "the body is larger than this server accepts (serve --max-body-bytes)",
            "503" => "the database cannot be reached: never admit without it",
            _ => return None,
        })
    }

    pub fn retry_after() -> utoipa::openapi::header::Header {
        utoipa::openapi::header::HeaderBuilder::new()
            .schema(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1)),
            )
            .description(Some("whole seconds to wait before trying again"))
            .build()
    }
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
        // every response says what it is, and every 503 when to come back
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                for (status, response) in op.responses.responses.iter_mut() {
                    let utoipa::openapi::RefOr::T(r) = response else {
                        continue;
                    };
                    if r.description.is_empty() {
                        if let Some(d) = schemas::describe(status) {
                            r.description = d.to_string();
                        }
                    }
                    if status == "503" && !r.headers.contains_key("Retry-After") {
                        r.headers
                            .insert("Retry-After".into(), schemas::retry_after());
                    }
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "tokenctl", description = "Keep an AI backend's LLM token spend under control. \
Every body is the `--json` document of the matching tokenctl command. Tokens: `tokenctl tokens create \
--name NAME --scope read|admit|admin`; send `Authorization: Bearer SECRET`."),
    paths(monthly, monthly_of, summary, limits_report, alerts_report, status_of, distribution_report,
        analytics, export_csv, user_quota, metrics, check, reserve, settle, release, usage, healthz, readyz, openapi),
    components(schemas(ErrorBody, AiType)),
    modifiers(&BearerAuth),
    tags((name = "read", description = "scope read"), (name = "admit", description = "scope admit"),
        (name = "open", description = "no token needed"))
)]
pub struct ApiDoc;
