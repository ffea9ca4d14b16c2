//! `quota`: one user's room, as a few lines or JSON.

use std::process::ExitCode;

use anyhow::Result;

use super::App;
use crate::cli::QuotaArgs;
use crate::ops::quota::{quota, QuotaRequest};
use crate::output::{print_json, thousands};

pub async fn run(app: &App, args: &QuotaArgs) -> Result<ExitCode> {
    let req = QuotaRequest {
        user_id: args.user_id.clone(),
    };
    let q = quota(&app.db, &app.clock, &req).await?;
    if args.json {
        print_json(&q)?;
        return Ok(ExitCode::SUCCESS);
    }
    let tokens = |left: Option<i64>, used: i64| match left {
        Some(left) => format!("{} tokens left ({} used)", thousands(left), thousands(used)),
        None => format!("no limit ({} used)", thousands(used)),
    };
    let dollars = |left: Option<crate::domain::Usd>, used: crate::domain::Usd| match left {
        Some(left) => format!("{left} left ({used} spent)"),
        None => format!("no limit ({used} spent)"),
    };
    crate::outln!(
        "user {}: {}",
        q.user_id,
        if q.can_make_request {
            "may make requests".to_string()
        } else {
            format!("denied ({})", q.reason)
        }
    );
    crate::outln!(
        "  today ({}): {}; {}",
        q.day,
        tokens(q.daily_tokens_remaining, q.daily_tokens_used),
        dollars(q.daily_cost_remaining, q.daily_cost_used)
    );
    crate::outln!(
        "  {}: {}; {}",
        q.month,
        tokens(q.monthly_tokens_remaining, q.monthly_tokens_used),
        dollars(q.monthly_cost_remaining, q.monthly_cost_used)
    );
    Ok(ExitCode::SUCCESS)
}
