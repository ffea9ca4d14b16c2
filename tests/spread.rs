//! Issue 6: request rates, cooldown, concurrency, pacing and `distribution`, on SQLite and
//! PostgreSQL.

mod common;

use std::process::{Child, Stdio};

use common::Env;
use serde_json::Value;

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// Only the limit under test: token windows wide open, other rate limits off.
fn open_up(env: &Env) {
    env.ok(&[
        "limits",
        "set",
        "--daily",
        "1000000",
        "--hourly",
        "1000000",
        "--rpm",
        "0",
        "--rpd",
        "0",
        "--monthly",
        "1000000",
    ]);
    env.ok(&[
        "limits",
        "set",
        "--global",
        "--monthly",
        "10000000",
        "--daily",
        "1000000",
        "--hourly",
        "1000000",
        "--rpm",
        "0",
        "--rpd",
        "0",
        "--max-concurrent",
        "0",
    ]);
}

fn reserve(env: &Env, ai: &str) -> Value {
    let out = env.run(&[
        "reserve",
        "--ai-type",
        ai,
        "--estimated-tokens",
        "10",
        "--json",
    ]);
    serde_json::from_slice(&out.stdout).unwrap()
}

both!(requests_per_minute, |env| {
    open_up(&env);
    env.ok(&["limits", "set", "--ai-type", "a", "--rpm", "3"]);
    for _ in 0..3 {
        assert_eq!(reserve(&env, "a")["allowed"], true);
    }
    let d = env.json_code(
        3,
        &["reserve", "--ai-type", "a", "--estimated-tokens", "10"],
    );
    assert_eq!(d["reason"], "rpm_limit_exceeded");
    assert_eq!(d["retry_after"], "2026-11-23T10:16:00Z");
    assert_eq!((i(&d["limit"]), i(&d["usage"])), (3, 3));
    assert_eq!(
        reserve(&env, "b")["allowed"],
        true,
        "another AI type has its own count"
    );
    let next = env.at("2026-11-23T10:16:00Z");
    assert_eq!(
        next.json(&["reserve", "--ai-type", "a", "--estimated-tokens", "10"])["allowed"],
        true
    );
    // a record without a reservation is a request too; the global rpm counts every AI type
    env.ok(&["limits", "set", "--global", "--rpm", "6"]);
    next.record("c", 1, 1);
    next.record("d", 1, 1);
    next.reserve_ok_n("e", 3);
    let d = next.json_code(3, &["check", "--ai-type", "f", "--estimated-tokens", "1"]);
    assert_eq!(
        (d["reason"].as_str(), d["scope"].as_str()),
        (Some("rpm_limit_exceeded"), Some("global"))
    );
});

both!(requests_per_day, |env| {
    open_up(&env);
    env.ok(&["limits", "set", "--ai-type", "a", "--rpd", "4"]);
    for h in ["01", "05", "09", "13"] {
        env.at(&format!("2026-11-23T{h}:00:00Z"))
            .record("a", 10, 10);
    }
    let d = env.json_code(3, &["check", "--ai-type", "a", "--estimated-tokens", "10"]);
    assert_eq!(d["reason"], "rpd_limit_exceeded");
    assert_eq!(d["retry_after"], "2026-11-24T00:00:00Z");
    assert_eq!(
        env.at("2026-11-24T00:00:00Z").json(&[
            "check",
            "--ai-type",
            "a",
            "--estimated-tokens",
            "10"
        ])["allowed"],
        true
    );
    // settling a reservation does not count its request twice
    env.ok(&["limits", "set", "--ai-type", "b", "--rpd", "2"]);
    let r = reserve(&env, "b");
    let id = r["reservation_id"].as_str().unwrap();
    env.ok(&[
        "record",
        "--ai-type",
        "b",
        "--tokens-in",
        "5",
        "--tokens-out",
        "5",
        "--reservation",
        id,
    ]);
    assert_eq!(
        env.json(&["check", "--ai-type", "b", "--estimated-tokens", "10"])["allowed"],
        true
    );
});

both!(cooldown_between_requests, |env| {
    open_up(&env);
    env.ok(&["limits", "set", "--ai-type", "a", "--cooldown", "300"]);
    env.at("2026-11-23T10:00:00Z").record("a", 10, 10);
    let d = env.at("2026-11-23T10:02:00Z").json_code(
        3,
        &["reserve", "--ai-type", "a", "--estimated-tokens", "10"],
    );
    assert_eq!(d["reason"], "cooldown_active");
    assert_eq!(d["retry_after"], "2026-11-23T10:05:00Z");
    assert!(d["message"]
        .as_str()
        .unwrap()
        .contains("last request started 120 s ago, cooldown=300 s"));
    assert_eq!(
        env.at("2026-11-23T10:02:00Z").json(&[
            "check",
            "--ai-type",
            "b",
            "--estimated-tokens",
            "10"
        ])["allowed"],
        true
    );
    let later = env.at("2026-11-23T10:05:00Z");
    assert_eq!(
        later.json(&["reserve", "--ai-type", "a", "--estimated-tokens", "10"])["allowed"],
        true
    );
    // the reservation started a request: the cooldown runs again
    assert_eq!(
        later.json_code(3, &["check", "--ai-type", "a", "--estimated-tokens", "10"])["reason"],
        "cooldown_active"
    );
    // a global cooldown spaces the requests of all AI types together
    env.ok(&["limits", "set", "--global", "--cooldown", "60"]);
    let g = env
        .at("2026-11-23T10:05:30Z")
        .json_code(3, &["check", "--ai-type", "b", "--estimated-tokens", "10"]);
    assert_eq!(
        (g["reason"].as_str(), g["scope"].as_str()),
        (Some("cooldown_active"), Some("global"))
    );
    assert_eq!(g["retry_after"], "2026-11-23T10:06:00Z");
    assert_eq!(
        env.at("2026-11-23T10:06:00Z").json(&[
            "check",
            "--ai-type",
            "b",
            "--estimated-tokens",
            "10"
        ])["allowed"],
        true
    );
});

both!(requests_in_flight, |env| {
    open_up(&env);
    env.ok(&["limits", "set", "--global", "--max-concurrent", "2"]);
    let first = env.json(&[
        "reserve",
        "--ai-type",
        "a",
        "--estimated-tokens",
        "10",
        "--ttl",
        "5m",
    ]);
    env.json(&[
        "reserve",
        "--ai-type",
        "b",
        "--estimated-tokens",
        "10",
        "--ttl",
        "10m",
    ]);
    let d = env.json_code(
        3,
        &["reserve", "--ai-type", "c", "--estimated-tokens", "10"],
    );
    assert_eq!(
        (d["reason"].as_str(), d["scope"].as_str()),
        (Some("concurrency_limit_exceeded"), Some("global"))
    );
    assert_eq!(
        d["retry_after"], "2026-11-23T10:20:00Z",
        "when the first hold expires"
    );
    // a settle ends the flight
    env.ok(&[
        "record",
        "--ai-type",
        "a",
        "--tokens-in",
        "5",
        "--tokens-out",
        "5",
        "--reservation",
        first["reservation_id"].as_str().unwrap(),
    ]);
    let third = env.json(&["reserve", "--ai-type", "c", "--estimated-tokens", "10"]);
    assert_eq!(third["allowed"], true);
    // and so does expiry
    assert_eq!(
        env.json_code(3, &["check", "--ai-type", "d", "--estimated-tokens", "10"])["allowed"],
        false
    );
    assert_eq!(
        env.at("2026-11-23T10:26:00Z").json(&[
            "check",
            "--ai-type",
            "d",
            "--estimated-tokens",
            "10"
        ])["allowed"],
        true
    );
    // per AI type
    env.ok(&["limits", "set", "--global", "--max-concurrent", "0"]);
    env.ok(&["limits", "set", "--ai-type", "e", "--max-concurrent", "1"]);
    env.json(&["reserve", "--ai-type", "e", "--estimated-tokens", "10"]);
    let d = env.json_code(
        3,
        &["reserve", "--ai-type", "e", "--estimated-tokens", "10"],
    );
    assert_eq!(
        (d["reason"].as_str(), d["scope"].as_str()),
        (Some("concurrency_limit_exceeded"), Some("ai_type"))
    );
});

both!(thirty_two_reservers_never_exceed_max_concurrent, |env| {
    open_up(&env);
    env.ok(&["limits", "set", "--global", "--max-concurrent", "5"]);
    let runs: Vec<Child> = (0..32)
        .map(|n| {
            let ai = format!("agent-{}", n % 4);
            env.cmd(&[
                "reserve",
                "--ai-type",
                &ai,
                "--estimated-tokens",
                "10",
                "--json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut granted = 0;
    for child in runs {
        let out = child.wait_with_output().unwrap();
        match out.status.code() {
            Some(0) => granted += 1,
            Some(3) => {
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(v["reason"], "concurrency_limit_exceeded");
            }
            other => panic!("exit {other:?}: {}", String::from_utf8_lossy(&out.stderr)),
        }
    }
    assert_eq!(granted, 5);
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM token_reservations WHERE state = 'held'"),
        5
    );
    assert_eq!(
        i(&env.json(&["distribution"])["rate_limiting_status"]["active_requests"]),
        5
    );
});

both!(pacing_on_known_dates, |env| {
    open_up(&env);
    env.ok(&[
        "limits",
        "set",
        "--ai-type",
        "a",
        "--monthly",
        "140000",
        "--per-request",
        "10000",
        "--pacing",
        "on",
    ]);
    // 1 November 00:00: only the allowance, one day's share (140,000 / 30 = 4,667)
    let start = env.at("2026-11-01T00:00:00Z");
    assert_eq!(
        start.json(&["check", "--ai-type", "a", "--estimated-tokens", "4667"])["allowed"],
        true
    );
    let d = start.json_code(
        3,
        &["check", "--ai-type", "a", "--estimated-tokens", "4668"],
    );
    assert_eq!(d["reason"], "pacing_limit_exceeded");
    assert_eq!(i(&d["limit"]), 4_667);
    // a token is paced in every 18.5 s (140,000 per 2,592,000 s)
    assert_eq!(d["retry_after"], "2026-11-01T00:00:19Z");
    // 11 November 00:00: a third of the month, 46,666 + 4,667 = 51,333 allowed
    let mid = env.at("2026-11-11T00:00:00Z");
    mid.record("a", 51_000, 0);
    assert_eq!(
        mid.json(&["check", "--ai-type", "a", "--estimated-tokens", "333"])["allowed"],
        true
    );
    let d = mid.json_code(3, &["check", "--ai-type", "a", "--estimated-tokens", "500"]);
    assert_eq!(d["reason"], "pacing_limit_exceeded");
    assert_eq!(i(&d["limit"]), 51_333);
    // 51,500 is allowed once 46,833 is paced: 867,080 s into November
    assert_eq!(d["retry_after"], "2026-11-11T00:51:20Z");
    assert_eq!(
        env.at("2026-11-11T00:51:19Z")
            .json_code(3, &["check", "--ai-type", "a", "--estimated-tokens", "500"])["reason"],
        "pacing_limit_exceeded"
    );
    assert_eq!(
        env.at("2026-11-11T00:51:20Z").json(&[
            "check",
            "--ai-type",
            "a",
            "--estimated-tokens",
            "500"
        ])["allowed"],
        true
    );
    // another AI type without pacing is not held back
    assert_eq!(
        mid.json(&["check", "--ai-type", "b", "--estimated-tokens", "500"])["allowed"],
        true
    );
    let s = mid.json(&["distribution", "--ai-type", "a"]);
    assert_eq!(s["rate_limiting_status"]["pacing"], true);
    assert_eq!(i(&s["rate_limiting_status"]["paced_allowance_now"]), 51_333);
});

both!(distribution_on_known_data, |env| {
    open_up(&env);
    let usage = [
        ("2026-11-01T09:10:00Z", "a", 100),
        ("2026-11-01T14:10:00Z", "a", 100),
        ("2026-11-02T09:10:00Z", "a", 400),
        ("2026-11-05T09:10:00Z", "a", 500),
        ("2026-11-05T09:40:00Z", "a", 500),
        ("2026-11-05T15:00:00Z", "b", 50),
    ];
    for (at, ai, tokens) in usage {
        env.at(at).record(ai, tokens, 0);
    }
    let now = env.at("2026-11-05T16:00:00Z");
    let all = now.json(&["distribution"]);
    assert_eq!(
        (all["month"].as_str(), all["day"].as_str()),
        (Some("2026-11"), Some("2026-11-05"))
    );
    let m = &all["monthly_distribution"];
    assert_eq!(i(&m["total_tokens"]), 1_650);
    assert_eq!(i(&m["days_with_usage"]), 3);
    assert_eq!(m["avg_daily_usage"].as_f64(), Some(550.0));
    assert_eq!(
        (i(&m["max_daily_usage"]), i(&m["min_daily_usage"])),
        (1_050, 200)
    );
    // Gini of 200, 400, 0, 0, 1,050 (days 1–5, idle days included) × 100
    assert_eq!(m["usage_spread_percentage"].as_f64(), Some(60.61));
    assert_eq!(i(&m["days_elapsed"]), 5);
    let days: Vec<(String, i64, i64)> = m["daily_usage_data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap().to_string(),
                i(&d["tokens"]),
                i(&d["requests"]),
            )
        })
        .collect();
    assert_eq!(
        days,
        vec![
            ("2026-11-01".into(), 200, 2),
            ("2026-11-02".into(), 400, 1),
            ("2026-11-05".into(), 1_050, 3)
        ]
    );
    let d = &all["daily_distribution"];
    assert_eq!(
        (i(&d["total_tokens"]), i(&d["hours_with_usage"])),
        (1_050, 2)
    );
    assert_eq!(d["avg_hourly_usage"].as_f64(), Some(525.0));
    let hours: Vec<(i64, i64, i64)> = d["hourly_usage_data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (i(&h["hour"]), i(&h["tokens"]), i(&h["requests"])))
        .collect();
    assert_eq!(hours, vec![(9, 1_000, 2), (15, 50, 1)]);
    let r = &all["rate_limiting_status"];
    assert_eq!(r["last_ai_requests"]["a"], "2026-11-05T09:40:00Z");
    assert_eq!(r["last_ai_requests"]["b"], "2026-11-05T15:00:00Z");
    // one AI type, another day
    let b = now.json(&["distribution", "--ai-type", "b", "--day", "2026-11-05"]);
    assert_eq!(i(&b["monthly_distribution"]["total_tokens"]), 50);
    // all of b's usage on one of five days: 4/5
    assert_eq!(
        b["monthly_distribution"]["usage_spread_percentage"].as_f64(),
        Some(80.0)
    );
    assert_eq!(
        b["rate_limiting_status"]["last_ai_requests"]
            .as_object()
            .unwrap()
            .len(),
        1
    );
    let day1 = now.json(&["distribution", "--ai-type", "a", "--day", "2026-11-01"]);
    let hours: Vec<i64> = day1["daily_distribution"]["hourly_usage_data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| i(&h["hour"]))
        .collect();
    assert_eq!(hours, vec![9, 14]);
    // a past month, and the bar chart
    let oct = now.json(&["distribution", "--month", "2026-10"]);
    assert_eq!(
        (
            oct["day"].as_str(),
            i(&oct["monthly_distribution"]["total_tokens"])
        ),
        (Some("2026-10-31"), 0)
    );
    let chart = now.ok(&["distribution"]);
    assert!(
        chart.contains("2026-11-05  █") && chart.contains("spread 60.61%"),
        "{chart}"
    );
    // a reservation alone is a request, not usage
    now.json(&["reserve", "--ai-type", "c", "--estimated-tokens", "10"]);
    let c = now.json(&["distribution", "--ai-type", "c"]);
    assert_eq!(i(&c["monthly_distribution"]["days_with_usage"]), 0);
    assert_eq!(i(&c["rate_limiting_status"]["active_requests"]), 1);
    let (_, err) = env.expect(
        2,
        &["distribution", "--month", "2026-10", "--day", "2026-11-01"],
    );
    assert!(err.contains("is not in --month"), "{err}");
    let (_, err) = env.expect(2, &["distribution", "--day", "2026-11-31"]);
    assert!(err.contains("YYYY-MM-DD"), "{err}");
});
