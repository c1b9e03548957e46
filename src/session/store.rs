//! The session store contract every backend (memory now, Redis later) fulfils.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;

use super::{SessionId, SessionRecord};

/// A login in flight: created when we send a browser to Clever, consumed by the callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    /// The random value of the browser's login-binding cookie.
    pub binding: String,
    /// Same-site path (or the landing upstream's URL) to return to.
    pub return_to: String,
    /// Set when this login is the bounce of a Clever-initiated (stateless) callback.
    pub from_clever: bool,
    pub created_at: SystemTime,
}

/// What we remember about a code we have begun to exchange, so it is never POSTed twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeClaim {
    pub binding: String,
    pub return_to: String,
    /// The session the exchange created, once it has.
    pub session: Option<SessionId>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    #[error("too many sign-ins in progress for one browser")]
    TooManyPending,
}

/// At most this many logins may be pending for one browser (login-binding cookie) at once.
pub const MAX_PENDING_PER_BROWSER: u32 = 32;

/// Sessions, pending logins and exchanged codes. Implementations are shared by all requests.
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// A live session, or `None` (unknown, expired, or deleted).
    async fn get(&self, id: &SessionId) -> Result<Option<Arc<SessionRecord>>, StoreError>;
    async fn insert(&self, id: &SessionId, record: SessionRecord) -> Result<(), StoreError>;
    /// Deletes the session server side, so a copied cookie stops working.
    async fn remove(&self, id: &SessionId) -> Result<(), StoreError>;

    /// Records a pending login; `TooManyPending` past `MAX_PENDING_PER_BROWSER` for its binding.
    async fn put_pending(&self, state: &str, login: PendingLogin) -> Result<(), StoreError>;
    /// Removes and returns the pending login for `state` (single use).
    async fn take_pending(&self, state: &str) -> Result<Option<PendingLogin>, StoreError>;

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
