//! US dollars as whole nano-dollars (1e-9 USD), so that sums are exact: a month of requests
//! adds up to the same figure on every host and in every order, which floats do not. Prices
//! per million tokens are amounts of this kind too; a request's cost is computed in 128-bit
//! integers and rounded up once, to the next nano-dollar, so a cost is never under-counted.
//! Floats appear only at the edge, in JSON numbers.

use std::fmt;

use serde::{Serialize, Serializer};

/// An amount of US dollars, in nano-dollars. Never negative where it is a price or a limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(i64);

/// Nano-dollars in a dollar.
pub const NANOS_PER_USD: i64 = 1_000_000_000;
/// The largest amount a limit or price may be: a billion dollars (sums saturate far above).
pub const MAX_USD: i64 = 1_000_000_000;

impl Usd {
    pub const ZERO: Usd = Usd(0);

    pub const fn from_nanos(nanos: i64) -> Usd {
        Usd(nanos)
    }

    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// Whole dollars (for tests and built-in tables).
    pub const fn dollars(d: i64) -> Usd {
        Usd(d * NANOS_PER_USD)
    }

    /// An exact decimal of dollars: "5", "0.25", "$1,250.50", "3.000000001". At most nine
    /// decimals (a nano-dollar), not negative, at most a billion.
    pub fn parse(text: &str) -> Result<Usd, String> {
        let bad = || {
            format!(
                "expected an amount of US dollars such as 5 or 0.25 (at most 9 decimals, not negative), got '{text}'"
            )
        };
        let t = text.trim();
        let t = t.strip_prefix('$').unwrap_or(t).replace(',', "");
        if t.starts_with('-') {
            return Err(format!(
                "an amount of dollars must not be negative, got '{text}'"
            ));
        }
        let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
            return Err(bad());
        }
        if frac.len() > 9 {
            return Err(format!(
                "an amount of dollars has at most 9 decimals (a nano-dollar), got '{text}'"
            ));
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        if whole > MAX_USD {
            return Err(format!(
                "an amount of dollars must be at most {MAX_USD}, got '{text}'"
            ));
        }
        let frac_nanos: i64 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
        let nanos = whole * NANOS_PER_USD + frac_nanos;
        if nanos > MAX_USD * NANOS_PER_USD {
            return Err(format!(
                "an amount of dollars must be at most {MAX_USD}, got '{text}'"
            ));
        }
        Ok(Usd(nanos))
    }

    /// The nearest amount to a float of dollars (a price in a JSON catalogue), or None when it
    /// is not a finite, non-negative amount within range.
    pub fn from_f64(usd: f64) -> Option<Usd> {
        let nanos = (usd * NANOS_PER_USD as f64).round();
        (usd.is_finite() && usd >= 0.0 && nanos <= (MAX_USD * NANOS_PER_USD) as f64)
            .then_some(Usd(nanos as i64))
    }

    /// Dollars as a float, for JSON only.
    pub fn to_f64(self) -> f64 {
        // whole and fractional parts apart: the float is then the decimal's nearest
        let whole = (self.0 / NANOS_PER_USD) as f64;
        let frac = (self.0 % NANOS_PER_USD) as f64 / NANOS_PER_USD as f64;
        let v = whole + frac;
        if v == 0.0 {
            0.0
        } else {
            v
        }
    }

    pub fn saturating_add(self, other: Usd) -> Usd {
        Usd(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Usd) -> Usd {
        Usd(self.0.saturating_sub(other.0))
    }

    /// `tokens` at this price per million tokens, in exact 128-bit nano-dollar-millionths
    /// (sum several with `per_mtok_total`, then round once).
    pub fn per_mtok_times(self, tokens: i64) -> i128 {
        self.0 as i128 * tokens.max(0) as i128
    }

    /// A sum of `per_mtok_times` as an amount, rounded up to the next nano-dollar.
    pub fn per_mtok_total(millionths: i128) -> Usd {
        let nanos = (millionths.max(0) + 999_999) / 1_000_000;
        Usd(i64::try_from(nanos).unwrap_or(i64::MAX))
    }

    /// The exact decimal of dollars, no trailing zeros, no "$" or separators ("0.0105", "5"):
    /// for CSV, where a spreadsheet must read a number and a sum must not lose nano-dollars.
    pub fn decimal(self) -> String {
        let n = self.0.unsigned_abs();
        let nanos_per = NANOS_PER_USD as u64;
        let sign = if self.0 < 0 { "-" } else { "" };
        let frac = format!("{:09}", n % nanos_per);
        let frac = frac.trim_end_matches('0');
        let dot = if frac.is_empty() { "" } else { "." };
        format!("{sign}{}{dot}{frac}", n / nanos_per)
    }

    /// Sum of amounts, saturating.
    pub fn sum(amounts: impl IntoIterator<Item = Usd>) -> Usd {
        amounts.into_iter().fold(Usd::ZERO, Usd::saturating_add)
    }
}

/// "$0.0105", "$5.00", "$1,234.567891": two decimals at least, then as many as it has, at most
/// six (a micro-dollar) for people; JSON carries the exact figure.
impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let neg = self.0 < 0;
        let n = self.0.unsigned_abs();
        let whole = n / NANOS_PER_USD as u64;
        // round to the micro-dollar, half up
        let micros = ((n % NANOS_PER_USD as u64) + 500) / 1000;
        let (whole, micros) = if micros >= 1_000_000 {
            (whole + 1, micros - 1_000_000)
        } else {
            (whole, micros)
        };
        let mut frac = format!("{micros:06}");
        while frac.len() > 2 && frac.ends_with('0') {
            frac.pop();
        }
        let whole = super::number::thousands(whole as i64);
        write!(f, "{}${whole}.{frac}", if neg { "-" } else { "" })
    }
}

/// As a JSON number of dollars.
impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.to_f64())
    }
}

/// From a JSON number of dollars (read as the decimal it is written as: 0.1 is exactly ten
/// cents) or a string such as "5.00".
impl<'de> serde::Deserialize<'de> for Usd {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Usd, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Usd;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an amount of US dollars")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Usd, E> {
                Usd::parse(&n.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Usd, E> {
                Usd::parse(&n.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Usd, E> {
                // Rust prints a float as the shortest decimal that reads back as it: the
                // decimal the JSON had
                let text = format!("{n}");
                if text.contains('e') {
                    return Usd::from_f64(n)
                        .ok_or_else(|| E::custom(format!("not an amount of dollars: {n}")));
                }
                Usd::parse(&text).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Usd, E> {
                Usd::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl utoipa::PartialSchema for Usd {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .description(Some("US dollars (exact to the nano-dollar)"))
            .into()
    }
}

impl utoipa::ToSchema for Usd {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(Usd::parse("5").unwrap(), Usd::dollars(5));
        assert_eq!(Usd::parse("0.25").unwrap().nanos(), 250_000_000);
        assert_eq!(Usd::parse("$1,250.50").unwrap().nanos(), 1_250_500_000_000);
        assert_eq!(Usd::parse(".5").unwrap().nanos(), 500_000_000);
        assert_eq!(Usd::parse("3.000000001").unwrap().nanos(), 3_000_000_001);
        assert!(Usd::parse("3.0000000001")
            .unwrap_err()
            .contains("9 decimals"));
        assert!(Usd::parse("-1").unwrap_err().contains("negative"));
        assert!(Usd::parse("abc").is_err());
        assert!(Usd::parse("").is_err());
        assert!(Usd::parse(".").is_err());
        assert!(Usd::parse("1e3").is_err());
        assert!(Usd::parse("1000000001").unwrap_err().contains("at most"));
    }

    #[test]
    fn sums_are_exact_where_floats_are_not() {
        let tenth = Usd::parse("0.1").unwrap();
        let sum = Usd::sum([tenth, Usd::parse("0.2").unwrap()]);
        assert_eq!(sum, Usd::parse("0.3").unwrap());
        assert_eq!(sum.to_f64(), 0.3);
        assert_eq!(serde_json::to_string(&sum).unwrap(), "0.3");
    }

    #[test]
    fn costs_round_up_once() {
        // 1,000 tokens at $3/Mtok + 500 at $15/Mtok = $0.0105
        let p_in = Usd::dollars(3);
        let p_out = Usd::dollars(15);
        let c = Usd::per_mtok_total(p_in.per_mtok_times(1_000) + p_out.per_mtok_times(500));
        assert_eq!(c.nanos(), 10_500_000);
        // one token at $0.005/Mtok is exactly 5 nano-dollars; at $0.0005/Mtok, half of one,
        // rounded up
        let cached = Usd::parse("0.005").unwrap();
        assert_eq!(Usd::per_mtok_total(cached.per_mtok_times(1)).nanos(), 5);
        let tiny = Usd::parse("0.0005").unwrap();
        assert_eq!(Usd::per_mtok_total(tiny.per_mtok_times(1)).nanos(), 1);
        assert_eq!(Usd::per_mtok_total(0), Usd::ZERO);
    }

    #[test]
    fn decimal_is_exact_and_trimmed() {
        assert_eq!(Usd::parse("0.0105").unwrap().decimal(), "0.0105");
        assert_eq!(Usd::dollars(5).decimal(), "5");
        assert_eq!(Usd::ZERO.decimal(), "0");
        assert_eq!(Usd::from_nanos(1).decimal(), "0.000000001");
        assert_eq!(Usd::parse("1234.5").unwrap().decimal(), "1234.5");
        assert_eq!(Usd::from_nanos(-1_500_000_000).decimal(), "-1.5");
        assert_eq!(Usd::from_nanos(i64::MAX).decimal(), "9223372036.854775807");
        assert_eq!(Usd::from_nanos(i64::MIN).decimal(), "-9223372036.854775808");
    }

    #[test]
    fn shows_dollars_for_people() {
        assert_eq!(Usd::parse("0.0105").unwrap().to_string(), "$0.0105");
        assert_eq!(Usd::dollars(5).to_string(), "$5.00");
        assert_eq!(
            Usd::parse("1234.5678914").unwrap().to_string(),
            "$1,234.567891"
        );
        assert_eq!(Usd::parse("0.0000004").unwrap().to_string(), "$0.00");
        assert_eq!(Usd::from_f64(3e-6 * 1e6).unwrap(), Usd::dollars(3));
        assert_eq!(Usd::from_f64(-1.0), None);
    }
}
