//! Issue 5: monitor and alerts — levels, exactly-once alerts, re-arming, webhook, signals,
//! database outages, burn rate and projection; on SQLite and PostgreSQL.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Backend, Cluster, Env};
use serde_json::Value;

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// One monitor tick as JSON, alerts file in the test's folder.
fn tick(env: &Env) -> Value {
    let file = env.path("alerts.jsonl");
    env.json(&["monitor", "--once", "--alerts-file", file.to_str().unwrap()])
}

fn new_levels(t: &Value) -> Vec<String> {
    t["new_alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{}:{}",
                a["ai_type"].as_str().unwrap(),
                a["level"].as_str().unwrap()
            )
        })
        .collect()
}

fn isolate_global(env: &Env) {
    // keep the total far from its limit so only the AI type's levels move
    env.ok(&["limits", "set", "--global", "--monthly", "10000000"]);
}

both!(each_level_raises_exactly_one_alert, |env| {
    isolate_global(&env);
    env.record("imperium", 111_999, 0);
    assert!(new_levels(&tick(&env)).is_empty());
    env.record("imperium", 1, 0);
    let t = tick(&env);
    assert_eq!(new_levels(&t), vec!["imperium:warning"]);
    assert_eq!(t["ai_types"][0]["level"], "warning");
    assert!(
        new_levels(&tick(&env)).is_empty(),
        "no repeat on the next tick"
    );
    env.record("imperium", 21_000, 0);
    assert_eq!(new_levels(&tick(&env)), vec!["imperium:critical"]);
    env.record("imperium", 4_200, 0);
    let t = tick(&env);
    assert_eq!(new_levels(&t), vec!["imperium:emergency"]);
    let a = &t["new_alerts"][0];
    assert_eq!(i(&a["total_tokens"]), 137_200);
    assert_eq!(i(&a["limit"]), 140_000);
    assert!(a["recommended_action"]
        .as_str()
        .unwrap()
        .contains("every request is denied"));
    assert!(a["message"]
        .as_str()
        .unwrap()
        .starts_with("EMERGENCY: imperium reached 137,200 of 140,000 tokens (98.00%)"));
    assert!(new_levels(&tick(&env)).is_empty());
    assert_eq!(env.status_of("imperium")["status"], "emergency");
    // database, file and `alerts` agree: three alerts, newest first
    let all = env.json(&["alerts"]);
    let levels: Vec<&str> = all["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, vec!["emergency", "critical", "warning"]);
    let file = std::fs::read_to_string(env.path("alerts.jsonl")).unwrap();
    let lines: Vec<Value> = file
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["level"], "emergency");
    assert_eq!(
        env.json(&["alerts", "--level", "critical"])["alerts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        env.json(&["alerts", "--ai-type", "other"])["alerts"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        env.json(&["alerts", "--since", "1h"])["alerts"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        env.json(&["alerts", "--since", "2026-11-24T00:00:00Z"])["alerts"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let active = env.json(&["alerts", "--active"]);
    assert_eq!(active["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(active["alerts"][0]["level"], "emergency");
    let (_, err) = env.expect(2, &["alerts", "--level", "panic"]);
    assert!(
        err.contains("level must be warning, critical or emergency"),
        "{err}"
    );
});

both!(the_global_total_has_its_own_alerts, |env| {
    env.record("a", 60_000, 0);
    env.record("b", 52_000, 0);
    let t = tick(&env);
    assert_eq!(new_levels(&t), vec!["*:warning"]);
    assert_eq!(t["global"]["level"], "warning");
    let active = env.json(&["alerts", "--active", "--ai-type", "*"]);
    assert_eq!(active["alerts"][0]["ai_type"], "*");
});

both!(alerts_re_arm_after_a_reset_and_in_a_new_month, |env| {
    isolate_global(&env);
    env.record("imperium", 112_000, 0);
    assert_eq!(new_levels(&tick(&env)), vec!["imperium:warning"]);
    env.ok(&["reset", "--yes"]);
    assert!(new_levels(&tick(&env)).is_empty());
    assert_eq!(
        env.json(&["alerts", "--active"])["alerts"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    env.record("imperium", 112_000, 0);
    assert_eq!(
        new_levels(&tick(&env)),
        vec!["imperium:warning"],
        "re-armed after falling below"
    );
    let dec = env.at("2026-12-02T10:00:00Z");
    dec.record("imperium", 112_000, 0);
    let file = env.path("alerts.jsonl");
    let t = dec.json(&["monitor", "--once", "--alerts-file", file.to_str().unwrap()]);
    assert_eq!(
        new_levels(&t),
        vec!["imperium:warning"],
        "a new month re-arms"
    );
    assert_eq!(env.json(&["alerts"])["alerts"].as_array().unwrap().len(), 3);
});

both!(three_monitors_at_once_raise_one_alert, |env| {
    isolate_global(&env);
    env.record("imperium", 112_000, 0);
    let file = env.path("alerts.jsonl");
    let runs: Vec<Child> = (0..3)
        .map(|_| {
            env.cmd(&[
                "monitor",
                "--once",
                "--json",
                "--alerts-file",
                file.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut raised = 0;
    for child in runs {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t: Value = serde_json::from_slice(&out.stdout).unwrap();
        raised += t["new_alerts"].as_array().unwrap().len();
    }
    assert_eq!(raised, 1);
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_alerts"), 1);
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 1);
});

/// A one-shot HTTP server on loopback that answers `status` and hands back the request body.
fn webhook_server(status: u16) -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/tokenctl", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        while let Ok((mut stream, _)) = listener.accept() {
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let reply =
                format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            stream.write_all(reply.as_bytes()).unwrap();
            if tx.send(String::from_utf8_lossy(&body).to_string()).is_err() {
                break;
            }
        }
    });
    (url, rx)
}

fn body_rx_next(rx: &mpsc::Receiver<String>) -> String {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the webhook received nothing")
}

both!(a_local_webhook_receives_the_alert, |env| {
    isolate_global(&env);
    env.record("imperium", 133_000, 0);
    let (url, body) = webhook_server(200);
    let file = env.path("alerts.jsonl");
    let (_, err) = env.expect(
        0,
        &[
            "monitor",
            "--once",
            "--alerts-file",
            file.to_str().unwrap(),
            "--webhook",
            &url,
        ],
    );
    assert!(!err.contains("webhook failed"), "{err}");
    let body_rx = body;
    let body: Value = serde_json::from_str(&body_rx_next(&body_rx)).unwrap();
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("WARNING: imperium reached 133,000"),
        "{body}"
    );
    assert_eq!(body["tokenctl_alert"]["level"], "warning");
    assert_eq!(body["tokenctl_alert"]["ai_type"], "imperium");
    let second: Value = serde_json::from_str(&body_rx_next(&body_rx)).unwrap();
    assert_eq!(second["tokenctl_alert"]["level"], "critical");
});

both!(a_dead_webhook_loses_nothing, |env| {
    isolate_global(&env);
    env.record("imperium", 112_000, 0);
    let file = env.path("alerts.jsonl");
    // a sink that failed fails the cron run (exit 1); the alert is kept all the same
    let (out, err) = env.expect(
        1,
        &[
            "monitor",
            "--once",
            "--alerts-file",
            file.to_str().unwrap(),
            "--webhook",
            "http://127.0.0.1:9/down",
        ],
    );
    assert!(
        err.contains("webhook http://127.0.0.1:9/*** failed after 3 attempts"),
        "{err}"
    );
    assert!(out.contains("ALERT WARNING: imperium"), "{out}");
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_alerts"), 1);
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 1);
    // a webhook answering 500 is a failure too, and still loses nothing
    env.record("imperium", 21_000, 0);
    let (url, _body) = webhook_server(500);
    let (_, err) = env.expect(
        1,
        &[
            "monitor",
            "--once",
            "--alerts-file",
            file.to_str().unwrap(),
            "--webhook",
            &url,
        ],
    );
    assert!(err.contains("failed after 3 attempts (HTTP 500)"), "{err}");
    assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_alerts"), 2);
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 2);
});

/// Spawns a long-running monitor whose stdout lines arrive on a channel.
fn spawn_monitor(env: &Env, extra: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let file = env.path("alerts.jsonl");
    let mut args = vec![
        "monitor",
        "--interval",
        "1",
        "--json",
        "--alerts-file",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut child = env
        .cmd(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines_of(child.stdout.take().unwrap());
    (child, rx)
}

/// The lines written to a child's pipe, as they come.
fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn sigterm(child: &Child) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

both!(
    interval_json_prints_a_line_per_tick_and_stops_on_sigterm,
    |env| {
        env.record("a", 10, 0);
        let (mut child, lines) = spawn_monitor(&env, &[]);
        let first: Value =
            serde_json::from_str(&lines.recv_timeout(Duration::from_secs(15)).unwrap()).unwrap();
        let second: Value =
            serde_json::from_str(&lines.recv_timeout(Duration::from_secs(15)).unwrap()).unwrap();
        for t in [&first, &second] {
            assert_eq!(t["month"], "2026-11");
            assert_eq!(t["ai_types"][0]["ai_type"], "a");
            assert!(t["new_alerts"].is_array());
        }
        sigterm(&child);
        let stopped = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                stopped.elapsed() < Duration::from_secs(2),
                "still running 2 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            stopped.elapsed() < Duration::from_secs(1),
            "took {:?}",
            stopped.elapsed()
        );
        assert_eq!(status.code(), Some(0));
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(!err.contains('\u{1b}'), "{err}");
    }
);

#[test]
fn the_monitor_recovers_when_postgres_kills_its_connection() {
    let env = Env::new(Backend::Postgres);
    isolate_global(&env);
    env.record("imperium", 10, 0);
    let (mut child, lines) = spawn_monitor(&env, &[]);
    lines.recv_timeout(Duration::from_secs(15)).unwrap();
    let db = env
        .url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    env.sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND application_name = 'tokenctl'"
    ));
    env.record("imperium", 112_000, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut raised = false;
    while Instant::now() < deadline && !raised {
        if let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
            let t: Value = serde_json::from_str(&line).unwrap();
            raised = new_levels(&t) == vec!["imperium:warning"];
        }
    }
    sigterm(&child);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        raised,
        "no alert after the connection was killed; stderr: {err}"
    );
    assert!(
        err.contains("retrying in"),
        "the outage was not reported: {err}"
    );
    assert_eq!(status.code(), Some(0));
}

both!(burn_rate_and_projection_from_a_known_history, |env| {
    env.at("2026-11-23T08:10:00Z").record("a", 1_000, 0);
    env.at("2026-11-23T09:20:00Z").record("a", 2_000, 0);
    // an hour outside the 24-hour window does not count
    env.at("2026-11-22T09:00:00Z").record("a", 5_000, 0);
    let now = env.at("2026-11-23T10:30:00Z");
    let s = now.status_of("a");
    // 3,000 tokens over the 23.5 hours since 2026-11-22T11:00
    assert_eq!(s["burn_rate_per_hour"].as_f64(), Some(127.66));
    // 8,000 used + 3,000/23.5 per hour × 181.5 hours left in November
    assert_eq!(i(&s["projected_month_total"]), 8_000 + 23_170);
    assert_eq!(
        s["projected_exhaustion_at"],
        Value::Null,
        "140,000 is not reached in November"
    );
    now.ok(&["limits", "set", "--ai-type", "a", "--monthly", "25000"]);
    let s = now.status_of("a");
    // 17,000 to go at 3,000/23.5 per hour: 133 h 10 min
    assert_eq!(s["projected_exhaustion_at"], "2026-11-28T23:40:00Z");
    let t = tick(&now);
    assert_eq!(
        t["ai_types"][0]["projected_exhaustion_at"],
        "2026-11-28T23:40:00Z"
    );
    let table = now.ok(&["status", "--wide"]);
    assert!(table.contains("2026-11-28 23:40"), "{table}");
});

/// A spawned monitor that is killed if the test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to `limit` for the child to exit; None while it still runs.
fn exit_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Collects lines for up to `limit` until one contains `wanted`; true if one did.
fn line_within(
    rx: &mpsc::Receiver<String>,
    limit: Duration,
    wanted: &str,
    seen: &mut Vec<String>,
) -> bool {
    let deadline = Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(wanted);
                seen.push(line);
                if found {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

/// Issue point 4: a monitor started before PostgreSQL (a service at boot) waits for it.
#[test]
fn the_monitor_starts_before_its_database() {
    let cluster = Cluster::new(); // initialised, not started
                                  // trust authentication ignores the password: it is there to be kept out of every message
    let url = cluster
        .url("tokenctl_monitor_start")
        .replacen("postgres@", "postgres:s3cret@", 1);
    let env = Env::on_url(Backend::Postgres, &url);
    let server = format!("PostgreSQL at 127.0.0.1:{}/", cluster.port);

    // --once is for cron, which runs it again soon: no waiting, one line, exit 1
    let file = env.path("alerts.jsonl");
    let (out, err) = env.expect(
        1,
        &[
            "monitor",
            "--once",
            "--json",
            "--alerts-file",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out, "");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("cannot connect to {server}")),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");

    // long-running: reports and retries from the first tick instead of exiting
    let (child, ticks) = spawn_monitor(&env, &[]);
    let mut monitor = Running(child);
    let errors = lines_of(monitor.0.stderr.take().unwrap());
    let mut seen = Vec::new();
    assert!(
        line_within(&errors, Duration::from_secs(10), "retrying in", &mut seen),
        "no retry reported: {seen:?}"
    );
    assert!(
        monitor.0.try_wait().unwrap().is_none(),
        "the monitor exited: {seen:?}"
    );

    // a signal during that wait still ends it at once, exit 0
    let (child, _) = spawn_monitor(&env, &[]);
    let mut waiting = Running(child);
    let waiting_errors = lines_of(waiting.0.stderr.take().unwrap());
    let mut waiting_seen = Vec::new();
    assert!(
        line_within(
            &waiting_errors,
            Duration::from_secs(10),
            "retrying in",
            &mut waiting_seen
        ),
        "no retry reported: {waiting_seen:?}"
    );
    sigterm(&waiting.0);
    let status = exit_within(&mut waiting.0, Duration::from_secs(2));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "SIGTERM while waiting for the database"
    );

    // the database comes up, usage passes 80%: the waiting monitor connects and alerts
    cluster.start();
    cluster.create_database("tokenctl_monitor_start");
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
    // the backoff has reached a few seconds at most by now
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut raised = None;
    while raised.is_none() && Instant::now() < deadline {
        if let Ok(line) = ticks.recv_timeout(Duration::from_secs(1)) {
            let t: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if new_levels(&t) == vec!["a:warning"] {
                raised = Some(t);
            }
        }
    }
    seen.extend(errors.try_iter());
    let t = raised.unwrap_or_else(|| panic!("no warning for a; stderr: {seen:?}"));
    assert_eq!(i(&t["new_alerts"][0]["total_tokens"]), 850);
    assert_eq!(i(&t["new_alerts"][0]["limit"]), 1000);
    let alerts: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["ai_type"], "a");
    assert_eq!(alerts[0]["level"], "warning");

    sigterm(&monitor.0);
    let status = exit_within(&mut monitor.0, Duration::from_secs(2));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{seen:?}");
    // the process has exited: its stderr ends
    while let Ok(line) = errors.recv_timeout(Duration::from_secs(5)) {
        seen.push(line);
    }
    // every report is one line naming the server, never the password
    for line in seen.iter().chain(&waiting_seen) {
        assert!(
            line.starts_with(&format!("tokenctl: monitor: cannot connect to {server}")),
            "{line}"
        );
        assert!(line.contains("; retrying in "), "{line}");
        assert!(!line.contains("s3cret"), "{line}");
    }
}
