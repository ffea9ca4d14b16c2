//! The operations in-process, with no binary: one pooled `Db` shared by many tasks on a
//! multi-threaded runtime, as `serve` will use it.

mod common;

use std::sync::Arc;

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

both!(each_failure_comes_back_with_its_kind, |env| {
    use tokenctl::db::ledger::RecordInput;
    use tokenctl::db::LogFilter;
    use tokenctl::error::ErrorKind;

    let reserved = env.json(&[
        "reserve",
        "--ai-type",
        "imperium",
        "--estimated-tokens",
        "100",
    ]);
    let id = reserved["reservation_id"].as_str().unwrap().to_string();
    let url = DbUrl::parse(&env.url).unwrap();
    let clock = Clock::new(Some(&env.now), None).unwrap();
    runtime().block_on(async {
        let db = Db::open_pool(&url, 2).await.unwrap();
        let kind = |r: anyhow::Result<_>| ErrorKind::of(&r.expect_err("an error"));

        assert_eq!(
            kind(db.release("rsv_nosuch", &clock).await.map(|_| ())),
            ErrorKind::NotFound
        );
        let other = RecordInput {
            ai_type: "guardian".into(),
            tokens_in: 10,
            tokens_out: 1,
            reservation: Some(id.clone()),
            ..RecordInput::default()
        };
        assert_eq!(
            kind(db.record(&other, &clock).await.map(|_| ())),
            ErrorKind::Conflict
        );
        let page = LogFilter {
            before: Some(987_654),
            limit: 5,
            ..LogFilter::default()
        };
        assert_eq!(kind(db.logs(&page).await.map(|_| ())), ErrorKind::NotFound);
        // a denial is a decision, not an error
        let denied = db
            .reserve("imperium", 10_000_000, chrono::Duration::minutes(1), &clock)
            .await
            .unwrap();
        assert!(!denied.decision.allowed);
    });
    let bad = DbUrl::parse("mysql://somewhere/db").err().unwrap();
    assert_eq!(ErrorKind::of(&bad.into()), ErrorKind::InvalidInput);
    let down = DbUrl::parse("postgres://postgres@127.0.0.1:1/nowhere").unwrap();
    let err = runtime().block_on(Db::open_pool(&down, 1)).err().unwrap();
    assert_eq!(ErrorKind::of(&err), ErrorKind::Unavailable);
    // and each kind is mapped once: to the CLI's exit code and an HTTP status
    assert_eq!(
        [
            ErrorKind::InvalidInput,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Unavailable,
            ErrorKind::Internal
        ]
        .map(|k| (k.exit_code(), k.http_status())),
        [(2, 400), (2, 404), (2, 409), (1, 503), (1, 500)]
    );
    // nothing was written by the failures: the hold is still held, nothing recorded
    assert_eq!(env.status_of("imperium")["reserved_tokens"], 100);
    assert_eq!(env.status_of("imperium")["request_count"], 0);
});

both!(
    pruning_in_small_batches_deletes_exactly_the_old_rows,
    |env| {
        env.ok(&["migrate"]);
        // old and recent rows interleaved by id, and old rows written last (another program
        // back-filling): each batch boundary falls somewhere different
        for k in 0..40 {
            let at = if k % 3 == 0 || k >= 34 {
                format!("2026-08-{:02}T10:00:00.000000Z", 1 + k % 28)
            } else {
                format!("2026-11-{:02}T10:00:00.000000Z", 1 + k % 20)
            };
            env.sql(&format!(
            "INSERT INTO token_usage_logs (ai_type, tokens_in, tokens_out, total_tokens, created_at, month_year) \
             VALUES ('agent-{}', 1, 1, 2, '{at}', '{}')",
            k % 3,
            &at[..7]
        ));
        }
        // six rows at one instant (more than a batch), and one written by a program that
        // stores times its own way
        for at in ["2026-08-15T10:00:00.000000Z"; 6]
            .into_iter()
            .chain(["2026-08-20 10:00:00"])
        {
            env.sql(&format!(
                "INSERT INTO token_usage_logs (ai_type, tokens_in, tokens_out, total_tokens, created_at, month_year) \
                 VALUES ('agent-9', 1, 1, 2, '{at}', '2026-08')"
            ));
        }
        let old = env.scalar("SELECT COUNT(*) FROM token_usage_logs WHERE month_year = '2026-08'");
        assert_eq!(old, 25);
        let url = DbUrl::parse(&env.url).unwrap();
        let cutoff = "2026-09-01T00:00:00Z".parse().unwrap();
        let mut heard = Vec::new();
        let deleted = runtime().block_on(async {
            let db = Db::open(&url).await.unwrap();
            db.prune_logs(cutoff, 4, |n| heard.push(n)).await.unwrap()
        });
        assert_eq!(deleted, 25);
        assert!(heard.len() >= 6, "25 rows in batches of 4: {heard:?}");
        assert!(heard.windows(2).all(|w| w[0] <= w[1]), "{heard:?}");
        assert_eq!(heard.last(), Some(&25));
        assert_eq!(
            env.scalar("SELECT COUNT(*) FROM token_usage_logs WHERE month_year = '2026-08'"),
            0
        );
        assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_logs"), 22);
        // nothing left to prune: a second run deletes nothing
        let again = runtime().block_on(async {
            let db = Db::open(&url).await.unwrap();
            db.prune_logs(cutoff, 4, |_| {}).await.unwrap()
        });
        assert_eq!(again, 0);
    }
);
