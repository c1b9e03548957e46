//! The in-process session store: moka caches for sessions and exchanged codes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;
use moka::policy::EvictionPolicy;

use super::store::{CodeClaim, LoginTimes, SessionStore, StoreError};
use super::{Clock, SessionId, SessionRecord};

/// Sessions kept in this process only; lost on restart.
#[derive(Clone)]
pub struct MemoryStore {
    sessions: Cache<SessionId, Arc<SessionRecord>>,
    codes: Cache<String, CodeClaim>,
    clock: Arc<dyn Clock>,
    /// `session.idle_timeout`.
    idle: Option<Duration>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("sessions", &self.sessions.entry_count())
            .finish()
    }
}

/// Capacity and time bounds, so a flood of logins cannot grow memory without limit.
#[derive(Debug, Clone, Copy)]
pub struct MemoryLimits {
    pub max_sessions: u64,
    pub max_codes: u64,
    pub login: LoginTimes,
    /// `session.idle_timeout`: a session unused this long ends.
    pub idle: Option<Duration>,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            max_sessions: 2_000_000,
            max_codes: 200_000,
            login: LoginTimes::default(),
            idle: None,
        }
    }
}

impl MemoryStore {
    /// `ttl` bounds how long moka keeps a session; expiry itself is checked against `clock`.
    ///
    /// Every cache evicts least-recently-used at its cap rather than with moka's default
    /// TinyLFU, which refuses a new key when the cache is full of keys seen as often: with
    /// LRU the newest entry is always kept and the oldest make room.
    ///
    /// With an idle timeout, moka also drops a session it has not handed out for that long
    /// (memory back sooner); whether a session is idle is decided against `clock`.
    pub fn new(ttl: Duration, clock: Arc<dyn Clock>, limits: MemoryLimits) -> Self {
        let mut sessions = Cache::builder()
            .max_capacity(limits.max_sessions)
            .eviction_policy(EvictionPolicy::lru())
            .time_to_live(ttl);
        if let Some(idle) = limits.idle {
            sessions = sessions.time_to_idle(idle);
        }
        MemoryStore {
            sessions: sessions.build(),
            codes: Cache::builder()
                .max_capacity(limits.max_codes)
                .eviction_policy(EvictionPolicy::lru())
                .time_to_live(limits.login.codes)
                .build(),
            clock,
            idle: limits.idle,
        }
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn get(&self, id: &SessionId) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        let now = self.clock.now();
        match self.sessions.get(id).await {
            Some(rec) if rec.is_live(now) => match self.idle {
                None => Ok(Some(rec)),
                Some(idle) if !rec.idle_expired(now, idle) => {
                    // Each signed-in request extends the session.
                    rec.touch(now);
                    Ok(Some(rec))
                }
                Some(_) => {
                    self.sessions.invalidate(id).await;
                    Ok(None)
                }
            },
            Some(_) => {
                self.sessions.invalidate(id).await;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn insert(&self, id: &SessionId, record: SessionRecord) -> Result<(), StoreError> {
        self.sessions.insert(id.clone(), Arc::new(record)).await;
        Ok(())
    }

    async fn remove(&self, id: &SessionId) -> Result<(), StoreError> {
        self.sessions.invalidate(id).await;
        Ok(())
    }

    async fn claim_code(
        &self,
        code_key: &str,
        claim: CodeClaim,
    ) -> Result<Option<CodeClaim>, StoreError> {
        // NOTE: `or_insert` is a get-then-insert and lets two concurrent callers both see a
        // fresh entry; `or_insert_with` coalesces concurrent calls into one evaluation, so
        // exactly one caller owns the exchange (moka 0.12 docs of `or_insert_with`).
        let entry = self
            .codes
            .entry(code_key.to_string())
            .or_insert_with(async move { claim })
            .await;
        if entry.is_fresh() {
            Ok(None)
        } else {
            Ok(Some(entry.into_value()))
        }
    }

    async fn code(&self, code_key: &str) -> Result<Option<CodeClaim>, StoreError> {
        Ok(self.codes.get(code_key).await)
    }

    async fn complete_code(&self, code_key: &str, claim: CodeClaim) -> Result<(), StoreError> {
        self.codes.insert(code_key.to_string(), claim).await;
        Ok(())
    }

    async fn ready(&self) -> bool {
        true
    }

    /// moka counts lazily: pending inserts, removals and expirations are applied first, so
    /// the count is exact at the time of the call.
    async fn session_count(&self) -> Result<u64, StoreError> {
        self.sessions.run_pending_tasks().await;
        Ok(self.sessions.entry_count())
    }
}

#[cfg(test)]
mod tests {
    //! The store conformance suite, run against the memory store.
    use super::*;

    crate::session::conformance::store_conformance!(|clock| {
        let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(
            Duration::from_secs(7200),
            clock,
            MemoryLimits::default(),
        ));
        Some(crate::session::conformance::Fixture { store, _keep: None })
    });

    fn record(clock: &crate::session::ManualClock) -> SessionRecord {
        SessionRecord::new(
            crate::identity::Identity::builder("u").build(),
            crate::secret::Secret::new("t"),
            crate::session::Clock::now(clock),
            Duration::from_secs(7200),
        )
    }

    #[tokio::test]
    async fn idle_timeout_each_lookup_extends_an_unused_session_ends_on_the_clock() {
        let clock = Arc::new(crate::session::ManualClock::new());
        let limits = MemoryLimits {
            idle: Some(Duration::from_secs(60)),
            ..MemoryLimits::default()
        };
        let store = MemoryStore::new(Duration::from_secs(7200), clock.clone(), limits);
        let id = SessionId::generate();
        store.insert(&id, record(&clock)).await.unwrap();
        for _ in 0..5 {
            clock.advance(Duration::from_secs(59));
            assert!(store.get(&id).await.unwrap().is_some(), "in use");
        }
        clock.advance(Duration::from_secs(60));
        assert!(store.get(&id).await.unwrap().is_none(), "unused for 60 s");
        // Gone for good, even if the clock were to say otherwise.
        assert_eq!(store.session_count().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn without_idle_timeout_only_ttl_ends_a_session() {
        let clock = Arc::new(crate::session::ManualClock::new());
        let store = MemoryStore::new(
            Duration::from_secs(7200),
            clock.clone(),
            MemoryLimits::default(),
        );
        let id = SessionId::generate();
        store.insert(&id, record(&clock)).await.unwrap();
        clock.advance(Duration::from_secs(7199));
        assert!(store.get(&id).await.unwrap().is_some());
        clock.advance(Duration::from_secs(1));
        assert!(store.get(&id).await.unwrap().is_none());
    }
}
