//! `prices`, `prices set`, `prices unset` and `prices import`: what each model costs, built in
//! or stored, and from which day.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::OpResult;
use crate::db::Db;
use crate::domain::pricing::{parse_litellm, Price, PriceSource, PriceTable, Rates, Skipped};
use crate::domain::validate;
use crate::domain::{Clock, Usd};
use crate::error::OpError;

#[derive(Debug, Clone, Serialize)]
pub struct PricesReport {
    /// the day `in_force` is for (today, in the configured zone)
    pub on: NaiveDate,
    /// one price per model, the one in force today
    pub prices: Vec<Price>,
    /// stored prices that take effect on a later day
    pub scheduled: Vec<Price>,
    /// the date the built-in prices were checked against the providers' published ones
    pub builtin_checked: &'static str,
}

impl PricesReport {
    pub fn new(table: &PriceTable, on: NaiveDate) -> PricesReport {
        PricesReport {
            on,
            prices: table.in_force(on).into_iter().cloned().collect(),
            scheduled: table.scheduled(on).into_iter().cloned().collect(),
            builtin_checked: crate::domain::pricing::BUILTIN_CHECKED,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SetPriceRequest {
    pub model: String,
    pub input_per_mtok: Usd,
    pub output_per_mtok: Usd,
    #[serde(default)]
    pub cache_read_per_mtok: Option<Usd>,
    #[serde(default)]
    pub cache_write_per_mtok: Option<Usd>,
    /// the first day it applies (None: always)
    #[serde(default)]
    pub effective_from: Option<NaiveDate>,
}

#[derive(Debug, Clone)]
pub struct Unset {
    /// how many stored prices were removed (0: nothing changed)
    pub removed: u64,
    pub table: PriceTable,
}

pub async fn prices(db: &Db) -> OpResult<PriceTable> {
    Ok(db.prices().await?)
}

/// Stores a model's price for every host; the table after the change.
pub async fn set(db: &Db, clock: &Clock, req: &SetPriceRequest) -> OpResult<PriceTable> {
    let model = validate::model(&req.model).map_err(OpError::invalid)?;
    let price = Price {
        model,
        rates: Rates {
            input: req.input_per_mtok,
            output: req.output_per_mtok,
            cache_read: req.cache_read_per_mtok,
            cache_write: req.cache_write_per_mtok,
        },
        long_context: None,
        effective_from: req.effective_from,
        source: PriceSource::Database,
    };
    let (_, table) = db.set_prices(std::slice::from_ref(&price), clock).await?;
    Ok(table)
}

/// Removes a model's stored prices (the one from `effective_from` only, when given): the
/// built-in one (if any) applies again.
pub async fn unset(db: &Db, model: &str, effective_from: Option<NaiveDate>) -> OpResult<Unset> {
    // stored as `set` stores it: trimmed, lower-case
    let model = validate::model(model).map_err(OpError::invalid)?;
    let model = model.as_str();
    let from = effective_from.map(|d| d.format("%Y-%m-%d").to_string());
    let (removed, table) = db.unset_price(model, from.as_deref()).await?;
    Ok(Unset { removed, table })
}

#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// the catalogue's text (LiteLLM's model_prices_and_context_window.json)
    pub catalogue: String,
    /// only these providers (LiteLLM's `litellm_provider`); empty: all
    pub providers: Vec<String>,
    pub effective_from: Option<NaiveDate>,
    pub dry_run: bool,
}

/// What an import did (or, dry, would do), model by model.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub dry_run: bool,
    pub effective_from: Option<NaiveDate>,
    /// no stored price of the model from that day before
    pub added: Vec<String>,
    /// a stored price from that day with other figures, now replaced
    pub changed: Vec<String>,
    /// already stored with the same figures
    pub unchanged: Vec<String>,
    pub skipped: Vec<Skipped>,
    pub added_count: usize,
    pub changed_count: usize,
    pub unchanged_count: usize,
    pub skipped_count: usize,
}

/// Reads a catalogue and stores its prices in one transaction (none when dry).
pub async fn import(db: &Db, clock: &Clock, req: &ImportRequest) -> OpResult<ImportReport> {
    let catalogue = parse_litellm(&req.catalogue, &req.providers).map_err(OpError::invalid)?;
    let mut skipped = catalogue.skipped;
    let mut prices = Vec::new();
    for entry in &catalogue.prices {
        match validate::model(&entry.model) {
            Ok(model) => prices.push(Price {
                model,
                ..entry.to_price(req.effective_from)
            }),
            Err(e) => skipped.push(Skipped {
                model: entry.model.clone(),
                reason: e,
            }),
        }
    }
    let before = db.prices().await?;
    let stored = |p: &Price| {
        before
            .all()
            .iter()
            .find(|s| {
                s.source == PriceSource::Database
                    && s.model == p.model
                    && s.effective_from == p.effective_from
            })
            .cloned()
    };
    let (mut added, mut changed, mut unchanged) = (Vec::new(), Vec::new(), Vec::new());
    let mut to_write = Vec::new();
    for p in prices {
        match stored(&p) {
            None => added.push(p.model.clone()),
            Some(s) if s.rates == p.rates && s.long_context == p.long_context => {
                unchanged.push(p.model.clone());
                continue;
            }
            Some(_) => changed.push(p.model.clone()),
        }
        to_write.push(p);
    }
    if !req.dry_run && !to_write.is_empty() {
        db.set_prices(&to_write, clock).await?;
    }
    Ok(ImportReport {
        dry_run: req.dry_run,
        effective_from: req.effective_from,
        added_count: added.len(),
        changed_count: changed.len(),
        unchanged_count: unchanged.len(),
        skipped_count: skipped.len(),
        added,
        changed,
        unchanged,
        skipped,
    })
}
