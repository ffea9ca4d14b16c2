//! Reading counts that another program may have written. The existing backend writes
//! `token_usage` too, and a table adopted from it may be nullable or hold odd values; one such
//! row must never stop enforcement for every AI type, raise a limit, or lose a write. Counts are
//! read as text (whatever the column's type) and turned into tokens here, by one documented
//! rule:
//!
//! | stored               | read as                                            |
//! |----------------------|----------------------------------------------------|
//! | NULL                 | 0                                                  |
//! | a negative number    | 0, with a warning naming the row                   |
//! | a fraction (100.7)   | rounded up (101)                                   |
//! | beyond 64 bits       | the largest count (i64::MAX): over every limit     |
//! | text that is no number | not used, with a warning: `total_tokens` falls back to `tokens_in + tokens_out` |
//!
//! Sums saturate at i64::MAX instead of wrapping, and a saturated total is over every limit.

/// How one stored value was read.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// NULL, or a whole number that fits: taken as it is (NULL as 0)
    Exact(i64),
    /// a number taken after adjusting it; `why` says how, for a warning
    Adjusted { value: i64, why: String },
    /// text that is no number
    Unreadable(String),
}

impl Reading {
    pub fn value(&self) -> Option<i64> {
        match self {
            Reading::Exact(v) | Reading::Adjusted { value: v, .. } => Some(*v),
            Reading::Unreadable(_) => None,
        }
    }
}

/// Reads one count from its text form (`CAST(col AS TEXT)`; None for NULL).
pub fn read_count(raw: Option<&str>) -> Reading {
    let Some(text) = raw else {
        return Reading::Exact(0);
    };
    let t = text.trim();
    if let Ok(v) = t.parse::<i64>() {
        return if v < 0 {
            Reading::Adjusted {
                value: 0,
                why: format!("is negative ({v}); read as 0"),
            }
        } else {
            Reading::Exact(v)
        };
    }
    match t.parse::<f64>() {
        Ok(f) if f.is_nan() => Reading::Unreadable(text.to_string()),
        Ok(f) if f < 0.0 => Reading::Adjusted {
            value: 0,
            why: format!("is negative ({t}); read as 0"),
        },
        Ok(f) if f.ceil() >= i64::MAX as f64 => Reading::Adjusted {
            value: i64::MAX,
            why: format!("is beyond the largest count ({t}); read as over every limit"),
        },
        Ok(f) if f.fract() != 0.0 => Reading::Adjusted {
            value: f.ceil() as i64,
            why: format!("is a fraction ({t}); rounded up to {}", f.ceil() as i64),
        },
        Ok(f) => Reading::Exact(f as i64),
        Err(_) => Reading::Unreadable(text.to_string()),
    }
}

/// Reads an amount of dollars: NULL, negative or non-numeric as 0.
pub fn read_cost(raw: Option<&str>) -> f64 {
    raw.and_then(|t| t.trim().parse::<f64>().ok())
        .filter(|f| f.is_finite() && *f > 0.0)
        .unwrap_or(0.0)
}

/// The counts of one `token_usage` row as read, with a warning per odd value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowCounts {
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub total_tokens: i64,
    pub request_count: i64,
    pub warnings: Vec<String>,
}

/// The raw text of a row's count columns (None for NULL).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCounts<'a> {
    pub tokens_in: Option<&'a str>,
    pub tokens_out: Option<&'a str>,
    pub total_tokens: Option<&'a str>,
    pub request_count: Option<&'a str>,
}

/// Reads a row's counts; `row` names it in warnings ("token_usage row imperium 2026-11").
pub fn read_row(row: &str, raw: RawCounts<'_>) -> RowCounts {
    let mut warnings = Vec::new();
    let mut take = |column: &str, reading: Reading| -> Option<i64> {
        match reading {
            Reading::Exact(v) => Some(v),
            Reading::Adjusted { value, why } => {
                warnings.push(format!("{row}: {column} {why}"));
                Some(value)
            }
            Reading::Unreadable(text) => {
                warnings.push(format!(
                    "{row}: {column} is not a number ({text:?}); not used (fix the row with SQL)"
                ));
                None
            }
        }
    };
    let tokens_in = take("tokens_in", read_count(raw.tokens_in)).unwrap_or(0);
    let tokens_out = take("tokens_out", read_count(raw.tokens_out)).unwrap_or(0);
    let request_count = take("request_count", read_count(raw.request_count)).unwrap_or(0);
    let total_tokens = match take("total_tokens", read_count(raw.total_tokens)) {
        Some(v) => v,
        None => {
            let fallback = tokens_in.saturating_add(tokens_out);
            warnings.push(format!(
                "{row}: total_tokens counted as tokens_in + tokens_out = {fallback}"
            ));
            fallback
        }
    };
    RowCounts {
        tokens_in,
        tokens_out,
        total_tokens,
        request_count,
        warnings,
    }
}

/// Adds counts without wrapping: a sum past i64::MAX stays at i64::MAX (over every limit).
pub fn saturating_sum(values: impl IntoIterator<Item = i64>) -> i64 {
    values
        .into_iter()
        .fold(0i64, |sum, v| sum.saturating_add(v.max(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_stored_value() {
        assert_eq!(read_count(None), Reading::Exact(0));
        assert_eq!(read_count(Some("500")), Reading::Exact(500));
        assert_eq!(read_count(Some(" 12 ")), Reading::Exact(12));
        assert_eq!(read_count(Some("100.0")), Reading::Exact(100));
        assert_eq!(read_count(Some("100.7")).value(), Some(101));
        assert_eq!(read_count(Some("-5")).value(), Some(0));
        assert_eq!(read_count(Some("-0.5")).value(), Some(0));
        assert_eq!(read_count(Some("9.3e18")).value(), Some(i64::MAX));
        assert_eq!(
            read_count(Some("99999999999999999999")).value(),
            Some(i64::MAX)
        );
        assert_eq!(
            read_count(Some("9223372036854775807")),
            Reading::Exact(i64::MAX)
        );
        assert_eq!(
            read_count(Some("five hundred")),
            Reading::Unreadable("five hundred".into())
        );
        assert_eq!(read_count(Some("NaN")).value(), None);
        assert!(matches!(
            read_count(Some("-5")),
            Reading::Adjusted { why, .. } if why.contains("negative")
        ));
    }

    #[test]
    fn text_total_falls_back_to_in_plus_out_with_a_warning() {
        let r = read_row(
            "token_usage row a 2026-11",
            RawCounts {
                tokens_in: Some("400"),
                tokens_out: Some("110"),
                total_tokens: Some("lots"),
                request_count: None,
            },
        );
        assert_eq!(r.total_tokens, 510);
        assert_eq!(r.request_count, 0);
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("token_usage row a 2026-11: total_tokens is not a number"));
    }

    #[test]
    fn a_clean_row_has_no_warnings() {
        let r = read_row(
            "row",
            RawCounts {
                tokens_in: Some("1"),
                tokens_out: Some("2"),
                total_tokens: Some("3"),
                request_count: Some("1"),
            },
        );
        assert_eq!((r.total_tokens, r.warnings.len()), (3, 0));
    }

    #[test]
    fn sums_saturate_instead_of_wrapping() {
        assert_eq!(saturating_sum([i64::MAX - 1, i64::MAX - 1]), i64::MAX);
        assert_eq!(saturating_sum([5, -3, 2]), 7, "negatives never lower a sum");
        assert_eq!(saturating_sum([]), 0);
    }

    #[test]
    fn costs() {
        assert_eq!(read_cost(Some("0.25")), 0.25);
        assert_eq!(read_cost(Some("-1")), 0.0);
        assert_eq!(read_cost(Some("x")), 0.0);
        assert_eq!(read_cost(None), 0.0);
    }
}
