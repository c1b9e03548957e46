//! Sessions: ids, the records kept for them, the clock they expire by, and the stores.

mod acks;
#[cfg(test)]
pub(crate) mod conformance;
pub(crate) mod cookies;
pub mod memory;
pub(crate) mod primary;
pub(crate) mod redis;
pub(crate) mod store;

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
    /// When the session was last used and last saved, for `session.idle_timeout`.
    idle: IdleClock,
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
            idle: IdleClock::at(created_at),
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

    /// Whether the session has gone unused for `idle` (`session.idle_timeout`) at `now`.
    pub fn idle_expired(&self, now: SystemTime, idle: Duration) -> bool {
        unix_ms(now) >= self.idle.used().saturating_add(idle.as_millis() as u64)
    }

    /// Marks the session used at `now` (what `idle_expired` counts from). No allocation and
    /// no lock: at most one atomic store, none when another request already marked this
    /// millisecond or a later one.
    pub fn touch(&self, now: SystemTime) {
        let now = unix_ms(now);
        if now > self.idle.used.load(Ordering::Relaxed) {
            self.idle.used.store(now, Ordering::Relaxed);
        }
    }

    /// When the session was last used, as far as this record knows.
    pub fn last_used(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.idle.used())
    }

    /// Sets when the session was last used and last saved to `at` (a store that keeps the
    /// use elsewhere, as it loads the record).
    pub fn set_last_used(&self, at: SystemTime) {
        let at = unix_ms(at);
        self.idle.used.store(at, Ordering::Relaxed);
        self.idle.saved.store(at, Ordering::Relaxed);
    }

    /// Whether the use at `now` should be saved to a store that keeps it elsewhere (Redis):
    /// true for exactly one caller once `every` has passed since the last save, which it
    /// records as `now`.
    pub fn save_due(&self, now: SystemTime, every: Duration) -> bool {
        let now = unix_ms(now);
        let saved = self.idle.saved.load(Ordering::Relaxed);
        now >= saved.saturating_add(every.as_millis() as u64)
            && self
                .idle
                .saved
                .compare_exchange(saved, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// When a session was last used and when that use was last saved (Redis), as Unix
/// milliseconds: atomics, so requests sharing a record mark it without a lock.
#[derive(Debug, Default)]
struct IdleClock {
    used: AtomicU64,
    saved: AtomicU64,
}

impl IdleClock {
    fn at(t: SystemTime) -> Self {
        let ms = unix_ms(t);
        IdleClock {
            used: AtomicU64::new(ms),
            saved: AtomicU64::new(ms),
        }
    }

    fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

impl Clone for IdleClock {
    fn clone(&self) -> Self {
        IdleClock {
            used: AtomicU64::new(self.used.load(Ordering::Relaxed)),
            saved: AtomicU64::new(self.saved.load(Ordering::Relaxed)),
        }
    }
}

/// How often a session's use is saved to a store that keeps it elsewhere (Redis), with
/// `session.idle_timeout` = `idle`: min(60 s, idle / 2), so a session in use is never written
/// per request, and is never taken for idle by another replica before `idle - that` has passed.
pub fn idle_save_interval(idle: Duration) -> Duration {
    (idle / 2).min(Duration::from_secs(60))
}

/// Milliseconds since the Unix epoch (0 before it).
fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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

    fn record(clock: &ManualClock) -> SessionRecord {
        SessionRecord::new(
            crate::identity::Identity::builder("u").build(),
            Secret::new("t"),
            clock.now(),
            Duration::from_secs(7200),
        )
    }

    #[test]
    fn idle_expired_counts_from_the_last_touch() {
        let clock = ManualClock::new();
        let rec = record(&clock);
        let idle = Duration::from_secs(60);
        clock.advance(Duration::from_secs(59));
        assert!(!rec.idle_expired(clock.now(), idle));
        rec.touch(clock.now());
        clock.advance(Duration::from_secs(59));
        assert!(!rec.idle_expired(clock.now(), idle));
        clock.advance(Duration::from_secs(1));
        assert!(rec.idle_expired(clock.now(), idle));
    }

    #[test]
    fn touch_never_moves_the_last_use_back() {
        let clock = ManualClock::new();
        let rec = record(&clock);
        let t0 = clock.now();
        clock.advance(Duration::from_secs(5));
        rec.touch(clock.now());
        rec.touch(t0);
        assert_eq!(
            rec.last_used(),
            UNIX_EPOCH + Duration::from_millis(unix_ms(clock.now()))
        );
    }

    #[test]
    fn save_due_once_per_interval_for_one_caller() {
        let clock = ManualClock::new();
        let rec = record(&clock);
        let every = Duration::from_secs(30);
        assert!(!rec.save_due(clock.now(), every), "saved at creation");
        clock.advance(Duration::from_secs(29));
        assert!(!rec.save_due(clock.now(), every));
        clock.advance(Duration::from_secs(1));
        assert!(rec.save_due(clock.now(), every));
        assert!(
            !rec.save_due(clock.now(), every),
            "the first caller saves, not the next"
        );
        clock.advance(Duration::from_secs(30));
        assert!(rec.save_due(clock.now(), every));
    }

    #[test]
    fn idle_save_interval_is_half_the_timeout_at_most_a_minute() {
        assert_eq!(
            idle_save_interval(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
        assert_eq!(
            idle_save_interval(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
        assert_eq!(
            idle_save_interval(Duration::from_secs(1200)),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn manual_clock_advances_only_when_told() {
        let c = ManualClock::new();
        let t0 = c.now();
        c.advance(Duration::from_secs(5));
        assert_eq!(c.now().duration_since(t0).unwrap(), Duration::from_secs(5));
    }
}
