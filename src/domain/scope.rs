//! Whose limits and counters a decision checks: the AI type a request is for, and the total
//! over all AI types. A new scope (a user, next) is a new variant: the compiler then points at
//! every place that must say what it means for it (its counters, its limits, its words).

use serde::Serialize;

/// One set of limits and the counters they are checked against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// the AI type the request is for
    AiType,
    /// all AI types together
    Global,
    // next: User(String), one user's requests over every AI type
}

impl Scope {
    /// The scopes every admission decision checks, in the order it checks them.
    pub const CHECKED: [Scope; 2] = [Scope::AiType, Scope::Global];

    /// Whether this scope counts a request of `request_ai_type`, when the decision is for
    /// `ai_type`.
    pub fn counts(&self, ai_type: &str, request_ai_type: &str) -> bool {
        match self {
            Scope::AiType => request_ai_type == ai_type,
            Scope::Global => true,
        }
    }
}
