//! Sessions: ids, the records kept for them, the clock they expire by, and the stores.

mod acks;
#[cfg(test)]
pub(crate) mod conformance;
pub mod cookies;
pub mod memory;
pub mod primary;
pub mod redis;
pub mod store;
pub mod testing;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderValue;

use crate::identity::{Identity, Rendered, ValueSpec};
use crate::secret::{random_token, Secret};

pub use self::primary::{PrimaryAt, SentinelSettings};
pub use self::redis::{RedisSettings, RedisStore};
pub use memory::MemoryStore;
pub use store::{CodeClaim, LoginTimes, SessionStore, StoreError};

/// Length of a session id: 256 bits in base64url without padding.
const SESSION_ID_LEN: usize = 43;

/// A session id: 256 bits from the OS CSPRNG, base64url. `Debug` never shows it. Kept inline
/// (no heap allocation): reading one from a cookie allocates nothing, and the memory store's
/// key costs no separate allocation per session.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId([u8; SESSION_ID_LEN]);

impl SessionId {
    /// A fresh id; ids a browser sends are never reused for a new session.
    pub fn generate() -> Self {
        Self::from_cookie(&random_token(32)).expect("32 random bytes make a 43-character id")
    }

    /// Accepts a cookie value only if it has the exact shape of an id we issue.
    pub fn from_cookie(value: &str) -> Option<Self> {
        let bytes: [u8; SESSION_ID_LEN] = value.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            .then_some(SessionId(bytes))
    }

    /// The value, for the `Set-Cookie` header only.
    pub fn expose(&self) -> &str {
        // Only base64url characters get in (`from_cookie`), so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
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
    /// Inline rather than behind its own `Arc`: the record is shared as a whole (the stores
    /// hand out `Arc<SessionRecord>`), and one allocation less per session matters at 1M.
    pub identity: Identity,
    pub created_at: SystemTime,
    pub expires_at: SystemTime,
    /// The Clever SSO token (sent upstream only with `forward_access_token = true`).
    token: AccessToken,
    /// The header values of the configuration's specs, rendered from `identity` at the first
    /// request (at sign-in for a new session). Never stored: a store that keeps sessions
    /// elsewhere renders them again when it loads one.
    rendered: OnceLock<Rendered>,
}

/// The SSO token as the header value it may be sent as; `Debug` never shows it.
#[derive(Clone)]
struct AccessToken(Bytes);

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl SessionRecord {
    pub fn new(identity: Identity, access_token: Secret, now: SystemTime, ttl: Duration) -> Self {
        Self::loaded(identity, access_token, now, now + ttl)
    }

    /// A session as a store kept it: its times as they were; its header values are rendered
    /// again at its first request.
    pub fn loaded(
        identity: Identity,
        access_token: Secret,
        created_at: SystemTime,
        expires_at: SystemTime,
    ) -> Self {
        SessionRecord {
            identity,
            created_at,
            expires_at,
            token: AccessToken(Bytes::from(access_token.expose().to_string())),
            rendered: OnceLock::new(),
        }
    }

    /// The Clever SSO token (a secret: never log it).
    pub fn access_token(&self) -> &str {
        std::str::from_utf8(&self.token.0).unwrap_or_default()
    }

    /// The SSO token as a header value (`forward_access_token`), when it can be one.
    pub fn access_token_value(&self) -> Option<HeaderValue> {
        HeaderValue::from_maybe_shared(self.token.0.clone()).ok()
    }

    /// The header values of `specs` (the configuration's), rendered at the first call. A
    /// process has one configuration, so every call passes the same specs.
    pub fn rendered(&self, specs: &[ValueSpec]) -> &Rendered {
        self.rendered
            .get_or_init(|| Rendered::new(&self.identity, specs))
    }

    /// The value of spec `i` of `specs` for this session.
    pub fn header_value(&self, specs: &[ValueSpec], i: usize) -> Option<HeaderValue> {
        self.rendered(specs).value(&self.identity, i)
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
