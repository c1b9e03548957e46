//! The session-store conformance suite: one behaviour per function, run against every store
//! by [`store_conformance!`] (memory: `memory.rs` tests; Redis: `redis.rs` tests).

use std::sync::Arc;
use std::time::Duration;

use super::store::{CodeClaim, SessionStore};
use super::{Clock, ManualClock, SessionId, SessionRecord};
use crate::identity::{Field, FieldSet, Identity, UserType, ValueSpec, CORE_FIELDS};
use crate::secret::Secret;

/// A store under test, and whatever must live as long as it (a `redis-server`).
pub(crate) struct Fixture {
    pub store: Arc<dyn SessionStore>,
    pub _keep: Option<Box<dyn std::any::Any + Send>>,
}

/// One `#[tokio::test]` per behaviour below, for the store `$make` builds from a
/// `Arc<ManualClock>` (`None`: the store cannot run here; the test says SKIPPED and passes).
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::session::conformance::store_conformance!(@tests $make;
            get_live_session_found,
            get_unknown_session_none,
            get_after_ttl_on_clock_none,
            insert_keeps_identity_and_access_token,
            remove_revokes_session,
            session_count_sees_inserts_and_removals_at_once,
            claim_code_second_claim_sees_first,
            claim_code_concurrent_exactly_one_owner,
            complete_code_records_session,
            ready_when_store_reachable
        );
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let clock = std::sync::Arc::new($crate::session::ManualClock::new());
                let make = $make;
                let Some(fixture) = make(clock.clone()) else {
                    eprintln!("{}", $crate::testing::redis::SKIPPED);
                    return;
                };
                $crate::session::conformance::$name(&fixture, &clock).await;
            }
        )*
    };
}
pub(crate) use store_conformance;

fn record(clock: &ManualClock, ttl: Duration) -> SessionRecord {
    let identity = Identity::builder("5fc43758db087d0be186c29d")
        .district("5d0a9e5d0958b300014e49d2")
        .role(UserType::Teacher)
        .with(Field::Name, "Ms. Émilie Teacher")
        .with(Field::AuthorizedBy, "district")
        .with(Field::StudentNumber, "S-1")
        .build()
        .retain(CORE_FIELDS.union(FieldSet::of(&[Field::StudentNumber, Field::Grade])));
    SessionRecord::new(identity, Secret::new("ilTOKEN"), clock.now(), ttl)
}

fn claim(binding: &str) -> CodeClaim {
    CodeClaim {
        binding: binding.into(),
        return_to: "/".into(),
        session: None,
    }
}

pub(crate) async fn get_live_session_found(f: &Fixture, clock: &ManualClock) {
    let id = SessionId::generate();
    f.store
        .insert(&id, record(clock, Duration::from_secs(60)))
        .await
        .unwrap();
    let got = f.store.get(&id).await.unwrap().expect("session");
    assert_eq!(got.identity.user_id(), "5fc43758db087d0be186c29d");
}

pub(crate) async fn get_unknown_session_none(f: &Fixture, _clock: &ManualClock) {
    assert!(f.store.get(&SessionId::generate()).await.unwrap().is_none());
}

pub(crate) async fn get_after_ttl_on_clock_none(f: &Fixture, clock: &ManualClock) {
    let id = SessionId::generate();
    f.store
        .insert(&id, record(clock, Duration::from_secs(60)))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(59));
    assert!(f.store.get(&id).await.unwrap().is_some());
    clock.advance(Duration::from_secs(1));
    assert!(f.store.get(&id).await.unwrap().is_none());
}

pub(crate) async fn insert_keeps_identity_and_access_token(f: &Fixture, clock: &ManualClock) {
    let id = SessionId::generate();
    let rec = record(clock, Duration::from_secs(60));
    let specs = [
        ValueSpec::field(Field::Name),
        ValueSpec::field(Field::UserType),
        ValueSpec::field(Field::StudentNumber),
    ];
    let rendered = |rec: &SessionRecord| -> Vec<Option<http::HeaderValue>> {
        (0..specs.len())
            .map(|i| rec.header_value(&specs, i))
            .collect()
    };
    let (expires, identity, headers) = (rec.expires_at, rec.identity.clone(), rendered(&rec));
    f.store.insert(&id, rec).await.unwrap();
    let got = f.store.get(&id).await.unwrap().expect("session");
    assert_eq!(got.access_token(), "ilTOKEN");
    assert_eq!(got.identity, identity, "the whole record, its kept set too");
    assert_eq!(got.identity.get(Field::Name), Some("Ms. Émilie Teacher"));
    assert_eq!(got.identity.get(Field::StudentNumber), Some("S-1"));
    assert!(got.identity.kept().contains(Field::Grade));
    assert_eq!(rendered(&got), headers, "header values rendered alike");
    let skew = got
        .expires_at
        .duration_since(expires)
        .unwrap_or_else(|e| e.duration());
    assert!(skew < Duration::from_millis(1), "expiry kept to the ms");
}

pub(crate) async fn remove_revokes_session(f: &Fixture, clock: &ManualClock) {
    let id = SessionId::generate();
    f.store
        .insert(&id, record(clock, Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(f.store.get(&id).await.unwrap().is_some());
    f.store.remove(&id).await.unwrap();
    assert!(f.store.get(&id).await.unwrap().is_none());
}

pub(crate) async fn session_count_sees_inserts_and_removals_at_once(
    f: &Fixture,
    clock: &ManualClock,
) {
    assert_eq!(f.store.session_count().await.unwrap(), 0);
    let (a, b) = (SessionId::generate(), SessionId::generate());
    for id in [&a, &b] {
        f.store
            .insert(id, record(clock, Duration::from_secs(60)))
            .await
            .unwrap();
    }
    assert_eq!(f.store.session_count().await.unwrap(), 2);
    f.store.remove(&a).await.unwrap();
    assert_eq!(f.store.session_count().await.unwrap(), 1);
}

pub(crate) async fn claim_code_second_claim_sees_first(f: &Fixture, _clock: &ManualClock) {
    let c = claim("b");
    assert_eq!(f.store.claim_code("k", c.clone()).await.unwrap(), None);
    assert_eq!(
        f.store.claim_code("k", claim("other")).await.unwrap(),
        Some(c)
    );
}

pub(crate) async fn claim_code_concurrent_exactly_one_owner(f: &Fixture, _clock: &ManualClock) {
    let mut tasks = Vec::new();
    for i in 0..32 {
        let s = f.store.clone();
        tasks.push(tokio::spawn(async move {
            s.claim_code("same", claim(&format!("b{i}")))
                .await
                .unwrap()
                .is_none()
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

pub(crate) async fn complete_code_records_session(f: &Fixture, _clock: &ManualClock) {
    assert_eq!(f.store.code("k").await.unwrap(), None);
    f.store.claim_code("k", claim("b")).await.unwrap();
    let id = SessionId::generate();
    let done = CodeClaim {
        session: Some(id.clone()),
        ..claim("b")
    };
    f.store.complete_code("k", done.clone()).await.unwrap();
    assert_eq!(f.store.code("k").await.unwrap(), Some(done));
}

pub(crate) async fn ready_when_store_reachable(f: &Fixture, _clock: &ManualClock) {
    assert!(f.store.ready().await);
}
