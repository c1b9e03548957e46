//! `session.idle_timeout` costs a signed-in request no allocation: a session lookup with an
//! idle timeout allocates no more than one without, in the memory store and in the Redis
//! store's L1 (counted on the test's thread by a counting allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clever_gateway::identity::{Identity, UserType};
use clever_gateway::process::metrics::Metrics;
use clever_gateway::secret::Secret;
use clever_gateway::session::memory::MemoryLimits;
use clever_gateway::session::{
    LoginTimes, MemoryStore, PrimaryAt, RedisSettings, RedisStore, SessionId, SessionRecord,
    SessionStore, SystemClock,
};
use clever_gateway::testing::redis::{RedisServer, SKIPPED};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const LOOKUPS: u64 = 2000;

fn record() -> SessionRecord {
    SessionRecord::new(
        Identity::builder("5fc43758db087d0be186c2a1")
            .district("5d0a9e5d0958b300014e49d2")
            .role(UserType::Teacher)
            .build(),
        Secret::new("token"),
        SystemTime::now(),
        Duration::from_secs(7200),
    )
}

/// Allocations on this thread per lookup of one live session, after a warm-up.
async fn allocs_per_lookup(store: &dyn SessionStore) -> f64 {
    let id = SessionId::generate();
    store.insert(&id, record()).await.unwrap();
    for _ in 0..100 {
        assert!(store.get(&id).await.unwrap().is_some());
    }
    let before = ALLOCS.with(Cell::get);
    for _ in 0..LOOKUPS {
        assert!(store.get(&id).await.unwrap().is_some());
    }
    (ALLOCS.with(Cell::get) - before) as f64 / LOOKUPS as f64
}

fn memory(idle: Option<Duration>) -> MemoryStore {
    MemoryStore::new(
        Duration::from_secs(7200),
        Arc::new(SystemClock),
        MemoryLimits {
            idle,
            ..MemoryLimits::default()
        },
    )
}

#[tokio::test(flavor = "current_thread")]
async fn memory_lookup_with_idle_timeout_allocates_no_more() {
    let without = allocs_per_lookup(&memory(None)).await;
    let with = allocs_per_lookup(&memory(Some(Duration::from_secs(1200)))).await;
    eprintln!("memory store: {without:.2} allocations per lookup, {with:.2} with idle_timeout");
    assert!(with <= without + 0.01, "{with} > {without}");
}

fn redis(server: &RedisServer, idle: Option<Duration>) -> RedisStore {
    RedisStore::new(
        &RedisSettings {
            at: PrimaryAt::Url(server.url()),
            password: None,
            login: LoginTimes::default(),
            idle,
        },
        Arc::new(SystemClock),
        Arc::new(Metrics::new().unwrap()),
    )
    .unwrap()
}

/// Waits until the store trusts its L1 (its revocation subscription is live).
async fn subscribed(store: &RedisStore) {
    let id = SessionId::generate();
    store.insert(&id, record()).await.unwrap();
    for _ in 0..200 {
        if store.ready().await {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn redis_l1_lookup_with_idle_timeout_allocates_no_more() {
    let Some(server) = RedisServer::start() else {
        return eprintln!("{SKIPPED}");
    };
    let plain = redis(&server, None);
    subscribed(&plain).await;
    let without = allocs_per_lookup(&plain).await;
    let idle = redis(&server, Some(Duration::from_secs(1200)));
    subscribed(&idle).await;
    let with = allocs_per_lookup(&idle).await;
    eprintln!("redis store (L1): {without:.2} allocations per lookup, {with:.2} with idle_timeout");
    assert!(with <= without + 0.01, "{with} > {without}");
}
