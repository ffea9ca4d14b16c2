//! Reservations per second through the library (no process start per reservation): 16
//! clients, each with its own connection, reserving in a loop for a fixed time. This is the
//! admission transaction's own throughput, the figure a long-running caller (the coming
//! `tokenctl serve`) gets. scripts/bench.sh runs it next to pgbench.
//!
//!     cargo bench --bench reserve_throughput -- postgres://postgres@127.0.0.1/db 10

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokenctl::db::{Db, DbUrl};
use tokenctl::domain::Clock;

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let (Some(url), Some(secs)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u64>().ok()))
    else {
        eprintln!("usage: reserve_throughput DATABASE_URL SECONDS [CLIENTS]");
        std::process::exit(2);
    };
    let clients: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(16);
    let url = DbUrl::parse(url).expect("database URL");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let done = Rc::new(Cell::new(0u64));
    let denied = Rc::new(Cell::new(0u64));
    let elapsed = local.block_on(&rt, async {
        let mut dbs = Vec::new();
        for _ in 0..clients {
            dbs.push(Db::open(&url).await.expect("connect"));
        }
        let clock = Clock::new(None, None).unwrap();
        let start = Instant::now();
        let end = start + Duration::from_secs(secs);
        let mut handles = Vec::new();
        for (i, db) in dbs.into_iter().enumerate() {
            let (done, denied) = (done.clone(), denied.clone());
            handles.push(tokio::task::spawn_local(async move {
                let ai = format!("agent-{}", i % 4);
                while Instant::now() < end {
                    let r = db
                        .reserve(&ai, 10, chrono::Duration::hours(1), &clock)
                        .await
                        .expect("reserve");
                    if r.decision.allowed {
                        done.set(done.get() + 1);
                    } else {
                        denied.set(denied.get() + 1);
                    }
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        start.elapsed()
    });
    if denied.get() > 0 {
        eprintln!(
            "warning: {} reservations were denied: raise the limits",
            denied.get()
        );
    }
    println!("{:.0}", done.get() as f64 / elapsed.as_secs_f64());
}
