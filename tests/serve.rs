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
        "limits",
        "set",
        "--global",
        "--hourly",
        "100000",
        "--daily",
        "100000",
        "--max-concurrent",
        "0",
        "--rpm",
        "0",
        "--rpd",
        "0",
    ]);
}

/// Some of everything: usage of four AI types (one at warning, one at emergency), a hold,
/// usage last month, and the alerts a monitor tick raises.
fn some_usage(env: &Env) {
    open_global_limits(env);
    for ai in ["guardian", "sentinel"] {
        env.ok(&[
            "limits",
            "set",
            "--ai-type",
            ai,
            "--monthly",
            "1000",
            "--daily",
            "1000",
            "--hourly",
            "1000",
        ]);
    }
    env.record("imperium", 300, 200);
    env.record("imperium", 120, 30);
    env.record("guardian", 850, 0);
    env.record("sentinel", 990, 0);
    // an AI type may be any string: a slash, a space, an accent (percent-encoded in a path)
    env.record("team/agent é", 5, 5);
    let held = env.json(&[
        "reserve",
        "--ai-type",
        "imperium",
        "--estimated-tokens",
        "250",
    ]);
    assert_eq!(held["allowed"], true, "{held}");
    env.at("2026-10-12T08:00:00Z").record("imperium", 700, 100);
    env.ok(&[
        "monitor",
        "--once",
        "--alerts-file",
        env.path("alerts.json").to_str().unwrap(),
    ]);
}

both!(every_read_endpoint_answers_the_cli_document, |env| {
    some_usage(&env);
    let secret = token(&env, "dashboard", "read");
    let serve = Serve::start(&env, &[]);
    let pairs: &[(&str, &[&str])] = &[
        ("/api/token-usage/monthly", &["status"]),
        (
            "/api/token-usage/monthly?month=2026-10",
            &["status", "--month", "2026-10"],
        ),
        (
            "/api/token-usage/monthly/imperium",
            &["status", "--ai-type", "imperium"],
        ),
        (
            "/api/token-usage/monthly/guardian?month=2026-11",
            &["status", "--ai-type", "guardian", "--month", "2026-11"],
        ),
        (
            "/api/token-usage/monthly/imperium?month=2026-10",
            &["status", "--ai-type", "imperium", "--month", "2026-10"],
        ),
        (
            "/api/token-usage/monthly/team%2Fagent%20%C3%A9",
            &["status", "--ai-type", "team/agent é"],
        ),
        (
            "/api/token-usage/distribution?ai_type=team%2Fagent+%C3%A9",
            &["distribution", "--ai-type", "team/agent é"],
        ),
        ("/api/token-usage/limits", &["limits"]),
        ("/api/token-usage/alerts", &["alerts"]),
        (
            "/api/token-usage/alerts?active=true",
            &["alerts", "--active"],
        ),
        (
            "/api/token-usage/alerts?level=emergency",
            &["alerts", "--level", "emergency"],
        ),
        (
            "/api/token-usage/alerts?ai_type=guardian&since=24h",
            &["alerts", "--ai-type", "guardian", "--since", "24h"],
        ),
        (
            "/api/token-usage/alerts?active=true&ai_type=sentinel",
            &["alerts", "--active", "--ai-type", "sentinel"],
        ),
        ("/api/token-usage/distribution", &["distribution"]),
        (
            "/api/token-usage/distribution?month=2026-10",
            &["distribution", "--month", "2026-10"],
        ),
        (
            "/api/token-usage/distribution?day=2026-11-23&ai_type=imperium",
            &[
                "distribution",
                "--day",
                "2026-11-23",
                "--ai-type",
                "imperium",
            ],
        ),
    ];
    // the server and the CLI read the same pinned instant (TOKENCTL_NOW), so even the clock
    // fields (`clock.now`, burn rates, projections) agree: the documents compare whole
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
    expected["ai_type_count"] = json!(4);
    expected["ai_types_by_level"] = json!({"ok": 2, "warning": 1, "critical": 0, "emergency": 1});
    assert_eq!(a.json, expected, "{}", a.text);

    // status/{ai_type}: the status row, and whether a 1-token request passes now
    for (ai, allowed, reason) in [
        ("imperium", true, "ok"),
        ("guardian", true, "ok"),
        ("sentinel", false, "emergency_shutdown"),
        ("newcomer", true, "ok"),
        ("team/agent é", true, "ok"),
    ] {
        let encoded = ai
            .replace('/', "%2F")
            .replace(' ', "%20")
            .replace('é', "%C3%A9");
        let a = get(
            &serve,
            &format!("/api/token-usage/status/{encoded}"),
            &secret,
        );
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

/// The same state in a second database: what the CLI answers there is what the server
/// answers in the first (reservation ids differ: they are random).
fn twin(env: &Env, prepare: impl Fn(&Env)) -> Env {
    let other = Env::new(env.backend);
    prepare(env);
    prepare(&other);
    other
}

fn small_state(env: &Env) {
    open_global_limits(env);
    env.record("imperium", 400, 100);
    env.record("guardian", 50, 50);
}

both!(admission_endpoints_answer_the_cli_documents, |env| {
    let cli = twin(&env, small_state);
    let secret = token(&env, "backend", "admit");
    let serve = Serve::start(&env, &[]);

    // check: by estimated_tokens, and by prompt + max_tokens (3 words: ceil(3.9) + 100)
    let a = post(
        &serve,
        "/v1/check",
        &secret,
        json!({"ai_type": "imperium", "estimated_tokens": 300}),
    );
    assert_doc(
        &a,
        200,
        &cli.json(&[
            "check",
            "--ai-type",
            "imperium",
            "--estimated-tokens",
            "300",
        ]),
    );
    assert_eq!(a.json["allowed"], true);
    let a = post(
        &serve,
        "/v1/check",
        &secret,
        json!({"ai_type": "imperium", "prompt": "tell me more", "max_tokens": 100}),
    );
    assert_doc(
        &a,
        200,
        &cli.json(&[
            "check",
            "--ai-type",
            "imperium",
            "--prompt",
            "tell me more",
            "--max-tokens",
            "100",
        ]),
    );
    assert_eq!(a.json["estimated_tokens"], 104);
    // check holds nothing
    assert_eq!(env.status_of("imperium")["reserved_tokens"], 0);

    // reserve: 201 and reserve's document (its id aside); the hold shows in status
    let held = post(
        &serve,
        "/v1/reservations",
        &secret,
        json!({"ai_type": "imperium", "estimated_tokens": 600, "ttl_seconds": 300}),
    );
    let cli_held = cli.json(&[
        "reserve",
        "--ai-type",
        "imperium",
        "--estimated-tokens",
        "600",
        "--ttl",
        "5m",
    ]);
    assert_eq!(held.status, 201, "{}", held.text);
    assert_eq!(
        without(&held.json, &["reservation_id"]),
        without(&cli_held, &["reservation_id"])
    );
    assert_eq!(held.json["expires_at"], "2026-11-23T10:20:00Z");
    let id = held.json["reservation_id"].as_str().unwrap().to_string();
    let cli_id = cli_held["reservation_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("rsv_"), "{id}");
    assert_eq!(env.status_of("imperium")["reserved_tokens"], 600);
    assert_eq!(env.json(&["status"]), cli.json(&["status"]));

    // a reservation by prompt, with the default ttl (10 minutes)
    let by_prompt = post(
        &serve,
        "/v1/reservations",
        &secret,
        json!({"ai_type": "guardian", "prompt": "one two three four five", "max_tokens": 20}),
    );
    let cli_by_prompt = cli.json(&[
        "reserve",
        "--ai-type",
        "guardian",
        "--prompt",
        "one two three four five",
        "--max-tokens",
        "20",
    ]);
    assert_eq!(by_prompt.status, 201, "{}", by_prompt.text);
    assert_eq!(
        without(&by_prompt.json, &["reservation_id"]),
        without(&cli_by_prompt, &["reservation_id"])
    );
    assert_eq!(by_prompt.json["estimated_tokens"], 27);
    assert_eq!(by_prompt.json["expires_at"], "2026-11-23T10:25:00Z");

    // settle: record --reservation's document; the hold ends, the real numbers count
    // the same settle over HTTP and through the CLI (on the twin database)
    let settle_both = || {
        let over_http = post(
            &serve,
            &format!("/v1/reservations/{id}/settle"),
            &secret,
            json!({"tokens_in": 350, "tokens_out": 120, "model": "claude-sonnet-4", "request_id": "req-1"}),
        );
        let by_cli = cli.json(&[
            "record",
            "--ai-type",
            "imperium",
            "--tokens-in",
            "350",
            "--tokens-out",
            "120",
            "--model",
            "claude-sonnet-4",
            "--request-id",
            "req-1",
            "--reservation",
            &cli_id,
        ]);
        (over_http, by_cli)
    };
    let (settled, cli_settled) = settle_both();
    assert_eq!(settled.status, 200, "{}", settled.text);
    assert_eq!(settled.json["reservation_id"], id.as_str());
    assert_eq!(
        without(&settled.json, &["reservation_id"]),
        without(&cli_settled, &["reservation_id"])
    );
    assert_eq!(settled.json["reservation_was"], "held", "{}", settled.text);
    let imperium = env.status_of("imperium");
    assert_eq!(imperium["reserved_tokens"], 0);
    assert_eq!(imperium["total_tokens"], 500 + 470);
    // settling again: a duplicate, nothing counted twice
    let (again, cli_again) = settle_both();
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["duplicate"], true, "{}", again.text);
    assert_eq!(
        without(&again.json, &["reservation_id"]),
        without(&cli_again, &["reservation_id"])
    );
    assert_eq!(env.status_of("imperium")["total_tokens"], 970);

    // release: release's document; releasing twice says it already ended
    let rid = by_prompt.json["reservation_id"].as_str().unwrap();
    let cli_rid = cli_by_prompt["reservation_id"].as_str().unwrap();
    for _ in 0..2 {
        let released = call(
            &serve,
            "POST",
            &format!("/v1/reservations/{rid}/release"),
            Some(&secret),
            None,
        );
        let cli_released = cli.json(&["release", "--reservation", cli_rid]);
        assert_eq!(released.status, 200, "{}", released.text);
        assert_eq!(released.json["reservation_id"], rid);
        assert_eq!(
            without(&released.json, &["reservation_id"]),
            without(&cli_released, &["reservation_id"])
        );
    }
    assert_eq!(env.status_of("guardian")["reserved_tokens"], 0);
    // a released hold may still be settled (the request ran after all): its numbers count;
    // the body may name the reservation's own AI type
    let late = post(
        &serve,
        &format!("/v1/reservations/{rid}/settle"),
        &secret,
        json!({"ai_type": "guardian", "tokens_in": 20, "tokens_out": 3}),
    );
    let cli_late = cli.json(&[
        "record",
        "--ai-type",
        "guardian",
        "--tokens-in",
        "20",
        "--tokens-out",
        "3",
        "--reservation",
        cli_rid,
    ]);
    assert_eq!(late.status, 200, "{}", late.text);
    assert_eq!(late.json["reservation_was"], "released", "{}", late.text);
    assert_eq!(
        without(&late.json, &["reservation_id"]),
        without(&cli_late, &["reservation_id"])
    );

    // usage: 201, then 200 with duplicate: true for the same request id
    let body = json!({"ai_type": "guardian", "tokens_in": 40, "tokens_out": 2, "request_id": "req-2",
        "user_id": "u-7", "session_id": "s-1", "request_type": "chat", "duration_ms": 812});
    let args = [
        "record",
        "--ai-type",
        "guardian",
        "--tokens-in",
        "40",
        "--tokens-out",
        "2",
        "--request-id",
        "req-2",
        "--user-id",
        "u-7",
        "--session-id",
        "s-1",
        "--request-type",
        "chat",
        "--duration-ms",
        "812",
    ];
    let first = post(&serve, "/v1/usage", &secret, body.clone());
    assert_doc(&first, 201, &cli.json(&args));
    assert_eq!(first.json["duplicate"], false);
    let second = post(&serve, "/v1/usage", &secret, body);
    assert_doc(&second, 200, &cli.json(&args));
    assert_eq!(second.json["duplicate"], true);
    // a failed request, recorded as such
    let failed = post(
        &serve,
        "/v1/usage",
        &secret,
        json!({"ai_type": "guardian", "tokens_in": 10, "tokens_out": 0, "failed": true, "error": "overloaded_error: 529"}),
    );
    assert_doc(
        &failed,
        201,
        &cli.json(&[
            "record",
            "--ai-type",
            "guardian",
            "--tokens-in",
            "10",
            "--tokens-out",
            "0",
            "--failed",
            "--error",
            "overloaded_error: 529",
        ]),
    );
    assert_eq!(failed.json["success"], false);

    // in the end both databases tell the same story
    assert_eq!(env.json(&["status"]), cli.json(&["status"]));
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM token_usage_logs"),
        cli.scalar("SELECT COUNT(*) FROM token_usage_logs")
    );
});

/// The x-ratelimit-*-tokens headers and x-tokenctl-reason of an admission answer, as numbers.
#[track_caller]
fn rate_headers(a: &Answer) -> (i64, i64, i64) {
    let n = |name: &str| -> i64 {
        let v = a
            .header(name)
            .unwrap_or_else(|| panic!("no {name} header: {:?}", a.headers));
        v.parse()
            .unwrap_or_else(|_| panic!("{name}: {v} is not an integer"))
    };
    assert_eq!(
        a.header("x-tokenctl-reason"),
        a.json["reason"].as_str(),
        "{:?}",
        a.headers
    );
    let limit = n("x-ratelimit-limit-tokens");
    let remaining = n("x-ratelimit-remaining-tokens");
    let reset = n("x-ratelimit-reset-tokens");
    assert!(
        limit >= 0 && (0..=limit).contains(&remaining) && reset >= 1,
        "{:?}",
        a.headers
    );
    (limit, remaining, reset)
}

/// A denial over HTTP: its status, the body equal to the CLI's (exit 3), Retry-After only on
/// a 429, in whole seconds.
#[track_caller]
fn denied(
    env: &Env,
    serve: &Serve,
    secret: &str,
    ai: &str,
    tokens: i64,
    status: u16,
    reason: &str,
) -> Answer {
    let a = post(
        serve,
        "/v1/check",
        secret,
        json!({"ai_type": ai, "estimated_tokens": tokens}),
    );
    let cli = env.json_code(
        3,
        &[
            "check",
            "--ai-type",
            ai,
            "--estimated-tokens",
            &tokens.to_string(),
        ],
    );
    assert_doc(&a, status, &cli);
    assert_eq!(a.json["allowed"], false);
    assert_eq!(a.json["reason"], reason, "{}", a.text);
    rate_headers(&a);
    match status {
        429 => {
            let retry: i64 = a
                .header("retry-after")
                .expect("Retry-After on a 429")
                .parse()
                .unwrap();
            assert!((1..=86_400).contains(&retry), "{retry}");
            let at = chrono::DateTime::parse_from_rfc3339(a.json["retry_after"].as_str().unwrap())
                .unwrap();
            let now = chrono::DateTime::parse_from_rfc3339(&env.now).unwrap();
            assert_eq!(
                retry,
                (at - now).num_seconds(),
                "Retry-After is retry_after in whole seconds"
            );
        }
        _ => assert_eq!(a.header("retry-after"), None, "{:?}", a.headers),
    }
    // a reservation is denied the same way, and holds nothing
    let r = post(
        serve,
        "/v1/reservations",
        secret,
        json!({"ai_type": ai, "estimated_tokens": tokens}),
    );
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json["reason"], reason);
    assert_eq!(r.json["reservation_id"], Value::Null);
    assert_eq!(r.header("retry-after"), a.header("retry-after"));
    a
}

both!(
    denials_are_429_when_waiting_helps_within_a_day_else_403,
    |env| {
        open_global_limits(&env);
        env.ok(&[
            "limits",
            "set",
            "--ai-type",
            "hourly",
            "--monthly",
            "100000",
            "--daily",
            "100000",
            "--hourly",
            "500",
            "--per-request",
            "500",
        ]);
        env.ok(&[
            "limits",
            "set",
            "--ai-type",
            "daily",
            "--monthly",
            "100000",
            "--daily",
            "600",
            "--hourly",
            "600",
            "--per-request",
            "500",
        ]);
        env.ok(&["limits", "set", "--ai-type", "rpm", "--rpm", "2"]);
        env.ok(&[
            "limits",
            "set",
            "--ai-type",
            "spent",
            "--monthly",
            "1000",
            "--daily",
            "1000",
            "--hourly",
            "1000",
        ]);
        env.ok(&[
            "limits",
            "set",
            "--ai-type",
            "sentinel",
            "--monthly",
            "1000",
            "--daily",
            "1000",
            "--hourly",
            "1000",
        ]);
        env.record("hourly", 400, 50);
        env.record("daily", 500, 50);
        env.record("spent", 800, 100);
        env.record("sentinel", 990, 0);
        let secret = token(&env, "backend", "admit");
        let serve = Serve::start(&env, &[]);

        // allowed: 200 (check) and 201 (reserve), with the headers of the tightest window: the
        // hour of "hourly" (450 of 500 used; the hour ends at 11:00, 2,700 s away)
        let a = post(
            &serve,
            "/v1/check",
            &secret,
            json!({"ai_type": "hourly", "estimated_tokens": 50}),
        );
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(rate_headers(&a), (500, 50, 2700));
        assert_eq!(a.header("retry-after"), None);
        // a hold counts against the window like usage
        let r = post(
            &serve,
            "/v1/reservations",
            &secret,
            json!({"ai_type": "hourly", "estimated_tokens": 30}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        let a = post(
            &serve,
            "/v1/check",
            &secret,
            json!({"ai_type": "hourly", "estimated_tokens": 20}),
        );
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(rate_headers(&a), (500, 20, 2700));
        let r = post(
            &serve,
            &format!(
                "/v1/reservations/{}/release",
                r.json["reservation_id"].as_str().unwrap()
            ),
            &secret,
            json!({}),
        );
        assert_eq!(r.status, 200, "{}", r.text);

        // the hour is full: 429, Retry-After 2,700 s (11:00)
        let a = denied(
            &env,
            &serve,
            &secret,
            "hourly",
            100,
            429,
            "hourly_limit_exceeded",
        );
        assert_eq!(a.header("retry-after"), Some("2700"));
        assert_eq!(a.json["retry_after"], "2026-11-23T11:00:00Z");
        // the day is full: 429 until midnight, 13 h 45 min away
        let a = denied(
            &env,
            &serve,
            &secret,
            "daily",
            100,
            429,
            "daily_limit_exceeded",
        );
        assert_eq!(a.header("retry-after"), Some("49500"));
        let (limit, remaining, _) = rate_headers(&a);
        assert_eq!((limit, remaining), (600, 50));
        // the month is spent: waiting a day does not help, 403
        let a = denied(
            &env,
            &serve,
            &secret,
            "spent",
            200,
            403,
            "monthly_limit_exceeded",
        );
        assert_eq!(a.json["retry_after"], "2026-12-01T00:00:00Z");
        // larger than a request may be: it never passes
        let a = denied(
            &env,
            &serve,
            &secret,
            "imperium",
            1500,
            403,
            "request_limit_exceeded",
        );
        assert_eq!(a.json["retry_after"], Value::Null);
        // emergency: every request of that AI type denied
        denied(
            &env,
            &serve,
            &secret,
            "sentinel",
            1,
            403,
            "emergency_shutdown",
        );

        // requests per minute: two reservations pass, the third waits for the minute
        for _ in 0..2 {
            let r = post(
                &serve,
                "/v1/reservations",
                &secret,
                json!({"ai_type": "rpm", "estimated_tokens": 10}),
            );
            assert_eq!(r.status, 201, "{}", r.text);
            rate_headers(&r);
        }
        let a = denied(&env, &serve, &secret, "rpm", 10, 429, "rpm_limit_exceeded");
        assert_eq!(a.header("retry-after"), Some("60"), "{:?}", a.headers);

        // a cooldown: 429 until it has passed
        env.ok(&["limits", "set", "--ai-type", "cool", "--cooldown", "30"]);
        env.record("cool", 5, 5);
        let a = denied(&env, &serve, &secret, "cool", 10, 429, "cooldown_active");
        assert_eq!(a.header("retry-after"), Some("30"));
        // too many requests in flight (the two holds above): 429 until the first hold expires
        env.ok(&["limits", "set", "--global", "--max-concurrent", "2"]);
        let a = denied(
            &env,
            &serve,
            &secret,
            "imperium",
            10,
            429,
            "concurrency_limit_exceeded",
        );
        assert_eq!(a.header("retry-after"), Some("600"));
        env.ok(&["limits", "set", "--global", "--max-concurrent", "0"]);
        // the total's month: 403; set so that the total stands at 90%, with 10% left
        let total = i(&env.json(&["status"])["global"]["total_tokens"]);
        env.ok(&[
            "limits",
            "set",
            "--global",
            "--monthly",
            &(total * 10 / 9).to_string(),
        ]);
        let a = denied(
            &env,
            &serve,
            &secret,
            "imperium",
            total / 9 + 10,
            403,
            "global_limit_exceeded",
        );
        assert_eq!(a.json["retry_after"], "2026-12-01T00:00:00Z");

        // nothing denied was held
        assert_eq!(
            env.scalar("SELECT COUNT(*) FROM token_reservations WHERE ai_type = 'rpm'"),
            2
        );
        assert_eq!(
            env.scalar("SELECT COUNT(*) FROM token_reservations WHERE state = 'held'"),
            2
        );
    }
);

/// What a bad request must leave as it was: the usage, the log, the holds.
fn snapshot(env: &Env) -> (Value, i64, i64, i64) {
    (
        env.json(&["status"]),
        env.scalar("SELECT COUNT(*) FROM token_usage_logs"),
        env.scalar("SELECT COUNT(*) FROM token_reservations"),
        env.scalar("SELECT COUNT(*) FROM token_usage"),
    )
}

#[track_caller]
fn assert_error(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(a.json["code"], code, "{}", a.text);
    let message = a.json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {}", a.text));
    assert!(
        !message.is_empty() && !message.contains('\n'),
        "{message:?}"
    );
    assert_eq!(a.json.as_object().unwrap().len(), 2, "{}", a.text);
    assert!(
        a.header("content-type")
            .unwrap_or("")
            .starts_with("application/json"),
        "{:?}",
        a.headers
    );
}

both!(bad_requests_get_json_errors_and_write_nothing, |env| {
    open_global_limits(&env);
    env.record("imperium", 100, 10);
    env.record("guardian", 100, 10);
    let secret = token(&env, "backend", "admin");
    let serve = Serve::start(&env, &["--max-body-bytes", "1024"]);
    let held = post(
        &serve,
        "/v1/reservations",
        &secret,
        json!({"ai_type": "imperium", "estimated_tokens": 100}),
    );
    assert_eq!(held.status, 201, "{}", held.text);
    let id = held.json["reservation_id"].as_str().unwrap().to_string();
    let used = post(
        &serve,
        "/v1/usage",
        &secret,
        json!({"ai_type": "imperium", "tokens_in": 5, "tokens_out": 5, "request_id": "req-1"}),
    );
    assert_eq!(used.status, 201, "{}", used.text);
    let before = snapshot(&env);

    let raw_400: &[(&str, &str)] = &[
        (
            "/v1/check",
            r#"{"ai_type": "imperium", "estimated_tokens": "#,
        ),
        ("/v1/check", "not json"),
        ("/v1/check", ""),
        ("/v1/check", "[]"),
        (
            "/v1/check",
            r#"{"ai_type": "imperium", "estimated_tokens": -5}"#,
        ),
        (
            "/v1/check",
            r#"{"ai_type": "imperium", "estimated_tokens": "many"}"#,
        ),
        (
            "/v1/check",
            r#"{"ai_type": "imperium", "estimated_tokens": 1.5}"#,
        ),
        ("/v1/check", r#"{"estimated_tokens": 10}"#),
        ("/v1/check", r#"{"ai_type": "", "estimated_tokens": 10}"#),
        ("/v1/check", r#"{"ai_type": "imperium"}"#),
        ("/v1/check", r#"{"ai_type": 7, "estimated_tokens": 10}"#),
        ("/v1/check", r#"{"ai_type": "imperium", "prompt": "hello"}"#),
        (
            "/v1/check",
            r#"{"ai_type": "imperium", "prompt": "hello", "max_tokens": -1}"#,
        ),
        (
            "/v1/check",
            r#"{"ai_type": "imperium", "estimated_tokens": 10, "prompt": "hello", "max_tokens": 5}"#,
        ),
        (
            "/v1/reservations",
            r#"{"ai_type": "imperium", "estimated_tokens": 10, "max_tokens": 5}"#,
        ),
        (
            "/v1/reservations",
            r#"{"ai_type": "imperium", "estimated_tokens": -5}"#,
        ),
        ("/v1/reservations", r#"{"estimated_tokens": 10}"#),
        (
            "/v1/reservations",
            r#"{"ai_type": "imperium", "estimated_tokens": 10, "ttl_seconds": 0}"#,
        ),
        (
            "/v1/reservations",
            r#"{"ai_type": "imperium", "estimated_tokens": 10, "ttl_seconds": -3}"#,
        ),
        (
            "/v1/reservations",
            r#"{"ai_type": "imperium", "estimated_tokens": 10, "ttl_seconds": 99999999}"#,
        ),
        (
            "/v1/usage",
            r#"{"ai_type": "imperium", "tokens_in": -1, "tokens_out": 0}"#,
        ),
        (
            "/v1/usage",
            r#"{"ai_type": "imperium", "tokens_in": "ten", "tokens_out": 0}"#,
        ),
        ("/v1/usage", r#"{"ai_type": "imperium", "tokens_in": 10}"#),
        ("/v1/usage", r#"{"tokens_in": 10, "tokens_out": 0}"#),
        (
            "/v1/usage",
            r#"{"ai_type": "imperium", "tokens_in": 10, "tokens_out": 0, "duration_ms": -4}"#,
        ),
    ];
    for (path, body) in raw_400 {
        let a = call_raw(&serve, "POST", path, Some(&secret), Some(body));
        assert_error(&a, 400, "invalid_input");
        assert_eq!(
            a.header("x-tokenctl-reason"),
            None,
            "{path} {body}: {:?}",
            a.headers
        );
    }
    let long = json!({"ai_type": "a".repeat(101), "estimated_tokens": 10});
    assert_error(
        &post(&serve, "/v1/reservations", &secret, long),
        400,
        "invalid_input",
    );
    // a body that does not say it is JSON
    let a = ureq::post(&serve.url("/v1/check"))
        .set("Authorization", &format!("Bearer {secret}"))
        .set("Content-Type", "application/x-www-form-urlencoded")
        .send_string(r#"{"ai_type": "imperium", "estimated_tokens": 10}"#);
    match a {
        Err(ureq::Error::Status(400, r)) => {
            assert!(r.into_string().unwrap().contains("invalid_input"))
        }
        other => panic!("{other:?}"),
    }
    let settle = format!("/v1/reservations/{id}/settle");
    for body in [
        r#"{"tokens_in": -1, "tokens_out": 0}"#,
        r#"{"tokens_in": 1}"#,
        "{",
    ] {
        assert_error(
            &call_raw(&serve, "POST", &settle, Some(&secret), Some(body)),
            400,
            "invalid_input",
        );
    }
    for path in [
        "/api/token-usage/monthly?month=2026-13",
        "/api/token-usage/monthly?month=november",
        "/api/token-usage/monthly/imperium?month=26-11",
        "/api/token-usage/distribution?day=2026-02-30",
        "/api/token-usage/alerts?level=panic",
        "/api/token-usage/alerts?active=maybe",
        "/api/token-usage/alerts?since=yesterday",
    ] {
        assert_error(&get(&serve, path, &secret), 400, "invalid_input");
    }

    // an unknown reservation: 404, to settle or to release
    let a = post(
        &serve,
        "/v1/reservations/rsv_0000/settle",
        &secret,
        json!({"tokens_in": 1, "tokens_out": 1}),
    );
    assert_error(&a, 404, "not_found");
    let a = post(
        &serve,
        "/v1/reservations/rsv_0000/release",
        &secret,
        json!({}),
    );
    assert_error(&a, 404, "not_found");
    // another AI type's reservation: 409
    let a = post(
        &serve,
        &settle,
        &secret,
        json!({"ai_type": "guardian", "tokens_in": 50, "tokens_out": 5}),
    );
    assert_error(&a, 409, "conflict");
    // a request id another request used cannot settle a reservation: 409 (record exits 2)
    let a = post(
        &serve,
        &settle,
        &secret,
        json!({"tokens_in": 50, "tokens_out": 5, "request_id": "req-1"}),
    );
    assert_error(&a, 409, "conflict");
    // as plain usage, a reused request id is what `record` says it is: a duplicate, nothing
    // recorded, and a warning that these numbers were not (the CLI exits 0 and warns)
    for body in [
        json!({"ai_type": "guardian", "tokens_in": 5, "tokens_out": 5, "request_id": "req-1"}),
        json!({"ai_type": "imperium", "tokens_in": 7, "tokens_out": 5, "request_id": "req-1"}),
    ] {
        let a = post(&serve, "/v1/usage", &secret, body);
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.json["duplicate"], true, "{}", a.text);
        assert_eq!(
            (a.json["tokens_in"].clone(), a.json["tokens_out"].clone()),
            (json!(5), json!(5))
        );
        assert!(
            a.json["warnings"][0]
                .as_str()
                .unwrap()
                .contains("were not recorded"),
            "{}",
            a.text
        );
    }

    // a body over --max-body-bytes: 413
    let big = json!({"ai_type": "imperium", "prompt": "word ".repeat(300), "max_tokens": 10});
    assert!(big.to_string().len() > 1024);
    assert_error(
        &post(&serve, "/v1/check", &secret, big.clone()),
        413,
        "payload_too_large",
    );
    assert_error(
        &post(&serve, "/v1/reservations", &secret, big),
        413,
        "payload_too_large",
    );
    // just under it is fine
    let fits = json!({"ai_type": "imperium", "prompt": "word ".repeat(150), "max_tokens": 10});
    assert!(fits.to_string().len() < 1024);
    assert_eq!(post(&serve, "/v1/check", &secret, fits).status, 200);

    // an unknown path: 404 in JSON; a known one with the wrong method: 405
    assert_error(&get(&serve, "/v1/nothing", &secret), 404, "not_found");
    assert_error(
        &call(&serve, "GET", "/nothing", None, None),
        404,
        "not_found",
    );
    assert_error(
        &get(&serve, "/v1/check", &secret),
        405,
        "method_not_allowed",
    );
    assert_error(
        &post(&serve, "/api/token-usage/limits", &secret, json!({})),
        405,
        "method_not_allowed",
    );

    // nothing was written
    assert_eq!(snapshot(&env), before);
    // and the reservation is still there to settle
    let a = post(
        &serve,
        &settle,
        &secret,
        json!({"tokens_in": 50, "tokens_out": 5}),
    );
    assert_eq!(a.status, 200, "{}", a.text);
});

const READ_PATHS: &[&str] = &[
    "/api/token-usage/monthly",
    "/api/token-usage/monthly/imperium",
    "/api/token-usage/summary",
    "/api/token-usage/limits",
    "/api/token-usage/alerts",
    "/api/token-usage/alerts?active=true",
    "/api/token-usage/status/imperium",
    "/api/token-usage/distribution",
    "/metrics",
];

/// Each admit endpoint called with a body that succeeds (`hold` is the reservation settle and
/// release name): the answers, by path.
fn admit_calls(serve: &Serve, secret: Option<&str>, hold: &str) -> Vec<(String, Answer)> {
    let body = json!({"ai_type": "imperium", "estimated_tokens": 10});
    let usage = json!({"ai_type": "imperium", "tokens_in": 1, "tokens_out": 1});
    let settle = json!({"tokens_in": 1, "tokens_out": 1});
    [
        ("/v1/check".to_string(), body.clone()),
        ("/v1/reservations".to_string(), body),
        (format!("/v1/reservations/{hold}/settle"), settle),
        (format!("/v1/reservations/{hold}/release"), json!({})),
        ("/v1/usage".to_string(), usage),
    ]
    .into_iter()
    .map(|(path, body)| {
        let a = call(serve, "POST", &path, secret, Some(&body));
        (path, a)
    })
    .collect()
}

fn hold(serve: &Serve, secret: &str) -> String {
    let a = post(
        serve,
        "/v1/reservations",
        secret,
        json!({"ai_type": "imperium", "estimated_tokens": 10}),
    );
    assert_eq!(a.status, 201, "{}", a.text);
    a.json["reservation_id"].as_str().unwrap().to_string()
}

#[track_caller]
fn assert_401(a: &Answer) {
    assert_eq!(a.status, 401, "{}", a.text);
    assert_eq!(
        a.header("www-authenticate"),
        Some("Bearer"),
        "{:?}",
        a.headers
    );
    assert!(a.json["error"].is_string(), "{}", a.text);
    assert_eq!(a.json["code"], "unauthorized", "{}", a.text);
}

both!(tokens_and_scopes_decide_who_may_call_what, |env| {
    open_global_limits(&env);
    env.record("imperium", 10, 10);
    let read = token(&env, "grafana", "read");
    let admit = token(&env, "backend", "admit");
    let admin = token(&env, "ops", "admin");
    let doomed = token(&env, "old-backend", "admit");
    for s in [&read, &admit, &admin, &doomed] {
        assert!(s.starts_with("tkc_") && s.len() > 40, "{s}");
    }
    let serve = Serve::start(&env, &[]);
    let before = snapshot(&env);

    // no token, an unknown one, a malformed header: 401 with WWW-Authenticate, everywhere
    let unknown = format!("tkc_{}", "0".repeat(64));
    for secret in [None, Some(unknown.as_str()), Some("nonsense"), Some("")] {
        for path in READ_PATHS {
            assert_401(&call(&serve, "GET", path, secret, None));
        }
        for (_, a) in admit_calls(&serve, secret, "rsv_x") {
            assert_401(&a);
        }
    }
    let a = ureq::get(&serve.url("/api/token-usage/limits"))
        .set("Authorization", &format!("Basic {admit}"))
        .call();
    assert!(matches!(a, Err(ureq::Error::Status(401, _))), "{a:?}");
    assert_eq!(snapshot(&env), before, "a refused request wrote something");

    // read: the reports, not admission (403: the token is known, its scope too small)
    for path in READ_PATHS {
        assert_eq!(get(&serve, path, &read).status, 200, "{path}");
    }
    for (path, a) in admit_calls(&serve, Some(&read), &hold(&serve, &admit)) {
        assert_eq!(a.status, 403, "{path}: {}", a.text);
        assert!(
            a.json["error"].as_str().unwrap().contains("scope read"),
            "{}",
            a.text
        );
        assert_eq!(a.json["code"], "forbidden", "{}", a.text);
        assert_eq!(a.header("www-authenticate"), None);
    }
    // admit and admin: both
    for secret in [&admit, &admin] {
        for path in READ_PATHS {
            assert_eq!(get(&serve, path, secret).status, 200, "{path}");
        }
        let statuses: Vec<u16> = admit_calls(&serve, Some(secret), &hold(&serve, secret))
            .iter()
            .map(|(_, a)| a.status)
            .collect();
        assert_eq!(statuses, [200, 201, 200, 200, 201]);
    }

    // the open endpoints need nothing
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let a = call(&serve, "GET", path, None, None);
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        assert!(a.json.is_object(), "{path}: {}", a.text);
    }
    let doc = call(&serve, "GET", "/openapi.json", None, None).json;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    for path in [
        "/api/token-usage/monthly",
        "/v1/reservations/{id}/settle",
        "/v1/usage",
        "/metrics",
        "/readyz",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from /openapi.json"
        );
    }

    // a token revoked while the server runs: 401 from then on; the others still pass
    assert_eq!(
        post(
            &serve,
            "/v1/check",
            &doomed,
            json!({"ai_type": "imperium", "estimated_tokens": 1})
        )
        .status,
        200
    );
    let (stdout, _) = env.expect(0, &["tokens", "revoke", "--name", "old-backend"]);
    assert!(stdout.contains("old-backend"), "{stdout}");
    // a token found in the database is trusted for a second without asking again
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_401(&post(
        &serve,
        "/v1/check",
        &doomed,
        json!({"ai_type": "imperium", "estimated_tokens": 1}),
    ));
    assert_401(&get(&serve, "/api/token-usage/limits", &doomed));
    assert_eq!(
        post(
            &serve,
            "/v1/check",
            &admit,
            json!({"ai_type": "imperium", "estimated_tokens": 1})
        )
        .status,
        200
    );
    // its name may be given to a new token; the old secret stays refused
    let renewed = token(&env, "old-backend", "read");
    assert_eq!(get(&serve, "/api/token-usage/limits", &renewed).status, 200);
    assert_401(&get(&serve, "/api/token-usage/limits", &doomed));

    // tokens list: names, scopes, dates; never a secret (nor its hash)
    let secrets = [&read, &admit, &admin, &doomed, &renewed];
    for args in [
        &["tokens", "list", "--json"][..],
        &["tokens", "list", "--all", "--json"],
        &["tokens", "list", "--all"],
    ] {
        let (stdout, stderr) = env.expect(0, args);
        for s in secrets {
            assert!(
                !stdout.contains(s.as_str()) && !stderr.contains(s.as_str()),
                "{args:?} shows a secret"
            );
            assert!(
                !stdout.contains(&sha256_hex(s)),
                "{args:?} shows a secret's hash"
            );
        }
        assert!(!stdout.contains("tkc_"), "{stdout}");
    }
    let list = env.json(&["tokens", "list"]);
    let names: Vec<(&str, &str)> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["scope"].as_str().unwrap()))
        .collect();
    assert_eq!(names.len(), 4, "{list}");
    for want in [
        ("grafana", "read"),
        ("backend", "admit"),
        ("ops", "admin"),
        ("old-backend", "read"),
    ] {
        assert!(names.contains(&want), "{want:?} not in {list}");
    }
    for t in list["tokens"].as_array().unwrap() {
        let mut keys: Vec<&str> = t.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["created_at", "name", "revoked_at", "scope"], "{t}");
    }
    let all = env.json(&["tokens", "list", "--all"]);
    let revoked: Vec<&Value> = all["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["revoked_at"].is_null())
        .collect();
    assert_eq!(revoked.len(), 1, "{all}");
    assert_eq!(revoked[0]["name"], "old-backend");
    assert_eq!(revoked[0]["scope"], "admit");

    // tokens create --json: the secret once, with its name, scope and time
    let created = env.json(&["tokens", "create", "--name", "ci", "--scope", "read"]);
    assert_eq!(created["name"], "ci");
    assert_eq!(created["scope"], "read");
    assert_eq!(created["created_at"], "2026-11-23T10:15:00Z");
    assert_eq!(
        get(
            &serve,
            "/api/token-usage/limits",
            created["token"].as_str().unwrap()
        )
        .status,
        200
    );

    // a name taken, an unknown one, a bad scope or name: exit 2, one line on stderr, nothing written
    let tokens_before = env.scalar("SELECT COUNT(*) FROM tokenctl_api_tokens");
    for args in [
        &["tokens", "create", "--name", "backend", "--scope", "read"][..],
        &[
            "tokens", "create", "--name", "backend", "--scope", "admin", "--json",
        ],
        &["tokens", "revoke", "--name", "nobody"],
        &["tokens", "revoke", "--name", "old-backend-2"],
        &["tokens", "create", "--name", "two words", "--scope", "read"],
        &["tokens", "create", "--name", "x", "--scope", "root"],
    ] {
        let (stdout, stderr) = env.expect(2, args);
        assert_eq!(stdout, "", "{args:?}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    }
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM tokenctl_api_tokens"),
        tokens_before
    );
    assert_eq!(
        get(&serve, "/api/token-usage/limits", &admit).status,
        200,
        "a refused create changed 'backend'"
    );
});

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// Runs `tokenctl args` expected to exit on its own within 30 s (killed, and failed, if not):
/// (exit code, stdout, stderr).
fn run_bounded(env: &Env, args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = common::spawn(env, args);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (
        status.and_then(|s| s.code()),
        text(&out.stdout),
        text(&out.stderr),
    )
}

both!(
    serve_refuses_to_listen_beyond_loopback_without_auth,
    |env| {
        // on loopback with no token it starts, says so, and refuses every guarded request until
        // a token is created (then at once: tokens live in the database)
        {
            let serve = Serve::start(&env, &[]);
            assert!(
                serve.log_text().contains("no token exists yet"),
                "{}",
                serve.log_text()
            );
            assert_401(&call(&serve, "GET", "/api/token-usage/limits", None, None));
            assert_eq!(call(&serve, "GET", "/readyz", None, None).status, 200);
            let secret = token(&env, "first", "read");
            assert_eq!(get(&serve, "/api/token-usage/limits", &secret).status, 200);
            env.ok(&["tokens", "revoke", "--name", "first"]);
        }
        // --insecure-no-auth beyond loopback: refused, token or not
        for listen in ["0.0.0.0:0", "[::]:0"] {
            let (code, stdout, stderr) =
                run_bounded(&env, &["serve", "--listen", listen, "--insecure-no-auth"]);
            assert_eq!(code, Some(2), "{listen}: {stderr}");
            assert_eq!(stdout, "");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
            assert!(
                stderr.contains("--insecure-no-auth") && stderr.contains("loopback"),
                "{stderr}"
            );
        }
        // beyond loopback with no token: every request would be refused, so it does not start
        let (code, stdout, stderr) = run_bounded(&env, &["serve", "--listen", "0.0.0.0:0"]);
        assert_eq!(code, Some(2), "{stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("tokens create"), "{stderr}");
        // a revoked token is no token
        token(&env, "gone", "admit");
        env.ok(&["tokens", "revoke", "--name", "gone"]);
        let (code, _, stderr) = run_bounded(&env, &["serve", "--listen", "0.0.0.0:0"]);
        assert_eq!(code, Some(2), "{stderr}");
        token(&env, "backend", "admit");
        let (code, _, stderr) = run_bounded(
            &env,
            &["serve", "--listen", "0.0.0.0:0", "--insecure-no-auth"],
        );
        assert_eq!(code, Some(2), "{stderr}");
        // bad flag values: exit 2, before listening
        for extra in [
            &["--max-body-bytes", "10"][..],
            &["--log-format", "xml"],
            &["--listen", "localhost"],
        ] {
            let mut args = vec!["serve"];
            args.extend_from_slice(extra);
            let (code, _, stderr) = run_bounded(&env, &args);
            assert_eq!(code, Some(2), "{extra:?}: {stderr}");
        }
    }
);

both!(insecure_no_auth_on_loopback_opens_every_endpoint, |env| {
    open_global_limits(&env);
    env.record("imperium", 10, 10);
    let serve = Serve::start(&env, &["--insecure-no-auth"]);
    assert!(serve.log_text().contains("no auth"), "{}", serve.log_text());
    for path in READ_PATHS
        .iter()
        .chain(&["/healthz", "/readyz", "/openapi.json"])
    {
        let a = call(&serve, "GET", path, None, None);
        assert_eq!(a.status, 200, "{path}: {}", a.text);
    }
    let h = post(
        &serve,
        "/v1/reservations",
        "ignored",
        json!({"ai_type": "imperium", "estimated_tokens": 10}),
    );
    assert_eq!(h.status, 201, "{}", h.text);
    let statuses: Vec<u16> = admit_calls(&serve, None, h.json["reservation_id"].as_str().unwrap())
        .iter()
        .map(|(_, a)| a.status)
        .collect();
    assert_eq!(statuses, [200, 201, 200, 200, 201]);
    // SIGINT (Ctrl-C) stops it like SIGTERM: exit 0
    let mut serve = serve;
    let sent = std::process::Command::new("kill")
        .args(["-INT", &serve.child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let started = std::time::Instant::now();
    let code = loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            break status.code();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "still running after SIGINT"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(code, Some(0), "{}", serve.log_text());
    assert!(
        serve.log_text().contains("tokenctl serve: stopped"),
        "{}",
        serve.log_text()
    );
});

/// This test's database URL with a password in it (PostgreSQL; the test server trusts
/// 127.0.0.1, so a password it does not need is simply not checked), and the password; a
/// URL that has one already keeps it. SQLite URLs have none.
fn url_with_password(env: &Env) -> (String, Option<String>) {
    if env.backend == Backend::Sqlite {
        return (env.url.clone(), None);
    }
    let (scheme, rest) = env.url.split_once("://").unwrap();
    let (userinfo, host) = rest.split_once('@').expect("a user in the PostgreSQL URL");
    match userinfo.split_once(':') {
        Some((_, pw)) => (env.url.clone(), Some(pw.to_string())),
        None => {
            let pw = "Pw-never-logged-7Q2";
            (
                format!("{scheme}://{userinfo}:{pw}@{host}"),
                Some(pw.to_string()),
            )
        }
    }
}

/// Requests of every outcome, made with `secret`; what the access log must show for each
/// (method, path, status, reason).
fn requests_of_every_kind(
    serve: &Serve,
    secret: &str,
) -> Vec<(&'static str, &'static str, u16, &'static str)> {
    let wrong = format!("{secret}x");
    type Call<'a> = (
        &'static str,
        &'static str,
        Option<&'a str>,
        Option<Value>,
        u16,
        &'static str,
    );
    let calls: Vec<Call> = vec![
        (
            "GET",
            "/api/token-usage/limits",
            Some(secret),
            None,
            200,
            "-",
        ),
        (
            "POST",
            "/v1/check",
            Some(secret),
            Some(json!({"ai_type": "imperium", "estimated_tokens": 10})),
            200,
            "ok",
        ),
        (
            "POST",
            "/v1/check",
            Some(secret),
            Some(json!({"ai_type": "imperium", "estimated_tokens": 5000})),
            403,
            "request_limit_exceeded",
        ),
        (
            "POST",
            "/v1/reservations",
            Some(secret),
            Some(json!({"ai_type": "imperium", "estimated_tokens": 10})),
            201,
            "ok",
        ),
        (
            "POST",
            "/v1/check",
            Some(secret),
            Some(json!({"ai_type": "imperium", "estimated_tokens": -1})),
            400,
            "invalid_input",
        ),
        (
            "GET",
            "/api/token-usage/summary",
            None,
            None,
            401,
            "unauthorized",
        ),
        (
            "GET",
            "/api/token-usage/summary",
            Some(&wrong),
            None,
            401,
            "unauthorized",
        ),
        ("GET", "/no/such/path", Some(secret), None, 404, "not_found"),
        (
            "POST",
            "/v1/reservations/rsv_nope/release",
            Some(secret),
            None,
            404,
            "not_found",
        ),
        ("GET", "/readyz", None, None, 200, "-"),
    ];
    calls
        .into_iter()
        .map(|(method, path, token, body, status, reason)| {
            let a = call(serve, method, path, token, body.as_ref());
            assert_eq!(a.status, status, "{method} {path}: {}", a.text);
            (method, path, status, reason)
        })
        .collect()
}

/// The access log's lines for requests other than the readiness probe's /healthz.
fn request_lines(serve: &Serve) -> Vec<String> {
    serve
        .log_text()
        .lines()
        .filter(|l| !l.contains("/healthz"))
        .map(str::to_string)
        .collect()
}

both!(
    the_access_log_has_one_line_per_request_and_no_secret,
    |env| {
        let (url, password) = url_with_password(&env);
        let secret = token(&env, "backend", "admit");
        let adjust = |c: &mut std::process::Command| {
            c.env("TOKENCTL_DATABASE_URL", &url);
        };

        // text: time, method, path, status, latency, reason, the token's name
        let serve = Serve::start_with(&env, &[], adjust);
        let expected = requests_of_every_kind(&serve, &secret);
        let lines: Vec<String> = request_lines(&serve)
            .into_iter()
            .filter(|l| !l.starts_with("tokenctl serve:"))
            .collect();
        assert_eq!(lines.len(), expected.len(), "{lines:#?}");
        for (line, (method, path, status, reason)) in lines.iter().zip(&expected) {
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f.len(), 7, "{line}");
            assert!(chrono::DateTime::parse_from_rfc3339(f[0]).is_ok(), "{line}");
            assert_eq!(
                (f[1], f[2], f[3]),
                (*method, *path, status.to_string().as_str()),
                "{line}"
            );
            let ms = f[4]
                .strip_suffix("ms")
                .unwrap_or_else(|| panic!("no latency: {line}"));
            assert!(ms.parse::<f64>().unwrap() >= 0.0, "{line}");
            assert_eq!(f[5], format!("reason={reason}"), "{line}");
            // no route, no token check: an unknown path names no caller
            let who = if *status == 401 || ["/readyz", "/no/such/path"].contains(path) {
                "-"
            } else {
                "backend"
            };
            assert_eq!(f[6], format!("token={who}"), "{line}");
        }
        drop(serve);

        // json: one object per line, every line
        let serve = Serve::start_with(&env, &["--log-format", "json"], adjust);
        let expected = requests_of_every_kind(&serve, &secret);
        let mut serve = serve;
        assert_eq!(serve.terminate(std::time::Duration::from_secs(20)), Some(0));
        let text = serve.log_text();
        let objects: Vec<Value> = text
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON object ({e}): {l}"))
            })
            .collect();
        assert!(objects.iter().all(Value::is_object), "{text}");
        let requests: Vec<&Value> = objects
            .iter()
            .filter(|o| o.get("method").is_some() && o["path"] != "/healthz")
            .collect();
        assert_eq!(requests.len(), expected.len(), "{text}");
        for (o, (method, path, status, reason)) in requests.iter().zip(&expected) {
            assert_eq!(o["method"], *method, "{o}");
            assert_eq!(o["path"], *path, "{o}");
            assert_eq!(o["status"], *status, "{o}");
            assert_eq!(o["reason"], *reason, "{o}");
            assert!(o["latency_ms"].as_f64().unwrap() >= 0.0, "{o}");
            assert!(
                chrono::DateTime::parse_from_rfc3339(o["at"].as_str().unwrap()).is_ok(),
                "{o}"
            );
        }

        // neither the secret (nor the wrong one sent) nor the database password ever appears
        let all_logs: String = std::fs::read_dir(env.dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("serve-"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .collect();
        assert!(all_logs.lines().count() >= 2 * expected.len(), "{all_logs}");
        assert!(
            !all_logs.contains(&secret),
            "the secret is in the log:\n{all_logs}"
        );
        assert!(
            !all_logs.contains(&secret[4..20]),
            "part of the secret is in the log:\n{all_logs}"
        );
        assert!(!all_logs.contains(&sha256_hex(&secret)), "{all_logs}");
        if let Some(pw) = password {
            assert!(
                !all_logs.contains(&pw),
                "the database password is in the log:\n{all_logs}"
            );
        }
    }
);

/// A raw HTTP/1.1 POST whose body arrives late: the headers go first, with
/// `Expect: 100-continue`; the server's `100 Continue` says its handler is reading the body,
/// so from then on the request is in flight, for as long as the test holds back the body.
struct SlowPost {
    stream: std::net::TcpStream,
    rest: Vec<u8>,
}

impl SlowPost {
    fn start(port: u16, path: &str, secret: &str, body: &Value) -> SlowPost {
        use std::io::Write;
        let body = body.to_string().into_bytes();
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {secret}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\
             Expect: 100-continue\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.flush().unwrap();
        let mut interim = Vec::new();
        let mut byte = [0u8; 1];
        while !interim.ends_with(b"\r\n\r\n") {
            use std::io::Read;
            let n = stream.read(&mut byte).unwrap();
            assert_eq!(
                n,
                1,
                "closed before 100 Continue: {}",
                String::from_utf8_lossy(&interim)
            );
            interim.push(byte[0]);
        }
        assert!(
            interim.starts_with(b"HTTP/1.1 100"),
            "{}",
            String::from_utf8_lossy(&interim)
        );
        let half = body.len() / 2;
        stream.write_all(&body[..half]).unwrap();
        stream.flush().unwrap();
        SlowPost {
            stream,
            rest: body[half..].to_vec(),
        }
    }

    /// Sends the rest of the body and reads the answer to its end: (status, body as JSON).
    /// A connection reset or an answer cut short panics.
    fn finish(mut self) -> (u16, Value) {
        use std::io::{Read, Write};
        self.stream.write_all(&self.rest).unwrap();
        self.stream.flush().unwrap();
        let mut raw = Vec::new();
        self.stream
            .read_to_end(&mut raw)
            .unwrap_or_else(|e| panic!("the answer was cut: {e}"));
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().unwrap())
            })
            .unwrap_or_else(|| panic!("no content-length: {head}"));
        assert_eq!(body.len(), length, "an answer cut short: {text:?}");
        (
            status,
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")),
        )
    }
}

both!(sigterm_lets_requests_in_flight_finish_and_exits_0, |env| {
    open_global_limits(&env);
    let secret = token(&env, "backend", "admit");
    let mut serve = Serve::start(&env, &["--shutdown-grace", "30"]);
    let port = serve.port;
    // eight reservations in flight: their headers sent, half their bodies
    let in_flight: Vec<SlowPost> = (0..8)
        .map(|n| {
            let ai = if n % 2 == 0 { "imperium" } else { "guardian" };
            SlowPost::start(
                port,
                "/v1/reservations",
                &secret,
                &json!({"ai_type": ai, "estimated_tokens": 100 + n, "ttl_seconds": 3600}),
            )
        })
        .collect();
    // other requests come and go meanwhile (all answered before the signal: a request sent
    // as the server stops accepting may meet a closed connection, as with any server)
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..5 {
                    let a = post(
                        &serve,
                        "/v1/check",
                        &secret,
                        json!({"ai_type": "imperium", "estimated_tokens": 10}),
                    );
                    assert_eq!(a.status, 200, "{}", a.text);
                }
            });
        }
    });
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &serve.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // a moment for the signal to arrive: the server then stops accepting, and waits
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        serve.child.try_wait().unwrap(),
        None,
        "serve exited with requests in flight"
    );
    // the rest of each body: every request gets its whole answer
    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = in_flight
            .into_iter()
            .map(|p| s.spawn(move || p.finish()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (status, body) in &answers {
        assert_eq!(*status, 201, "{body}");
        assert!(
            body["reservation_id"].as_str().unwrap().starts_with("rsv_"),
            "{body}"
        );
    }
    assert_eq!(
        serve.terminate(std::time::Duration::from_secs(30)),
        Some(0),
        "{}",
        serve.log_text()
    );
    let log = serve.log_text();
    assert!(log.contains("stopping") && log.contains("stopped"), "{log}");
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("POST /v1/reservations 201"))
            .count(),
        8,
        "{log}"
    );

    // every hold written whole: the counters say what the rows say
    let held = env.scalar("SELECT CAST(COALESCE(SUM(estimated_tokens), 0) AS BIGINT) FROM token_reservations WHERE state = 'held'");
    let want: i64 = (0..8).map(|n| 100 + n).sum();
    assert_eq!(held, want);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_reservations"), 8);
    let status = env.json(&["status"]);
    assert_eq!(i(&status["global"]["reserved_tokens"]), want, "{status}");
    let per_ai: i64 = status["ai_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| i(&a["reserved_tokens"]))
        .sum();
    assert_eq!(per_ai, want, "{status}");
    for ai in ["imperium", "guardian"] {
        let rows = env.scalar(&format!(
            "SELECT CAST(COALESCE(SUM(estimated_tokens), 0) AS BIGINT) FROM token_reservations WHERE state = 'held' AND ai_type = '{ai}'"));
        assert_eq!(i(&env.status_of(ai)["reserved_tokens"]), rows, "{ai}");
    }
});

/// Limits under which only imperium's tokens bind: 10,000 a month (and day, and hour), no
/// rates, no cooldown, no concurrency limit.
fn only_tokens_bind(env: &Env) {
    open_global_limits(env);
    env.ok(&[
        "limits",
        "set",
        "--ai-type",
        "imperium",
        "--monthly",
        "10000",
        "--per-request",
        "1000",
        "--daily",
        "10000",
        "--hourly",
        "10000",
        "--rpm",
        "0",
        "--rpd",
        "0",
        "--cooldown",
        "0",
    ]);
}

const LIMIT: i64 = 10_000;
const ASK: i64 = 150;

/// 64 threads, each reserving ASK tokens twice at once (over the servers in turn), then all
/// the holds settled at once with 120 tokens each, then every thread reserving and settling
/// (with 100 to 150 tokens) until the month is spent. Never more admitted than the limit;
/// the total in the end is exactly what the settles recorded.
fn sixty_four_reservers(env: &Env, serves: &[&Serve], secret: &str) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    const THREADS: usize = 64;
    // 503 (Retry-After) means "not decided, nothing done: try again", and these clients do,
    // as the spec tells clients to. A healthy database may still see it on a loaded test
    // machine: serve gives a request 2 s to get a pool connection (commands/serve.rs), then
    // answers 503 rather than queue without bound.
    let unavailable = AtomicUsize::new(0);
    let until_decided = |path: &str, body: &Value, serve: &Serve| -> Answer {
        loop {
            let a = post(serve, path, secret, body.clone());
            if a.status != 503 {
                return a;
            }
            assert_eq!(a.header("retry-after"), Some("2"), "{}", a.text);
            unavailable.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let reserve = |serve: &Serve| {
        let a = until_decided(
            "/v1/reservations",
            &json!({"ai_type": "imperium", "estimated_tokens": ASK}),
            serve,
        );
        match a.status {
            201 => Some(a.json["reservation_id"].as_str().unwrap().to_string()),
            // the month spent, or at its 98% emergency threshold
            403 => {
                let reason = a.json["reason"].as_str().unwrap();
                assert!(
                    ["monthly_limit_exceeded", "emergency_shutdown"].contains(&reason),
                    "{}",
                    a.text
                );
                None
            }
            _ => panic!("{}: {}", a.status, a.text),
        }
    };
    let settle = |serve: &Serve, id: &str, tokens: i64| {
        let a = until_decided(
            &format!("/v1/reservations/{id}/settle"),
            &json!({"tokens_in": tokens - 20, "tokens_out": 20}),
            serve,
        );
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.json["reservation_was"], "held", "{}", a.text);
    };
    let (reserve, settle) = (&reserve, &settle);

    // all at once: the holds never add up to more than the limit
    let barrier = Arc::new(Barrier::new(THREADS));
    let held: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let barrier = barrier.clone();
                s.spawn(move || {
                    let serve = serves[t % serves.len()];
                    barrier.wait();
                    (0..2).filter_map(|_| reserve(serve)).collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let admitted = held.len() as i64;
    assert!(
        admitted * ASK <= LIMIT,
        "{admitted} holds of {ASK} admitted under {LIMIT}"
    );
    // one at a time would admit exactly as many: deciding together loses no room either
    // (unless a request timed out: its hold, given back, may have crowded out another)
    if unavailable.load(Ordering::Relaxed) == 0 {
        assert_eq!(admitted, LIMIT / ASK);
    }
    assert_eq!(
        i(&env.status_of("imperium")["reserved_tokens"]),
        admitted * ASK
    );
    assert_eq!(env.scalar("SELECT CAST(COALESCE(SUM(estimated_tokens), 0) AS BIGINT) FROM token_reservations WHERE state = 'held'"), admitted * ASK);

    // all settled at once, for less than they held
    std::thread::scope(|s| {
        for (n, id) in held.iter().enumerate() {
            s.spawn(move || settle(serves[n % serves.len()], id, 120));
        }
    });
    let after = env.status_of("imperium");
    assert_eq!(i(&after["total_tokens"]), admitted * 120, "{after}");
    assert_eq!(i(&after["reserved_tokens"]), 0, "{after}");
    assert_eq!(i(&after["request_count"]), admitted, "{after}");

    // reserve and settle until the month is spent: the room the settles gave back is used,
    // never more
    let barrier = Arc::new(Barrier::new(THREADS));
    let settled: i64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let barrier = barrier.clone();
                s.spawn(move || {
                    let serve = serves[t % serves.len()];
                    barrier.wait();
                    let mut sum = 0;
                    let mut n = 0;
                    while let Some(id) = reserve(serve) {
                        let tokens = 100 + ((t as i64 * 7 + n) % 51);
                        settle(serve, &id, tokens);
                        sum += tokens;
                        n += 1;
                    }
                    sum
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let end = env.status_of("imperium");
    let total = i(&end["total_tokens"]);
    assert_eq!(total, admitted * 120 + settled, "{end}");
    assert!(total <= LIMIT, "{end}");
    // the last denial came when no other hold was left (every other thread had had its
    // last one): at or above the emergency threshold, or with no room for one more
    assert!(total >= LIMIT * 98 / 100, "{end}");
    env.json_code(
        3,
        &[
            "check",
            "--ai-type",
            "imperium",
            "--estimated-tokens",
            &ASK.to_string(),
        ],
    );
    assert_eq!(i(&end["reserved_tokens"]), 0, "{end}");
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM token_reservations WHERE state = 'held'"),
        0
    );
    let logged = env.scalar("SELECT CAST(COALESCE(SUM(total_tokens), 0) AS BIGINT) FROM token_usage_logs WHERE ai_type = 'imperium'");
    assert_eq!(logged, total);
}

both!(
    sixty_four_concurrent_reservers_never_pass_the_limit,
    |env| {
        only_tokens_bind(&env);
        let secret = token(&env, "backend", "admit");
        let serve = Serve::start(&env, &[]);
        sixty_four_reservers(&env, &[&serve], &secret);
    }
);

#[test]
fn two_servers_on_one_postgres_database_never_pass_the_limit() {
    let env = Env::new(Backend::Postgres);
    only_tokens_bind(&env);
    let secret = token(&env, "backend", "admit");
    let a = Serve::start(&env, &[]);
    let b = Serve::start(&env, &[]);
    sixty_four_reservers(&env, &[&a, &b], &secret);
}

/// Another program holding the admission lock (SQLite: the write lock, `BEGIN IMMEDIATE`;
/// PostgreSQL: the advisory lock every admission writer takes first) until the returned
/// sender is used or dropped; the thread to join afterwards.
fn hold_admission_lock(env: &Env) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    use sqlx::{Connection, Executor};
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (backend, url) = (env.backend, env.url.clone());
    let holder = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let wait = || tokio::task::spawn_blocking(move || release_rx.recv());
            match backend {
                Backend::Sqlite => {
                    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                    c.execute("BEGIN IMMEDIATE").await.unwrap();
                    ready_tx.send(()).unwrap();
                    let _ = wait().await;
                    c.execute("ROLLBACK").await.unwrap();
                }
                Backend::Postgres => {
                    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                    c.execute("BEGIN").await.unwrap();
                    // "tokenctl" in ASCII, as src/db/postgres.rs has it
                    c.execute("SELECT pg_advisory_xact_lock(8390042714202403948)")
                        .await
                        .unwrap();
                    ready_tx.send(()).unwrap();
                    let _ = wait().await;
                    c.execute("ROLLBACK").await.unwrap();
                }
            }
        });
    });
    ready_rx.recv().expect("the lock holder failed");
    (release_tx, holder)
}

both!(
    a_request_past_its_deadline_gets_503_and_leaves_nothing,
    |env| {
        open_global_limits(&env);
        env.record("imperium", 10, 10);
        let secret = token(&env, "backend", "admit");
        let serve = Serve::start(&env, &["--request-timeout", "1"]);
        let before = snapshot(&env);

        // the admission lock is held elsewhere for longer than the deadline: 503 with
        // Retry-After, never an admission without the database
        let (release, holder) = hold_admission_lock(&env);
        let a = post(
            &serve,
            "/v1/reservations",
            &secret,
            json!({"ai_type": "imperium", "estimated_tokens": 100}),
        );
        assert_error(&a, 503, "unavailable");
        assert_eq!(a.header("retry-after"), Some("2"), "{:?}", a.headers);
        // a usage queued behind it: its deadline passes before its turn, so it is never decided
        let usage = json!({"ai_type": "imperium", "tokens_in": 40, "tokens_out": 2, "request_id": "req-late"});
        let a = post(&serve, "/v1/usage", &secret, usage.clone());
        assert_error(&a, 503, "unavailable");
        assert_eq!(a.header("retry-after"), Some("2"), "{:?}", a.headers);
        release.send(()).unwrap();
        holder.join().unwrap();

        // the next reservation is decided after the one that timed out (one deciding task, in
        // order): by then that hold, which nobody heard of, has been given back
        let a = post(
            &serve,
            "/v1/reservations",
            &secret,
            json!({"ai_type": "imperium", "estimated_tokens": 70}),
        );
        assert_eq!(a.status, 201, "{}", a.text);
        assert_eq!(
            env.scalar("SELECT COUNT(*) FROM token_reservations WHERE state = 'held'"),
            1,
            "reserved_tokens {}, reservations {}; serve log:\n{}",
            env.status_of("imperium")["reserved_tokens"],
            env.scalar("SELECT COUNT(*) FROM token_reservations"),
            serve.log_text()
        );
        assert_eq!(env.status_of("imperium")["reserved_tokens"], 70);
        // the usage that timed out was not recorded: sent again, it is new
        assert_eq!(
            env.scalar("SELECT COUNT(*) FROM token_usage_logs"),
            before.1
        );
        assert_eq!(
            env.json(&["status"])["global"]["total_tokens"],
            before.0["global"]["total_tokens"]
        );
        let a = post(&serve, "/v1/usage", &secret, usage);
        assert_eq!(a.status, 201, "{}", a.text);
        assert_eq!(a.json["duplicate"], false);
        assert_eq!(env.status_of("imperium")["total_tokens"], 20 + 42);
    }
);

/// A usage whose own batch waits for the admission lock past the request's deadline: the
/// client is told 503 (try again), so the batch must leave it undone when the lock frees —
/// else a retry without a request id would count it twice.
fn a_usage_answered_503_is_not_recorded(env: &Env) {
    open_global_limits(env);
    env.record("imperium", 10, 10);
    let secret = token(env, "backend", "admit");
    let serve = Serve::start(env, &["--request-timeout", "1"]);
    let (release, holder) = hold_admission_lock(env);
    let usage = json!({"ai_type": "imperium", "tokens_in": 40, "tokens_out": 2});
    let a = post(&serve, "/v1/usage", &secret, usage.clone());
    assert_error(&a, 503, "unavailable");
    release.send(()).unwrap();
    holder.join().unwrap();
    // the client does as told: it sends it again
    let a = post(&serve, "/v1/usage", &secret, usage);
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(
        env.status_of("imperium")["total_tokens"],
        20 + 42,
        "the usage counted twice"
    );
}

#[test]
fn a_usage_answered_503_is_not_recorded_sqlite() {
    a_usage_answered_503_is_not_recorded(&Env::new(Backend::Sqlite));
}

#[test]
fn a_usage_answered_503_is_not_recorded_postgres() {
    a_usage_answered_503_is_not_recorded(&Env::new(Backend::Postgres));
}

both!(usage_analytics_quota_and_csv_match_the_cli, |env| {
    open_global_limits(&env);
    env.ok(&[
        "prices",
        "set",
        "--model",
        "milli",
        "--input-per-mtok",
        "1000",
        "--output-per-mtok",
        "1000",
    ]);
    env.ok(&[
        "limits",
        "set",
        "--user",
        "alice",
        "--daily-cost-usd",
        "0.05",
        "--monthly",
        "5000",
    ]);
    for (user, model, tin) in [
        ("alice", "milli", "20"),
        ("bob", "milli", "5"),
        ("alice", "llama-x", "7"),
    ] {
        env.ok(&[
            "record",
            "--ai-type",
            "imperium",
            "--user-id",
            user,
            "--model",
            model,
            "--tokens-in",
            tin,
            "--tokens-out",
            "0",
        ]);
    }
    let serve = Serve::start(&env, &[]);
    let read = token(&env, "dash", "read");
    let admit = token(&env, "backend", "admit");
    let a = get(&serve, "/api/usage/analytics?days=7", &read);
    assert_doc(&a, 200, &env.json(&["report", "--days", "7"]));
    assert_eq!(
        a.json["totals"]["cost_complete"], false,
        "llama-x has no price"
    );
    let a = get(
        &serve,
        "/api/usage/analytics?since=2026-11-01&until=2026-11-23&user_id=alice",
        &read,
    );
    assert_doc(
        &a,
        200,
        &env.json(&[
            "report",
            "--since",
            "2026-11-01",
            "--until",
            "2026-11-23",
            "--user-id",
            "alice",
        ]),
    );
    let q = get(&serve, "/api/usage/quota/alice", &read);
    assert_doc(&q, 200, &env.json(&["quota", "--user-id", "alice"]));
    assert_eq!(
        i(&q.json["monthly_tokens_remaining"]),
        5000 - 27,
        "{}",
        q.text
    );
    let csv = get(&serve, "/api/usage/export.csv?days=7", &read);
    assert_eq!(csv.status, 200);
    assert!(
        csv.header("content-type").unwrap().starts_with("text/csv"),
        "{:?}",
        csv.headers
    );
    assert!(csv
        .header("content-disposition")
        .unwrap()
        .contains("tokenctl-usage-2026-11-17-2026-11-23.csv"));
    assert_eq!(csv.text, env.ok(&["report", "--days", "7", "--csv"]));
    // bad input is a 400 with a JSON error; the read scope is needed
    let bad = get(
        &serve,
        "/api/usage/analytics?days=7&since=2026-11-01",
        &read,
    );
    assert_eq!(
        (bad.status, bad.json["code"].as_str()),
        (400, Some("invalid_input")),
        "{}",
        bad.text
    );
    assert_eq!(
        call(&serve, "GET", "/api/usage/quota/alice", None, None).status,
        401
    );
    // user_id and model on admission: alice spent $0.02, and llama-x's 7 tokens count at
    // the dearest price known (milli's $0.001 a token): $0.023 left today
    let body = json!({"ai_type": "imperium", "estimated_tokens": 31, "user_id": "alice", "model": "milli"});
    let d = post(&serve, "/v1/check", &admit, body.clone());
    assert_eq!(d.json["cost_usage_usd"].as_f64(), Some(0.027), "{}", d.text);
    assert_eq!(d.status, 429, "{}", d.text);
    assert_eq!(
        (d.json["reason"].as_str(), d.json["scope"].as_str()),
        (Some("daily_cost_limit_exceeded"), Some("user"))
    );
    assert_doc(
        &d,
        429,
        &env.json_code(
            3,
            &[
                "check",
                "--ai-type",
                "imperium",
                "--estimated-tokens",
                "31",
                "--user-id",
                "alice",
                "--model",
                "milli",
            ],
        ),
    );
    let held = post(
        &serve,
        "/v1/reservations",
        &admit,
        json!({"ai_type": "imperium", "estimated_tokens": 23, "user_id": "alice", "model": "milli"}),
    );
    assert_eq!(held.status, 201, "{}", held.text);
    assert_eq!(held.json["estimated_cost_usd"].as_f64(), Some(0.023));
    let id = held.json["reservation_id"].as_str().unwrap();
    let settled = post(
        &serve,
        &format!("/v1/reservations/{id}/settle"),
        &admit,
        json!({"tokens_in": 10, "tokens_out": 5, "model": "milli", "cache_read_tokens": 2}),
    );
    assert_eq!(settled.status, 200, "{}", settled.text);
    assert_eq!(
        settled.json["cost_usd"].as_f64(),
        Some(0.017),
        "{}",
        settled.text
    );
    assert_eq!(settled.json["user_id"], "alice");
});
