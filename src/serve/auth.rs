//! Who may call what: `Authorization: Bearer SECRET`, checked against the tokens in the
//! database (every host sharing it accepts the same ones). No or unknown token: 401; a token
//! without the scope the route needs: 403.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::reply::ApiError;
use super::{Caller, Server};

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
    let name = match server.0.tokens.authenticate(server.db(), &secret).await {
        Ok(Some((name, scope))) if scope.includes(need) => name,
        Ok(Some((name, scope))) => {
            let mut r = ApiError::Forbidden(format!(
                "token '{}' has scope {}; this endpoint needs {}",
                crate::error::printable(&name),
                scope.as_str(),
                need.as_str()
            ))
            .into_response();
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
    ApiError::Unauthorized(message.to_string()).into_response()
}

/// How long a token found in the database is taken on trust without asking again. Asking on
/// every request costs a quarter of the server's throughput; in exchange a revoked token is
/// refused within this long (a new one works at once: unknown tokens are never remembered).
pub const TOKEN_TRUST: Duration = Duration::from_secs(1);

/// Tokens recently found in the database, by the hash of their secret.
#[derive(Default)]
pub struct TokenCache {
    found: Mutex<HashMap<String, (String, TokenScope, Instant)>>,
}

impl TokenCache {
    /// The token's (name, scope): from memory if found within `TOKEN_TRUST`, else the database.
    pub async fn authenticate(
        &self,
        db: &crate::db::Db,
        secret: &str,
    ) -> crate::ops::OpResult<Option<(String, TokenScope)>> {
        let key = tokens::secret_hash(secret);
        let now = Instant::now();
        if let Ok(found) = self.found.lock() {
            if let Some((name, scope, at)) = found.get(&key) {
                if now.duration_since(*at) < TOKEN_TRUST {
                    return Ok(Some((name.clone(), *scope)));
                }
            }
        }
        let answer = tokens::authenticate(db, secret).await?;
        if let (Some((name, scope)), Ok(mut found)) = (&answer, self.found.lock()) {
            // bounded: stale entries go when it grows (there are few tokens in practice)
            if found.len() >= 1024 {
                found.retain(|_, (_, _, at)| now.duration_since(*at) < TOKEN_TRUST);
            }
            found.insert(key, (name.clone(), *scope, now));
        }
        Ok(answer)
    }
}
