//! `config` and `config set`: prints the settings every host shares (`ops::clock`).

use std::process::ExitCode;

use anyhow::Result;

use super::App;
use crate::cli::ConfigSetArgs;
use crate::ops::clock::{config, set_timezone, ConfigReport, SetTimezoneRequest};
use crate::output::print_json;

pub async fn show(app: &App, json: bool) -> Result<ExitCode> {
    let r = config(&app.db, &app.clock, super::local_zone().is_some()).await?;
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
    let req = SetTimezoneRequest {
        timezone: args.timezone,
    };
    let r: ConfigReport = set_timezone(&app.db, &app.clock, &req).await?;
    if args.json {
        print_json(&r)?;
    } else {
        crate::outln!(
            "timezone set to {} for every host; the current month there is {}",
            r.timezone,
            r.current_month
        );
    }
    Ok(ExitCode::SUCCESS)
}
