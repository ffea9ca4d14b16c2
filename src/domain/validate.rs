//! Checks on values a user types. Each returns a one-line message fit for stderr.

/// The global total's name wherever a table has an `ai_type` column (alerts, windows).
pub const GLOBAL_SCOPE: &str = "*";
pub const MAX_AI_TYPE_CHARS: usize = 100;
/// A single count above this is a typo, not a request; it also keeps every sum far from i64::MAX.
pub const MAX_TOKENS_PER_VALUE: i64 = 1_000_000_000;
pub const MAX_LIMIT: i64 = 1_000_000_000_000_000;

/// Identifiers (request, reservation, user and session ids) fit provider message ids, UUIDs
/// and the like with room to spare.
pub const MAX_ID_CHARS: usize = 255;
/// Free text (an error message) longer than this is cut, never refused: the usage still counts.
pub const MAX_FREE_TEXT_CHARS: usize = 1000;

pub fn ai_type(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err("ai_type must not be empty or blank".into());
    }
    if value.trim() != value {
        return Err(format!(
            "ai_type '{value}' starts or ends with spaces: it would be another AI type than '{}'",
            value.trim()
        ));
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

/// One rule for every count: digits only (no sign, spaces, separators or exponent).
fn whole_number(value: &str, what: &str, max: i64) -> Result<i64, String> {
    let all_digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if value.strip_prefix('-').is_some_and(all_digits) {
        return Err(format!("{what} must not be negative, got '{value}'"));
    }
    if !all_digits(value) {
        return Err(format!(
            "{what} must be a whole number written with digits only (1000, not 1,000, 1_000 or 1e3), got '{value}'"
        ));
    }
    match value.parse::<i64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!("{what} is too large: '{value}' (at most {max})")),
    }
}

/// An alert level to filter by (alerts are raised at these three; `ok` never is).
pub fn alert_level(s: &str) -> Result<String, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        l @ ("warning" | "critical" | "emergency") => Ok(l.to_string()),
        _ => Err(format!(
            "level must be warning, critical or emergency, got '{s}'"
        )),
    }
}

/// An AI type, or `*` for the total (where alerts are filed under it).
pub fn ai_type_or_global(s: &str) -> Result<String, String> {
    if s == GLOBAL_SCOPE {
        Ok(GLOBAL_SCOPE.to_string())
    } else {
        ai_type(s)
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

/// A reservation's time to live: more than 0, at most 7 days (`30s`, `10m`, `1h`).
pub fn ttl(value: &str) -> Result<std::time::Duration, String> {
    if value.starts_with('-') {
        return Err(format!("ttl must not be negative, got '{value}'"));
    }
    let d = humantime::parse_duration(value)
        .map_err(|e| format!("invalid duration '{value}': {e} (examples: 30s, 10m, 1h)"))?;
    if d.is_zero() || d > std::time::Duration::from_secs(7 * 24 * 3600) {
        return Err(format!(
            "ttl must be more than 0 and at most 7 days, got '{value}'"
        ));
    }
    Ok(d)
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

/// An identifier: at most `MAX_ID_CHARS` characters, no control characters.
pub fn id(value: &str) -> Result<String, String> {
    let chars = value.chars().count();
    if chars > MAX_ID_CHARS {
        return Err(format!(
            "an id is at most {MAX_ID_CHARS} characters; this one has {chars}"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err("an id must not contain control characters".into());
    }
    Ok(value.to_string())
}

/// A user id: an id that is not empty (a user scope of "" would gather every request that
/// names no one).
pub fn user_id(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("a user id must not be empty".into());
    }
    id(value)
}

/// Free text cut to `max` characters; the second value says whether it was cut.
pub fn truncated(value: &str, max: usize) -> (String, bool) {
    match value.char_indices().nth(max) {
        Some((at, _)) => (value[..at].to_string(), true),
        None => (value.to_string(), false),
    }
}

pub fn usd_per_mtok(value: &str) -> Result<f64, String> {
    if value.trim().parse::<f64>().is_ok_and(|v| v < 0.0) {
        return Err(format!("price must not be negative, got '{value}'"));
    }
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
        assert!(ai_type("   ").unwrap_err().contains("blank"));
        assert!(ai_type(" imperium").unwrap_err().contains("spaces"));
    }

    #[test]
    fn token_counts() {
        assert_eq!(tokens("1073"), Ok(1073));
        assert!(tokens("1_000").is_err());
        assert!(tokens(" 12").is_err());
        assert!(tokens("1,000").is_err());
        assert!(tokens("1e3").is_err());
        assert!(tokens("-5").unwrap_err().contains("negative"));
        assert!(tokens("ten").unwrap_err().contains("whole number"));
        assert!(tokens("1.5").unwrap_err().contains("whole number"));
        assert!(tokens("99999999999999999999999")
            .unwrap_err()
            .contains("too large"));
        assert!(tokens("1000000001").unwrap_err().contains("too large"));
        assert!(tokens("-1_000").is_err());
        assert!(tokens("-_5").is_err());
        assert!(tokens("+5").is_err());
        assert!(tokens("").is_err());
        assert!(tokens("_").is_err());
    }

    #[test]
    fn ids_and_free_text() {
        assert!(id(&"x".repeat(255)).is_ok());
        assert!(id(&"x".repeat(256)).unwrap_err().contains("255"));
        assert!(id("msg_01XFDUDYJgAACzvnptvVoYEL").is_ok());
        assert_eq!(truncated("héllo", 2), ("hé".to_string(), true));
        assert_eq!(truncated("ok", 1000), ("ok".to_string(), false));
    }

    #[test]
    fn months() {
        assert!(month("2026-11").is_ok());
        assert!(month("2026-13").is_err());
        assert!(month("2026-1").is_err());
        assert!(month("nov").is_err());
    }
}
