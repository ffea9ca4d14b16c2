//! tokenctl: keep an AI backend's LLM token spend under control.
//!
//! `domain` holds the rules (pure values, no I/O), `db` the only SQL, `ops` the operations
//! every front end shares (typed request in, serializable response out, `OpError` out),
//! `commands` the CLI front end (flags to a request, the response printed), `cli` the flags.

pub mod cli;
pub mod commands;
pub mod db;
pub mod domain;
pub mod error;
pub mod ops;
pub mod output;
pub mod serve;
