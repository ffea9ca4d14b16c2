//! Validated input: each type is built only through its rule in `validate`, whether it comes
//! from a flag (`FromStr`, which clap uses) or from a JSON body (`Deserialize`), so every
//! front end applies the same rules with the same messages.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::validate;

/// An AI type's name: 1–100 characters, no control characters, no padding, not `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AiType(String);

/// A JSON number that is a whole number, as its digits: `1164`, or `1164.0` as JSON (and JSON
/// Schema's `integer`) allows it and clients that compute in floats send it. A fraction, or a
/// number past any count, is refused here; the digits then go through the count's own rule.
struct JsonWhole(String);

impl<'de> Deserialize<'de> for JsonWhole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<JsonWhole, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = JsonWhole;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<JsonWhole, E> {
                Ok(JsonWhole(n.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<JsonWhole, E> {
                Ok(JsonWhole(n.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<JsonWhole, E> {
                // 2^63: past it no count's rule could accept the number anyway
                if n.is_finite() && n.fract() == 0.0 && n.abs() < 9.2e18 {
                    Ok(JsonWhole((n as i64).to_string()))
                } else {
                    Err(E::custom(format!("expected a whole number, got {n}")))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Whole numbers, each with its rule in `validate`: digits only, within the rule's range.
/// From a flag they are text; in a JSON body a number (checked by the same rule, through its
/// digits, so with the same message).
macro_rules! whole_numbers {
    ($($(#[$doc:meta])* $name:ident => $rule:path, at most $max:expr;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "JsonWhole", into = "i64")]
        pub struct $name(i64);

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $rule(s).map($name)
            }
        }

        impl TryFrom<i64> for $name {
            type Error = String;
            fn try_from(n: i64) -> Result<Self, String> {
                n.to_string().parse()
            }
        }

        impl TryFrom<JsonWhole> for $name {
            type Error = String;
            fn try_from(n: JsonWhole) -> Result<Self, String> {
                n.0.parse()
            }
        }

        impl From<$name> for i64 {
            fn from(n: $name) -> i64 {
                n.0
            }
        }

        impl $name {
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::Integer)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Int64,
                    )))
                    .minimum(Some(0))
                    .maximum(Some($max))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    )*};
}

whole_numbers! {
    /// A count of tokens a request used or may use: at most 1,000,000,000.
    Tokens => validate::tokens, at most validate::MAX_TOKENS_PER_VALUE;
    /// A limit in tokens.
    Limit => validate::limit, at most validate::MAX_LIMIT;
    /// A rate limit's value (requests, seconds): 0 turns it off.
    Count => validate::count, at most i32::MAX as i64;
}

/// A calendar month, `YYYY-MM`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Month(String);

/// How long a reservation holds: more than 0, at most 7 days (`30s`, `10m`, `1h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ttl(std::time::Duration);

/// A calendar day, `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Day(String);

/// How far back: a duration (`24h`, `7d`) counted from now, or an RFC 3339 time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Since {
    Ago(std::time::Duration),
    At(chrono::DateTime<chrono::Utc>),
}

impl FromStr for AiType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        validate::ai_type(s).map(AiType)
    }
}

impl FromStr for Month {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        validate::month(s).map(Month)
    }
}

impl FromStr for Ttl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        validate::ttl(s).map(Ttl)
    }
}

impl FromStr for Day {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
            Ok(d) if s.trim().len() == 10 => Ok(Day(d.format("%Y-%m-%d").to_string())),
            _ => Err(format!(
                "day must look like 2026-11-23 (YYYY-MM-DD), got '{s}'"
            )),
        }
    }
}

impl FromStr for Since {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(d) = humantime::parse_duration(s.trim()) {
            return Ok(Since::Ago(d));
        }
        chrono::DateTime::parse_from_rfc3339(s.trim())
            .map(|t| Since::At(t.with_timezone(&chrono::Utc)))
            .map_err(|_| format!("expected a duration (24h, 7d) or an RFC 3339 time, got '{s}'"))
    }
}

impl Since {
    /// The instant this names, counting back from `now`.
    pub fn resolve(
        self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<chrono::DateTime<chrono::Utc>, crate::error::OpError> {
        match self {
            Since::At(t) => Ok(t),
            Since::Ago(d) => chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .ok_or_else(|| crate::error::OpError::invalid("--since is too long ago")),
        }
    }
}

impl Day {
    pub fn date(&self) -> chrono::NaiveDate {
        chrono::NaiveDate::parse_from_str(&self.0, "%Y-%m-%d").unwrap_or_default()
    }
}

impl TryFrom<String> for Day {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl TryFrom<String> for Since {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Day> for String {
    fn from(d: Day) -> String {
        d.0
    }
}

impl From<Since> for String {
    fn from(s: Since) -> String {
        match s {
            Since::Ago(d) => humantime::format_duration(d).to_string(),
            Since::At(t) => t.to_rfc3339(),
        }
    }
}

impl Deref for Day {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AiType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl TryFrom<String> for Month {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl TryFrom<String> for Ttl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<AiType> for String {
    fn from(a: AiType) -> String {
        a.0
    }
}

impl From<Month> for String {
    fn from(m: Month) -> String {
        m.0
    }
}

impl From<Ttl> for String {
    fn from(t: Ttl) -> String {
        humantime::format_duration(t.0).to_string()
    }
}

impl Deref for AiType {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Deref for Month {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<AiType> for String {
    fn eq(&self, other: &AiType) -> bool {
        *self == other.0
    }
}

impl fmt::Display for AiType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Ttl {
    pub fn get(self) -> std::time::Duration {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_json_share_one_rule() {
        assert_eq!(
            "imperium".parse::<AiType>().unwrap().to_string(),
            "imperium"
        );
        let json: Result<AiType, _> = serde_json::from_str(r#"" imperium""#);
        let flag = " imperium".parse::<AiType>().unwrap_err();
        assert!(json.unwrap_err().to_string().starts_with(&flag));
        assert!(serde_json::from_str::<AiType>(r#""*""#).is_err());

        assert_eq!(serde_json::from_str::<Tokens>("1073").unwrap().get(), 1073);
        let json = serde_json::from_str::<Tokens>("-5")
            .unwrap_err()
            .to_string();
        assert!(
            json.starts_with(&"-5".parse::<Tokens>().unwrap_err()),
            "{json}"
        );
        assert!("1_000".parse::<Tokens>().is_err());
        assert!(serde_json::from_str::<Tokens>("1000000001").is_err());
        // JSON's whole numbers, however written; never a fraction, a string or past the rule
        assert_eq!(
            serde_json::from_str::<Tokens>("1164.0").unwrap().get(),
            1164
        );
        assert_eq!(serde_json::from_str::<Tokens>("1e3").unwrap().get(), 1000);
        assert!(serde_json::from_str::<Tokens>("1.5").is_err());
        assert!(serde_json::from_str::<Tokens>("\"5\"").is_err());
        assert!(serde_json::from_str::<Tokens>("1e300").is_err());
        assert!(serde_json::from_str::<Tokens>("18446744073709551615").is_err());
        let json = serde_json::from_str::<Tokens>("-5.0")
            .unwrap_err()
            .to_string();
        assert!(
            json.starts_with(&"-5".parse::<Tokens>().unwrap_err()),
            "{json}"
        );

        assert!(serde_json::from_str::<Month>(r#""2026-13""#).is_err());
        assert_eq!(&*"2026-11".parse::<Month>().unwrap(), "2026-11");

        let ttl: Ttl = serde_json::from_str(r#""10m""#).unwrap();
        assert_eq!(ttl.get().as_secs(), 600);
        assert!(serde_json::from_str::<Ttl>(r#""8d""#).is_err());
        assert!("-5m".parse::<Ttl>().unwrap_err().contains("negative"));
        assert_eq!(serde_json::to_string(&ttl).unwrap(), r#""10m""#);
    }
}

/// Characters no name or id may hold: control characters (`char::is_control`), as a regex class.
const CONTROL_CHARS: &str = r"\u0000-\u001f\u007f-\u009f";
/// What `str::trim` strips besides control characters (Unicode White_Space), as a regex class.
const SPACE_CHARS: &str = r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// The pattern of an AI type's rule (`validate::ai_type`): no control characters, no leading
/// or trailing spaces, and not `*` (unless `or_global`, for where `*` names the total).
pub fn ai_type_pattern(or_global: bool) -> String {
    let star = if or_global { "" } else { "*" };
    format!(
        "^(?:[^{CONTROL_CHARS}{SPACE_CHARS}{star}]|[^{CONTROL_CHARS}{SPACE_CHARS}][^{CONTROL_CHARS}]*[^{CONTROL_CHARS}{SPACE_CHARS}])$"
    )
}

/// The pattern of an id's rule (`validate::id`): no control characters.
pub fn id_pattern() -> String {
    format!("^[^{CONTROL_CHARS}]*$")
}

fn text_schema(
    describe: &str,
    min: Option<usize>,
    max: Option<usize>,
    pattern: Option<String>,
    format: Option<utoipa::openapi::KnownFormat>,
) -> utoipa::openapi::schema::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(min)
        .max_length(max)
        .pattern(pattern)
        .format(format.map(utoipa::openapi::SchemaFormat::KnownFormat))
        .description(Some(describe))
        .build()
}

/// Text types as an OpenAPI schema: a string, with what its rule says in words and, where a
/// regex can say it, as a pattern.
macro_rules! text_schemas {
    ($($name:ident => $schema:expr;)*) => {$(
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $schema.into()
            }
        }

        impl utoipa::ToSchema for $name {}
    )*};
}

text_schemas! {
    AiType => text_schema(
        "an AI type: 1-100 characters, no control characters, no leading or trailing spaces, not '*'",
        Some(1), Some(validate::MAX_AI_TYPE_CHARS), Some(ai_type_pattern(false)), None);
    Month => text_schema("a month, YYYY-MM", Some(7), Some(7),
        Some("^[0-9]{4}-(?:0[1-9]|1[0-2])$".into()), None);
    Day => text_schema("a day, YYYY-MM-DD", Some(10), Some(10),
        Some("^[0-9]{4}-[0-9]{2}-[0-9]{2}$".into()), Some(utoipa::openapi::KnownFormat::Date));
    Ttl => text_schema("a duration: 30s, 10m, 1h (more than 0, at most 7 days)", Some(1), Some(32), None, None);
    Since => utoipa::openapi::schema::Schema::AnyOf(utoipa::openapi::schema::AnyOfBuilder::new()
        .item(text_schema("a duration back from now: 90s, 30m, 24h, 7d", Some(1), Some(5),
            Some("^(?:0|[0-9]{1,4}[smhd])$".into()), None))
        .item(text_schema("an RFC 3339 time", None, None, None, Some(utoipa::openapi::KnownFormat::DateTime)))
        .description(Some("a duration back from now (24h, 7d; humantime's other forms too) or an RFC 3339 time"))
        .build());
}
