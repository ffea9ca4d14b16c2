//! Where output goes and how it looks: colour only on a terminal (or when asked), one JSON
//! document per `--json` command, tables drawn with comfy-table.

use std::fmt;
use std::io::{ErrorKind, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::ValueEnum;
use comfy_table::{presets, Cell, Color, ContentArrangement, Table};
use serde::Serialize;

use crate::domain::Level;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    pub terminal: bool,
}

impl Style {
    pub fn detect(choice: ColorChoice) -> Style {
        let terminal = std::io::stdout().is_terminal();
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        };
        Style { color, terminal }
    }

    pub fn table(&self) -> Table {
        let mut t = Table::new();
        if self.terminal {
            t.load_preset(presets::UTF8_FULL_CONDENSED);
        } else {
            t.load_preset(presets::ASCII_FULL_CONDENSED);
        }
        t.set_content_arrangement(ContentArrangement::Dynamic);
        if self.color {
            t.enforce_styling();
        } else {
            t.force_no_tty();
        }
        t
    }

    pub fn level_cell(&self, level: Level) -> Cell {
        let cell = Cell::new(level.as_str());
        if !self.color {
            return cell;
        }
        match level {
            Level::Ok => cell.fg(Color::Green),
            Level::Warning => cell.fg(Color::Yellow),
            Level::Critical => cell.fg(Color::Red),
            Level::Emergency => cell.fg(Color::Magenta),
        }
    }

    pub fn level_word(&self, level: Level) -> String {
        use owo_colors::OwoColorize;
        if !self.color {
            return level.as_str().to_string();
        }
        match level {
            Level::Ok => level.as_str().green().to_string(),
            Level::Warning => level.as_str().yellow().to_string(),
            Level::Critical => level.as_str().red().to_string(),
            Level::Emergency => level.as_str().magenta().bold().to_string(),
        }
    }
}

/// Prints `value` as the one JSON document of this command.
pub fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("cannot write JSON")?;
    text.push('\n');
    write_stdout(format_args!("{text}"));
    Ok(())
}

/// `print!` that never panics. A reader that went away (`tokenctl status | head -3`) ends the
/// output quietly, as cargo and rg do: the command still finishes what it was doing and keeps
/// its exit code (`check` still exits 3 when denied).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!($($arg)*)) };
}

/// `println!` that never panics (see `out!`).
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

pub fn write_stdout(args: fmt::Arguments<'_>) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|_| out.flush()) {
        STDOUT_GONE.store(true, Ordering::Relaxed);
        if e.kind() != ErrorKind::BrokenPipe {
            eprintln!("tokenctl: error: cannot write to standard output: {e}");
        }
    }
}

pub fn warn(message: &str) {
    eprintln!("tokenctl: warning: {}", crate::error::printable(message));
}

/// 1234567 → "1,234,567"
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(137_200), "137,200");
        assert_eq!(super::thousands(-1_234_567), "-1,234,567");
    }
}
