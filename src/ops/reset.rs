//! `reset` (clear a month by hand) and `monthly-reset` (close past months into the archive,
//! start the current one, and prune old request logs).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::OpResult;
use crate::db::ledger::{MonthlyReset, Reset};
use crate::db::Db;
use crate::domain::clock::month_bounds;
use crate::domain::input::AiType;
use crate::domain::Clock;

/// Rows per pruning transaction: few enough commits that pruning costs about what one plain
/// DELETE does (README, "Pruning logs"), and small enough that memory stays bounded and
/// SQLite's write lock is held for about 0.3 s at a time, so recording goes on.
pub const PRUNE_BATCH: i64 = 200_000;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResetRequest {
    /// only this AI type (default: every one)
    #[serde(default)]
    pub ai_type: Option<AiType>,
    /// say what would be cleared, change nothing
    #[serde(default)]
    pub dry_run: bool,
}

/// Archives and clears the current month's counters, windows and open reservations.
pub async fn reset(db: &Db, clock: &Clock, req: &ResetRequest) -> OpResult<Reset> {
    Ok(db.reset(req.ai_type.as_deref(), clock, req.dry_run).await?)
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct MonthlyResetRequest {
    #[serde(default)]
    pub dry_run: bool,
    /// also delete request logs from before the month this many months back
    #[serde(default)]
    pub prune_logs_older_than: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MonthlyResetReport {
    #[serde(flatten)]
    pub reset: MonthlyReset,
    /// logs created before this were pruned (null without --prune-logs-older-than)
    pub prune_cutoff: Option<DateTime<Utc>>,
    /// logs deleted, or that would be deleted in a dry run
    pub pruned_logs: Option<u64>,
}

/// Hears how pruning goes, so a front end can draw a progress bar.
pub trait PruneProgress: Sync {
    /// the rows there are to delete (counted first only when someone listens)
    fn start(&self, rows: u64);
    /// rows deleted so far
    fn deleted(&self, rows: u64);
}

/// Closes every past month (one transaction), then prunes in batches of `PRUNE_BATCH` rows,
/// each its own transaction, so recording goes on meanwhile.
pub async fn monthly_reset(
    db: &Db,
    clock: &Clock,
    req: &MonthlyResetRequest,
    progress: Option<&dyn PruneProgress>,
) -> OpResult<MonthlyResetReport> {
    let reset = db.monthly_reset(clock, req.dry_run).await?;
    let cutoff = req
        .prune_logs_older_than
        .and_then(|months| prune_cutoff(clock, months));
    let pruned_logs = match cutoff {
        None => None,
        Some(cutoff) if req.dry_run => Some(db.count_logs_before(cutoff).await?.max(0) as u64),
        Some(cutoff) => {
            if let Some(p) = progress {
                p.start(db.count_logs_before(cutoff).await?.max(0) as u64);
            }
            let deleted = db
                .prune_logs(cutoff, PRUNE_BATCH, |n| {
                    if let Some(p) = progress {
                        p.deleted(n);
                    }
                })
                .await
                .map_err(|e| {
                    // the months are closed either way: say so, and how to finish
                    let e = crate::error::OpError::from(e);
                    crate::error::OpError::new(
                        e.kind,
                        format!(
                            "monthly-reset closed every month before {}, but pruning the logs \
                             stopped part way (run it again to finish): {}",
                            reset.month, e.message
                        ),
                    )
                })?;
            Some(deleted)
        }
    };
    Ok(MonthlyResetReport {
        reset,
        prune_cutoff: cutoff,
        pruned_logs,
    })
}

/// The first instant of the month `months` before the current one.
fn prune_cutoff(clock: &Clock, months: u32) -> Option<DateTime<Utc>> {
    let (start, _) = month_bounds(&clock.periods().month, clock.tz)?;
    let local = start.with_timezone(&clock.tz).date_naive();
    let index = local.year() * 12 + local.month0() as i32 - months as i32;
    let first = NaiveDate::from_ymd_opt(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1)?;
    month_bounds(&first.format("%Y-%m").to_string(), clock.tz).map(|(s, _)| s)
}
