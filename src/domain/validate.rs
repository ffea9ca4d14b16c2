//! Checks on values a user types. Each returns a one-line message fit for stderr.

/// The global total's name wherever a table has an `ai_type` column (alerts, windows).
pub const GLOBAL_SCOPE: &str = "*";
pub const MAX_AI_TYPE_CHARS: usize = 100;
/// A single count above this is a typo, not a request; it also keeps every sum far from i64::MAX.
pub const MAX_TOKENS_PER_VALUE: i64 = 1_000_000_000;
pub const MAX_LIMIT: i64 = 1_000_000_000_000_000;

pub fn ai_type(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("ai_type must not be empty".into());
    }
    let chars = value.chars().count();
    if chars > MAX_AI_TYPE_CHARS {
        return Err(format!(
            "ai_type is {chars} characters long; at most {MAX_AI_TYPE_CHARS} are allowed"
        ));
    }
    if value == GLOBAL_SCOPE {
        return Err("ai_type '*' is reserved for the global total".into());
    }
    if value.chars().any(char::is_control) {
        return Err("ai_type must not contain control characters (newlines, tabs, …)".into());
    }
    Ok(value.to_string())
}

fn whole_number(value: &str, what: &str, max: i64) -> Result<i64, String> {
    let digits = value.trim().replace('_', "");
    if let Some(rest) = digits.strip_prefix('-') {
        if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("{what} must not be negative, got '{value}'"));
        }
    }
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("{what} must be a whole number, got '{value}'"));
    }
    match digits.parse::<i64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!("{what} is too large: '{value}' (at most {max})")),
    }
}

pub fn tokens(value: &str) -> Result<i64, String> {
    whole_number(value, "token count", MAX_TOKENS_PER_VALUE)
}

pub fn limit(value: &str) -> Result<i64, String> {
    whole_number(value, "limit", MAX_LIMIT)
}

pub fn count(value: &str) -> Result<i64, String> {
    whole_number(value, "value", i32::MAX as i64)
}

/// 'YYYY-MM' with a real month.
pub fn month(value: &str) -> Result<String, String> {
    let ok = value.len() == 7
        && value.as_bytes()[4] == b'-'
        && chrono::NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d").is_ok();
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "month must look like 2026-11 (YYYY-MM), got '{value}'"
        ))
    }
}

/// A model name as stored: trimmed and lower-case, so prices match whatever case callers use.
pub fn model(value: &str) -> Result<String, String> {
    let m = value.trim().to_ascii_lowercase();
    if m.is_empty() {
        return Err("model must not be empty".into());
    }
    if m.chars().count() > 200 {
        return Err("model is longer than 200 characters".into());
    }
    Ok(m)
}

pub fn usd_per_mtok(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=1_000_000.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "price must be a non-negative number of USD per million tokens, got '{value}'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ai_types() {
        assert!(ai_type("imperium").is_ok());
        assert!(ai_type("x'; DROP TABLE token_usage; --").is_ok());
        assert!(ai_type("").is_err());
        assert!(ai_type("*").is_err());
        assert!(ai_type(&"a".repeat(100)).is_ok());
        assert!(ai_type(&"a".repeat(101)).is_err());
        assert!(ai_type(&"é".repeat(100)).is_ok(), "characters, not bytes");
    }

    #[test]
    fn token_counts() {
        assert_eq!(tokens("1073"), Ok(1073));
        assert_eq!(tokens("1_000"), Ok(1000));
        assert!(tokens("-5").unwrap_err().contains("negative"));
        assert!(tokens("ten").unwrap_err().contains("whole number"));
        assert!(tokens("1.5").unwrap_err().contains("whole number"));
        assert!(tokens("99999999999999999999999")
            .unwrap_err()
            .contains("too large"));
        assert!(tokens("1000000001").unwrap_err().contains("too large"));
        assert!(tokens("-1_000").unwrap_err().contains("negative"));
        assert!(tokens("-_5").unwrap_err().contains("negative"));
        assert!(tokens("+5").is_err());
        assert!(tokens("").is_err());
        assert!(tokens("_").is_err());
    }

    #[test]
    fn months() {
        assert!(month("2026-11").is_ok());
        assert!(month("2026-13").is_err());
        assert!(month("2026-1").is_err());
        assert!(month("nov").is_err());
    }
}
