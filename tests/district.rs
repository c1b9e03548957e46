//! District-app tokens through the real binary and the simulator: `[[district]]` config errors,
//! `check --online` (its table and each failure), token discovery and its refresh, school and
//! section ids sent upstream (paging, no Secure Sync, rate limits), `confirm_students`, header
//! spoofing, and tokens never leaking into logs or output.

mod common;

use std::time::{Duration, Instant};

use clever_gateway::sim::{Endpoint, Fault, SimHandle, DEMO_DISTRICT, DEMO_DISTRICT_2};
use common::*;

const D1: &str = DEMO_DISTRICT;
const D2: &str = DEMO_DISTRICT_2;
/// Maria Lopez, teacher in D1 (a Secure Sync district in the simulator): 5 sections.
const TEACHER: &str = "5fc43758db087d0be186c2a1";
/// Sam Okonkwo, teacher in D2 (no Secure Sync).
const TEACHER_B: &str = "60a1f0c2e4b0a1b2c3d4e5f6";
/// Pat Okafor, staff in D1, at two schools.
const STAFF: &str = "5fc43758db087d0be186c2b2";
/// José Ñúñez, student in D1.
const STUDENT: &str = "5fc43758db087d0be186c29d";

const HEADERS: &str = "[upstream.headers]\nschool_ids = \"X-Clever-School-Ids\"\nsection_ids = \"X-Clever-Section-Ids\"\n";
const DISCOVER: &str = "discover_district_tokens = true\n";

/// The simulator's section ids of a teacher (5) as the gateway sends them: sorted, joined.
fn teacher_sections(id: &str) -> String {
    (0..5)
        .map(|i| format!("{}5ec7{i:04x}", &id[..16]))
        .collect::<Vec<_>>()
        .join(",")
}

/// A `[[district]]` table reading its token from `env`.
fn district(id: &str, name: &str, env: &str) -> String {
    format!("\n[[district]]\nid = \"{id}\"\nname = \"{name}\"\ntoken_env = \"{env}\"\n")
}

/// The gateway config: `clever_extra` lines in `[clever]`, one `app` upstream with
/// `upstream_extra`, then `tail`.
fn config(
    port: u16,
    sim: &SimHandle,
    app: &Upstream,
    clever_extra: &str,
    upstream_extra: &str,
    tail: &str,
) -> String {
    let base = base_config(port, sim, "").replacen(
        "timeout = \"4s\"\n",
        &format!("timeout = \"4s\"\n{clever_extra}"),
        1,
    );
    format!(
        "{base}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\n{upstream_extra}\n{tail}",
        app.addr
    )
}

/// Simulator (auto-login `user`), recording upstream and gateway.
struct Rig {
    env: Env,
}

impl std::ops::Deref for Rig {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.env
    }
}

/// Starts a simulator, lets `tweak` adjust it and return extra environment variables, then
/// starts the gateway with the config `make` writes (all again on another port if the gateway
/// finds its port taken).
async fn rig(
    user: &str,
    tweak: impl Fn(&SimHandle) -> Vec<(String, String)>,
    make: impl Fn(u16, &SimHandle, &Upstream) -> String,
    rust_log: &str,
) -> Rig {
    on_a_free_port(async |port| {
        let sim = sim_for(port, Some(user)).await;
        let vars = tweak(&sim);
        let app = Upstream::start().await;
        let cfg = make(port, &sim, &app);
        let mut env: Vec<(&str, &str)> =
            vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.push(("RUST_LOG", rust_log));
        let gw = try_start_gateway_env(port, &cfg, sim.client_secret(), &env).await?;
        Ok(Rig {
            env: Env { sim, app, gw },
        })
    })
    .await
}

/// The simulator's district-app token for `district`, as the environment variable `var`.
fn token_env(sim: &SimHandle, district: &str, var: &str) -> Vec<(String, String)> {
    let token = sim
        .district_token(district)
        .unwrap_or_else(|| panic!("{district} token"));
    vec![(var.to_string(), token)]
}

/// A teacher's gateway with district D1's token from a `[[district]]` table (env
/// `CG_TEST_D1_TOKEN`), `clever_extra` in `[clever]` and both enrichment headers; `prepare`
/// sets the simulator up first.
async fn d1_rig(prepare: impl Fn(&SimHandle), clever_extra: &str, rust_log: &str) -> Rig {
    rig(
        TEACHER,
        |sim| {
            prepare(sim);
            token_env(sim, D1, "CG_TEST_D1_TOKEN")
        },
        |port, sim, app| {
            config(
                port,
                sim,
                app,
                clever_extra,
                HEADERS,
                &district(D1, "Demo", "CG_TEST_D1_TOKEN"),
            )
        },
        rust_log,
    )
    .await
}

/// `user`'s gateway with only district D2's (the sandbox's, no Secure Sync) token from a
/// `[[district]]` table (env `CG_TEST_D2_TOKEN`) and `upstream_extra` on the app upstream.
async fn d2_rig(user: &str, upstream_extra: &str) -> Rig {
    rig(
        user,
        |sim| token_env(sim, D2, "CG_TEST_D2_TOKEN"),
        |port, sim, app| {
            config(
                port,
                sim,
                app,
                "",
                upstream_extra,
                &district(D2, "Sandbox", "CG_TEST_D2_TOKEN"),
            )
        },
        "info",
    )
    .await
}

/// Waits (up to 15 s) until the gateway's log contains `needle`; returns the log.
async fn wait_for_log(gw: &Gateway, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let logs = gw.logs();
        if logs.contains(needle) {
            return logs;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signs a fresh browser in and returns what the upstream received for that request.
async fn login(env: &Env) -> Seen {
    let c = browser();
    let resp = sign_in(env, &c, "/grades").await;
    assert_eq!(resp.status(), 200, "{}", env.gw.logs());
    let seen = env.app.last();
    assert_eq!(seen.uri, "/grades");
    seen
}

// --- enrichment -------------------------------------------------------------------------

#[tokio::test]
async fn school_ids_header_reaches_the_upstream_without_any_extra_clever_call() {
    let rig = rig(
        STAFF,
        |_| vec![],
        |port, sim, app| {
            config(
                port,
                sim,
                app,
                "",
                "[upstream.headers]\nschool_ids = \"X-Clever-School-Ids\"",
                "",
            )
        },
        "info",
    )
    .await;
    let seen = login(&rig).await;
    // The simulator lists the staff member's two schools second one first: sent sorted.
    let first = format!("{}5c4e0001", &D1[..16]);
    let second = format!("{}5c4e0002", &D1[..16]);
    assert_eq!(
        seen.header("x-clever-school-ids"),
        Some(format!("{first},{second}"))
    );
    assert_eq!(seen.header("x-clever-section-ids"), None);
    assert_eq!(rig.sim.calls(Endpoint::Sections), 0);
    assert_eq!(rig.sim.calls(Endpoint::Districts), 0);
}

#[tokio::test]
async fn section_ids_follow_every_page_once_at_login_with_a_discovered_token() {
    let rig = rig(
        TEACHER,
        |sim| {
            sim.set_page_limit(2);
            vec![]
        },
        |port, sim, app| config(port, sim, app, DISCOVER, HEADERS, ""),
        "info",
    )
    .await;
    wait_for_log(&rig.gw, "district-app tokens discovered").await;
    let c = browser();
    let resp = sign_in(&rig, &c, "/grades").await;
    assert_eq!(resp.status(), 200);
    let seen = rig.app.last();
    assert_eq!(
        seen.header("x-clever-section-ids"),
        Some(teacher_sections(TEACHER))
    );
    assert_eq!(
        seen.header("x-clever-school-ids"),
        Some(format!("{}5c4e0001", &D1[..16]))
    );
    // 5 sections, 2 per page: 3 pages, read once at login.
    assert_eq!(rig.sim.calls(Endpoint::Sections), 3);
    let before = rig.sim.total_calls();
    for _ in 0..3 {
        assert_eq!(c.get(rig.gw.url("/x")).send().await.unwrap().status(), 200);
        assert_eq!(
            rig.app.last().header("x-clever-section-ids"),
            Some(teacher_sections(TEACHER))
        );
    }
    assert_eq!(rig.sim.total_calls(), before, "no Clever call after login");
    let me: serde_json::Value = c
        .get(rig.gw.url("/_gateway/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["section_ids"].as_array().unwrap().len(), 5, "{me}");
}

#[tokio::test]
async fn district_without_secure_sync_gets_no_section_header_and_one_log_line() {
    let rig = d2_rig(TEACHER_B, HEADERS).await;
    for _ in 0..2 {
        let seen = login(&rig).await;
        assert_eq!(seen.header("x-clever-section-ids"), None);
        assert_eq!(seen.header("x-clever-user-id").as_deref(), Some(TEACHER_B));
        // On the District SSO tier the sign-in token reads names and email only: no schools.
        assert_eq!(seen.header("x-clever-school-ids"), None);
        assert_eq!(
            seen.header("x-clever-user-type").as_deref(),
            Some("teacher")
        );
    }
    assert_eq!(rig.sim.calls(Endpoint::Sections), 2, "tried at each login");
    let logs = rig.gw.logs();
    assert_eq!(
        logs.matches("no Secure Sync access").count(),
        1,
        "one log line for two logins:\n{logs}"
    );
    assert!(logs.contains(D2), "{logs}");
}

#[tokio::test]
async fn rate_limited_section_fetch_waits_for_the_reset_then_succeeds() {
    let rig = d1_rig(
        |sim| sim.set_fault(Endpoint::Sections, Some(Fault::RateLimitedTimes(2))),
        "",
        "info",
    )
    .await;
    let started = Instant::now();
    let seen = login(&rig).await;
    assert_eq!(
        seen.header("x-clever-section-ids"),
        Some(teacher_sections(TEACHER))
    );
    // Two 429s, each waited out until its reset (the next second), then the page.
    assert_eq!(rig.sim.calls(Endpoint::Sections), 3);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "within clever.timeout"
    );
    assert!(rig.gw.logs().contains("waiting for the reset"));
}

#[tokio::test]
async fn rate_limit_past_the_budget_gives_up_without_failing_the_login() {
    let rig = d1_rig(
        // 429 with a reset a minute away: longer than clever.timeout (4 s).
        |sim| sim.set_fault(Endpoint::Sections, Some(Fault::RateLimited)),
        "",
        "info",
    )
    .await;
    let started = Instant::now();
    let seen = login(&rig).await;
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(seen.header("x-clever-section-ids"), None);
    assert!(seen.header("x-clever-school-ids").is_some());
    assert_eq!(rig.sim.calls(Endpoint::Sections), 1, "never hammered");
    let logs = rig.gw.logs();
    assert!(
        logs.contains("could not read the user's sections") && logs.contains("clever_rate_limited"),
        "{logs}"
    );
}

#[tokio::test]
async fn discovery_finds_tokens_at_start_and_a_refresh_picks_up_a_new_district() {
    let rig = rig(
        TEACHER_B,
        |sim| {
            // D2 has not authorized the application yet; once it does, it has Secure Sync.
            sim.revoke_district_token(D2);
            sim.set_secure_sync(D2, true);
            vec![]
        },
        |port, sim, app| {
            config(
                port,
                sim,
                app,
                "discover_district_tokens = true\ndistrict_tokens_refresh = \"1s\"\n",
                HEADERS,
                "",
            )
        },
        "info",
    )
    .await;
    let logs = wait_for_log(&rig.gw, "district-app tokens discovered").await;
    assert!(logs.contains(&format!("added=[\"{D1}\"]")), "{logs}");
    let seen = login(&rig).await;
    assert_eq!(
        seen.header("x-clever-section-ids"),
        None,
        "no token for D2 yet"
    );
    assert!(rig
        .gw
        .logs()
        .contains("no district-app token for this district"));

    rig.sim.authorize_district(D2).expect("D2 exists");
    wait_for_log(&rig.gw, &format!("added=[\"{D2}\"]")).await;
    let seen = login(&rig).await;
    assert_eq!(
        seen.header("x-clever-section-ids"),
        Some(teacher_sections(TEACHER_B))
    );
    assert!(rig.sim.calls(Endpoint::DistrictTokens) >= 2);
}

// --- confirm_students ----------------------------------------------------------------------

#[tokio::test]
async fn confirm_students_puts_confirmed_false_on_that_upstreams_logins_only() {
    let rig = rig(
        STUDENT,
        |_| vec![],
        |port, sim, app| {
            let kiosk = format!(
                "[[upstream]]\nname = \"kiosk\"\nurl = \"http://{}\"\npath_prefix = \"/kiosk\"\nconfirm_students = true\n",
                app.addr
            );
            config(port, sim, app, "", "", &kiosk)
        },
        "info",
    )
    .await;
    let authorize_query = |resp: &reqwest::Response| {
        let loc = url::Url::parse(&location(resp)).unwrap();
        assert!(loc.as_str().starts_with(&rig.sim.authorize_url()));
        loc.query_pairs()
            .into_owned()
            .collect::<std::collections::HashMap<String, String>>()
    };
    let c = browser();
    let kiosk = c.get(rig.gw.url("/kiosk/quiz")).send().await.unwrap();
    assert_eq!(kiosk.status(), 302);
    assert_eq!(authorize_query(&kiosk)["confirmed"], "false");
    let explicit = c
        .get(rig.gw.url("/_gateway/login?rd=/kiosk/"))
        .send()
        .await
        .unwrap();
    assert_eq!(authorize_query(&explicit)["confirmed"], "false");
    for other in ["/grades", "/kiosks", "/_gateway/login?rd=/grades"] {
        let r = c.get(rig.gw.url(other)).send().await.unwrap();
        assert_eq!(r.status(), 302, "{other}");
        assert!(
            !authorize_query(&r).contains_key("confirmed"),
            "{other} is not the kiosk's"
        );
    }
    // The kiosk's login completes as any other.
    let (resp, _) = follow(&c, &rig.gw.url("/kiosk/quiz")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(rig.app.last().uri, "/kiosk/quiz");
}

// --- spoofing ------------------------------------------------------------------------------

#[tokio::test]
async fn spoofed_school_and_section_headers_from_the_client_never_arrive() {
    // A token for another district only: the student (in D1) gets no sections.
    let rig = d2_rig(
        STUDENT,
        "public_paths = [\"/public/\"]\n[upstream.headers]\nschool_ids = \"X-School-Ids\"\nsection_ids = \"X-Clever-Section-Ids\"",
    )
    .await;
    let c = browser();
    sign_in(&rig, &c, "/").await;
    let spoof = [
        ("X-School-Ids", "evil-school"),
        ("X_School_Ids", "evil-school"),
        ("X-Clever-School-Ids", "evil-school"),
        ("X-Clever-Section-Ids", "evil-section"),
        ("x_clever_section_ids", "evil-section"),
    ];
    for path in ["/page", "/public/x"] {
        let mut req = c.get(rig.gw.url(path));
        for (k, v) in spoof {
            req = req.header(k, v);
        }
        assert_eq!(req.send().await.unwrap().status(), 200, "{path}");
        let seen = rig.app.last();
        for (k, _) in spoof {
            for v in seen.all(k) {
                assert!(!v.contains("evil"), "{path}: {k}: {v}");
            }
        }
        assert!(
            !seen
                .headers
                .iter()
                .any(|(_, v)| String::from_utf8_lossy(v).contains("evil")),
            "{path}: {:?}",
            seen.headers
        );
        assert_eq!(seen.header("x-clever-section-ids"), None, "{path}");
        if path == "/page" {
            assert_eq!(
                seen.header("x-school-ids"),
                Some(format!("{}5c4e0001", &D1[..16])),
                "the real value from Clever"
            );
        } else {
            assert_eq!(seen.header("x-school-ids"), None, "public: no identity");
        }
    }
}

// --- secrets never leak -----------------------------------------------------------------------

#[tokio::test]
async fn district_tokens_never_appear_in_logs_pages_or_check_output() {
    let rig = d1_rig(|_| {}, DISCOVER, "debug").await;
    wait_for_log(&rig.gw, "district-app tokens discovered").await;
    let c = browser();
    sign_in(&rig, &c, "/").await;
    assert!(rig.app.last().header("x-clever-section-ids").is_some());
    let me = c
        .get(rig.gw.url("/_gateway/me"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics = c
        .get(rig.gw.url("/_gateway/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("endpoint=\"sections\""), "{metrics}");
    let t1 = rig.sim.district_token(D1).unwrap();
    let out = check_online(
        &rig.gw,
        &[
            (SECRET_ENV, rig.sim.client_secret()),
            ("CG_TEST_D1_TOKEN", &t1),
        ],
    )
    .await;
    let upstream_seen = format!("{:?}", rig.app.requests());
    let logs = rig.gw.logs();
    for d in [D1, D2] {
        let token = rig.sim.district_token(d).unwrap();
        for (what, text) in [
            ("log", &logs),
            ("/_gateway/me", &me),
            ("metrics", &metrics),
            ("check --online", &out.text),
            ("upstream requests", &upstream_seen),
        ] {
            assert!(!text.contains(&token), "{d}'s token in the {what}");
        }
    }
    assert!(
        !logs.contains(rig.sim.client_secret()),
        "client secret in the log"
    );
    assert_eq!(out.code, Some(0), "{}", out.text);
}

// --- check --online --------------------------------------------------------------------------

/// What `check --online` printed (stdout then stderr) and its exit code.
struct CheckOut {
    code: Option<i32>,
    stdout: String,
    text: String,
}

/// Runs `clever-gateway check --online` on the config a gateway was started with.
async fn check_online(gw: &Gateway, env: &[(&str, &str)]) -> CheckOut {
    check_online_file(&gw.dir.path().join("gateway.toml"), env).await
}

async fn check_online_file(path: &std::path::Path, env: &[(&str, &str)]) -> CheckOut {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_clever-gateway"))
        .args(["check", "--online", "--config"])
        .arg(path)
        .env_remove(SECRET_ENV)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    CheckOut {
        code: out.status.code(),
        stdout,
        text,
    }
}

/// A simulator (nothing else) and a config for it written to a file.
async fn check_setup(clever_extra: &str, tail: &str) -> (SimHandle, tempfile::TempDir) {
    let port = free_port();
    let sim = sim_for(port, None).await;
    let app = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("gateway.toml"),
        config(port, &sim, &app, clever_extra, "", tail),
    )
    .unwrap();
    (sim, dir)
}

/// The table row of a district.
fn row<'a>(stdout: &'a str, district: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(district))
        .unwrap_or_else(|| panic!("no row for {district}:\n{stdout}"))
}

#[tokio::test]
async fn check_online_prints_the_district_table_and_passes() {
    let (sim, dir) = check_setup(DISCOVER, &district(D1, "Demo (file)", "CG_TEST_D1_TOKEN")).await;
    let t1 = sim.district_token(D1).unwrap();
    let out = check_online_file(
        &dir.path().join("gateway.toml"),
        &[(SECRET_ENV, sim.client_secret()), ("CG_TEST_D1_TOKEN", &t1)],
    )
    .await;
    assert_eq!(out.code, Some(0), "{}", out.text);
    let s = &out.stdout;
    assert!(s.contains("ok    redirect_uri http://127.0.0.1:"), "{s}");
    assert!(
        s.contains("client credentials accepted by Clever")
            && s.contains("2 district-app tokens listed"),
        "{s}"
    );
    assert!(
        s.lines()
            .any(|l| l.starts_with("DISTRICT") && l.contains("SECURE SYNC")),
        "{s}"
    );
    let r1 = row(s, D1);
    for cell in ["Demo Unified School District", "config", "ok", "yes"] {
        assert!(r1.contains(cell), "{r1}");
    }
    let r2 = row(s, D2);
    for cell in ["Sandbox District", "discovered", "ok"] {
        assert!(r2.contains(cell), "{r2}");
    }
    assert!(r2.trim_end().ends_with("no"), "no Secure Sync: {r2}");
    assert!(s.contains("online check: everything passed"), "{s}");
    assert!(!out.text.contains(&t1) && !out.text.contains(sim.client_secret()));
}

#[tokio::test]
async fn check_online_wrong_secret_fails_clearly() {
    let (sim, dir) = check_setup("", "").await;
    let out = check_online_file(
        &dir.path().join("gateway.toml"),
        &[(SECRET_ENV, "0000000000000000000000000000000000000000")],
    )
    .await;
    assert_eq!(out.code, Some(1), "{}", out.text);
    assert!(
        out.stdout.contains(
            "FAIL  wrong client secret: Clever refused the client credentials (401 invalid_client)"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(sim.client_id()));
    assert!(out.stdout.contains("online check: 1 problem found"));
}

#[tokio::test]
async fn check_online_revoked_token_fails_clearly() {
    let (sim, dir) = check_setup("", &district(D1, "Demo", "CG_TEST_D1_TOKEN")).await;
    let old = sim.district_token(D1).unwrap();
    sim.revoke_district_token(D1);
    let out = check_online_file(
        &dir.path().join("gateway.toml"),
        &[
            (SECRET_ENV, sim.client_secret()),
            ("CG_TEST_D1_TOKEN", &old),
        ],
    )
    .await;
    assert_eq!(out.code, Some(1), "{}", out.text);
    assert!(row(&out.stdout, D1).contains("revoked"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("FAIL  district {D1} (Demo): token revoked")),
        "{}",
        out.stdout
    );
    assert!(!out.text.contains(&old));
}

#[tokio::test]
async fn check_online_district_not_authorized_fails_clearly() {
    // D1's token configured for D2: Clever answers 404 for D2.
    let (sim, dir) = check_setup("", &district(D2, "Sandbox", "CG_TEST_D2_TOKEN")).await;
    let out = check_online_file(
        &dir.path().join("gateway.toml"),
        &[
            (SECRET_ENV, sim.client_secret()),
            ("CG_TEST_D2_TOKEN", &sim.district_token(D1).unwrap()),
        ],
    )
    .await;
    assert_eq!(out.code, Some(1), "{}", out.text);
    assert!(row(&out.stdout, D2).contains("not authorized"));
    assert!(
        out.stdout.contains(&format!(
            "FAIL  district {D2} (Sandbox): district not authorized"
        )),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn check_online_unreadable_token_and_unreachable_clever_fail_clearly() {
    let (sim, dir) = check_setup("", &district(D1, "Demo", "CG_TEST_UNSET_TOKEN")).await;
    let path = dir.path().join("gateway.toml");
    // Clever's endpoints on a port nobody listens on.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&sim.base_url(), &dead);
    std::fs::write(&path, text).unwrap();
    let out = check_online_file(&path, &[(SECRET_ENV, sim.client_secret())]).await;
    assert_eq!(out.code, Some(1), "{}", out.text);
    assert!(
        out.stdout
            .contains("FAIL  network unreachable: cannot reach Clever at"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!(
            "FAIL  district {D1} (Demo): cannot read its token from token_env (environment variable CG_TEST_UNSET_TOKEN)"
        )),
        "{}",
        out.stdout
    );
    assert!(row(&out.stdout, D1).contains("unreadable"));
}

#[tokio::test]
async fn check_online_http_redirect_uri_on_a_public_host_fails() {
    let (sim, dir) = check_setup("", "").await;
    let path = dir.path().join("gateway.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("redirect_uri = \"").unwrap();
    let end = start + text[start..].find('\n').unwrap();
    let text = format!(
        "{}redirect_uri = \"http://apps.example-district.org/oauth/clever/callback\"{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(&path, text).unwrap();
    let out = check_online_file(&path, &[(SECRET_ENV, sim.client_secret())]).await;
    assert_eq!(out.code, Some(1), "{}", out.text);
    assert!(
        out.stdout
            .contains("FAIL  clever.redirect_uri http://apps.example-district.org/oauth/clever/callback is http://"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("client credentials accepted"),
        "the rest still checked"
    );
}

// --- config and start-up errors ----------------------------------------------------------------

const CLI_BASE: &str = r#"
[server]
listen = ["127.0.0.1:18081"]

[clever]
client_id = "4c63c1cf623dce82caac"
client_secret_env = "CLEVER_GATEWAY_DISTRICT_TEST_SECRET"
redirect_uri = "http://127.0.0.1:18081/oauth/clever/callback"

[[upstream]]
name = "gradebook"
url = "http://127.0.0.1:9000"
"#;

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let p = dir.path().join("gateway.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn district_config_errors_exit_2_with_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{CLI_BASE}\n[[district]]\nid = \"{D1}\"\nname = \"Demo\"\ntoken = \"0123456789abcdef0123456789abcdef01234567\"\n\
         \n[[district]]\nid = \"{D1}\"\nname = \"Again\"\ntoken_env = \"X\"\ntoken_fil = \"/x\"\n"
    );
    let p = write_config(&dir, &text);
    let file = p.display().to_string();
    for cmd in ["check", "run"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_clever-gateway"))
            .args([cmd, "--config"])
            .arg(&p)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {stderr}");
        let expect = |needle: &str, line: usize| {
            assert!(
                stderr
                    .lines()
                    .any(|l| l.starts_with(&format!("{file}:{line}:")) && l.contains(needle)),
                "{cmd}: {needle} at line {line}: {stderr}"
            );
        };
        let line_of = |needle: &str, nth: usize| {
            text.lines()
                .enumerate()
                .filter(|(_, l)| l.starts_with(needle))
                .nth(nth)
                .unwrap()
                .0
                + 1
        };
        expect(
            "a district-app token is never inline",
            line_of("token = ", 0),
        );
        expect(
            "already used by an earlier [[district]]",
            line_of("id = \"", 1),
        );
        expect(
            "unknown key \"token_fil\" in [[district]] (did you mean \"token_file\"?)",
            line_of("token_fil", 0),
        );
        assert!(!stderr.contains("0123456789abcdef"), "{stderr}");
    }
}

#[test]
fn unreadable_district_token_stops_run_and_check_only_warns() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-token");
    let p = write_config(
        &dir,
        &format!(
            "{CLI_BASE}\n[[district]]\nid = \"{D1}\"\nname = \"Demo\"\ntoken_file = \"{}\"\n",
            missing.display()
        ),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clever-gateway"))
        .args(["check", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "warning: district-app token of district {D1} (Demo)"
        )) && stderr.contains("no-such-token"),
        "{stderr}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clever-gateway"))
        .args(["run", "--config"])
        .arg(&p)
        .env("CLEVER_GATEWAY_DISTRICT_TEST_SECRET", "s")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot read the district-app token of district {D1} (Demo): cannot read secret file"
        )) && stderr.contains("no-such-token"),
        "{stderr}"
    );
}
