use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use tokenctl::cli::{one_line_clap_error, Cli};
use tokenctl::error::{
    exit_code_for, one_line, printable, redact, redact_urls, EXIT_FAILURE, EXIT_USAGE,
};

fn main() -> ExitCode {
    // COMPLETE=bash tokenctl: the shell asking for completions (AI type names included);
    // answers and exits, or does nothing when COMPLETE is not set
    clap_complete::CompleteEnv::with_factory(Cli::command).complete();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // bare `tokenctl`: the usual help, as written, on stderr
            let _ = e.print();
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            eprintln!(
                "tokenctl: error: {}",
                printable(&redact_urls(&one_line_clap_error(&e)))
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let url = match tokenctl::commands::database_url(cli.database_url.as_deref()) {
        Ok(url) => url,
        Err(e) => {
            eprintln!("tokenctl: error: {}", printable(&one_line(&e)));
            return exit_code_for(&e);
        }
    };
    let secrets = url.secrets();
    // one thread does for a command; the server answers on every core
    let builder = if matches!(cli.command, tokenctl::cli::Command::Serve(_)) {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match { builder }.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokenctl: error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(tokenctl::commands::run(cli, url));
    // A webhook delivery still retrying in a blocking thread must not hold up the exit
    // (SIGTERM ends the monitor within a second): the alert is already in the database and file.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "tokenctl: error: {}",
                printable(&redact(&one_line(&e), &secrets))
            );
            exit_code_for(&e)
        }
    }
}
