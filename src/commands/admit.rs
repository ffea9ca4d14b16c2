//! `check`, `reserve` and `release`: admission decisions and holds.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::Duration;

use super::App;
use crate::cli::EstimateArgs;
use crate::domain::input::Tokens;
use crate::domain::{estimate, Decision};
use crate::error::{OpError, EXIT_DENIED};
use crate::output::{print_json, thousands, warn};

/// A request to admit: who, and how many tokens it will use at most.
#[derive(Debug, Clone)]
pub struct Request {
    pub ai_type: String,
    pub estimated_tokens: i64,
    pub json: bool,
}

impl Request {
    pub fn from_args(args: EstimateArgs) -> Result<Request> {
        let estimated_tokens = match (
            args.estimated_tokens,
            args.prompt,
            args.prompt_file,
            args.max_tokens.map(Tokens::get),
        ) {
            (Some(n), _, _, _) => n.get(),
            (None, Some(prompt), _, Some(max)) => estimate::estimate(&prompt, max),
            (None, None, Some(path), Some(max)) => estimate::estimate(&read_prompt(&path)?, max),
            _ => {
                return Err(OpError::invalid(
                    "give --estimated-tokens N, or --prompt/--prompt-file with --max-tokens N",
                )
                .into())
            }
        };
        Ok(Request {
            ai_type: args.ai_type.into(),
            estimated_tokens,
            json: args.json,
        })
    }
}

/// An unreadable prompt file is an I/O failure (exit 1), not bad input.
fn read_prompt(path: &std::path::Path) -> Result<String> {
    let mut text = String::new();
    let result = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map(|_| ())
    };
    result.with_context(|| format!("cannot read the prompt from {}", path.display()))?;
    Ok(text)
}

fn exit_for(decision: &Decision) -> ExitCode {
    if decision.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DENIED)
    }
}

fn decision_line(d: &Decision) -> String {
    if d.allowed {
        return d.message.clone();
    }
    match d.retry_after {
        Some(t) => format!(
            "denied ({}): {}; retry after {}",
            d.reason.as_str(),
            d.message,
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        None => format!("denied ({}): {}", d.reason.as_str(), d.message),
    }
}

pub async fn check(app: &App, req: Request, quiet: bool) -> Result<ExitCode> {
    let decision = app
        .db
        .check(&req.ai_type, req.estimated_tokens, &app.clock)
        .await?;
    if quiet {
        return Ok(exit_for(&decision));
    }
    for w in &decision.warnings {
        warn(w);
    }
    if req.json {
        print_json(&decision)?;
    } else {
        crate::outln!("{}", decision_line(&decision));
    }
    Ok(exit_for(&decision))
}

pub async fn reserve(app: &App, req: Request, ttl: Duration) -> Result<ExitCode> {
    let reserved = app
        .db
        .reserve(&req.ai_type, req.estimated_tokens, ttl, &app.clock)
        .await?;
    for w in &reserved.decision.warnings {
        warn(w);
    }
    if req.json {
        print_json(&reserved)?;
    } else if let (Some(id), Some(expires)) = (&reserved.reservation_id, reserved.expires_at) {
        crate::outln!(
            "reserved {} tokens for {}: {id} (expires {})",
            thousands(req.estimated_tokens),
            req.ai_type,
            expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    } else {
        crate::outln!("{}", decision_line(&reserved.decision));
    }
    Ok(exit_for(&reserved.decision))
}

pub async fn release(app: &App, id: &str, json: bool) -> Result<ExitCode> {
    let released = app.db.release(id, &app.clock).await?;
    if json {
        print_json(&released)?;
    } else {
        crate::outln!("{id}: {}", released.message);
    }
    Ok(ExitCode::SUCCESS)
}
