//! How numbers read: thousands separators in text, dollars to the micro-dollar in JSON.

use serde::Serializer;

/// 1234567 → "1,234,567"
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `thousands` for a figure that is whole in meaning but computed as a float (an average).
pub fn thousands_f(x: f64) -> String {
    if x.is_finite() && x.abs() < 9.0e18 {
        thousands(x.round() as i64)
    } else {
        format!("{x:.0}")
    }
}

/// Dollars rounded to 6 decimals (a micro-dollar): a sum of per-request costs is a float with
/// binary noise (0.6084359999999999); no price is finer than a micro-dollar per token.
pub fn round_usd(usd: f64) -> f64 {
    if !usd.is_finite() {
        return usd;
    }
    let rounded = (usd * 1e6).round() / 1e6;
    // never "-0.0" in JSON
    if rounded == 0.0 {
        0.0
    } else {
        rounded
    }
}

/// `#[serde(serialize_with = "usd")]`: a cost as `round_usd` gives it.
pub fn usd<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round_usd(*value))
}

/// `usd` for an optional cost.
pub fn usd_opt<S: Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.serialize_some(&round_usd(*v)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(137_200), "137,200");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
        assert_eq!(thousands(i64::MIN), "-9,223,372,036,854,775,808");
        assert_eq!(thousands_f(149_993.6), "149,994");
    }

    #[test]
    fn dollars_to_the_micro_dollar() {
        assert_eq!(round_usd(0.608_435_999_999_999_9), 0.608436);
        assert_eq!(round_usd(0.000_000_4), 0.0);
        assert_eq!(round_usd(-0.000_000_4).to_string(), "0");
        assert_eq!(round_usd(12.5), 12.5);
        let json = serde_json::to_string(&serde_json::json!(round_usd(0.1 + 0.2))).unwrap();
        assert_eq!(json, "0.3");
    }
}
