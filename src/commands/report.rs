//! `report`: flags to an `ops::report` request; a table with a bar chart, JSON or CSV.

use std::process::ExitCode;

use anyhow::Result;

use super::report_view::{table_text, write_csv};
use super::App;
use crate::cli::ReportArgs;
use crate::domain::input::Count;
use crate::ops::report::{export, report, ReportRequest};
use crate::output::print_json;

pub fn request(args: &ReportArgs) -> Result<ReportRequest> {
    Ok(ReportRequest {
        days: args.days.map(Count::get),
        since: args.since.as_ref().map(|d| d.date()),
        until: args.until.as_ref().map(|d| d.date()),
        ai_type: args.ai_type.as_ref().map(|a| a.to_string()),
        user_id: args.user_id.clone(),
        top: Some(usize::try_from(args.top.get()).unwrap_or(usize::MAX)),
    })
}

pub async fn run(app: &App, req: &ReportRequest, json: bool, csv: bool) -> Result<ExitCode> {
    if csv {
        let (_, rows) = export(&app.db, &app.clock, req).await?;
        let mut out = Vec::new();
        write_csv(&rows, &mut out)?;
        crate::out!("{}", String::from_utf8_lossy(&out));
        return Ok(ExitCode::SUCCESS);
    }
    let report = report(&app.db, &app.clock, req).await?;
    if json {
        print_json(&report)?;
    } else {
        crate::out!("{}", table_text(&report, app.style.color, app.style.width));
    }
    Ok(ExitCode::SUCCESS)
}
