//! Where output goes and how it looks: colour only on a terminal (or when asked), one JSON
//! document per `--json` command, tables drawn with comfy-table.

use std::fmt;
use std::io::{ErrorKind, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::ValueEnum;
use comfy_table::{
    presets, Attribute, Cell, CellAlignment, Color, ColumnConstraint, ContentArrangement, Table,
};
use serde::Serialize;
use unicode_width::UnicodeWidthStr;

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
    /// Columns the output should fit: COLUMNS, else the terminal's width, else 80 (a pipe, a
    /// log, cron mail: read later in some terminal, so the default views are made for 80).
    pub width: usize,
}

/// The width tables and charts are made for when nothing says otherwise.
pub const DEFAULT_WIDTH: usize = 80;

fn output_width(terminal: bool) -> usize {
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|w| *w > 0);
    // a pty whose size was never set (`script` without a terminal) reports 0 columns
    let tty = || {
        terminal
            .then(|| Table::new().width())
            .flatten()
            .map(usize::from)
    };
    columns
        .or_else(|| tty().filter(|w| *w > 0))
        .unwrap_or(DEFAULT_WIDTH)
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
        Style {
            color,
            terminal,
            width: output_width(terminal),
        }
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

/// `--wide` and `--no-headers`, as every table takes them.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableView {
    /// Every column, each as wide as its content, whatever the width of the terminal.
    pub wide: bool,
    /// Rows only: no header line, and the command prints no title or notes around the table.
    pub no_headers: bool,
}

/// When a column is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// In every view.
    Always,
    /// In the default view while it fits; when the width is short, the highest rank is left
    /// out first.
    Fit(u8),
    /// With --wide only.
    Wide,
}

struct Column {
    header: &'static str,
    number: bool,
    show: Show,
}

/// A table whose default view fits the width, kubectl-style: no borders, columns two spaces
/// apart, numbers right-aligned and never split (a column of text wraps instead, and columns
/// of less interest are left out; --wide shows them all).
pub struct Grid {
    columns: Vec<Column>,
    rows: Vec<Vec<Cell>>,
}

/// Spaces between two columns.
const GAP: u16 = 2;

impl Grid {
    pub fn new() -> Grid {
        Grid {
            columns: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// A column of text, left-aligned; it wraps when nothing else fits.
    pub fn text(mut self, header: &'static str, show: Show) -> Grid {
        self.columns.push(Column {
            header,
            number: false,
            show,
        });
        self
    }

    /// A column of figures, right-aligned, never split or wrapped.
    pub fn number(mut self, header: &'static str, show: Show) -> Grid {
        self.columns.push(Column {
            header,
            number: true,
            show,
        });
        self
    }

    /// One row, a cell per column in the order they were declared.
    pub fn row(&mut self, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    fn content_width(&self, i: usize, headers: bool) -> usize {
        let header = if headers {
            self.columns[i].header.width()
        } else {
            0
        };
        self.rows
            .iter()
            .filter_map(|r| r.get(i))
            .flat_map(|c| c.content().lines().map(|l| l.width()).max())
            .fold(header, usize::max)
    }

    /// Whether every cell of column `i` says a limit is off or absent: such a column is the
    /// first to leave the default view.
    fn idle(&self, i: usize) -> bool {
        self.rows
            .iter()
            .all(|r| matches!(r[i].content().as_str(), "off" | "-" | ""))
    }

    /// The columns shown: all with --wide; else those of the default view, leaving out
    /// `Fit` columns until the rest fits `width`: idle ones first, then the highest rank.
    fn visible(&self, width: usize, view: TableView) -> Vec<usize> {
        let mut shown: Vec<usize> = (0..self.columns.len())
            .filter(|&i| view.wide || self.columns[i].show != Show::Wide)
            .collect();
        if view.wide {
            return shown;
        }
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| self.content_width(i, true))
            .collect();
        let need = |shown: &[usize]| {
            shown.iter().map(|&i| widths[i]).sum::<usize>()
                + usize::from(GAP) * shown.len().saturating_sub(1)
        };
        while need(&shown) > width {
            let droppable = shown
                .iter()
                .enumerate()
                .filter_map(|(pos, &i)| match self.columns[i].show {
                    Show::Fit(rank) => Some((self.idle(i), rank, pos)),
                    _ => None,
                })
                .max();
            match droppable {
                Some((_, _, pos)) => {
                    shown.remove(pos);
                }
                None => break,
            }
        }
        shown
    }

    /// The headers of the columns `render` leaves out (those --wide would add).
    pub fn hidden(&self, style: &Style, view: TableView) -> Vec<&'static str> {
        let shown = self.visible(style.width, view);
        (0..self.columns.len())
            .filter(|i| !shown.contains(i))
            .map(|i| self.columns[i].header)
            .collect()
    }

    pub fn render(&self, style: &Style, view: TableView) -> String {
        let shown = self.visible(style.width, view);
        let mut t = Table::new();
        t.load_preset(presets::NOTHING);
        if style.color {
            t.enforce_styling();
        } else {
            t.force_no_tty();
        }
        if view.wide {
            t.set_content_arrangement(ContentArrangement::Disabled);
        } else {
            t.set_content_arrangement(ContentArrangement::Dynamic);
            t.set_width(u16::try_from(style.width).unwrap_or(u16::MAX));
        }
        if !view.no_headers {
            t.set_header(shown.iter().map(|&i| {
                let c = Cell::new(self.columns[i].header);
                let c = if self.columns[i].number {
                    c.set_alignment(CellAlignment::Right)
                } else {
                    c
                };
                if style.color {
                    c.add_attribute(Attribute::Bold)
                } else {
                    c
                }
            }));
        }
        for row in &self.rows {
            t.add_row(shown.iter().map(|&i| row[i].clone()));
        }
        let last = shown.len().saturating_sub(1);
        for (pos, &i) in shown.iter().enumerate() {
            if let Some(col) = t.column_mut(pos) {
                col.set_padding((0, if pos == last { 0 } else { GAP }));
                if self.columns[i].number {
                    col.set_constraint(ColumnConstraint::ContentWidth);
                    col.set_cell_alignment(CellAlignment::Right);
                }
            }
        }
        let mut text = String::new();
        for line in t.lines() {
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

impl Default for Grid {
    fn default() -> Grid {
        Grid::new()
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

/// `text` in lines of at most `width` columns, those after the first indented by `indent`
/// spaces. Lines break at spaces only: a number, a date or a command is never split (a word
/// longer than the width stays whole on its own line).
pub fn wrap(text: &str, width: usize, indent: usize) -> Vec<String> {
    let hang = " ".repeat(indent);
    let options = textwrap::Options::new(width.max(20))
        .subsequent_indent(&hang)
        .break_words(false)
        .word_splitter(textwrap::WordSplitter::NoHyphenation);
    textwrap::wrap(text, options)
        .into_iter()
        .map(|l| l.into_owned())
        .collect()
}

impl Style {
    /// Prints a sentence or two of prose wrapped to the output's width, each line after the
    /// first indented by `indent` spaces.
    pub fn note(&self, text: &str, indent: usize) {
        for line in wrap(text, self.width, indent) {
            crate::outln!("{line}");
        }
    }

    /// The note under a table: `notes` joined, plus which columns --wide would add.
    pub fn table_note(&self, grid: &Grid, view: TableView, mut notes: Vec<String>) {
        let hidden = grid.hidden(self, view);
        if !hidden.is_empty() {
            notes.push(format!("--wide adds {}", hidden.join(", ")));
        }
        if !notes.is_empty() {
            self.note(&format!("{}.", notes.join("; ")), 0);
        }
    }
}

pub fn warn(message: &str) {
    eprintln!("tokenctl: warning: {}", crate::error::printable(message));
}

pub use crate::domain::thousands;
