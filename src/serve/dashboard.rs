//! The dashboard at `GET /`: a page for a person, served from files embedded in the binary
//! (nothing fetched from a CDN, nothing built at install time; see `assets/README.md`).
//!
//! These routes are open: the page and its scripts hold no data. The page asks for a read
//! token and calls the read endpoints with it, which keep their scope check.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::reply::ApiError;
use crate::error::OpError;

/// One embedded file: its path under `/assets/`, content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX_HTML: &str = include_str!("../../assets/dashboard/index.html");

/// Every file the page loads. A new file is added here and in `index.html`.
const ASSETS: &[Asset] = &[
    Asset {
        path: "dashboard/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/dashboard/app.js"),
    },
    Asset {
        path: "dashboard/icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../assets/dashboard/icon.svg"),
    },
    Asset {
        path: "dashboard/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/dashboard/style.css"),
    },
    Asset {
        path: "vendor/uplot-1.6.32/uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/vendor/uplot-1.6.32/uPlot.iife.min.js"),
    },
    Asset {
        path: "vendor/uplot-1.6.32/uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/vendor/uplot-1.6.32/uPlot.min.css"),
    },
    Asset {
        path: "vendor/uplot-1.6.32/LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../assets/vendor/uplot-1.6.32/LICENSE"),
    },
];

/// Only this server's own scripts, styles and API: a script injected into the page could
/// not send the token elsewhere. Inline styles stay allowed because uPlot sizes its
/// elements with them.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The headers every dashboard file is sent with. `no-cache` (revalidate each time) because
/// a new binary may serve new files under the same path.
fn headers(content_type: &'static str) -> [(header::HeaderName, &'static str); 5] {
    [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    ]
}

/// `GET /`: the page.
pub async fn index() -> Response {
    (headers("text/html; charset=utf-8"), INDEX_HTML).into_response()
}

/// `GET /assets/{*path}`: one of the embedded files, or the API's JSON 404.
pub async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.path == path) {
        Some(a) => (headers(a.content_type), a.body).into_response(),
        None => ApiError::Op(OpError::not_found(
            "no such dashboard file: the page at GET / lists them",
        ))
        .into_response(),
    }
}
