//! Issue 10: what a new user tripped on — through the built binary.

mod common;

use std::io::Read;
use std::process::Stdio;

use common::{Backend, Env};

/// Runs `args` with a standard output whose reader has already gone (`| head -0`, `| true`):
/// returns (exit code, stderr).
fn with_closed_stdout(env: &Env, args: &[&str]) -> (Option<i32>, String) {
    let mut child = env
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap().code(), err)
}

both!(a_closed_pipe_ends_the_command_quietly, |env| {
    env.ok(&["limits", "set", "--ai-type", "a", "--per-request", "100"]);
    let cases: [(&[&str], i32); 6] = [
        (&["prices"], 0),
        (&["status"], 0),
        (&["check", "--ai-type", "a", "--estimated-tokens", "5"], 0),
        (
            &[
                "check",
                "--ai-type",
                "a",
                "--estimated-tokens",
                "500",
                "--json",
            ],
            3,
        ),
        (
            &[
                "record",
                "--ai-type",
                "a",
                "--tokens-in",
                "1",
                "--tokens-out",
                "1",
            ],
            0,
        ),
        (&["completions", "bash"], 0),
    ];
    let rounds = if env.backend == Backend::Sqlite {
        50
    } else {
        10
    };
    for (args, code) in cases {
        for _ in 0..rounds {
            let (got, err) = with_closed_stdout(&env, args);
            assert_eq!(got, Some(code), "{args:?}: {err}");
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        }
    }
    // every record still counted
    assert_eq!(
        env.scalar("SELECT request_count FROM token_usage WHERE ai_type = 'a'"),
        rounds
    );
});

#[test]
fn bare_tokenctl_prints_the_usual_help_and_exits_2() {
    let env = Env::new(Backend::Sqlite);
    let (out, err) = env.expect(2, &[]);
    assert!(out.is_empty());
    assert!(err.contains("\nUsage: tokenctl"), "{err}");
    assert!(
        err.lines().count() > 10,
        "the help as written, not one line: {err}"
    );
    assert!(
        !err.contains("***"),
        "nothing mangled by the URL redactor: {err}"
    );
}

both!(one_rule_for_numbers_and_names, |env| {
    env.ok(&["migrate"]);
    for bad in ["1_000", " 12", "12 ", "1,000", "1e3", "+12", "-1"] {
        let (_, err) = env.expect(
            2,
            &[
                "record",
                "--ai-type",
                "a",
                "--tokens-in",
                bad,
                "--tokens-out",
                "0",
            ],
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    for blank in ["", "   ", " imperium", "imperium "] {
        env.expect(
            2,
            &[
                "record",
                "--ai-type",
                blank,
                "--tokens-in",
                "1",
                "--tokens-out",
                "0",
            ],
        );
    }
    let (_, err) = env.expect(
        2,
        &[
            "check",
            "--ai-type",
            "\u{1b}[31mred\tx",
            "--estimated-tokens",
            "1",
        ],
    );
    assert!(
        !err.contains('\u{1b}') && !err.contains('\t'),
        "control characters escaped: {err:?}"
    );
    let (_, err) = env.expect(
        2,
        &[
            "reserve",
            "--ai-type",
            "a",
            "--estimated-tokens",
            "5",
            "--ttl",
            "-5m",
        ],
    );
    assert!(err.contains("ttl must not be negative"), "{err}");
    let (_, err) = env.expect(
        2,
        &[
            "prices",
            "set",
            "--model",
            "m",
            "--input-per-mtok",
            "-1",
            "--output-per-mtok",
            "1",
        ],
    );
    assert!(err.contains("must not be negative"), "{err}");
    let long_id = "x".repeat(256);
    let (_, err) = env.expect(
        2,
        &[
            "record",
            "--ai-type",
            "a",
            "--tokens-in",
            "1",
            "--tokens-out",
            "0",
            "--request-id",
            &long_id,
        ],
    );
    assert!(err.contains("at most 255"), "{err}");
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM token_usage_logs"),
        0,
        "nothing written"
    );
});

both!(a_long_error_message_is_cut_and_the_usage_recorded, |env| {
    let msg = "overloaded ".repeat(200);
    let (_, err) = env.expect(
        0,
        &[
            "record",
            "--ai-type",
            "a",
            "--tokens-in",
            "120",
            "--tokens-out",
            "0",
            "--failed",
            "--error",
            &msg,
        ],
    );
    assert!(err.contains("--error is 2,200 characters long"), "{err}");
    assert_eq!(
        env.scalar("SELECT total_tokens FROM token_usage WHERE ai_type = 'a'"),
        120
    );
    assert_eq!(
        env.scalar("SELECT CAST(LENGTH(error_message) AS BIGINT) FROM token_usage_logs"),
        1000
    );
    // a real provider id and a UUID fit
    env.ok(&[
        "record",
        "--ai-type",
        "a",
        "--tokens-in",
        "1",
        "--tokens-out",
        "0",
        "--request-id",
        "msg_01XFDUDYJgAACzvnptvVoYEL",
    ]);
    env.ok(&[
        "record",
        "--ai-type",
        "a",
        "--tokens-in",
        "1",
        "--tokens-out",
        "0",
        "--request-id",
        "0b8e6a3e-4f7c-4a57-9b9f-3f0c2b7f1a44",
    ]);
});

#[test]
fn an_unreadable_prompt_file_is_an_io_failure() {
    let env = Env::new(Backend::Sqlite);
    let missing = env.path("no-such-prompt.txt");
    let (_, err) = env.expect(
        1,
        &[
            "check",
            "--ai-type",
            "a",
            "--prompt-file",
            missing.to_str().unwrap(),
            "--max-tokens",
            "10",
        ],
    );
    assert!(err.contains("cannot read the prompt"), "{err}");
}

#[test]
fn every_flag_has_a_line_of_help() {
    let env = Env::new(Backend::Sqlite);
    for cmd in [
        "record",
        "check",
        "reserve",
        "release",
        "status",
        "limits",
        "prices",
        "reset",
        "monthly-reset",
        "archive",
        "monitor",
        "alerts",
        "distribution",
        "config",
        "migrate",
        "completions",
    ] {
        let help = env.ok(&[cmd, "--help"]);
        let mut in_options = false;
        for line in help.lines() {
            if line.starts_with("Options:") || line.starts_with("Arguments:") {
                in_options = true;
                continue;
            }
            if line.trim().is_empty() {
                in_options = false;
            }
            if in_options && (line.trim_start().starts_with('-') || line.starts_with("  <")) {
                // "  --flag <V>  What it does": a flag alone on its line has no help
                let words: Vec<&str> = line
                    .split("  ")
                    .map(str::trim)
                    .filter(|w| !w.is_empty())
                    .collect();
                assert!(words.len() >= 2, "{cmd}: no help for `{}`", line.trim());
            }
        }
    }
}

both!(status_of_an_unknown_ai_type_warns, |env| {
    env.record("imperium", 10, 0);
    let (out, err) = env.expect(0, &["status", "--ai-type", "imperum", "--json"]);
    assert!(
        err.contains("no AI type 'imperum'") && err.contains("known: imperium"),
        "{err}"
    );
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["ai_types"][0]["total_tokens"], 0);
    let (_, err) = env.expect(0, &["status", "--ai-type", "imperium"]);
    assert!(!err.contains("no AI type"), "{err}");
});

both!(a_reused_request_id_with_other_numbers_warns, |env| {
    env.ok(&[
        "record",
        "--ai-type",
        "a",
        "--tokens-in",
        "10",
        "--tokens-out",
        "5",
        "--request-id",
        "r1",
    ]);
    let (_, err) = env.expect(
        0,
        &[
            "record",
            "--ai-type",
            "a",
            "--tokens-in",
            "10",
            "--tokens-out",
            "5",
            "--request-id",
            "r1",
        ],
    );
    assert!(err.is_empty(), "a plain retry is quiet: {err}");
    let (out, err) = env.expect(
        0,
        &[
            "record",
            "--ai-type",
            "b",
            "--tokens-in",
            "99",
            "--tokens-out",
            "0",
            "--request-id",
            "r1",
            "--json",
        ],
    );
    assert!(
        err.contains(
            "request id 'r1' was recorded before with other numbers (ai_type a, 10 in, 5 out)"
        ),
        "{err}"
    );
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["duplicate"], true);
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM token_usage WHERE ai_type = 'b'"),
        0
    );
});

both!(
    distribution_of_an_archived_month_says_its_detail_is_gone,
    |env| {
        env.at("2026-10-10T10:00:00Z").record("a", 100, 0);
        env.at("2026-11-01T00:01:00Z").ok(&["monthly-reset"]);
        let (out, err) = env.expect(0, &["distribution", "--month", "2026-10", "--json"]);
        assert!(
            err.contains("2026-10 was archived by monthly-reset"),
            "{err}"
        );
        let d: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(d["month_archived"], true, "{d}");
        let (_, err) = env.expect(0, &["distribution"]);
        assert!(err.is_empty(), "{err}");
    }
);

both!(
    monitor_once_says_where_an_alert_went_and_keeps_webhook_paths_secret,
    |env| {
        env.ok(&[
            "limits",
            "set",
            "--ai-type",
            "a",
            "--monthly",
            "1000",
            "--daily",
            "1000",
            "--hourly",
            "1000",
        ]);
        env.record("a", 850, 0);
        // an alerts file that cannot be written: the alert is in the database only, and cron hears of it
        let (_, err) = env.expect(
            1,
            &["monitor", "--once", "--alerts-file", "/proc/nope/a.json"],
        );
        assert!(err.contains("in the database only"), "{err}");
        assert!(!err.contains("and the alerts file"), "{err}");
        assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_alerts"), 1);
        // a webhook that is down: its path (Slack's token) never appears
        env.record("a", 110, 0);
        let file = env.path("alerts.jsonl");
        let (_, err) = env.expect(
            1,
            &[
                "monitor",
                "--once",
                "--alerts-file",
                file.to_str().unwrap(),
                "--webhook",
                "http://127.0.0.1:9/services/T000/B000/s3cretT0ken",
            ],
        );
        assert!(
            err.contains("webhook http://127.0.0.1:9/*** failed"),
            "{err}"
        );
        assert!(
            err.contains("is in the database and the alerts file"),
            "{err}"
        );
        assert!(
            !err.contains("s3cretT0ken") && !err.contains("/services/"),
            "{err}"
        );
    }
);

both!(limits_and_prices_can_be_put_back, |env| {
    env.ok(&[
        "limits",
        "set",
        "--ai-type",
        "imperium",
        "--monthly",
        "500000",
        "--daily",
        "12000",
    ]);
    let l = env.json(&["limits", "unset", "--ai-type", "imperium", "--daily"]);
    let imp = &l["ai_types"][0];
    assert_eq!(
        (imp["monthly"].as_i64(), imp["daily"].as_i64()),
        (Some(500_000), Some(35_000)),
        "derived again: {imp}"
    );
    let l = env.json(&["limits", "unset", "--ai-type", "imperium", "--all"]);
    assert_eq!(
        l["ai_types"].as_array().unwrap().len(),
        0,
        "nothing of its own left: {l}"
    );
    env.ok(&[
        "limits",
        "set",
        "--global",
        "--max-concurrent",
        "9",
        "--monthly",
        "1000000",
    ]);
    let l = env.json(&["limits", "unset", "--global", "--max-concurrent"]);
    assert_eq!(
        (
            l["global"]["max_concurrent"].as_i64(),
            l["global"]["monthly"].as_i64()
        ),
        (Some(2), Some(1_000_000)),
        "{l}"
    );
    env.ok(&["limits", "set", "--rpm", "5"]);
    let l = env.json(&["limits", "unset", "--all"]);
    assert_eq!(l["default"]["rpm"].as_i64(), Some(42), "{l}");
    env.expect(2, &["limits", "unset", "--ai-type", "imperium"]);

    env.ok(&[
        "prices",
        "set",
        "--model",
        "gpt-4o",
        "--input-per-mtok",
        "9",
        "--output-per-mtok",
        "9",
    ]);
    let out = env.ok(&["prices", "unset", "--model", "gpt-4o"]);
    assert!(
        out.contains("database price removed") && out.contains("(built-in)"),
        "{out}"
    );
    let p = env.json(&["prices"]);
    let gpt = p["prices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "gpt-4o")
        .unwrap()
        .clone();
    assert_eq!(
        (gpt["input_per_mtok"].as_f64(), gpt["source"].as_str()),
        (Some(2.5), Some("builtin")),
        "{gpt}"
    );
});
