//! `logs`: the request log, newest first, a page at a time.

use serde::{Deserialize, Serialize};

use super::OpResult;
use crate::db::{Db, LogFilter, LogRow};
use crate::domain::input::{AiType, Since};
use crate::domain::Clock;

#[derive(Debug, Clone, Deserialize)]
pub struct LogsRequest {
    #[serde(default)]
    pub ai_type: Option<AiType>,
    #[serde(default)]
    pub since: Option<Since>,
    /// the `next_before` of the page before (an id no longer in the log is not found)
    #[serde(default)]
    pub before: Option<i64>,
    pub limit: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogsReport {
    pub logs: Vec<LogRow>,
    /// pass as --before for the next (older) page; null on the last page
    pub next_before: Option<i64>,
}

pub async fn logs(db: &Db, clock: &Clock, req: &LogsRequest) -> OpResult<LogsReport> {
    let filter = LogFilter {
        ai_type: req.ai_type.clone().map(String::from),
        since: req.since.map(|s| s.resolve(clock.now)).transpose()?,
        before: req.before,
        limit: req.limit,
    };
    let page = db.logs(&filter).await?;
    Ok(LogsReport {
        logs: page.rows,
        next_before: page.next_before,
    })
}
