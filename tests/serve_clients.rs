//! `tokenctl serve` driven by the real clients people will use: the README's Python example
//! (httpx), Prometheus' own parser on `/metrics` (prometheus-client) and schemathesis against
//! `/openapi.json`. They run from the Python venv scripts/test.sh makes (TOKENCTL_TEST_PYTHON);
//! without it these tests fail and say so, they never skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::serve::{call, token, Serve};
use common::{free_port, i, Env};
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
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(name)
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
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}): run scripts/test.sh, which makes the venv", python.display()));
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

both!(the_readme_python_example_settles_what_ran_and_leaves_no_hold, |env| {
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
    let out = parse(&run_python(&[&script("readme_example.py"), &example], &vars));

    assert_eq!(out["ok"]["texts"].as_array().unwrap().len(), 2, "{out}");
    assert_eq!(out["failed"]["raised"], "overloaded_error: 529", "the LLM's own error reaches the caller: {out}");
    assert_eq!(out["too_large"], json!({"denied": true, "reason": "request_limit_exceeded",
        "retry_after": null, "llm_called": false}), "403: no retry, no call");
    assert_eq!(out["rate"]["denied"], true, "{out}");
    assert_eq!(out["rate"]["reason"], "rpm_limit_exceeded", "{out}");
    let wait = i(&out["rate"]["retry_after"]);
    assert!((1..=60).contains(&wait), "429's Retry-After within the minute: {out}");
    assert_eq!(out["rate"]["llm_called"], false, "{out}");
    assert_eq!(out["unreachable"], json!({"failed_closed": true, "llm_called": false}), "fail closed");

    // what was settled is what the month counts, and nothing is held
    let settled = out["settled"].as_array().unwrap();
    assert_eq!(settled.len(), 3, "2 imperium, 1 paced: {out}");
    let used = |from: &[Value]| -> i64 {
        from.iter().map(|a| i(&a["tokens_in"]) + i(&a["tokens_out"])).sum()
    };
    let status = env.json(&["status"]);
    let imperium = ai_row(&status, "imperium");
    assert_eq!(i(&imperium["total_tokens"]), used(&settled[..2]), "{status}");
    assert_eq!(i(&imperium["request_count"]), 2, "{status}");
    let paced = ai_row(&status, "paced");
    assert_eq!(i(&paced["total_tokens"]), used(&settled[2..]), "{status}");
    assert_eq!(i(&status["global"]["total_tokens"]), used(settled), "{status}");
    assert_eq!(i(&status["global"]["reserved_tokens"]), 0, "a hold is left: {status}");
    for row in status["ai_types"].as_array().unwrap() {
        assert_eq!(i(&row["reserved_tokens"]), 0, "a hold is left: {row}");
    }
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_reservations WHERE state = 'held'"), 0);
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
});
