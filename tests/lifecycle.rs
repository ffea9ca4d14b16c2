//! Issue 4: monthly-reset, reset, archive — rollover, catch-up, idempotency, crashes,
//! concurrency and time zones, on SQLite and PostgreSQL.

mod common;

use std::process::Child;

use common::{grand_total, i, spawn, Backend, Env};
use serde_json::Value;

both!(rollover_at_the_last_second_of_the_month, |env| {
    env.at("2026-11-30T23:59:59Z").record("imperium", 500, 0);
    env.at("2026-12-01T00:00:00Z").record("imperium", 300, 0);
    let dec = env.at("2026-12-01T00:00:30Z");
    assert_eq!(i(&dec.status_of("imperium")["total_tokens"]), 300);
    assert_eq!(
        i(&dec.json(&["status", "--month", "2026-11"])["ai_types"][0]["total_tokens"]),
        500
    );
    let r = env.at("2026-12-01T00:01:00Z").json(&["monthly-reset"]);
    assert_eq!(r["month"], "2026-12");
    assert_eq!(i(&r["archived_count"]), 1);
    assert_eq!(r["archived"][0]["ai_type"], "imperium");
    assert_eq!(r["archived"][0]["month_year"], "2026-11");
    assert_eq!(i(&r["archived"][0]["total_tokens"]), 500);
    assert_eq!(
        i(&r["initialized_count"]),
        0,
        "imperium already has a December row"
    );
    assert_eq!(i(&dec.status_of("imperium")["total_tokens"]), 300);
    assert_eq!(grand_total(&env), 800);
    // November is archived now; status still shows it, from the archive
    let nov = dec.json(&["status", "--month", "2026-11"]);
    assert_eq!(nov["from_archive"], true);
    assert_eq!(i(&nov["ai_types"][0]["total_tokens"]), 500);
    assert_eq!(i(&nov["global"]["total_tokens"]), 500);
    let a = env.json(&["archive"]);
    assert_eq!(a["archive"][0]["reason"], "monthly");
    assert_eq!(i(&a["archive"][0]["total_tokens"]), 500);
});

both!(december_to_january, |env| {
    env.at("2026-12-31T23:59:59Z").record("guardian", 700, 0);
    let jan = env.at("2027-01-01T00:01:00Z");
    assert_eq!(i(&jan.status_of("guardian")["total_tokens"]), 0);
    let (out, _) = jan.expect(0, &["monthly-reset"]);
    assert!(
        out.contains("archived 2026-12: 1 AI type(s), 700 tokens"),
        "{out}"
    );
    assert!(
        out.contains("started 2027-01 with 1 new AI type row(s)"),
        "{out}"
    );
    let s = jan.json(&["status"]);
    assert_eq!(s["month"], "2027-01");
    assert_eq!(s["ai_types"][0]["ai_type"], "guardian");
    assert_eq!(i(&s["ai_types"][0]["total_tokens"]), 0);
    assert_eq!(i(&s["ai_types"][0]["monthly_limit"]), 140_000);
    assert_eq!(
        jan.json(&["archive", "--month", "2026-12"])["archive"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
});

both!(leap_day, |env| {
    let leap = env.at("2028-02-29T23:30:00Z");
    leap.record("imperium", 400, 0);
    let s = leap.status_of("imperium");
    assert_eq!(i(&s["today_tokens"]), 400);
    assert_eq!(leap.json(&["status"])["month"], "2028-02");
    let r = env.at("2028-03-01T00:01:00Z").json(&["monthly-reset"]);
    assert_eq!(r["archived"][0]["month_year"], "2028-02");
    assert_eq!(i(&r["archived_count"]), 1);
});

both!(catch_up_over_three_missed_months_then_idempotent, |env| {
    for (month, tokens) in [("2026-08", 100), ("2026-09", 200), ("2026-10", 300)] {
        env.at(&format!("{month}-15T10:00:00Z"))
            .record("imperium", tokens, 0);
        env.at(&format!("{month}-16T10:00:00Z"))
            .record("guardian", tokens / 10, 0);
    }
    env.ok(&[
        "limits",
        "set",
        "--ai-type",
        "sentinel",
        "--monthly",
        "50000",
    ]);
    let before = grand_total(&env);
    let nov = env.at("2026-11-15T08:00:00Z");
    let dry = nov.json(&["monthly-reset", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(i(&dry["archived_count"]), 6);
    assert_eq!(i(&dry["initialized_count"]), 3);
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM token_usage_archive"),
        0,
        "a dry run changes nothing"
    );
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage"), 6);
    let (out, _) = nov.expect(0, &["monthly-reset"]);
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("archived ")).collect();
    assert_eq!(
        lines,
        vec![
            "archived 2026-08: 2 AI type(s), 110 tokens",
            "archived 2026-09: 2 AI type(s), 220 tokens",
            "archived 2026-10: 2 AI type(s), 330 tokens",
        ]
    );
    assert!(
        out.contains("started 2026-11 with 3 new AI type row(s)"),
        "{out}"
    );
    assert_eq!(grand_total(&env), before);
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM token_usage_archive WHERE reason = 'monthly'"),
        6
    );
    let s = nov.json(&["status"]);
    let names: Vec<&str> = s["ai_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ai_type"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["guardian", "imperium", "sentinel"]);
    assert_eq!(
        env.scalar("SELECT monthly_limit FROM token_usage WHERE ai_type = 'sentinel'"),
        50_000
    );
    // a second run in the same month archives nothing and says so
    let again = nov.json(&["monthly-reset"]);
    assert_eq!(i(&again["archived_count"]), 0);
    assert_eq!(i(&again["initialized_count"]), 0);
    let (out, _) = nov.expect(0, &["monthly-reset"]);
    assert!(out.contains("nothing to archive"), "{out}");
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_archive"), 6);
    // newest first
    let a = nov.json(&["archive", "--ai-type", "imperium"]);
    let months: Vec<&str> = a["archive"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["month_year"].as_str().unwrap())
        .collect();
    assert_eq!(months, vec!["2026-10", "2026-09", "2026-08"]);
});

both!(window_counters_and_holds_of_archived_months_go, |env| {
    let oct = env.at("2026-10-31T23:00:00Z");
    oct.record("a", 100, 0);
    let r = oct.json(&[
        "reserve",
        "--ai-type",
        "a",
        "--estimated-tokens",
        "200",
        "--ttl",
        "7d",
    ]);
    let id = r["reservation_id"].as_str().unwrap().to_string();
    assert!(env.scalar("SELECT COUNT(*) FROM token_usage_windows") > 0);
    let nov = env.at("2026-11-01T00:01:00Z");
    nov.ok(&["monthly-reset"]);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_windows"), 0);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_reservations"), 0);
    // the late settle still counts the real numbers, now in November, and says the hold is gone
    let (out, err) = nov.expect(
        0,
        &[
            "record",
            "--ai-type",
            "a",
            "--tokens-in",
            "150",
            "--tokens-out",
            "0",
            "--reservation",
            &id,
            "--json",
        ],
    );
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["reservation_found"], false);
    assert!(
        err.contains("removed with its month by monthly-reset"),
        "{err}"
    );
    assert_eq!(i(&nov.status_of("a")["total_tokens"]), 150);
    assert_eq!(i(&nov.status_of("a")["reserved_tokens"]), 0);
});

both!(prune_logs_in_batches, |env| {
    for (month, n) in [("2026-07", 3), ("2026-08", 2), ("2026-10", 4)] {
        for k in 0..n {
            env.at(&format!("{month}-1{k}T10:00:00Z"))
                .record("a", 10, 0);
        }
    }
    let nov = env.at("2026-11-02T00:00:00Z");
    let dry = nov.json(&["monthly-reset", "--dry-run", "--prune-logs-older-than", "2"]);
    assert_eq!(i(&dry["pruned_logs"]), 5);
    assert_eq!(dry["prune_cutoff"], "2026-09-01T00:00:00Z");
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_logs"), 9);
    let (out, _) = nov.expect(0, &["monthly-reset", "--prune-logs-older-than", "2"]);
    assert!(
        out.contains("pruned 5 log rows from before 2026-09-01T00:00:00Z"),
        "{out}"
    );
    assert!(!out.contains('\u{1b}'));
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_logs"), 4);
    let (_, err) = nov.expect(2, &["monthly-reset", "--prune-logs-older-than", "-1"]);
    assert!(err.contains("months"), "{err}");
});

both!(four_monthly_resets_at_once_archive_each_row_once, |env| {
    for m in ["2026-07", "2026-08", "2026-09", "2026-10"] {
        for a in 0..10 {
            env.at(&format!("{m}-10T10:00:00Z"))
                .record(&format!("agent-{a}"), 100 + a, 0);
        }
    }
    let before = grand_total(&env);
    let nov = env.at("2026-11-01T00:01:00Z");
    let runs: Vec<Child> = (0..4)
        .map(|_| spawn(&nov, &["monthly-reset", "--json"]))
        .collect();
    let mut archived = 0;
    for child in runs {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        archived += i(&v["archived_count"]);
    }
    assert_eq!(archived, 40, "each row archived by exactly one run");
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_archive"), 40);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM (SELECT ai_type, month_year FROM token_usage_archive GROUP BY ai_type, month_year HAVING COUNT(*) > 1) AS d"), 0);
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM token_usage WHERE month_year = '2026-11'"),
        10
    );
    assert_eq!(grand_total(&env), before);
});

fn seed_bulk(env: &Env, rows: i64) {
    // rows AI types × months, spread over 2026-01..2026-10; total_tokens = x
    let per_month = rows / 10;
    match env.backend {
        Backend::Sqlite => env.sql(&format!(
            "WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < {last})
             INSERT INTO token_usage (ai_type, month_year, monthly_limit, tokens_in, tokens_out, total_tokens, request_count)
             SELECT 'bulk-' || (x % {per_month}), printf('2026-%02d', 1 + x / {per_month}), 140000, x, 0, x, 1 FROM n",
            last = rows - 1
        )),
        Backend::Postgres => env.sql(&format!(
            "INSERT INTO token_usage (ai_type, month_year, monthly_limit, tokens_in, tokens_out, total_tokens, request_count)
             SELECT 'bulk-' || (x % {per_month}), '2026-' || lpad((1 + x / {per_month})::text, 2, '0'), 140000, x, 0, x, 1
             FROM generate_series(0, {last}) AS x",
            last = rows - 1
        )),
    }
}

both!(kill_9_during_a_large_monthly_reset_then_rerun, |env| {
    env.ok(&["migrate"]);
    let rows: i64 = 200_000;
    seed_bulk(&env, rows);
    let expected = rows * (rows - 1) / 2;
    assert_eq!(grand_total(&env), expected);
    let nov = env.at("2026-11-01T00:01:00Z");
    // a dry run does the same work and rolls back: it tells how long the real one takes
    let started = std::time::Instant::now();
    nov.ok(&["monthly-reset", "--dry-run"]);
    let full = started.elapsed();
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_archive"), 0);
    for fraction in [0.3, 0.6, 0.9] {
        let mut child = spawn(&nov, &["monthly-reset"]);
        std::thread::sleep(full.mul_f64(fraction));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // before or after, never in between; nothing lost, nothing counted twice
        assert_eq!(
            grand_total(&env),
            expected,
            "after kill at {fraction} of {full:?}"
        );
        let archived = env.scalar("SELECT COUNT(*) FROM token_usage_archive");
        assert!(
            archived == 0 || archived == rows,
            "partial archive of {archived} rows"
        );
        if fraction < 0.5 {
            assert_eq!(
                archived, 0,
                "killed at {fraction} of {full:?}, the run had committed: the test proved nothing"
            );
        }
    }
    let (out, err) = nov.expect(0, &["monthly-reset"]);
    assert!(out.contains("2026-11"), "{out}{err}");
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_archive"), rows);
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM token_usage WHERE month_year < '2026-11'"),
        0
    );
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM token_usage WHERE month_year = '2026-11'"),
        rows / 10
    );
    assert_eq!(grand_total(&env), expected);
});

both!(reset_refuses_without_yes_off_a_terminal, |env| {
    env.record("a", 500, 0);
    let (out, err) = env.expect(2, &["reset"]);
    assert!(out.is_empty());
    assert!(
        err.contains("reset needs --yes when standard input is not a terminal"),
        "{err}"
    );
    assert_eq!(i(&env.status_of("a")["total_tokens"]), 500);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_archive"), 0);
    // a dry run needs no confirmation and changes nothing
    let dry = env.json(&["reset", "--dry-run"]);
    assert_eq!(i(&dry["reset"][0]["total_tokens"]), 500);
    assert_eq!(i(&env.status_of("a")["total_tokens"]), 500);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_archive"), 0);
});

both!(reset_clears_windows_holds_and_emergency, |env| {
    env.record("a", 1_400, 0);
    env.record("b", 300, 0);
    env.ok(&[
        "limits", "set", "--global", "--hourly", "10000", "--daily", "10000",
    ]);
    let held = env.json(&["reserve", "--ai-type", "a", "--estimated-tokens", "0"]);
    let id = held["reservation_id"].as_str().unwrap().to_string();
    assert_eq!(
        env.json_code(3, &["check", "--ai-type", "a", "--estimated-tokens", "500"])["reason"],
        "hourly_limit_exceeded"
    );
    let r = env.json(&["reset", "--ai-type", "a", "--yes"]);
    assert_eq!(r["reset"][0]["ai_type"], "a");
    assert_eq!(i(&r["reset"][0]["total_tokens"]), 1_400);
    assert_eq!(i(&r["archived_count"]), 1);
    // nothing of the cleared usage blocks a request any more
    let d = env.json(&["check", "--ai-type", "a", "--estimated-tokens", "1000"]);
    assert_eq!(d["allowed"], true, "{d}");
    assert_eq!(i(&d["hourly_usage"]), 0);
    assert_eq!(
        i(&d["global_hourly_usage"]),
        300,
        "b's part of the total's hour stays"
    );
    let s = env.status_of("a");
    assert_eq!(
        (
            i(&s["total_tokens"]),
            i(&s["today_tokens"]),
            i(&s["reserved_tokens"])
        ),
        (0, 0, 0)
    );
    assert_eq!(i(&env.status_of("b")["total_tokens"]), 300);
    assert_eq!(
        env.text(&format!(
            "SELECT state FROM token_reservations WHERE id = '{id}'"
        ))
        .as_deref(),
        Some("released")
    );
    assert_eq!(env.json(&["archive"])["archive"][0]["reason"], "manual");
    // emergency: every AI type at 98% is cleared by a reset of all
    env.record("b", 137_000, 0);
    assert_eq!(
        env.json_code(3, &["check", "--ai-type", "b", "--estimated-tokens", "1"])["reason"],
        "emergency_shutdown"
    );
    let (out, _) = env.expect(0, &["reset", "--yes"]);
    assert!(
        out.contains("reset b: 137,300 tokens archived (manual) and cleared"),
        "{out}"
    );
    assert_eq!(
        env.json(&["check", "--ai-type", "b", "--estimated-tokens", "1"])["allowed"],
        true
    );
    assert_eq!(env.status_of("b")["status"], "active");
    assert_eq!(i(&env.json(&["status"])["global"]["today_tokens"]), 0);
    assert_eq!(grand_total(&env), 1_400 + 300 + 137_000);
});

both!(a_time_zone_moves_the_month_boundary, |env| {
    let ny = |now: &str, args: &[&str]| -> Value {
        let mut all: Vec<&str> = args.to_vec();
        all.push("--json");
        let out = env
            .at(now)
            .cmd(&all)
            .env("TOKENCTL_TZ", "America/New_York")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // 03:00 UTC on 1 December is still 30 November in New York
    let r = ny(
        "2026-12-01T03:00:00Z",
        &[
            "record",
            "--ai-type",
            "a",
            "--tokens-in",
            "250",
            "--tokens-out",
            "0",
        ],
    );
    assert_eq!(r["month"], "2026-11");
    let early = ny("2026-12-01T04:30:00Z", &["monthly-reset"]);
    assert_eq!(early["month"], "2026-11");
    assert_eq!(i(&early["archived_count"]), 0);
    let s = ny("2026-12-01T04:30:00Z", &["status"]);
    assert_eq!(s["timezone"], "America/New_York");
    assert_eq!(i(&s["ai_types"][0]["total_tokens"]), 250);
    // 05:01 UTC is 00:01 on 1 December in New York: November is archived
    let late = ny("2026-12-01T05:01:00Z", &["monthly-reset"]);
    assert_eq!(late["month"], "2026-12");
    assert_eq!(late["archived"][0]["month_year"], "2026-11");
    // in UTC the same record belongs to December
    assert_eq!(
        env.at("2026-12-01T05:01:00Z").json(&["status"])["month"],
        "2026-12"
    );
});

both!(
    a_time_zone_stored_in_the_database_applies_to_every_host,
    |env| {
        let c = env.json(&["config"]);
        assert_eq!(
            (c["timezone"].as_str(), c["timezone_source"].as_str()),
            (Some("UTC"), Some("default"))
        );
        let set = env.json(&["config", "set", "--timezone", "America/New_York"]);
        assert_eq!(set["timezone"], "America/New_York");
        // no TOKENCTL_TZ on this "host": the database's zone decides
        let late = env.at("2026-12-01T03:00:00Z");
        let r = late.record("a", 100, 0);
        assert_eq!(r["month"], "2026-11");
        let c = late.json(&["config"]);
        assert_eq!(
            (c["timezone_source"].as_str(), c["current_month"].as_str()),
            (Some("database"), Some("2026-11"))
        );
        // a host whose TOKENCTL_TZ contradicts it is refused rather than filing usage elsewhere
        let out = late
            .cmd(&[
                "record",
                "--ai-type",
                "a",
                "--tokens-in",
                "1",
                "--tokens-out",
                "1",
            ])
            .env("TOKENCTL_TZ", "Europe/Berlin")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains(
            "TOKENCTL_TZ=Europe/Berlin contradicts the database's time zone America/New_York"
        ));
        let same = late
            .cmd(&["status", "--json"])
            .env("TOKENCTL_TZ", "America/New_York")
            .output()
            .unwrap();
        assert_eq!(same.status.code(), Some(0));
        assert_eq!(i(&late.status_of("a")["total_tokens"]), 100);
        let (_, err) = env.expect(2, &["config", "set", "--timezone", "Mars/Olympus"]);
        assert!(err.contains("unknown time zone 'Mars/Olympus'"), "{err}");
        // changing it needs no agreement first
        let out = env
            .cmd(&["config", "set", "--timezone", "UTC"])
            .env("TOKENCTL_TZ", "UTC")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            env.at("2026-12-01T03:00:00Z").json(&["config"])["current_month"],
            "2026-12"
        );
    }
);
