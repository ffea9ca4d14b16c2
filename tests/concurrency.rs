//! Many processes at once: the granted total never passes a limit, and settling is exact.

mod common;

use std::process::{Child, Stdio};

use serde_json::Value;

fn spawn(env: &common::Env, args: &[&str]) -> Child {
    env.cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (Option<i32>, Value, String) {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), json, stderr)
}

both!(
    thirty_two_reservers_never_overshoot_and_settle_exactly,
    |env| {
        env.ok(&[
            "limits",
            "set",
            "--ai-type",
            "conc",
            "--monthly",
            "5000",
            "--daily",
            "5000",
            "--hourly",
            "5000",
        ]);
        env.ok(&[
            "limits",
            "set",
            "--global",
            "--daily",
            "1000000",
            "--hourly",
            "1000000",
            "--max-concurrent",
            "0",
            "--rpm",
            "0",
            "--rpd",
            "0",
        ]);
        env.ok(&["limits", "set", "--rpm", "0", "--rpd", "0"]);
        let children: Vec<Child> = (0..32)
            .map(|_| {
                spawn(
                    &env,
                    &[
                        "reserve",
                        "--ai-type",
                        "conc",
                        "--estimated-tokens",
                        "600",
                        "--json",
                    ],
                )
            })
            .collect();
        let mut granted = Vec::new();
        let mut denied = 0;
        for child in children {
            let (code, json, stderr) = finish(child);
            match code {
                Some(0) => granted.push(json["reservation_id"].as_str().unwrap().to_string()),
                Some(3) => {
                    assert_eq!(json["reason"], "monthly_limit_exceeded", "{json}");
                    denied += 1;
                }
                other => panic!("reserve exited {other:?}: {stderr}"),
            }
        }
        // 8 × 600 = 4,800 fits in 5,000; a ninth would make 5,400
        assert_eq!(granted.len(), 8, "granted {} holds", granted.len());
        assert_eq!(denied, 24);
        let s = env.status_of("conc");
        assert_eq!(s["reserved_tokens"].as_i64(), Some(4_800));

        // settle every hold twice at once (a retried settle): the real numbers count once each
        let settles: Vec<Child> = granted
            .iter()
            .flat_map(|id| {
                let args = [
                    "record",
                    "--ai-type",
                    "conc",
                    "--tokens-in",
                    "400",
                    "--tokens-out",
                    "100",
                    "--reservation",
                    id.as_str(),
                    "--json",
                ];
                vec![spawn(&env, &args), spawn(&env, &args)]
            })
            .collect();
        let mut duplicates = 0;
        for child in settles {
            let (code, json, stderr) = finish(child);
            assert_eq!(code, Some(0), "{stderr}");
            if json["duplicate"] == true {
                duplicates += 1;
            }
        }
        assert_eq!(duplicates, 8);
        let s = env.status_of("conc");
        assert_eq!(s["total_tokens"].as_i64(), Some(4_000));
        assert_eq!(s["reserved_tokens"].as_i64(), Some(0));
        assert_eq!(s["request_count"].as_i64(), Some(8));
        assert_eq!(env.scalar("SELECT COUNT(*) FROM token_usage_logs"), 8);
        assert_eq!(
            env.scalar("SELECT COUNT(*) FROM token_reservations WHERE state = 'settled'"),
            8
        );
        let g = env.json(&["status"]);
        assert_eq!(g["global"]["reserved_tokens"].as_i64(), Some(0));
        assert_eq!(g["global"]["today_tokens"].as_i64(), Some(4_000));
    }
);

both!(reservers_of_many_ai_types_share_the_global_limit, |env| {
    env.ok(&[
        "limits",
        "set",
        "--global",
        "--monthly",
        "10000",
        "--daily",
        "10000",
        "--hourly",
        "10000",
        "--max-concurrent",
        "0",
        "--rpm",
        "0",
        "--rpd",
        "0",
    ]);
    env.ok(&[
        "limits", "set", "--rpm", "0", "--rpd", "0", "--daily", "100000", "--hourly", "100000",
    ]);
    let children: Vec<Child> = (0..32)
        .map(|n| {
            let ai = format!("agent-{}", n % 4);
            spawn(
                &env,
                &[
                    "reserve",
                    "--ai-type",
                    &ai,
                    "--estimated-tokens",
                    "700",
                    "--json",
                ],
            )
        })
        .collect();
    let mut granted = 0;
    for child in children {
        let (code, json, stderr) = finish(child);
        match code {
            Some(0) => granted += 1,
            Some(3) => assert_eq!(json["reason"], "global_limit_exceeded", "{json}"),
            other => panic!("reserve exited {other:?}: {stderr}"),
        }
    }
    // 14 × 700 = 9,800 fits in 10,000
    assert_eq!(granted, 14);
    assert_eq!(
        env.json(&["status"])["global"]["reserved_tokens"].as_i64(),
        Some(9_800)
    );
});

both!(concurrent_records_lose_nothing, |env| {
    let children: Vec<Child> = (0..24)
        .map(|n| {
            let ai = format!("w{}", n % 3);
            spawn(
                &env,
                &[
                    "record",
                    "--ai-type",
                    &ai,
                    "--tokens-in",
                    "100",
                    "--tokens-out",
                    &n.to_string(),
                    "--json",
                ],
            )
        })
        .collect();
    for child in children {
        let (code, _, stderr) = finish(child);
        assert_eq!(code, Some(0), "{stderr}");
    }
    let s = env.json(&["status"]);
    let expected: i64 = (0..24).map(|n| 100 + n).sum();
    assert_eq!(s["global"]["total_tokens"].as_i64(), Some(expected));
    assert_eq!(s["global"]["request_count"].as_i64(), Some(24));
    assert_eq!(s["global"]["today_tokens"].as_i64(), Some(expected));
});
