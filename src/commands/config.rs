//! `config` and `config set`: settings stored in the database for every host.

use std::process::ExitCode;

use anyhow::Result;
use serde::Serialize;

use super::App;
use crate::cli::ConfigSetArgs;
use crate::db::Db;
use crate::domain::Clock;
use crate::error::OpError;
use crate::output::{print_json, warn};

/// A host clock further than this from the database's is warned about on stderr.
pub const SKEW_WARNING: chrono::Duration = chrono::Duration::seconds(5);

/// The clock every host agrees on: the database server's time on PostgreSQL (unless
/// TOKENCTL_NOW pins it), and the database's time zone when one is set (TOKENCTL_TZ may
/// repeat it but not contradict it, or hosts would file usage under different days), else
/// TOKENCTL_TZ, else UTC.
pub async fn shared_clock(db: &Db, clock: Clock) -> Result<Clock> {
    let clock = if clock.pinned {
        clock
    } else {
        let before = chrono::Utc::now();
        let db_now = db.server_now().await?;
        let after = chrono::Utc::now();
        clock.synced(db_now, before + (after - before) / 2)
    };
    if let Some(skew) = clock.host_skew().filter(|s| s.abs() > SKEW_WARNING) {
        warn(&format!(
            "this host's clock is {:.1} s {} the database server's; tokenctl uses the database's, \
             but fix this host's clock (NTP) before it misleads anything else",
            skew.num_milliseconds().abs() as f64 / 1000.0,
            if skew > chrono::Duration::zero() {
                "ahead of"
            } else {
                "behind"
            }
        ));
    }
    let Some(stored) = db.timezone().await? else {
        return Ok(clock);
    };
    let tz: chrono_tz::Tz = stored.parse().map_err(|_| {
        anyhow::anyhow!("the database's time zone '{stored}' is not a known IANA zone")
    })?;
    let from_env = std::env::var("TOKENCTL_TZ")
        .ok()
        .filter(|v| !v.trim().is_empty());
    if from_env.is_some() && clock.tz != tz {
        return Err(OpError::invalid(format!(
            "TOKENCTL_TZ={} contradicts the database's time zone {stored} \
             (unset TOKENCTL_TZ, or change it for every host with: tokenctl config set --timezone ZONE)",
            from_env.unwrap_or_default()
        ))
        .into());
    }
    Ok(Clock { tz, ..clock })
}

#[derive(Debug, Serialize)]
struct ConfigReport {
    timezone: String,
    /// database (shared by every host), environment (TOKENCTL_TZ on this host) or default
    timezone_source: &'static str,
    current_month: String,
}

async fn report(app: &App) -> Result<ConfigReport> {
    let stored = app.db.timezone().await?;
    let source = if stored.is_some() {
        "database"
    } else if std::env::var("TOKENCTL_TZ").is_ok_and(|v| !v.trim().is_empty()) {
        "environment"
    } else {
        "default"
    };
    Ok(ConfigReport {
        timezone: app.clock.tz.name().to_string(),
        timezone_source: source,
        current_month: app.clock.periods().month,
    })
}

pub async fn show(app: &App, json: bool) -> Result<ExitCode> {
    let r = report(app).await?;
    if json {
        print_json(&r)?;
    } else {
        crate::outln!(
            "timezone: {} ({}); the current month there is {}",
            r.timezone,
            r.timezone_source,
            r.current_month
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn set(app: &App, args: ConfigSetArgs) -> Result<ExitCode> {
    app.db.set_timezone(&args.timezone, &app.clock).await?;
    let tz: chrono_tz::Tz = args
        .timezone
        .parse()
        .map_err(|_| OpError::invalid("unknown time zone"))?;
    let month = Clock { tz, ..app.clock }.periods().month;
    if args.json {
        print_json(&ConfigReport {
            timezone: tz.name().to_string(),
            timezone_source: "database",
            current_month: month,
        })?;
    } else {
        crate::outln!(
            "timezone set to {} for every host; the current month there is {month}",
            tz.name()
        );
    }
    Ok(ExitCode::SUCCESS)
}
