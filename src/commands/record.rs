//! `record`: flags to an `ops::admit::record` request; what was recorded as a line or JSON.

use std::process::ExitCode;

use anyhow::Result;

use super::App;
use crate::cli::RecordArgs;
use crate::db::ledger::Recorded;
use crate::ops::admit::{record, RecordRequest};
use crate::output::{print_json, thousands, warn};

pub fn request(args: RecordArgs) -> RecordRequest {
    RecordRequest {
        ai_type: Some(args.ai_type),
        tokens_in: args.tokens_in,
        tokens_out: args.tokens_out,
        cache_read_tokens: args.cache_read_tokens,
        cache_write_tokens: args.cache_write_tokens,
        model: args.model,
        request_id: args.request_id,
        user_id: args.user_id,
        session_id: args.session_id,
        request_type: args.request_type,
        duration_ms: args.duration_ms,
        failed: args.failed,
        error: args.error,
        reservation: args.reservation,
    }
}

pub async fn run(app: &App, req: RecordRequest, json: bool) -> Result<ExitCode> {
    let recorded = record(&app.db, &app.clock, req).await?;
    if !recorded.priced && !recorded.duplicate {
        let charge = recorded
            .unpriced_charge_usd
            .map(|c| format!("; USD limits count it at the dearest price known, {c}"))
            .unwrap_or_default();
        match &recorded.model {
            Some(model) => warn(&format!(
                "no price known for model '{model}': its cost is recorded as unknown (null), not $0{charge} \
                 (set one with: tokenctl prices set --model {model} --input-per-mtok USD --output-per-mtok USD)"
            )),
            None => warn(&format!(
                "no --model: the request's cost is recorded as unknown (null), not $0{charge}"
            )),
        }
    }
    if let (Some(id), Some(false)) = (&recorded.reservation_id, recorded.reservation_found) {
        warn(&format!(
            "no reservation '{id}' (removed with its month by monthly-reset, or mistyped): \
             the usage was recorded without settling a hold"
        ));
    }
    if recorded.month_closed && !recorded.duplicate {
        warn(&format!(
            "{} was already closed by monthly-reset (this clock is behind): the usage was added to its archived figure",
            recorded.month
        ));
    }
    for w in &recorded.warnings {
        warn(w);
    }
    if json {
        print_json(&recorded)?;
    } else {
        crate::outln!("{}", line(app, &recorded));
    }
    Ok(ExitCode::SUCCESS)
}

fn line(app: &App, r: &Recorded) -> String {
    if r.duplicate {
        return format!(
            "already recorded: {} used {} tokens ({} in, {} out) in {}; nothing changed",
            r.ai_type,
            thousands(r.total_tokens),
            thousands(r.tokens_in),
            thousands(r.tokens_out),
            r.month
        );
    }
    let settled = match (&r.reservation_id, r.reservation_was) {
        (Some(id), Some(was)) => format!(", settled reservation {id} (was {})", was.as_str()),
        _ => String::new(),
    };
    format!(
        "recorded {} tokens for {} ({}){}{}; {} now {} of {} ({:.2}%, {})",
        thousands(r.total_tokens),
        r.ai_type,
        r.cost_usd
            .map(|c| c.to_string())
            .unwrap_or_else(|| "cost unknown".into()),
        if r.success { "" } else { " as failed" },
        settled,
        r.month,
        thousands(r.month_total_tokens),
        thousands(r.monthly_limit),
        r.usage_percentage,
        app.style.level_word(r.level)
    )
}
