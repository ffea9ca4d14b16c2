//! `tokenctl serve` driven by the real clients people will use: the README's Python example
//! (httpx), Prometheus' own parser on `/metrics` (prometheus-client) and schemathesis against
//! `/openapi.json`. They run from the Python venv scripts/test.sh makes (TOKENCTL_TEST_PYTHON);
//! without it these tests fail and say so, they never skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::serve::{call, token, Serve};
use common::{free_port, i};
use serde_json::{json, Value};

/// The venv's python; a failure that says how to get it when it is not set.
fn python() -> PathBuf {
    match std::env::var_os("TOKENCTL_TEST_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "TOKENCTL_TEST_PYTHON is not set: these tests run Python clients (httpx, \
             prometheus-client, schemathesis) from the venv scripts/test.sh makes. Run the tests \
             with scripts/test.sh, or run it once and \
             export TOKENCTL_TEST_PYTHON=$PWD/target/py-venv/bin/python"
        ),
    }
}

/// tests/python/NAME
fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// Runs `python args…` with `vars` set; its stdout, or a panic with everything it said.
fn run_python(args: &[&Path], vars: &[(&str, &str)]) -> String {
    let python = python();
    let mut cmd = Command::new(&python);
    cmd.args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("TOKENCTL_URL")
        .env_remove("TOKENCTL_TOKEN")
        .stdin(Stdio::null());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {} ({e}): run scripts/test.sh, which makes the venv",
            python.display()
        )
    });
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "python {args:?} failed ({})\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    stdout
}

fn parse(stdout: &str) -> Value {
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

const BEGIN: &str = "<!-- readme-python-example: begin -->";
const END: &str = "<!-- readme-python-example: end -->";

/// The README's "From a Python backend" example, exactly as it stands between its markers.
fn readme_python_example() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let (_, rest) = readme
        .split_once(BEGIN)
        .unwrap_or_else(|| panic!("README.md has no {BEGIN}"));
    let (block, _) = rest
        .split_once(END)
        .unwrap_or_else(|| panic!("README.md has no {END}"));
    let code = block
        .trim()
        .strip_prefix("```python")
        .and_then(|b| b.strip_suffix("```"))
        .unwrap_or_else(|| panic!("the README's example is not one ```python block:\n{block}"));
    code.trim_start_matches('\n').to_string()
}

fn ai_row<'a>(status: &'a Value, ai: &str) -> &'a Value {
    status["ai_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ai_type"] == ai)
        .unwrap_or_else(|| panic!("no {ai} in {status}"))
}

both!(
    the_readme_python_example_settles_what_ran_and_leaves_no_hold,
    |env| {
        let example = env.path("readme_client.py");
        std::fs::write(&example, readme_python_example()).unwrap();
        let secret = token(&env, "backend", "admit");
        env.ok(&["limits", "set", "--ai-type", "paced", "--rpm", "1"]);
        let serve = Serve::start(&env, &[]);
        let url = serve.url("");
        let dead = format!("http://127.0.0.1:{}", free_port());
        let vars = [
            ("TOKENCTL_URL", url.as_str()),
            ("TOKENCTL_TOKEN", secret.as_str()),
            ("TOKENCTL_DEAD_URL", dead.as_str()),
        ];
        let out = parse(&run_python(
            &[&script("readme_example.py"), &example],
            &vars,
        ));

        assert_eq!(out["ok"]["texts"].as_array().unwrap().len(), 2, "{out}");
        assert_eq!(
            out["failed"]["raised"], "overloaded_error: 529",
            "the LLM's own error reaches the caller: {out}"
        );
        assert_eq!(
            out["too_large"],
            json!({"denied": true, "reason": "request_limit_exceeded",
        "retry_after": null, "llm_called": false}),
            "403: no retry, no call"
        );
        assert_eq!(out["rate"]["denied"], true, "{out}");
        assert_eq!(out["rate"]["reason"], "rpm_limit_exceeded", "{out}");
        let wait = i(&out["rate"]["retry_after"]);
        assert!(
            (1..=60).contains(&wait),
            "429's Retry-After within the minute: {out}"
        );
        assert_eq!(out["rate"]["llm_called"], false, "{out}");
        assert_eq!(
            out["unreachable"],
            json!({"failed_closed": true, "llm_called": false}),
            "fail closed"
        );
        assert_eq!(
            out["down"]["failed_closed"], true,
            "503 fails closed: {out}"
        );
        assert_eq!(out["down"]["llm_called"], false, "{out}");
        assert!(
            out["down"]["says"].as_str().unwrap().contains("503"),
            "{out}"
        );

        // what was settled is what the month counts, and nothing is held
        let settled = out["settled"].as_array().unwrap();
        assert_eq!(settled.len(), 3, "2 imperium, 1 paced: {out}");
        let used = |from: &[Value]| -> i64 {
            from.iter()
                .map(|a| i(&a["tokens_in"]) + i(&a["tokens_out"]))
                .sum()
        };
        let status = env.json(&["status"]);
        let imperium = ai_row(&status, "imperium");
        assert_eq!(
            i(&imperium["total_tokens"]),
            used(&settled[..2]),
            "{status}"
        );
        assert_eq!(i(&imperium["request_count"]), 2, "{status}");
        let paced = ai_row(&status, "paced");
        assert_eq!(i(&paced["total_tokens"]), used(&settled[2..]), "{status}");
        assert_eq!(
            i(&status["global"]["total_tokens"]),
            used(settled),
            "{status}"
        );
        assert_eq!(
            i(&status["global"]["reserved_tokens"]),
            0,
            "a hold is left: {status}"
        );
        for row in status["ai_types"].as_array().unwrap() {
            assert_eq!(i(&row["reserved_tokens"]), 0, "a hold is left: {row}");
        }
        assert_eq!(
            env.scalar("SELECT COUNT(*) FROM token_reservations WHERE state = 'held'"),
            0
        );
        assert_eq!(
            env.scalar("SELECT COUNT(*) FROM token_reservations WHERE state = 'released'"),
            1,
            "the failed call's hold was released"
        );
        for a in settled {
            let id = a["request_id"].as_str().unwrap();
            assert_eq!(
            env.scalar(&format!(
                "SELECT COUNT(*) FROM token_usage_logs WHERE request_id = '{id}' AND model = 'claude-sonnet-4-5-20250929'"
            )),
            1,
            "{id} recorded with its model"
        );
        }

        // and as a script of its own, it runs as it is
        let printed = run_python(&[&example], &vars[..2]);
        assert!(printed.contains("an answer to"), "{printed}");
        let after = env.json(&["status", "--ai-type", "imperium"]);
        assert_eq!(i(&after["ai_types"][0]["request_count"]), 3, "{after}");
        assert_eq!(i(&after["global"]["reserved_tokens"]), 0, "{after}");
    }
);

/// The samples of family `name` (as the OpenMetrics parser read it) whose labels include `labels`.
fn samples<'a>(scrape: &'a Value, family: &str, sample: &str, labels: &Value) -> Vec<&'a Value> {
    let f = scrape["families"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == family)
        .unwrap_or_else(|| panic!("no family {family} in /metrics: {scrape}"));
    f["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s[0] == sample
                && labels
                    .as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| &s[1][k] == v)
        })
        .map(|s| &s[2])
        .collect()
}

/// The one value of `sample` with `labels`.
fn value(scrape: &Value, family: &str, sample: &str, labels: Value) -> f64 {
    let found = samples(scrape, family, sample, &labels);
    assert_eq!(found.len(), 1, "{sample}{labels}: {found:?}");
    found[0].as_f64().unwrap()
}

fn family_type(scrape: &Value, family: &str) -> (String, String) {
    let f = scrape["families"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == family)
        .unwrap_or_else(|| panic!("no family {family} in /metrics"));
    (
        f["type"].as_str().unwrap().into(),
        f["unit"].as_str().unwrap().into(),
    )
}

fn level_number(level: &Value) -> f64 {
    match level.as_str().unwrap() {
        "ok" => 0.0,
        "warning" => 1.0,
        "critical" => 2.0,
        "emergency" => 3.0,
        other => panic!("level {other}"),
    }
}

both!(
    metrics_parse_with_prometheus_client_and_match_status,
    |env| {
        env.json(&[
            "record",
            "--ai-type",
            "imperium",
            "--tokens-in",
            "600",
            "--tokens-out",
            "140",
            "--model",
            "gpt-4o",
        ]);
        env.json(&[
            "record",
            "--ai-type",
            "guardian",
            "--tokens-in",
            "90",
            "--tokens-out",
            "0",
        ]);
        let admit = token(&env, "backend", "admit");
        let read = token(&env, "grafana", "read");
        let serve = Serve::start(&env, &[]);
        let post = |path: &str, body: Value, want: u16| {
            let a = call(&serve, "POST", path, Some(&admit), Some(&body));
            assert_eq!(a.status, want, "{path} {body}: {}", a.text);
        };
        post(
            "/v1/check",
            json!({"ai_type": "imperium", "estimated_tokens": 10}),
            200,
        );
        post(
            "/v1/check",
            json!({"ai_type": "imperium", "prompt": "hello", "max_tokens": 20}),
            200,
        );
        post(
            "/v1/check",
            json!({"ai_type": "imperium", "estimated_tokens": 5000}),
            403,
        );
        post(
            "/v1/reservations",
            json!({"ai_type": "imperium", "estimated_tokens": 300}),
            201,
        );
        post(
            "/v1/reservations",
            json!({"ai_type": "guardian", "estimated_tokens": 4000}),
            403,
        );
        // 740 used + 300 held + 900 > the hour's 1,400: waiting helps
        post(
            "/v1/check",
            json!({"ai_type": "imperium", "estimated_tokens": 900}),
            429,
        );

        let url = serve.url("");
        let scrape = parse(&run_python(
            &[&script("metrics.py")],
            &[
                ("TOKENCTL_URL", url.as_str()),
                ("TOKENCTL_TOKEN", read.as_str()),
            ],
        ));
        assert!(
            scrape["content_type"]
                .as_str()
                .unwrap()
                .starts_with("application/openmetrics-text"),
            "{}",
            scrape["content_type"]
        );
        for f in scrape["families"].as_array().unwrap() {
            assert!(
                f["name"].as_str().unwrap().starts_with("tokenctl_"),
                "{}",
                f["name"]
            );
        }
        for name in scrape["classic_names"].as_array().unwrap() {
            assert!(
                name.as_str().unwrap().starts_with("tokenctl_"),
                "classic parser: {name}"
            );
        }

        // the usage gauges are `status`, for an AI type and for the total ("*")
        let status = env.json(&["status"]);
        let rows = [
            (
                "imperium",
                ai_row(&status, "imperium").clone(),
                "monthly_limit",
            ),
            ("*", status["global"].clone(), "enforced_limit"),
        ];
        for (ai, row, limit) in rows {
            let gauge = |name: &str| value(&scrape, name, name, json!({"ai_type": ai}));
            let num = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));
            assert_eq!(
                gauge("tokenctl_tokens_used"),
                num(&row["total_tokens"]),
                "{ai}"
            );
            assert_eq!(gauge("tokenctl_tokens_limit"), num(&row[limit]), "{ai}");
            assert_eq!(
                gauge("tokenctl_tokens_remaining"),
                num(&row["remaining"]),
                "{ai}"
            );
            assert_eq!(
                gauge("tokenctl_tokens_reserved"),
                num(&row["reserved_tokens"]),
                "{ai}"
            );
            assert_eq!(gauge("tokenctl_level"), level_number(&row["level"]), "{ai}");
            assert_eq!(
                gauge("tokenctl_requests"),
                num(&row["request_count"]),
                "{ai}"
            );
            let cost = gauge("tokenctl_cost_usd");
            assert!(
                (cost - num(&row["cost_usd"])).abs() < 1e-6,
                "{ai}: {cost} vs {}",
                row["cost_usd"]
            );
            for name in [
                "tokenctl_tokens_used",
                "tokenctl_level",
                "tokenctl_cost_usd",
            ] {
                assert_eq!(family_type(&scrape, name).0, "gauge");
            }
        }
        assert_eq!(
            i(&ai_row(&status, "imperium")["reserved_tokens"]),
            300,
            "{status}"
        );
        assert!(
            status["global"]["cost_usd"].as_f64().unwrap() > 0.0,
            "gpt-4o is priced: {status}"
        );
        assert_eq!(
            value(
                &scrape,
                "tokenctl_holds_in_flight",
                "tokenctl_holds_in_flight",
                json!({})
            ),
            1.0
        );

        // decisions by endpoint and reason
        let decisions = |endpoint: &str, reason: &str| {
            value(
                &scrape,
                "tokenctl_admission_decisions",
                "tokenctl_admission_decisions_total",
                json!({"endpoint": endpoint, "reason": reason}),
            )
        };
        assert_eq!(
            family_type(&scrape, "tokenctl_admission_decisions").0,
            "counter"
        );
        assert_eq!(decisions("check", "ok"), 2.0);
        assert_eq!(decisions("check", "request_limit_exceeded"), 1.0);
        assert_eq!(decisions("check", "hourly_limit_exceeded"), 1.0);
        assert_eq!(decisions("reserve", "ok"), 1.0);
        assert_eq!(decisions("reserve", "request_limit_exceeded"), 1.0);

        // the latency histogram, per route and status, in seconds
        let h = "tokenctl_http_request_duration_seconds";
        assert_eq!(
            family_type(&scrape, h),
            ("histogram".into(), "seconds".into())
        );
        let check_ok = json!({"method": "POST", "route": "/v1/check", "status": "200"});
        assert_eq!(
            value(&scrape, h, &format!("{h}_count"), check_ok.clone()),
            2.0
        );
        let mut inf = check_ok.clone();
        inf["le"] = json!("+Inf");
        assert_eq!(value(&scrape, h, &format!("{h}_bucket"), inf), 2.0);
        let reserve_held = json!({"method": "POST", "route": "/v1/reservations", "status": "201"});
        assert_eq!(value(&scrape, h, &format!("{h}_count"), reserve_held), 1.0);
    }
);

/// schemathesis's seed: fixed, so that a run is repeatable (TOKENCTL_SCHEMATHESIS_SEED=N for
/// another, or `random` for a new one each run).
fn schemathesis_seed() -> Option<String> {
    match std::env::var("TOKENCTL_SCHEMATHESIS_SEED") {
        Ok(s) if s == "random" => None,
        Ok(s) if !s.is_empty() => Some(s),
        _ => Some("20261123".into()),
    }
}

both!(
    schemathesis_finds_nothing_wrong_against_openapi_json,
    |env| {
        let admin = token(&env, "schemathesis", "admin");
        // room for what it sends to be admitted (and then settled or released through the
        // document's links), not only refused: months of 10^12 tokens, no rates nor concurrency;
        // the per-request limit (1,000) still refuses the larger estimates (403)
        let room = [
            "--monthly",
            "1000000000000",
            "--rpm",
            "0",
            "--rpd",
            "0",
            "--max-concurrent",
            "0",
        ];
        env.ok(&[&["limits", "set"][..], &room].concat());
        env.ok(&[&["limits", "set", "--global"][..], &room].concat());
        let serve = Serve::start(&env, &[]);

        let doc = call(&serve, "GET", "/openapi.json", None, None);
        assert_eq!(doc.status, 200);
        let operations: usize = doc.json["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();

        let schemathesis = python().with_file_name("schemathesis");
        let header = format!("Authorization: Bearer {admin}");
        let mut cmd = Command::new(&schemathesis);
        cmd.arg("--config-file")
            .arg(script("schemathesis.toml"))
            .args(["run", &serve.url("/openapi.json"), "--header", &header])
            .args(["--max-examples", "40", "--generation-database", "none"])
            .args([
                "--suppress-health-check",
                "all",
                "--request-timeout",
                "30",
                "--no-color",
            ])
            .env("NO_COLOR", "1")
            .env("SCHEMATHESIS_HOOKS", "")
            // its cache (.schemathesis/) goes in the test's folder, not the repository
            .current_dir(env.dir.path())
            .stdin(Stdio::null());
        if let Some(seed) = schemathesis_seed() {
            cmd.args(["--seed", &seed]);
        }
        let out = cmd.output().unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): run scripts/test.sh, which makes the venv",
                schemathesis.display()
            )
        });
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "schemathesis found something ({}):\n{text}\n--- serve's log (last 40 lines):\n{}",
            out.status,
            serve
                .log_text()
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
        // "Selected: 15/15" and "Tested: 15": every operation (schemathesis leaves out the
        // document's own, /openapi.json)
        let selected = format!("Selected: {0}/{0}", operations - 1);
        let tested = format!("Tested: {}", operations - 1);
        assert!(
            text.contains(&selected) && text.contains(&tested),
            "every one of the document's operations is tested ({selected}, {tested}):\n{text}"
        );
        // e.g. "1196 generated, 1196 passed, 26 skipped"
        let cases = text
            .lines()
            .map(str::trim)
            .find(|l| l.contains(" generated, "))
            .unwrap_or_else(|| panic!("no test case count:\n{text}"));
        let generated: usize = cases.split(' ').next().unwrap().parse().unwrap();
        assert!(generated >= 20 * operations, "{cases}");
        assert!(cases.contains(&format!("{generated} passed")), "{cases}");
        eprintln!(
            "schemathesis ({:?}): {} operations, {cases}",
            env.backend,
            operations - 1
        );
    }
);
