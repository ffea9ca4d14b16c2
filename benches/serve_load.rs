//! A load generator for `tokenctl serve`: CLIENTS threads, each with its own keep-alive
//! connection, sending reservations (or reservation + settle pairs) for SECONDS; prints
//! `per_second p50_ms p99_ms denied` (latency of each HTTP request). scripts/bench.sh serve runs it
//! next to pgbench.
//!
//!     cargo bench --bench serve_load -- http://127.0.0.1:4000 TOKEN 64 10 reserve|pair

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let usage = || -> ! {
        eprintln!("usage: serve_load BASE_URL TOKEN CLIENTS SECONDS reserve|pair");
        std::process::exit(2)
    };
    let (Some(base), Some(token), Some(clients), Some(secs), Some(mode)) = (
        args.get(1),
        args.get(2),
        args.get(3).and_then(|s| s.parse::<usize>().ok()),
        args.get(4).and_then(|s| s.parse::<u64>().ok()),
        args.get(5),
    ) else {
        usage()
    };
    let pairs = match mode.as_str() {
        "reserve" => false,
        "pair" => true,
        _ => usage(),
    };
    let end = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (base, auth) = (base.clone(), format!("Bearer {token}"));
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(30))
                    .build();
                let body = format!(
                    r#"{{"ai_type": "agent-{}", "estimated_tokens": 10, "ttl_seconds": 3600}}"#,
                    i % 4
                );
                let (mut done, mut denied, mut latencies) = (0u64, 0u64, Vec::new());
                while Instant::now() < end {
                    let t = Instant::now();
                    let r = agent
                        .post(&format!("{base}/v1/reservations"))
                        .set("Authorization", &auth)
                        .set("Content-Type", "application/json")
                        .send_string(&body);
                    latencies.push(t.elapsed());
                    let held = match r {
                        Ok(r) if r.status() == 201 => r.into_string().unwrap_or_default(),
                        Ok(_) | Err(ureq::Error::Status(..)) => {
                            denied += 1;
                            continue;
                        }
                        Err(e) => panic!("reserve: {e}"),
                    };
                    if pairs {
                        let doc: serde_json::Value = serde_json::from_str(&held).unwrap();
                        let id = doc["reservation_id"].as_str().unwrap();
                        let t = Instant::now();
                        agent
                            .post(&format!("{base}/v1/reservations/{id}/settle"))
                            .set("Authorization", &auth)
                            .set("Content-Type", "application/json")
                            .send_string(r#"{"tokens_in": 6, "tokens_out": 3}"#)
                            .expect("settle");
                        latencies.push(t.elapsed());
                    }
                    done += 1;
                }
                (done, denied, latencies)
            })
        })
        .collect();
    let (mut done, mut denied, mut latencies) = (0u64, 0u64, Vec::new());
    for t in threads {
        let (d, n, l) = t.join().unwrap();
        done += d;
        denied += n;
        latencies.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    println!(
        "{:.0} {:.2} {:.2} {denied}",
        done as f64 / elapsed,
        at(0.5),
        at(0.99)
    );
}
