//! `prices` and `prices set`.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::Cell;

use super::App;
use crate::cli::{PricesSetArgs, PricesUnsetArgs};
use crate::domain::prices::{PriceSource, PriceTable};
use crate::ops::prices::{
    prices, set as set_price, unset as unset_price, PricesReport, SetPriceRequest, Unset,
};
use crate::output::{print_json, Grid, Show, TableView};

pub async fn show(app: &App, json: bool, view: TableView) -> Result<ExitCode> {
    let table = prices(&app.db).await?;
    print(app, &table, json, view)
}

pub async fn set(app: &App, args: PricesSetArgs) -> Result<ExitCode> {
    let req = SetPriceRequest {
        model: args.model,
        input_per_mtok: args.input_per_mtok,
        output_per_mtok: args.output_per_mtok,
    };
    let table = set_price(&app.db, &app.clock, &req).await?;
    if !args.json {
        crate::outln!(
            "{}: ${} per million input tokens, ${} per million output tokens (stored in the database)",
            req.model, req.input_per_mtok, req.output_per_mtok
        );
        return Ok(ExitCode::SUCCESS);
    }
    print(app, &table, true, TableView::default())
}

pub async fn unset(app: &App, args: PricesUnsetArgs) -> Result<ExitCode> {
    let model = args.model.as_str();
    let Unset { removed, table } = unset_price(&app.db, model).await?;
    if !args.json {
        let now = match table.lookup(model) {
            Some(p) => format!(
                "${} / ${} per million input / output tokens ({})",
                p.input_per_mtok,
                p.output_per_mtok,
                match p.source {
                    PriceSource::Builtin => "built-in",
                    PriceSource::Database => "database",
                }
            ),
            None => "no price (its requests cost 0, with a warning)".to_string(),
        };
        if removed {
            crate::outln!("{model}: database price removed; now {now}");
        } else {
            crate::outln!("{model}: had no database price; nothing changed; {now}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    print(app, &table, true, TableView::default())
}

fn print(app: &App, prices: &PriceTable, json: bool, view: TableView) -> Result<ExitCode> {
    if json {
        print_json(&PricesReport::from(prices))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut grid = Grid::new()
        .text("Model", Show::Always)
        .number("Input USD/Mtok", Show::Always)
        .number("Output USD/Mtok", Show::Always)
        .text("Source", Show::Fit(1));
    for p in prices.all() {
        grid.row(vec![
            Cell::new(&p.model),
            Cell::new(format!("{:.4}", p.input_per_mtok)),
            Cell::new(format!("{:.4}", p.output_per_mtok)),
            Cell::new(match p.source {
                crate::domain::prices::PriceSource::Builtin => "built-in",
                crate::domain::prices::PriceSource::Database => "database",
            }),
        ]);
    }
    crate::out!("{}", grid.render(&app.style, view));
    if view.no_headers {
        return Ok(ExitCode::SUCCESS);
    }
    app.style.table_note(
        &grid,
        view,
        vec!["A model name also matches its dated variants (claude-sonnet-4-5-20250929 → claude-sonnet-4-5)".into()],
    );
    Ok(ExitCode::SUCCESS)
}
