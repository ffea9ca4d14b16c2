//! `archive`: the months monthly-reset (or reset) closed, newest first.

use serde::{Deserialize, Serialize};

use super::OpResult;
use crate::db::{ArchiveRow, Db};
use crate::domain::input::{AiType, Month};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ArchiveRequest {
    #[serde(default)]
    pub ai_type: Option<AiType>,
    #[serde(default)]
    pub month: Option<Month>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArchiveReport {
    pub archive: Vec<ArchiveRow>,
}

pub async fn archive(db: &Db, req: &ArchiveRequest) -> OpResult<ArchiveReport> {
    Ok(ArchiveReport {
        archive: db
            .archive(req.ai_type.as_deref(), req.month.as_deref())
            .await?,
    })
}
