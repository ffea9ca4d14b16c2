//! How `tokenctl report` reads: a terminal view of a `Report` and a CSV of its daily rollups.
//! Rendering only: the caller reads the rows and owns the writer, so both are tested here as
//! plain strings and bytes.

use std::io::Write;

use comfy_table::{Cell, Color};

use crate::domain::money::Usd;
use crate::domain::report::{Report, RollupRow};
use crate::error::printable;
use crate::output::{thousands, wrap, Grid, Show, Style, TableView};

/// The daily bar never shrinks below this, so a narrow terminal still shows a trend.
const MIN_BAR: usize = 8;
/// Nor grows past this: on a very wide terminal a longer bar says nothing more.
const MAX_BAR: usize = 60;
/// A bar's last cell, in eighths of a cell (index 0 is no partial cell).
const EIGHTHS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
const FULL: &str = "█";
/// Marks a cost that leaves out requests without a price. Cost headers end in a space where
/// the mark goes, so they sit over the digits.
const INCOMPLETE: &str = "*";

fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// A cost, marked when some of its requests have no price; complete costs get a space in the
/// mark's place so the digits of a right-aligned column stay in line.
fn cost_text(cost: Usd, complete: bool) -> String {
    format!("{cost}{}", if complete { " " } else { INCOMPLETE })
}

/// `cost` as a bar of at most `width` cells, the largest cost `max` filling them all. Any cost
/// above zero shows at least an eighth, so a small day is not mistaken for an idle one.
fn bar(cost: Usd, max: Usd, width: usize) -> String {
    let (cost, max) = (cost.nanos().max(0) as i128, max.nanos().max(0) as i128);
    if cost == 0 || max == 0 {
        return String::new();
    }
    let cells = width as i128 * 8;
    let eighths = ((cost * cells + max / 2) / max).clamp(1, cells);
    let (full, part) = ((eighths / 8) as usize, (eighths % 8) as usize);
    let mut s = FULL.repeat(full);
    s.push_str(EIGHTHS[part]);
    s
}

/// A title over a section: bold when colour is on.
fn title(text: &str, color: bool) -> String {
    use owo_colors::OwoColorize;
    if color {
        format!("{}\n", text.bold())
    } else {
        format!("{text}\n")
    }
}

/// Lines of prose wrapped to `width`, each painted by `paint` (so wrapping never counts an
/// escape code as a column).
fn prose(text: &str, width: usize, paint: impl Fn(&str) -> String) -> String {
    wrap(text, width, 2)
        .iter()
        .map(|l| format!("{}\n", paint(l)))
        .collect()
}

/// What `tokenctl report` prints on a terminal. `width` is the columns to fit; with `color`
/// false the text has no escape code at all (a pipe, a file, NO_COLOR).
pub fn table_text(report: &Report, color: bool, width: usize) -> String {
    use owo_colors::OwoColorize;
    // below this nothing reads well anyway, and comfy-table is not asked to fit 0 columns
    let width = width.max(20);
    let style = Style {
        color,
        terminal: false,
        width,
    };
    let p = &report.period;
    if report.is_empty() {
        return prose(
            &format!(
                "no usage between {} and {}: record some with tokenctl record --ai-type TYPE \
                 --tokens-in N --tokens-out N",
                p.since, p.until
            ),
            width,
            str::to_string,
        );
    }
    let t = &report.totals;
    let mut out = prose(
        &format!(
            "Usage from {} to {}: {}, {}, {}, {}",
            p.since,
            p.until,
            plural(t.requests, "request", "requests"),
            plural(t.tokens, "token", "tokens"),
            t.cost_usd,
            plural(t.unique_users as i64, "user", "users"),
        ),
        width,
        |l| {
            if color {
                l.bold().to_string()
            } else {
                l.to_string()
            }
        },
    );
    if !t.cost_complete {
        let count = if t.unpriced_requests == 1 {
            "1 request has".to_string()
        } else {
            format!("{} requests have", thousands(t.unpriced_requests))
        };
        out.push_str(&prose(
            &format!("cost incomplete: {count} no price (set one with tokenctl prices set)"),
            width,
            |l| {
                if color {
                    l.yellow().to_string()
                } else {
                    l.to_string()
                }
            },
        ));
    }
    let note = format!("{INCOMPLETE} leaves out requests that have no price\n");

    out.push('\n');
    out.push_str(&title("Daily usage", color));
    out.push_str(&daily(report, &style));
    if report.daily_usage.iter().any(|d| !d.cost_complete) {
        out.push_str(&note);
    }

    out.push('\n');
    if report.top_users.is_empty() {
        out.push_str(&title(
            "Top users: none of these requests had a user id",
            color,
        ));
    } else {
        out.push_str(&title("Top users", color));
        let mut g = breakdown("User");
        for u in &report.top_users {
            g.row(row(
                &u.user_id,
                u.request_count,
                u.total_tokens,
                u.total_cost,
                u.cost_complete,
            ));
        }
        out.push_str(&g.render(&style, TableView::default()));
        if report.top_users.iter().any(|u| !u.cost_complete) {
            out.push_str(&note);
        }
    }

    out.push('\n');
    out.push_str(&title("Models", color));
    let mut g = breakdown("Model");
    for m in &report.model_usage {
        g.row(row(
            m.model.as_deref().unwrap_or("(no model)"),
            m.request_count,
            m.total_tokens,
            m.total_cost,
            m.cost_complete,
        ));
    }
    out.push_str(&g.render(&style, TableView::default()));
    if report.model_usage.iter().any(|m| !m.cost_complete) {
        out.push_str(&note);
    }

    out.push('\n');
    out.push_str(&title("AI types", color));
    let mut g = breakdown("AI type");
    for a in &report.ai_type_usage {
        g.row(row(
            &a.ai_type,
            a.request_count,
            a.total_tokens,
            a.total_cost,
            a.cost_complete,
        ));
    }
    out.push_str(&g.render(&style, TableView::default()));
    if report.ai_type_usage.iter().any(|a| !a.cost_complete) {
        out.push_str(&note);
    }
    out
}

/// The day-by-day table, its last column a bar of the day's cost as long as the width leaves.
fn daily(report: &Report, style: &Style) -> String {
    let rows: Vec<[String; 5]> = report
        .daily_usage
        .iter()
        .map(|d| {
            [
                d.date.to_string(),
                thousands(d.total_requests),
                thousands(d.total_tokens),
                thousands(d.unique_users as i64),
                cost_text(d.total_cost, d.cost_complete),
            ]
        })
        .collect();
    let headers = ["Date", "Requests", "Tokens", "Users", "Cost "];
    let used: usize = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .fold(headers[i].len(), usize::max)
                + 2
        })
        .sum();
    let bar_width = style.width.saturating_sub(used).clamp(MIN_BAR, MAX_BAR);
    let max = report
        .daily_usage
        .iter()
        .map(|d| d.total_cost)
        .max()
        .unwrap_or_default();
    let mut g = Grid::new()
        .text("Date", Show::Always)
        .number("Requests", Show::Always)
        .number("Tokens", Show::Always)
        .number("Users", Show::Always)
        .number("Cost ", Show::Always)
        .text("", Show::Always);
    for (d, r) in report.daily_usage.iter().zip(rows) {
        let [date, requests, tokens, users, cost] = r;
        let b = Cell::new(bar(d.total_cost, max, bar_width));
        let b = if style.color { b.fg(Color::Cyan) } else { b };
        g.row(vec![
            Cell::new(date),
            Cell::new(requests),
            Cell::new(tokens),
            Cell::new(users),
            Cell::new(cost),
            b,
        ]);
    }
    // as wide as its content: the bar was sized to fit, and must never wrap
    g.render(
        style,
        TableView {
            wide: true,
            no_headers: false,
        },
    )
}

fn breakdown(name: &'static str) -> Grid {
    Grid::new()
        .text(name, Show::Always)
        .number("Requests", Show::Always)
        .number("Tokens", Show::Always)
        .number("Cost ", Show::Always)
}

/// A breakdown's row; the name is shown with control characters escaped, since a user id or
/// model comes from whoever called `record`.
fn row(name: &str, requests: i64, tokens: i64, cost: Usd, complete: bool) -> Vec<Cell> {
    vec![
        Cell::new(printable(name)),
        Cell::new(thousands(requests)),
        Cell::new(thousands(tokens)),
        Cell::new(cost_text(cost, complete)),
    ]
}

/// The CSV's columns, in order.
pub const CSV_HEADER: [&str; 13] = [
    "date",
    "ai_type",
    "user_id",
    "model",
    "requests",
    "tokens_in",
    "tokens_out",
    "cache_read_tokens",
    "cache_write_tokens",
    "total_tokens",
    "cost_usd",
    "unpriced_requests",
    "cost_complete",
];

/// The rollup rows as RFC 4180 CSV, one line per row in the order given, for a spreadsheet:
/// costs are exact decimals of dollars (no "$", no separators) so a column sum is the bill,
/// and a missing user or model is an empty field.
pub fn write_csv<W: Write>(rows: &[RollupRow], w: W) -> std::io::Result<()> {
    let mut out = csv::Writer::from_writer(w);
    out.write_record(CSV_HEADER)?;
    for r in rows {
        out.write_record([
            r.day.to_string(),
            r.ai_type.clone(),
            r.user_id.clone().unwrap_or_default(),
            r.model.clone().unwrap_or_default(),
            r.requests.to_string(),
            r.tokens_in.to_string(),
            r.tokens_out.to_string(),
            r.cache_read_tokens.to_string(),
            r.cache_write_tokens.to_string(),
            r.total_tokens.to_string(),
            r.cost.decimal(),
            r.unpriced_requests.to_string(),
            (r.unpriced_requests <= 0).to_string(),
        ])?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::report::tests::{d, row as rrow, sample, usd};
    use crate::domain::report::{build, Period};

    fn sample_text(color: bool, width: usize) -> String {
        let (p, rows) = sample();
        table_text(&build(p, &rows, 10), color, width)
    }

    #[test]
    fn bars_are_proportional_in_eighths() {
        let max = usd("8");
        assert_eq!(bar(usd("8"), max, 4), "████");
        assert_eq!(bar(usd("4"), max, 4), "██");
        // 1/8 of 4 cells is 4 eighths: half a cell
        assert_eq!(bar(usd("1"), max, 4), "▌");
        // 3/8 of 4 cells is 12 eighths: one cell and a half
        assert_eq!(bar(usd("3"), max, 4), "█▌");
        assert_eq!(bar(usd("0.25"), max, 4), "▏");
        // too small to round to an eighth, yet not nothing
        assert_eq!(bar(Usd::from_nanos(1), max, 4), "▏");
        assert_eq!(bar(Usd::ZERO, max, 4), "");
        assert_eq!(bar(Usd::ZERO, Usd::ZERO, 4), "");
        assert_eq!(bar(Usd::from_nanos(-5), max, 4), "");
        // never longer than the column, even for a cost above the given largest
        assert_eq!(bar(usd("80"), max, 4), "████");
        assert_eq!(
            bar(Usd::from_nanos(i64::MAX), Usd::from_nanos(i64::MAX), 3),
            "███"
        );
    }

    #[test]
    fn plain_text_has_totals_trend_and_breakdowns() {
        let text = sample_text(false, 80);
        assert!(!text.contains('\x1b'), "{text}");
        assert!(
            text.starts_with(
                "Usage from 2026-11-01 to 2026-11-05: 10 requests, 6,700 tokens, $1.8005, 3 users\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "cost incomplete: 2 requests have no price (set one with tokenctl prices set)"
            ),
            "{text}"
        );
        for s in [
            "Daily usage",
            "Top users",
            "Models",
            "AI types",
            "(no model)",
        ] {
            assert!(text.contains(s), "{s}: {text}");
        }
        // the largest day fills the bar column, the quiet ones show none
        let line = |date: &str| -> String {
            text.lines()
                .find(|l| l.starts_with(date))
                .unwrap()
                .to_string()
        };
        let first = line("2026-11-01");
        assert!(first.contains("5,600"), "{first}");
        assert!(first.contains("$1.78"), "{first}");
        assert_eq!(first.chars().count(), 80, "{first}");
        assert!(first.ends_with('█'), "{first}");
        assert!(!line("2026-11-02").contains(['█', '▏']));
        assert!(line("2026-11-02").ends_with("$0.00"));
        assert!(line("2026-11-03").contains("$0.0105*"));
        // tokens with thousands separators, right-aligned with their header
        let header = text.lines().find(|l| l.starts_with("Date")).unwrap();
        let end = header.find("Tokens").unwrap() + "Tokens".len();
        assert_eq!(&first[end - 5..end], "5,600");
        assert!(text.contains("* leaves out requests that have no price"));
        for l in text.lines() {
            assert!(l.chars().count() <= 80, "{l}");
        }
    }

    #[test]
    fn colour_only_when_asked() {
        let text = sample_text(true, 80);
        assert!(text.contains('\x1b'));
        assert!(!sample_text(false, 80).contains('\x1b'));
    }

    #[test]
    fn bar_column_follows_the_width() {
        let longest = |text: &str| {
            text.lines()
                .filter(|l| l.starts_with("2026-11-01"))
                .map(|l| l.chars().filter(|c| *c == '█').count())
                .max()
                .unwrap()
        };
        let wide = longest(&sample_text(false, 120));
        let narrow = longest(&sample_text(false, 60));
        assert!(wide > narrow, "{wide} {narrow}");
        assert_eq!(longest(&sample_text(false, 1000)), MAX_BAR);
        assert_eq!(longest(&sample_text(false, 0)), MIN_BAR);
    }

    #[test]
    fn an_empty_period_says_how_to_fill_it() {
        let p = Period {
            since: d("2026-11-01"),
            until: d("2026-11-30"),
        };
        let text = table_text(&build(p, &[], 10), false, 200);
        assert_eq!(
            text,
            "no usage between 2026-11-01 and 2026-11-30: record some with tokenctl record \
             --ai-type TYPE --tokens-in N --tokens-out N\n"
        );
    }

    #[test]
    fn complete_cost_and_names_from_callers_are_safe() {
        let rows = vec![rrow(
            "2026-11-01",
            "chat",
            Some("evil\x1b[31m\nuser"),
            Some("opus"),
            1,
            1_500,
            "0.25",
            0,
        )];
        let p = Period {
            since: d("2026-11-01"),
            until: d("2026-11-01"),
        };
        let text = table_text(&build(p, &rows, 10), false, 80);
        assert!(!text.contains('\x1b'), "{text}");
        assert!(!text.contains("cost incomplete"));
        assert!(!text.contains('*'));
        assert!(
            text.contains("1 request, 1,500 tokens, $0.25, 1 user"),
            "{text}"
        );
        assert!(text.contains("evil\\u{1b}[31m\\nuser"), "{text}");
    }

    fn parse(bytes: &[u8]) -> Vec<Vec<String>> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes)
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn csv_has_one_line_per_row_and_exact_costs() {
        let (_, rows) = sample();
        let mut out = Vec::new();
        write_csv(&rows, &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with(
            "date,ai_type,user_id,model,requests,tokens_in,tokens_out,cache_read_tokens,\
             cache_write_tokens,total_tokens,cost_usd,unpriced_requests,cost_complete\n"
        ));
        let recs = parse(&out);
        assert_eq!(recs.len(), rows.len() + 1);
        assert_eq!(recs[0], CSV_HEADER);
        // the given order, the row outside any period included
        assert_eq!(
            recs[1],
            [
                "2026-10-31",
                "chat",
                "alice",
                "opus",
                "9",
                "6750",
                "2250",
                "0",
                "0",
                "9000",
                "9",
                "0",
                "true"
            ]
        );
        assert_eq!(recs[4][2], "", "no user");
        assert_eq!(recs[4][10], "1.25");
        assert_eq!(recs[5][10..], ["0", "2", "false"]);
        assert_eq!(recs[6][3], "", "no model");
        assert_eq!(recs[6][10], "0.0105");
    }

    #[test]
    fn csv_fields_round_trip() {
        let tricky = "a,\"b\"\nc";
        let mut r = rrow(
            "2026-11-01",
            "chat, \"beta\"",
            Some(tricky),
            Some("m\r\nx"),
            1,
            10,
            "0.000000001",
            0,
        );
        r.cache_read_tokens = 3;
        r.cache_write_tokens = 4;
        let mut out = Vec::new();
        write_csv(std::slice::from_ref(&r), &mut out).unwrap();
        let recs = parse(&out);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1][1], "chat, \"beta\"");
        assert_eq!(recs[1][2], tricky);
        assert_eq!(recs[1][3], "m\r\nx");
        assert_eq!(recs[1][7..10], ["3", "4", "10"]);
        assert_eq!(recs[1][10], "0.000000001");
        assert_eq!(usd(&recs[1][10]), r.cost);
    }

    #[test]
    fn csv_of_nothing_is_the_header() {
        let mut out = Vec::new();
        write_csv(&[], &mut out).unwrap();
        assert_eq!(parse(&out), [CSV_HEADER]);
    }

    #[test]
    fn csv_reports_a_failing_writer() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Err(std::io::Error::other("disk full"))
            }
        }
        let (_, rows) = sample();
        assert!(write_csv(&rows, Broken).is_err());
    }
}
