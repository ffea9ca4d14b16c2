//! The operations in-process, with no binary: one pooled `Db` shared by many tasks on a
//! multi-threaded runtime, as `serve` will use it.

mod common;

use std::sync::Arc;

use common::Env;
use tokenctl::db::{Db, DbUrl};
use tokenctl::domain::Clock;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

both!(sixty_four_tasks_on_one_pool_never_overshoot, |env| {
    env.ok(&[
        "limits",
        "set",
        "--ai-type",
        "imperium",
        "--monthly",
        "10000",
        "--daily",
        "10000",
        "--hourly",
        "10000",
        "--per-request",
        "1000",
    ]);
    // only the monthly limit decides: no request rates, no cap on holds in flight
    env.ok(&["limits", "set", "--rpm", "0", "--rpd", "0"]);
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
        "--monthly",
        "1000000",
        "--daily",
        "1000000",
        "--hourly",
        "1000000",
    ]);
    let url = DbUrl::parse(&env.url).unwrap();
    let clock = Arc::new(Clock::new(Some(&env.now), None).unwrap());
    let admitted = runtime().block_on(async {
        let db = Db::open_pool(&url, 8).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (db, clock) = (db.clone(), clock.clone());
            // tokio::spawn: the future must be Send (a compile-time proof, run for real here)
            tasks.push(tokio::spawn(async move {
                let mut held = 0;
                for _ in 0..4 {
                    let r = db
                        .reserve("imperium", 150, chrono::Duration::minutes(10), &clock)
                        .await
                        .unwrap();
                    if r.decision.allowed {
                        held += 150;
                    }
                }
                held
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    // 10,000 / 150 = 66 holds fit; 256 were asked for
    assert_eq!(admitted, 66 * 150);
    let status = env.status_of("imperium");
    assert_eq!(status["reserved_tokens"], 66 * 150);
});

both!(a_pool_that_cannot_connect_names_the_database, |env| {
    let _ = &env;
    let url = DbUrl::parse("postgres://someone:s3cret@127.0.0.1:1/nowhere").unwrap();
    let err = runtime()
        .block_on(Db::open_pool(&url, 4))
        .err()
        .expect("no server on port 1");
    let text = format!("{err:#}");
    assert!(
        text.contains("127.0.0.1") && text.contains("nowhere"),
        "{text}"
    );
    assert!(text.contains("someone"), "the user is named: {text}");
    assert!(!text.contains("s3cret"), "never the password: {text}");
    assert!(!text.contains("pool timed out"), "{text}");
});
