//! Reservations per second through the library (no process start per reservation): 16
//! tasks on a multi-threaded runtime sharing one pool of 16 connections, each reserving in a
//! loop for a fixed time through `ops::admit::reserve`, the call `tokenctl serve` makes. This
//! is the admission transaction's own throughput. scripts/bench.sh runs it next to pgbench.
//!
//!     cargo bench --bench reserve_throughput -- postgres://postgres@127.0.0.1/db 10 [CLIENTS [USERS]]
//!
//! With USERS, each reservation is for one of that many users (user-0 …), of model gpt-4o:
//! the user scope's limits and counters are read and written too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokenctl::db::{Db, DbUrl};
use tokenctl::domain::Clock;
use tokenctl::ops::admit::{reserve, CheckRequest, Estimate, ReserveRequest};

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let (Some(url), Some(secs)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u64>().ok()))
    else {
        eprintln!("usage: reserve_throughput DATABASE_URL SECONDS [CLIENTS [USERS]]");
        std::process::exit(2);
    };
    let clients: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(16);
    let users: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0);
    let url = DbUrl::parse(url).expect("database URL");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let denied = Arc::new(AtomicU64::new(0));
    let elapsed = rt.block_on(async {
        let db = Db::open_pool(&url, clients as u32).await.expect("connect");
        let clock = Clock::new(None, None).unwrap();
        let start = Instant::now();
        let end = start + Duration::from_secs(secs);
        let mut handles = Vec::new();
        for i in 0..clients {
            let (db, done, denied) = (db.clone(), done.clone(), denied.clone());
            let req = ReserveRequest {
                check: CheckRequest {
                    ai_type: format!("agent-{}", i % 4).parse().unwrap(),
                    estimate: Estimate::Tokens {
                        estimated_tokens: "10".parse().unwrap(),
                    },
                    user_id: None,
                    model: (users > 0).then(|| "gpt-4o".to_string()),
                },
                ttl: "1h".parse().unwrap(),
            };
            handles.push(tokio::spawn(async move {
                let mut req = req;
                let mut n = i;
                while Instant::now() < end {
                    if users > 0 {
                        // a different user each time, spread over all of them
                        n = (n * 7_919 + 104_729) % users;
                        req.check.user_id = Some(format!("user-{n}"));
                    }
                    let r = reserve(&db, &clock.refreshed(), &req)
                        .await
                        .expect("reserve");
                    let counter = if r.decision.allowed { &done } else { &denied };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        start.elapsed()
    });
    let denied = denied.load(Ordering::Relaxed);
    if denied > 0 {
        eprintln!("warning: {denied} reservations were denied: raise the limits");
    }
    println!(
        "{:.0}",
        done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()
    );
}
