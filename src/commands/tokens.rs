//! `tokens create|list|revoke`: the bearer tokens `tokenctl serve` accepts.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::Cell;

use super::App;
use crate::cli::TokensAction;
use crate::ops::tokens;
use crate::output::{print_json, warn, Grid, Show, TableView};

pub async fn run(app: &App, action: TokensAction) -> Result<ExitCode> {
    match action {
        TokensAction::Create(args) => {
            let created = tokens::create(&app.db, &app.clock, &args.name, args.scope).await?;
            if args.json {
                print_json(&created)?;
            } else {
                // the secret alone on stdout, so `secret=$(tokenctl tokens create …)` works
                crate::outln!("{}", created.token);
                warn(&format!(
                    "token '{}' (scope {}) created: its secret above is shown this once and stored only as a hash; send it as 'Authorization: Bearer SECRET'",
                    crate::error::printable(&created.name),
                    created.scope.as_str()
                ));
            }
        }
        TokensAction::List(args) => {
            let list = tokens::list(&app.db, args.all).await?;
            if args.json {
                print_json(&list)?;
                return Ok(ExitCode::SUCCESS);
            }
            let view: TableView = args.table.into();
            let mut grid = Grid::new()
                .text("Name", Show::Always)
                .text("Scope", Show::Always)
                .text("Created", Show::Always)
                .text("Revoked", Show::Fit(1));
            let time = |t: chrono::DateTime<chrono::Utc>| {
                t.with_timezone(&app.clock.tz)
                    .format("%Y-%m-%d %H:%M %Z")
                    .to_string()
            };
            for t in &list.tokens {
                grid.row(vec![
                    Cell::new(crate::error::printable(&t.name)),
                    Cell::new(&t.scope),
                    Cell::new(time(t.created_at)),
                    Cell::new(t.revoked_at.map(time).unwrap_or_else(|| "-".into())),
                ]);
            }
            if list.tokens.is_empty() && !view.no_headers {
                crate::outln!("no tokens: create one with tokenctl tokens create --name NAME --scope read|admit|admin");
                return Ok(ExitCode::SUCCESS);
            }
            crate::out!("{}", grid.render(&app.style, view));
        }
        TokensAction::Revoke(args) => {
            let revoked = tokens::revoke(&app.db, &app.clock, &args.name).await?;
            if args.json {
                print_json(&revoked)?;
            } else {
                crate::outln!(
                    "token '{}' revoked: its requests get 401 within a second, on every host",
                    crate::error::printable(&revoked.name)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
