//! The in-process session store: moka caches for sessions, pending logins and exchanged codes.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;

use super::store::{CodeClaim, PendingLogin, SessionStore, StoreError, MAX_PENDING_PER_BROWSER};
use super::{Clock, SessionId, SessionRecord};

/// How long a login may stay pending (the state cookie lives as long).
pub const PENDING_LOGIN_TTL: Duration = Duration::from_secs(600);
/// How long exchanged codes are remembered: Clever codes live 60 s; keep them a while longer.
pub const CODE_MEMORY_TTL: Duration = Duration::from_secs(300);

/// Sessions kept in this process only; lost on restart.
#[derive(Clone)]
pub struct MemoryStore {
    sessions: Cache<SessionId, Arc<SessionRecord>>,
    pending: Cache<String, PendingLogin>,
    /// Logins started per browser binding in the last `PENDING_LOGIN_TTL`.
    pending_per_browser: Cache<String, Arc<AtomicU32>>,
    codes: Cache<String, CodeClaim>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("sessions", &self.sessions.entry_count())
            .finish()
    }
}

/// Capacity bounds, so a flood of logins cannot grow memory without limit.
#[derive(Debug, Clone, Copy)]
pub struct MemoryLimits {
    pub max_sessions: u64,
    pub max_pending_logins: u64,
    pub max_codes: u64,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            max_sessions: 2_000_000,
            max_pending_logins: 200_000,
            max_codes: 200_000,
        }
    }
}

impl MemoryStore {
    /// `ttl` bounds how long moka keeps a session; expiry itself is checked against `clock`.
    pub fn new(ttl: Duration, clock: Arc<dyn Clock>, limits: MemoryLimits) -> Self {
        MemoryStore {
            sessions: Cache::builder()
                .max_capacity(limits.max_sessions)
                .time_to_live(ttl)
                .build(),
            pending: Cache::builder()
                .max_capacity(limits.max_pending_logins)
                .time_to_live(PENDING_LOGIN_TTL)
                .build(),
            pending_per_browser: Cache::builder()
                .max_capacity(limits.max_pending_logins)
                .time_to_live(PENDING_LOGIN_TTL)
                .build(),
            codes: Cache::builder()
                .max_capacity(limits.max_codes)
                .time_to_live(CODE_MEMORY_TTL)
                .build(),
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
        Ok(found.filter(|p| {
            self.clock
                .now()
                .duration_since(p.created_at)
                .map(|age| age < PENDING_LOGIN_TTL)
                .unwrap_or(true)
        }))
    }

    async fn claim_code(
        &self,
        code_key: &str,
        claim: CodeClaim,
    ) -> Result<Option<CodeClaim>, StoreError> {
        let entry = self
            .codes
            .entry(code_key.to_string())
            .or_insert(claim)
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
    //! The store conformance tests, run against the memory store.
    use super::*;
    use crate::identity::{Identity, UserType};
    use crate::secret::Secret;
    use crate::session::ManualClock;

    fn store(clock: Arc<ManualClock>) -> MemoryStore {
        MemoryStore::new(Duration::from_secs(7200), clock, MemoryLimits::default())
    }

    fn record(clock: &ManualClock, ttl: Duration) -> SessionRecord {
        let identity = Identity {
            user_id: "5fc43758db087d0be186c29d".into(),
            district_id: Some("5d0a9e5d0958b300014e49d2".into()),
            user_types: vec![UserType::Teacher],
            name: None,
            email: None,
            authorized_by: Some("district".into()),
        };
        SessionRecord::new(identity, Secret::new("ilTOKEN"), clock.now(), ttl)
    }

    #[tokio::test]
    async fn get_live_session_found() {
        let clock = Arc::new(ManualClock::new());
        let s = store(clock.clone());
        let id = SessionId::generate();
        s.insert(&id, record(&clock, Duration::from_secs(60)))
            .await
            .unwrap();
        let got = s.get(&id).await.unwrap().expect("session");
        assert_eq!(got.identity.user_id, "5fc43758db087d0be186c29d");
    }

    #[tokio::test]
    async fn get_after_ttl_on_clock_none() {
        let clock = Arc::new(ManualClock::new());
        let s = store(clock.clone());
        let id = SessionId::generate();
        s.insert(&id, record(&clock, Duration::from_secs(60)))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(59));
        assert!(s.get(&id).await.unwrap().is_some());
        clock.advance(Duration::from_secs(1));
        assert!(s.get(&id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn remove_revokes_session() {
        let clock = Arc::new(ManualClock::new());
        let s = store(clock.clone());
        let id = SessionId::generate();
        s.insert(&id, record(&clock, Duration::from_secs(60)))
            .await
            .unwrap();
        s.remove(&id).await.unwrap();
        assert!(s.get(&id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn session_count_sees_inserts_and_removals_at_once() {
        let clock = Arc::new(ManualClock::new());
        let s = store(clock.clone());
        assert_eq!(s.session_count().await.unwrap(), 0);
        let (a, b) = (SessionId::generate(), SessionId::generate());
        for id in [&a, &b] {
            s.insert(id, record(&clock, Duration::from_secs(60)))
                .await
                .unwrap();
        }
        assert_eq!(s.session_count().await.unwrap(), 2);
        s.remove(&a).await.unwrap();
        assert_eq!(s.session_count().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn take_pending_is_single_use() {
        let clock = Arc::new(ManualClock::new());
        let s = store(clock.clone());
        let p = PendingLogin {
            binding: "b".into(),
            return_to: "/x".into(),
            from_clever: false,
            created_at: clock.now(),
        };
        s.put_pending("st", p.clone()).await.unwrap();
        assert_eq!(s.take_pending("st").await.unwrap(), Some(p));
        assert_eq!(s.take_pending("st").await.unwrap(), None);
    }

    #[tokio::test]
    async fn take_pending_expired_on_clock_none() {
        let clock = Arc::new(ManualClock::new());
        let s = store(clock.clone());
        let p = PendingLogin {
            binding: "b".into(),
            return_to: "/x".into(),
            from_clever: false,
            created_at: clock.now(),
        };
        s.put_pending("st", p).await.unwrap();
        clock.advance(PENDING_LOGIN_TTL);
        assert_eq!(s.take_pending("st").await.unwrap(), None);
    }

    #[tokio::test]
    async fn put_pending_capped_per_browser_not_globally() {
        let clock = Arc::new(ManualClock::new());
        let s = store(clock.clone());
        let p = |b: &str| PendingLogin {
            binding: b.into(),
            return_to: "/".into(),
            from_clever: false,
            created_at: clock.now(),
        };
        for i in 0..MAX_PENDING_PER_BROWSER {
            s.put_pending(&format!("a{i}"), p("A")).await.unwrap();
        }
        assert!(matches!(
            s.put_pending("one-too-many", p("A")).await,
            Err(StoreError::TooManyPending)
        ));
        s.put_pending("b0", p("B")).await.unwrap();
        assert!(s.take_pending("a0").await.unwrap().is_some());
        // A finished login frees its place.
        s.put_pending("a-next", p("A")).await.unwrap();
    }

    #[tokio::test]
    async fn claim_code_second_claim_sees_first() {
        let clock = Arc::new(ManualClock::new());
        let s = store(clock);
        let c = CodeClaim {
            binding: "b".into(),
            return_to: "/".into(),
            session: None,
        };
        assert_eq!(s.claim_code("k", c.clone()).await.unwrap(), None);
        assert_eq!(s.claim_code("k", c.clone()).await.unwrap(), Some(c));
    }

    #[tokio::test]
    async fn claim_code_concurrent_exactly_one_owner() {
        let clock = Arc::new(ManualClock::new());
        let s = store(clock);
        let mut tasks = Vec::new();
        for i in 0..32 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let c = CodeClaim {
                    binding: format!("b{i}"),
                    return_to: "/".into(),
                    session: None,
                };
                s.claim_code("same", c).await.unwrap().is_none()
            }));
        }
        let mut owners = 0;
        for t in tasks {
            if t.await.unwrap() {
                owners += 1;
            }
        }
        assert_eq!(owners, 1);
    }
}
