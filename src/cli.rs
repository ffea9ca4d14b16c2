//! Command-line parsing: the only place arguments are read. Values are validated here, so a
//! bad value exits 2 before any database is touched.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::domain::input::{AiType, Count, Day, Limit, Month, Since, Tokens, Ttl};
use crate::domain::validate;
use crate::domain::Usd;
use crate::output::ColorChoice;

const AFTER_HELP: &str = "\
Database: --database-url, else TOKENCTL_DATABASE_URL, else DATABASE_URL, else the SQLite file
$XDG_DATA_HOME/tokenctl/tokenctl.db (~/.local/share/tokenctl/tokenctl.db), created on first use.
Clock: TOKENCTL_NOW (RFC 3339) replaces now; TOKENCTL_TZ (IANA zone) sets where months, days and
hours begin (default UTC).
Exit codes: 0 done, 1 runtime failure, 2 usage error (nothing written), 3 request denied.";

#[derive(Debug, Parser)]
#[command(
    name = "tokenctl",
    version,
    about = "Keep an AI backend's LLM token spend under control",
    long_about = "Keep an AI backend's LLM token spend under control: record what each LLM request used, \
decide whether the next one may go ahead (monthly, daily, hourly, per-request, request-rate, cooldown, \
concurrency and pacing limits, per AI type and globally), report usage, run the month end, and raise \
alerts before the budget is gone.",
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// Database URL: sqlite://PATH or postgres://USER[:PASSWORD]@HOST[:PORT]/DB
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Colour output: auto (only on a terminal, unless NO_COLOR is set), always, never
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record what one finished LLM request used (never refused for a limit)
    Record(RecordArgs),
    /// Decide whether a request may go ahead, without writing anything (exit 3 when denied)
    #[command(
        after_help = "check holds nothing: between a `check` and the `record` after the request, other \
callers see the same room and can take it too. Under concurrency only `reserve` guarantees the \
limit: 64 concurrent `check` + `record` pairs against a 10,000-token limit used 32,900-44,800 \
tokens, while 64 concurrent `reserve` + `record --reservation` pairs never exceed it. Use check \
for a quick look or a single caller; use reserve (then settle or release) when several may run \
at once."
    )]
    Check(CheckArgs),
    /// Decide and, when allowed, hold the estimate against every limit in one atomic step
    #[command(
        after_help = "The hold ends exactly once: `record --reservation ID` settles it with the real \
numbers, `release --reservation ID` gives it back, or it expires after --ttl.\n\n\
Against USD limits the hold is the most the request can cost (an upper bound, never an average): with \
--model, the prompt at the dearest of the model's input and cache prices and the rest of the estimate at \
its output price (the long-context tier when the request could reach it); without --model, or for a \
model with no price, at the dearest prices known. Settling replaces the bound with the real cost, cache \
reads and writes included.\n\n\
Example: claude-sonnet-4-5 costs $3 per million input tokens ($3.75 to write to cache) and $15 per million \
output. `reserve --prompt-file p.txt --max-tokens 1000 --model claude-sonnet-4-5` with a 3,000-word prompt \
(3,900 tokens) holds 3,900 x $3.75 + 1,000 x $15 per million = $0.029625; settled with 3,900 in and 420 \
out, the request costs 3,900 x $3 + 420 x $15 per million = $0.0180."
    )]
    Reserve(ReserveArgs),
    /// Give back a reservation whose request never ran
    Release(ReleaseArgs),
    /// What one user has left: tokens and dollars, today and this month
    #[command(
        after_help = "A user's limits are their own (`limits set --user U`) over the default user's \
(`limits set --default-user`); a figure is null (\"no limit\" in text) where neither sets one. \
can_make_request says whether a 1-token request of theirs fits their own limits now (the AI type's and \
the total's limits apply too: `check --user-id U` decides on all of them)."
    )]
    Quota(QuotaArgs),
    /// Usage analytics over any range of days: daily trend, top users, models, AI types
    #[command(
        after_help = "Read from daily rollups per (day, AI type, user, model) that `record` keeps in its own \
transaction, never from the request log: a report over ten million requests reads a few thousand rows. \
Days are in the configured zone (tokenctl config). A model without a price is never counted as $0: its \
requests are counted apart, and every cost that includes one says so (cost_complete: false, and `*` in \
the table). --csv prints one RFC 4180 row per day, AI type, user and model."
    )]
    Report(ReportArgs),
    /// Usage per AI type and in total for a month
    Status(StatusArgs),
    /// Show the limits in force, or change them with `limits set`
    Limits(LimitsArgs),
    /// Show model prices (built-in and from the database), or set one with `prices set`
    Prices(PricesArgs),
    /// Zero the current month (for testing): archives what it clears first (reason 'manual')
    #[command(
        after_help = "Clears, for the AI type or for all: the month's counters, its day and hour windows, \
open reservations and the emergency state. Asks for confirmation on a terminal; elsewhere it needs --yes."
    )]
    Reset(ResetArgs),
    /// Archive every past month to token_usage_archive and start the current one (cron: 1 0 1 * *)
    #[command(
        after_help = "Catches up on missed months in one run, and is idempotent: a second run in the same \
month archives nothing. Archive and delete commit together; two runs at once never archive a row twice. \
Prints one line per archived month; errors go to stderr with a non-zero exit, so cron mail shows them."
    )]
    MonthlyReset(MonthlyResetArgs),
    /// Archived months, newest first
    Archive(ArchiveArgs),
    /// Watch usage and raise alerts at 80/95/98% of the enforced limit (database, file, webhook)
    #[command(
        after_help = "An alert is raised when a level is entered upwards, once per level per AI type (and for \
the global total, as ai_type '*') per month, whatever number of monitors run; it re-arms when usage falls below \
the level again. Each alert goes to the database, as one JSON line to the alerts file, and to the webhook if \
given (Slack-compatible). On a terminal a live view is redrawn each tick; elsewhere one line per tick (or one JSON \
object with --json). SIGINT/SIGTERM end it within a second, exit 0."
    )]
    Monitor(MonitorArgs),
    /// Alerts raised, newest first
    Alerts(AlertsArgs),
    /// The last requests, newest first, a page at a time (from token_usage_logs)
    #[command(
        after_help = "Pages: each page ends with the command for the next one (`--before ID`, the last id \
shown; in JSON, next_before). A page is one range of an index, so the thousandth page of 10,000,000 \
rows is as quick as the first."
    )]
    Logs(LogsArgs),
    /// How evenly usage is spread: per day of a month, per hour of a day, and the rate limits
    Distribution(DistributionArgs),
    /// Settings every host shares (the time zone months, days and hours begin in)
    Config(ConfigArgs),
    /// Print shell completions: tokenctl completions bash > /usr/share/bash-completion/completions/tokenctl
    Completions(CompletionsArgs),
    /// Apply database migrations (also done automatically by every command)
    Migrate(MigrateArgs),
    /// Serve the operations over HTTP: admission for the backend's hot path, the old
    /// /api/token-usage/* reports, /metrics and /openapi.json
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Bearer tokens for `tokenctl serve`: create (the secret is shown once), list, revoke
    Tokens(TokensArgs),
}

#[derive(Debug, Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    pub action: TokensAction,
}

#[derive(Debug, Subcommand)]
pub enum TokensAction {
    /// Create a token and print its secret, this once (only a hash of it is stored)
    #[command(
        after_help = "Scopes: read (the reports and /metrics), admit (also check, \
reserve, settle, release and usage), admin (everything). Every host sharing the database \
accepts the token at once. Send it as `Authorization: Bearer SECRET`."
    )]
    Create(TokensCreateArgs),
    /// List the tokens (names, scopes, dates; never a secret)
    List(TokensListArgs),
    /// Revoke a token: its requests get 401 within a second, on every host
    Revoke(TokensRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokensCreateArgs {
    /// The token's name, shown in the access log (e.g. backend, grafana)
    #[arg(long, value_name = "NAME", value_parser = crate::ops::tokens::token_name)]
    pub name: String,
    /// What it may do: read, admit or admin
    #[arg(long, value_name = "SCOPE")]
    pub scope: crate::ops::tokens::TokenScope,
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TokensListArgs {
    /// Also the revoked tokens
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub table: TableArgs,
    /// Print one JSON document instead of text
    #[arg(long, conflicts_with_all = ["wide", "no_headers"])]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TokensRevokeArgs {
    /// The token's name
    #[arg(long, value_name = "NAME", value_parser = crate::ops::tokens::token_name)]
    pub name: String,
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

const SERVE_HELP: &str = "\
Every request needs `Authorization: Bearer TOKEN` (tokenctl tokens create --name NAME --scope \
read|admit|admin), except /healthz, /readyz and /openapi.json. serve refuses to start on an address \
other hosts can reach unless a token exists; --insecure-no-auth opens every endpoint, on loopback only.

Denials: 429 with Retry-After when waiting helps within 24 hours (a window, rate, cooldown, \
concurrency or pacing that reopens), 403 when it does not (the month is spent, emergency, a request \
larger than a limit): retry only on 429. The database unreachable: 503 with Retry-After, and nothing \
is admitted until it answers again (/readyz says when).

Concurrent reservations are decided together, in one transaction (group commit), each by the \
same rules as one at a time: never more than the limits allow, on one host or many.

SIGTERM or SIGINT: stop accepting, let requests in flight finish (up to --shutdown-grace), exit 0. \
One access log line per request on stderr (--log-format json for log shippers); never a token's \
secret, a password or a webhook URL.";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (IP:PORT; port 0 picks a free one, printed on stderr)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4000")]
    pub listen: std::net::SocketAddr,
    /// Open every endpoint without a token (only on a loopback address: for local tries)
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Access log lines on stderr: text or json
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub log_format: crate::serve::LogFormat,
    /// A request not answered within this many seconds gets 503 (one still waiting for its turn
    /// is left undone; a hold made for it is given back)
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout: u64,
    /// Largest request body accepted, in bytes (larger: 413)
    #[arg(long, value_name = "BYTES", default_value = "1048576", value_parser = clap::value_parser!(u64).range(1024..=1_073_741_824))]
    pub max_body_bytes: u64,
    /// After SIGTERM, how long requests in flight may take to finish, in seconds
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = clap::value_parser!(u64).range(0..=600))]
    pub shutdown_grace: u64,
    /// Database connections in the pool
    #[arg(long, value_name = "N", default_value = "16", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub connections: u32,
}

fn months_back(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n <= 1200 => Ok(n),
        _ => Err(format!(
            "expected a whole number of months from 0 to 1200, got '{s}'"
        )),
    }
}

/// How a table is shown; `into()` gives the output's `TableView`.
#[derive(Debug, Args, Clone, Copy)]
pub struct TableArgs {
    /// Show every column, however wide (the default view fits the terminal, or 80 columns
    /// off a terminal, leaving out the columns of less interest when it must)
    #[arg(long, short = 'w')]
    pub wide: bool,
    /// Print the rows only: no header line, title or notes (for awk and cut)
    #[arg(long)]
    pub no_headers: bool,
}

impl From<TableArgs> for crate::output::TableView {
    fn from(a: TableArgs) -> Self {
        crate::output::TableView {
            wide: a.wide,
            no_headers: a.no_headers,
        }
    }
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Only this AI type (default: every AI type)
    #[arg(long, value_name = "A", add = ai_types())]
    pub ai_type: Option<AiType>,
    /// Do not ask for confirmation (needed when standard input is not a terminal)
    #[arg(long)]
    pub yes: bool,
    /// Report what would be reset; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MonthlyResetArgs {
    /// Report what would be archived; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete request logs from before the start of the month this many months back
    /// (0 = before the current month), in batches
    #[arg(long, value_name = "MONTHS", value_parser = months_back, allow_negative_numbers = true)]
    pub prune_logs_older_than: Option<u32>,
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// Only this AI type
    #[arg(long, value_name = "A", add = ai_types())]
    pub ai_type: Option<AiType>,
    /// Only this month (YYYY-MM)
    #[arg(long, value_name = "YYYY-MM")]
    pub month: Option<Month>,
    #[command(flatten)]
    pub table: TableArgs,
    /// Print one JSON document instead of text
    #[arg(long, conflicts_with_all = ["wide", "no_headers"])]
    pub json: bool,
}

fn interval(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=86_400).contains(&n) => Ok(n),
        _ => Err(format!(
            "interval must be a whole number of seconds from 1 to 86400, got '{s}'"
        )),
    }
}

fn webhook(s: &str) -> Result<String, String> {
    let lower = s.trim().to_ascii_lowercase();
    if (lower.starts_with("http://") || lower.starts_with("https://")) && s.trim().len() > 8 {
        Ok(s.trim().to_string())
    } else {
        Err("webhook must be an http:// or https:// URL".into())
    }
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Seconds between ticks
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = interval, allow_negative_numbers = true)]
    pub interval: u64,
    /// One tick, then exit (for cron)
    #[arg(long)]
    pub once: bool,
    /// Where each alert is appended as one JSON line
    #[arg(long, value_name = "PATH", default_value = "./token_usage_alerts.json")]
    pub alerts_file: PathBuf,
    /// POST each alert here as Slack-compatible JSON ({"text": …} plus the alert's fields)
    #[arg(long, value_name = "URL", value_parser = webhook)]
    pub webhook: Option<String>,
    /// One JSON object per tick, one per line
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DistributionArgs {
    /// The month (default: the current one, or the --day's)
    #[arg(long, value_name = "YYYY-MM")]
    pub month: Option<Month>,
    /// The day whose hours to show (default: today, or the month's last day)
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub day: Option<Day>,
    /// Only this AI type (default: all AI types together)
    #[arg(long, value_name = "A", add = ai_types())]
    pub ai_type: Option<AiType>,
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

fn page_size(s: &str) -> Result<i64, String> {
    match validate::count(s) {
        Ok(n) if (1..=10_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "limit must be a whole number of requests from 1 to 10,000, got '{s}'"
        )),
    }
}

fn log_id(s: &str) -> Result<i64, String> {
    validate::count(s).map_err(|_| format!("expected a request id from tokenctl logs, got '{s}'"))
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only this AI type
    #[arg(long, value_name = "A", add = ai_types())]
    pub ai_type: Option<AiType>,
    /// Only requests since then: a duration (24h, 7d) or an RFC 3339 time
    #[arg(long, value_name = "DURATION|TIMESTAMP")]
    pub since: Option<Since>,
    /// How many requests (1 to 10,000)
    #[arg(long, short = 'n', value_name = "N", default_value = "20", value_parser = page_size, allow_negative_numbers = true)]
    pub limit: i64,
    /// Only requests older than the one with this id (the last id of the page before)
    #[arg(long, value_name = "ID", value_parser = log_id, allow_negative_numbers = true)]
    pub before: Option<i64>,
    #[command(flatten)]
    pub table: TableArgs,
    /// Print one JSON document instead of text
    #[arg(long, conflicts_with_all = ["wide", "no_headers"])]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// Only alerts raised since then: a duration (24h, 7d) or an RFC 3339 time
    #[arg(long, value_name = "DURATION|TIMESTAMP", conflicts_with = "active")]
    pub since: Option<Since>,
    /// Only this level: warning, critical or emergency
    #[arg(long, value_name = "LEVEL", value_parser = validate::alert_level)]
    pub level: Option<String>,
    /// Only this AI type ('*' for the total)
    #[arg(long, value_name = "A", value_parser = validate::ai_type_or_global, add = ai_types())]
    pub ai_type: Option<String>,
    /// Each AI type's current level where it is not ok, with the alert that announced it
    #[arg(long)]
    pub active: bool,
    #[command(flatten)]
    pub table: TableArgs,
    /// Print one JSON document instead of text
    #[arg(long, conflicts_with_all = ["wide", "no_headers"])]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: Option<ConfigAction>,
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Store a setting in the database, for every host
    Set(ConfigSetArgs),
}

fn zone(s: &str) -> Result<String, String> {
    s.trim()
        .parse::<chrono_tz::Tz>()
        .map(|z| z.name().to_string())
        .map_err(|_| {
            format!("unknown time zone '{s}': use an IANA name such as UTC or Europe/Berlin")
        })
}

#[derive(Debug, Args)]
pub struct ConfigSetArgs {
    /// IANA time zone in which months, days and hours begin (UTC, Europe/Berlin, …)
    #[arg(long, value_name = "ZONE", value_parser = zone)]
    pub timezone: String,
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Dynamic completion of `--ai-type` with the database's names (`COMPLETE=bash tokenctl`).
fn ai_types() -> clap_complete::ArgValueCandidates {
    clap_complete::ArgValueCandidates::new(crate::commands::completions::ai_type_candidates)
}

fn model(s: &str) -> Result<String, String> {
    validate::model(s)
}
fn id(s: &str) -> Result<String, String> {
    validate::id(s)
}
fn user_id(s: &str) -> Result<String, String> {
    validate::user_id(s)
}
fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("expected on or off, got '{s}'")),
    }
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The AI type (agent, user or key name) that made the request
    #[arg(long, value_name = "A", add = ai_types())]
    pub ai_type: AiType,
    /// Input (prompt) tokens the request used
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub tokens_in: Tokens,
    /// Output (completion) tokens the request used
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub tokens_out: Tokens,
    /// Prompt tokens read from the provider's cache, besides --tokens-in (Anthropic's
    /// cache_read_input_tokens; for OpenAI, its cached_tokens, with --tokens-in the rest)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub cache_read_tokens: Option<Tokens>,
    /// Prompt tokens written to the provider's cache, besides --tokens-in (Anthropic's
    /// cache_creation_input_tokens)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub cache_write_tokens: Option<Tokens>,
    /// Model name, for the cost (see `tokenctl prices`; at most 255 characters). Without a
    /// model, or with one that has no price, the cost is unknown (null), never $0
    #[arg(long, value_name = "M", value_parser = id)]
    pub model: Option<String>,
    /// Makes recording idempotent: a second record with the same id changes nothing (at most
    /// 255 characters: provider message ids and UUIDs fit)
    #[arg(long, value_name = "ID", value_parser = id)]
    pub request_id: Option<String>,
    /// The user the request was made for (at most 255 characters)
    #[arg(long, value_name = "U", value_parser = user_id)]
    pub user_id: Option<String>,
    /// The session or conversation it belongs to (at most 255 characters)
    #[arg(long, value_name = "S", value_parser = id)]
    pub session_id: Option<String>,
    /// What kind of request it was, e.g. chat or summary (at most 255 characters)
    #[arg(long, value_name = "T", value_parser = id)]
    pub request_type: Option<String>,
    /// How long the request took, in milliseconds
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub duration_ms: Option<Count>,
    /// The request failed (its tokens, if any, still count)
    #[arg(long)]
    pub failed: bool,
    /// The error of a failed request (longer than 1,000 characters: cut, with a warning; the
    /// usage is recorded all the same)
    #[arg(long, value_name = "MSG", requires = "failed")]
    pub error: Option<String>,
    /// Settle this reservation: the real numbers replace its estimate
    #[arg(long, value_name = "ID", value_parser = id)]
    pub reservation: Option<String>,
    /// Print one JSON document
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("estimate").required(true).args(["estimated_tokens", "prompt", "prompt_file"])))]
pub struct EstimateArgs {
    /// The AI type asking
    #[arg(long, value_name = "A", add = ai_types())]
    pub ai_type: AiType,
    /// Tokens the request will use, input and output together
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub estimated_tokens: Option<Tokens>,
    /// Estimate from this prompt: ceil(words × 1.3) + --max-tokens
    #[arg(long, value_name = "TEXT", requires = "max_tokens")]
    pub prompt: Option<String>,
    /// Estimate from the prompt in this file (- for standard input)
    #[arg(long, value_name = "PATH", requires = "max_tokens")]
    pub prompt_file: Option<PathBuf>,
    /// The request's max_tokens (its largest possible output)
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        conflicts_with = "estimated_tokens"
    )]
    pub max_tokens: Option<Tokens>,
    /// The user the request is made for: their limits (tokens and USD) must fit too
    #[arg(long, value_name = "U", value_parser = user_id)]
    pub user_id: Option<String>,
    /// The model it will use: its price bounds the request's cost (without one, the dearest
    /// price known)
    #[arg(long, value_name = "M", value_parser = id)]
    pub model: Option<String>,
    /// Print one JSON document
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub estimate: EstimateArgs,
    /// Print nothing, warnings included: the exit code is the answer (0 allowed, 3 denied;
    /// errors still go to standard error)
    #[arg(long, short = 'q', conflicts_with = "json")]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ReserveArgs {
    #[command(flatten)]
    pub estimate: EstimateArgs,
    /// How long the hold lasts if neither settled nor released (30s, 10m, 1h; at most 7 days)
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10m",
        allow_hyphen_values = true
    )]
    pub ttl: Ttl,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The id `reserve` printed
    #[arg(long, value_name = "ID", value_parser = id)]
    pub reservation: String,
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this AI type
    #[arg(long, value_name = "A", add = ai_types())]
    pub ai_type: Option<AiType>,
    /// Another month than the current one
    #[arg(long, value_name = "YYYY-MM")]
    pub month: Option<Month>,
    #[command(flatten)]
    pub table: TableArgs,
    /// Print one JSON document instead of text
    #[arg(long, conflicts_with_all = ["wide", "no_headers"])]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LimitsArgs {
    #[command(subcommand)]
    pub action: Option<LimitsAction>,
    #[command(flatten)]
    pub table: TableArgs,
    /// Print one JSON document instead of text
    #[arg(long, conflicts_with_all = ["wide", "no_headers"])]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum LimitsAction {
    /// Change limits: for one AI type, globally, or (with neither) the default for every AI type
    Set(LimitsSetArgs),
    /// Put limits back: an AI type's to the default, the default's and the global's to the
    /// values tokenctl starts with (daily and hourly derived from the monthly again)
    Unset(LimitsUnsetArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("fields").required(true).multiple(true)
    .args(["monthly", "daily", "hourly", "per_request", "rpm", "rpd", "cooldown", "max_concurrent", "pacing",
           "daily_cost_usd", "monthly_cost_usd", "all"])))]
#[command(group(ArgGroup::new("whose").multiple(false).args(["ai_type", "global", "user", "default_user"])))]
pub struct LimitsUnsetArgs {
    /// Put back this AI type's own values (it follows the default again)
    #[arg(long, value_name = "A", add = ai_types())]
    pub ai_type: Option<AiType>,
    /// Put back the limits on all AI types together
    #[arg(long)]
    pub global: bool,
    /// Put back this user's own values (they follow the default user's again)
    #[arg(long, value_name = "U", value_parser = user_id)]
    pub user: Option<String>,
    /// Remove the default user's values (users without their own then have none)
    #[arg(long)]
    pub default_user: bool,
    /// The daily USD limit
    #[arg(long)]
    pub daily_cost_usd: bool,
    /// The monthly USD limit
    #[arg(long)]
    pub monthly_cost_usd: bool,
    /// The monthly limit
    #[arg(long)]
    pub monthly: bool,
    /// The daily limit (derived from the monthly again)
    #[arg(long)]
    pub daily: bool,
    /// The hourly limit (derived again)
    #[arg(long)]
    pub hourly: bool,
    /// The per-request limit
    #[arg(long)]
    pub per_request: bool,
    /// Requests per minute
    #[arg(long)]
    pub rpm: bool,
    /// Requests per day
    #[arg(long)]
    pub rpd: bool,
    /// The cooldown
    #[arg(long)]
    pub cooldown: bool,
    /// Requests in flight
    #[arg(long)]
    pub max_concurrent: bool,
    /// Pacing
    #[arg(long)]
    pub pacing: bool,
    /// Every value of the AI type, the default or the global limits
    #[arg(long)]
    pub all: bool,
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("values").required(true).multiple(true)
    .args(["monthly", "daily", "hourly", "per_request", "rpm", "rpd", "cooldown", "max_concurrent", "pacing",
           "daily_cost_usd", "monthly_cost_usd"])))]
#[command(group(ArgGroup::new("whose").multiple(false).args(["ai_type", "global", "user", "default_user"])))]
#[command(
    after_help = "Users (--user U, --default-user) have token and USD limits only: --monthly, --daily, \
--per-request, --daily-cost-usd, --monthly-cost-usd; a request with --user-id U must fit them as well as its \
AI type's and the total's. USD limits hold every request's cost bound while it runs (see `reserve --help`), \
and count a model without a price at the dearest price known."
)]
pub struct LimitsSetArgs {
    /// Change this AI type's own limits (others keep following the default)
    #[arg(long, value_name = "A", add = ai_types())]
    pub ai_type: Option<AiType>,
    /// Change the limits on all AI types together
    #[arg(long)]
    pub global: bool,
    /// Change one user's limits (over every AI type)
    #[arg(long, value_name = "U", value_parser = user_id)]
    pub user: Option<String>,
    /// Change the limits of every user without limits of their own (none by default)
    #[arg(long)]
    pub default_user: bool,
    /// USD a day, e.g. 5 or 0.50 (exact to the nano-dollar)
    #[arg(long, value_name = "USD", value_parser = Usd::parse, allow_negative_numbers = true)]
    pub daily_cost_usd: Option<Usd>,
    /// USD a month, e.g. 50
    #[arg(long, value_name = "USD", value_parser = Usd::parse, allow_negative_numbers = true)]
    pub monthly_cost_usd: Option<Usd>,
    /// Enforced monthly limit, in tokens
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub monthly: Option<Limit>,
    /// Daily limit, in tokens (default: 7% of monthly)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub daily: Option<Limit>,
    /// Hourly limit, in tokens (default: 1% of monthly, at least the per-request limit)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub hourly: Option<Limit>,
    /// Largest single request, in tokens (with --global: a ceiling over every AI type's own)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub per_request: Option<Limit>,
    /// Requests per minute (0 = off)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub rpm: Option<Count>,
    /// Requests per day (0 = off)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub rpd: Option<Count>,
    /// Seconds between two requests of one AI type (with --global: of any AI types; 0 = off)
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub cooldown: Option<Count>,
    /// Requests in flight at once (0 = off)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub max_concurrent: Option<Count>,
    /// Pace usage evenly over the month: on or off
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    pub pacing: Option<bool>,
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PricesArgs {
    #[command(subcommand)]
    pub action: Option<PricesAction>,
    #[command(flatten)]
    pub table: TableArgs,
    /// Print one JSON document instead of text
    #[arg(long, conflicts_with_all = ["wide", "no_headers"])]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PricesAction {
    /// Set a model's price in the database (applies to every host, and to dated variants)
    #[command(
        after_help = "A price applies from --effective-from (a day in the configured zone; default: always): \
requests recorded before it keep the price they had, which is stored with them. Cache prices default \
to the input price (what a provider without a cache discount charges)."
    )]
    Set(PricesSetArgs),
    /// Remove a model's database prices (or one dated price): its built-in price, if any,
    /// applies again
    Unset(PricesUnsetArgs),
    /// Import a price catalogue in LiteLLM's model_prices_and_context_window.json format
    #[command(
        after_help = "Reads input_cost_per_token, output_cost_per_token, cache_read_input_token_cost, \
cache_creation_input_token_cost and the *_above_200k_tokens tier of chat models (per token, in USD), \
and stores them as prices per million tokens, in one transaction. Says what it added, what it changed, \
what was already so and what it skipped (with why): entries without an input or output price, models \
that are not chat or completion models, and providers not chosen with --provider."
    )]
    Import(PricesImportArgs),
}

#[derive(Debug, Args)]
pub struct PricesUnsetArgs {
    /// Model name
    #[arg(long, value_name = "M", value_parser = model)]
    pub model: String,
    /// Only the price from this day (default: every database price of the model)
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub effective_from: Option<Day>,
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PricesSetArgs {
    /// Model name (stored lower-case; also prices its dated variants)
    #[arg(long, value_name = "M", value_parser = model)]
    pub model: String,
    /// USD per million input tokens
    #[arg(long, value_name = "USD", value_parser = Usd::parse, allow_negative_numbers = true)]
    pub input_per_mtok: Usd,
    /// USD per million output tokens
    #[arg(long, value_name = "USD", value_parser = Usd::parse, allow_negative_numbers = true)]
    pub output_per_mtok: Usd,
    /// USD per million prompt tokens read from cache (Anthropic's cache reads, OpenAI's
    /// cached input; default: the input price)
    #[arg(long, value_name = "USD", value_parser = Usd::parse, allow_negative_numbers = true)]
    pub cache_read_per_mtok: Option<Usd>,
    /// USD per million prompt tokens written to cache (Anthropic's cache writes; default: the
    /// input price)
    #[arg(long, value_name = "USD", value_parser = Usd::parse, allow_negative_numbers = true)]
    pub cache_write_per_mtok: Option<Usd>,
    /// The first day the price applies (default: always)
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub effective_from: Option<Day>,
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PricesImportArgs {
    /// The catalogue (a JSON file; - for standard input)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Only models of this provider (LiteLLM's litellm_provider: anthropic, openai, …);
    /// repeat for more. Default: every provider
    #[arg(long, value_name = "P")]
    pub provider: Vec<String>,
    /// The first day the imported prices apply (default: always)
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub effective_from: Option<Day>,
    /// Say what would change, and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct QuotaArgs {
    /// The user
    #[arg(long, value_name = "U", value_parser = user_id)]
    pub user_id: String,
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("range").multiple(false).args(["days", "since"])))]
pub struct ReportArgs {
    /// The last N days, today included (default 30; at most 3,660)
    #[arg(long, value_name = "N")]
    pub days: Option<Count>,
    /// From this day (in the configured zone)
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub since: Option<Day>,
    /// To this day, included (default: today)
    #[arg(long, value_name = "YYYY-MM-DD", requires = "since")]
    pub until: Option<Day>,
    /// Only this AI type
    #[arg(long, value_name = "A", add = ai_types())]
    pub ai_type: Option<AiType>,
    /// Only this user
    #[arg(long, value_name = "U", value_parser = user_id)]
    pub user_id: Option<String>,
    /// How many top users (default 10)
    #[arg(long, value_name = "N", default_value = "10")]
    pub top: Count,
    /// Print one JSON document instead of text
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print RFC 4180 CSV instead: one row per day, AI type, user and model
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

/// clap's error as one line: its first line and any tip, without the usage block.
pub fn one_line_clap_error(err: &clap::Error) -> String {
    let rendered = err.to_string();
    let mut parts = Vec::new();
    for line in rendered.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("Usage:") || line.starts_with("For more information")
        {
            continue;
        }
        if line.starts_with("tokenctl ") && !parts.is_empty() {
            continue;
        }
        parts.push(line.trim_start_matches("error: ").to_string());
    }
    let mut line = String::new();
    for part in parts {
        if !line.is_empty() {
            line.push_str(if line.ends_with(':') { " " } else { "; " });
        }
        line.push_str(&part);
    }
    format!("{line} (see --help)")
}
