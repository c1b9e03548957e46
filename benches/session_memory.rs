//! Memory per session in the in-process store: fills a `MemoryStore` with 100 000 and then
//! 1 000 000 realistic sessions (each size in a fresh process, so freed memory from one run
//! does not hide the next) and reports the growth of VmRSS per session.
//!
//! A session keeps the fields of the user's record that the configuration uses, so each size
//! runs for three configurations (`profile=`): `default` (no `set_headers`: id, district, roles,
//! name, email), `set_headers` (the four headers of gateway.md section 4b's example) and
//! `every_field` (headers that name every field of the record).
//!
//! `cargo bench --bench session_memory` prints one line per profile and size:
//! `profile=P sessions=N rss_before_mib=.. rss_after_mib=.. bytes_per_session=..`.
//! Target: 1M sessions within 1 GiB.
//!
//! Sign-ins in progress are not measured: the server keeps nothing for them (the browser
//! holds each in a login cookie, `auth::login_state`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use clever_gateway::config::Config;
use clever_gateway::identity::{Field, Identity, UserType};
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

const CLEVER: &str = "[clever]\nclient_id = \"c\"\nclient_secret_env = \"S\"\n\
    redirect_uri = \"https://apps.example-district.org/oauth/clever/callback\"\n\
    discover_district_tokens = true\n[[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9\"\n";

/// The `set_headers` of each profile.
fn profile(name: &str) -> Config {
    let set = match name {
        "default" => "",
        "set_headers" => {
            "[upstream.set_headers]\n\
             \"X-Remote-User\" = { student = \"{student_number}\", teacher = [\"{district_username}\", \"{email|local|lower}\"], default = \"{email|lower}\" }\n\
             \"X-Grade\" = \"{grade}\"\n\
             \"X-Display-Name\" = \"{last_name}, {first_name}\"\n\
             \"X-App-Role\" = { district_admin = \"admin\", teacher = \"instructor\", staff = \"instructor\", student = \"learner\" }\n"
        }
        "every_field" => {
            "[upstream.set_headers]\n\
             \"X-A\" = \"{first_name}|{middle_name}|{last_name}|{sis_id}|{student_number}\"\n\
             \"X-B\" = \"{teacher_number}|{staff_id}|{state_id}|{district_username}|{legacy_id}\"\n\
             \"X-C\" = \"{grade}|{graduation_year}|{title}|{department}|{school_id}\"\n\
             \"X-D\" = \"{school_ids}|{section_ids}|{email}|{name}\"\n"
        }
        other => panic!("unknown profile {other}"),
    };
    clever_gateway::config::parse_str(&format!("{CLEVER}{set}"), "bench.toml").expect("config")
}

const PROFILES: [&str; 3] = ["default", "set_headers", "every_field"];

/// A session as a real login leaves it: 24-hex ids, one or two roles, the whole record Clever
/// shows a Secure Sync district (names, email, SIS and state ids, numbers, username, grade,
/// school), the district's authorization and a 40-character token; kept as `cfg` says, with
/// its header values rendered (as after its first request).
fn record(i: usize, cfg: &Config) -> SessionRecord {
    let b = Identity::builder(&format!("5fc43758db087d{i:010x}"))
        .district("5d0a9e5d0958b300014e49d2")
        .with(Field::AuthorizedBy, "district")
        .with(Field::FirstName, "Student")
        .with(Field::LastName, &format!("Number{i}"))
        .with(Field::Name, &format!("Student Number{i}"))
        .with(
            Field::Email,
            &format!("student.number{i}@example-district.org"),
        )
        .with(Field::SisId, &format!("{}", 100_000 + i))
        .with(Field::StateId, &format!("CA{:08}", i))
        .with(Field::DistrictUsername, &format!("snumber{i}"))
        .with(Field::LegacyId, &format!("59d7c9c2e3a1b0{i:010x}"))
        .with(Field::SchoolId, "5d0a9e5d0958b3005c4e0001")
        .ids(Field::SchoolIds, ["5d0a9e5d0958b3005c4e0001"]);
    let b = if i % 10 == 0 {
        b.role(UserType::Teacher)
            .role(UserType::DistrictAdmin)
            .with(Field::TeacherNumber, &format!("T{i}"))
            .with(Field::Title, "Teacher")
    } else if i % 3 == 0 {
        b.role(UserType::Teacher)
            .with(Field::TeacherNumber, &format!("T{i}"))
            .with(Field::Title, "Teacher")
    } else {
        b.role(UserType::Student)
            .with(Field::StudentNumber, &format!("{}", 200_000 + i))
            .with(Field::Grade, &format!("{}", i % 12 + 1))
            .with(Field::GraduationYear, &format!("{}", 2026 + i % 12))
    };
    let rec = SessionRecord::new(
        b.build().retain(cfg.kept_fields),
        Secret::new(random_token(30)),
        SystemTime::now(),
        Duration::from_secs(7200),
    );
    // As after the session's first request: the values rendered, one handed out (which
    // shares the record's buffer: bytes promotes it to a reference-counted one).
    std::hint::black_box(rec.header_value(&cfg.header_specs, 0));
    rec
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

fn child(name: &str, n: usize) {
    let cfg = profile(name);
    runtime().block_on(async {
        let store = store();
        // Warm the store up (moka's first allocations), then measure from here.
        let warm = SessionId::generate();
        store.insert(&warm, record(0, &cfg)).await.unwrap();
        store.session_count().await.unwrap();
        let before = vm_rss_kib();
        let t0 = Instant::now();
        for i in 0..n {
            store
                .insert(&SessionId::generate(), record(i, &cfg))
                .await
                .unwrap();
        }
        let count = store.session_count().await.unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let after = vm_rss_kib();
        assert_eq!(count as usize, n + 1, "every session kept");
        let per = (after.saturating_sub(before) * 1024) as f64 / n as f64;
        println!(
            "profile={name} sessions={n} rss_before_mib={:.0} rss_after_mib={:.0} bytes_per_session={per:.0} \
             projected_1m_mib={:.0} fill_seconds={secs:.1}",
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            per * 1e6 / (1024.0 * 1024.0)
        );
        std::hint::black_box(&store);
    });
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (name, n) = spec.split_once(':').expect("profile:size");
        child(name, n.parse().expect("size"));
        return;
    }
    // `cargo test --benches` runs bench binaries once as a smoke test: stay small there.
    let quick = !std::env::args().any(|a| a == "--bench");
    let exe = std::env::current_exe().expect("current_exe");
    let sizes: &[usize] = if quick { &[1_000] } else { &SIZES };
    for name in PROFILES {
        for &n in sizes {
            let status = std::process::Command::new(&exe)
                .env(CHILD_ENV, format!("{name}:{n}"))
                .status()
                .expect("run child");
            assert!(status.success(), "child for {name} {n} sessions failed");
        }
    }
}
