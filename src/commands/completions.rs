//! Shell completion: a static script (`completions SHELL`), and dynamic completion
//! (`COMPLETE=bash tokenctl`) that also offers the AI types the database knows.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::CompletionCandidate;

use crate::cli::{Cli, CompletionsArgs};
use crate::db::{Db, DbUrl};

pub fn run(args: &CompletionsArgs) -> Result<ExitCode> {
    // into memory first: clap_complete panics when its writer fails (a closed pipe)
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "tokenctl", &mut script);
    crate::out!("{}", String::from_utf8_lossy(&script));
    Ok(ExitCode::SUCCESS)
}

/// A shell waits on this at each Tab: a database that does not answer soon offers nothing.
const CANDIDATES_TIMEOUT: Duration = Duration::from_secs(2);

/// The AI types of the database the environment names (TOKENCTL_DATABASE_URL, DATABASE_URL,
/// else the default file), for completing `--ai-type`. Never creates or migrates a database,
/// and never prints: any failure offers no names, and the shell falls back to nothing.
pub fn ai_type_candidates() -> Vec<CompletionCandidate> {
    let Ok(url) = super::database_url(None) else {
        return Vec::new();
    };
    if let DbUrl::Sqlite { path, memory, .. } = &url {
        if *memory || !path.exists() {
            return Vec::new();
        }
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let names = runtime.block_on(async {
        tokio::time::timeout(CANDIDATES_TIMEOUT, async {
            Db::connect(&url).await?.known_ai_types().await
        })
        .await
    });
    match names {
        Ok(Ok(names)) => names.into_iter().map(CompletionCandidate::new).collect(),
        _ => Vec::new(),
    }
}
