//! `tokenctl serve` when its PostgreSQL goes away under load: it fails closed (503 with
//! Retry-After, /readyz 503, nothing admitted) and comes back by itself when the database
//! does. A throwaway cluster on its own port, so stopping it disturbs no other test.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::serve::{call, token, Serve};
use common::{Backend, Cluster, Env};
use serde_json::json;

#[test]
fn a_database_outage_under_load_admits_nothing_and_recovers() {
    let cluster = Cluster::new();
    cluster.start();
    cluster.create_database("tokenctl_outage");
    let env = Env::on_url(Backend::Postgres, &cluster.url("tokenctl_outage"));
    // only tokens bind, and there is room for every request the test sends
    env.ok(&[
        "limits",
        "set",
        "--rpm",
        "0",
        "--rpd",
        "0",
        "--daily",
        "10000000",
        "--hourly",
        "10000000",
        "--monthly",
        "10000000",
    ]);
    env.ok(&[
        "limits",
        "set",
        "--global",
        "--rpm",
        "0",
        "--rpd",
        "0",
        "--max-concurrent",
        "0",
        "--daily",
        "10000000",
        "--hourly",
        "10000000",
        "--monthly",
        "10000000",
    ]);
    let secret = token(&env, "backend", "admit");
    let serve = Arc::new(Serve::start(&env, &["--request-timeout", "5"]));

    // 8 clients reserving in a loop; every answer is counted by status
    let stop = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicU64::new(0));
    let unavailable = Arc::new(AtomicU64::new(0));
    let other = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (serve, secret, stop, held, unavailable, other) = (
                serve.clone(),
                secret.clone(),
                stop.clone(),
                held.clone(),
                unavailable.clone(),
                other.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let a = call(
                        &serve,
                        "POST",
                        "/v1/reservations",
                        Some(&secret),
                        Some(&json!({"ai_type": "imperium", "estimated_tokens": 10})),
                    );
                    match a.status {
                        201 => {
                            held.fetch_add(1, Ordering::SeqCst);
                        }
                        503 => {
                            assert!(a.header("retry-after").is_some(), "503 without Retry-After");
                            assert_eq!(a.json["code"], "unavailable", "{}", a.text);
                            unavailable.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        _ => other
                            .lock()
                            .unwrap()
                            .push(format!("{} {}", a.status, a.text)),
                    }
                }
            })
        })
        .collect();
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("reservations before the outage", &|| {
        held.load(Ordering::SeqCst) >= 50
    });

    cluster.stop();
    let held_at_stop = held.load(Ordering::SeqCst);
    wait_for("503s during the outage", &|| {
        unavailable.load(Ordering::SeqCst) >= 20
    });
    // nothing is admitted while the database is gone (a request already committing when it
    // stopped may still have been answered: at most one batch's worth, and the rows show it)
    let held_during = held.load(Ordering::SeqCst);
    let ready = call(&serve, "GET", "/readyz", None, None);
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert!(ready.header("retry-after").is_some());
    assert_eq!(call(&serve, "GET", "/healthz", None, None).status, 200);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        held.load(Ordering::SeqCst),
        held_during,
        "a reservation was admitted without the database"
    );

    // the database comes back: so does admission, with no restart of serve
    cluster.start();
    let back_from = held.load(Ordering::SeqCst);
    wait_for("admission after the outage", &|| {
        held.load(Ordering::SeqCst) >= back_from + 50
    });
    wait_for("/readyz after the outage", &|| {
        call(&serve, "GET", "/readyz", None, None).status == 200
    });
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    assert!(
        other.lock().unwrap().is_empty(),
        "unexpected answers: {:?}",
        other.lock().unwrap()
    );

    // every 201 the clients got is a hold in the database, and every hold was answered
    let rows = env.scalar("SELECT COUNT(*) FROM token_reservations WHERE state = 'held'");
    assert_eq!(
        rows as u64,
        held.load(Ordering::SeqCst),
        "held before the stop: {held_at_stop}"
    );
    let status = env.json(&["status", "--ai-type", "imperium"]);
    assert_eq!(status["ai_types"][0]["reserved_tokens"], json!(rows * 10));
    let log = serve.log_text();
    assert!(log.contains(" 503 "), "no 503 in the access log");
    assert!(log.contains("reason=unavailable"), "{log}");
}
