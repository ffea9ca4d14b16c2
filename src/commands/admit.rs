//! `check`, `reserve` and `release`: flags to `ops::admit` requests; the decision as a line, a
//! JSON document and an exit code (3 when denied).

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::App;
use crate::cli::{EstimateArgs, ReleaseArgs};
use crate::domain::Decision;
use crate::error::{OpError, EXIT_DENIED};
use crate::ops::admit::{self, CheckRequest, Estimate, ReleaseRequest, ReserveRequest};
use crate::output::{print_json, thousands, warn};

/// The estimate the flags give: `--estimated-tokens`, or a prompt (typed or read from a file)
/// with `--max-tokens`.
pub fn estimate_of(args: &EstimateArgs) -> Result<Estimate> {
    Ok(
        match (
            args.estimated_tokens,
            &args.prompt,
            &args.prompt_file,
            args.max_tokens,
        ) {
            (Some(n), _, _, _) => Estimate::Tokens {
                estimated_tokens: n,
            },
            (None, Some(prompt), _, Some(max_tokens)) => Estimate::Prompt {
                prompt: prompt.clone(),
                max_tokens,
            },
            (None, None, Some(path), Some(max_tokens)) => Estimate::Prompt {
                prompt: read_prompt(path)?,
                max_tokens,
            },
            _ => {
                return Err(OpError::invalid(
                    "give --estimated-tokens N, or --prompt/--prompt-file with --max-tokens N",
                )
                .into())
            }
        },
    )
}

/// The request the flags give: a prompt is estimated once, now, so an estimate too large is
/// bad input refused before the database is opened.
pub fn check_request(args: EstimateArgs) -> Result<CheckRequest> {
    Ok(CheckRequest {
        estimate: estimate_of(&args)?.counted()?,
        ai_type: args.ai_type,
        user_id: args.user_id,
        model: args.model,
    })
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

pub async fn check(app: &App, req: CheckRequest, json: bool, quiet: bool) -> Result<ExitCode> {
    let decision = admit::check(&app.db, &app.clock, &req).await?;
    if quiet {
        return Ok(exit_for(&decision));
    }
    for w in &decision.warnings {
        warn(w);
    }
    if json {
        print_json(&decision)?;
    } else {
        crate::outln!("{}", decision_line(&decision));
    }
    Ok(exit_for(&decision))
}

pub async fn reserve(app: &App, req: ReserveRequest, json: bool) -> Result<ExitCode> {
    let reserved = admit::reserve(&app.db, &app.clock, &req).await?;
    for w in &reserved.decision.warnings {
        warn(w);
    }
    if json {
        print_json(&reserved)?;
    } else if let (Some(id), Some(expires)) = (&reserved.reservation_id, reserved.expires_at) {
        crate::outln!(
            "reserved {} tokens for {}: {id} (expires {})",
            thousands(reserved.decision.estimated_tokens),
            req.check.ai_type,
            expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    } else {
        crate::outln!("{}", decision_line(&reserved.decision));
    }
    Ok(exit_for(&reserved.decision))
}

pub async fn release(app: &App, args: &ReleaseArgs) -> Result<ExitCode> {
    let req = ReleaseRequest {
        reservation_id: args.reservation.clone(),
    };
    let released = admit::release(&app.db, &app.clock, &req).await?;
    if args.json {
        print_json(&released)?;
    } else {
        crate::outln!("{}: {}", req.reservation_id, released.message);
    }
    Ok(ExitCode::SUCCESS)
}
