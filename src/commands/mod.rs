//! The CLI front end, one module per subcommand: each turns its parsed flags into an `ops`
//! request, calls the operation, and prints the response (a table, a line, or one JSON
//! document) with the exit code. What the CLI knows of its surroundings (the environment, a
//! terminal, stdin) is read here, never in `ops`.

pub mod admit;
pub mod alerts;
pub mod archive;
pub mod completions;
pub mod config;
pub mod distribution;
pub mod limits;
pub mod logs;
pub mod migrate;
pub mod monitor;
pub mod monthly_reset;
pub mod prices;
pub mod quota;
pub mod record;
pub mod report;
pub mod report_view;
pub mod reset;
pub mod serve;
pub mod status;
pub mod tokens;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command, LimitsAction, PricesAction};
use crate::db::{Db, DbUrl};
use crate::domain::Clock;
use crate::error::OpError;
use crate::output::Style;

/// What every command runs with.
pub struct App {
    pub db: Db,
    pub clock: Clock,
    pub style: Style,
}

/// The database URL the spec's order picks: flag, TOKENCTL_DATABASE_URL, DATABASE_URL,
/// else the default SQLite file.
pub fn database_url(flag: Option<&str>) -> Result<DbUrl> {
    let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let chosen = flag
        .map(str::to_string)
        .or_else(|| from_env("TOKENCTL_DATABASE_URL"))
        .or_else(|| from_env("DATABASE_URL"));
    match chosen {
        Some(raw) => Ok(DbUrl::parse(&raw)?),
        None => Ok(DbUrl::default_sqlite(crate::db::default_sqlite_path()?)),
    }
}

pub fn clock_from_env() -> Result<Clock, OpError> {
    let now = std::env::var("TOKENCTL_NOW").ok();
    let tz = std::env::var("TOKENCTL_TZ").ok();
    Clock::new(now.as_deref(), tz.as_deref()).map_err(OpError::invalid)
}

/// The zone this host was told to use (TOKENCTL_TZ), if any.
pub fn local_zone() -> Option<String> {
    std::env::var("TOKENCTL_TZ")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// The clock every host agrees on (`ops::clock::shared`), its warnings on stderr.
pub async fn shared_clock(db: &Db, clock: Clock) -> Result<Clock> {
    let shared = crate::ops::clock::shared(db, clock, local_zone().as_deref()).await?;
    for w in &shared.warnings {
        crate::output::warn(w);
    }
    Ok(shared.clock)
}

pub async fn run(cli: Cli, url: DbUrl) -> Result<ExitCode> {
    let clock = clock_from_env()?;
    let style = Style::detect(cli.color);
    // Inputs that need no database are read first, so bad input touches nothing.
    let prepared = Prepared::from(cli.command)?;
    if let Prepared::Completions(args) = &prepared {
        return completions::run(args);
    }
    if let Prepared::Migrate(args) = &prepared {
        let db = Db::connect(&url).await?;
        return migrate::run(&db, &url, args).await;
    }
    // The monitor opens the database itself, and again after each outage: a service started
    // before its database waits for it instead of exiting.
    if let Prepared::Monitor(args) = prepared {
        return monitor::run(&url, clock, style, args).await;
    }
    if let Prepared::Serve(args) = prepared {
        return serve::run(&url, clock, args).await;
    }
    let db = Db::open(&url).await?;
    // `config set` is how a disagreement is fixed, so it must not be refused over one
    let clock = match prepared {
        Prepared::ConfigSet(_) => clock,
        _ => shared_clock(&db, clock).await?,
    };
    let app = App { db, clock, style };
    match prepared {
        Prepared::Record(req, json) => record::run(&app, req, json).await,
        Prepared::Check(req, json, quiet) => admit::check(&app, req, json, quiet).await,
        Prepared::Reserve(req, json) => admit::reserve(&app, req, json).await,
        Prepared::Release(args) => admit::release(&app, &args).await,
        Prepared::Status(args) => status::run(&app, args).await,
        Prepared::Limits(json, view) => limits::show(&app, json, view).await,
        Prepared::LimitsSet(args) => limits::set(&app, args).await,
        Prepared::LimitsUnset(args) => limits::unset(&app, args).await,
        Prepared::Prices(json, view) => prices::show(&app, json, view).await,
        Prepared::PricesSet(args) => prices::set(&app, args).await,
        Prepared::PricesUnset(args) => prices::unset(&app, args).await,
        Prepared::PricesImport(args) => prices::import(&app, args).await,
        Prepared::Quota(args) => quota::run(&app, &args).await,
        Prepared::Report(req, json, csv) => report::run(&app, &req, json, csv).await,
        Prepared::Reset(args) => reset::run(&app, args).await,
        Prepared::MonthlyReset(args) => monthly_reset::run(&app, args).await,
        Prepared::Archive(args) => archive::run(&app, args).await,
        Prepared::Config(json) => config::show(&app, json).await,
        Prepared::Alerts(args) => alerts::run(&app, args).await,
        Prepared::Logs(args) => logs::run(&app, args).await,
        Prepared::Distribution(req, json) => distribution::run(&app, req, json).await,
        Prepared::ConfigSet(args) => config::set(&app, args).await,
        Prepared::Tokens(action) => tokens::run(&app, action).await,
        Prepared::Migrate(_)
        | Prepared::Completions(_)
        | Prepared::Monitor(_)
        | Prepared::Serve(_) => {
            unreachable!("handled above")
        }
    }
}

enum Prepared {
    Record(crate::ops::admit::RecordRequest, bool),
    Check(crate::ops::admit::CheckRequest, bool, bool),
    Reserve(crate::ops::admit::ReserveRequest, bool),
    Release(crate::cli::ReleaseArgs),
    Status(crate::cli::StatusArgs),
    Limits(bool, crate::output::TableView),
    LimitsSet(crate::cli::LimitsSetArgs),
    LimitsUnset(crate::cli::LimitsUnsetArgs),
    Prices(bool, crate::output::TableView),
    PricesSet(crate::cli::PricesSetArgs),
    PricesUnset(crate::cli::PricesUnsetArgs),
    PricesImport(crate::cli::PricesImportArgs),
    Quota(crate::cli::QuotaArgs),
    Report(crate::ops::report::ReportRequest, bool, bool),
    Migrate(crate::cli::MigrateArgs),
    Reset(crate::cli::ResetArgs),
    MonthlyReset(crate::cli::MonthlyResetArgs),
    Archive(crate::cli::ArchiveArgs),
    Completions(crate::cli::CompletionsArgs),
    Config(bool),
    Monitor(crate::cli::MonitorArgs),
    Alerts(crate::cli::AlertsArgs),
    Logs(crate::cli::LogsArgs),
    Distribution(crate::ops::distribution::DistributionRequest, bool),
    ConfigSet(crate::cli::ConfigSetArgs),
    Serve(crate::cli::ServeArgs),
    Tokens(crate::cli::TokensAction),
}

impl Prepared {
    fn from(command: Command) -> Result<Prepared> {
        Ok(match command {
            Command::Record(args) => {
                let json = args.json;
                Prepared::Record(record::request(args), json)
            }
            Command::Check(args) => {
                let json = args.estimate.json;
                Prepared::Check(admit::check_request(args.estimate)?, json, args.quiet)
            }
            Command::Reserve(args) => {
                let json = args.estimate.json;
                let req = crate::ops::admit::ReserveRequest {
                    check: admit::check_request(args.estimate)?,
                    ttl: args.ttl,
                };
                Prepared::Reserve(req, json)
            }
            Command::Quota(args) => Prepared::Quota(args),
            Command::Report(args) => Prepared::Report(report::request(&args)?, args.json, args.csv),
            Command::Release(args) => Prepared::Release(args),
            Command::Status(args) => Prepared::Status(args),
            Command::Limits(args) => match args.action {
                None => Prepared::Limits(args.json, args.table.into()),
                Some(LimitsAction::Set(set)) => Prepared::LimitsSet(set),
                Some(LimitsAction::Unset(unset)) => Prepared::LimitsUnset(unset),
            },
            Command::Prices(args) => match args.action {
                None => Prepared::Prices(args.json, args.table.into()),
                Some(PricesAction::Set(set)) => Prepared::PricesSet(set),
                Some(PricesAction::Unset(unset)) => Prepared::PricesUnset(unset),
                Some(PricesAction::Import(import)) => Prepared::PricesImport(import),
            },
            Command::Migrate(args) => Prepared::Migrate(args),
            Command::Reset(args) => Prepared::Reset(reset::confirm_possible(args)?),
            Command::MonthlyReset(args) => Prepared::MonthlyReset(args),
            Command::Archive(args) => Prepared::Archive(args),
            Command::Completions(args) => Prepared::Completions(args),
            Command::Monitor(args) => Prepared::Monitor(args),
            Command::Alerts(args) => Prepared::Alerts(args),
            Command::Logs(args) => Prepared::Logs(args),
            Command::Distribution(args) => {
                let req = crate::ops::distribution::DistributionRequest {
                    month: args.month,
                    day: args.day,
                    ai_type: args.ai_type,
                };
                req.check()?;
                Prepared::Distribution(req, args.json)
            }
            Command::Serve(args) => Prepared::Serve(args),
            Command::Tokens(args) => Prepared::Tokens(args.action),
            Command::Config(args) => match args.action {
                None => Prepared::Config(args.json),
                Some(crate::cli::ConfigAction::Set(set)) => Prepared::ConfigSet(set),
            },
        })
    }
}
