//! Issue 13: dollars and people — USD limits, users as a scope, reservations priced as an
//! upper bound, dated prices with cache rates, a catalogue import, unpriced models never $0,
//! and reports — through the built binary, on both backends.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{i, Env};
use serde_json::Value;

/// A JSON number of dollars as nano-dollars (exact for the amounts these tests use).
fn nanos(v: &Value) -> i64 {
    let usd = v
        .as_f64()
        .unwrap_or_else(|| panic!("not an amount of dollars: {v}"));
    (usd * 1e9).round() as i64
}

/// Limits out of the way of dollar tests: tokens, rates and concurrency all roomy.
fn roomy(env: &Env) {
    for target in [&[][..], &["--global"][..]] {
        let mut args = vec![
            "limits",
            "set",
            "--monthly",
            "10000000",
            "--daily",
            "10000000",
            "--hourly",
            "10000000",
            "--rpm",
            "0",
            "--rpd",
            "0",
            "--max-concurrent",
            "0",
        ];
        args.extend_from_slice(target);
        if target.is_empty() {
            args.extend_from_slice(&["--per-request", "1000000"]);
        }
        env.ok(&args);
    }
}

/// A model at $1,000 per million tokens of every kind: a token costs exactly $0.001.
fn milli_model(env: &Env) {
    env.ok(&[
        "prices",
        "set",
        "--model",
        "milli",
        "--input-per-mtok",
        "1000",
        "--output-per-mtok",
        "1000",
        "--cache-read-per-mtok",
        "1000",
        "--cache-write-per-mtok",
        "1000",
    ]);
}

fn record_for(env: &Env, ai: &str, user: &str, tokens_in: i64, tokens_out: i64) -> Value {
    env.json(&[
        "record",
        "--ai-type",
        ai,
        "--user-id",
        user,
        "--model",
        "milli",
        "--tokens-in",
        &tokens_in.to_string(),
        "--tokens-out",
        &tokens_out.to_string(),
    ])
}

fn check_for(env: &Env, code: i32, ai: &str, user: &str, tokens: i64) -> Value {
    env.json_code(
        code,
        &[
            "check",
            "--ai-type",
            ai,
            "--user-id",
            user,
            "--model",
            "milli",
            "--estimated-tokens",
            &tokens.to_string(),
        ],
    )
}

both!(
    a_user_over_their_daily_dollars_is_denied_while_the_ai_type_has_room,
    |env| {
        roomy(&env);
        milli_model(&env);
        env.ok(&[
            "limits",
            "set",
            "--user",
            "alice",
            "--daily-cost-usd",
            "0.05",
        ]);
        let r = record_for(&env, "imperium", "alice", 30, 10);
        assert_eq!(
            nanos(&r["cost_usd"]),
            40_000_000,
            "40 tokens at $0.001: {r}"
        );
        // $0.04 spent + a 10-token request's $0.01 = the limit: allowed
        let ok = check_for(&env, 0, "imperium", "alice", 10);
        assert_eq!(ok["allowed"], true, "{ok}");
        assert_eq!(nanos(&ok["estimated_cost_usd"]), 10_000_000);
        // one token more passes it
        let d = check_for(&env, 3, "imperium", "alice", 11);
        assert_eq!(d["reason"], "daily_cost_limit_exceeded", "{d}");
        assert_eq!(d["scope"], "user", "{d}");
        assert_eq!(nanos(&d["cost_limit_usd"]), 50_000_000, "{d}");
        assert_eq!(nanos(&d["cost_usage_usd"]), 40_000_000, "{d}");
        assert_eq!(d["retry_after"], "2026-11-24T00:00:00Z", "{d}");
        // the AI type has room: another user of it, and alice's quota says what is left
        assert_eq!(check_for(&env, 0, "imperium", "bob", 11)["allowed"], true);
        let q = env.json(&["quota", "--user-id", "alice"]);
        assert_eq!(nanos(&q["daily_cost_remaining"]), 10_000_000, "{q}");
        assert_eq!(
            q["monthly_cost_remaining"],
            Value::Null,
            "no monthly limit: {q}"
        );
        assert_eq!(q["daily_tokens_remaining"], Value::Null, "{q}");
        assert_eq!(q["can_make_request"], true, "{q}");
        // the text says it in one line and exits 3
        let (out, _) = env.expect(
            3,
            &[
                "check",
                "--ai-type",
                "imperium",
                "--user-id",
                "alice",
                "--model",
                "milli",
                "--estimated-tokens",
                "11",
            ],
        );
        assert!(
            out.contains(
                "denied (daily_cost_limit_exceeded): Daily cost limit exceeded for user alice"
            ),
            "{out}"
        );
    }
);

both!(
    an_ai_type_over_its_daily_dollars_is_denied_while_the_user_has_room,
    |env| {
        roomy(&env);
        milli_model(&env);
        env.ok(&[
            "limits",
            "set",
            "--ai-type",
            "imperium",
            "--daily-cost-usd",
            "0.06",
        ]);
        env.ok(&["limits", "set", "--default-user", "--daily-cost-usd", "1"]);
        record_for(&env, "imperium", "alice", 20, 20);
        record_for(&env, "imperium", "bob", 10, 10);
        let d = check_for(&env, 3, "imperium", "carol", 1);
        assert_eq!(
            (d["reason"].as_str(), d["scope"].as_str()),
            (Some("daily_cost_limit_exceeded"), Some("ai_type")),
            "{d}"
        );
        // carol has a dollar of her own (the default user's) and another AI type has room
        assert_eq!(check_for(&env, 0, "guardian", "carol", 1)["allowed"], true);
        let q = env.json(&["quota", "--user-id", "carol"]);
        assert_eq!(nanos(&q["daily_cost_remaining"]), 1_000_000_000, "{q}");
        // reserve holds the same way
        let r = env.json_code(
            3,
            &[
                "reserve",
                "--ai-type",
                "imperium",
                "--user-id",
                "carol",
                "--model",
                "milli",
                "--estimated-tokens",
                "1",
            ],
        );
        assert_eq!(r["reservation_id"], Value::Null, "{r}");
    }
);

both!(
    a_reservation_is_priced_as_an_upper_bound_and_settled_at_the_real_cost,
    |env| {
        roomy(&env);
        // ten words: ceil(10 x 1.3) = 13 prompt tokens, + 100 max tokens = 113
        let prompt = "one two three four five six seven eight nine ten";
        let with_model = env.json(&[
            "reserve",
            "--ai-type",
            "imperium",
            "--user-id",
            "alice",
            "--prompt",
            prompt,
            "--max-tokens",
            "100",
            "--model",
            "claude-sonnet-4-5",
        ]);
        assert_eq!(with_model["estimated_tokens"], 113);
        // 13 x $3.75 (its cache-write price, dearer than input) + 100 x $15 per million
        assert_eq!(
            nanos(&with_model["estimated_cost_usd"]),
            1_548_750,
            "{with_model}"
        );
        assert_eq!(with_model["cost_basis"]["model"], "claude-sonnet-4-5");
        // without a model: every token at the dearest rate of any price in force
        let prices = env.json(&["prices"]);
        let dearest = prices["prices"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| {
                let mut rates = vec![
                    &p["input_per_mtok"],
                    &p["output_per_mtok"],
                    &p["cache_read_per_mtok"],
                    &p["cache_write_per_mtok"],
                ];
                if !p["long_context"].is_null() {
                    let lc = &p["long_context"]["rates"];
                    rates.extend([
                        &lc["input_per_mtok"],
                        &lc["output_per_mtok"],
                        &lc["cache_read_per_mtok"],
                        &lc["cache_write_per_mtok"],
                    ]);
                }
                rates
            })
            .filter(|v| !v.is_null())
            .map(nanos)
            .max()
            .unwrap();
        let without = env.json(&[
            "reserve",
            "--ai-type",
            "imperium",
            "--user-id",
            "alice",
            "--estimated-tokens",
            "113",
        ]);
        assert_eq!(
            nanos(&without["estimated_cost_usd"]),
            113 * dearest / 1_000_000,
            "{without}"
        );
        assert_eq!(without["cost_basis"], "dearest_no_model", "{without}");
        let held = env.json(&["quota", "--user-id", "alice"]);
        assert_eq!(
            nanos(&held["daily_cost_used"]),
            1_548_750 + 113 * dearest / 1_000_000,
            "both holds count: {held}"
        );
        // settled: 13 in x $3 + 80 out x $15 + 500 cache reads x $0.30 + 100 cache writes x $3.75
        let id = with_model["reservation_id"].as_str().unwrap();
        let settled = env.json(&[
            "record",
            "--ai-type",
            "imperium",
            "--reservation",
            id,
            "--model",
            "claude-sonnet-4-5",
            "--tokens-in",
            "13",
            "--tokens-out",
            "80",
            "--cache-read-tokens",
            "500",
            "--cache-write-tokens",
            "100",
        ]);
        assert_eq!(nanos(&settled["cost_usd"]), 1_764_000, "{settled}");
        assert_eq!(
            settled["user_id"], "alice",
            "the reservation's user: {settled}"
        );
        env.ok(&[
            "release",
            "--reservation",
            without["reservation_id"].as_str().unwrap(),
        ]);
        let after = env.json(&["quota", "--user-id", "alice"]);
        assert_eq!(
            nanos(&after["daily_cost_used"]),
            1_764_000,
            "only the real cost: {after}"
        );
        assert_eq!(
            env.scalar("SELECT cost_nanos FROM token_usage_logs WHERE reservation_id IS NOT NULL"),
            1_764_000
        );
        // OpenAI's cached input: 1,000 fresh x $2.50 + 1,000 cached x $1.25 per million
        let cached = env.json(&[
            "record",
            "--ai-type",
            "imperium",
            "--model",
            "gpt-4o-2024-08-06",
            "--tokens-in",
            "1000",
            "--tokens-out",
            "0",
            "--cache-read-tokens",
            "1000",
        ]);
        assert_eq!(nanos(&cached["cost_usd"]), 3_750_000, "{cached}");
    }
);

both!(
    a_dated_price_charges_old_and_new_requests_differently,
    |env| {
        roomy(&env);
        env.ok(&[
            "prices",
            "set",
            "--model",
            "m2",
            "--input-per-mtok",
            "1",
            "--output-per-mtok",
            "1",
        ]);
        env.ok(&[
            "prices",
            "set",
            "--model",
            "m2",
            "--input-per-mtok",
            "2",
            "--output-per-mtok",
            "2",
            "--effective-from",
            "2026-11-15",
        ]);
        let record_at = |now: &str| {
            env.at(now).json(&[
                "record",
                "--ai-type",
                "imperium",
                "--model",
                "m2",
                "--tokens-in",
                "1000",
                "--tokens-out",
                "0",
            ])
        };
        assert_eq!(
            nanos(&record_at("2026-11-10T12:00:00Z")["cost_usd"]),
            1_000_000
        );
        assert_eq!(
            nanos(&record_at("2026-11-20T12:00:00Z")["cost_usd"]),
            2_000_000
        );
        // a request of the 10th recorded after the change still costs what it cost then
        assert_eq!(
            nanos(&record_at("2026-11-10T18:00:00Z")["cost_usd"]),
            1_000_000
        );
        let listed = env.at("2026-11-10T12:00:00Z").json(&["prices"]);
        let m2 = listed["prices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["model"] == "m2")
            .unwrap();
        assert_eq!(
            nanos(&m2["input_per_mtok"]),
            1_000_000_000,
            "the price in force on the 10th"
        );
        assert_eq!(
            listed["scheduled"][0]["effective_from"], "2026-11-15",
            "{listed}"
        );
        let report = env.at("2026-11-30T12:00:00Z").json(&[
            "report",
            "--since",
            "2026-11-01",
            "--until",
            "2026-11-30",
        ]);
        let day = |d: &str| {
            report["daily_usage"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["date"] == d)
                .unwrap()
                .clone()
        };
        assert_eq!(nanos(&day("2026-11-10")["total_cost"]), 2_000_000);
        assert_eq!(nanos(&day("2026-11-20")["total_cost"]), 2_000_000);
        assert_eq!(nanos(&report["totals"]["cost_usd"]), 4_000_000);
        // prices unset of one date puts the other back
        env.ok(&[
            "prices",
            "unset",
            "--model",
            "m2",
            "--effective-from",
            "2026-11-15",
        ]);
        assert_eq!(
            nanos(&record_at("2026-11-21T12:00:00Z")["cost_usd"]),
            1_000_000
        );
    }
);

both!(an_unpriced_model_is_never_a_silent_zero, |env| {
    roomy(&env);
    milli_model(&env);
    let r = env.run(&[
        "record",
        "--ai-type",
        "imperium",
        "--model",
        "llama-9-mystery",
        "--tokens-in",
        "100",
        "--tokens-out",
        "100",
        "--json",
    ]);
    assert_eq!(r.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(doc["cost_usd"], Value::Null, "{doc}");
    assert_eq!(doc["priced"], false);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.contains("no price known for model 'llama-9-mystery'") && stderr.contains("not $0"),
        "{stderr}"
    );
    // charged against USD limits at the dearest price: here $1,000 per million (milli's)
    // unless a built-in price is dearer; the test reads the charge back
    let charge = nanos(&doc["unpriced_charge_usd"]);
    assert!(
        charge >= 200 * 1_000,
        "200 tokens at $1,000/Mtok at least: {doc}"
    );
    assert_eq!(
        env.scalar(
            "SELECT COUNT(*) FROM token_usage_logs WHERE cost_usd IS NULL AND cost_nanos IS NULL"
        ),
        1,
        "the log row's cost is null"
    );
    record_for(&env, "imperium", "alice", 1, 0);
    // every total that includes it says so
    let st = env.json(&["status"]);
    assert_eq!(st["global"]["cost_complete"], false, "{st}");
    assert_eq!(st["global"]["unpriced_requests"], 1);
    assert_eq!(st["ai_types"][0]["cost_complete"], false);
    assert_eq!(
        nanos(&st["global"]["cost_usd"]),
        1_000_000,
        "the priced part only"
    );
    let rep = env.json(&["report", "--days", "1"]);
    assert_eq!(rep["totals"]["cost_complete"], false, "{rep}");
    assert_eq!(rep["totals"]["unpriced_requests"], 1);
    let mystery = rep["model_usage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "llama-9-mystery")
        .unwrap();
    assert_eq!(mystery["cost_complete"], false);
    let table = env.ok(&["report", "--days", "1"]);
    assert!(
        table.contains("cost incomplete: 1 request has no price"),
        "{table}"
    );
    // a USD limit is not met by it silently: it counts at its charge
    let limit = format!("{:.9}", (charge + 1_000_000) as f64 / 1e9);
    env.ok(&["limits", "set", "--global", "--daily-cost-usd", &limit]);
    let d = check_for(&env, 3, "imperium", "alice", 1);
    assert_eq!(
        (d["reason"].as_str(), d["scope"].as_str()),
        (Some("daily_cost_limit_exceeded"), Some("global")),
        "{d}"
    );
    assert_eq!(nanos(&d["cost_usage_usd"]), charge + 1_000_000, "{d}");
});

both!(prices_import_reads_a_litellm_catalogue, |env| {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/litellm_prices.json"
    );
    let dry = env.json(&[
        "prices",
        "import",
        fixture,
        "--provider",
        "anthropic",
        "--provider",
        "openai",
        "--dry-run",
    ]);
    assert_eq!(
        (i(&dry["added_count"]), i(&dry["skipped_count"])),
        (5, 4),
        "{dry}"
    );
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM token_model_prices"),
        0,
        "a dry run writes nothing"
    );
    let first = env.json(&[
        "prices",
        "import",
        fixture,
        "--provider",
        "anthropic",
        "--provider",
        "openai",
    ]);
    assert_eq!(first["added"].as_array().unwrap().len(), 5, "{first}");
    let skipped: Vec<&str> = first["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        skipped,
        [
            "azure/gpt-4o",
            "gpt-4o-realtime-preview-2024-10-01",
            "sample_spec",
            "text-embedding-3-small"
        ],
        "{first}"
    );
    // again: nothing changes; with one price edited, that one is changed
    let again = env.json(&[
        "prices",
        "import",
        fixture,
        "--provider",
        "anthropic",
        "--provider",
        "openai",
    ]);
    assert_eq!(
        (i(&again["added_count"]), i(&again["unchanged_count"])),
        (0, 5),
        "{again}"
    );
    let edited = std::fs::read_to_string(fixture).unwrap().replace("\"output_cost_per_token\": 1e-05,\n        \"supports_prompt_caching\": true,\n        \"supports_reasoning\"", "\"output_cost_per_token\": 1.2e-05,\n        \"supports_prompt_caching\": true,\n        \"supports_reasoning\"");
    let path = env.path("edited.json");
    std::fs::write(&path, edited).unwrap();
    let changed = env.json(&[
        "prices",
        "import",
        path.to_str().unwrap(),
        "--provider",
        "openai",
    ]);
    assert_eq!(
        changed["changed"],
        serde_json::json!(["gpt-5"]),
        "{changed}"
    );
    // imported prices price requests, cache reads and writes included: 1,000 in x $3 +
    // 1,000 out x $15 + 10,000 cache reads x $0.30 + 1,000 cache writes x $3.75 per million
    let r = env.json(&[
        "record",
        "--ai-type",
        "a",
        "--model",
        "claude-sonnet-4-5-20250929",
        "--tokens-in",
        "1000",
        "--tokens-out",
        "1000",
        "--cache-read-tokens",
        "10000",
        "--cache-write-tokens",
        "1000",
    ]);
    assert_eq!(nanos(&r["cost_usd"]), 24_750_000, "{r}");
    // a catalogue that is not JSON: one line, exit 2, nothing written
    let bad = env.path("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let (_, err) = env.expect(2, &["prices", "import", bad.to_str().unwrap()]);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("not valid JSON"), "{err}");
});

/// Python's csv module reads `text` into rows of fields (the venv's python, or python3).
fn python_csv(text: &str) -> Vec<Vec<String>> {
    let python = std::env::var("TOKENCTL_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = std::process::Command::new(python)
        .args([
            "-c",
            "import csv, json, sys; print(json.dumps(list(csv.reader(sys.stdin, strict=True))))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

both!(a_report_on_known_data_in_table_json_and_csv, |env| {
    roomy(&env);
    milli_model(&env);
    env.ok(&[
        "prices",
        "set",
        "--model",
        "cheap",
        "--input-per-mtok",
        "1",
        "--output-per-mtok",
        "2",
    ]);
    let rec = |day: &str, ai: &str, user: &str, model: &str, tin: &str, tout: &str| {
        env.at(&format!("{day}T10:00:00Z")).ok(&[
            "record",
            "--ai-type",
            ai,
            "--user-id",
            user,
            "--model",
            model,
            "--tokens-in",
            tin,
            "--tokens-out",
            tout,
        ]);
    };
    // by hand: milli costs $0.001 a token; cheap $1 / $2 per million in / out
    rec("2026-11-20", "imperium", "alice", "milli", "100", "50"); // $0.15
    rec("2026-11-20", "imperium", "alice", "milli", "10", "0"); // $0.01
    rec("2026-11-20", "guardian", "bob", "cheap", "1000", "500"); // $0.002
    rec("2026-11-21", "guardian", "a,\"b\"", "milli", "200", "0"); // $0.20
    rec("2026-11-22", "imperium", "bob", "milli", "30", "20"); // $0.05
    rec("2026-11-10", "imperium", "alice", "milli", "999", "0"); // outside the range
    let at = env.at("2026-11-22T23:00:00Z");
    let j = at.json(&["report", "--days", "3"]);
    assert_eq!(
        j["period"],
        serde_json::json!({"since": "2026-11-20", "until": "2026-11-22"})
    );
    let t = &j["totals"];
    assert_eq!(
        (i(&t["requests"]), i(&t["tokens"]), i(&t["unique_users"])),
        (5, 1910, 3),
        "{t}"
    );
    assert_eq!(nanos(&t["cost_usd"]), 412_000_000, "{t}");
    assert_eq!(t["cost_complete"], true);
    let days: Vec<(i64, i64, i64, i64)> = j["daily_usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                i(&d["total_requests"]),
                i(&d["total_tokens"]),
                nanos(&d["total_cost"]),
                i(&d["unique_users"]),
            )
        })
        .collect();
    assert_eq!(
        days,
        [
            (3, 1660, 162_000_000, 2),
            (1, 200, 200_000_000, 1),
            (1, 50, 50_000_000, 1)
        ]
    );
    let users: Vec<(&str, i64)> = j["top_users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["user_id"].as_str().unwrap(), nanos(&u["total_cost"])))
        .collect();
    assert_eq!(
        users,
        [
            ("a,\"b\"", 200_000_000),
            ("alice", 160_000_000),
            ("bob", 52_000_000)
        ]
    );
    let models: Vec<(&str, i64)> = j["model_usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["model"].as_str().unwrap(), i(&m["request_count"])))
        .collect();
    assert_eq!(models, [("milli", 4), ("cheap", 1)]);
    let ai: Vec<(&str, i64)> = j["ai_type_usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["ai_type"].as_str().unwrap(), nanos(&a["total_cost"])))
        .collect();
    assert_eq!(ai, [("imperium", 210_000_000), ("guardian", 202_000_000)]);
    // filtered by user, and by AI type
    let bob = at.json(&["report", "--days", "3", "--user-id", "bob"]);
    assert_eq!(nanos(&bob["totals"]["cost_usd"]), 52_000_000);
    let g = at.json(&["report", "--days", "3", "--ai-type", "guardian"]);
    assert_eq!(i(&g["totals"]["requests"]), 2);
    // the table: totals, a bar per day with cost, the biggest day the longest bar
    let table = at.ok(&["report", "--days", "3"]);
    assert!(
        table.contains("5 requests, 1,910 tokens, $0.412, 3 users"),
        "{table}"
    );
    let bar = |day: &str| {
        table
            .lines()
            .find(|l| l.starts_with(day))
            .unwrap()
            .chars()
            .filter(|c| ('\u{2588}'..='\u{258f}').contains(c))
            .count()
    };
    assert!(
        bar("2026-11-21") > bar("2026-11-20")
            && bar("2026-11-20") > bar("2026-11-22")
            && bar("2026-11-22") > 0,
        "{table}"
    );
    // CSV, read by Python's csv module: a row per day x AI type x user x model
    let csv = at.ok(&["report", "--days", "3", "--csv"]);
    let rows = python_csv(&csv);
    assert_eq!(rows[0][..4], ["date", "ai_type", "user_id", "model"]);
    assert_eq!(rows.len(), 1 + 4, "{csv}");
    let quoted = rows.iter().find(|r| r[2] == "a,\"b\"").unwrap();
    assert_eq!(
        quoted[..5],
        ["2026-11-21", "guardian", "a,\"b\"", "milli", "1"]
    );
    let cost_col = rows[0].iter().position(|c| c == "cost_usd").unwrap();
    assert_eq!(quoted[cost_col], "0.2");
    let alice = rows.iter().find(|r| r[2] == "alice").unwrap();
    assert_eq!((alice[4].as_str(), alice[cost_col].as_str()), ("2", "0.16"));
    // a range that is not one: exit 2, one line
    let (_, err) = at.expect(
        2,
        &["report", "--since", "2026-11-22", "--until", "2026-11-20"],
    );
    assert!(
        err.contains("since (2026-11-22) is after until (2026-11-20)"),
        "{err}"
    );
});

both!(
    concurrent_reservers_never_pass_any_users_or_the_totals_dollars,
    |env| {
        roomy(&env);
        milli_model(&env);
        env.ok(&[
            "limits",
            "set",
            "--default-user",
            "--daily-cost-usd",
            "0.05",
        ]);
        env.ok(&["limits", "set", "--global", "--daily-cost-usd", "0.30"]);
        // 64 reservers over 8 users, each asking for 10 tokens at $0.001: $0.01 a hold. Users
        // allow 5 each (40 in all); the total allows 30.
        let handles: Vec<_> = (0..64)
            .map(|n| {
                let cmd = |args: &[&str]| env.cmd(args);
                let user = format!("u{}", n % 8);
                let ai = format!("agent-{}", n % 4);
                let mut reserve = cmd(&[
                    "reserve",
                    "--ai-type",
                    &ai,
                    "--user-id",
                    &user,
                    "--model",
                    "milli",
                    "--estimated-tokens",
                    "10",
                    "--json",
                ]);
                let (ai, user) = (ai.clone(), user.clone());
                let settle = move |id: &str| {
                    vec![
                        "record".to_string(),
                        "--ai-type".into(),
                        ai.clone(),
                        "--user-id".into(),
                        user.clone(),
                        "--model".into(),
                        "milli".into(),
                        "--tokens-in".into(),
                        "6".into(),
                        "--tokens-out".into(),
                        "4".into(),
                        "--reservation".into(),
                        id.to_string(),
                    ]
                };
                let child = reserve
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                (child, settle)
            })
            .collect();
        let mut allowed = 0;
        let mut settles = Vec::new();
        for (child, settle) in handles {
            let out = child.wait_with_output().unwrap();
            let doc: Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
            if doc["allowed"] == true {
                allowed += 1;
                let args = settle(doc["reservation_id"].as_str().unwrap());
                settles.push(
                    env.cmd(&args.iter().map(String::as_str).collect::<Vec<_>>())
                        .spawn()
                        .unwrap(),
                );
            } else {
                assert_eq!(doc["reason"], "daily_cost_limit_exceeded", "{doc}");
            }
        }
        for mut s in settles {
            assert!(s.wait().unwrap().success());
        }
        assert_eq!(allowed, 30, "the total's $0.30 is the binding limit");
        let per_user = |u: &str| {
            env.scalar(&format!(
                "SELECT CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) FROM token_usage_logs WHERE user_id = '{u}'"
            ))
        };
        for n in 0..8 {
            assert!(
                per_user(&format!("u{n}")) <= 50_000_000,
                "u{n} spent {}",
                per_user(&format!("u{n}"))
            );
        }
        assert_eq!(
            env.scalar("SELECT CAST(SUM(cost_nanos) AS BIGINT) FROM token_usage_logs"),
            300_000_000
        );
        assert_eq!(
            env.scalar("SELECT COUNT(*) FROM token_reservations WHERE state = 'held'"),
            0
        );
    }
);

both!(bad_dollar_input_is_refused_and_writes_nothing, |env| {
    let cases: [&[&str]; 6] = [
        &["limits", "set", "--user", "alice", "--daily-cost-usd", "-1"],
        &[
            "limits",
            "set",
            "--user",
            "alice",
            "--daily-cost-usd",
            "0.0000000001",
        ],
        &["limits", "set", "--user", "alice", "--rpm", "5"],
        &[
            "limits",
            "set",
            "--user",
            "alice",
            "--global",
            "--daily-cost-usd",
            "1",
        ],
        &[
            "prices",
            "set",
            "--model",
            "m",
            "--input-per-mtok",
            "abc",
            "--output-per-mtok",
            "1",
        ],
        &[
            "prices",
            "set",
            "--model",
            "m",
            "--input-per-mtok",
            "1",
            "--output-per-mtok",
            "1",
            "--effective-from",
            "2026-13-01",
        ],
    ];
    for args in cases {
        let (out, err) = env.expect(2, args);
        assert!(out.is_empty(), "{args:?}: {out}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    let (_, err) = env.expect(2, &["limits", "set", "--user", "alice", "--rpm", "5"]);
    assert!(
        err.contains("users have token and USD limits only"),
        "{err}"
    );
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM token_limits WHERE scope = 'user'"),
        0
    );
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_model_prices"), 0);
    // unset puts a user's value back; their row goes when nothing is left
    env.ok(&[
        "limits",
        "set",
        "--user",
        "alice",
        "--monthly-cost-usd",
        "50",
        "--daily",
        "1000",
    ]);
    env.ok(&["limits", "unset", "--user", "alice", "--monthly-cost-usd"]);
    let q = env.json(&["quota", "--user-id", "alice"]);
    assert_eq!(
        (
            q["monthly_cost_remaining"].clone(),
            i(&q["daily_tokens_remaining"])
        ),
        (Value::Null, 1000),
        "{q}"
    );
    env.ok(&["limits", "unset", "--user", "alice", "--daily"]);
    assert_eq!(
        env.scalar("SELECT COUNT(*) FROM token_limits WHERE scope = 'user'"),
        0
    );
});

both!(the_readme_worked_example_holds, |env| {
    roomy(&env);
    let prompt = env.path("p.txt");
    std::fs::write(&prompt, "word ".repeat(3000)).unwrap();
    let prompt = prompt.to_str().unwrap();
    let held = env.json(&[
        "reserve",
        "--ai-type",
        "imperium",
        "--model",
        "claude-sonnet-4-5",
        "--prompt-file",
        prompt,
        "--max-tokens",
        "1000",
    ]);
    assert_eq!(held["estimated_tokens"], 4900);
    assert_eq!(
        held["estimated_cost_usd"].as_f64(),
        Some(0.029625),
        "{held}"
    );
    let id = held["reservation_id"].as_str().unwrap();
    let settled = env.json(&[
        "record",
        "--ai-type",
        "imperium",
        "--reservation",
        id,
        "--model",
        "claude-sonnet-4-5",
        "--tokens-in",
        "3900",
        "--tokens-out",
        "420",
        "--cache-read-tokens",
        "12000",
        "--cache-write-tokens",
        "800",
    ]);
    assert_eq!(settled["cost_usd"].as_f64(), Some(0.0246), "{settled}");
    let without = env.json(&[
        "reserve",
        "--ai-type",
        "imperium",
        "--prompt-file",
        prompt,
        "--max-tokens",
        "1000",
    ]);
    assert_eq!(
        without["estimated_cost_usd"].as_f64(),
        Some(0.354),
        "{without}"
    );
});

both!(
    reset_gives_users_back_the_holds_it_ends_and_clears_dollars,
    |env| {
        roomy(&env);
        milli_model(&env);
        env.ok(&[
            "limits",
            "set",
            "--user",
            "alice",
            "--daily-cost-usd",
            "0.05",
        ]);
        env.ok(&[
            "limits",
            "set",
            "--ai-type",
            "imperium",
            "--daily-cost-usd",
            "1",
        ]);
        record_for(&env, "imperium", "bob", 30, 0);
        let held = env.json(&[
            "reserve",
            "--ai-type",
            "imperium",
            "--user-id",
            "alice",
            "--model",
            "milli",
            "--estimated-tokens",
            "40",
        ]);
        assert_eq!(held["allowed"], true, "{held}");
        assert_eq!(
            check_for(&env, 3, "guardian", "alice", 11)["scope"],
            "user",
            "her hold counts"
        );
        env.ok(&["reset", "--ai-type", "imperium", "--yes"]);
        // her hold ended with the reset: she has her $0.05 again, on any AI type
        let q = env.json(&["quota", "--user-id", "alice"]);
        assert_eq!(nanos(&q["daily_cost_remaining"]), 50_000_000, "{q}");
        assert_eq!(check_for(&env, 0, "guardian", "alice", 50)["allowed"], true);
        // imperium's dollars start afresh, the total's lose exactly imperium's
        let st = env.json(&["status", "--ai-type", "imperium"]);
        assert_eq!(nanos(&st["ai_types"][0]["cost_usd"]), 0, "{st}");
        assert_eq!(
            check_for(&env, 0, "imperium", "carol", 999)["allowed"],
            true
        );
        assert_eq!(
        env.scalar("SELECT CAST(COALESCE(SUM(cost_nanos + reserved_cost_nanos), 0) AS BIGINT) FROM token_usage_windows WHERE ai_type = '*'"),
        0
    );
    }
);

both!(dollars_another_program_adds_count_and_stay, |env| {
    roomy(&env);
    milli_model(&env);
    record_for(&env, "imperium", "alice", 10, 0);
    // the existing backend adds $5 to the month's float column, as it does
    env.sql("UPDATE token_usage SET cost_usd = cost_usd + 5 WHERE ai_type = 'imperium'");
    env.ok(&[
        "limits",
        "set",
        "--ai-type",
        "imperium",
        "--monthly-cost-usd",
        "5",
    ]);
    let d = check_for(&env, 3, "imperium", "bob", 1);
    assert_eq!(
        d["reason"], "monthly_cost_limit_exceeded",
        "its $5 counts: {d}"
    );
    // tokenctl's next record keeps what the other program added
    record_for(&env, "imperium", "alice", 10, 0);
    let st = env.status_of("imperium");
    assert_eq!(nanos(&st["cost_usd"]), 5_020_000_000, "{st}");
});

both!(unpriced_requests_stay_flagged_in_a_closed_month, |env| {
    roomy(&env);
    env.ok(&[
        "record",
        "--ai-type",
        "imperium",
        "--model",
        "llama-9",
        "--tokens-in",
        "5",
        "--tokens-out",
        "5",
    ]);
    env.at("2026-12-01T00:01:00Z").ok(&["monthly-reset"]);
    // late, into the closed month, unpriced again
    env.ok(&[
        "record",
        "--ai-type",
        "imperium",
        "--model",
        "llama-9",
        "--tokens-in",
        "5",
        "--tokens-out",
        "5",
    ]);
    let st = env
        .at("2026-12-02T00:00:00Z")
        .json(&["status", "--month", "2026-11"]);
    assert_eq!(st["ai_types"][0]["cost_complete"], false, "{st}");
    assert_eq!(st["global"]["unpriced_requests"], 2, "{st}");
});

both!(a_report_lists_only_users_who_made_a_request, |env| {
    roomy(&env);
    milli_model(&env);
    record_for(&env, "imperium", "alice", 10, 0);
    env.ok(&[
        "reserve",
        "--ai-type",
        "imperium",
        "--user-id",
        "dave",
        "--estimated-tokens",
        "5",
    ]);
    let r = env.json(&["report", "--days", "1"]);
    let users: Vec<&str> = r["top_users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["alice"], "{r}");
    assert_eq!(r["totals"]["unique_users"], 1);
    assert_eq!(r["daily_usage"][0]["unique_users"], 1);
});

#[test]
fn an_in_memory_database_opens_and_records() {
    let env = Env::new(common::Backend::Sqlite);
    let out = env
        .cmd(&[
            "--database-url",
            "sqlite::memory:",
            "record",
            "--ai-type",
            "a",
            "--tokens-in",
            "1",
            "--tokens-out",
            "1",
            "--model",
            "nope",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["cost_usd"], Value::Null);
}
