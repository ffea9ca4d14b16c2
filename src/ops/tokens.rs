//! The bearer tokens of `tokenctl serve`: created with a random secret that is shown once,
//! stored as its SHA-256 only (a secret of 256 random bits needs no slow hash: there is
//! nothing to guess), listed without secrets, revoked by name.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::OpResult;
use crate::db::{ApiTokenRow, Db};
use crate::domain::validate;
use crate::domain::Clock;
use crate::error::OpError;

/// What a token lets its holder do. Each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// the reports, /metrics
    Read,
    /// also check, reserve, settle, release, record
    Admit,
    /// everything
    Admin,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Admit => "admit",
            TokenScope::Admin => "admin",
        }
    }

    /// Whether a token of this scope may call what needs `need`.
    pub fn includes(self, need: TokenScope) -> bool {
        self >= need
    }
}

impl std::str::FromStr for TokenScope {
    type Err = String;
    fn from_str(s: &str) -> Result<TokenScope, String> {
        match s {
            "read" => Ok(TokenScope::Read),
            "admit" => Ok(TokenScope::Admit),
            "admin" => Ok(TokenScope::Admin),
            _ => Err(format!(
                "scope must be read, admit or admin, got '{}'",
                crate::error::printable(s)
            )),
        }
    }
}

/// A token's name: what the access log shows for its requests.
pub fn token_name(s: &str) -> Result<String, String> {
    let name = validate::id(s).map_err(|e| e.replace("an id", "a token name"))?;
    if name.is_empty() {
        return Err("a token name must not be empty".into());
    }
    if name.chars().any(char::is_whitespace) {
        return Err(format!(
            "a token name has no spaces, got '{}'",
            crate::error::printable(s)
        ));
    }
    Ok(name)
}

/// The secret's prefix, so a leaked one is recognisable (secret scanners, logs).
const SECRET_PREFIX: &str = "tkc_";

/// The hash a secret is stored and looked up by.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[derive(Debug, Clone, Serialize)]
pub struct CreatedToken {
    pub name: String,
    pub scope: TokenScope,
    /// shown this once: only its hash is stored
    pub token: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

pub async fn create(
    db: &Db,
    clock: &Clock,
    name: &str,
    scope: TokenScope,
) -> OpResult<CreatedToken> {
    let name = token_name(name).map_err(OpError::invalid)?;
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| OpError::internal(format!("cannot draw a random secret: {e}")))?;
    let token = format!("{SECRET_PREFIX}{}", hex::encode(bytes));
    if !db
        .create_api_token(&name, scope.as_str(), &secret_hash(&token), clock)
        .await?
    {
        return Err(OpError::conflict(format!(
            "a token named '{}' exists: revoke it first (tokenctl tokens revoke --name {})",
            crate::error::printable(&name),
            crate::error::printable(&name)
        )));
    }
    Ok(CreatedToken {
        name,
        scope,
        token,
        created_at: clock.now,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenList {
    pub tokens: Vec<ApiTokenRow>,
}

pub async fn list(db: &Db, include_revoked: bool) -> OpResult<TokenList> {
    Ok(TokenList {
        tokens: db.api_tokens(include_revoked).await?,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct RevokedToken {
    pub name: String,
    pub revoked: bool,
}

pub async fn revoke(db: &Db, clock: &Clock, name: &str) -> OpResult<RevokedToken> {
    let name = token_name(name).map_err(OpError::invalid)?;
    if !db.revoke_api_token(&name, clock).await? {
        return Err(OpError::not_found(format!(
            "no active token named '{}' (tokenctl tokens list shows them)",
            crate::error::printable(&name)
        )));
    }
    Ok(RevokedToken {
        name,
        revoked: true,
    })
}

/// The (name, scope) of the active token with this secret; None for an unknown or revoked one.
pub async fn authenticate(db: &Db, secret: &str) -> OpResult<Option<(String, TokenScope)>> {
    if !secret.starts_with(SECRET_PREFIX) {
        return Ok(None);
    }
    let found = db.api_token_by_secret(&secret_hash(secret)).await?;
    Ok(found.and_then(|(name, scope)| scope.parse().ok().map(|s| (name, s))))
}

/// Whether any token is active (serve refuses to listen beyond loopback without one).
pub async fn any_active(db: &Db) -> OpResult<bool> {
    Ok(!db.api_tokens(false).await?.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_include_the_ones_below() {
        use TokenScope::*;
        assert!(Admin.includes(Admit) && Admin.includes(Read) && Admit.includes(Read));
        assert!(!Read.includes(Admit) && !Admit.includes(Admin));
        assert_eq!("admit".parse::<TokenScope>(), Ok(Admit));
        assert!("root".parse::<TokenScope>().is_err());
    }

    #[test]
    fn a_secret_is_stored_as_its_sha256() {
        assert_eq!(
            secret_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn names_are_ids_without_spaces() {
        assert_eq!(token_name("backend-1"), Ok("backend-1".to_string()));
        assert!(token_name("two words").is_err());
        assert!(token_name("").is_err());
    }
}
