//! The operations in-process, with no binary: `tokenctl::ops` over one pooled `Db` shared by
//! many tasks on a multi-threaded runtime, as `serve` will use them.

mod common;

use std::sync::Arc;

use tokenctl::db::{Db, DbUrl};
use tokenctl::domain::Clock;
use tokenctl::ops;

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
        // the request as an HTTP body would bring it
        let req: ops::admit::ReserveRequest = serde_json::from_str(
            r#"{"ai_type": "imperium", "estimated_tokens": 150, "ttl": "10m"}"#,
        )
        .unwrap();
        let req = Arc::new(req);
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (db, clock, req) = (db.clone(), clock.clone(), req.clone());
            // tokio::spawn: the future must be Send (a compile-time proof, run for real here)
            tasks.push(tokio::spawn(async move {
                let mut held = 0;
                for _ in 0..4 {
                    let r = ops::admit::reserve(&db, &clock, &req).await.unwrap();
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
        let release = |id: &str| ops::admit::ReleaseRequest {
            reservation_id: id.into(),
        };
        let err = ops::admit::release(&db, &clock, &release("rsv_nosuch"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
        let other: ops::admit::RecordRequest = serde_json::from_value(serde_json::json!({
            "ai_type": "guardian", "tokens_in": 10, "tokens_out": 1, "reservation": id
        }))
        .unwrap();
        let err = ops::admit::record(&db, &clock, other).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict, "{err}");
        let page = ops::logs::LogsRequest {
            ai_type: None,
            since: None,
            before: Some(987_654),
            limit: 5,
        };
        let err = ops::logs::logs(&db, &clock, &page).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
        let zone = ops::clock::SetTimezoneRequest {
            timezone: "Mars/Olympus".into(),
        };
        let err = ops::clock::set_timezone(&db, &clock, &zone)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
        let days = ops::distribution::DistributionRequest {
            month: Some("2026-10".parse().unwrap()),
            day: Some("2026-11-02".parse().unwrap()),
            ai_type: None,
        };
        let err = ops::distribution::distribution(&db, &clock, &days)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
        // a denial is a decision, not an error
        let big = ops::admit::ReserveRequest {
            check: ops::admit::CheckRequest {
                ai_type: "imperium".parse().unwrap(),
                estimate: ops::admit::Estimate::Tokens {
                    estimated_tokens: "10000000".parse().unwrap(),
                },
                user_id: None,
                model: None,
            },
            ttl: "1m".parse().unwrap(),
        };
        let denied = ops::admit::reserve(&db, &clock, &big).await.unwrap();
        assert!(!denied.decision.allowed);
        // limits from a body: both an AI type and the global row is refused, nothing written
        let both: ops::limits::SetLimitsRequest = serde_json::from_value(serde_json::json!({
            "ai_type": "imperium", "global": true, "monthly": 5000
        }))
        .unwrap();
        let err = ops::limits::set(&db, &clock, &both).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
        let nothing: ops::limits::SetLimitsRequest =
            serde_json::from_value(serde_json::json!({"ai_type": "imperium"})).unwrap();
        let err = ops::limits::set(&db, &clock, &nothing).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
        let one: ops::limits::SetLimitsRequest = serde_json::from_value(serde_json::json!({
            "ai_type": "guardian", "monthly": 7000, "rpm": 0
        }))
        .unwrap();
        ops::limits::set(&db, &clock, &one).await.unwrap();
    });
    let limits = env.json(&["limits"]);
    let guardian = &limits["ai_types"][0];
    assert_eq!(
        (&guardian["ai_type"], &guardian["monthly"]),
        (&"guardian".into(), &7000.into())
    );
    assert_eq!(limits["ai_types"].as_array().unwrap().len(), 1, "{limits}");
    for (body, flag) in [
        (r#"{"monthly": -1}"#, ["limits", "set", "--monthly", "-1"]),
        (
            r#"{"rpm": 3000000000}"#,
            ["limits", "set", "--rpm", "3000000000"],
        ),
    ] {
        let body = serde_json::from_str::<ops::limits::SetLimitsRequest>(body)
            .unwrap_err()
            .to_string();
        let (_, stderr) = env.expect(2, &flag);
        let rule = body.split(" at line").next().unwrap();
        assert!(stderr.contains(rule), "{body} / {stderr}");
    }
    // a JSON body is held to the rules of the flags, with the same message
    let body = serde_json::from_str::<ops::admit::CheckRequest>(
        r#"{"ai_type": "imperium", "estimated_tokens": -5}"#,
    )
    .unwrap_err()
    .to_string();
    let (_, stderr) = env.expect(
        2,
        &["check", "--ai-type", "imperium", "--estimated-tokens", "-5"],
    );
    let rule = body.split(" at line").next().unwrap();
    assert!(stderr.contains(rule), "{body} / {stderr}");
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

both!(each_report_is_the_commands_json, |env| {
    env.ok(&[
        "limits",
        "set",
        "--ai-type",
        "imperium",
        "--monthly",
        "1000",
    ]);
    env.ok(&[
        "record",
        "--ai-type",
        "imperium",
        "--tokens-in",
        "700",
        "--tokens-out",
        "150",
    ]);
    env.ok(&[
        "record",
        "--ai-type",
        "guardian",
        "--tokens-in",
        "20",
        "--tokens-out",
        "5",
    ]);
    let url = DbUrl::parse(&env.url).unwrap();
    let clock = Clock::new(Some(&env.now), None).unwrap();
    let (status, limits, active, distribution) = runtime().block_on(async {
        let db = Db::open_pool(&url, 2).await.unwrap();
        let clock = ops::clock::shared(&db, clock, None).await.unwrap().clock;
        fn value(v: impl serde::Serialize) -> serde_json::Value {
            serde_json::to_value(v).unwrap()
        }
        (
            value(
                ops::status::status(&db, &clock, &Default::default())
                    .await
                    .unwrap(),
            ),
            value(ops::limits::limits(&db).await.unwrap()),
            value(
                ops::alerts::active(&db, &clock, &Default::default())
                    .await
                    .unwrap(),
            ),
            value(
                ops::distribution::distribution(&db, &clock, &Default::default())
                    .await
                    .unwrap(),
            ),
        )
    });
    // "now" is pinned (TOKENCTL_NOW), so even the clock's figures are equal
    let mut cli = env.json(&["status"]);
    assert_eq!(status, cli, "status");
    cli = env.json(&["limits"]);
    assert_eq!(limits, cli, "limits");
    cli = env.json(&["alerts", "--active"]);
    assert_eq!(active, cli, "alerts --active");
    assert_eq!(active["alerts"][0]["ai_type"], "imperium");
    assert_eq!(active["alerts"][0]["level"], "warning");
    cli = env.json(&["distribution"]);
    assert_eq!(distribution, cli, "distribution");
    assert_eq!(status["ai_types"][1]["total_tokens"], 850);
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

both!(a_batch_decides_exactly_what_one_at_a_time_would, |env| {
    // two databases with the same limits: one decides 60 asks as one batch (serve's group
    // commit), the other one at a time; every limit kind binds somewhere in the sequence
    let twin = common::Env::new(env.backend);
    for e in [&env, &twin] {
        e.ok(&[
            "limits",
            "set",
            "--ai-type",
            "imperium",
            "--monthly",
            "5500",
            "--per-request",
            "900",
        ]);
        e.ok(&["limits", "set", "--ai-type", "guardian", "--rpm", "6"]);
        e.ok(&[
            "limits",
            "set",
            "--ai-type",
            "oracle",
            "--max-concurrent",
            "2",
        ]);
        e.ok(&["limits", "set", "--daily", "100000", "--hourly", "100000"]);
        e.ok(&[
            "limits",
            "set",
            "--global",
            "--max-concurrent",
            "30",
            "--rpm",
            "40",
            "--monthly",
            "1000000",
            "--daily",
            "1000000",
            "--hourly",
            "1000000",
        ]);
        e.record("imperium", 3000, 1000);
    }
    let ai_types = ["imperium", "guardian", "oracle", "imperium", "guardian"];
    let asks: Vec<tokenctl::db::ledger::ReserveAsk> = (0..60)
        .map(|i| tokenctl::db::ledger::ReserveAsk {
            ai_type: ai_types[i % ai_types.len()].to_string(),
            estimated: [120, 450, 950, 60, 300][i % 5] + i as i64,
            ttl: chrono::Duration::seconds([600, 30, 3600][i % 3]),
            ..Default::default()
        })
        .collect();
    let clock = Clock::new(Some(&env.now), None).unwrap();
    let decisions = |e: &common::Env, batched: bool| {
        let url = DbUrl::parse(&e.url).unwrap();
        runtime().block_on(async {
            let db = Db::open_pool(&url, 2).await.unwrap();
            let decided = if batched {
                db.reserve_batch(&asks, &clock).await.unwrap()
            } else {
                let mut v = Vec::new();
                for a in &asks {
                    v.push(db.reserve(a, &clock).await.unwrap());
                }
                v
            };
            decided
                .into_iter()
                .map(|r| {
                    let mut doc = serde_json::to_value(&r).unwrap();
                    // a hold's id is random; whether there is one is compared
                    doc["reservation_id"] = serde_json::json!(r.reservation_id.is_some());
                    doc
                })
                .collect::<Vec<_>>()
        })
    };
    let batched = decisions(&env, true);
    let one_by_one = decisions(&twin, false);
    for (i, (b, o)) in batched.iter().zip(&one_by_one).enumerate() {
        assert_eq!(b, o, "ask {i}: batched and one-at-a-time decisions differ");
    }
    let reasons: std::collections::BTreeSet<String> = batched
        .iter()
        .map(|d| d["reason"].as_str().unwrap().to_string())
        .collect();
    // the sequence exercises admission and several kinds of denial
    for r in [
        "ok",
        "request_limit_exceeded",
        "monthly_limit_exceeded",
        "rpm_limit_exceeded",
        "concurrency_limit_exceeded",
    ] {
        assert!(reasons.contains(r), "no {r} among {reasons:?}");
    }
    // and the set-based writes leave the counters the one-by-one writes leave
    assert_eq!(env.json(&["status"]), twin.json(&["status"]));
    assert_eq!(
        env.json(&["distribution"])["rate_limiting_status"],
        twin.json(&["distribution"])["rate_limiting_status"]
    );
});

both!(
    a_batch_of_usage_and_reservations_equals_one_at_a_time,
    |env| {
        // serve's group commit: settles, plain records (one a retry, one reusing another
        // request's id, one settling another AI type's hold) and reservations in one transaction,
        // against the same requests one at a time on a twin database
        use tokenctl::db::ledger::{RecordInput, ReserveAsk};
        let twin = common::Env::new(env.backend);
        for e in [&env, &twin] {
            e.ok(&[
                "limits",
                "set",
                "--ai-type",
                "imperium",
                "--monthly",
                "3000",
                "--daily",
                "100000",
                "--hourly",
                "100000",
            ]);
            e.ok(&["limits", "set", "--daily", "100000", "--hourly", "100000"]);
            e.ok(&[
                "limits",
                "set",
                "--global",
                "--max-concurrent",
                "0",
                "--rpm",
                "0",
                "--daily",
                "1000000",
                "--hourly",
                "1000000",
            ]);
        }
        let clock = Clock::new(Some(&env.now), None).unwrap();
        let run = |e: &common::Env, batched: bool| {
            let url = DbUrl::parse(&e.url).unwrap();
            runtime().block_on(async {
            let db = Db::open_pool(&url, 2).await.unwrap();
            let mut holds = Vec::new();
            for (ai, n) in [("imperium", 400), ("imperium", 300), ("guardian", 200)] {
                let ask = ReserveAsk { ai_type: ai.into(), estimated: n, ttl: chrono::Duration::minutes(10), ..Default::default() };
                let r = db.reserve(&ask, &clock).await.unwrap();
                holds.push(r.reservation_id.clone().unwrap_or_else(|| panic!("{}", r.decision.message)));
            }
            let record = |ai: &str, tin: i64, rid: Option<&str>, hold: Option<usize>| RecordInput {
                ai_type: ai.to_string(),
                tokens_in: tin,
                tokens_out: 50,
                model: Some("gpt-4o".into()),
                request_id: rid.map(str::to_string),
                reservation: hold.map(|h| holds[h].clone()),
                ..Default::default()
            };
            let records = vec![
                record("imperium", 350, Some("a"), Some(0)),
                record("imperium", 100, Some("b"), None),
                record("imperium", 100, Some("b"), None),     // a retry: a duplicate
                record("imperium", 120, Some("a"), Some(1)),  // another request's id: conflict
                record("imperium", 90, Some("c"), Some(2)),   // guardian's hold: conflict
                record("guardian", 180, Some("d"), Some(2)),
            ];
            let asks: Vec<ReserveAsk> = [900, 900, 900, 500, 80]
                .iter()
                .map(|&n| ReserveAsk { ai_type: "imperium".into(), estimated: n, ttl: chrono::Duration::minutes(5), ..Default::default() })
                .collect();
            let (recorded, reserved) = if batched {
                let (r, a) = db.admission_batch(&records, &asks, &clock, &|_| true).await.unwrap();
                (r.into_iter().map(Option::unwrap).collect(), a.into_iter().map(Option::unwrap).collect())
            } else {
                let mut r = Vec::new();
                for input in &records {
                    r.push(db.record(input, &clock).await);
                }
                let mut a = Vec::new();
                for ask in &asks {
                    a.push(db.reserve(ask, &clock).await.unwrap());
                }
                (r, a)
            };
            let recorded: Vec<serde_json::Value> = recorded
                .into_iter()
                .map(|r| match r {
                    Ok(doc) => {
                        let mut v = serde_json::to_value(&doc).unwrap();
                        v["reservation_id"] = serde_json::json!(doc.reservation_id.is_some());
                        v
                    }
                    Err(e) => serde_json::json!({"error": format!("{:?}", tokenctl::error::OpError::from(e).kind)}),
                })
                .collect();
            let reserved: Vec<serde_json::Value> = reserved
                .into_iter()
                .map(|r| {
                    let mut v = serde_json::to_value(&r).unwrap();
                    v["reservation_id"] = serde_json::json!(r.reservation_id.is_some());
                    v
                })
                .collect();
            (recorded, reserved)
        })
        };
        let (batched_records, batched_asks) = run(&env, true);
        let (single_records, single_asks) = run(&twin, false);
        assert_eq!(batched_records, single_records);
        assert_eq!(batched_asks, single_asks);
        let kinds: Vec<&serde_json::Value> = batched_records
            .iter()
            .map(|r| r.get("error").unwrap_or(&r["duplicate"]))
            .collect();
        assert_eq!(
            kinds,
            [
                &serde_json::json!(false),
                &serde_json::json!(false),
                &serde_json::json!(true),
                &serde_json::json!("Conflict"),
                &serde_json::json!("Conflict"),
                &serde_json::json!(false)
            ]
        );
        let allowed: Vec<bool> = batched_asks
            .iter()
            .map(|a| a["allowed"].as_bool().unwrap())
            .collect();
        assert_eq!(
            allowed,
            [true, true, false, false, true],
            "{batched_asks:?}"
        );
        assert_eq!(env.json(&["status"]), twin.json(&["status"]));
        assert_eq!(
            env.scalar("SELECT COUNT(*) FROM token_usage_logs"),
            twin.scalar("SELECT COUNT(*) FROM token_usage_logs")
        );
    }
);

both!(
    many_holds_expiring_at_once_give_back_exactly_what_they_held,
    |env| {
        // 200 holds of two AI types over two hours, all past their TTL when the next write comes:
        // given back per AI type and period, every counter back to what was used
        env.ok(&[
            "limits",
            "set",
            "--daily",
            "1000000",
            "--hourly",
            "1000000",
            "--monthly",
            "10000000",
            "--rpm",
            "0",
            "--rpd",
            "0",
        ]);
        env.ok(&[
            "limits",
            "set",
            "--global",
            "--daily",
            "1000000",
            "--hourly",
            "1000000",
            "--monthly",
            "10000000",
            "--rpm",
            "0",
            "--rpd",
            "0",
            "--max-concurrent",
            "0",
        ]);
        env.record("imperium", 100, 50);
        let url = DbUrl::parse(&env.url).unwrap();
        let at = |t: &str| Clock::new(Some(t), None).unwrap();
        runtime().block_on(async {
            let db = Db::open_pool(&url, 2).await.unwrap();
            for (i, t) in ["2026-11-23T10:15:00Z", "2026-11-23T11:05:00Z"]
                .iter()
                .enumerate()
            {
                let asks: Vec<tokenctl::db::ledger::ReserveAsk> = (0..100)
                    .map(|n| tokenctl::db::ledger::ReserveAsk {
                        ai_type: ["imperium", "guardian"][n % 2].to_string(),
                        estimated: 10 + (n as i64) + 100 * i as i64,
                        ttl: chrono::Duration::minutes(1),
                        ..Default::default()
                    })
                    .collect();
                let held = db.reserve_batch(&asks, &at(t)).await.unwrap();
                assert!(held.iter().all(|r| r.reservation_id.is_some()));
            }
            // an hour later every hold has expired; this reservation sweeps them all
            let r = db
                .reserve(
                    &tokenctl::db::ledger::ReserveAsk {
                        ai_type: "oracle".into(),
                        estimated: 5,
                        ttl: chrono::Duration::minutes(1),
                        ..Default::default()
                    },
                    &at("2026-11-23T12:30:00Z"),
                )
                .await
                .unwrap();
            assert!(r.decision.allowed, "{}", r.decision.message);
        });
        assert_eq!(
            env.scalar("SELECT COUNT(*) FROM token_reservations WHERE state = 'expired'"),
            200
        );
        // nothing of the expired holds is left in any counter: month rows and day/hour windows
        assert_eq!(env.scalar("SELECT CAST(COALESCE(SUM(reserved_tokens), 0) AS BIGINT) FROM token_usage WHERE ai_type <> 'oracle'"), 0);
        assert_eq!(env.scalar("SELECT CAST(COALESCE(SUM(reserved), 0) AS BIGINT) FROM token_usage_windows WHERE ai_type IN ('imperium', 'guardian')"), 0);
        assert_eq!(env.scalar("SELECT CAST(COALESCE(SUM(reserved), 0) AS BIGINT) FROM token_usage_windows WHERE ai_type = '*' AND period <> month_year"), 5 * 2);
        // the month rows (which carry the dollars) gave their holds back too
        assert_eq!(env.scalar("SELECT CAST(COALESCE(SUM(reserved), 0) AS BIGINT) FROM token_usage_windows WHERE ai_type = '*' AND period = month_year"), 5);
        assert_eq!(env.scalar("SELECT CAST(COALESCE(SUM(reserved_cost_nanos), 0) AS BIGINT) FROM token_usage_windows WHERE ai_type IN ('imperium', 'guardian')"), 0);
        let status = env.at("2026-11-23T12:30:00Z").json(&["status"]);
        assert_eq!(status["global"]["reserved_tokens"], 5);
        assert_eq!(status["global"]["total_tokens"], 150);
    }
);

/// Records `n` requests of `user(i)` spread over three days, in-process.
fn record_users(
    env: &common::Env,
    n: usize,
    tokens: impl Fn(usize) -> i64,
    user: impl Fn(usize) -> String,
) {
    let url = DbUrl::parse(&env.url).unwrap();
    runtime().block_on(async {
        let db = Db::open_pool(&url, 2).await.unwrap();
        for i in 0..n {
            let day = 20 + (i % 3);
            let clock = Clock::new(Some(&format!("2026-11-{day}T10:00:00Z")), None).unwrap();
            let input = tokenctl::db::ledger::RecordInput {
                ai_type: ["imperium", "guardian"][i % 2].into(),
                tokens_in: tokens(i),
                tokens_out: 1,
                model: Some("gpt-4o".into()),
                user_id: Some(user(i)),
                ..Default::default()
            };
            db.record(&input, &clock).await.unwrap();
        }
    });
}

/// The top users a report finds from its rollups, next to the ones found by adding up every
/// (day, AI type, user, model) row: the same, whether the threshold stops early or not.
fn top_users_both_ways(env: &common::Env) -> (serde_json::Value, serde_json::Value) {
    let url = DbUrl::parse(&env.url).unwrap();
    runtime().block_on(async {
        let db = Db::open_pool(&url, 2).await.unwrap();
        let clock = Clock::new(Some("2026-11-22T23:00:00Z"), None).unwrap();
        let req = ops::report::ReportRequest {
            days: Some(3),
            top: Some(5),
            ..Default::default()
        };
        let report = ops::report::report(&db, &clock, &req).await.unwrap();
        let (period, rows) = ops::report::export(&db, &clock, &req).await.unwrap();
        let full = tokenctl::domain::report::build(period, &rows, 5);
        assert_eq!(
            serde_json::to_value(&report.totals).unwrap(),
            serde_json::to_value(&full.totals).unwrap()
        );
        assert_eq!(
            serde_json::to_value(&report.daily_usage).unwrap(),
            serde_json::to_value(&full.daily_usage).unwrap()
        );
        (
            serde_json::to_value(&report.top_users).unwrap(),
            serde_json::to_value(&full.top_users).unwrap(),
        )
    })
}

both!(
    report_top_users_are_exact_with_many_users_skewed_or_even,
    |env| {
        // skewed: a few users spend most (each day's top 50 holds the answer)
        record_users(
            &env,
            600,
            |i| if i % 97 == 0 { 5_000 + i as i64 } else { 10 },
            |i| format!("u{}", i % 150),
        );
        let (fast, full) = top_users_both_ways(&env);
        assert_eq!(fast, full);
        assert_eq!(fast.as_array().unwrap().len(), 5);
        // even: 200 users spending alike each day, so the threshold cannot stop early and every
        // user's days are added up
        record_users(
            &env,
            1200,
            |i| 100 + (i % 7) as i64,
            |i| format!("even{}", i % 200),
        );
        let (fast, full) = top_users_both_ways(&env);
        assert_eq!(fast, full);
    }
);
