//! Whose limits and counters a decision checks: the AI type a request is for, the user it is
//! made for (when it names one), and the total over all AI types. A new scope is a new
//! variant: the compiler then points at every place that must say what it means for it (its
//! counters, its limits, its words).

use serde::Serialize;

/// One set of limits and the counters they are checked against.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// the AI type the request is for
    AiType,
    /// the user the request is made for, over every AI type
    User,
    /// all AI types together
    Global,
}

/// Who a request is for: its AI type and, when it names one, its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Who<'a> {
    pub ai_type: &'a str,
    pub user_id: Option<&'a str>,
}

impl Scope {
    /// The scopes every admission decision checks, in the order it checks them (a request
    /// without a user has no user scope to check).
    pub const CHECKED: [Scope; 3] = [Scope::AiType, Scope::User, Scope::Global];

    /// Whether this scope, for a decision about `mine`, counts a request of `theirs`.
    pub fn counts(&self, mine: Who<'_>, theirs: Who<'_>) -> bool {
        match self {
            Scope::AiType => theirs.ai_type == mine.ai_type,
            Scope::User => mine.user_id.is_some() && theirs.user_id == mine.user_id,
            Scope::Global => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scope_counts_its_own_requests() {
        let alice_on_a = Who {
            ai_type: "a",
            user_id: Some("alice"),
        };
        let bob_on_a = Who {
            ai_type: "a",
            user_id: Some("bob"),
        };
        let alice_on_b = Who {
            ai_type: "b",
            user_id: Some("alice"),
        };
        let nobody_on_a = Who {
            ai_type: "a",
            user_id: None,
        };
        assert!(Scope::AiType.counts(alice_on_a, bob_on_a));
        assert!(!Scope::AiType.counts(alice_on_a, alice_on_b));
        assert!(Scope::User.counts(alice_on_a, alice_on_b));
        assert!(!Scope::User.counts(alice_on_a, bob_on_a));
        assert!(
            !Scope::User.counts(nobody_on_a, nobody_on_a),
            "no user, no user scope"
        );
        assert!(Scope::Global.counts(alice_on_a, bob_on_a));
    }
}
