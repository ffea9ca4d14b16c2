//! `tokenctl serve`: the real binary on a free loopback port, on both backends, called by a
//! real HTTP client.

mod common;

use common::serve::{call, token, Serve};
use serde_json::json;

both!(a_reservation_over_http_is_the_cli_document, |env| {
    let secret = token(&env, "backend", "admit");
    let serve = Serve::start(&env, &[]);
    let a = call(&serve, "POST", "/v1/reservations", Some(&secret),
        Some(&json!({"ai_type": "imperium", "estimated_tokens": 300})));
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json["allowed"], true);
    assert_eq!(a.header("x-tokenctl-reason"), Some("ok"));
    let status = env.json(&["status", "--ai-type", "imperium"]);
    assert_eq!(status["ai_types"][0]["reserved_tokens"], 300);
});
