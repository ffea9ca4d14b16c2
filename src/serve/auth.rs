//! Who may call what: `Authorization: Bearer SECRET`, checked against the tokens in the
//! database (every host sharing it accepts the same ones). No or unknown token: 401; a token
//! without the scope the route needs: 403.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::reply::ApiError;
use super::{Server, Caller};
use crate::error::{ErrorKind, OpError};
use crate::ops::tokens::{self, TokenScope};

/// Whether the server asks for tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Tokens,
    /// `--insecure-no-auth`: every route open (loopback only)
    Open,
}

/// Lets the request through when it carries a token with `need` (or the server is open).
pub async fn require(
    State((server, need)): State<(Server, TokenScope)>,
    mut req: Request,
    next: Next,
) -> Response {
    if server.0.config.auth == Auth::Open {
        return next.run(req).await;
    }
    let Some(secret) = bearer(&req) else {
        return unauthorized("send Authorization: Bearer TOKEN (create one with: tokenctl tokens create --name NAME --scope read)");
    };
    let name = match tokens::authenticate(server.db(), &secret).await {
        Ok(Some((name, scope))) if scope.includes(need) => name,
        Ok(Some((name, scope))) => {
            let mut r = ApiError::Op(OpError::new(
                ErrorKind::InvalidInput,
                format!(
                    "token '{name}' has scope {}; this endpoint needs {}",
                    scope.as_str(),
                    need.as_str()
                ),
            ))
            .into_response();
            *r.status_mut() = axum::http::StatusCode::FORBIDDEN;
            r.extensions_mut().insert(Caller(name));
            return r;
        }
        Ok(None) => return unauthorized("unknown or revoked token"),
        Err(e) => return ApiError::Op(e).into_response(),
    };
    req.extensions_mut().insert(Caller(name.clone()));
    let mut response = next.run(req).await;
    response.extensions_mut().insert(Caller(name));
    response
}

fn bearer(req: &Request) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !secret.trim().is_empty())
        .then(|| secret.trim().to_string())
}

fn unauthorized(message: &str) -> Response {
    let mut r = ApiError::Op(OpError::invalid(message)).into_response();
    *r.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}
