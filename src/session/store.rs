//! The session store contract every backend (memory, Redis) fulfils. Sign-ins in progress
//! are not stored: the browser keeps them (`auth::login_state`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{SessionId, SessionRecord};

/// What we remember about a code we have begun to exchange, so it is never POSTed twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeClaim {
    /// Ties the code to the sign-in that received it (the hash of its state).
    pub binding: String,
    pub return_to: String,
    /// The session the exchange created, once it has.
    pub session: Option<SessionId>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

/// How long the server keeps what sign-ins leave: each exchanged code (so a refreshed callback
/// is never POSTed twice). A sign-in in progress lives in its browser's login cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginTimes {
    pub codes: Duration,
}

impl LoginTimes {
    /// The default `session.login_timeout`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
    /// Clever's codes live about a minute; remembering them longer only holds memory.
    pub const MAX_CODE_MEMORY: Duration = Duration::from_secs(300);

    /// Sign-ins live `login_timeout`; codes as long, but at most `MAX_CODE_MEMORY`.
    pub fn new(login_timeout: Duration) -> Self {
        LoginTimes {
            codes: login_timeout.min(Self::MAX_CODE_MEMORY),
        }
    }
}

impl Default for LoginTimes {
    fn default() -> Self {
        LoginTimes::new(Self::DEFAULT_TIMEOUT)
    }
}

/// Sessions and exchanged codes. Implementations are shared by all requests.
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// A live session, or `None` (unknown, expired, or deleted).
    async fn get(&self, id: &SessionId) -> Result<Option<Arc<SessionRecord>>, StoreError>;
    async fn insert(&self, id: &SessionId, record: SessionRecord) -> Result<(), StoreError>;
    /// Deletes the session server side, so a copied cookie stops working.
    async fn remove(&self, id: &SessionId) -> Result<(), StoreError>;

    /// Atomically records that `code_key` is being exchanged. `Ok(None)`: this caller owns the
    /// exchange. `Ok(Some(existing))`: the code was seen before and must not be POSTed again.
    async fn claim_code(
        &self,
        code_key: &str,
        claim: CodeClaim,
    ) -> Result<Option<CodeClaim>, StoreError>;
    /// What is remembered about `code_key`, without claiming it.
    async fn code(&self, code_key: &str) -> Result<Option<CodeClaim>, StoreError>;
    /// Records the session an exchanged code created.
    async fn complete_code(&self, code_key: &str, claim: CodeClaim) -> Result<(), StoreError>;

    /// Whether the store can serve requests (readiness).
    async fn ready(&self) -> bool;

    /// How many sessions are live, for the `clever_gateway_sessions` gauge. Read once per
    /// metrics scrape, so it may cost a round trip but not a scan per request.
    async fn session_count(&self) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_times_codes_follow_the_login_timeout_up_to_five_minutes() {
        let t = LoginTimes::new(Duration::from_secs(60));
        assert_eq!(t.codes, Duration::from_secs(60));
        assert_eq!(LoginTimes::default().codes, Duration::from_secs(300));
    }
}
