//! The session store contract every backend (memory now, Redis later) fulfils.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

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

/// How long in-flight sign-in state is kept: each pending login (as long as its state
/// cookie), and each exchanged code (so a refreshed callback is never POSTed twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginTimes {
    pub pending: Duration,
    pub codes: Duration,
}

impl LoginTimes {
    /// The default `session.login_timeout`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
    /// Clever's codes live about a minute; remembering them longer only holds memory.
    pub const MAX_CODE_MEMORY: Duration = Duration::from_secs(300);

    /// Pending logins live `login_timeout`; codes as long, but at most `MAX_CODE_MEMORY`.
    pub fn new(login_timeout: Duration) -> Self {
        LoginTimes {
            pending: login_timeout,
            codes: login_timeout.min(Self::MAX_CODE_MEMORY),
        }
    }

    /// Whether a pending login created at `created_at` has outlived its time at `now`.
    pub fn pending_expired(&self, created_at: SystemTime, now: SystemTime) -> bool {
        now.duration_since(created_at)
            .is_ok_and(|age| age >= self.pending)
    }
}

impl Default for LoginTimes {
    fn default() -> Self {
        LoginTimes::new(Self::DEFAULT_TIMEOUT)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_times_codes_follow_the_login_timeout_up_to_five_minutes() {
        let t = LoginTimes::new(Duration::from_secs(60));
        assert_eq!(
            (t.pending, t.codes),
            (Duration::from_secs(60), Duration::from_secs(60))
        );
        let t = LoginTimes::default();
        assert_eq!(t.pending, Duration::from_secs(600));
        assert_eq!(t.codes, Duration::from_secs(300));
    }

    #[test]
    fn pending_expires_at_its_time_not_before() {
        let t = LoginTimes::new(Duration::from_secs(60));
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(!t.pending_expired(start, start + Duration::from_secs(59)));
        assert!(t.pending_expired(start, start + Duration::from_secs(60)));
        // A clock that went backwards does not expire anything.
        assert!(!t.pending_expired(start, start - Duration::from_secs(5)));
    }
}
