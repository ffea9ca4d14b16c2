//! A database an earlier tokenctl left (migrations 1 to 7 applied, usage and a log written
//! then), opened by this one: migration 8 rolls the log up, so the month's dollars count
//! against USD limits, reports cover the days before the upgrade, and a request logged at $0
//! with tokens (how earlier versions logged an unknown model) is flagged as unpriced.

mod common;

use common::{Backend, Env};
use serde_json::Value;
use sha2::{Digest, Sha384};

/// Applies this repository's migrations 1 to 7 by hand and records them as applied, the way
/// sqlx's migrator would have (its checksum is the SHA-384 of each file).
fn at_schema_seven(env: &Env) {
    let dir = match env.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let sqlite = env.backend == Backend::Sqlite;
    if sqlite {
        // an empty file: the earlier version's database, before its first migration
        std::fs::File::create(env.sqlite_path()).unwrap();
    }
    let blob = if sqlite { "BLOB" } else { "BYTEA" };
    let bytes = |hex: &str| {
        if sqlite {
            format!("X'{hex}'")
        } else {
            format!("decode('{hex}', 'hex')")
        }
    };
    env.sql(&format!(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL,
             checksum {blob} NOT NULL, execution_time BIGINT NOT NULL)"
    ));
    let folder = format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().as_ref() < "0008")
        .collect();
    files.sort();
    assert_eq!(files.len(), 7, "{files:?}");
    for file in files {
        let sql = std::fs::read_to_string(&file).unwrap();
        env.sql(&sql);
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        let (version, description) = name.split_once('_').unwrap();
        env.sql(&format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES ({}, '{}', {}, {}, 0)",
            version.parse::<i64>().unwrap(),
            description.replace('_', " "),
            match env.backend {
                Backend::Sqlite => "1",
                Backend::Postgres => "true",
            },
            bytes(&hex::encode(Sha384::digest(sql.as_bytes())))
        ));
    }
}

both!(
    an_earlier_databases_log_is_rolled_up_and_its_dollars_count,
    |env| {
        at_schema_seven(&env);
        let sqlite = env.backend == Backend::Sqlite;
        let yes = if sqlite { "1" } else { "true" };
        let at = |t: &str| {
            if sqlite {
                format!("'{t}.000000Z'")
            } else {
                format!("'{t}Z'")
            }
        };
        env.sql(&format!(
        "INSERT INTO token_usage_logs (ai_type, model, tokens_in, tokens_out, total_tokens, cost_usd, user_id,
             success, created_at, month_year)
         VALUES ('imperium', 'gpt-4o', 1000, 0, 1000, 0.0025, 'alice', {yes}, {}, '2026-11'),
                ('imperium', 'llama', 500, 0, 500, 0, 'bob', {yes}, {}, '2026-11'),
                ('guardian', 'gpt-4o', 2000, 0, 2000, 0.005, 'alice', {yes}, {}, '2026-11')",
        at("2026-11-20T10:00:00"),
        at("2026-11-21T10:00:00"),
        at("2026-11-22T10:00:00"),
    ));
        env.sql(
        "INSERT INTO token_usage (ai_type, month_year, monthly_limit, tokens_in, tokens_out, total_tokens,
             request_count, cost_usd)
         VALUES ('imperium', '2026-11', 140000, 1500, 0, 1500, 2, 0.0025),
                ('guardian', '2026-11', 140000, 2000, 0, 2000, 1, 0.005)",
    );
        let now = env.at("2026-11-22T12:00:00Z");
        assert!(now.ok(&["migrate"]).contains("applied migration(s) 8"));
        let st = now.json(&["status"]);
        assert_eq!(st["global"]["cost_usd"].as_f64(), Some(0.0075), "{st}");
        assert_eq!(
            st["global"]["cost_complete"], false,
            "llama was logged at $0: {st}"
        );
        let r = now.json(&["report", "--days", "5"]);
        assert_eq!(r["totals"]["requests"], 3, "{r}");
        assert_eq!(r["totals"]["unique_users"], 2);
        assert_eq!(r["top_users"][0]["user_id"], "alice");
        assert_eq!(r["top_users"][0]["total_cost"].as_f64(), Some(0.0075));
        let q = now.json(&["quota", "--user-id", "alice"]);
        assert_eq!(q["monthly_cost_used"].as_f64(), Some(0.0075), "{q}");
        // the month's spending before the upgrade counts against a USD limit set after it
        now.ok(&["limits", "set", "--global", "--monthly-cost-usd", "0.0075"]);
        let d = now.json_code(
            3,
            &[
                "check",
                "--ai-type",
                "x",
                "--estimated-tokens",
                "1",
                "--model",
                "gpt-4o",
            ],
        );
        assert_eq!(d["reason"], "monthly_cost_limit_exceeded", "{d}");
        // and a model without a price is logged as unknown from now on
        let rec: Value = now.json(&[
            "record",
            "--ai-type",
            "x",
            "--tokens-in",
            "1",
            "--tokens-out",
            "1",
            "--model",
            "nope",
        ]);
        assert_eq!(rec["cost_usd"], Value::Null, "{rec}");
    }
);
