//! `report`: usage analytics over a range of days, from the daily rollups `record` keeps.

use chrono::{Duration, NaiveDate};
use serde::Deserialize;

use super::OpResult;
use crate::db::{Db, RollupFilter};
use crate::domain::report::{build, Period, Report, RollupRow};
use crate::domain::Clock;
use crate::error::OpError;

/// The longest range a report covers (ten years): its daily trend has a row per day.
pub const MAX_DAYS: i64 = 3_660;
/// The most top users a report lists.
pub const MAX_TOP: usize = 100_000;
pub const DEFAULT_DAYS: i64 = 30;

/// Which days and whose usage: `days` back from today, or `since` (to `until`, else today).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReportRequest {
    #[serde(default)]
    pub days: Option<i64>,
    #[serde(default)]
    pub since: Option<NaiveDate>,
    #[serde(default)]
    pub until: Option<NaiveDate>,
    #[serde(default)]
    pub ai_type: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub top: Option<usize>,
}

impl ReportRequest {
    /// The days covered, `today` being the clock's day in the configured zone.
    pub fn period(&self, today: NaiveDate) -> OpResult<Period> {
        let (since, until) = match (self.days, self.since, self.until) {
            (Some(_), Some(_), _) => {
                return Err(OpError::invalid(
                    "give days or since (with until), not both",
                ))
            }
            (Some(_), None, Some(_)) => {
                return Err(OpError::invalid("until goes with since, not with days"))
            }
            (days, None, None) => {
                let days = days.unwrap_or(DEFAULT_DAYS);
                if !(1..=MAX_DAYS).contains(&days) {
                    return Err(OpError::invalid(format!(
                        "days must be from 1 to {MAX_DAYS}, got {days}"
                    )));
                }
                (today - Duration::days(days - 1), today)
            }
            (None, None, Some(_)) => return Err(OpError::invalid("until needs since")),
            (None, Some(since), until) => (since, until.unwrap_or(today)),
        };
        if since > until {
            return Err(OpError::invalid(format!(
                "since ({since}) is after until ({until})"
            )));
        }
        if self.top.is_some_and(|t| t > MAX_TOP) {
            return Err(OpError::invalid(format!(
                "top is at most {MAX_TOP}, got {}",
                self.top.unwrap_or_default()
            )));
        }
        if (until - since).num_days() >= MAX_DAYS {
            return Err(OpError::invalid(format!(
                "a report covers at most {MAX_DAYS} days; {since} to {until} is {}",
                (until - since).num_days() + 1
            )));
        }
        Ok(Period { since, until })
    }
}

/// The report. Of one user: from that user's rollup rows. Otherwise from rollups that do not
/// grow with the number of users (see `Db::report_parts`): the trend, models and AI types
/// from per-(day, AI type, model) rows, users from their own counters.
pub async fn report(db: &Db, clock: &Clock, req: &ReportRequest) -> OpResult<Report> {
    let today = clock.periods().date();
    let (period, ai_type, user_id) = scope(req, today)?;
    let (since, until) = (day(period.since), day(period.until));
    let filter = RollupFilter {
        since: &since,
        until: &until,
        ai_type: ai_type.as_deref(),
        user_id: user_id.as_deref(),
    };
    let top = req.top.unwrap_or(DEFAULT_TOP);
    if user_id.is_some() {
        return Ok(build(period, &db.rollups(&filter).await?, top));
    }
    let days: Vec<String> = period.days().map(day).collect();
    let parts = db
        .report_parts(&filter, &days, period.until >= today, top)
        .await?;
    let mut report = build(period, &parts.model_rows, top);
    for d in &mut report.daily_usage {
        let key = day(d.date);
        d.unique_users = parts
            .day_users
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, n)| usize::try_from(*n).unwrap_or(0));
    }
    report.totals.unique_users = usize::try_from(parts.unique_users).unwrap_or(0);
    report.top_users = parts.top_users;
    Ok(report)
}

/// The rollup rows of a range, one per day, AI type, user and model: what `--csv` prints.
pub async fn export(
    db: &Db,
    clock: &Clock,
    req: &ReportRequest,
) -> OpResult<(Period, Vec<RollupRow>)> {
    let (period, ai_type, user_id) = scope(req, clock.periods().date())?;
    let (since, until) = (day(period.since), day(period.until));
    let rows = db
        .rollups(&RollupFilter {
            since: &since,
            until: &until,
            ai_type: ai_type.as_deref(),
            user_id: user_id.as_deref(),
        })
        .await?;
    Ok((period, rows))
}

pub const DEFAULT_TOP: usize = 10;

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// The period and the filters, held to their rules.
fn scope(
    req: &ReportRequest,
    today: NaiveDate,
) -> OpResult<(Period, Option<String>, Option<String>)> {
    let period = req.period(today)?;
    let text = |field: &str, v: &Option<String>| -> OpResult<Option<String>> {
        v.as_deref()
            .map(|v| {
                crate::domain::validate::id(v)
                    .map_err(|e| OpError::invalid(format!("{field}: {e}")))
            })
            .transpose()
    };
    Ok((
        period,
        text("ai_type", &req.ai_type)?,
        req.user_id
            .as_deref()
            .map(|u| {
                crate::domain::validate::user_id(u)
                    .map_err(|e| OpError::invalid(format!("user_id: {e}")))
            })
            .transpose()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn ranges_are_days_back_or_since_until() {
        let today = day("2026-11-30");
        let thirty = ReportRequest::default().period(today).unwrap();
        assert_eq!((thirty.since, thirty.until), (day("2026-11-01"), today));
        let one = ReportRequest {
            days: Some(1),
            ..Default::default()
        };
        assert_eq!(one.period(today).unwrap().since, today);
        let span = ReportRequest {
            since: Some(day("2026-10-01")),
            until: Some(day("2026-10-31")),
            ..Default::default()
        };
        assert_eq!(span.period(today).unwrap().until, day("2026-10-31"));
        for bad in [
            ReportRequest {
                days: Some(0),
                ..Default::default()
            },
            ReportRequest {
                since: Some(day("2026-11-02")),
                until: Some(day("2026-11-01")),
                ..Default::default()
            },
            ReportRequest {
                since: Some(day("1990-01-01")),
                ..Default::default()
            },
            ReportRequest {
                until: Some(today),
                ..Default::default()
            },
        ] {
            assert!(bad.period(today).is_err(), "{bad:?}");
        }
    }
}
