//! Memory per session in each store, measured through the store API (docs/scaling.md).
//! Not part of the normal run:
//!
//! ```sh
//! cargo test --release --test scaling -- --ignored --nocapture
//! ```
//!
//! Each test fills `SESSIONS_FOR_SCALING` (default 100000) sessions shaped like a real login
//! (24-hex ids, a name and an email, one role, a 40-character access token, 2 h TTL).

use std::sync::Arc;
use std::time::Duration;

use clever_gateway::identity::{Identity, UserType};
use clever_gateway::metrics::Metrics;
use clever_gateway::secret::Secret;
use clever_gateway::session::memory::MemoryLimits;
use clever_gateway::session::testing::{RedisServer, SKIPPED};
use clever_gateway::session::{
    Clock, LoginTimes, MemoryStore, PrimaryAt, RedisSettings, RedisStore, SessionId, SessionRecord,
    SessionStore, SystemClock,
};

const TTL: Duration = Duration::from_secs(2 * 3600);

fn count() -> usize {
    std::env::var("SESSIONS_FOR_SCALING")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn record(i: usize, clock: &dyn Clock) -> SessionRecord {
    let identity = Identity {
        user_id: format!("{i:024x}"),
        district_id: Some("5d0a9e5d0958b300014e49d2".into()),
        user_types: vec![UserType::Student],
        name: Some(format!("Student Number {i}")),
        email: Some(format!("student{i}@example-district.org")),
        authorized_by: Some("district".into()),
        school_ids: Vec::new(),
        section_ids: Vec::new(),
    };
    let token = format!("{i:040x}");
    SessionRecord::new(identity, Secret::new(token), clock.now(), TTL)
}

/// Resident set size of this process, in bytes (Linux).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `used_memory` from `INFO memory`, in bytes.
fn used_memory(server: &RedisServer) -> u64 {
    let info = server.command("INFO memory").unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO memory")
}

/// Inserts `n` sessions from 64 tasks at once; returns the ids.
async fn fill(store: Arc<dyn SessionStore>, n: usize) -> Vec<SessionId> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut tasks = Vec::new();
    for t in 0..64 {
        let (store, clock) = (store.clone(), clock.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in (t..n).step_by(64) {
                let id = SessionId::generate();
                store.insert(&id, record(i, &*clock)).await.unwrap();
                ids.push(id);
            }
            ids
        }));
    }
    let mut ids = Vec::with_capacity(n);
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: cargo test --release --test scaling -- --ignored --nocapture"]
async fn scaling_memory_store_bytes_per_session() {
    let n = count();
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(
        TTL,
        Arc::new(SystemClock),
        MemoryLimits::default(),
    ));
    // Warm up allocator and moka before the baseline.
    let warm = fill(store.clone(), 1000).await;
    for id in &warm {
        store.remove(id).await.unwrap();
    }
    store.session_count().await.unwrap();
    let before = rss();
    let ids = fill(store.clone(), n).await;
    assert_eq!(store.session_count().await.unwrap(), n as u64);
    let after = rss();
    // The ids are the test's, not the store's: subtract them (String of 43 bytes + header).
    let ids_bytes = (ids.len() * (43 + 24)) as u64;
    let per = (after - before).saturating_sub(ids_bytes) / n as u64;
    println!(
        "memory store: {n} sessions, RSS {} -> {} MiB, about {per} bytes per session",
        before >> 20,
        after >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: cargo test --release --test scaling -- --ignored --nocapture"]
async fn scaling_redis_store_bytes_per_session() {
    let Some(server) = RedisServer::start() else {
        return eprintln!("{SKIPPED}");
    };
    let n = count();
    let store = RedisStore::new(
        &RedisSettings {
            at: PrimaryAt::Url(server.url()),
            password: None,
            login: LoginTimes::default(),
        },
        Arc::new(SystemClock),
        Arc::new(Metrics::new().unwrap()),
    )
    .unwrap();
    let store: Arc<dyn SessionStore> = Arc::new(store);
    let before = used_memory(&server);
    let started = std::time::Instant::now();
    fill(store.clone(), n).await;
    let took = started.elapsed();
    assert_eq!(store.session_count().await.unwrap(), n as u64);
    let after = used_memory(&server);
    let per = (after - before) / n as u64;
    println!(
        "redis store: {n} sessions, used_memory {} -> {} MiB, about {per} bytes per session \
         (key, JSON value, expiry, index entry); filled in {:.1}s ({:.0} inserts/s from one \
         process, 64 concurrent)",
        before >> 20,
        after >> 20,
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    let number = |reply: String| {
        reply
            .lines()
            .find_map(|l| l.strip_prefix(':'))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let index = number(
        server
            .command("MEMORY USAGE clever-gateway:sessions")
            .unwrap(),
    );
    println!(
        "redis store: of which the sessions index (sorted set) {} bytes per session",
        index / n as u64
    );
    let key = server.command("RANDOMKEY").unwrap();
    if let Some(key) = key
        .lines()
        .find(|l| l.starts_with("clever-gateway:session:"))
    {
        let one = number(server.command(&format!("MEMORY USAGE {key}")).unwrap());
        let len = number(server.command(&format!("STRLEN {key}")).unwrap());
        println!("redis store: one session key: {one} bytes (JSON value {len} bytes)");
    }
}
