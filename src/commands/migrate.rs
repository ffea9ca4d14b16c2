use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::MigrateArgs;
use crate::db::{Db, DbUrl};
use crate::output::print_json;

#[derive(Debug, Serialize)]
struct Migrated {
    database: String,
    backend: &'static str,
    applied: Vec<i64>,
}

pub async fn run(db: &Db, url: &DbUrl, args: &MigrateArgs) -> Result<ExitCode> {
    let applied = db
        .migrate()
        .await
        .with_context(|| format!("cannot migrate {}", url.describe()))?;
    let report = Migrated {
        database: url.describe(),
        backend: db.backend_name(),
        applied,
    };
    if args.json {
        print_json(&report)?;
    } else if report.applied.is_empty() {
        crate::outln!("{}: schema is up to date", report.database);
    } else {
        let list: Vec<String> = report.applied.iter().map(|v| v.to_string()).collect();
        crate::outln!(
            "{}: applied migration(s) {}",
            report.database,
            list.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
