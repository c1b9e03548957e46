//! Sessions: ids, the records kept for them, the clock they expire by, and the stores.

#[cfg(test)]
pub(crate) mod conformance;
pub mod cookies;
pub mod memory;
pub mod redis;
pub mod store;
pub mod testing;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::identity::Identity;
use crate::secret::{random_token, Secret};

pub use self::redis::{RedisSettings, RedisStore};
pub use memory::MemoryStore;
pub use store::{CodeClaim, LoginTimes, PendingLogin, SessionStore, StoreError};

/// A session id: 256 bits from the OS CSPRNG, base64url. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh id; ids a browser sends are never reused for a new session.
    pub fn generate() -> Self {
        SessionId(random_token(32))
    }

    /// Accepts a cookie value only if it has the exact shape of an id we issue.
    pub fn from_cookie(value: &str) -> Option<Self> {
        let ok = value.len() == 43
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| SessionId(value.to_string()))
    }

    /// The value, for the `Set-Cookie` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// What the gateway keeps for a signed-in browser.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub identity: Arc<Identity>,
    /// The Clever SSO token; sent upstream only with `forward_access_token = true`.
    pub access_token: Secret,
    pub created_at: SystemTime,
    pub expires_at: SystemTime,
    /// `X-Clever-User-Type` value, rendered once at login.
    pub user_type_header: String,
}

impl SessionRecord {
    pub fn new(identity: Identity, access_token: Secret, now: SystemTime, ttl: Duration) -> Self {
        let user_type_header = identity.user_type_header();
        SessionRecord {
            identity: Arc::new(identity),
            access_token,
            created_at: now,
            expires_at: now + ttl,
            user_type_header,
        }
    }

    pub fn is_live(&self, now: SystemTime) -> bool {
        now < self.expires_at
    }
}

/// The time sessions and login states expire by; injectable so tests can move it.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> SystemTime;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that starts at the real time and moves only when told (tests).
#[derive(Debug)]
pub struct ManualClock {
    start: SystemTime,
    offset_ms: AtomicU64,
}

impl ManualClock {
    pub fn new() -> Self {
        ManualClock {
            start: SystemTime::now(),
            offset_ms: AtomicU64::new(0),
        }
    }

    pub fn advance(&self, by: Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.start + Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }
}

/// Seconds since the Unix epoch, for JSON output.
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_generate_is_256_bits_and_fresh() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert!(SessionId::from_cookie(a.expose()).is_some());
    }

    #[test]
    fn session_id_from_cookie_rejects_wrong_shapes() {
        for bad in ["", "abc", &"a".repeat(44), &format!("{}=", "a".repeat(42))] {
            assert!(SessionId::from_cookie(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn session_id_debug_redacted() {
        let id = SessionId::generate();
        assert!(!format!("{id:?}").contains(id.expose()));
    }

    #[test]
    fn manual_clock_advances_only_when_told() {
        let c = ManualClock::new();
        let t0 = c.now();
        c.advance(Duration::from_secs(5));
        assert_eq!(c.now().duration_since(t0).unwrap(), Duration::from_secs(5));
    }
}
