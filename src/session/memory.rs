//! The in-process session store: moka caches for sessions, pending logins and exchanged codes.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;
use moka::policy::EvictionPolicy;

use super::store::{
    CodeClaim, LoginTimes, PendingLogin, SessionStore, StoreError, MAX_PENDING_PER_BROWSER,
};
use super::{Clock, SessionId, SessionRecord};

/// Sessions kept in this process only; lost on restart.
#[derive(Clone)]
pub struct MemoryStore {
    sessions: Cache<SessionId, Arc<SessionRecord>>,
    pending: Cache<String, PendingLogin>,
    /// Logins started per browser binding in the last `LoginTimes::pending`.
    pending_per_browser: Cache<String, Arc<AtomicU32>>,
    codes: Cache<String, CodeClaim>,
    times: LoginTimes,
    clock: Arc<dyn Clock>,
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
    pub max_pending_logins: u64,
    pub max_codes: u64,
    pub login: LoginTimes,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            max_sessions: 2_000_000,
            max_pending_logins: 200_000,
            max_codes: 200_000,
            login: LoginTimes::default(),
        }
    }
}

impl MemoryStore {
    /// `ttl` bounds how long moka keeps a session; expiry itself is checked against `clock`.
    ///
    /// Every cache evicts least-recently-used at its cap rather than with moka's default
    /// TinyLFU, which refuses a new key when the cache is full of keys seen as often: a flood
    /// of anonymous navigations (each a pending login no one finishes) would then lock every
    /// real sign-in out until the flood's entries expired. With LRU the newest entry is always
    /// kept and the flood's oldest make room; a real sign-in needs its entry for seconds.
    pub fn new(ttl: Duration, clock: Arc<dyn Clock>, limits: MemoryLimits) -> Self {
        MemoryStore {
            sessions: Cache::builder()
                .max_capacity(limits.max_sessions)
                .eviction_policy(EvictionPolicy::lru())
                .time_to_live(ttl)
                .build(),
            pending: Cache::builder()
                .max_capacity(limits.max_pending_logins)
                .eviction_policy(EvictionPolicy::lru())
                .time_to_live(limits.login.pending)
                .build(),
            pending_per_browser: Cache::builder()
                .max_capacity(limits.max_pending_logins)
                .eviction_policy(EvictionPolicy::lru())
                .time_to_live(limits.login.pending)
                .build(),
            codes: Cache::builder()
                .max_capacity(limits.max_codes)
                .eviction_policy(EvictionPolicy::lru())
                .time_to_live(limits.login.codes)
                .build(),
            times: limits.login,
            clock,
        }
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn get(&self, id: &SessionId) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        match self.sessions.get(id).await {
            Some(rec) if rec.is_live(self.clock.now()) => Ok(Some(rec)),
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

    async fn put_pending(&self, state: &str, login: PendingLogin) -> Result<(), StoreError> {
        let started = self
            .pending_per_browser
            .get_with(login.binding.clone(), async { Arc::new(AtomicU32::new(0)) })
            .await;
        let admitted = started.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            (v < MAX_PENDING_PER_BROWSER).then_some(v + 1)
        });
        if admitted.is_err() {
            return Err(StoreError::TooManyPending);
        }
        self.pending.insert(state.to_string(), login).await;
        Ok(())
    }

    async fn take_pending(&self, state: &str) -> Result<Option<PendingLogin>, StoreError> {
        let found = self.pending.remove(state).await;
        if let Some(p) = &found {
            if let Some(n) = self.pending_per_browser.get(&p.binding).await {
                let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
            }
        }
        let now = self.clock.now();
        Ok(found.filter(|p| !self.times.pending_expired(p.created_at, now)))
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

    /// A flood of abandoned sign-ins (a bot following redirects) past the cap must not lock
    /// real users out: the newest pending login is always kept, the oldest make room.
    #[tokio::test]
    async fn full_pending_store_still_admits_a_new_login() {
        let clock: Arc<dyn Clock> = Arc::new(crate::session::SystemClock);
        let store = MemoryStore::new(
            Duration::from_secs(7200),
            clock.clone(),
            MemoryLimits {
                max_pending_logins: 100,
                ..MemoryLimits::default()
            },
        );
        let login = |binding: &str| PendingLogin {
            binding: binding.into(),
            return_to: "/".into(),
            from_clever: false,
            created_at: clock.now(),
        };
        for round in 0..5 {
            for i in 0..200 {
                let key = format!("flood-{round}-{i}");
                store.put_pending(&key, login(&key)).await.unwrap();
            }
            store.pending.run_pending_tasks().await;
            store.pending_per_browser.run_pending_tasks().await;
            let real = format!("real-{round}");
            store.put_pending(&real, login(&real)).await.unwrap();
            store.pending.run_pending_tasks().await;
            assert!(
                store.take_pending(&real).await.unwrap().is_some(),
                "round {round}: a real sign-in was dropped by a full store"
            );
        }
        assert!(store.pending.entry_count() <= 100, "the cap still holds");
    }

    crate::session::conformance::store_conformance!(|clock| {
        let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(
            Duration::from_secs(7200),
            clock,
            MemoryLimits::default(),
        ));
        Some(crate::session::conformance::Fixture { store, _keep: None })
    });
}
