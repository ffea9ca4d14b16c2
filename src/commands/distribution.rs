//! `distribution`: prints `ops::distribution`'s report as a bar chart or one JSON document.

use std::process::ExitCode;

use anyhow::Result;

use super::App;
use crate::domain::number::thousands_f;
use crate::ops::distribution::{distribution, Distribution, DistributionRequest};
use crate::output::{print_json, thousands, warn};

pub async fn run(app: &App, req: DistributionRequest, json: bool) -> Result<ExitCode> {
    let report = distribution(&app.db, &app.clock, &req).await?;
    for w in &report.warnings {
        warn(w);
    }
    if json {
        print_json(&report)?;
    } else {
        print_chart(app, &report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The columns a bar takes (its characters are one column each).
fn bar_chars(bar: &str) -> usize {
    bar.chars().filter(|c| !c.is_ascii()).count()
}

fn bar(value: i64, max: i64, width: usize) -> String {
    if max <= 0 || value <= 0 {
        return String::new();
    }
    let eighths = ((value as f64 / max as f64) * width as f64 * 8.0).round() as usize;
    let full = "█".repeat(eighths / 8);
    let part = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"][eighths % 8];
    format!("{full}{part}")
}

fn print_chart(app: &App, r: &Distribution) {
    use owo_colors::OwoColorize;
    let who = r.ai_type.clone().unwrap_or_else(|| "all AI types".into());
    let m = &r.monthly_distribution;
    crate::outln!("Usage per day, {} ({who})", r.month);
    if m.daily_usage_data.is_empty() {
        crate::outln!("  no usage recorded");
    }
    let limit = r.rate_limiting_status.daily_limit;
    let scale = m.max_daily_usage.max(1);
    // the bar takes what the width leaves: "  2026-11-05  " + bar + " 12,345,678 tokens 99,999 req"
    let bar_width = app
        .style
        .width
        .saturating_sub(14 + 1 + 11 + 8 + 6 + 4)
        .clamp(8, 60);
    for d in &m.daily_usage_data {
        let b = bar(d.tokens, scale, bar_width);
        let b = if app.style.color && d.tokens > limit {
            b.red().to_string()
        } else {
            b
        };
        // padded by hand: the colour codes around a red bar are not columns
        let pad = " ".repeat((bar_width + 1).saturating_sub(bar_chars(&b)));
        crate::outln!(
            "  {}  {b}{pad}{:>11} tokens {:>6} req",
            d.date,
            thousands(d.tokens),
            thousands(d.requests)
        );
    }
    app.style.note(
        &format!(
            "  total {}, {} day(s) with usage; average {}, max {}, min {}",
            thousands(m.total_tokens),
            m.days_with_usage,
            thousands_f(m.avg_daily_usage),
            thousands(m.max_daily_usage),
            thousands(m.min_daily_usage),
        ),
        2,
    );
    app.style.note(
        &format!(
            "  spread {:.2}% (0 = even, 100 = all on one day); daily limit {}",
            m.usage_spread_percentage,
            thousands(limit)
        ),
        2,
    );
    let d = &r.daily_distribution;
    crate::outln!("Usage per hour, {} ({who})", d.date);
    let hmax = d
        .hourly_usage_data
        .iter()
        .map(|h| h.tokens)
        .max()
        .unwrap_or(0)
        .max(r.rate_limiting_status.hourly_limit)
        .max(1);
    // "  00:00  " is 5 columns shorter than a date: the bars line up with the days'
    let hour_bar = bar_width + 5;
    for h in &d.hourly_usage_data {
        crate::outln!(
            "  {:02}:00  {:<width$}{:>11} tokens {:>6} req",
            h.hour,
            bar(h.tokens, hmax, hour_bar),
            thousands(h.tokens),
            thousands(h.requests),
            width = hour_bar + 1
        );
    }
    app.style.note(
        &format!(
            "  total {}, {} hour(s) with usage; average {}",
            thousands(d.total_tokens),
            d.hours_with_usage,
            thousands_f(d.avg_hourly_usage)
        ),
        2,
    );
    let s = &r.rate_limiting_status;
    let off = |v: Option<i64>| v.map(thousands).unwrap_or_else(|| "off".into());
    app.style.note(
        &format!(
            "Rate limits: rpm {}, rpd {}, cooldown {}, in flight {} of {}, pacing {}",
            off(s.rpm),
            off(s.rpd),
            if s.ai_cooldown_period > 0 {
                format!("{} s", s.ai_cooldown_period)
            } else {
                "off".into()
            },
            s.active_requests,
            off(s.max_concurrent_requests),
            match s.paced_allowance_now {
                Some(a) => format!("on (allowed now: {})", thousands(a)),
                None => "off".into(),
            }
        ),
        2,
    );
    for (ai, at) in &s.last_ai_requests {
        crate::outln!(
            "  last request of {ai}: {}",
            at.with_timezone(&app.clock.tz).format("%Y-%m-%d %H:%M:%S")
        );
    }
}
