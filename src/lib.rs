//! tokenctl: keep an AI backend's LLM token spend under control.
//!
//! `domain` holds the rules (pure values), `db` the only SQL, `commands` one module per
//! subcommand (typed input in, data out, plus the printing that command owns), `cli` the
//! argument parsing.

pub mod cli;
pub mod commands;
pub mod db;
pub mod domain;
pub mod error;
pub mod output;
