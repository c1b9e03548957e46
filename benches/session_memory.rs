//! Memory per session in the in-process store: fills a `MemoryStore` with 100 000 and then
//! 1 000 000 realistic sessions (each size in a fresh process, so freed memory from one run
//! does not hide the next) and reports the growth of VmRSS per session.
//!
//! `cargo bench --bench session_memory` prints one line per size:
//! `sessions=N rss_before_mib=.. rss_after_mib=.. bytes_per_session=..`.
//! Target: 1M sessions within 1 GiB.
//!
//! Sign-ins in progress are not measured: the server keeps nothing for them (the browser
//! holds each in a login cookie, `auth::login_state`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clever_gateway::identity::{Identity, IdentityHeader, UserType};
use clever_gateway::secret::{random_token, Secret};
use clever_gateway::session::memory::MemoryLimits;
use clever_gateway::session::{MemoryStore, SessionId, SessionRecord, SessionStore, SystemClock};

/// The gateway binary's allocator (src/main.rs), so the figures are the binary's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CHILD_ENV: &str = "SESSION_MEMORY_CHILD";
const SIZES: [usize; 2] = [100_000, 1_000_000];

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A session as a real login leaves it: 24-hex ids, one or two roles, name and email, the
/// district's authorization and a 40-character token.
fn record(i: usize) -> SessionRecord {
    let types = if i % 10 == 0 {
        vec![UserType::Teacher, UserType::DistrictAdmin]
    } else if i % 3 == 0 {
        vec![UserType::Teacher]
    } else {
        vec![UserType::Student]
    };
    SessionRecord::new(
        Identity {
            user_id: format!("5fc43758db087d{i:010x}"),
            district_id: Some("5d0a9e5d0958b300014e49d2".into()),
            user_types: types,
            name: Some(format!("Student Number{i}")),
            email: Some(format!("student.number{i}@example-district.org")),
            authorized_by: Some("district".into()),
            school_ids: Vec::new(),
            section_ids: Vec::new(),
        }
        .normalize(),
        Secret::new(random_token(30)),
        SystemTime::now(),
        Duration::from_secs(7200),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The gateway's memory store with its default limits and a 2 h session lifetime.
fn store() -> MemoryStore {
    MemoryStore::new(
        Duration::from_secs(7200),
        Arc::new(SystemClock),
        MemoryLimits::default(),
    )
}

fn child(n: usize) {
    runtime().block_on(async {
        let store = store();
        // Warm the store up (moka's first allocations), then measure from here.
        let warm = SessionId::generate();
        store.insert(&warm, record(0)).await.unwrap();
        store.session_count().await.unwrap();
        let before = vm_rss_kib();
        let t0 = Instant::now();
        for i in 0..n {
            let rec = record(i);
            // As after the session's first request: handing out a header value shares the
            // rendered buffer (bytes promotes it to a reference-counted one).
            std::hint::black_box(rec.headers.get(IdentityHeader::UserId));
            store.insert(&SessionId::generate(), rec).await.unwrap();
        }
        let count = store.session_count().await.unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let after = vm_rss_kib();
        assert_eq!(count as usize, n + 1, "every session kept");
        let per = (after.saturating_sub(before) * 1024) as f64 / n as f64;
        println!(
            "sessions={n} rss_before_mib={:.0} rss_after_mib={:.0} bytes_per_session={per:.0} \
             projected_1m_mib={:.0} fill_seconds={secs:.1}",
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            per * 1e6 / (1024.0 * 1024.0)
        );
        std::hint::black_box(&store);
    });
}

fn main() {
    if let Ok(n) = std::env::var(CHILD_ENV) {
        child(n.parse().expect("size"));
        return;
    }
    // `cargo test --benches` runs bench binaries once as a smoke test: stay small there.
    let quick = !std::env::args().any(|a| a == "--bench");
    let exe = std::env::current_exe().expect("current_exe");
    let sizes: &[usize] = if quick { &[1_000] } else { &SIZES };
    for &n in sizes {
        let status = std::process::Command::new(&exe)
            .env(CHILD_ENV, n.to_string())
            .status()
            .expect("run child");
        assert!(status.success(), "child for {n} sessions failed");
    }
}
