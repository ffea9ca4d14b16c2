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

/// A count of tokens a request used or may use: digits only, at most 1,000,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Tokens(i64);

/// A calendar month, `YYYY-MM`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Month(String);

/// How long a reservation holds: more than 0, at most 7 days (`30s`, `10m`, `1h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ttl(std::time::Duration);

impl FromStr for AiType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        validate::ai_type(s).map(AiType)
    }
}

impl FromStr for Tokens {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        validate::tokens(s).map(Tokens)
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

impl TryFrom<String> for AiType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl TryFrom<i64> for Tokens {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        // the same rule as typed digits, so the same message
        n.to_string().parse()
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

impl From<Tokens> for i64 {
    fn from(t: Tokens) -> i64 {
        t.0
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

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Tokens {
    pub fn get(self) -> i64 {
        self.0
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

        assert!(serde_json::from_str::<Month>(r#""2026-13""#).is_err());
        assert_eq!(&*"2026-11".parse::<Month>().unwrap(), "2026-11");

        let ttl: Ttl = serde_json::from_str(r#""10m""#).unwrap();
        assert_eq!(ttl.get().as_secs(), 600);
        assert!(serde_json::from_str::<Ttl>(r#""8d""#).is_err());
        assert!("-5m".parse::<Ttl>().unwrap_err().contains("negative"));
        assert_eq!(serde_json::to_string(&ttl).unwrap(), r#""10m""#);
    }
}
