//! Issue 3: record, check, reserve/release, status, limits, prices — through the binary, on
//! SQLite and PostgreSQL.

mod common;

use common::{Backend, Env};
use serde_json::Value;

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

both!(status_of_an_empty_database, |env| {
    let s = env.json(&["status"]);
    assert_eq!(s["month"], "2026-11");
    assert_eq!(i(&s["global"]["enforced_limit"]), 140_000);
    assert_eq!(i(&s["global"]["total_tokens"]), 0);
    assert_eq!(s["global"]["level"], "ok");
    assert_eq!(s["ai_types"].as_array().unwrap().len(), 0);
    let table = env.ok(&["status"]);
    assert!(table.contains("No usage recorded for 2026-11"), "{table}");
});

#[test]
fn a_newcomer_runs_status_with_no_setup() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokenctl"))
        .arg("status")
        .env_remove("TOKENCTL_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("data/tokenctl/tokenctl.db").exists());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokenctl"))
        .arg("status")
        .env_remove("TOKENCTL_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", dir.path().join("home"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(dir
        .path()
        .join("home/.local/share/tokenctl/tokenctl.db")
        .exists());
}

both!(record_counts_once_per_request_id, |env| {
    let args = [
        "record",
        "--ai-type",
        "imperium",
        "--tokens-in",
        "1000",
        "--tokens-out",
        "500",
        "--model",
        "claude-3-5-sonnet-20241022",
        "--request-id",
        "req-1",
    ];
    let first = env.json(&args);
    assert_eq!(first["duplicate"], false);
    assert_eq!(i(&first["total_tokens"]), 1500);
    assert!(
        (first["cost_usd"].as_f64().unwrap() - 0.0105).abs() < 1e-9,
        "{first}"
    );
    assert_eq!(first["month"], "2026-11");
    assert_eq!(first["level"], "ok");
    let again = env.json(&args);
    assert_eq!(again["duplicate"], true);
    assert_eq!(i(&again["total_tokens"]), 1500);
    let s = env.status_of("imperium");
    assert_eq!(i(&s["total_tokens"]), 1500);
    assert_eq!(i(&s["request_count"]), 1);
    assert_eq!(i(&s["today_tokens"]), 1500);
    assert_eq!(i(&s["hour_tokens"]), 1500);
    assert!((s["cost_usd"].as_f64().unwrap() - 0.0105).abs() < 1e-9);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_logs"), 1);
    let text = env.ok(&[
        "record",
        "--ai-type",
        "imperium",
        "--tokens-in",
        "1",
        "--tokens-out",
        "1",
        "--request-id",
        "req-1",
    ]);
    assert!(text.contains("already recorded"), "{text}");
});

both!(unknown_model_cost_is_unknown_and_says_so, |env| {
    let (out, err) = env.expect(
        0,
        &[
            "record",
            "--ai-type",
            "a",
            "--tokens-in",
            "10",
            "--tokens-out",
            "5",
            "--model",
            "llama-9",
            "--json",
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["cost_usd"],
        Value::Null,
        "unknown, never a silent $0: {v}"
    );
    assert_eq!(v["priced"], false);
    assert!(err.contains("no price known for model 'llama-9'"), "{err}");
});

both!(failed_requests_are_logged_with_their_error, |env| {
    env.ok(&[
        "record",
        "--ai-type",
        "guardian",
        "--tokens-in",
        "40",
        "--tokens-out",
        "0",
        "--failed",
        "--error",
        "overloaded_error: 529",
    ]);
    assert_eq!(
        env.text("SELECT error_message FROM token_usage_logs")
            .as_deref(),
        Some("overloaded_error: 529")
    );
    let success = match env.backend {
        Backend::Sqlite => env.scalar("SELECT success FROM token_usage_logs"),
        Backend::Postgres => env.scalar("SELECT success::int::bigint FROM token_usage_logs"),
    };
    assert_eq!(success, 0);
    assert_eq!(i(&env.status_of("guardian")["total_tokens"]), 40);
});

both!(the_1073_token_request_is_denied_with_both_numbers, |env| {
    let (out, _) = env.expect(
        3,
        &[
            "check",
            "--ai-type",
            "imperium",
            "--estimated-tokens",
            "1073",
        ],
    );
    assert!(out.contains("estimated_tokens=1,073"), "{out}");
    assert!(out.contains("request_limit=1,000"), "{out}");
    let d = env.json_code(
        3,
        &[
            "check",
            "--ai-type",
            "imperium",
            "--estimated-tokens",
            "1073",
        ],
    );
    assert_eq!(d["allowed"], false);
    assert_eq!(d["reason"], "request_limit_exceeded");
    assert_eq!(i(&d["estimated_tokens"]), 1073);
    assert_eq!(i(&d["request_limit"]), 1000);
    assert_eq!(d["retry_after"], Value::Null);
    let ok = env.json(&[
        "check",
        "--ai-type",
        "imperium",
        "--estimated-tokens",
        "1000",
    ]);
    assert_eq!(ok["allowed"], true);
    assert_eq!(ok["reason"], "ok");
    // a global ceiling applies to every AI type, whatever its own limit
    env.ok(&["limits", "set", "--global", "--per-request", "800"]);
    let d = env.json_code(
        3,
        &[
            "check",
            "--ai-type",
            "imperium",
            "--estimated-tokens",
            "900",
        ],
    );
    assert_eq!(
        (d["reason"].as_str(), d["scope"].as_str(), i(&d["limit"])),
        (Some("request_limit_exceeded"), Some("global"), 800)
    );
    env.ok(&["limits", "set", "--global", "--per-request", "1000000"]);
    // a larger per-request limit for one AI type lets it through
    env.ok(&[
        "limits",
        "set",
        "--ai-type",
        "imperium",
        "--per-request",
        "2000",
    ]);
    assert_eq!(
        env.json(&[
            "check",
            "--ai-type",
            "imperium",
            "--estimated-tokens",
            "1073"
        ])["allowed"],
        true
    );
    assert_eq!(
        env.json_code(
            3,
            &[
                "check",
                "--ai-type",
                "guardian",
                "--estimated-tokens",
                "1073"
            ]
        )["allowed"],
        false
    );
});

both!(levels_at_each_threshold, |env| {
    // record never refuses: it records what happened
    let steps = [
        (111_999, "ok", "active"),
        (1, "warning", "warning"),
        (20_999, "warning", "warning"),
        (1, "critical", "critical"),
        (4_199, "critical", "critical"),
        (1, "emergency", "emergency"),
    ];
    for (tokens, level, status) in steps {
        let r = env.record("imperium", tokens, 0);
        assert_eq!(r["level"], level, "after +{tokens}: {r}");
        let s = env.status_of("imperium");
        assert_eq!(s["level"], level);
        assert_eq!(s["status"], status);
    }
    assert_eq!(i(&env.status_of("imperium")["total_tokens"]), 137_200);
    let d = env.json_code(
        3,
        &["check", "--ai-type", "imperium", "--estimated-tokens", "1"],
    );
    assert_eq!(d["reason"], "emergency_shutdown");
    assert_eq!(d["retry_after"], "2026-12-01T00:00:00Z");
    // the global total is also at 98%: every AI type is denied
    let g = env.json_code(
        3,
        &["check", "--ai-type", "guardian", "--estimated-tokens", "1"],
    );
    assert_eq!(g["reason"], "emergency_shutdown");
    assert_eq!(g["scope"], "global");
    assert_eq!(env.json(&["status"])["global"]["level"], "emergency");
});

both!(ai_type_emergency_denies_only_that_ai_type, |env| {
    env.ok(&[
        "limits",
        "set",
        "--ai-type",
        "imperium",
        "--monthly",
        "10000",
    ]);
    env.at("2026-11-20T10:00:00Z").record("imperium", 9_800, 0);
    assert_eq!(
        env.json_code(
            3,
            &["check", "--ai-type", "imperium", "--estimated-tokens", "1"]
        )["reason"],
        "emergency_shutdown"
    );
    assert_eq!(
        env.json(&[
            "check",
            "--ai-type",
            "guardian",
            "--estimated-tokens",
            "500"
        ])["allowed"],
        true
    );
});

both!(monthly_daily_hourly_limits_deny_with_retry_after, |env| {
    env.ok(&[
        "limits",
        "set",
        "--ai-type",
        "a",
        "--monthly",
        "5000",
        "--daily",
        "3000",
        "--hourly",
        "1200",
    ]);
    env.record("a", 1_000, 0);
    let d = env.json_code(3, &["check", "--ai-type", "a", "--estimated-tokens", "300"]);
    assert_eq!(d["reason"], "hourly_limit_exceeded");
    assert_eq!(d["retry_after"], "2026-11-23T11:00:00Z");
    assert_eq!(i(&d["hourly_usage"]), 1000);
    let later = env.at("2026-11-23T14:00:00Z");
    later.record("a", 1_900, 0);
    let d = later.json_code(3, &["check", "--ai-type", "a", "--estimated-tokens", "200"]);
    assert_eq!(d["reason"], "daily_limit_exceeded");
    assert_eq!(d["retry_after"], "2026-11-24T00:00:00Z");
    let next_day = env.at("2026-11-24T09:00:00Z");
    next_day.record("a", 1_000, 0);
    next_day.at("2026-11-25T09:00:00Z").record("a", 900, 0);
    let d = next_day
        .at("2026-11-26T09:00:00Z")
        .json_code(3, &["check", "--ai-type", "a", "--estimated-tokens", "300"]);
    assert_eq!(d["reason"], "monthly_limit_exceeded");
    assert_eq!(d["level"], "critical");
    assert_eq!(i(&d["current_usage"]), 4_800);
    assert_eq!(d["retry_after"], "2026-12-01T00:00:00Z");
    assert!(d["message"]
        .as_str()
        .unwrap()
        .contains("current_usage=4,800 + estimated_tokens=300 > limit=5,000"));
});

both!(global_limit_counts_every_ai_type, |env| {
    env.ok(&[
        "limits",
        "set",
        "--global",
        "--monthly",
        "2900",
        "--daily",
        "5000",
        "--hourly",
        "5000",
    ]);
    env.record("a", 1_000, 0);
    env.record("b", 1_000, 0);
    let d = env.json_code(
        3,
        &["check", "--ai-type", "c", "--estimated-tokens", "1000"],
    );
    assert_eq!(d["reason"], "global_limit_exceeded");
    assert_eq!(i(&d["global_usage"]), 2_000);
    assert_eq!(i(&d["global_limit"]), 2_900);
});

both!(usage_is_keyed_by_month, |env| {
    let october = env.at("2026-10-31T23:59:59Z");
    october.record("imperium", 137_200, 0);
    assert_eq!(
        october.json_code(
            3,
            &["check", "--ai-type", "imperium", "--estimated-tokens", "10"]
        )["reason"],
        "emergency_shutdown"
    );
    // one second later it is November: no reset ran, and October does not count
    let november = env.at("2026-11-01T00:00:00Z");
    let d = november.json(&["check", "--ai-type", "imperium", "--estimated-tokens", "10"]);
    assert_eq!(d["allowed"], true);
    assert_eq!(i(&d["current_usage"]), 0);
    assert_eq!(i(&november.json(&["status"])["global"]["total_tokens"]), 0);
    let past = november.json(&["status", "--month", "2026-10"]);
    assert_eq!(i(&past["ai_types"][0]["total_tokens"]), 137_200);
    assert_eq!(past["ai_types"][0]["level"], "emergency");
    assert_eq!(past["ai_types"][0]["today_tokens"], Value::Null);
});

both!(an_injection_looking_ai_type_is_just_a_name, |env| {
    let name = "x'); DROP TABLE token_usage; --";
    env.record(name, 10, 5);
    let s = env.json(&["status"]);
    assert_eq!(s["ai_types"][0]["ai_type"], name);
    assert_eq!(i(&s["ai_types"][0]["total_tokens"]), 15);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage"), 1);
    let quoted = "guardian\"; SELECT 1; --";
    assert_eq!(
        env.json(&["check", "--ai-type", quoted, "--estimated-tokens", "5"])["ai_type"],
        quoted
    );
});

both!(rows_inserted_by_another_program_count, |env| {
    env.ok(&["migrate"]);
    let ts = match env.backend {
        Backend::Sqlite => "'2026-11-20 08:30:00'",
        Backend::Postgres => "'2026-11-20 08:30:00+00'",
    };
    env.sql(&format!(
        "INSERT INTO token_usage (ai_type, month_year, monthly_limit, tokens_in, tokens_out, total_tokens, request_count,
                                  usage_percentage, status, last_request_at, created_at, updated_at)
         VALUES ('legacy', '2026-11', 140000, 90000, 30000, 120000, 321, 85.71, 'active', {ts}, {ts}, {ts})"
    ));
    let s = env.status_of("legacy");
    assert_eq!(i(&s["total_tokens"]), 120_000);
    assert_eq!(i(&s["tokens_in"]), 90_000);
    assert_eq!(i(&s["request_count"]), 321);
    assert_eq!(s["level"], "warning");
    assert_eq!(i(&s["remaining"]), 20_000);
    assert_eq!(s["last_request_at"], "2026-11-20T08:30:00Z");
    let table = env.ok(&["status"]);
    assert!(
        table.contains("legacy") && table.contains("120,000"),
        "{table}"
    );
    // it counts in check, for the AI type and in the global total
    let d = env.json(&["check", "--ai-type", "other", "--estimated-tokens", "1000"]);
    assert_eq!(i(&d["global_usage"]), 120_000);
    env.ok(&[
        "limits",
        "set",
        "--ai-type",
        "legacy",
        "--monthly",
        "123000",
        "--per-request",
        "5000",
    ]);
    let d = env.json_code(
        3,
        &["check", "--ai-type", "legacy", "--estimated-tokens", "3500"],
    );
    assert_eq!(d["reason"], "monthly_limit_exceeded");
    assert_eq!(i(&d["current_usage"]), 120_000);
});

both!(reserve_then_settle_counts_the_real_numbers_once, |env| {
    let r = env.json(&[
        "reserve",
        "--ai-type",
        "imperium",
        "--estimated-tokens",
        "900",
    ]);
    assert_eq!(r["allowed"], true);
    let id = r["reservation_id"].as_str().unwrap().to_string();
    assert_eq!(r["expires_at"], "2026-11-23T10:25:00Z");
    let s = env.status_of("imperium");
    assert_eq!(i(&s["reserved_tokens"]), 900);
    assert_eq!(i(&s["remaining"]), 140_000 - 900);
    let settle = [
        "record",
        "--ai-type",
        "imperium",
        "--tokens-in",
        "300",
        "--tokens-out",
        "250",
        "--reservation",
        &id,
    ];
    let first = env.json(&settle);
    assert_eq!(first["duplicate"], false);
    assert_eq!(first["reservation_was"], "held");
    let retry = env.json(&settle);
    assert_eq!(retry["duplicate"], true);
    let s = env.status_of("imperium");
    assert_eq!(i(&s["total_tokens"]), 550);
    assert_eq!(i(&s["reserved_tokens"]), 0);
    assert_eq!(i(&s["request_count"]), 1);
    assert_eq!(i(&env.json(&["status"])["global"]["reserved_tokens"]), 0);
    // the hold is over: release changes nothing
    let rel = env.json(&["release", "--reservation", &id]);
    assert_eq!(rel["released"], false);
    assert_eq!(rel["state"], "settled");
    assert_eq!(i(&env.status_of("imperium")["total_tokens"]), 550);
});

both!(release_gives_the_hold_back_exactly_once, |env| {
    let r = env.json(&["reserve", "--ai-type", "a", "--estimated-tokens", "700"]);
    let id = r["reservation_id"].as_str().unwrap().to_string();
    let other = env.json(&["reserve", "--ai-type", "a", "--estimated-tokens", "200"]);
    assert_eq!(i(&env.status_of("a")["reserved_tokens"]), 900);
    let rel = env.json(&["release", "--reservation", &id]);
    assert_eq!(rel["released"], true);
    let again = env.json(&["release", "--reservation", &id]);
    assert_eq!(again["released"], false);
    assert_eq!(again["state"], "released");
    let s = env.status_of("a");
    assert_eq!(i(&s["reserved_tokens"]), 200);
    assert_eq!(i(&s["total_tokens"]), 0);
    assert_eq!(i(&env.json(&["status"])["global"]["reserved_tokens"]), 200);
    assert!(other["reservation_id"].is_string());
    let (_, err) = env.expect(2, &["release", "--reservation", "rsv_nope"]);
    assert!(err.contains("no reservation with id 'rsv_nope'"), "{err}");
});

both!(
    holds_count_against_limits_and_expire_after_their_ttl,
    |env| {
        env.ok(&[
            "limits",
            "set",
            "--ai-type",
            "a",
            "--monthly",
            "2000",
            "--daily",
            "2000",
            "--hourly",
            "2000",
        ]);
        env.ok(&[
            "limits", "set", "--global", "--daily", "10000", "--hourly", "10000",
        ]);
        let r = env.json(&[
            "reserve",
            "--ai-type",
            "a",
            "--estimated-tokens",
            "1000",
            "--ttl",
            "1m",
        ]);
        let id = r["reservation_id"].as_str().unwrap().to_string();
        env.json(&[
            "reserve",
            "--ai-type",
            "a",
            "--estimated-tokens",
            "900",
            "--ttl",
            "1h",
        ]);
        let d = env.json_code(
            3,
            &["reserve", "--ai-type", "a", "--estimated-tokens", "200"],
        );
        assert_eq!(d["reason"], "monthly_limit_exceeded");
        assert_eq!(d["reservation_id"], Value::Null);
        // two minutes later the first hold has expired: check sees it without writing
        let later = env.at("2026-11-23T10:17:00Z");
        assert_eq!(
            later.json(&["check", "--ai-type", "a", "--estimated-tokens", "1000"])["allowed"],
            true
        );
        assert_eq!(
            env.text("SELECT state FROM token_reservations WHERE estimated_tokens = 1000")
                .as_deref(),
            Some("held")
        );
        // a reserve sweeps it
        later.json(&["reserve", "--ai-type", "a", "--estimated-tokens", "100"]);
        assert_eq!(
            env.text("SELECT state FROM token_reservations WHERE estimated_tokens = 1000")
                .as_deref(),
            Some("expired")
        );
        assert_eq!(i(&later.status_of("a")["reserved_tokens"]), 1000);
        // settling the expired hold still counts the real numbers, once
        let s = later.json(&[
            "record",
            "--ai-type",
            "a",
            "--tokens-in",
            "600",
            "--tokens-out",
            "0",
            "--reservation",
            &id,
        ]);
        assert_eq!(s["reservation_was"], "expired");
        let st = later.status_of("a");
        assert_eq!(i(&st["total_tokens"]), 600);
        assert_eq!(i(&st["reserved_tokens"]), 1000);
    }
);

both!(a_reservation_is_settled_only_by_its_ai_type, |env| {
    let r = env.json(&["reserve", "--ai-type", "a", "--estimated-tokens", "100"]);
    let id = r["reservation_id"].as_str().unwrap();
    let (_, err) = env.expect(
        2,
        &[
            "record",
            "--ai-type",
            "b",
            "--tokens-in",
            "1",
            "--tokens-out",
            "1",
            "--reservation",
            id,
        ],
    );
    assert!(err.contains("belongs to ai_type 'a'"), "{err}");
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_logs"), 0);
    assert_eq!(i(&env.status_of("a")["reserved_tokens"]), 100);
});

both!(estimates_from_a_prompt, |env| {
    let d = env.json(&[
        "check",
        "--ai-type",
        "a",
        "--prompt",
        "one two three four five six seven eight nine ten",
        "--max-tokens",
        "500",
    ]);
    assert_eq!(i(&d["estimated_tokens"]), 513);
    std::fs::write(env.path("prompt.txt"), "word ".repeat(100)).unwrap();
    let p = env.path("prompt.txt");
    let d = env.json(&[
        "check",
        "--ai-type",
        "a",
        "--prompt-file",
        p.to_str().unwrap(),
        "--max-tokens",
        "800",
    ]);
    assert_eq!(i(&d["estimated_tokens"]), 930);
    let mut c = env.cmd(&[
        "check",
        "--ai-type",
        "a",
        "--prompt-file",
        "-",
        "--max-tokens",
        "900",
        "--json",
    ]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all("a b c d e f g h i j k l m n o p q r s t u v w x y z a b c d e f g h i j k l m n o p q r s t u v w x y z a b c d e f g h i j k l m n o p q r s t u v w x y z a b c d e f g h i j k l m n".as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "92 words → 120 + 900 = 1020 > 1000"
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(i(&d["estimated_tokens"]), 1020);
    let (_, err) = env.expect(2, &["check", "--ai-type", "a", "--prompt", "hi"]);
    assert!(err.contains("--max-tokens"), "{err}");
    // an I/O failure, not bad input: exit 1 (the spec's exit codes)
    let (_, err) = env.expect(
        1,
        &[
            "check",
            "--ai-type",
            "a",
            "--prompt-file",
            "/no/such/file",
            "--max-tokens",
            "5",
        ],
    );
    assert!(
        err.contains("cannot read the prompt from /no/such/file"),
        "{err}"
    );
});

both!(check_writes_nothing, |env| {
    env.ok(&["migrate"]);
    env.expect(0, &["check", "--ai-type", "a", "--estimated-tokens", "10"]);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage"), 0);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_windows"), 0);
});

both!(bad_input_exits_2_with_one_line_and_writes_nothing, |env| {
    env.record("a", 10, 10);
    let before = env.json(&["status"]);
    let long = "x".repeat(101);
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "record",
            "--ai-type",
            "a",
            "--tokens-in",
            "-5",
            "--tokens-out",
            "1",
        ],
        vec![
            "record",
            "--ai-type",
            "a",
            "--tokens-in",
            "ten",
            "--tokens-out",
            "1",
        ],
        vec![
            "record",
            "--ai-type",
            "a",
            "--tokens-in",
            "99999999999999999999999",
            "--tokens-out",
            "1",
        ],
        vec![
            "record",
            "--ai-type",
            "a",
            "--tokens-in",
            "1.5",
            "--tokens-out",
            "1",
        ],
        vec![
            "record",
            "--ai-type",
            "",
            "--tokens-in",
            "1",
            "--tokens-out",
            "1",
        ],
        vec![
            "record",
            "--ai-type",
            &long,
            "--tokens-in",
            "1",
            "--tokens-out",
            "1",
        ],
        vec!["record", "--ai-type", "a", "--tokens-in", "1"],
        vec![
            "record",
            "--ai-type",
            "a",
            "--tokens-in=-1_000",
            "--tokens-out",
            "1",
        ],
        vec!["reserve", "--ai-type", "a", "--estimated-tokens=-1_0"],
        vec!["limits", "set", "--monthly=-5_0"],
        vec![
            "prices",
            "set",
            "--model",
            "  ",
            "--input-per-mtok",
            "1",
            "--output-per-mtok",
            "1",
        ],
        vec!["check", "--ai-type", "a"],
        vec![
            "reserve",
            "--ai-type",
            "a",
            "--estimated-tokens",
            "5",
            "--ttl",
            "soon",
        ],
        vec!["status", "--month", "2026-13"],
        vec!["status", "--month", "November"],
        vec!["limits", "set", "--monthly", "-1"],
        vec!["limits", "set", "--ai-type", "a"],
        vec![
            "limits",
            "set",
            "--global",
            "--ai-type",
            "a",
            "--monthly",
            "5",
        ],
        vec![
            "prices",
            "set",
            "--model",
            "m",
            "--input-per-mtok",
            "-1",
            "--output-per-mtok",
            "1",
        ],
        vec!["frobnicate"],
    ];
    for args in &cases {
        let (out, err) = env.expect(2, args);
        assert!(out.is_empty(), "{args:?} printed to stdout: {out}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: not one line: {err}"
        );
        assert!(err.starts_with("tokenctl: error: "), "{args:?}: {err}");
    }
    let bad_now = env.at("last tuesday");
    let (_, err) = bad_now.expect(
        2,
        &[
            "record",
            "--ai-type",
            "a",
            "--tokens-in",
            "1",
            "--tokens-out",
            "1",
        ],
    );
    assert!(err.contains("TOKENCTL_NOW"), "{err}");
    let mut tz = env.cmd(&[
        "record",
        "--ai-type",
        "a",
        "--tokens-in",
        "1",
        "--tokens-out",
        "1",
    ]);
    let out = tz.env("TOKENCTL_TZ", "Mars/Olympus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown time zone 'Mars/Olympus'"));
    assert_eq!(env.json(&["status"]), before);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_logs"), 1);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_reservations"), 0);
});

#[test]
fn bad_input_creates_no_database() {
    let env = Env::new(Backend::Sqlite);
    env.expect(
        2,
        &[
            "record",
            "--ai-type",
            "a",
            "--tokens-in",
            "-5",
            "--tokens-out",
            "1",
        ],
    );
    env.expect(2, &["check", "--ai-type", "a"]);
    env.expect(
        2,
        &[
            "prices",
            "set",
            "--model",
            "",
            "--input-per-mtok",
            "1",
            "--output-per-mtok",
            "1",
        ],
    );
    env.expect(2, &["reset"]);
    assert!(!env.sqlite_path().exists());
}

#[test]
fn unreachable_databases_exit_1_naming_the_place_not_the_password() {
    let env = Env::new(Backend::Sqlite);
    let (_, err) = env.expect(
        1,
        &[
            "--database-url",
            "postgres://app:hunter2secret@127.0.0.1:1/budget",
            "status",
        ],
    );
    assert!(err.contains("127.0.0.1:1/budget"), "{err}");
    assert!(!err.contains("hunter2secret"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let (_, err) = env.expect(
        1,
        &["--database-url", "sqlite:///no/such/dir/t.db", "status"],
    );
    assert!(err.contains("/no/such/dir/t.db"), "{err}");
    std::fs::write(
        env.path("junk.db"),
        "this is not a database, just text padded out to be long enough ........",
    )
    .unwrap();
    let junk = format!("sqlite://{}", env.path("junk.db").display());
    let (_, err) = env.expect(1, &["--database-url", &junk, "status"]);
    assert!(err.contains("junk.db"), "{err}");
    let (_, err) = env.expect(2, &["--database-url", "mysql://x@y/z", "status"]);
    assert!(
        err.contains("unsupported database URL scheme 'mysql'"),
        "{err}"
    );
}

#[test]
fn a_wrong_postgres_password_is_never_printed() {
    let env = Env::new(Backend::Postgres);
    env.sql("CREATE ROLE tokenctl_pw_test LOGIN PASSWORD 'right-one'");
    let url = env.url.replacen(
        "postgres://postgres@",
        "postgres://tokenctl_pw_test:Wr0ngPa55word@",
        1,
    );
    let out = env
        .cmd(&["status"])
        .env("TOKENCTL_DATABASE_URL", &url)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    env.sql("DROP ROLE tokenctl_pw_test");
    assert!(!all.contains("Wr0ngPa55word"), "{all}");
    // trust auth accepts any password here; with md5/scram it would exit 1 naming the user
    assert!(matches!(out.status.code(), Some(0) | Some(1)), "{all}");
}

both!(limits_show_set_and_warn, |env| {
    let l = env.json(&["limits"]);
    assert_eq!(i(&l["default"]["monthly"]), 140_000);
    assert_eq!(i(&l["default"]["per_request"]), 1_000);
    assert_eq!(i(&l["default"]["daily"]), 9_800);
    assert_eq!(i(&l["default"]["hourly"]), 1_400);
    assert_eq!(i(&l["default"]["rpm"]), 42);
    assert_eq!(i(&l["default"]["rpd"]), 3_400);
    assert_eq!(i(&l["global"]["monthly"]), 140_000);
    assert_eq!(i(&l["global"]["max_concurrent"]), 2);
    assert_eq!(i(&l["default_thresholds"]["warning_tokens"]), 112_000);
    assert_eq!(i(&l["default_thresholds"]["critical_tokens"]), 133_000);
    assert_eq!(i(&l["default_thresholds"]["emergency_tokens"]), 137_200);
    assert_eq!(l["warnings"].as_array().unwrap().len(), 0);
    let table = env.ok(&["limits"]);
    assert!(
        table.contains("140,000") && table.contains("137,200"),
        "{table}"
    );

    let set = env.json(&[
        "limits",
        "set",
        "--ai-type",
        "imperium",
        "--monthly",
        "500000",
    ]);
    let imp = &set["ai_types"][0];
    assert_eq!(imp["ai_type"], "imperium");
    assert_eq!(i(&imp["monthly"]), 500_000);
    assert_eq!(i(&imp["daily"]), 35_000);
    assert_eq!(i(&imp["per_request"]), 1_000);
    assert_eq!(i(&imp["overrides"]["monthly"]), 500_000);
    assert_eq!(imp["overrides"]["daily"], Value::Null);
    assert_eq!(i(&env.status_of("imperium")["monthly_limit"]), 500_000);
    assert_eq!(i(&env.status_of("guardian")["monthly_limit"]), 140_000);

    let (out, err) = env.expect(
        0,
        &[
            "limits",
            "set",
            "--ai-type",
            "guardian",
            "--hourly",
            "500",
            "--daily",
            "200000",
        ],
    );
    assert!(out.contains("updated limits for guardian"), "{out}");
    assert!(
        err.contains("guardian: hourly limit 500 is below the per-request limit 1,000"),
        "{err}"
    );
    assert!(
        err.contains("guardian: daily limit 200,000 is above the monthly limit 140,000"),
        "{err}"
    );
    let (_, err) = env.expect(0, &["limits"]);
    assert!(err.contains("guardian: hourly limit 500"), "{err}");
    env.ok(&["limits", "set", "--monthly", "100000"]);
    assert_eq!(i(&env.json(&["limits"])["default"]["monthly"]), 100_000);
    assert_eq!(i(&env.status_of("nobody")["monthly_limit"]), 100_000);
});

both!(prices_list_and_override, |env| {
    let p = env.json(&["prices"]);
    let all = p["prices"].as_array().unwrap();
    for model in [
        "claude-3-haiku",
        "claude-3-5-sonnet",
        "claude-sonnet-4",
        "claude-opus-4",
        "gpt-4",
        "gpt-4-turbo",
        "gpt-4o",
        "gpt-3.5-turbo",
    ] {
        let row = all
            .iter()
            .find(|r| r["model"] == model)
            .unwrap_or_else(|| panic!("{model} missing"));
        assert_eq!(row["source"], "builtin");
    }
    env.ok(&[
        "prices",
        "set",
        "--model",
        "gpt-4o",
        "--input-per-mtok",
        "1",
        "--output-per-mtok",
        "2",
    ]);
    let p = env.json(&["prices"]);
    let row = p["prices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "gpt-4o")
        .unwrap()
        .clone();
    assert_eq!(row["source"], "database");
    assert_eq!(row["input_per_mtok"].as_f64(), Some(1.0));
    let r = env.json(&[
        "record",
        "--ai-type",
        "a",
        "--tokens-in",
        "1000000",
        "--tokens-out",
        "1000000",
        "--model",
        "gpt-4o-2024-08-06",
    ]);
    assert_eq!(r["cost_usd"].as_f64(), Some(3.0));
    let table = env.ok(&["prices"]);
    assert!(
        table.contains("database") && table.contains("built-in"),
        "{table}"
    );
});

both!(migrate_is_explicit_and_idempotent, |env| {
    let first = env.ok(&["migrate"]);
    assert!(first.contains("applied migration(s) 1, 2"), "{first}");
    let again = env.ok(&["migrate"]);
    assert!(again.contains("schema is up to date"), "{again}");
});

both!(json_prints_one_document_and_colour_only_when_asked, |env| {
    env.record("a", 120_000, 0);
    for args in [
        vec!["status"],
        vec!["limits"],
        vec!["prices"],
        vec!["check", "--ai-type", "a", "--estimated-tokens", "5"],
    ] {
        let mut all = args.clone();
        all.push("--json");
        let out = env.run(&all);
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{all:?}: {e}: {text}"));
        assert!(!text.contains('\u{1b}'), "{all:?} printed ANSI codes");
    }
    assert!(!env.ok(&["status"]).contains('\u{1b}'));
    let coloured = env.ok(&["--color", "always", "status"]);
    assert!(coloured.contains('\u{1b}'), "{coloured}");
});

both!(settling_edge_cases, |env| {
    // an unknown reservation: the tokens were used, so they count, and a warning says why
    let args = [
        "record",
        "--ai-type",
        "a",
        "--tokens-in",
        "10",
        "--tokens-out",
        "5",
        "--reservation",
        "rsv_gone",
        "--json",
    ];
    let (out, err) = env.expect(0, &args);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["reservation_found"], false);
    assert!(err.contains("no reservation 'rsv_gone'"), "{err}");
    assert_eq!(i(&env.status_of("a")["total_tokens"]), 15);
    let again: Value = serde_json::from_str(&env.expect(0, &args).0).unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(i(&env.status_of("a")["total_tokens"]), 15);
    // a request id that another request already used cannot settle a reservation
    env.ok(&[
        "record",
        "--ai-type",
        "a",
        "--tokens-in",
        "1",
        "--tokens-out",
        "1",
        "--request-id",
        "shared",
    ]);
    let r = env.json(&["reserve", "--ai-type", "a", "--estimated-tokens", "300"]);
    let id = r["reservation_id"].as_str().unwrap();
    let (_, err) = env.expect(
        2,
        &[
            "record",
            "--ai-type",
            "a",
            "--tokens-in",
            "100",
            "--tokens-out",
            "0",
            "--reservation",
            id,
            "--request-id",
            "shared",
        ],
    );
    assert!(
        err.contains("request id 'shared' was already recorded for another request"),
        "{err}"
    );
    let s = env.status_of("a");
    assert_eq!((i(&s["total_tokens"]), i(&s["reserved_tokens"])), (17, 300));
    // model names are case-insensitive, and a database price overrides the built-in one
    env.ok(&[
        "prices",
        "set",
        "--model",
        "GPT-4o",
        "--input-per-mtok",
        "1",
        "--output-per-mtok",
        "1",
    ]);
    let p = env.json(&["prices"]);
    let rows: Vec<&Value> = p["prices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["model"] == "gpt-4o")
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["source"], "database");
    let c = env.json(&[
        "record",
        "--ai-type",
        "a",
        "--tokens-in",
        "1000000",
        "--tokens-out",
        "0",
        "--model",
        "GPT-4O-2024-08-06",
    ]);
    assert_eq!(c["cost_usd"].as_f64(), Some(1.0));
});

#[test]
fn a_password_in_a_mistyped_argument_is_not_echoed() {
    let env = Env::new(Backend::Sqlite);
    let (_, err) = env.expect(2, &["status", "postgres://app:Sup3rSecret@db/x"]);
    assert!(!err.contains("Sup3rSecret"), "{err}");
    assert!(err.contains("postgres://app:***@db"), "{err}");
}
