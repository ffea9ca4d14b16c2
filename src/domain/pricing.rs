//! USD prices per million tokens, exact to the nano-dollar: a built-in table of Anthropic and
//! OpenAI models, and prices stored in the database, each in force from a date so that a price
//! change never re-prices requests made before it. Cache reads and writes have their own rates
//! where the provider publishes them, and Anthropic's Sonnet 4/4.5 have a dearer tier for
//! prompts over 200k tokens. Also reads LiteLLM's public catalogue of prices.
//!
//! Pure: no clock, no I/O. Floats appear only where a JSON catalogue is read.

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Map, Value};

use super::money::Usd;

/// USD per million tokens. Cache prices None = not known: such tokens are charged at the input
/// price (what providers without a cache discount charge, and never less than a known rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rates {
    #[serde(rename = "input_per_mtok")]
    pub input: Usd,
    #[serde(rename = "output_per_mtok")]
    pub output: Usd,
    #[serde(rename = "cache_read_per_mtok")]
    pub cache_read: Option<Usd>,
    #[serde(rename = "cache_write_per_mtok")]
    pub cache_write: Option<Usd>,
}

impl Rates {
    /// Input and output only; cache tokens then cost as input.
    pub const fn flat(input: Usd, output: Usd) -> Rates {
        Rates {
            input,
            output,
            cache_read: None,
            cache_write: None,
        }
    }

    pub fn cache_read_or_input(&self) -> Usd {
        self.cache_read.unwrap_or(self.input)
    }

    pub fn cache_write_or_input(&self) -> Usd {
        self.cache_write.unwrap_or(self.input)
    }

    /// The most a prompt token can cost, whether it is read fresh, from cache or into cache.
    pub fn dearest_prompt(&self) -> Usd {
        self.input
            .max(self.cache_read_or_input())
            .max(self.cache_write_or_input())
    }

    /// The most any token can cost.
    pub fn dearest_any(&self) -> Usd {
        self.dearest_prompt().max(self.output)
    }

    /// Per rate, the higher of the two; unknown cache rates count as input, so the result has
    /// every rate known.
    pub fn field_max(&self, other: &Rates) -> Rates {
        Rates {
            input: self.input.max(other.input),
            output: self.output.max(other.output),
            cache_read: Some(self.cache_read_or_input().max(other.cache_read_or_input())),
            cache_write: Some(
                self.cache_write_or_input()
                    .max(other.cache_write_or_input()),
            ),
        }
    }

    /// The exact cost of `t` at these rates, rounded up once to the nano-dollar.
    pub fn cost(&self, t: &TokenCounts) -> Usd {
        Usd::per_mtok_total(
            self.input.per_mtok_times(t.input)
                + self.output.per_mtok_times(t.output)
                + self.cache_read_or_input().per_mtok_times(t.cache_read)
                + self.cache_write_or_input().per_mtok_times(t.cache_write),
        )
    }
}

/// A dearer tier for long prompts: a whole request is charged at `rates` when its prompt (input +
/// cache_read + cache_write tokens) exceeds `above_tokens` (Anthropic's >200k tier on Sonnet
/// 4/4.5: every token of such a request costs more, not only those past the threshold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LongContext {
    pub above_tokens: i64,
    pub rates: Rates,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PriceSource {
    Builtin,
    Database,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Price {
    /// The model key: a family name ("claude-sonnet-4-5") or a full dated name.
    pub model: String,
    #[serde(flatten)]
    pub rates: Rates,
    pub long_context: Option<LongContext>,
    /// From which day (UTC) the price applies. None: a built-in price, always; or a stored one
    /// that has applied since before any date.
    pub effective_from: Option<NaiveDate>,
    pub source: PriceSource,
}

/// Tokens of one request by kind. Negative counts are treated as zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
}

impl TokenCounts {
    /// The prompt's tokens, the figure a long-context tier is chosen on.
    pub fn prompt(&self) -> i64 {
        self.input
            .max(0)
            .saturating_add(self.cache_read.max(0))
            .saturating_add(self.cache_write.max(0))
    }
}

impl Price {
    pub fn cost(&self, t: &TokenCounts) -> Usd {
        self.rates_for_prompt(t.prompt()).cost(t)
    }

    pub fn rates_for_prompt(&self, prompt_tokens: i64) -> Rates {
        match self.long_context {
            Some(lc) if prompt_tokens > lc.above_tokens => lc.rates,
            _ => self.rates,
        }
    }

    /// Whether the price has taken effect on `on`.
    pub fn applies_on(&self, on: NaiveDate) -> bool {
        self.effective_from.is_none_or(|from| from <= on)
    }

    /// Of two prices of one model key both in force, which prevails: a stored price over the
    /// built-in one, then the later date. Equal ranks: the later in the table wins.
    fn precedence(&self) -> (bool, Option<NaiveDate>) {
        (self.source == PriceSource::Database, self.effective_from)
    }
}

/// The date the built-in table was last checked against the providers' published prices.
pub const BUILTIN_CHECKED: &str = "2026-11-30";

/// A built-in price as decimal strings, so the table stays exact and readable; parsed when a
/// table is built (a unit test parses every entry).
struct BuiltinRow {
    model: &'static str,
    input: &'static str,
    output: &'static str,
    cache_read: Option<&'static str>,
    cache_write: Option<&'static str>,
    long_context: Option<BuiltinLongContext>,
}

struct BuiltinLongContext {
    above_tokens: i64,
    input: &'static str,
    output: &'static str,
    cache_read: &'static str,
    cache_write: &'static str,
}

/// Anthropic: a 5-minute cache write is 1.25× input, a cache read 0.1× input.
const fn anthropic(
    model: &'static str,
    input: &'static str,
    output: &'static str,
    cache_write: &'static str,
    cache_read: &'static str,
) -> BuiltinRow {
    BuiltinRow {
        model,
        input,
        output,
        cache_read: Some(cache_read),
        cache_write: Some(cache_write),
        long_context: None,
    }
}

/// OpenAI: cached input is read from cache; writing to the cache costs nothing extra, so cache
/// writes (which OpenAI does not report) stay at the input price.
const fn openai(
    model: &'static str,
    input: &'static str,
    output: &'static str,
    cached_input: &'static str,
) -> BuiltinRow {
    BuiltinRow {
        model,
        input,
        output,
        cache_read: Some(cached_input),
        cache_write: None,
        long_context: None,
    }
}

/// A model without published cache prices.
const fn plain(model: &'static str, input: &'static str, output: &'static str) -> BuiltinRow {
    BuiltinRow {
        model,
        input,
        output,
        cache_read: None,
        cache_write: None,
        long_context: None,
    }
}

/// Sonnet 4 and 4.5 with the 1M-token context: a prompt over 200k tokens makes the whole
/// request dearer (input and output, cache rates in proportion).
const SONNET_LONG_CONTEXT: BuiltinLongContext = BuiltinLongContext {
    above_tokens: 200_000,
    input: "6",
    output: "22.50",
    cache_read: "0.60",
    cache_write: "7.50",
};

const fn with_long_context(row: BuiltinRow, long_context: BuiltinLongContext) -> BuiltinRow {
    BuiltinRow {
        long_context: Some(long_context),
        ..row
    }
}

/// List prices in USD per million tokens (standard tier, not batch), checked on
/// [`BUILTIN_CHECKED`]:
///
/// - Anthropic: base input/output prices, 5-minute cache writes (1.25× input), cache hits
///   (0.1× input) and the >200k-token tier of Sonnet 4/4.5 ($6/$22.50, writes $7.50, reads
///   $0.60), as published on Anthropic's pricing page (claude.com/pricing, docs "Pricing" and
///   "Prompt caching"); cross-checked against third-party copies of that table
///   (docs.electronhub.ai/guides/prompt-caching, eonsr.com on the Sonnet 4 1M-context switch).
/// - OpenAI: input, cached input and output prices from platform.openai.com/docs/pricing;
///   cross-checked against third-party copies (deploybase.ai/articles/openai-pricing,
///   nicolalazzari.ai on GPT-5 mini's $0.025 cached input). Some third-party tables disagree on
///   cached input (e.g. GPT-5 at $0.625); the figures below are OpenAI's (10% of input for the
///   GPT-5 family, 25% for GPT-4.1 and o3/o4-mini, 50% for GPT-4o, o1 and o3-mini).
/// - Older OpenAI models (gpt-4-turbo, gpt-4, gpt-3.5-turbo) and Claude 3 Sonnet keep the
///   prices of the previous table, without cache prices.
const BUILTIN: &[BuiltinRow] = &[
    anthropic("claude-opus-4-5", "5", "25", "6.25", "0.50"),
    anthropic("claude-opus-4-1", "15", "75", "18.75", "1.50"),
    anthropic("claude-opus-4", "15", "75", "18.75", "1.50"),
    with_long_context(
        anthropic("claude-sonnet-4-5", "3", "15", "3.75", "0.30"),
        SONNET_LONG_CONTEXT,
    ),
    with_long_context(
        anthropic("claude-sonnet-4", "3", "15", "3.75", "0.30"),
        SONNET_LONG_CONTEXT,
    ),
    anthropic("claude-haiku-4-5", "1", "5", "1.25", "0.10"),
    anthropic("claude-3-7-sonnet", "3", "15", "3.75", "0.30"),
    anthropic("claude-3-5-sonnet", "3", "15", "3.75", "0.30"),
    anthropic("claude-3-5-haiku", "0.80", "4", "1", "0.08"),
    anthropic("claude-3-opus", "15", "75", "18.75", "1.50"),
    plain("claude-3-sonnet", "3", "15"),
    anthropic("claude-3-haiku", "0.25", "1.25", "0.30", "0.03"),
    openai("gpt-5.1", "1.25", "10", "0.125"),
    openai("gpt-5", "1.25", "10", "0.125"),
    openai("gpt-5-mini", "0.25", "2", "0.025"),
    openai("gpt-5-nano", "0.05", "0.40", "0.005"),
    openai("gpt-4.1", "2", "8", "0.50"),
    openai("gpt-4.1-mini", "0.40", "1.60", "0.10"),
    openai("gpt-4.1-nano", "0.10", "0.40", "0.025"),
    openai("gpt-4o", "2.50", "10", "1.25"),
    openai("gpt-4o-mini", "0.15", "0.60", "0.075"),
    openai("o1", "15", "60", "7.50"),
    openai("o1-mini", "1.10", "4.40", "0.55"),
    openai("o3", "2", "8", "0.50"),
    openai("o3-mini", "1.10", "4.40", "0.55"),
    openai("o4-mini", "1.10", "4.40", "0.275"),
    plain("gpt-4-turbo", "10", "30"),
    plain("gpt-4-1106-preview", "10", "30"),
    plain("gpt-4-0125-preview", "10", "30"),
    plain("gpt-4-32k", "60", "120"),
    plain("gpt-4", "30", "60"),
    plain("gpt-3.5-turbo", "0.50", "1.50"),
];

impl BuiltinRow {
    fn price(&self) -> Result<Price, String> {
        let parse = |text: &str| Usd::parse(text).map_err(|e| format!("{}: {e}", self.model));
        let parse_opt = |text: Option<&str>| text.map(parse).transpose();
        let rates = Rates {
            input: parse(self.input)?,
            output: parse(self.output)?,
            cache_read: parse_opt(self.cache_read)?,
            cache_write: parse_opt(self.cache_write)?,
        };
        let long_context = match &self.long_context {
            None => None,
            Some(lc) => Some(LongContext {
                above_tokens: lc.above_tokens,
                rates: Rates {
                    input: parse(lc.input)?,
                    output: parse(lc.output)?,
                    cache_read: Some(parse(lc.cache_read)?),
                    cache_write: Some(parse(lc.cache_write)?),
                },
            }),
        };
        Ok(Price {
            model: self.model.to_string(),
            rates,
            long_context,
            effective_from: None,
            source: PriceSource::Builtin,
        })
    }
}

/// The built-in prices. A row that did not parse is left out (the model is then unpriced and
/// reservations fall back to the dearest rates, never to zero); a unit test keeps that from
/// happening.
pub fn builtin_prices() -> Vec<Price> {
    BUILTIN.iter().filter_map(|row| row.price().ok()).collect()
}

/// What a reservation's bound was priced on.
///
/// Serialized externally tagged in snake_case: `{"model": "claude-sonnet-4-5"}`,
/// `"dearest_no_model"`, `{"dearest_unpriced": "llama-3-70b"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PriceBasis {
    /// The price entry's model key (a family key such as "gpt-4o" for "gpt-4o-2024-08-06").
    Model(String),
    /// No model was given: the dearest rates of any model.
    DearestNoModel,
    /// The model given (as given) has no price: the dearest rates of any model.
    DearestUnpriced(String),
}

/// The most a request can cost, and on what price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReservationPrice {
    pub cost: Usd,
    pub basis: PriceBasis,
}

/// The built-in prices and stored ones, each model key possibly with several stored prices
/// from different dates.
#[derive(Debug, Clone)]
pub struct PriceTable {
    /// Sorted by key, then by precedence (built-in first, then stored by date), so a key's
    /// entries are together and the last applicable one of them prevails.
    prices: Vec<Price>,
    /// `prices[i].model`, trimmed and lower-cased: what names are matched against.
    keys: Vec<String>,
}

fn key_of(model: &str) -> String {
    model.trim().to_ascii_lowercase()
}

/// Whether `wanted` (already a key) is `key` or `key` with a dated or tagged suffix
/// ("gpt-4o-2024-08-06", "claude-3-5-sonnet@20240620", "llama3:70b").
fn names_key(wanted: &str, key: &str) -> bool {
    !key.is_empty()
        && wanted.starts_with(key)
        && (wanted.len() == key.len()
            || matches!(wanted.as_bytes().get(key.len()), Some(b'-' | b'@' | b':')))
}

impl PriceTable {
    /// The built-in table plus `stored` (database) prices; a model may have several stored prices
    /// with different `effective_from` dates. Built-in prices stay in the table even where a
    /// stored one replaces them, for the days before the stored one took effect.
    pub fn new(stored: Vec<Price>) -> PriceTable {
        let mut entries: Vec<(String, Price)> = builtin_prices()
            .into_iter()
            .chain(stored)
            .map(|p| (key_of(&p.model), p))
            .collect();
        // stable: equal ranks keep their given order, so the later given prevails
        entries.sort_by(|(ka, a), (kb, b)| {
            ka.cmp(kb).then_with(|| a.precedence().cmp(&b.precedence()))
        });
        let (keys, prices) = entries.into_iter().unzip();
        PriceTable { prices, keys }
    }

    /// Every price, built-in and stored, in force or not, by model key then precedence.
    pub fn all(&self) -> &[Price] {
        &self.prices
    }

    /// The price of `model` on `on`: an exact key, else the longest key that `model` extends
    /// with a dated or tagged suffix ("claude-sonnet-4-5-20250929" → "claude-sonnet-4-5",
    /// "gpt-4o-2024-08-06" → "gpt-4o"; "gpt-4.5" matches nothing), case-insensitively. Of that
    /// key's prices, the stored one latest in effect on `on`, else the built-in one: a price
    /// dated after `on` does not apply, so a request keeps the price it had. A key with no price
    /// in effect yet does not match, and a shorter family key may.
    pub fn lookup(&self, model: &str, on: NaiveDate) -> Option<&Price> {
        let wanted = key_of(model);
        self.prices
            .iter()
            .zip(&self.keys)
            .filter(|(p, key)| names_key(&wanted, key) && p.applies_on(on))
            // `max_by_key` keeps the last of equals: within a key, the last applicable prevails
            .max_by_key(|(_, key)| key.len())
            .map(|(p, _)| p)
    }

    /// One price per model key, the one in force on `on`, by key.
    pub fn in_force(&self, on: NaiveDate) -> Vec<&Price> {
        let mut out: Vec<&Price> = Vec::new();
        let mut last_key: Option<&str> = None;
        for (p, key) in self.prices.iter().zip(&self.keys) {
            if !p.applies_on(on) {
                continue;
            }
            if last_key == Some(key.as_str()) {
                // a later entry of the same key prevails
                if let Some(slot) = out.last_mut() {
                    *slot = p;
                }
            } else {
                out.push(p);
                last_key = Some(key.as_str());
            }
        }
        out
    }

    /// Stored prices that take effect after `on`, by key then date.
    pub fn scheduled(&self, on: NaiveDate) -> Vec<&Price> {
        self.prices
            .iter()
            .filter(|p| p.source == PriceSource::Database && !p.applies_on(on))
            .collect()
    }

    /// Per rate, the highest in force on `on` over all models, long-context rates included: no
    /// token of any priced request costs more. Unknown cache rates count as input.
    pub fn dearest(&self, on: NaiveDate) -> Rates {
        let zero = Rates {
            input: Usd::ZERO,
            output: Usd::ZERO,
            cache_read: Some(Usd::ZERO),
            cache_write: Some(Usd::ZERO),
        };
        self.in_force(on).iter().fold(zero, |acc, p| {
            let acc = acc.field_max(&p.rates);
            match &p.long_context {
                Some(lc) => acc.field_max(&lc.rates),
                None => acc,
            }
        })
    }

    /// An upper bound on what a request of `estimated_tokens` (prompt and output together) can
    /// cost however its tokens turn out split between input, output and cache, so a reservation
    /// never under-holds. Priced on `model`'s price in force on `on`, else on the dearest rates
    /// of any model.
    ///
    /// With a known prompt of `prompt_tokens` (capped to the estimate), the request's prompt is
    /// at least that and its output at most the rest; unknown, the prompt may be anything up to
    /// the estimate. The cost of a split is linear in the prompt's size within a tier, so the
    /// bound is the largest, over each tier the prompt can fall in (base, or long-context when
    /// the prompt can exceed its threshold), of the prompt's extremes in that tier priced at the
    /// dearest prompt rate and the remaining tokens at the output rate.
    pub fn reservation_bound(
        &self,
        model: Option<&str>,
        prompt_tokens: Option<i64>,
        estimated_tokens: i64,
        on: NaiveDate,
    ) -> ReservationPrice {
        let estimated = estimated_tokens.max(0);
        let least_prompt = prompt_tokens.unwrap_or(0).clamp(0, estimated);
        let priced = model.and_then(|m| self.lookup(m, on).map(|p| (m, p)));
        let (cost, basis) = match (model, priced) {
            (_, Some((_, price))) => (
                bound_for_price(price, least_prompt, estimated),
                PriceBasis::Model(price.model.clone()),
            ),
            (Some(m), None) => (
                bound_at(&self.dearest(on), least_prompt, estimated, estimated),
                PriceBasis::DearestUnpriced(m.to_string()),
            ),
            (None, None) => (
                bound_at(&self.dearest(on), least_prompt, estimated, estimated),
                PriceBasis::DearestNoModel,
            ),
        };
        ReservationPrice { cost, basis }
    }
}

/// The most `estimated` tokens can cost at `price` when the prompt is `least_prompt` tokens or
/// more, over both tiers the prompt can fall in.
fn bound_for_price(price: &Price, least_prompt: i64, estimated: i64) -> Usd {
    match price.long_context {
        None => bound_at(&price.rates, least_prompt, estimated, estimated),
        Some(lc) => {
            let threshold = lc.above_tokens.max(0);
            // base tier: prompts in [least_prompt, min(estimated, threshold)]
            let base = (least_prompt <= threshold).then(|| {
                bound_at(
                    &price.rates,
                    least_prompt,
                    estimated.min(threshold),
                    estimated,
                )
            });
            // long tier: prompts in [max(least_prompt, threshold + 1), estimated]
            let long_least = least_prompt.max(threshold.saturating_add(1));
            let long = (long_least <= estimated)
                .then(|| bound_at(&lc.rates, long_least, estimated, estimated));
            base.max(long).unwrap_or(Usd::ZERO)
        }
    }
}

/// The most `estimated` tokens can cost at `rates` when the prompt is between `least_prompt`
/// and `most_prompt` tokens and the rest is output: a linear function of the prompt's size, so
/// the larger of its two ends.
fn bound_at(rates: &Rates, least_prompt: i64, most_prompt: i64, estimated: i64) -> Usd {
    let at = |prompt: i64| {
        Usd::per_mtok_total(
            rates.dearest_prompt().per_mtok_times(prompt)
                + rates
                    .output
                    .per_mtok_times(estimated.saturating_sub(prompt)),
        )
    };
    at(least_prompt).max(at(most_prompt))
}

/// A price read from a catalogue, not yet dated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CataloguePrice {
    pub model: String,
    pub rates: Rates,
    pub long_context: Option<LongContext>,
}

impl CataloguePrice {
    /// As a stored price taking effect on `effective_from`.
    pub fn to_price(&self, effective_from: Option<NaiveDate>) -> Price {
        Price {
            model: self.model.clone(),
            rates: self.rates,
            long_context: self.long_context,
            effective_from,
            source: PriceSource::Database,
        }
    }
}

/// A catalogue entry left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub model: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Catalogue {
    /// By model.
    pub prices: Vec<CataloguePrice>,
    /// By model.
    pub skipped: Vec<Skipped>,
}

/// LiteLLM's threshold for its `*_above_200k_tokens` prices.
const LITELLM_LONG_CONTEXT_ABOVE: i64 = 200_000;

/// Modes of text generation, the only ones priced per input and output token.
const LITELLM_TEXT_MODES: &[&str] = &["chat", "completion", "responses"];

/// Reads LiteLLM's `model_prices_and_context_window.json`: model name → prices in USD per
/// token. Entries that are not text models with input and output prices are skipped with a
/// reason, as are those of providers not in `providers` (unless it is empty). Errs only when
/// the text is not a JSON object.
pub fn parse_litellm(json: &str, providers: &[String]) -> Result<Catalogue, String> {
    let top: Value =
        serde_json::from_str(json).map_err(|e| format!("the catalogue is not valid JSON: {e}"))?;
    let Value::Object(entries) = top else {
        return Err(format!(
            "the catalogue should be a JSON object of model names, got {}",
            json_kind(&top)
        ));
    };
    let mut prices = Vec::new();
    let mut skipped = Vec::new();
    for (model, entry) in &entries {
        match litellm_entry(model, entry, providers) {
            Ok(price) => prices.push(price),
            Err(reason) => skipped.push(Skipped {
                model: model.clone(),
                reason,
            }),
        }
    }
    prices.sort_by(|a, b| a.model.cmp(&b.model));
    skipped.sort_by(|a, b| a.model.cmp(&b.model));
    Ok(Catalogue { prices, skipped })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn litellm_entry(
    model: &str,
    entry: &Value,
    providers: &[String],
) -> Result<CataloguePrice, String> {
    if model == "sample_spec" {
        return Err("LiteLLM's description of the format, not a model".into());
    }
    let Value::Object(fields) = entry else {
        return Err(format!("{} instead of an object", json_kind(entry)));
    };
    match fields.get("mode") {
        None | Some(Value::Null) => {}
        Some(Value::String(mode)) if LITELLM_TEXT_MODES.contains(&mode.as_str()) => {}
        Some(Value::String(mode)) => {
            return Err(format!(
                "mode '{mode}' is not chat, completion or responses"
            ))
        }
        Some(other) => return Err(format!("mode is {} instead of a string", json_kind(other))),
    }
    if !providers.is_empty() {
        match fields.get("litellm_provider") {
            Some(Value::String(p)) if providers.iter().any(|w| w.eq_ignore_ascii_case(p)) => {}
            Some(Value::String(p)) => return Err(format!("provider '{p}' not selected")),
            _ => return Err("no litellm_provider".into()),
        }
    }
    let rate = |field: &str| per_mtok(fields, field);
    let required = |field: &str| rate(field)?.ok_or_else(|| format!("no {field}"));
    let rates = Rates {
        input: required("input_cost_per_token")?,
        output: required("output_cost_per_token")?,
        cache_read: rate("cache_read_input_token_cost")?,
        cache_write: rate("cache_creation_input_token_cost")?,
    };
    let long_input = rate("input_cost_per_token_above_200k_tokens")?;
    let long_output = rate("output_cost_per_token_above_200k_tokens")?;
    let long_cache_read = rate("cache_read_input_token_cost_above_200k_tokens")?;
    let long_cache_write = rate("cache_creation_input_token_cost_above_200k_tokens")?;
    let long_context = (long_input.is_some() || long_output.is_some()).then(|| LongContext {
        above_tokens: LITELLM_LONG_CONTEXT_ABOVE,
        // a rate the catalogue leaves out of the tier is taken to be unchanged
        rates: Rates {
            input: long_input.unwrap_or(rates.input),
            output: long_output.unwrap_or(rates.output),
            cache_read: long_cache_read.or(rates.cache_read),
            cache_write: long_cache_write.or(rates.cache_write),
        },
    });
    Ok(CataloguePrice {
        model: model.to_string(),
        rates,
        long_context,
    })
}

/// A USD-per-token field as USD per million tokens: None when absent or null, Err when not a
/// usable price.
fn per_mtok(fields: &Map<String, Value>, field: &str) -> Result<Option<Usd>, String> {
    let per_token = match fields.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(other) => {
            return Err(format!(
                "{field} is {} instead of a number",
                json_kind(other)
            ))
        }
    };
    // per token × 1e6, to the nearest nano-dollar: the float's error (around 1e-16 of the
    // figure) is far below a nano-dollar per million tokens, so 3e-06 becomes exactly $3
    per_token
        .filter(|usd| usd.is_finite() && *usd >= 0.0)
        .and_then(|usd| Usd::from_f64(usd * 1e6))
        .map(Some)
        .ok_or_else(|| format!("{field} is not a price (negative, or too large)"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn usd(text: &str) -> Usd {
        Usd::parse(text).unwrap()
    }

    fn today() -> NaiveDate {
        day("2026-06-15")
    }

    fn tokens(input: i64, output: i64, cache_read: i64, cache_write: i64) -> TokenCounts {
        TokenCounts {
            input,
            output,
            cache_read,
            cache_write,
        }
    }

    fn stored(model: &str, input: &str, output: &str, from: Option<&str>) -> Price {
        Price {
            model: model.into(),
            rates: Rates::flat(usd(input), usd(output)),
            long_context: None,
            effective_from: from.map(day),
            source: PriceSource::Database,
        }
    }

    #[test]
    fn every_builtin_row_parses_once() {
        for row in BUILTIN {
            assert!(row.price().is_ok(), "{}: {:?}", row.model, row.price());
        }
        let prices = builtin_prices();
        assert_eq!(prices.len(), BUILTIN.len());
        let mut keys: Vec<String> = prices.iter().map(|p| key_of(&p.model)).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), prices.len(), "a model is listed twice");
        assert!(prices
            .iter()
            .all(|p| p.effective_from.is_none() && p.source == PriceSource::Builtin));
        assert_eq!(day(BUILTIN_CHECKED), day("2026-11-30"));
    }

    #[test]
    fn anthropic_cache_prices_follow_the_published_multipliers() {
        let check = |model: &str, r: &Rates| {
            let input = r.input.nanos();
            assert_eq!(r.cache_write.unwrap().nanos(), input * 5 / 4, "{model}");
            assert_eq!(r.cache_read.unwrap().nanos(), input / 10, "{model}");
        };
        for p in builtin_prices() {
            // Claude 3 Haiku's are rounded on the price list ($0.30 and $0.03); Claude 3 Sonnet
            // never had cache prices
            if !p.model.starts_with("claude-") || p.model == "claude-3-sonnet" {
                continue;
            }
            if p.model == "claude-3-haiku" {
                assert_eq!(p.rates.cache_write, Some(usd("0.30")));
                assert_eq!(p.rates.cache_read, Some(usd("0.03")));
                continue;
            }
            check(&p.model, &p.rates);
            if let Some(lc) = p.long_context {
                check(&p.model, &lc.rates);
                assert_eq!(lc.rates.input.nanos(), 2 * p.rates.input.nanos());
                assert_eq!(lc.rates.output.nanos(), p.rates.output.nanos() * 3 / 2);
            }
        }
        let t = PriceTable::new(vec![]);
        let sonnet = t.lookup("claude-sonnet-4", today()).unwrap();
        assert_eq!(sonnet.long_context.unwrap().above_tokens, 200_000);
        assert!(t
            .lookup("claude-opus-4-5", today())
            .unwrap()
            .long_context
            .is_none());
    }

    #[test]
    fn openai_prices_have_cached_input_only() {
        let t = PriceTable::new(vec![]);
        let p = t.lookup("gpt-5-nano-2025-08-07", today()).unwrap();
        assert_eq!(
            p.rates,
            Rates {
                input: usd("0.05"),
                output: usd("0.40"),
                cache_read: Some(usd("0.005")),
                cache_write: None
            }
        );
        for (model, cached) in [
            ("gpt-5.1-2025-11-13", "0.125"),
            ("gpt-5", "0.125"),
            ("gpt-5-mini", "0.025"),
            ("gpt-4.1", "0.50"),
            ("gpt-4.1-mini", "0.10"),
            ("gpt-4.1-nano", "0.025"),
            ("gpt-4o", "1.25"),
            ("gpt-4o-mini", "0.075"),
            ("o3", "0.50"),
            ("o4-mini", "0.275"),
            ("o3-mini", "0.55"),
            ("o1", "7.50"),
            ("o1-mini", "0.55"),
        ] {
            let p = t.lookup(model, today()).unwrap();
            assert_eq!(p.rates.cache_read, Some(usd(cached)), "{model}");
            assert_eq!(p.rates.cache_write, None, "{model}");
        }
        assert_eq!(t.lookup("gpt-5.1", today()).unwrap().model, "gpt-5.1");
    }

    #[test]
    fn dated_names_find_their_family() {
        let t = PriceTable::new(vec![]);
        let on = today();
        let key = |model: &str| t.lookup(model, on).map(|p| p.model.as_str());
        assert_eq!(key("claude-sonnet-4-5-20250929"), Some("claude-sonnet-4-5"));
        assert_eq!(key("claude-sonnet-4-20250514"), Some("claude-sonnet-4"));
        assert_eq!(key("claude-opus-4-1-20250805"), Some("claude-opus-4-1"));
        assert_eq!(key("claude-3-5-sonnet-latest"), Some("claude-3-5-sonnet"));
        assert_eq!(key("claude-3-5-sonnet@20240620"), Some("claude-3-5-sonnet"));
        assert_eq!(key("gpt-4o-mini-2024-07-18"), Some("gpt-4o-mini"));
        assert_eq!(key("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(key("gpt-4-0613"), Some("gpt-4"));
        assert_eq!(key("gpt-4-turbo-2024-04-09"), Some("gpt-4-turbo"));
        assert_eq!(key("GPT-3.5-Turbo"), Some("gpt-3.5-turbo"));
        assert_eq!(key("  gpt-4o  "), Some("gpt-4o"));
        assert_eq!(key("gpt-4.5"), None);
        assert_eq!(key("gpt-4o2"), None);
        assert_eq!(key("llama-3"), None);
        assert_eq!(key(""), None);
        assert_eq!(key("-"), None);
        assert_eq!(key("é-gpt-4o"), None);
    }

    #[test]
    fn cost_in_usd() {
        let t = PriceTable::new(vec![]);
        let on = today();
        let c = t
            .lookup("claude-3-5-sonnet-20241022", on)
            .unwrap()
            .cost(&tokens(1_000, 500, 0, 0));
        assert_eq!(c, usd("0.0105"));
        let g = t
            .lookup("gpt-4", on)
            .unwrap()
            .cost(&tokens(1_000_000, 0, 0, 0));
        assert_eq!(g, Usd::dollars(30));
    }

    #[test]
    fn cache_tokens_cost_their_own_rate_or_the_input_rate() {
        let t = PriceTable::new(vec![]);
        let on = today();
        // 1000×$3 + 1000×$15 + 10000×$0.30 + 2000×$3.75 = $28,500 per million tokens
        let sonnet = t.lookup("claude-sonnet-4-5", on).unwrap();
        assert_eq!(
            sonnet.cost(&tokens(1_000, 1_000, 10_000, 2_000)),
            usd("0.0285")
        );
        // no cache write price: 1000×$2.50 + 1000×$10 + 10000×$1.25 + 2000×$2.50 = $30,000
        let gpt = t.lookup("gpt-4o", on).unwrap();
        assert_eq!(gpt.cost(&tokens(1_000, 1_000, 10_000, 2_000)), usd("0.03"));
        // no cache prices at all: everything on the prompt side at $30
        let old = t.lookup("gpt-4", on).unwrap();
        assert_eq!(old.cost(&tokens(1, 0, 1, 1)), usd("0.00009"));
        assert_eq!(old.cost(&tokens(-5, -5, -5, -5)), Usd::ZERO);
        assert_eq!(old.cost(&TokenCounts::default()), Usd::ZERO);
    }

    #[test]
    fn a_cost_is_rounded_up_once() {
        let nano = Rates {
            input: usd("0.000000001"),
            output: usd("0.000000001"),
            cache_read: Some(usd("0.000000001")),
            cache_write: Some(usd("0.000000001")),
        };
        // four thousandths of a millionth of a nano-dollar: one nano-dollar, not four
        assert_eq!(nano.cost(&tokens(1, 1, 1, 1)).nanos(), 1);
        let nano_cached = usd("0.005");
        assert_eq!(
            Rates {
                cache_read: Some(nano_cached),
                ..nano
            }
            .cost(&tokens(0, 0, 1, 0))
            .nanos(),
            5
        );
    }

    #[test]
    fn a_long_prompt_makes_the_whole_request_dearer() {
        let t = PriceTable::new(vec![]);
        let sonnet = t.lookup("claude-sonnet-4-5-20250929", today()).unwrap();
        let base = sonnet.rates;
        let long = sonnet.long_context.unwrap().rates;
        assert_eq!(sonnet.rates_for_prompt(200_000), base);
        assert_eq!(sonnet.rates_for_prompt(200_001), long);
        assert_eq!(
            long,
            Rates {
                input: usd("6"),
                output: usd("22.50"),
                cache_read: Some(usd("0.60")),
                cache_write: Some(usd("7.50"))
            }
        );
        // at the threshold: 200000×$3 + 1000×$15
        assert_eq!(sonnet.cost(&tokens(200_000, 1_000, 0, 0)), usd("0.615"));
        // one past it, cache reads counted in the prompt: 150000×$6 + 50001×$0.60 + 1000×$22.50
        assert_eq!(
            sonnet.cost(&tokens(150_000, 1_000, 50_001, 0)),
            usd("0.9525006")
        );
        // output does not count towards the threshold
        assert_eq!(sonnet.cost(&tokens(1, 300_000, 0, 0)), usd("4.500003"));
        let haiku = t.lookup("claude-haiku-4-5", today()).unwrap();
        assert_eq!(haiku.rates_for_prompt(i64::MAX), haiku.rates);
    }

    #[test]
    fn stored_prices_take_effect_on_their_date() {
        let t = PriceTable::new(vec![
            stored("gpt-4o", "0.50", "1", Some("2026-03-01")),
            stored("gpt-4o", "1", "2", Some("2026-01-01")),
            stored("gpt-4o", "9", "9", Some("2027-01-01")),
        ]);
        let input_on = |model: &str, on: &str| t.lookup(model, day(on)).unwrap().rates.input;
        assert_eq!(input_on("gpt-4o", "2025-12-31"), usd("2.50"));
        assert_eq!(
            t.lookup("gpt-4o", day("2025-12-31")).unwrap().source,
            PriceSource::Builtin
        );
        assert_eq!(input_on("gpt-4o", "2026-01-01"), usd("1"));
        assert_eq!(input_on("gpt-4o-2024-08-06", "2026-02-28"), usd("1"));
        assert_eq!(input_on("gpt-4o", "2026-03-01"), usd("0.50"));
        assert_eq!(input_on("gpt-4o", "2026-12-31"), usd("0.50"));
        assert_eq!(input_on("gpt-4o", "2027-01-01"), usd("9"));
        assert_eq!(input_on("gpt-4o-mini", "2026-06-01"), usd("0.15"));

        // the built-in price and all three stored ones are kept
        let gpt4o: Vec<_> = t.all().iter().filter(|p| p.model == "gpt-4o").collect();
        assert_eq!(gpt4o.len(), 4);
        assert_eq!(gpt4o[0].source, PriceSource::Builtin);
        assert_eq!(t.all().len(), BUILTIN.len() + 3);

        let scheduled = t.scheduled(day("2026-06-15"));
        assert_eq!(scheduled.len(), 1);
        assert_eq!(scheduled[0].effective_from, Some(day("2027-01-01")));
        assert_eq!(t.scheduled(day("2025-01-01")).len(), 3);
        assert!(t.scheduled(day("2027-01-01")).is_empty());

        let in_force = t.in_force(day("2026-06-15"));
        assert_eq!(in_force.len(), BUILTIN.len());
        let gpt4o = in_force.iter().find(|p| p.model == "gpt-4o").unwrap();
        assert_eq!(gpt4o.rates.input, usd("0.50"));
    }

    #[test]
    fn a_key_priced_only_in_the_future_does_not_match_yet() {
        let t = PriceTable::new(vec![
            stored("claude-sonnet-4-5-20250929", "1", "1", Some("2026-06-01")),
            stored("llama-3", "0.10", "0.20", Some("2026-06-01")),
        ]);
        let before = day("2026-05-31");
        let after = day("2026-06-01");
        let key = |model: &str, on| t.lookup(model, on).map(|p| p.model.as_str());
        assert_eq!(
            key("claude-sonnet-4-5-20250929", before),
            Some("claude-sonnet-4-5")
        );
        assert_eq!(
            key("claude-sonnet-4-5-20250929", after),
            Some("claude-sonnet-4-5-20250929")
        );
        assert_eq!(key("llama-3", before), None);
        assert_eq!(key("llama-3-70b", after), Some("llama-3"));
        assert!(!t.in_force(before).iter().any(|p| p.model == "llama-3"));
        assert!(t.in_force(after).iter().any(|p| p.model == "llama-3"));
    }

    #[test]
    fn database_prices_win() {
        let t = PriceTable::new(vec![stored("GPT-4o", "1", "2", None)]);
        let p = t.lookup("gpt-4o-2024-08-06", today()).unwrap();
        assert_eq!((p.rates.input, p.source), (usd("1"), PriceSource::Database));
        assert_eq!(p.model, "GPT-4o");
        // undated stored prices apply on any day, before dated ones take over
        let t = PriceTable::new(vec![
            stored("gpt-4o", "1", "2", None),
            stored("gpt-4o", "3", "4", Some("2026-01-01")),
        ]);
        assert_eq!(
            t.lookup("gpt-4o", day("2000-01-01")).unwrap().rates.input,
            usd("1")
        );
        assert_eq!(t.lookup("gpt-4o", today()).unwrap().rates.input, usd("3"));
        // two stored prices of a key from the same day: the later given wins
        let t = PriceTable::new(vec![
            stored("gpt-4o", "1", "2", Some("2026-01-01")),
            stored("gpt-4o", "5", "6", Some("2026-01-01")),
        ]);
        assert_eq!(t.lookup("gpt-4o", today()).unwrap().rates.input, usd("5"));
        let in_force = t.in_force(today());
        assert_eq!(
            in_force
                .iter()
                .find(|p| p.model == "gpt-4o")
                .unwrap()
                .rates
                .input,
            usd("5")
        );
    }

    #[test]
    fn in_force_is_one_price_per_model_by_model() {
        let t = PriceTable::new(vec![
            stored("aaa-model", "1", "1", None),
            stored("zzz-model", "1", "1", Some("2026-01-01")),
        ]);
        let models: Vec<&str> = t
            .in_force(today())
            .iter()
            .map(|p| p.model.as_str())
            .collect();
        assert_eq!(models.len(), BUILTIN.len() + 2);
        assert_eq!(models.first(), Some(&"aaa-model"));
        assert_eq!(models.last(), Some(&"zzz-model"));
        let mut sorted = models.clone();
        sorted.sort();
        assert_eq!(models, sorted);
        assert_eq!(t.in_force(day("2025-01-01")).len(), BUILTIN.len() + 1);
    }

    #[test]
    fn dearest_is_per_rate_over_prices_in_force() {
        let t = PriceTable::new(vec![]);
        // gpt-4-32k at $60/$120 without cache prices tops every rate of the built-in table
        let all60 = Rates {
            input: usd("60"),
            output: usd("120"),
            cache_read: Some(usd("60")),
            cache_write: Some(usd("60")),
        };
        assert_eq!(t.dearest(today()), all60);

        let mut long = stored("big-context", "1", "1", None);
        long.long_context = Some(LongContext {
            above_tokens: 1_000,
            rates: Rates {
                input: usd("100"),
                output: usd("200"),
                cache_read: Some(usd("50")),
                cache_write: Some(usd("300")),
            },
        });
        let t = PriceTable::new(vec![
            long,
            stored("future", "1000", "1000", Some("2099-01-01")),
        ]);
        assert_eq!(
            t.dearest(today()),
            Rates {
                input: usd("100"),
                output: usd("200"),
                cache_read: Some(usd("60")),
                cache_write: Some(usd("300")),
            }
        );
        assert_eq!(t.dearest(day("2099-01-01")).input, usd("1000"));
    }

    #[test]
    fn reservation_bounds_by_hand() {
        let t = PriceTable::new(vec![]);
        let on = today();
        let bound = |model: Option<&str>, prompt: Option<i64>, estimated: i64| {
            t.reservation_bound(model, prompt, estimated, on)
        };
        // Haiku 4.5, prompt 1000 of 3000: 1000 at the $1.25 cache write + 2000 at $5
        let r = bound(Some("claude-haiku-4-5-20251001"), Some(1_000), 3_000);
        assert_eq!(r.cost, usd("0.01125"));
        assert_eq!(r.basis, PriceBasis::Model("claude-haiku-4-5".into()));
        // prompt unknown: all 3000 could be output
        let r = bound(Some("claude-haiku-4-5"), None, 3_000);
        assert_eq!(r.cost, usd("0.015"));
        // a prompt over the estimate is capped to it: 1000 at $1.25
        let r = bound(Some("claude-haiku-4-5"), Some(5_000), 1_000);
        assert_eq!(r.cost, usd("0.00125"));
        // no model: 1000 tokens at the dearest rate of all, $120
        let r = bound(None, None, 1_000);
        assert_eq!((r.cost, r.basis), (usd("0.12"), PriceBasis::DearestNoModel));
        let r = bound(Some("llama-3-70b"), Some(100), 1_000);
        // 100 at $60 + 900 at $120
        assert_eq!(r.cost, usd("0.114"));
        assert_eq!(r.basis, PriceBasis::DearestUnpriced("llama-3-70b".into()));
        // nothing to reserve
        assert_eq!(bound(Some("gpt-4o"), None, 0).cost, Usd::ZERO);
        assert_eq!(bound(Some("gpt-4o"), Some(-3), -5).cost, Usd::ZERO);
        // no overflow, no panic
        assert!(bound(None, None, i64::MAX).cost > Usd::ZERO);
        assert!(bound(Some("claude-sonnet-4"), Some(i64::MAX), i64::MAX).cost > Usd::ZERO);
    }

    #[test]
    fn reservation_bounds_across_the_long_context_threshold() {
        let t = PriceTable::new(vec![]);
        let on = today();
        let sonnet = Some("claude-sonnet-4-5");
        // prompt 150k of 250k: it may end up anywhere from 150k to 250k. Dearest: one past the
        // threshold, 200001 at the $7.50 long-context cache write + 49999 at $22.50
        let r = t.reservation_bound(sonnet, Some(150_000), 250_000, on);
        assert_eq!(r.cost, usd("2.624985"));
        // prompt already past it: 250000 at $7.50 + 10000 at $22.50
        let r = t.reservation_bound(sonnet, Some(250_000), 260_000, on);
        assert_eq!(r.cost, usd("2.10"));
        // everything under the threshold: base rates only, 1000 at $3.75 + 9000 at $15
        let r = t.reservation_bound(sonnet, Some(1_000), 10_000, on);
        assert_eq!(r.cost, usd("0.13875"));
    }

    /// xorshift: a reproducible stream of numbers for the property test.
    struct Numbers(u64);

    impl Numbers {
        fn below(&mut self, bound: i64) -> i64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            if bound <= 0 {
                0
            } else {
                (self.0 % bound as u64) as i64
            }
        }
    }

    /// Splits of `estimated` tokens whose prompt is at least `least_prompt`: random ones, and
    /// those with all of the prompt in one kind at the two ends.
    fn splits(numbers: &mut Numbers, least_prompt: i64, estimated: i64) -> Vec<TokenCounts> {
        let mut out = Vec::new();
        for output in [0, estimated - least_prompt] {
            let prompt = estimated - output;
            out.push(tokens(prompt, output, 0, 0));
            out.push(tokens(0, output, prompt, 0));
            out.push(tokens(0, output, 0, prompt));
        }
        for _ in 0..200 {
            let output = numbers.below(estimated - least_prompt + 1);
            let prompt = estimated - output;
            let input = numbers.below(prompt + 1);
            let cache_read = numbers.below(prompt - input + 1);
            out.push(tokens(
                input,
                output,
                cache_read,
                prompt - input - cache_read,
            ));
        }
        out
    }

    #[test]
    fn a_reservation_bound_covers_every_split_of_its_tokens() {
        let mut odd = stored("odd-model", "1", "0.50", None);
        // cache writes dearer than output, long-context tier cheaper on output
        odd.rates.cache_write = Some(usd("4"));
        odd.long_context = Some(LongContext {
            above_tokens: 1_000,
            rates: Rates {
                input: usd("2"),
                output: usd("0.25"),
                cache_read: None,
                cache_write: Some(usd("8")),
            },
        });
        let t = PriceTable::new(vec![odd]);
        let on = today();
        let mut numbers = Numbers(0x9e37_79b9_7f4a_7c15);
        let models = [
            Some("claude-sonnet-4-5-20250929"),
            Some("claude-haiku-4-5"),
            Some("gpt-4o"),
            Some("gpt-4"),
            Some("odd-model"),
            Some("unpriced-model"),
            None,
        ];
        let estimates = [
            0, 1, 999, 1_000, 1_001, 5_000, 199_999, 200_000, 200_001, 250_000,
        ];
        for model in models {
            // a model-less or unpriced bound must cover whichever model the request is for
            let charged: Vec<&Price> = match model.and_then(|m| t.lookup(m, on)) {
                Some(p) => vec![p],
                None => t.in_force(on),
            };
            for estimated in estimates {
                let prompts = [
                    None,
                    Some(0),
                    Some(1),
                    Some(estimated / 2),
                    Some(999),
                    Some(1_001),
                    Some(199_999),
                    Some(200_001),
                    Some(estimated),
                ];
                for prompt in prompts {
                    let bound = t.reservation_bound(model, prompt, estimated, on).cost;
                    let least_prompt = prompt.unwrap_or(0).clamp(0, estimated);
                    for split in splits(&mut numbers, least_prompt, estimated) {
                        for price in &charged {
                            let cost = price.cost(&split);
                            assert!(
                                cost <= bound,
                                "{model:?} prompt {prompt:?} of {estimated}: {split:?} costs \
                                 {cost} at {}, over the bound {bound}",
                                price.model
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn prices_serialize_flat_with_rates_per_mtok() {
        let t = PriceTable::new(vec![stored("llama-3", "0.10", "0.20", Some("2026-01-01"))]);
        let gpt = t.lookup("gpt-4o", today()).unwrap();
        assert_eq!(
            serde_json::to_value(gpt).unwrap(),
            json!({
                "model": "gpt-4o",
                "input_per_mtok": 2.5,
                "output_per_mtok": 10.0,
                "cache_read_per_mtok": 1.25,
                "cache_write_per_mtok": null,
                "long_context": null,
                "effective_from": null,
                "source": "builtin"
            })
        );
        let llama = t.lookup("llama-3", today()).unwrap();
        let v = serde_json::to_value(llama).unwrap();
        assert_eq!(v["effective_from"], json!("2026-01-01"));
        assert_eq!(v["source"], json!("database"));
        let sonnet = t.lookup("claude-sonnet-4", today()).unwrap();
        let v = serde_json::to_value(sonnet).unwrap();
        assert_eq!(v["long_context"]["above_tokens"], json!(200_000));
        assert_eq!(v["long_context"]["rates"]["output_per_mtok"], json!(22.5));
    }

    #[test]
    fn price_bases_serialize_in_snake_case() {
        let v = |b: PriceBasis| serde_json::to_value(b).unwrap();
        assert_eq!(
            v(PriceBasis::Model("gpt-4o".into())),
            json!({"model": "gpt-4o"})
        );
        assert_eq!(v(PriceBasis::DearestNoModel), json!("dearest_no_model"));
        assert_eq!(
            v(PriceBasis::DearestUnpriced("llama".into())),
            json!({"dearest_unpriced": "llama"})
        );
        let r = ReservationPrice {
            cost: usd("0.5"),
            basis: PriceBasis::DearestNoModel,
        };
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            json!({"cost": 0.5, "basis": "dearest_no_model"})
        );
    }

    const FIXTURE: &str = include_str!("../../tests/fixtures/litellm_prices.json");

    fn providers(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reads_the_litellm_fixture() {
        let c = parse_litellm(FIXTURE, &providers(&["anthropic", "openai"])).unwrap();
        let models: Vec<&str> = c.prices.iter().map(|p| p.model.as_str()).collect();
        assert_eq!(
            models,
            [
                "claude-haiku-4-5-20251001",
                "claude-opus-4-5-20251101",
                "claude-sonnet-4-5-20250929",
                "gpt-4o-mini",
                "gpt-5"
            ]
        );
        let skipped: Vec<(&str, &str)> = c
            .skipped
            .iter()
            .map(|s| (s.model.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(
            skipped,
            [
                ("azure/gpt-4o", "provider 'azure' not selected"),
                (
                    "gpt-4o-realtime-preview-2024-10-01",
                    "no output_cost_per_token"
                ),
                (
                    "sample_spec",
                    "LiteLLM's description of the format, not a model"
                ),
                (
                    "text-embedding-3-small",
                    "mode 'embedding' is not chat, completion or responses"
                ),
            ]
        );
        let rates = |i: usize| c.prices[i].rates;
        let anthropic = |input, output, read, write| Rates {
            input: usd(input),
            output: usd(output),
            cache_read: Some(usd(read)),
            cache_write: Some(usd(write)),
        };
        assert_eq!(rates(0), anthropic("1", "5", "0.10", "1.25"));
        assert_eq!(rates(1), anthropic("5", "25", "0.50", "6.25"));
        assert_eq!(rates(2), anthropic("3", "15", "0.30", "3.75"));
        assert_eq!(c.prices[0].long_context, None);
        assert_eq!(
            c.prices[2].long_context,
            Some(LongContext {
                above_tokens: 200_000,
                rates: anthropic("6", "22.50", "0.60", "7.50"),
            })
        );
        let openai = |input, output, read| Rates {
            input: usd(input),
            output: usd(output),
            cache_read: Some(usd(read)),
            cache_write: None,
        };
        assert_eq!(rates(3), openai("0.15", "0.60", "0.075"));
        assert_eq!(rates(4), openai("1.25", "10", "0.125"));

        // every provider when none is named
        let all = parse_litellm(FIXTURE, &[]).unwrap();
        assert_eq!(all.prices.len(), 6);
        assert_eq!(all.prices[0].model, "azure/gpt-4o");
        assert_eq!(all.prices[0].rates, openai("2.50", "10", "1.25"));
        assert_eq!(all.skipped.len(), 3);
        // provider names match case-insensitively
        let upper = parse_litellm(FIXTURE, &providers(&["AZURE"])).unwrap();
        assert_eq!(upper.prices.len(), 1);
    }

    #[test]
    fn catalogue_prices_become_stored_prices() {
        let c = parse_litellm(FIXTURE, &providers(&["anthropic"])).unwrap();
        let from = day("2026-07-01");
        let t = PriceTable::new(c.prices.iter().map(|p| p.to_price(Some(from))).collect());
        let dated = t.lookup("claude-sonnet-4-5-20250929", from).unwrap();
        assert_eq!(dated.source, PriceSource::Database);
        assert_eq!(dated.effective_from, Some(from));
        assert!(dated.long_context.is_some());
        let before = t.lookup("claude-sonnet-4-5-20250929", day("2026-06-30"));
        assert_eq!(before.unwrap().source, PriceSource::Builtin);
    }

    #[test]
    fn catalogue_floats_become_exact_prices() {
        for (per_token, per_mtok) in [
            ("3e-06", "3"),
            ("1.5e-05", "15"),
            ("3.75e-06", "3.75"),
            ("3e-07", "0.30"),
            ("1.25e-07", "0.125"),
            ("5e-09", "0.005"),
            ("2.5e-08", "0.025"),
            ("8e-07", "0.80"),
            ("1.1e-06", "1.10"),
            ("4.4e-06", "4.40"),
            ("2.25e-05", "22.50"),
            ("7.5e-08", "0.075"),
            ("2.75e-07", "0.275"),
            ("6e-05", "60"),
            ("0.00012", "120"),
            ("0.000003", "3"),
            ("0", "0"),
            ("6.0e-4", "600"),
        ] {
            let json = format!(
                r#"{{"m": {{"input_cost_per_token": {per_token}, "output_cost_per_token": {per_token}}}}}"#
            );
            let c = parse_litellm(&json, &[]).unwrap();
            assert_eq!(c.prices[0].rates.input, usd(per_mtok), "{per_token}");
            assert_eq!(c.prices[0].rates.output, usd(per_mtok), "{per_token}");
        }
    }

    #[test]
    fn odd_catalogue_entries_are_skipped_with_a_reason() {
        let json = r#"{
            "not-an-object": 5,
            "negative": {"input_cost_per_token": -1e-06, "output_cost_per_token": 1e-06},
            "text-price": {"input_cost_per_token": "3e-06", "output_cost_per_token": 1e-06},
            "huge": {"input_cost_per_token": 1e300, "output_cost_per_token": 1e-06},
            "no-input": {"output_cost_per_token": 1e-06},
            "null-input": {"input_cost_per_token": null, "output_cost_per_token": 1e-06},
            "bad-cache": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06,
                          "cache_read_input_token_cost": -1},
            "image": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06,
                      "mode": "image_generation"},
            "numeric-mode": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06,
                             "mode": 3},
            "null-mode": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06,
                          "mode": null, "cache_read_input_token_cost": null},
            "responses": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06,
                          "mode": "responses"},
            "only-long-output": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
                                 "output_cost_per_token_above_200k_tokens": 4e-06}
        }"#;
        let c = parse_litellm(json, &[]).unwrap();
        let reason = |model: &str| {
            c.skipped
                .iter()
                .find(|s| s.model == model)
                .map(|s| s.reason.clone())
                .unwrap_or_default()
        };
        assert_eq!(reason("not-an-object"), "a number instead of an object");
        assert!(reason("negative").contains("input_cost_per_token is not a price"));
        assert_eq!(
            reason("text-price"),
            "input_cost_per_token is a string instead of a number"
        );
        assert!(reason("huge").contains("too large"));
        assert_eq!(reason("no-input"), "no input_cost_per_token");
        assert_eq!(reason("null-input"), "no input_cost_per_token");
        assert!(reason("bad-cache").contains("cache_read_input_token_cost"));
        assert!(reason("image").contains("image_generation"));
        assert_eq!(
            reason("numeric-mode"),
            "mode is a number instead of a string"
        );
        let models: Vec<&str> = c.prices.iter().map(|p| p.model.as_str()).collect();
        assert_eq!(models, ["null-mode", "only-long-output", "responses"]);
        assert_eq!(c.prices[0].rates.cache_read, None);
        // a tier with only its output price: the other rates as below the threshold
        let long = c.prices[1].long_context.unwrap();
        assert_eq!(long.rates, Rates::flat(usd("1"), usd("4")));
        // a provider filter skips entries that name none
        let c = parse_litellm(json, &providers(&["openai"])).unwrap();
        assert!(c.prices.is_empty());
        assert!(c
            .skipped
            .iter()
            .any(|s| s.model == "responses" && s.reason == "no litellm_provider"));
    }

    #[test]
    fn a_catalogue_that_is_not_a_json_object_is_an_error() {
        for text in ["", "not json", "{\"a\": ", "{\n\"a\": 1,\n}"] {
            let e = parse_litellm(text, &[]).unwrap_err();
            assert!(e.starts_with("the catalogue is not valid JSON"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        assert_eq!(
            parse_litellm("[1, 2]", &[]).unwrap_err(),
            "the catalogue should be a JSON object of model names, got an array"
        );
        assert!(parse_litellm("null", &[]).unwrap_err().contains("null"));
        let empty = parse_litellm("{}", &[]).unwrap();
        assert!(empty.prices.is_empty() && empty.skipped.is_empty());
    }
}
