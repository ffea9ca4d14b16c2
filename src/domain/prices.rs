//! USD prices per million tokens: a built-in table of current Anthropic and OpenAI models,
//! overridden per model by rows in the database (`tokenctl prices set`).

use serde::Serialize;

/// (model, USD per million input tokens, USD per million output tokens), list prices.
const BUILTIN: &[(&str, f64, f64)] = &[
    ("claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-4-1", 15.0, 75.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4-5", 3.0, 15.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    ("claude-3-7-sonnet", 3.0, 15.0),
    ("claude-3-5-sonnet", 3.0, 15.0),
    ("claude-3-5-haiku", 0.8, 4.0),
    ("claude-3-opus", 15.0, 75.0),
    ("claude-3-sonnet", 3.0, 15.0),
    ("claude-3-haiku", 0.25, 1.25),
    ("gpt-5", 1.25, 10.0),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5-nano", 0.05, 0.4),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4.1-mini", 0.4, 1.6),
    ("gpt-4.1-nano", 0.1, 0.4),
    ("gpt-4o", 2.5, 10.0),
    ("gpt-4o-mini", 0.15, 0.6),
    ("gpt-4-turbo", 10.0, 30.0),
    ("gpt-4-1106-preview", 10.0, 30.0),
    ("gpt-4-0125-preview", 10.0, 30.0),
    ("gpt-4-32k", 60.0, 120.0),
    ("gpt-4", 30.0, 60.0),
    ("gpt-3.5-turbo", 0.5, 1.5),
    ("o1", 15.0, 60.0),
    ("o1-mini", 1.1, 4.4),
    ("o3", 2.0, 8.0),
    ("o3-mini", 1.1, 4.4),
    ("o4-mini", 1.1, 4.4),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PriceSource {
    Builtin,
    Database,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Price {
    pub model: String,
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    pub source: PriceSource,
}

impl Price {
    pub fn cost(&self, tokens_in: i64, tokens_out: i64) -> f64 {
        (tokens_in as f64 * self.input_per_mtok + tokens_out as f64 * self.output_per_mtok)
            / 1_000_000.0
    }
}

#[derive(Debug, Clone)]
pub struct PriceTable {
    prices: Vec<Price>,
}

impl PriceTable {
    /// The built-in table with `overrides` (from the database) replacing or adding models.
    pub fn new(overrides: Vec<Price>) -> PriceTable {
        let mut prices: Vec<Price> = BUILTIN
            .iter()
            .filter(|(m, _, _)| !overrides.iter().any(|o| o.model.eq_ignore_ascii_case(m)))
            .map(|&(m, i, o)| Price {
                model: m.to_string(),
                input_per_mtok: i,
                output_per_mtok: o,
                source: PriceSource::Builtin,
            })
            .collect();
        prices.extend(overrides);
        prices.sort_by(|a, b| a.model.cmp(&b.model));
        PriceTable { prices }
    }

    pub fn all(&self) -> &[Price] {
        &self.prices
    }

    /// The price of `model`: an exact entry, else the longest entry that `model` extends with a
    /// dated or tagged suffix ("claude-sonnet-4-5-20250929" → "claude-sonnet-4-5",
    /// "gpt-4o-2024-08-06" → "gpt-4o"; "gpt-4.5" matches nothing).
    pub fn lookup(&self, model: &str) -> Option<&Price> {
        let wanted = model.trim().to_ascii_lowercase();
        self.prices
            .iter()
            .filter(|p| {
                let key = p.model.to_ascii_lowercase();
                wanted == key
                    || (wanted.starts_with(&key)
                        && matches!(wanted.as_bytes()[key.len()], b'-' | b'@' | b':'))
            })
            .max_by_key(|p| p.model.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_names_find_their_family() {
        let t = PriceTable::new(vec![]);
        assert_eq!(
            t.lookup("claude-sonnet-4-5-20250929").unwrap().model,
            "claude-sonnet-4-5"
        );
        assert_eq!(
            t.lookup("claude-3-5-sonnet-latest").unwrap().model,
            "claude-3-5-sonnet"
        );
        assert_eq!(
            t.lookup("gpt-4o-mini-2024-07-18").unwrap().model,
            "gpt-4o-mini"
        );
        assert_eq!(t.lookup("gpt-4-0613").unwrap().model, "gpt-4");
        assert_eq!(
            t.lookup("gpt-4-turbo-2024-04-09").unwrap().model,
            "gpt-4-turbo"
        );
        assert_eq!(t.lookup("GPT-3.5-Turbo").unwrap().model, "gpt-3.5-turbo");
        assert!(t.lookup("gpt-4.5").is_none());
        assert!(t.lookup("llama-3").is_none());
    }

    #[test]
    fn cost_in_usd() {
        let t = PriceTable::new(vec![]);
        let c = t
            .lookup("claude-3-5-sonnet-20241022")
            .unwrap()
            .cost(1_000, 500);
        assert!((c - 0.0105).abs() < 1e-12, "{c}");
        let g = t.lookup("gpt-4").unwrap().cost(1_000_000, 0);
        assert_eq!(g, 30.0);
    }

    #[test]
    fn database_prices_win() {
        let t = PriceTable::new(vec![Price {
            model: "gpt-4o".into(),
            input_per_mtok: 1.0,
            output_per_mtok: 2.0,
            source: PriceSource::Database,
        }]);
        let p = t.lookup("gpt-4o-2024-08-06").unwrap();
        assert_eq!((p.input_per_mtok, p.source), (1.0, PriceSource::Database));
        assert_eq!(t.all().iter().filter(|p| p.model == "gpt-4o").count(), 1);
    }
}
