//! `prices`, `prices set`, `prices unset` and `prices import`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result};
use comfy_table::Cell;

use super::App;
use crate::cli::{PricesImportArgs, PricesSetArgs, PricesUnsetArgs};
use crate::domain::pricing::{Price, PriceSource, PriceTable};
use crate::domain::Usd;
use crate::ops::prices::{
    import as import_prices, prices, set as set_price, unset as unset_price, ImportRequest,
    PricesReport, SetPriceRequest, Unset,
};
use crate::output::{print_json, warn, Grid, Show, TableView};

pub async fn show(app: &App, json: bool, view: TableView) -> Result<ExitCode> {
    let table = prices(&app.db).await?;
    print(app, &table, json, view)
}

pub async fn set(app: &App, args: PricesSetArgs) -> Result<ExitCode> {
    let req = SetPriceRequest {
        model: args.model,
        input_per_mtok: args.input_per_mtok,
        output_per_mtok: args.output_per_mtok,
        cache_read_per_mtok: args.cache_read_per_mtok,
        cache_write_per_mtok: args.cache_write_per_mtok,
        effective_from: args.effective_from.as_ref().map(|d| d.date()),
    };
    let table = set_price(&app.db, &app.clock, &req).await?;
    if req.cache_write_per_mtok.is_none() {
        warn(&format!(
            "{}: no --cache-write-per-mtok: prompt tokens written to cache are charged at the input price",
            req.model
        ));
    }
    if !args.json {
        let from = match &args.effective_from {
            Some(d) => format!("from {d}"),
            None => "from now on, for requests recorded after this".to_string(),
        };
        crate::outln!(
            "{}: {} per million input tokens, {} per million output tokens, {from} (stored in the database)",
            req.model,
            req.input_per_mtok,
            req.output_per_mtok
        );
        return Ok(ExitCode::SUCCESS);
    }
    print(app, &table, true, TableView::default())
}

pub async fn unset(app: &App, args: PricesUnsetArgs) -> Result<ExitCode> {
    let model = args.model.as_str();
    let Unset { removed, table } = unset_price(
        &app.db,
        model,
        args.effective_from.as_ref().map(|d| d.date()),
    )
    .await?;
    if !args.json {
        let now = match table.lookup(model, app.clock.periods().date()) {
            Some(p) => format!(
                "{} / {} per million input / output tokens ({})",
                p.rates.input,
                p.rates.output,
                source(p)
            ),
            None => "no price (its requests' cost is unknown: null, and totals say so)".to_string(),
        };
        if removed == 1 {
            crate::outln!("{model}: database price removed; now {now}");
        } else if removed > 1 {
            crate::outln!("{model}: {removed} database prices removed; now {now}");
        } else {
            crate::outln!("{model}: had no such database price; nothing changed; now {now}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    print(app, &table, true, TableView::default())
}

pub async fn import(app: &App, args: PricesImportArgs) -> Result<ExitCode> {
    let mut catalogue = String::new();
    let read = if args.file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut catalogue).map(|_| ())
    } else {
        std::fs::File::open(&args.file)
            .and_then(|mut f| f.read_to_string(&mut catalogue))
            .map(|_| ())
    };
    // an unreadable file is an I/O failure (exit 1), not bad input
    read.with_context(|| format!("cannot read the catalogue {}", args.file.display()))?;
    let req = ImportRequest {
        catalogue,
        providers: args.provider,
        effective_from: args.effective_from.as_ref().map(|d| d.date()),
        dry_run: args.dry_run,
    };
    let report = import_prices(&app.db, &app.clock, &req).await?;
    if args.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let verb = if report.dry_run { "would add" } else { "added" };
    crate::outln!(
        "{verb} {}, {} {}, {} unchanged, {} skipped{}",
        report.added_count,
        if report.dry_run {
            "would change"
        } else {
            "changed"
        },
        report.changed_count,
        report.unchanged_count,
        report.skipped_count,
        match report.effective_from {
            Some(d) => format!(" (prices from {d})"),
            None => String::new(),
        }
    );
    for (what, models) in [("added", &report.added), ("changed", &report.changed)] {
        if !models.is_empty() {
            crate::outln!("  {what}: {}", models.join(", "));
        }
    }
    for s in &report.skipped {
        crate::outln!("  skipped {}: {}", s.model, s.reason);
    }
    Ok(ExitCode::SUCCESS)
}

fn source(p: &Price) -> &'static str {
    match p.source {
        PriceSource::Builtin => "built-in",
        PriceSource::Database => "database",
    }
}

fn print(app: &App, prices: &PriceTable, json: bool, view: TableView) -> Result<ExitCode> {
    let report = PricesReport::new(prices, app.clock.periods().date());
    if json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut grid = Grid::new()
        .text("Model", Show::Always)
        .number("Input USD/Mtok", Show::Always)
        .number("Output USD/Mtok", Show::Always)
        .text("Source", Show::Always)
        .number("Cache read", Show::Fit(1))
        .number("Cache write", Show::Fit(1))
        .text("From", Show::Fit(2));
    let cache = |v: Option<Usd>| v.map(|u| u.to_string()).unwrap_or_else(|| "= input".into());
    for p in report.prices.iter().chain(&report.scheduled) {
        grid.row(vec![
            Cell::new(&p.model),
            Cell::new(p.rates.input.to_string()),
            Cell::new(p.rates.output.to_string()),
            Cell::new(source(p)),
            Cell::new(cache(p.rates.cache_read)),
            Cell::new(cache(p.rates.cache_write)),
            Cell::new(
                p.effective_from
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "always".into()),
            ),
        ]);
    }
    crate::out!("{}", grid.render(&app.style, view));
    if view.no_headers {
        return Ok(ExitCode::SUCCESS);
    }
    app.style.table_note(
        &grid,
        view,
        vec![
            "A model name also matches its dated variants (claude-sonnet-4-5-20250929 → claude-sonnet-4-5)".into(),
            format!(
                "Built-in prices checked {}; a model without a price has an unknown cost (null), never $0",
                report.builtin_checked
            ),
        ],
    );
    Ok(ExitCode::SUCCESS)
}
