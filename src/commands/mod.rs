//! One module per subcommand: each turns its parsed arguments into a typed input, runs the
//! operation through `Db`, and prints what it owns (a table, a line, or one JSON document).

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
pub mod record;
pub mod reset;
pub mod status;

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
    let db = Db::open(&url).await?;
    // `config set` is how a disagreement is fixed, so it must not be refused over one
    let clock = match prepared {
        Prepared::ConfigSet(_) => clock,
        _ => config::shared_clock(&db, clock).await?,
    };
    let app = App { db, clock, style };
    match prepared {
        Prepared::Record(input, json) => record::run(&app, input, json).await,
        Prepared::Check(req, quiet) => admit::check(&app, req, quiet).await,
        Prepared::Reserve(req, ttl) => admit::reserve(&app, req, ttl).await,
        Prepared::Release(args) => admit::release(&app, &args.reservation, args.json).await,
        Prepared::Status(args) => status::run(&app, args).await,
        Prepared::Limits(json, view) => limits::show(&app, json, view).await,
        Prepared::LimitsSet(args) => limits::set(&app, args).await,
        Prepared::LimitsUnset(args) => limits::unset(&app, args).await,
        Prepared::Prices(json, view) => prices::show(&app, json, view).await,
        Prepared::PricesSet(args) => prices::set(&app, args).await,
        Prepared::PricesUnset(args) => prices::unset(&app, args).await,
        Prepared::Reset(args) => reset::run(&app, args).await,
        Prepared::MonthlyReset(args) => monthly_reset::run(&app, args).await,
        Prepared::Archive(args) => archive::run(&app, args).await,
        Prepared::Config(json) => config::show(&app, json).await,
        Prepared::Alerts(args) => alerts::run(&app, args).await,
        Prepared::Logs(args) => logs::run(&app, args).await,
        Prepared::Distribution(args) => distribution::run(&app, args).await,
        Prepared::ConfigSet(args) => config::set(&app, args).await,
        Prepared::Migrate(_) | Prepared::Completions(_) | Prepared::Monitor(_) => {
            unreachable!("handled above")
        }
    }
}

enum Prepared {
    Record(crate::db::ledger::RecordInput, bool),
    Check(admit::Request, bool),
    Reserve(admit::Request, chrono::Duration),
    Release(crate::cli::ReleaseArgs),
    Status(crate::cli::StatusArgs),
    Limits(bool, crate::output::TableView),
    LimitsSet(crate::cli::LimitsSetArgs),
    LimitsUnset(crate::cli::LimitsUnsetArgs),
    Prices(bool, crate::output::TableView),
    PricesSet(crate::cli::PricesSetArgs),
    PricesUnset(crate::cli::PricesUnsetArgs),
    Migrate(crate::cli::MigrateArgs),
    Reset(crate::cli::ResetArgs),
    MonthlyReset(crate::cli::MonthlyResetArgs),
    Archive(crate::cli::ArchiveArgs),
    Completions(crate::cli::CompletionsArgs),
    Config(bool),
    Monitor(crate::cli::MonitorArgs),
    Alerts(crate::cli::AlertsArgs),
    Logs(crate::cli::LogsArgs),
    Distribution(crate::cli::DistributionArgs),
    ConfigSet(crate::cli::ConfigSetArgs),
}

impl Prepared {
    fn from(command: Command) -> Result<Prepared> {
        Ok(match command {
            Command::Record(args) => {
                let json = args.json;
                Prepared::Record(record::input(args), json)
            }
            Command::Check(args) => {
                Prepared::Check(admit::Request::from_args(args.estimate)?, args.quiet)
            }
            Command::Reserve(args) => {
                let ttl = chrono::Duration::from_std(args.ttl.get())
                    .map_err(|_| OpError::invalid("ttl is too long"))?;
                Prepared::Reserve(admit::Request::from_args(args.estimate)?, ttl)
            }
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
            },
            Command::Migrate(args) => Prepared::Migrate(args),
            Command::Reset(args) => Prepared::Reset(reset::confirm_possible(args)?),
            Command::MonthlyReset(args) => Prepared::MonthlyReset(args),
            Command::Archive(args) => Prepared::Archive(args),
            Command::Completions(args) => Prepared::Completions(args),
            Command::Monitor(args) => Prepared::Monitor(args),
            Command::Alerts(args) => Prepared::Alerts(args),
            Command::Logs(args) => Prepared::Logs(args),
            Command::Distribution(args) => Prepared::Distribution(distribution::check_args(args)?),
            Command::Config(args) => match args.action {
                None => Prepared::Config(args.json),
                Some(crate::cli::ConfigAction::Set(set)) => Prepared::ConfigSet(set),
            },
        })
    }
}
