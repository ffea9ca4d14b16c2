//! Issue 10: what an operator reads — tables that fit 80 columns, --wide, --no-headers,
//! check --quiet, thousands separators and costs to the micro-dollar — through the built binary.

mod common;

use std::process::Command;

use common::{i, Env};
use serde_json::Value;

/// 1234567 → "1,234,567", written here again so the test does not trust the code under test.
fn sep(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// `program` with this test's environment (database, clock, no stray variables).
fn with_env(env: &Env, program: &str) -> Command {
    let base = env.cmd(&[]);
    let mut c = Command::new(program);
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// Terminal escape sequences out, carriage returns as line ends: what a reader sees.
fn visible(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ params final-byte
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for d in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                }
            }
            '\r' => out.push('\n'),
            _ => out.push(c),
        }
    }
    out
}

fn assert_fits(what: &str, text: &str, width: usize) {
    for line in text.lines() {
        assert!(
            line.chars().count() <= width,
            "{what}: a line of {} columns (over {width}):\n{line}\n---\n{text}",
            line.chars().count()
        );
    }
}

/// `n` appears with its separators, not run into other digits (so not split across lines).
fn assert_whole(what: &str, text: &str, n: i64) {
    let s = sep(n);
    let found = text.match_indices(&s).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + s.len()..].chars().next();
        let digitish = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit() || c == ',');
        !digitish(before) && !digitish(after)
    });
    assert!(found, "{what}: {s} does not appear whole in\n{text}");
}

fn at(env: &Env, columns: Option<&str>, args: &[&str]) -> String {
    let mut c = env.cmd(args);
    if let Some(w) = columns {
        c.env("COLUMNS", w);
    }
    let out = c.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `tokenctl args` on a real pseudo-terminal of `cols` columns (util-linux `script`), with no
/// COLUMNS: the width comes from the terminal itself.
fn on_pty(env: &Env, cols: u16, args: &[&str]) -> String {
    let line = format!(
        "stty cols {cols} rows 40; exec {} {} 2>/dev/null",
        env!("CARGO_BIN_EXE_tokenctl"),
        args.join(" ")
    );
    let mut c = with_env(env, "script");
    c.args(["-qec", &line, "/dev/null"]);
    let out = c.output().expect("util-linux script");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    visible(&String::from_utf8_lossy(&out.stdout))
}

/// A realistic month: three AI types (one with a long name), big limits and numbers, alerts,
/// an archived month, reservations held.
fn busy(env: &Env) {
    let october = env.at("2026-10-12T09:00:00Z");
    october.record("imperium", 1_234_567, 76_543);
    env.ok(&["monthly-reset"]);
    env.ok(&[
        "limits",
        "set",
        "--monthly",
        "25000000",
        "--per-request",
        "1000000",
    ]);
    env.ok(&["limits", "set", "--global", "--monthly", "60000000"]);
    env.ok(&[
        "limits",
        "set",
        "--ai-type",
        "guardian",
        "--daily",
        "1750000",
        "--cooldown",
        "30",
    ]);
    env.ok(&[
        "reserve",
        "--ai-type",
        "guardian",
        "--estimated-tokens",
        "1234",
    ]);
    for (ai, tokens_in, tokens_out) in [
        ("imperium", 1_234_567, 765_432),
        ("guardian", 987_654, 12_345),
        ("oracle_long_name_01", 1_111_111, 888_888),
        ("imperium", 1_500_000, 600_000),
    ] {
        env.ok(&[
            "record",
            "--ai-type",
            ai,
            "--tokens-in",
            &tokens_in.to_string(),
            "--tokens-out",
            &tokens_out.to_string(),
            "--model",
            "claude-sonnet-4-5",
        ]);
    }
    for _ in 0..9 {
        env.record("imperium", 1_900_000, 0);
    }
    env.ok(&[
        "monitor",
        "--once",
        "--alerts-file",
        env.path("alerts.json").to_str().unwrap(),
    ]);
}

both!(
    default_views_fit_80_columns_with_every_number_whole,
    |env| {
        busy(&env);
        let status = env.json(&["status"]);
        let rows = status["ai_types"].as_array().unwrap();
        assert_eq!(rows.len(), 3);
        let alerts_file = env.path("alerts.json");
        let monitor = [
            "monitor",
            "--once",
            "--alerts-file",
            alerts_file.to_str().unwrap(),
        ];
        let views: [(&str, &[&str]); 8] = [
            ("status", &["status"]),
            ("limits", &["limits"]),
            ("alerts", &["alerts"]),
            ("alerts --active", &["alerts", "--active"]),
            ("archive", &["archive"]),
            ("distribution", &["distribution"]),
            ("prices", &["prices"]),
            ("monitor", &monitor),
        ];
        for (name, args) in views {
            // a pipe (80 by default), COLUMNS=80, and a real 80-column terminal
            for text in [
                at(&env, None, args),
                at(&env, Some("80"), args),
                on_pty(&env, 80, args),
            ] {
                assert_fits(name, &text, 80);
                if name == "status" || name == "monitor" {
                    for a in rows {
                        assert_whole(name, &text, i(&a["total_tokens"]));
                        assert_whole(name, &text, i(&a["monthly_limit"]));
                    }
                    assert_whole(name, &text, i(&status["global"]["total_tokens"]));
                }
            }
        }
        // figures each view owes its reader, checked once at 80 columns
        let limits = at(&env, Some("80"), &["limits"]);
        for n in [25_000_000, 1_750_000, 1_000_000, 60_000_000, 4_200_000] {
            assert_whole("limits", &limits, n);
        }
        assert!(
            limits.contains("30s"),
            "guardian's cooldown is set, so shown:\n{limits}"
        );
        let status_text = at(&env, Some("80"), &["status"]);
        for a in rows {
            assert_whole("status", &status_text, i(&a["remaining"]));
            assert!(status_text.contains(a["ai_type"].as_str().unwrap()));
        }
        let archive = at(&env, Some("80"), &["archive"]);
        assert_whole("archive", &archive, 1_234_567 + 76_543);
        let alerts = env.json(&["alerts"]);
        let text = at(&env, Some("80"), &["alerts"]);
        for a in alerts["alerts"].as_array().unwrap() {
            assert_whole("alerts", &text, i(&a["total_tokens"]));
            assert!(
                a["message"]
                    .as_str()
                    .unwrap()
                    .contains(&sep(i(&a["total_tokens"]))),
                "an alert's message has separators: {a}"
            );
        }
        let distribution = at(&env, Some("80"), &["distribution"]);
        let d = env.json(&["distribution"]);
        assert_whole(
            "distribution",
            &distribution,
            i(&d["monthly_distribution"]["total_tokens"]),
        );
        // narrower still: the columns of less interest go, numbers stay whole
        let narrow = at(&env, Some("60"), &["status"]);
        assert_fits("status at 60", &narrow, 60);
        for a in rows {
            assert_whole("status at 60", &narrow, i(&a["total_tokens"]));
        }
        assert!(narrow.contains("--wide adds"), "{narrow}");
    }
);

both!(wide_shows_every_column_and_no_headers_only_rows, |env| {
    busy(&env);
    let wide = at(&env, Some("80"), &["status", "--wide"]);
    let header = wide.lines().nth(1).unwrap();
    for column in [
        "Today",
        "Requests",
        "This hour",
        "Held",
        "Burn/h",
        "Limit reached",
        "Last request",
    ] {
        assert!(header.contains(column), "--wide has {column}: {header}");
    }
    assert!(wide.lines().any(|l| l.chars().count() > 80), "{wide}");
    let held = wide
        .lines()
        .find(|l| l.starts_with("guardian"))
        .unwrap()
        .split_whitespace()
        .nth(10)
        .unwrap()
        .to_string();
    assert_eq!(
        held, "1,234",
        "guardian's held tokens in the Held column: {wide}"
    );
    let alerts = at(&env, Some("80"), &["alerts", "--wide"]);
    assert!(
        alerts.contains("tokens/hour") || alerts.contains("Message"),
        "{alerts}"
    );

    // --no-headers: the rows, nothing else, in the same columns as with headers
    let status = env.json(&["status"]);
    let plain = at(&env, Some("80"), &["status", "--no-headers"]);
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(lines.len(), 4, "three AI types and the total:\n{plain}");
    for (line, a) in lines.iter().zip(status["ai_types"].as_array().unwrap()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[0], a["ai_type"].as_str().unwrap());
        assert_eq!(fields[2], sep(i(&a["total_tokens"])), "{line}");
    }
    assert!(lines[3].starts_with("* "), "{plain}");
    let headed = at(&env, Some("80"), &["status"]);
    assert!(
        headed.contains(lines[0]),
        "same columns with and without headers"
    );
    for args in [
        &["limits", "--no-headers"][..],
        &["alerts", "--no-headers"],
        &["archive", "--no-headers"],
        &["prices", "--no-headers"],
    ] {
        let text = at(&env, Some("80"), args);
        assert!(!text.is_empty());
        for word in [
            "AI type",
            "Model",
            "Month",
            "Applies to",
            "--wide",
            "Levels",
        ] {
            assert!(!text.contains(word), "{args:?} prints rows only:\n{text}");
        }
    }
    // and --json takes neither
    env.expect(2, &["status", "--json", "--wide"]);
    env.expect(2, &["limits", "--json", "--no-headers"]);
});

both!(the_live_monitor_fits_its_terminal, |env| {
    busy(&env);
    let alerts_file = env.path("live-alerts.json");
    let line = format!(
        "stty cols 80 rows 40; timeout -s INT 3 {} monitor --interval 1 --alerts-file {}",
        env!("CARGO_BIN_EXE_tokenctl"),
        alerts_file.display()
    );
    let mut c = with_env(&env, "script");
    c.args(["-qec", &line, "/dev/null"]);
    let out = c.output().unwrap();
    let seen = visible(&String::from_utf8_lossy(&out.stdout));
    assert!(seen.contains("oracle_long_name_01"), "{seen}");
    assert!(seen.contains('█'), "bars drawn: {seen}");
    assert_fits("monitor's live view", &seen, 80);
    let status = env.json(&["status"]);
    assert_whole("live view", &seen, i(&status["global"]["total_tokens"]));
});

both!(check_quiet_answers_with_its_exit_code_only, |env| {
    env.ok(&["limits", "set", "--ai-type", "a", "--per-request", "100"]);
    let (out, err) = env.expect(
        0,
        &[
            "check",
            "--ai-type",
            "a",
            "--estimated-tokens",
            "50",
            "--quiet",
        ],
    );
    assert_eq!((out.as_str(), err.as_str()), ("", ""));
    let (out, err) = env.expect(
        3,
        &["check", "--ai-type", "a", "--estimated-tokens", "500", "-q"],
    );
    assert_eq!((out.as_str(), err.as_str()), ("", ""));
    // bad input still says why
    let (_, err) = env.expect(
        2,
        &["check", "--ai-type", "a", "--estimated-tokens", "x", "-q"],
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    env.expect(
        2,
        &[
            "check",
            "--ai-type",
            "a",
            "--estimated-tokens",
            "5",
            "-q",
            "--json",
        ],
    );
});

both!(
    text_output_has_separators_and_json_costs_micro_dollars,
    |env| {
        env.ok(&[
            "limits",
            "set",
            "--monthly",
            "5000000",
            "--daily",
            "5000000",
            "--hourly",
            "5000000",
            "--per-request",
            "3000000",
        ]);
        env.ok(&[
            "limits",
            "set",
            "--global",
            "--monthly",
            "5000000",
            "--daily",
            "5000000",
            "--hourly",
            "5000000",
        ]);
        let out = env.ok(&["check", "--ai-type", "a", "--estimated-tokens", "1234567"]);
        assert!(out.contains("1,234,567 tokens"), "{out}");
        let (out, _) = env.expect(
            3,
            &["check", "--ai-type", "a", "--estimated-tokens", "4000000"],
        );
        assert!(
            out.contains("estimated_tokens=4,000,000 request_limit=3,000,000"),
            "{out}"
        );
        // seven requests whose costs add up to binary noise in a float
        let gpt4o = [
            "record",
            "--ai-type",
            "a",
            "--tokens-in",
            "1237",
            "--tokens-out",
            "333",
            "--model",
            "gpt-4o",
        ];
        for _ in 0..7 {
            env.ok(&gpt4o);
        }
        let status: Value = env.json(&["status"]);
        for cost in [
            &status["global"]["cost_usd"],
            &status["ai_types"][0]["cost_usd"],
        ] {
            let text = cost.to_string();
            // exact to the nano-dollar: 7 x (1,237 x $2.50 + 333 x $10) per million, no float
            // noise and no rounding
            assert_eq!(text, "0.0449575", "cost {text} is the exact sum");
        }
        let recorded = env.json(&gpt4o);
        assert_eq!(recorded["cost_usd"].to_string(), "0.0064225");
        let distribution = env.ok(&["distribution"]);
        assert!(
            distribution.contains("11,000 tokens") || distribution.contains("average"),
            "{distribution}"
        );
        let total = sep(8 * (1237 + 333));
        assert!(
            distribution.contains(&format!("total {total}")),
            "{distribution}"
        );
    }
);

both!(logs_pages_through_every_request_once_newest_first, |env| {
    // the same clock for all: pages must still split rows of one instant exactly (by id)
    for k in 0..25 {
        let ai = if k % 3 == 0 { "guardian" } else { "imperium" };
        env.ok(&[
            "record",
            "--ai-type",
            ai,
            "--tokens-in",
            &(1000 + k).to_string(),
            "--tokens-out",
            "1",
            "--request-id",
            &format!("req-{k}"),
        ]);
    }
    env.ok(&[
        "record",
        "--ai-type",
        "imperium",
        "--tokens-in",
        "7",
        "--tokens-out",
        "0",
        "--failed",
        "--error",
        "upstream 529 overloaded",
    ]);
    let later = env.at("2026-11-23T18:00:00Z");
    later.record("oracle", 1_234_567, 0);

    let mut seen = Vec::new();
    let mut before: Option<i64> = None;
    let mut pages = 0;
    loop {
        let mut args = vec!["logs", "-n", "10"];
        let cursor;
        if let Some(id) = before {
            cursor = id.to_string();
            args.extend(["--before", &cursor]);
        }
        let page = later.json(&args);
        pages += 1;
        let rows = page["logs"].as_array().unwrap();
        assert!(rows.len() <= 10);
        seen.extend(rows.iter().map(|r| i(&r["id"])));
        match page["next_before"].as_i64() {
            Some(id) => {
                assert_eq!(id, i(&rows.last().unwrap()["id"]));
                before = Some(id);
            }
            None => break,
        }
        assert!(pages < 10, "pagination ends");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 27, "every request once: {seen:?}");
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seen, sorted, "newest first, none twice");

    let first = later.json(&["logs", "-n", "2"]);
    assert_eq!(first["logs"][0]["ai_type"], "oracle");
    assert_eq!(first["logs"][0]["total_tokens"], 1_234_567);
    assert_eq!(first["logs"][1]["success"], false);
    assert_eq!(first["logs"][1]["error_message"], "upstream 529 overloaded");

    let guardian = later.json(&["logs", "--ai-type", "guardian", "-n", "100"]);
    let rows = guardian["logs"].as_array().unwrap();
    assert_eq!(rows.len(), 9);
    assert!(rows.iter().all(|r| r["ai_type"] == "guardian"));
    assert!(guardian["next_before"].is_null());

    // --since: only the request of the last hour (the others are from 12:00)
    let recent = later.json(&["logs", "--since", "1h"]);
    assert_eq!(recent["logs"].as_array().unwrap().len(), 1);

    // text: fits 80 columns, thousands, and says how to get the next page
    let text = at(&later, Some("80"), &["logs", "-n", "5"]);
    assert_fits("logs", &text, 80);
    assert_whole("logs", &text, 1_234_567);
    let next = i(&later.json(&["logs", "-n", "5"])["next_before"]);
    assert!(
        text.contains(&format!("tokenctl logs --before {next}")),
        "{text}"
    );
    let wide = at(&later, Some("80"), &["logs", "-n", "2", "--wide"]);
    assert!(wide.contains("upstream 529 overloaded"), "{wide}");
    assert!(wide.contains("failed"), "{wide}");

    // bad input: one line, exit 2
    for bad in [
        &["logs", "--before", "999999"][..],
        &["logs", "-n", "0"],
        &["logs", "-n", "10001"],
        &["logs", "--since", "yesterday-ish"],
        &["logs", "--before", "-3"],
    ] {
        let (out, err) = later.expect(2, bad);
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{bad:?}: {err}");
    }
});

/// Runs `script` in bash with this test's environment; returns its standard output.
fn bash(env: &Env, script: &str) -> String {
    let mut c = with_env(env, "bash");
    c.args(["-c", script]);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What bash offers at `tokenctl <words…><Tab>`, through the script `COMPLETE=bash tokenctl`
/// registers (the function a real shell calls).
fn bash_completions(env: &Env, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        r#"source <(COMPLETE=bash {bin})
COMP_WORDS=(tokenctl {words}); COMP_CWORD={cword}; COMP_TYPE=9
COMP_LINE="tokenctl {line}"; COMP_POINT=${{#COMP_LINE}}
_clap_complete_tokenctl tokenctl '{last}' '{prev}'
printf '%s\n' "${{COMPREPLY[@]}}""#,
        bin = env!("CARGO_BIN_EXE_tokenctl"),
        words = quoted.join(" "),
        cword = words.len(),
        line = words.join(" "),
        last = words.last().unwrap(),
        prev = words[words.len().saturating_sub(2)],
    );
    bash(env, &script)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

both!(bash_completes_the_ai_types_the_database_knows, |env| {
    env.record("imperium", 10, 1);
    env.record("guardian", 10, 1);
    env.ok(&["limits", "set", "--ai-type", "oracle", "--daily", "5000"]);
    assert_eq!(
        bash_completions(&env, &["status", "--ai-type", ""]),
        ["guardian", "imperium", "oracle"]
    );
    assert_eq!(
        bash_completions(&env, &["reserve", "--ai-type", "im"]),
        ["imperium"]
    );
    assert_eq!(bash_completions(&env, &["sta"]), ["status"]);
    // a database that is not there yet offers nothing, and is not created by a Tab
    let nowhere = env.path("nowhere.db");
    let script = format!(
        "TOKENCTL_DATABASE_URL=sqlite://{} COMPLETE=fish {} -- tokenctl status --ai-type ''",
        nowhere.display(),
        env!("CARGO_BIN_EXE_tokenctl")
    );
    assert_eq!(bash(&env, &script), "");
    assert!(!nowhere.exists());
});
