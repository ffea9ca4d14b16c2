//! How answers leave the server: an operation's result as a JSON body with its status, a
//! failure as `{"error", "code"}` with the status its kind maps to, and admission decisions
//! with the status and headers that tell a client whether waiting helps.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{Decision, Periods};
use crate::error::{ErrorKind, OpError};

/// Seconds a client is told to wait before trying again when the database cannot be reached.
pub const UNAVAILABLE_RETRY_SECONDS: u64 = 2;

/// A denial whose window reopens within this long is worth waiting for (429); past it, or
/// never, it is not (403): a client that retries a spent month only adds load.
pub const WORTH_WAITING: chrono::Duration = chrono::Duration::hours(24);

pub const REASON_HEADER: HeaderName = HeaderName::from_static("x-tokenctl-reason");
const LIMIT_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const RESET_HEADER: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

/// A failure as an HTTP answer: an operation's (its kind gives the status), or a body over
/// the size limit, which never reaches an operation.
#[derive(Debug)]
pub enum ApiError {
    Op(OpError),
    TooLarge,
    /// no token, or one unknown or revoked: 401
    Unauthorized(String),
    /// a token without the scope the route needs: 403
    Forbidden(String),
    /// a path that exists, asked with another method: 405
    MethodNotAllowed,
}

/// The `code` of an error answer, kept on the response for the access log.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    code: &'static str,
}

impl From<OpError> for ApiError {
    fn from(e: OpError) -> ApiError {
        ApiError::Op(e)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        ApiError::Op(e.into())
    }
}

/// A body that is not JSON, or not the request's shape: the deserializer's own words (which
/// carry the field's rule, e.g. "estimated_tokens: …"), without axum's preamble.
impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::TooLarge;
        }
        let text = r.body_text();
        let text = text
            .strip_prefix("Failed to deserialize the JSON body into the target type: ")
            .or_else(|| text.strip_prefix("Failed to parse the request body as JSON: "))
            .unwrap_or(&text);
        ApiError::Op(OpError::invalid(text.to_string()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        let text = r.body_text();
        let text = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text);
        ApiError::Op(OpError::invalid(text.to_string()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::Op(OpError::invalid(r.body_text()))
    }
}

impl ApiError {
    /// The kind of failure, as the access log and /metrics tell them apart.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ApiError::Op(e) => e.kind,
            ApiError::TooLarge
            | ApiError::Unauthorized(_)
            | ApiError::Forbidden(_)
            | ApiError::MethodNotAllowed => ErrorKind::InvalidInput,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message, code) = match &self {
            ApiError::Op(e) => (
                StatusCode::from_u16(e.kind.http_status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                e.message.clone(),
                e.kind.code(),
            ),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is larger than this server accepts (serve --max-body-bytes)"
                    .to_string(),
                "payload_too_large",
            ),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m.clone(), "unauthorized"),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m.clone(), "forbidden"),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take this method: GET /openapi.json lists them".to_string(),
                "method_not_allowed",
            ),
        };
        let body = ErrorBody {
            error: &message,
            code,
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(UNAVAILABLE_RETRY_SECONDS),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response.extensions_mut().insert(self.kind());
        response.extensions_mut().insert(ErrorCode(code));
        response
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// A handler that panics answers 500 `{"error", "code": "internal"}` (and the panic is on
/// stderr as usual) instead of the connection closing without an answer. The request's future
/// is polled in place, so a deadline that drops it still cancels it.
pub async fn catch_panic(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match CatchPanic(Box::pin(next.run(req))).await {
        Ok(response) => response,
        Err(message) => ApiError::Op(OpError::internal(format!(
            "the server failed on this request ({message}); it goes on serving others"
        )))
        .into_response(),
    }
}

struct CatchPanic<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        let inner = self.get_mut().0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into()))),
        }
    }
}

/// A document with 200.
pub fn ok<T: Serialize>(body: &T) -> ApiResult {
    Ok(Json(body).into_response())
}

/// A document with the given status.
pub fn with_status<T: Serialize>(status: StatusCode, body: &T) -> ApiResult {
    Ok((status, Json(body)).into_response())
}

/// The status of an admission answer: `allowed` (200, or 201 when a hold was made), 429 when
/// waiting helps within a day, 403 when it does not.
pub fn admission_status(decision: &Decision, now: DateTime<Utc>, held: bool) -> StatusCode {
    if decision.allowed {
        return if held {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
    }
    match decision.retry_after {
        Some(at) if at - now <= WORTH_WAITING => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::FORBIDDEN,
    }
}

/// Whole seconds from `now` until `at`, rounded up, at least 1 (what `Retry-After` says).
pub fn seconds_until(at: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let ms = (at - now).num_milliseconds();
    ((ms + 999) / 1000).max(1)
}

/// An admission answer: the decision's document, its status, `x-tokenctl-reason`, the
/// tightest token window as `x-ratelimit-*-tokens`, and `Retry-After` on a 429.
pub fn admission<T: Serialize>(
    decision: &Decision,
    body: &T,
    held: bool,
    now: DateTime<Utc>,
    periods: &Periods,
) -> Response {
    let status = admission_status(decision, now, held);
    let mut headers = HeaderMap::new();
    headers.insert(
        REASON_HEADER,
        HeaderValue::from_static(decision.reason.as_str()),
    );
    let window = decision.tightest_window(periods);
    headers.insert(LIMIT_HEADER, HeaderValue::from(window.limit));
    headers.insert(REMAINING_HEADER, HeaderValue::from(window.remaining));
    headers.insert(
        RESET_HEADER,
        HeaderValue::from(seconds_until(window.resets_at, now)),
    );
    if status == StatusCode::TOO_MANY_REQUESTS {
        if let Some(at) = decision.retry_after {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(seconds_until(at, now)),
            );
        }
    }
    (status, headers, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::periods_at;
    use crate::domain::{decide, GlobalLimits, LimitRow, Limits, Snapshot};

    fn decision(allowed: bool, retry_in: Option<chrono::Duration>) -> (Decision, DateTime<Utc>) {
        let now = DateTime::parse_from_rfc3339("2026-11-23T10:15:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let row = LimitRow::builtin_default();
        let p = periods_at(now, chrono_tz::Tz::UTC);
        let mut d = decide(
            "a",
            10,
            &Limits::resolve(&row, None),
            &GlobalLimits::resolve(&LimitRow::builtin_global(), &row),
            &Snapshot::default(),
            &p,
            now,
        );
        d.allowed = allowed;
        d.retry_after = retry_in.map(|r| now + r);
        (d, now)
    }

    #[test]
    fn a_denial_is_429_only_when_waiting_helps_within_a_day() {
        let (d, now) = decision(true, None);
        assert_eq!(admission_status(&d, now, false), StatusCode::OK);
        assert_eq!(admission_status(&d, now, true), StatusCode::CREATED);
        let (d, now) = decision(false, Some(chrono::Duration::seconds(30)));
        assert_eq!(
            admission_status(&d, now, true),
            StatusCode::TOO_MANY_REQUESTS
        );
        let (d, now) = decision(false, Some(chrono::Duration::hours(24)));
        assert_eq!(
            admission_status(&d, now, true),
            StatusCode::TOO_MANY_REQUESTS
        );
        let (d, now) = decision(
            false,
            Some(chrono::Duration::hours(24) + chrono::Duration::seconds(1)),
        );
        assert_eq!(admission_status(&d, now, true), StatusCode::FORBIDDEN);
        let (d, now) = decision(false, None);
        assert_eq!(admission_status(&d, now, false), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn a_panic_is_caught_with_its_message_and_a_pending_future_stays_pending() {
        let caught = CatchPanic(Box::pin(async { panic!("boom {}", 1) })).await;
        assert_eq!(caught.unwrap_err(), "boom 1");
        let fine = CatchPanic(Box::pin(async {
            tokio::task::yield_now().await;
            7
        }))
        .await;
        assert_eq!(fine, Ok(7));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let now = Utc::now();
        assert_eq!(
            seconds_until(now + chrono::Duration::milliseconds(1), now),
            1
        );
        assert_eq!(
            seconds_until(now + chrono::Duration::milliseconds(1001), now),
            2
        );
        assert_eq!(seconds_until(now - chrono::Duration::seconds(5), now), 1);
    }
}
