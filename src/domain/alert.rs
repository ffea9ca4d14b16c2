//! What an alert says: raised when a level of the enforced monthly limit is entered upwards.

use chrono::SecondsFormat;
use serde::Serialize;

use super::burn::Burn;
use super::level::{percentage, Level};
use super::number::{thousands, thousands_f};
use super::validate::GLOBAL_SCOPE;

/// An alert about to be raised (the database gives it its id and time).
#[derive(Debug, Clone, Serialize)]
pub struct AlertDraft {
    pub ai_type: String,
    pub level: Level,
    pub month: String,
    pub usage_percentage: f64,
    pub total_tokens: i64,
    pub limit: i64,
    pub message: String,
    pub recommended_action: String,
    #[serde(flatten)]
    pub burn: Burn,
}

/// The levels at or below `level` that raise alerts, lowest first.
pub fn levels_reached(level: Level) -> Vec<Level> {
    [Level::Warning, Level::Critical, Level::Emergency]
        .into_iter()
        .filter(|l| *l <= level)
        .collect()
}

fn who(ai_type: &str) -> String {
    if ai_type == GLOBAL_SCOPE {
        "all AI types together".to_string()
    } else {
        ai_type.to_string()
    }
}

pub fn recommended_action(ai_type: &str, level: Level) -> String {
    let w = who(ai_type);
    let raise = if ai_type == GLOBAL_SCOPE {
        "tokenctl limits set --global --monthly N".to_string()
    } else {
        format!("tokenctl limits set --ai-type {ai_type} --monthly N")
    };
    match level {
        Level::Ok => String::new(),
        Level::Warning => format!(
            "Watch {w}: check what is driving usage (tokenctl status, tokenctl distribution) and trim max_tokens or request rates if the projection runs past the limit."
        ),
        Level::Critical => format!(
            "Restrict {w} to essential requests now; raise the limit only if the budget allows ({raise})."
        ),
        Level::Emergency => format!(
            "{w} is shut down: every request is denied until next month, until the limit is raised ({raise}), or until usage is reset."
        ),
    }
}

pub fn draft(
    ai_type: &str,
    level: Level,
    month: &str,
    used: i64,
    limit: i64,
    burn: Burn,
) -> AlertDraft {
    let pct = percentage(used, limit);
    let projection = match (burn.burn_rate_per_hour, burn.projected_exhaustion_at) {
        (Some(rate), Some(at)) => format!(
            "; at {} tokens/hour the limit is reached {}",
            thousands_f(rate),
            at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        (Some(rate), None) => format!(
            "; at {} tokens/hour the month ends at about {} tokens",
            thousands_f(rate),
            thousands(burn.projected_month_total.unwrap_or(used))
        ),
        _ => String::new(),
    };
    AlertDraft {
        ai_type: ai_type.to_string(),
        level,
        month: month.to_string(),
        usage_percentage: pct,
        total_tokens: used,
        limit,
        message: format!(
            "{}{}: {} reached {} of {} tokens ({pct:.2}%) in {month}{projection}",
            level.as_str().to_uppercase(),
            if ai_type == GLOBAL_SCOPE {
                " (global)"
            } else {
                ""
            },
            who(ai_type),
            thousands(used),
            thousands(limit),
        ),
        recommended_action: recommended_action(ai_type, level),
        burn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_reached_in_order() {
        assert!(levels_reached(Level::Ok).is_empty());
        assert_eq!(
            levels_reached(Level::Critical),
            vec![Level::Warning, Level::Critical]
        );
    }

    #[test]
    fn messages_carry_numbers_and_an_action() {
        let d = draft(
            "imperium",
            Level::Warning,
            "2026-11",
            112_000,
            140_000,
            Burn::default(),
        );
        assert_eq!(
            d.message,
            "WARNING: imperium reached 112,000 of 140,000 tokens (80.00%) in 2026-11"
        );
        assert!(d.recommended_action.starts_with("Watch imperium"));
        let g = draft(
            GLOBAL_SCOPE,
            Level::Emergency,
            "2026-11",
            137_200,
            140_000,
            Burn::default(),
        );
        assert!(
            g.message
                .starts_with("EMERGENCY (global): all AI types together reached 137,200"),
            "{}",
            g.message
        );
        assert!(g.recommended_action.contains("--global"));
    }
}
