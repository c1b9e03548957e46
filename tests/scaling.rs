//! Memory per session in each store, and what a sign-in costs Redis (with and without a
//! replica acknowledging each write), measured through the store API (docs/scaling.md).
//! Not part of the normal run:
//!
//! ```sh
//! cargo test --release --test scaling -- --ignored --nocapture
//! ```
//!
//! The memory tests fill `SESSIONS_FOR_SCALING` (default 100000) sessions shaped like a real
//! login (24-hex ids, a name and an email, one role, a 40-character access token, 2 h TTL).
//! The sign-in test runs `SIGN_INS_FOR_SCALING` (default 2000) sign-ins' store operations one
//! after the other (latency), then 20 000 of them 64 at a time (Redis CPU per sign-in).

use std::sync::Arc;
use std::time::Duration;

use clever_gateway::identity::{Field, Identity, UserType, CORE_FIELDS};
use clever_gateway::process::metrics::Metrics;
use clever_gateway::secret::Secret;
use clever_gateway::session::memory::MemoryLimits;
use clever_gateway::session::{
    Clock, CodeClaim, LoginTimes, MemoryStore, PrimaryAt, RedisSettings, RedisStore, SessionId,
    SessionRecord, SessionStore, SystemClock,
};
use clever_gateway::testing::redis::{RedisServer, SKIPPED};

const TTL: Duration = Duration::from_secs(2 * 3600);

fn count() -> usize {
    std::env::var("SESSIONS_FOR_SCALING")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn record(i: usize, clock: &dyn Clock) -> SessionRecord {
    let identity = Identity::builder(&format!("{i:024x}"))
        .district("5d0a9e5d0958b300014e49d2")
        .role(UserType::Student)
        .with(Field::Name, &format!("Student Number {i}"))
        .with(Field::Email, &format!("student{i}@example-district.org"))
        .with(Field::AuthorizedBy, "district")
        .build()
        .retain(CORE_FIELDS);
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
            idle: None,
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

/// What the store does for one sign-in, in the gateway's order: at the callback (the sign-in in
/// progress lives in the browser's cookie), claim the code, write the session, record the
/// code's session. All three are writes the browser is answered for.
async fn one_sign_in(store: &dyn SessionStore, i: usize, clock: &dyn Clock) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (binding, code) = (format!("binding-{k:032x}"), format!("{k:064x}"));
    let claim = CodeClaim {
        binding,
        return_to: "/".into(),
        session: None,
    };
    assert!(store
        .claim_code(&code, claim.clone())
        .await
        .unwrap()
        .is_none());
    let id = SessionId::generate();
    store.insert(&id, record(i, clock)).await.unwrap();
    let done = CodeClaim {
        session: Some(id),
        ..claim
    };
    store.complete_code(&code, done).await.unwrap();
}

fn redis_store(server: &RedisServer) -> (Arc<RedisStore>, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new().unwrap());
    let store = RedisStore::new(
        &RedisSettings {
            at: PrimaryAt::Url(server.url()),
            password: None,
            login: LoginTimes::default(),
            idle: None,
        },
        Arc::new(SystemClock),
        metrics.clone(),
    )
    .unwrap();
    (Arc::new(store), metrics)
}

/// A number from `INFO` (`field:value` lines).
fn info_number(server: &RedisServer, section: &str, field: &str) -> f64 {
    let info = server.command(&format!("INFO {section}")).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in INFO {section}"))
}

/// Milliseconds per sign-in at the 50th and 99th percentile, one sign-in at a time.
async fn sign_in_latency(store: Arc<RedisStore>, n: usize) -> (f64, f64) {
    let clock = SystemClock;
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let t = std::time::Instant::now();
        one_sign_in(&*store, i, &clock).await;
        took.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    (took[n / 2], took[n * 99 / 100])
}

/// Waits until the store has checked its primary (and so seen its replicas: the health check
/// runs at start and every second).
async fn settled(store: &RedisStore) {
    while !store.is_up() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: cargo test --release --test scaling -- --ignored --nocapture"]
async fn scaling_redis_sign_in_cost_with_and_without_a_replica() {
    let Some(alone) = RedisServer::start() else {
        return eprintln!("{SKIPPED}");
    };
    let primary = RedisServer::start().unwrap();
    let _replica = RedisServer::start_replica_of(&primary).unwrap();
    let n: usize = std::env::var("SIGN_INS_FOR_SCALING")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);

    // Latency: the same sign-ins, without a replica (no WAIT) and with one (WAIT 1 per write),
    // interleaved in rounds so both see the same machine.
    let (bare, _) = redis_store(&alone);
    let (acked, acked_metrics) = redis_store(&primary);
    settled(&bare).await;
    settled(&acked).await;
    // Per round: p50 and p99 without, then with the replica.
    let mut rounds: Vec<[f64; 4]> = Vec::new();
    for _ in 0..3 {
        let b = sign_in_latency(bare.clone(), n / 3).await;
        let a = sign_in_latency(acked.clone(), n / 3).await;
        rounds.push([b.0, b.1, a.0, a.1]);
    }
    let median = |at: usize| {
        let mut v: Vec<f64> = rounds.iter().map(|r| r[at]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let acks = acked_metrics.render().unwrap();
    let replica_acks = clever_gateway::process::metrics::parse_text(&acks)
        .into_iter()
        .find(|s| {
            s.name == "clever_gateway_redis_writes_total"
                && s.labels.iter().any(|(_, v)| v == "replica")
        })
        .map_or(0.0, |s| s.value);
    println!(
        "sign-in store operations, one at a time ({n} sign-ins in 3 interleaved rounds, medians \
         of the rounds): without a replica p50 {:.2} ms p99 {:.2} ms; with a replica \
         acknowledging each write (WAIT 1) p50 {:.2} ms p99 {:.2} ms; writes acknowledged by \
         the replica: {replica_acks}",
        median(0),
        median(1),
        median(2),
        median(3),
    );

    // Redis CPU per sign-in, 64 at a time, on the primary with a replica.
    let total = 20_000;
    primary.command("CONFIG RESETSTAT").unwrap();
    let cpu0 = info_number(&primary, "cpu", "used_cpu_user")
        + info_number(&primary, "cpu", "used_cpu_sys");
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for t in 0..64 {
        let store = acked.clone();
        tasks.push(tokio::spawn(async move {
            let clock = SystemClock;
            for i in (t..total).step_by(64) {
                one_sign_in(&*store, 1_000_000 + i, &clock).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = info_number(&primary, "cpu", "used_cpu_user")
        + info_number(&primary, "cpu", "used_cpu_sys")
        - cpu0;
    let stats = primary.command("INFO commandstats").unwrap();
    let mut calls = 0.0;
    let mut usec = 0.0;
    for line in stats.lines().filter(|l| l.starts_with("cmdstat_")) {
        let field = |name: &str| -> f64 {
            line.split([':', ','])
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        calls += field("calls");
        usec += field("usec");
    }
    println!(
        "sign-ins 64 at a time: {total} in {secs:.1} s ({:.0}/s from one debug-build process); \
         Redis primary: {:.1} commands and {:.0} us of command time per sign-in (commandstats), \
         {:.0} us of process CPU per sign-in (used_cpu_user+sys, network I/O included) -> one \
         Redis core would serve about {:.0} sign-ins/s",
        total as f64 / secs,
        calls / total as f64,
        usec / total as f64,
        cpu * 1e6 / total as f64,
        total as f64 / cpu,
    );

    // A signed-in request that misses the cache: one GET of the session.
    let ids: Vec<SessionId> = (0..n).map(|_| SessionId::generate()).collect();
    let clock = SystemClock;
    for (i, id) in ids.iter().enumerate() {
        acked.insert(id, record(i, &clock)).await.unwrap();
    }
    let (reader, _) = redis_store(&primary);
    primary.command("CONFIG RESETSTAT").unwrap();
    let cpu0 = info_number(&primary, "cpu", "used_cpu_user")
        + info_number(&primary, "cpu", "used_cpu_sys");
    let mut tasks = Vec::new();
    let ids = Arc::new(ids);
    for t in 0..64 {
        let (store, ids) = (reader.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            for i in (t..ids.len()).step_by(64) {
                assert!(store.get(&ids[i]).await.unwrap().is_some());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let cpu = info_number(&primary, "cpu", "used_cpu_user")
        + info_number(&primary, "cpu", "used_cpu_sys")
        - cpu0;
    println!(
        "session reads that miss the cache: {:.0} us of Redis process CPU each -> one Redis core \
         would serve about {:.0} of them per second",
        cpu * 1e6 / n as f64,
        n as f64 / cpu
    );
}
