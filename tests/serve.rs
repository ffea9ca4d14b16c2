//! `tokenctl serve`: the real binary on a free loopback port, on both backends, called by a
//! real HTTP client. Every body is compared with the `--json` document of the matching
//! command, run on the same database at the same pinned instant (TOKENCTL_NOW).

mod common;

use common::serve::{call, call_raw, token, Answer, Serve};
use common::{i, Backend, Env};
use serde_json::{json, Value};

fn get(serve: &Serve, path: &str, secret: &str) -> Answer {
    call(serve, "GET", path, Some(secret), None)
}

fn post(serve: &Serve, path: &str, secret: &str, body: Value) -> Answer {
    call(serve, "POST", path, Some(secret), Some(&body))
}

/// `a` with the keys in `keys` removed (at the top level), to compare the rest.
fn without(a: &Value, keys: &[&str]) -> Value {
    let mut a = a.clone();
    if let Some(o) = a.as_object_mut() {
        for k in keys {
            o.remove(*k);
        }
    }
    a
}

/// Asserts an answer's status and that its body is `expected`, showing both when not.
#[track_caller]
fn assert_doc(a: &Answer, status: u16, expected: &Value) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(&a.json, expected, "\nHTTP: {}\nCLI:  {expected}", a.text);
}

/// Limits under which only what a test sets binds: no global hourly/daily cap nor
/// concurrency limit in the way of the AI types' own.
fn open_global_limits(env: &Env) {
    env.ok(&[
        "limits", "set", "--global", "--hourly", "100000", "--daily", "100000",
        "--max-concurrent", "0", "--rpm", "0", "--rpd", "0",
    ]);
}

/// Some of everything: usage of three AI types (one at warning, one at emergency), a hold,
/// usage last month, and the alerts a monitor tick raises.
fn some_usage(env: &Env) {
    open_global_limits(env);
    for ai in ["guardian", "sentinel"] {
        env.ok(&["limits", "set", "--ai-type", ai, "--monthly", "1000", "--daily", "1000", "--hourly", "1000"]);
    }
    env.record("imperium", 300, 200);
    env.record("imperium", 120, 30);
    env.record("guardian", 850, 0);
    env.record("sentinel", 990, 0);
    let held = env.json(&["reserve", "--ai-type", "imperium", "--estimated-tokens", "250"]);
    assert_eq!(held["allowed"], true, "{held}");
    env.at("2026-10-12T08:00:00Z").record("imperium", 700, 100);
    env.ok(&["monitor", "--once", "--alerts-file", env.path("alerts.json").to_str().unwrap()]);
}

both!(every_read_endpoint_answers_the_cli_document, |env| {
    some_usage(&env);
    let secret = token(&env, "dashboard", "read");
    let serve = Serve::start(&env, &[]);
    let pairs: &[(&str, &[&str])] = &[
        ("/api/token-usage/monthly", &["status"]),
        ("/api/token-usage/monthly?month=2026-10", &["status", "--month", "2026-10"]),
        ("/api/token-usage/monthly/imperium", &["status", "--ai-type", "imperium"]),
        ("/api/token-usage/monthly/guardian?month=2026-11", &["status", "--ai-type", "guardian", "--month", "2026-11"]),
        ("/api/token-usage/monthly/imperium?month=2026-10", &["status", "--ai-type", "imperium", "--month", "2026-10"]),
        ("/api/token-usage/limits", &["limits"]),
        ("/api/token-usage/alerts", &["alerts"]),
        ("/api/token-usage/alerts?active=true", &["alerts", "--active"]),
        ("/api/token-usage/alerts?level=emergency", &["alerts", "--level", "emergency"]),
        ("/api/token-usage/alerts?ai_type=guardian&since=24h", &["alerts", "--ai-type", "guardian", "--since", "24h"]),
        ("/api/token-usage/alerts?active=true&ai_type=sentinel", &["alerts", "--active", "--ai-type", "sentinel"]),
        ("/api/token-usage/distribution", &["distribution"]),
        ("/api/token-usage/distribution?month=2026-10", &["distribution", "--month", "2026-10"]),
        ("/api/token-usage/distribution?day=2026-11-23&ai_type=imperium", &["distribution", "--day", "2026-11-23", "--ai-type", "imperium"]),
    ];
    for (path, args) in pairs {
        let a = get(&serve, path, &secret);
        let cli = env.json(args);
        assert_doc(&a, 200, &cli);
    }
    // the monitor tick raised alerts, so the comparison above compared something
    let alerts = env.json(&["alerts"]);
    assert!(!alerts["alerts"].as_array().unwrap().is_empty(), "{alerts}");

    // summary: status's global, plus how many AI types stand at each level
    let status = env.json(&["status"]);
    let a = get(&serve, "/api/token-usage/summary", &secret);
    assert_eq!(a.status, 200, "{}", a.text);
    let mut expected = status["global"].clone();
    expected["month"] = status["month"].clone();
    expected["ai_type_count"] = json!(3);
    expected["ai_types_by_level"] = json!({"ok": 1, "warning": 1, "critical": 0, "emergency": 1});
    assert_eq!(a.json, expected, "{}", a.text);

    // status/{ai_type}: the status row, and whether a 1-token request passes now
    for (ai, allowed, reason) in [
        ("imperium", true, "ok"),
        ("guardian", true, "ok"),
        ("sentinel", false, "emergency_shutdown"),
        ("newcomer", true, "ok"),
    ] {
        let a = get(&serve, &format!("/api/token-usage/status/{ai}"), &secret);
        assert_eq!(a.status, 200, "{}", a.text);
        let status = env.json(&["status", "--ai-type", ai]);
        let check = env.json_code(
            if allowed { 0 } else { 3 },
            &["check", "--ai-type", ai, "--estimated-tokens", "1"],
        );
        let mut expected = status["ai_types"][0].clone();
        expected["month"] = status["month"].clone();
        for k in ["allowed", "reason", "message", "retry_after"] {
            expected[k] = check[k].clone();
        }
        assert_eq!(a.json["allowed"], allowed, "{}", a.text);
        assert_eq!(a.json["reason"], reason, "{}", a.text);
        assert_eq!(a.json, expected, "{}", a.text);
    }
});
