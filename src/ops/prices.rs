//! `prices`, `prices set` and `prices unset`: what each model costs, built in or stored.

use serde::{Deserialize, Serialize};

use super::OpResult;
use crate::db::Db;
use crate::domain::prices::{Price, PriceTable};
use crate::domain::validate;
use crate::domain::Clock;
use crate::error::OpError;

#[derive(Debug, Clone, Serialize)]
pub struct PricesReport {
    pub prices: Vec<Price>,
}

impl From<&PriceTable> for PricesReport {
    fn from(table: &PriceTable) -> PricesReport {
        PricesReport {
            prices: table.all().to_vec(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SetPriceRequest {
    pub model: String,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

#[derive(Debug, Clone)]
pub struct Unset {
    /// false when the model had no price in the database (nothing changed)
    pub removed: bool,
    pub table: PriceTable,
}

pub async fn prices(db: &Db) -> OpResult<PriceTable> {
    Ok(db.prices().await?)
}

/// Stores a model's price for every host; the table after the change.
pub async fn set(db: &Db, clock: &Clock, req: &SetPriceRequest) -> OpResult<PriceTable> {
    let model = validate::model(&req.model).map_err(OpError::invalid)?;
    for usd in [req.input_per_mtok, req.output_per_mtok] {
        validate::usd_per_mtok(&usd.to_string()).map_err(OpError::invalid)?;
    }
    Ok(db
        .set_price(&model, req.input_per_mtok, req.output_per_mtok, clock)
        .await?)
}

/// Removes a model's stored price: the built-in one (if any) applies again.
pub async fn unset(db: &Db, model: &str) -> OpResult<Unset> {
    let (removed, table) = db.unset_price(model).await?;
    Ok(Unset { removed, table })
}
