//! Admission and the ledger's writes: `check`, `reserve`, `release` and `record`.

use serde::Deserialize;

use super::OpResult;
use crate::db::ledger::{RecordInput, Recorded, Released, ReserveAsk, Reserved};
use crate::db::{Db, Reservation};
use crate::domain::input::{AiType, Count, Tokens, Ttl};
use crate::domain::number::thousands;
use crate::domain::validate::{self, truncated, MAX_FREE_TEXT_CHARS};
use crate::domain::{estimate, Clock, Decision};
use crate::error::OpError;

/// How many tokens a request will use at most: said outright, or estimated from its prompt
/// and the `max_tokens` it will ask for.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "EstimateFields")]
pub enum Estimate {
    Tokens {
        estimated_tokens: Tokens,
    },
    Prompt {
        prompt: String,
        max_tokens: Tokens,
    },
    /// a prompt already counted (`counted`): how much of the estimate is prompt still prices
    /// the reservation's bound
    Counted {
        estimated_tokens: Tokens,
        prompt_tokens: i64,
    },
}

/// The fields as a body has them: each one held to its own rule (so a bad value gets that
/// rule's message), then the combination checked.
#[derive(Deserialize, utoipa::ToSchema)]
struct EstimateFields {
    /// the request's size in tokens, if known; else give `prompt` and `max_tokens`
    estimated_tokens: Option<Tokens>,
    /// the prompt, estimated as ceil(words x 1.3) tokens
    prompt: Option<String>,
    /// the most output tokens the request will ask for
    max_tokens: Option<Tokens>,
}

/// On the wire an estimate is its fields (`EstimateFields`).
impl utoipa::PartialSchema for Estimate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <EstimateFields as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for Estimate {}

impl TryFrom<EstimateFields> for Estimate {
    type Error = String;
    fn try_from(f: EstimateFields) -> Result<Estimate, String> {
        match (f.estimated_tokens, f.prompt, f.max_tokens) {
            (Some(estimated_tokens), None, None) => Ok(Estimate::Tokens { estimated_tokens }),
            (Some(_), ..) => Err(
                "give estimated_tokens, or prompt with max_tokens, not both (as the flags)".into(),
            ),
            (None, Some(prompt), Some(max_tokens)) => Ok(Estimate::Prompt { prompt, max_tokens }),
            _ => Err("give estimated_tokens, or prompt with max_tokens".into()),
        }
    }
}

impl Estimate {
    /// The estimate as a count: a prompt is read once, here, and checked against the rule
    /// for token counts (bad input before anything is opened).
    pub fn counted(self) -> OpResult<Estimate> {
        let estimated_tokens = Tokens::try_from(self.tokens()?).map_err(OpError::invalid)?;
        Ok(match self.prompt_tokens() {
            Some(prompt_tokens) => Estimate::Counted {
                estimated_tokens,
                prompt_tokens,
            },
            None => Estimate::Tokens { estimated_tokens },
        })
    }

    /// The part of the estimate that is prompt, when it is known.
    pub fn prompt_tokens(&self) -> Option<i64> {
        match self {
            Estimate::Tokens { .. } => None,
            Estimate::Prompt { prompt, .. } => Some(estimate::input_tokens(prompt)),
            Estimate::Counted { prompt_tokens, .. } => Some(*prompt_tokens),
        }
    }

    pub fn tokens(&self) -> OpResult<i64> {
        match self {
            Estimate::Tokens { estimated_tokens }
            | Estimate::Counted {
                estimated_tokens, ..
            } => Ok(estimated_tokens.get()),
            Estimate::Prompt { prompt, max_tokens } => {
                let n = estimate::estimate(prompt, max_tokens.get());
                Tokens::try_from(n)
                    .map(Tokens::get)
                    .map_err(|e| OpError::invalid(format!("the estimate for this prompt: {e}")))
            }
        }
    }
}

/// Whether a request of this size may go ahead now (`check`, which holds nothing).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CheckRequest {
    pub ai_type: AiType,
    #[serde(flatten)]
    pub estimate: Estimate,
    /// the user the request is made for: their limits apply too
    #[serde(default)]
    pub user_id: Option<String>,
    /// the model it will use: prices its cost bound (without one, the dearest price known)
    #[serde(default)]
    pub model: Option<String>,
}

/// Admit and hold the tokens until `record --reservation` settles them, `release` gives them
/// back, or `ttl` passes.
#[derive(Debug, Clone, Deserialize)]
pub struct ReserveRequest {
    #[serde(flatten)]
    pub check: CheckRequest,
    pub ttl: Ttl,
}

impl CheckRequest {
    /// What the ledger decides (a hold of `ttl` if reserved), held to the flags' rules.
    pub fn ask(&self, ttl: chrono::Duration) -> OpResult<ReserveAsk> {
        Ok(ReserveAsk {
            ai_type: self.ai_type.to_string(),
            user_id: self
                .user_id
                .as_deref()
                .map(|u| {
                    validate::user_id(u).map_err(|e| OpError::invalid(format!("user_id: {e}")))
                })
                .transpose()?,
            model: self
                .model
                .as_deref()
                .filter(|m| !m.trim().is_empty())
                .map(|m| validate::model(m).map_err(OpError::invalid))
                .transpose()?,
            prompt_tokens: self.estimate.prompt_tokens(),
            estimated: self.estimate.tokens()?,
            ttl,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReleaseRequest {
    pub reservation_id: String,
}

/// What one LLM request used.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct RecordRequest {
    /// may be left out when settling a reservation: it is the reservation's
    #[serde(default)]
    pub ai_type: Option<AiType>,
    pub tokens_in: Tokens,
    pub tokens_out: Tokens,
    /// prompt tokens read from the provider's cache, besides tokens_in (Anthropic's
    /// cache_read_input_tokens; OpenAI's cached_tokens, with tokens_in the rest of the prompt)
    #[serde(default)]
    pub cache_read_tokens: Option<Tokens>,
    /// prompt tokens written to the provider's cache, besides tokens_in (Anthropic's
    /// cache_creation_input_tokens)
    #[serde(default)]
    pub cache_write_tokens: Option<Tokens>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub request_type: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<Count>,
    #[serde(default)]
    pub failed: bool,
    /// cut to its first 1,000 characters (with a warning): the usage is recorded in full
    #[serde(default)]
    pub error: Option<String>,
    /// the reservation this usage settles
    #[serde(default)]
    pub reservation: Option<String>,
}

pub async fn check(db: &Db, clock: &Clock, req: &CheckRequest) -> OpResult<Decision> {
    Ok(db.check(&req.ask(chrono::Duration::zero())?, clock).await?)
}

impl ReserveRequest {
    /// What the ledger decides: who for, the estimate, the hold's length.
    pub fn ask(&self) -> OpResult<ReserveAsk> {
        let ttl = chrono::Duration::from_std(self.ttl.get())
            .map_err(|_| OpError::invalid("ttl is too long"))?;
        self.check.ask(ttl)
    }
}

pub async fn reserve(db: &Db, clock: &Clock, req: &ReserveRequest) -> OpResult<Reserved> {
    Ok(db.reserve(&req.ask()?, clock).await?)
}

pub async fn release(db: &Db, clock: &Clock, req: &ReleaseRequest) -> OpResult<Released> {
    Ok(db.release(&req.reservation_id, clock).await?)
}

pub async fn record(db: &Db, clock: &Clock, req: RecordRequest) -> OpResult<Recorded> {
    let (input, cut_note) = record_input(db, req).await?;
    let mut recorded = db.record(&input, clock).await?;
    recorded.warnings.extend(cut_note);
    Ok(recorded)
}

/// What the ledger records for `req`, held to the flags' rules (a body too), and a note when
/// its error text was cut.
pub async fn record_input(db: &Db, req: RecordRequest) -> OpResult<(RecordInput, Option<String>)> {
    let mut cut_note = None;
    let error = req.error.map(|e| {
        let (kept, cut) = truncated(&e, MAX_FREE_TEXT_CHARS);
        if cut {
            cut_note = Some(format!(
                "--error is {} characters long: its first {} are recorded (the usage is recorded in full)",
                thousands(e.chars().count() as i64),
                thousands(MAX_FREE_TEXT_CHARS as i64)
            ));
        }
        kept
    });
    // the flags' rules, for a body too
    let id = |field: &str, value: Option<String>| -> OpResult<Option<String>> {
        value
            .map(|v| validate::id(&v).map_err(|e| OpError::invalid(format!("{field}: {e}"))))
            .transpose()
    };
    let model = req.model.filter(|m| !m.trim().is_empty());
    let reservation = id("reservation", req.reservation)?;
    let ai_type = match (req.ai_type, &reservation) {
        (Some(ai_type), _) => ai_type.into(),
        (None, Some(rid)) => reservation_of(db, rid).await?.hold.ai_type,
        (None, None) => {
            return Err(OpError::invalid(
                "ai_type is required (it may be left out only when settling a reservation)",
            ))
        }
    };
    let input = RecordInput {
        ai_type,
        tokens_in: req.tokens_in.get(),
        tokens_out: req.tokens_out.get(),
        cache_read_tokens: req.cache_read_tokens.map_or(0, Tokens::get),
        cache_write_tokens: req.cache_write_tokens.map_or(0, Tokens::get),
        model: model
            .map(|m| validate::model(&m).map_err(OpError::invalid))
            .transpose()?,
        request_id: id("request_id", req.request_id)?.filter(|r| !r.is_empty()),
        user_id: req
            .user_id
            .map(|u| validate::user_id(&u).map_err(|e| OpError::invalid(format!("user_id: {e}"))))
            .transpose()?,
        session_id: id("session_id", req.session_id)?,
        request_type: id("request_type", req.request_type)?,
        duration_ms: req.duration_ms.map(Count::get),
        failed: req.failed,
        error,
        reservation,
    };
    Ok((input, cut_note))
}

async fn reservation_of(db: &Db, id: &str) -> OpResult<Reservation> {
    db.reservation(id)
        .await?
        .ok_or_else(|| OpError::not_found(format!("no reservation with id '{id}'")))
}

/// Settles reservation `id` with what its request used: `record --reservation`, except that
/// an unknown id is an error (not usage recorded without a hold), and the AI type may be left
/// out (it is the reservation's).
pub async fn settle(db: &Db, clock: &Clock, id: &str, req: RecordRequest) -> OpResult<Recorded> {
    record(db, clock, settle_request(db, id, req).await?).await
}

/// `req` as the record that settles reservation `id` (which must exist).
pub async fn settle_request(db: &Db, id: &str, mut req: RecordRequest) -> OpResult<RecordRequest> {
    if req.reservation.as_deref().is_some_and(|r| r != id) {
        return Err(OpError::invalid(
            "the body names another reservation than the path: leave `reservation` out",
        ));
    }
    let found = reservation_of(db, id).await?;
    req.reservation = Some(id.to_string());
    if req.ai_type.is_none() {
        // it is the reservation's (one read, not two)
        req.ai_type = Some(found.hold.ai_type.parse().map_err(OpError::invalid)?);
    }
    Ok(req)
}
