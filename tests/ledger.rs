//! Issue 9: an airtight ledger — a closed month stays closed, one clock for every host, and
//! rows another program wrote cannot stop or disable enforcement. SQLite and PostgreSQL,
//! through the built binary.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{grand_total, i, spawn, Backend, Env};
use serde_json::Value;

fn monthly_archive_rows(env: &Env, ai: &str, month: &str) -> i64 {
    env.scalar(&format!(
        "SELECT COUNT(*) FROM token_usage_archive WHERE ai_type = '{ai}' AND month_year = '{month}' AND reason = 'monthly'"
    ))
}

// ---- 1. a closed month stays closed ----

both!(
    a_late_write_counts_against_the_closed_months_true_total,
    |env| {
        let nov = env.at("2026-11-20T10:00:00Z");
        nov.ok(&[
            "limits",
            "set",
            "--ai-type",
            "a",
            "--monthly",
            "10000",
            "--daily",
            "10000",
            "--hourly",
            "10000",
        ]);
        nov.record("a", 9900, 0);
        env.at("2026-12-01T00:00:01Z").ok(&["monthly-reset"]);

        // a host behind, or a request that read the clock just before the reset
        let late = env.at("2026-11-30T23:59:59Z");
        let d = late.json_code(
            3,
            &["reserve", "--ai-type", "a", "--estimated-tokens", "900"],
        );
        assert_eq!(d["allowed"], false, "{d}");
        assert_eq!(d["reason"], "month_closed", "{d}");
        assert_eq!(
            i(&d["current_usage"]),
            9900,
            "the true total, never from zero: {d}"
        );
        assert_eq!(d["retry_after"], "2026-12-01T00:00:00Z");
        let c = late.json_code(3, &["check", "--ai-type", "a", "--estimated-tokens", "10"]);
        assert_eq!(
            (c["reason"].as_str(), i(&c["current_usage"])),
            (Some("month_closed"), 9900)
        );

        // record never refuses: the usage is added to the archived figure
        let (out, err) = late.expect(
            0,
            &[
                "record",
                "--ai-type",
                "a",
                "--tokens-in",
                "60",
                "--tokens-out",
                "40",
                "--json",
            ],
        );
        let r: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (r["month"].as_str(), r["month_closed"].as_bool()),
            (Some("2026-11"), Some(true))
        );
        assert_eq!(i(&r["month_total_tokens"]), 10_000, "{r}");
        assert!(err.contains("already closed"), "{err}");
        assert_eq!(monthly_archive_rows(&env, "a", "2026-11"), 1);
        assert_eq!(
            env.scalar("SELECT COUNT(*) FROM token_usage WHERE month_year = '2026-11'"),
            0,
            "the closed month is not started again"
        );
        // a late record of an AI type the month never saw gets its own archive row
        late.record("b", 5, 0);
        assert_eq!(monthly_archive_rows(&env, "b", "2026-11"), 1);

        // later resets archive nothing more, and leave one row per AI type and month
        for _ in 0..3 {
            let v = env.at("2026-12-02T00:01:00Z").json(&["monthly-reset"]);
            assert_eq!(i(&v["archived_count"]), 0, "{v}");
        }
        assert_eq!(monthly_archive_rows(&env, "a", "2026-11"), 1);
        // a monthly-reset whose clock is behind does nothing, and says why
        let (_, err) = late.expect(1, &["monthly-reset"]);
        assert!(err.contains("already closed"), "{err}");
        assert_eq!(grand_total(&env), 10_005);

        // status of the closed month agrees with itself and with archive
        let dec = env.at("2026-12-02T00:01:00Z");
        let s = dec.json(&["status", "--month", "2026-11"]);
        assert_eq!(s["from_archive"], true, "{s}");
        let rows = s["ai_types"].as_array().unwrap();
        let per_ai: i64 = rows.iter().map(|r| i(&r["total_tokens"])).sum();
        assert_eq!(per_ai, 10_005);
        assert_eq!(i(&s["global"]["total_tokens"]), per_ai, "{s}");
        let a = rows.iter().find(|r| r["ai_type"] == "a").unwrap();
        assert_eq!(i(&a["total_tokens"]), 10_000);
        assert_eq!(
            a["last_request_at"], "2026-11-30T23:59:59Z",
            "the late request's time"
        );
        let archive = dec.json(&["archive", "--ai-type", "a", "--month", "2026-11"]);
        assert_eq!(archive["archive"].as_array().unwrap().len(), 1, "{archive}");
        assert_eq!(archive["archive"][0]["monthly_limit"], a["monthly_limit"]);
        assert_eq!(i(&a["monthly_limit"]), 10_000);
        // today's limit changes; the archived month keeps its own
        dec.ok(&["limits", "set", "--ai-type", "a", "--monthly", "50000"]);
        let s = dec.json(&["status", "--month", "2026-11", "--ai-type", "a"]);
        assert_eq!(i(&s["ai_types"][0]["monthly_limit"]), 10_000, "{s}");
    }
);

both!(
    four_resets_racing_48_late_records_lose_and_split_nothing,
    |env| {
        let nov = env.at("2026-11-29T10:00:00Z");
        for a in 0..4 {
            nov.record(&format!("agent-{a}"), 1000, 0);
        }
        let before = grand_total(&env);
        let dec = env.at("2026-12-01T00:00:01Z");
        let late = env.at("2026-11-30T23:59:59Z");
        let mut children = Vec::new();
        for k in 0..52 {
            let child = if k % 13 == 0 {
                spawn(&dec, &["monthly-reset", "--json"])
            } else {
                spawn(
                    &late,
                    &[
                        "record",
                        "--ai-type",
                        &format!("agent-{}", k % 5),
                        "--tokens-in",
                        "7",
                        "--tokens-out",
                        "3",
                        "--json",
                    ],
                )
            };
            children.push((k % 13 == 0, child));
        }
        let mut archived = 0;
        let mut late_records = 0;
        for (is_reset, child) in children {
            let out = child.wait_with_output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            if is_reset {
                archived += i(&v["archived_count"]);
            } else {
                late_records += 1;
            }
        }
        assert_eq!(late_records, 48);
        assert_eq!(
            grand_total(&env),
            before + 48 * 10,
            "nothing lost, nothing counted twice"
        );
        assert!(archived >= 4, "each November row archived once: {archived}");
        assert_eq!(
        env.scalar("SELECT COUNT(*) FROM (SELECT ai_type, month_year FROM token_usage_archive WHERE reason = 'monthly' GROUP BY ai_type, month_year HAVING COUNT(*) > 1) AS d"),
        0,
        "one archive row per AI type and month"
    );
        assert_eq!(
            env.scalar("SELECT COUNT(*) FROM token_usage WHERE month_year = '2026-11'"),
            0
        );
        let s = env
            .at("2026-12-01T00:05:00Z")
            .json(&["status", "--month", "2026-11"]);
        assert_eq!(i(&s["global"]["total_tokens"]), before + 480, "{s}");
    }
);

both!(an_old_database_with_archive_fragments_is_merged, |env| {
    env.ok(&["migrate"]);
    // what earlier versions could leave behind: one month archived in three fragments
    env.sql("DROP INDEX token_usage_archive_monthly");
    for (n, t) in [(1, 9900), (2, 900), (3, 50)] {
        env.sql(&format!(
            "INSERT INTO token_usage_archive (ai_type, month_year, monthly_limit, tokens_in, tokens_out, total_tokens, request_count, archived_at, reason)
             VALUES ('a', '2026-10', 10000, {t}, 0, {t}, {n}, '2026-11-0{n}T00:01:00Z', 'monthly')"
        ));
    }
    env.sql("DELETE FROM _sqlx_migrations WHERE version = 6");
    env.ok(&["migrate"]);
    assert_eq!(monthly_archive_rows(&env, "a", "2026-10"), 1);
    let a = env.json(&["archive", "--month", "2026-10"]);
    assert_eq!(i(&a["archive"][0]["total_tokens"]), 10_850, "{a}");
    assert_eq!(i(&a["archive"][0]["request_count"]), 6, "{a}");
    // the month counts as closed
    let d = env
        .at("2026-10-31T12:00:00Z")
        .json_code(3, &["check", "--ai-type", "a", "--estimated-tokens", "1"]);
    assert_eq!(d["reason"], "month_closed");
});

// ---- 2. one clock ----

/// A `tokenctl` whose process clock is `offset` away from the real one (libfaketime), with no
/// TOKENCTL_NOW: what a host with a wrong clock runs.
fn skewed(env: &Env, offset: &str, args: &[&str]) -> Command {
    let mut c = env.cmd_under(&["faketime", "-f", offset], args);
    c.env_remove("TOKENCTL_NOW")
        // tokio's timers keep the real monotonic clock
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    c
}

fn run_json(mut c: Command, code: i32) -> (Value, String) {
    let out = c
        .output()
        .expect("faketime (Debian's faketime package) must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    (
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}")),
        stderr,
    )
}

/// Waits until the database's clock is early in a minute, so a count within one minute
/// cannot straddle two.
fn early_in_a_minute(env: &Env) {
    let deadline = Instant::now() + Duration::from_secs(70);
    while env.scalar("SELECT CAST(EXTRACT(SECOND FROM clock_timestamp()) AS BIGINT)") > 30 {
        assert!(
            Instant::now() < deadline,
            "the database's clock does not move"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn hosts_whose_clocks_differ_by_minutes_share_one_clock() {
    let env = Env::new(Backend::Postgres);
    let host = |offset: &str, args: &[&str], code: i32| {
        let mut all = args.to_vec();
        all.push("--json");
        run_json(skewed(&env, offset, &all), code)
    };
    host(
        "+0",
        &[
            "limits",
            "set",
            "--ai-type",
            "a",
            "--monthly",
            "10000",
            "--daily",
            "10000",
            "--hourly",
            "10000",
            "--per-request",
            "1000",
            "--rpm",
            "1000",
            "--rpd",
            "100000",
        ],
        0,
    );
    host(
        "+0",
        &[
            "limits",
            "set",
            "--global",
            "--monthly",
            "1000000",
            "--daily",
            "1000000",
            "--hourly",
            "1000000",
            "--rpm",
            "1000",
            "--rpd",
            "100000",
            "--max-concurrent",
            "1000",
        ],
        0,
    );

    // the skew is seen and reported
    let (s, err) = host("+15m", &["status"], 0);
    assert_eq!(s["clock"]["source"], "database", "{s}");
    let skew = s["clock"]["host_skew_seconds"].as_f64().unwrap();
    assert!((skew - 900.0).abs() < 5.0, "{s}");
    assert!(err.contains("ahead of the database server's"), "{err}");

    // 14 holds of 700 (9,800 of 10,000) from a host on time, 10-minute TTL...
    let mut ids = Vec::new();
    for _ in 0..14 {
        let (v, _) = host(
            "+0",
            &[
                "reserve",
                "--ai-type",
                "a",
                "--estimated-tokens",
                "700",
                "--ttl",
                "10m",
            ],
            0,
        );
        ids.push(v["reservation_id"].as_str().unwrap().to_string());
    }
    // ...a host 15 minutes ahead would have expired them all; it must not, and is denied
    for _ in 0..14 {
        let (v, _) = host(
            "+15m",
            &[
                "reserve",
                "--ai-type",
                "a",
                "--estimated-tokens",
                "700",
                "--ttl",
                "10m",
            ],
            3,
        );
        assert_eq!(v["reason"], "monthly_limit_exceeded", "{v}");
    }
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM token_reservations WHERE state = 'held'"),
        14,
        "no early expiry"
    );
    // a host behind cannot squeeze more in either
    let (v, _) = host(
        "-7m",
        &["reserve", "--ai-type", "a", "--estimated-tokens", "700"],
        3,
    );
    assert_eq!(v["reason"], "monthly_limit_exceeded", "{v}");
    for (k, id) in ids.iter().enumerate() {
        let offset = if k % 2 == 0 { "+15m" } else { "-7m" };
        host(
            offset,
            &[
                "record",
                "--ai-type",
                "a",
                "--tokens-in",
                "700",
                "--tokens-out",
                "0",
                "--reservation",
                id,
            ],
            0,
        );
    }
    let (s, _) = host("+0", &["status", "--ai-type", "a"], 0);
    assert_eq!(
        i(&s["ai_types"][0]["total_tokens"]),
        9800,
        "0 overshoot: {s}"
    );

    // rpm 5, requests from hosts 3 minutes apart: exactly 5 admitted in the minute
    host("+0", &["limits", "set", "--ai-type", "r", "--rpm", "5"], 0);
    early_in_a_minute(&env);
    let mut admitted = 0;
    for k in 0..10 {
        let offset = if k % 2 == 0 { "+0" } else { "-3m" };
        let mut c = skewed(
            &env,
            offset,
            &[
                "reserve",
                "--ai-type",
                "r",
                "--estimated-tokens",
                "10",
                "--json",
            ],
        );
        let out = c.output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        if v["allowed"] == true {
            admitted += 1;
        } else {
            assert_eq!(v["reason"], "rpm_limit_exceeded", "{v}");
        }
    }
    assert_eq!(admitted, 5, "rpm exact across clocks");

    // a host in the next month files usage in the database's month, not a fresh budget
    let (r, _) = host(
        "+40d",
        &[
            "record",
            "--ai-type",
            "m",
            "--tokens-in",
            "100",
            "--tokens-out",
            "0",
        ],
        0,
    );
    let (s, _) = host("+0", &["status", "--ai-type", "m"], 0);
    assert_eq!(r["month"], s["month"], "{r} {s}");
    assert_eq!(i(&s["ai_types"][0]["total_tokens"]), 100);
    assert_eq!(
        env.scalar("SELECT COUNT(DISTINCT month_year) FROM token_usage WHERE ai_type = 'm'"),
        1
    );
}

both!(a_writer_behind_cannot_reset_the_minute_count, |env| {
    // TOKENCTL_NOW stands in for a clock behind: on SQLite every process shares the host's
    // clock, so this is the only way two notions of the minute can meet there
    env.ok(&["limits", "set", "--ai-type", "r", "--rpm", "3"]);
    env.ok(&["limits", "set", "--global", "--max-concurrent", "100"]);
    let now = env.at("2026-11-23T10:15:30Z");
    let behind = env.at("2026-11-23T10:12:10Z");
    now.reserve_ok_n("r", 2);
    behind.reserve_ok_n("r", 1);
    for e in [&now, &behind] {
        let v = e.json_code(
            3,
            &["reserve", "--ai-type", "r", "--estimated-tokens", "10"],
        );
        assert_eq!(v["reason"], "rpm_limit_exceeded", "{v}");
    }
    // and the next minute starts afresh
    env.at("2026-11-23T10:16:01Z").reserve_ok_n("r", 3);
});

// ---- 3. foreign rows ----

/// A row the existing backend wrote, with only its own columns.
fn foreign_row(env: &Env, ai: &str, total: &str) {
    env.sql(&format!(
        "INSERT INTO token_usage (ai_type, month_year, monthly_limit, tokens_in, tokens_out, total_tokens, request_count, usage_percentage, status)
         VALUES ('{ai}', '2026-11', 140000, 0, 0, {total}, 1, 0, 'active')"
    ));
}

/// Everything another AI type does still works and still enforces.
fn other_ai_type_still_works(env: &Env) {
    env.ok(&[
        "limits",
        "set",
        "--ai-type",
        "other",
        "--monthly",
        "1000",
        "--daily",
        "1000",
        "--hourly",
        "1000",
    ]);
    let r = env.record("other", 600, 0);
    assert_eq!(i(&r["month_total_tokens"]), 600, "{r}");
    let d = env.json_code(
        3,
        &["reserve", "--ai-type", "other", "--estimated-tokens", "500"],
    );
    assert_eq!(d["reason"], "monthly_limit_exceeded", "enforced: {d}");
    let d = env.json(&["check", "--ai-type", "other", "--estimated-tokens", "100"]);
    assert_eq!(d["allowed"], true, "{d}");
    let s = env.json(&["status"]);
    let g = &s["global"];
    assert!(
        i(&g["remaining"]) <= i(&g["enforced_limit"]),
        "a limit never rises: {s}"
    );
    env.json(&["distribution"]);
    env.json(&["alerts"]);
    env.expect(
        0,
        &[
            "monitor",
            "--once",
            "--json",
            "--alerts-file",
            env.path("alerts.jsonl").to_str().unwrap(),
        ],
    );
}

both!(counts_near_the_largest_integer_saturate, |env| {
    env.ok(&["migrate"]);
    foreign_row(&env, "x", "9223372036854775000");
    foreign_row(&env, "y", "9223372036854775000");
    // the total saturates: over every limit, so every request is denied — never wraps to
    // a small number that says ok, never exits 1
    let s = env.json(&["status"]);
    assert_eq!(i(&s["global"]["total_tokens"]), i64::MAX, "{s}");
    assert_eq!(s["global"]["level"], "emergency", "{s}");
    let d = env.json_code(
        3,
        &["check", "--ai-type", "other", "--estimated-tokens", "1"],
    );
    assert_eq!(d["reason"], "emergency_shutdown", "{d}");
    let d = env.json_code(
        3,
        &["reserve", "--ai-type", "other", "--estimated-tokens", "1"],
    );
    assert_eq!(d["scope"], "global", "{d}");
    env.record("other", 10, 0);
    // a record on the saturated row itself succeeds and stays saturated
    let r = env.record("x", 1000, 0);
    assert_eq!(
        i(&r["month_total_tokens"]),
        9_223_372_036_854_775_807,
        "{r}"
    );
    env.json(&["distribution"]);
    env.expect(
        0,
        &[
            "monitor",
            "--once",
            "--json",
            "--alerts-file",
            env.path("a.jsonl").to_str().unwrap(),
        ],
    );
});

both!(a_negative_count_reads_as_zero_with_a_warning, |env| {
    env.ok(&["migrate"]);
    foreign_row(&env, "neg", "-50000");
    let (out, err) = env.expect(0, &["status", "--json"]);
    assert!(
        err.contains("token_usage row neg 2026-11: total_tokens is negative (-50000); read as 0"),
        "{err}"
    );
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(i(&s["global"]["total_tokens"]), 0, "{s}");
    other_ai_type_still_works(&env);
    // a record on the row starts from 0, as it was read
    let r = env.record("neg", 10, 0);
    assert_eq!(i(&r["month_total_tokens"]), 10, "{r}");
});

#[test]
fn postgres_null_counts_read_as_zero_and_record_succeeds() {
    let env = Env::new(Backend::Postgres);
    env.ok(&["migrate"]);
    // a table adopted from the existing backend may be nullable
    for col in ["tokens_in", "tokens_out", "total_tokens", "request_count"] {
        env.sql(&format!(
            "ALTER TABLE token_usage ALTER COLUMN {col} DROP NOT NULL"
        ));
    }
    env.sql("INSERT INTO token_usage (ai_type, month_year, monthly_limit, tokens_in, tokens_out, total_tokens, request_count) VALUES ('nul', '2026-11', 140000, NULL, NULL, NULL, NULL)");
    let r = env.record("nul", 300, 200);
    assert_eq!(i(&r["month_total_tokens"]), 500, "{r}");
    assert_eq!(
        env.scalar("SELECT total_tokens FROM token_usage WHERE ai_type = 'nul'"),
        500
    );
    assert_eq!(i(&env.status_of("nul")["request_count"]), 1);
    other_ai_type_still_works(&env);
}

#[test]
fn postgres_fractional_counts_round_up() {
    let env = Env::new(Backend::Postgres);
    env.ok(&["migrate"]);
    // an adopted table with NUMERIC counts
    env.sql("ALTER TABLE token_usage ALTER COLUMN total_tokens TYPE NUMERIC");
    foreign_row(&env, "frac", "100.7");
    let (out, err) = env.expect(0, &["status", "--ai-type", "frac", "--json"]);
    assert!(err.contains("rounded up to 101"), "{err}");
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(i(&s["ai_types"][0]["total_tokens"]), 101);
    let r = env.record("frac", 9, 0);
    assert_eq!(i(&r["month_total_tokens"]), 110, "{r}");
    // a stored fraction below .5 is still rounded up when a record adds to it
    env.sql("UPDATE token_usage SET total_tokens = 100.3 WHERE ai_type = 'frac'");
    let r = env.record("frac", 9, 0);
    assert_eq!(i(&r["month_total_tokens"]), 110, "{r}");
    other_ai_type_still_works(&env);
}

#[test]
fn sqlite_real_and_text_counts() {
    let env = Env::new(Backend::Sqlite);
    env.ok(&["migrate"]);
    foreign_row(&env, "real", "100.7");
    env.sql("INSERT INTO token_usage (ai_type, month_year, monthly_limit, tokens_in, tokens_out, total_tokens, request_count) VALUES ('txt', '2026-11', 140000, 400, 100, 'five hundred', 3)");
    let (out, err) = env.expect(0, &["status", "--json"]);
    assert!(err.contains("rounded up to 101"), "{err}");
    assert!(
        err.contains("token_usage row txt 2026-11: total_tokens is not a number"),
        "{err}"
    );
    let s: Value = serde_json::from_str(&out).unwrap();
    let of = |ai: &str| {
        i(&s["ai_types"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["ai_type"] == ai)
            .unwrap()["total_tokens"])
    };
    assert_eq!((of("real"), of("txt")), (101, 500));
    other_ai_type_still_works(&env);
    // recording on the text row keeps the text (never overwritten) and loses no tokens
    let r = env.record("txt", 10, 0);
    assert_eq!(i(&r["month_total_tokens"]), 510, "{r}");
    assert_eq!(
        env.text("SELECT CAST(total_tokens AS TEXT) FROM token_usage WHERE ai_type = 'txt'")
            .as_deref(),
        Some("five hundred")
    );
    let r = env.record("real", 9, 0);
    assert_eq!(i(&r["month_total_tokens"]), 110, "{r}");
    // the month end archives what was read, not the odd value
    env.at("2026-12-01T00:01:00Z").ok(&["monthly-reset"]);
    let a = env
        .at("2026-12-01T00:02:00Z")
        .json(&["archive", "--ai-type", "txt"]);
    assert_eq!(i(&a["archive"][0]["total_tokens"]), 510, "{a}");
}

// ---- 5. what check promises ----

#[test]
fn check_help_says_only_reserve_holds_the_limit_under_concurrency() {
    let env = Env::new(Backend::Sqlite);
    let help = env.ok(&["check", "--help"]);
    assert!(help.contains("only `reserve`"), "{help}");
    assert!(help.contains("holds nothing"), "{help}");
}
