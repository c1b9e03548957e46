//! The app's own user (gateway.md section 4b) through the real binary and the simulator's full
//! user records: `[upstream.set_headers]` values at the upstream (a student's number, a
//! teacher's fallback to the email's local part, RFC 8187 for names), `required_headers` and
//! their 403 page and metric, forged headers never reaching an app, the record read again with
//! the district-app token when the sign-in answer lacks a field, the "not shared" page,
//! forward-auth, `/_gateway/me`, and `check`.

mod common;

use clever_gateway::process::metrics::parse_text;
use clever_gateway::sim::{Endpoint, Fault, SimHandle, UserView, DEMO_DISTRICT, DEMO_DISTRICT_2};
use common::*;

/// José Ñúñez, student in the Secure Sync district: student number 100234, username jnunez.
const STUDENT: &str = "5fc43758db087d0be186c29d";
/// Ava Chen, student without an email.
const STUDENT_NO_EMAIL: &str = "5fc43758db087d0be186c2f6";
/// Maria Lopez, teacher without a district username.
const TEACHER: &str = "5fc43758db087d0be186c2a1";
/// Sam Okonkwo, teacher in the District SSO tier district (no Secure Sync).
const TEACHER_D2: &str = "60a1f0c2e4b0a1b2c3d4e5f6";

/// The contract's example `X-Remote-User`, and a display name.
const REMOTE_USER: &str = "[upstream.set_headers]\n\
    \"X-Remote-User\" = { student = \"{student_number}\", teacher = [\"{district_username}\", \"{email|local|lower}\"], default = \"{email|lower}\" }\n\
    \"X-Display-Name\" = \"{last_name}, {first_name}\"\n";

/// Simulator (auto-login `user`, prepared by `prepare`, which returns environment variables
/// for the gateway), recording upstream, and the gateway with `upstream_extra` in its
/// `[[upstream]]` and `tail` after it.
async fn rig(
    user: &str,
    prepare: impl Fn(&SimHandle) -> Vec<(String, String)>,
    upstream_extra: &str,
    tail: &str,
) -> Env {
    on_a_free_port(async |port| {
        let sim = sim_for(port, Some(user)).await;
        let vars = prepare(&sim);
        let app = Upstream::start().await;
        let cfg = format!(
            "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\n{upstream_extra}\n{tail}",
            base_config(port, &sim, ""),
            app.addr
        );
        let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let gw = try_start_gateway_env(port, &cfg, sim.client_secret(), &env).await?;
        Ok(Env { sim, app, gw })
    })
    .await
}

fn nothing(_: &SimHandle) -> Vec<(String, String)> {
    Vec::new()
}

/// A `[[district]]` table for `district` whose token is in `CG_TEST_DISTRICT_TOKEN`, and that
/// variable set to the simulator's token.
fn district_token(sim: &SimHandle, district: &str) -> Vec<(String, String)> {
    let token = sim.district_token(district).expect("district token");
    vec![("CG_TEST_DISTRICT_TOKEN".into(), token)]
}

fn district_table(district: &str) -> String {
    format!("[[district]]\nid = \"{district}\"\nname = \"Demo\"\ntoken_env = \"CG_TEST_DISTRICT_TOKEN\"\n")
}

#[tokio::test]
async fn a_students_remote_user_is_the_student_number() {
    let env = rig(STUDENT, nothing, REMOTE_USER, "").await;
    let r = sign_in(&env, &browser(), "/").await;
    assert_eq!(r.status(), 200);
    let seen = env.app.last();
    assert_eq!(seen.header("x-remote-user").as_deref(), Some("100234"));
    // A header a header value cannot carry as it is goes in the RFC 8187 form.
    assert_eq!(
        seen.header("x-display-name").as_deref(),
        Some("UTF-8''%C3%91%C3%BA%C3%B1ez%2C%20Jos%C3%A9")
    );
    // The defaults of section 4 are unchanged.
    assert_eq!(seen.header("x-clever-user-id").as_deref(), Some(STUDENT));
    assert_eq!(
        seen.header("x-clever-user-type").as_deref(),
        Some("student")
    );
    assert_eq!(
        seen.header("x-clever-district-id").as_deref(),
        Some(DEMO_DISTRICT)
    );
}

#[tokio::test]
async fn a_teacher_without_a_username_falls_back_to_the_emails_local_part() {
    let env = rig(TEACHER, nothing, REMOTE_USER, "").await;
    let c = browser();
    assert_eq!(sign_in(&env, &c, "/").await.status(), 200);
    assert_eq!(
        env.app.last().header("x-remote-user").as_deref(),
        Some("maria.lopez")
    );
    // Rendered once at sign-in: later requests make no Clever call and get the same value.
    let before = env.sim.total_calls();
    assert_eq!(
        c.get(env.gw.url("/next")).send().await.unwrap().status(),
        200
    );
    assert_eq!(env.sim.total_calls(), before);
    assert_eq!(
        env.app.last().header("x-remote-user").as_deref(),
        Some("maria.lopez")
    );
}

#[tokio::test]
async fn a_required_header_that_cannot_be_built_gets_a_403_naming_the_field() {
    let env = rig(
        TEACHER,
        nothing,
        "required_headers = [\"X-Remote-User\"]\n[upstream.set_headers]\n\"X-Remote-User\" = \"{student_number}\"",
        "",
    )
    .await;
    let (r, visited) = follow(&browser(), &env.gw.url("/grades")).await;
    assert!(visited.iter().any(|u| u.contains("/oauth/clever/callback")));
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("Your Clever account has no student number; ask your district&#x27;s Clever administrator")
            || body.contains("Your Clever account has no student number; ask your district's Clever administrator"),
        "{body}"
    );
    assert_eq!(env.app.count(), 0, "nothing forwarded");
    let text = reqwest::get(env.gw.url("/_gateway/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let denial = parse_text(&text)
        .into_iter()
        .find(|s| s.name == "clever_gateway_policy_denials_total")
        .expect("denial counted");
    assert_eq!(
        denial.labels,
        [
            ("reason".to_string(), "missing_field".to_string()),
            ("upstream".to_string(), "app".to_string())
        ]
    );
    assert_eq!(denial.value, 1.0);
    let logs = env.gw.logs();
    assert!(
        logs.contains("a required header cannot be built") && logs.contains("student_number"),
        "{logs}"
    );
}

#[tokio::test]
async fn a_required_header_a_student_can_build_lets_them_in() {
    let env = rig(
        STUDENT,
        nothing,
        "required_headers = [\"x_remote_user\"]\n[upstream.set_headers]\n\"X-Remote-User\" = \"{student_number}\"",
        "",
    )
    .await;
    assert_eq!(sign_in(&env, &browser(), "/").await.status(), 200);
    assert_eq!(
        env.app.last().header("x-remote-user").as_deref(),
        Some("100234")
    );
}

#[tokio::test]
async fn a_forged_set_headers_header_never_reaches_an_upstream() {
    // Ava has no email: the gateway builds no X-Remote-User for her, so nothing would
    // overwrite a client's. A second upstream sets no header at all.
    let other =
        "[[upstream]]\nname = \"other\"\nurl = \"http://{APP}\"\npath_prefix = \"/other\"\n";
    let env = on_a_free_port(async |port| {
        let sim = sim_for(port, Some(STUDENT_NO_EMAIL)).await;
        let app = Upstream::start().await;
        let cfg = format!(
            "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{addr}\"\npublic_paths = [\"/public/\"]\n\
             [upstream.set_headers]\n\"X-Remote-User\" = \"{{email}}\"\n{}",
            base_config(port, &sim, ""),
            other.replace("{APP}", &app.addr.to_string()),
            addr = app.addr,
        );
        let gw = try_start_gateway_env(port, &cfg, sim.client_secret(), &[]).await?;
        Ok(Env { sim, app, gw })
    })
    .await;
    let c = browser();
    assert_eq!(sign_in(&env, &c, "/").await.status(), 200);
    for path in ["/page", "/public/logo.png", "/other/page"] {
        for name in ["X-Remote-User", "x_remote_user", "X_REMOTE-user"] {
            let r = c
                .get(env.gw.url(path))
                .header(name, "admin")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path} {name}");
            let seen = env.app.last();
            assert_eq!(seen.uri, path, "{path}");
            assert!(
                !seen
                    .headers
                    .iter()
                    .any(|(k, _)| k.replace('_', "-").eq_ignore_ascii_case("x-remote-user")),
                "{path} {name}: {:?}",
                seen.headers
            );
        }
    }
}

#[tokio::test]
async fn the_record_is_read_again_with_the_district_token_when_the_sign_in_answer_lacks_a_field() {
    // The district's sign-in tokens read names and email only (Clever's District SSO tier);
    // its district-app token (Secure Sync) reads the whole record.
    let env = rig(
        STUDENT,
        |sim| {
            sim.set_sso_view(DEMO_DISTRICT, UserView::NamesOnly);
            district_token(sim, DEMO_DISTRICT)
        },
        REMOTE_USER,
        &district_table(DEMO_DISTRICT),
    )
    .await;
    let c = browser();
    assert_eq!(sign_in(&env, &c, "/").await.status(), 200);
    assert_eq!(
        env.app.last().header("x-remote-user").as_deref(),
        Some("100234")
    );
    assert_eq!(
        env.sim.calls(Endpoint::Users),
        2,
        "the sign-in token's read and one with the district-app token"
    );
    let before = env.sim.total_calls();
    assert_eq!(
        c.get(env.gw.url("/again")).send().await.unwrap().status(),
        200
    );
    assert_eq!(env.sim.total_calls(), before, "never per request");
    assert_eq!(
        env.app.last().header("x-remote-user").as_deref(),
        Some("100234")
    );
}

#[tokio::test]
async fn no_second_read_when_the_sign_in_answer_has_every_field() {
    let env = rig(
        STUDENT,
        |sim| district_token(sim, DEMO_DISTRICT),
        REMOTE_USER,
        &district_table(DEMO_DISTRICT),
    )
    .await;
    assert_eq!(sign_in(&env, &browser(), "/").await.status(), 200);
    assert_eq!(
        env.app.last().header("x-remote-user").as_deref(),
        Some("100234")
    );
    assert_eq!(env.sim.calls(Endpoint::Users), 1);
}

#[tokio::test]
async fn a_failed_second_read_lets_the_sign_in_go_on_and_is_logged_once() {
    // District 2 has no Secure Sync: its token cannot read the user (404). Sam's username is
    // not in the sign-in answer, so the teacher entry falls back to the email.
    let env = rig(
        TEACHER_D2,
        |sim| district_token(sim, DEMO_DISTRICT_2),
        REMOTE_USER,
        &district_table(DEMO_DISTRICT_2),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(sign_in(&env, &browser(), "/").await.status(), 200);
        assert_eq!(
            env.app.last().header("x-remote-user").as_deref(),
            Some("sam.okonkwo")
        );
    }
    assert_eq!(
        env.sim.calls(Endpoint::Users),
        4,
        "one extra read per sign-in"
    );
    let logs = env.gw.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("could not read the user's record with the district-app token"))
        .collect();
    assert_eq!(lines.len(), 1, "{logs}");
    assert!(lines[0].contains("district_username"), "{}", lines[0]);
    assert!(lines[0].contains(DEMO_DISTRICT_2), "{}", lines[0]);
    let token = env.sim.district_token(DEMO_DISTRICT_2).unwrap();
    assert!(!logs.contains(&token), "never the token");
}

#[tokio::test]
async fn without_a_district_token_the_field_is_missing_and_that_is_logged_once() {
    let env = rig(
        STUDENT,
        |sim| {
            sim.set_sso_view(DEMO_DISTRICT, UserView::NamesOnly);
            Vec::new()
        },
        REMOTE_USER,
        "",
    )
    .await;
    for _ in 0..2 {
        assert_eq!(sign_in(&env, &browser(), "/").await.status(), 200);
        assert_eq!(
            env.app.last().header("x-remote-user"),
            None,
            "the student entry is final: no fall-through to default"
        );
    }
    assert_eq!(env.sim.calls(Endpoint::Users), 2);
    let logs = env.gw.logs();
    assert_eq!(
        logs.matches("no district-app token for this district")
            .count(),
        1,
        "{logs}"
    );
}

#[tokio::test]
async fn a_404_from_users_gets_the_not_shared_page() {
    let env = rig(TEACHER, nothing, "", "").await;
    env.sim.set_fault(Endpoint::Users, Some(Fault::Status(404)));
    let (r, _) = follow(&browser(), &env.gw.url("/")).await;
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(body.contains("not shared with this app"), "{body}");
    assert!(
        body.contains("Your district has not shared your Clever account with this app"),
        "{body}"
    );
    assert_eq!(env.app.count(), 0);
    assert!(env.gw.logs().contains("user_not_shared"));
}

#[tokio::test]
async fn me_shows_the_kept_record_never_the_token() {
    let env = rig(STUDENT, nothing, REMOTE_USER, "").await;
    let c = browser();
    assert_eq!(sign_in(&env, &c, "/").await.status(), 200);
    let me: serde_json::Value = c
        .get(env.gw.url("/_gateway/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user_id"], STUDENT, "{me}");
    assert_eq!(me["user_types"], serde_json::json!(["student"]), "{me}");
    assert_eq!(me["student_number"], "100234", "{me}");
    assert_eq!(me["first_name"], "José", "{me}");
    assert_eq!(me["district_username"], "jnunez", "{me}");
    assert!(
        me.get("state_id").is_none(),
        "not used by any header: not kept: {me}"
    );
    assert!(me.get("access_token").is_none(), "{me}");
}

#[tokio::test]
async fn forward_auth_answers_with_the_set_headers_and_refuses_a_missing_required_one() {
    let required = "[[upstream]]\nname = \"numbers\"\nurl = \"http://127.0.0.1:9\"\npath_prefix = \"/numbers\"\n\
        required_headers = [\"X-Number\"]\n[upstream.set_headers]\n\"X-Number\" = \"{teacher_number}\"\n";
    let env = rig(STUDENT, nothing, REMOTE_USER, required).await;
    let c = browser();
    let cookie = session_cookie(&env, &c).await;
    let api = reqwest::Client::new();
    let r = api
        .get(env.gw.url("/_gateway/auth?upstream=app"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-remote-user"], "100234");
    assert_eq!(r.headers()["x-clever-user-id"], STUDENT);
    let r = api
        .get(env.gw.url("/_gateway/auth?upstream=numbers"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a student has no teacher number");
    assert!(r.headers().get("x-number").is_none());
    // Without an upstream: the default headers only.
    let r = api
        .get(env.gw.url("/_gateway/auth"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-remote-user").is_none());
    assert_eq!(r.headers()["x-clever-user-type"], "student");
}

#[test]
fn check_lists_each_upstreams_set_headers_by_name_never_their_templates() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gateway.toml");
    std::fs::write(
        &p,
        format!(
            "[clever]\nclient_id = \"4c63c1cf623dce82caac\"\nclient_secret_env = \"CG_UNSET_SECRET\"\n\
             redirect_uri = \"https://apps.example.org/oauth/clever/callback\"\n\
             [[upstream]]\nname = \"library\"\nurl = \"http://127.0.0.1:9000\"\n\
             required_headers = [\"X-Remote-User\"]\n{REMOTE_USER}"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clever-gateway"))
        .args(["check", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("set:X-Remote-User(required) set:X-Display-Name"),
        "{stdout}"
    );
    for template in ["student_number", "{", "last_name"] {
        assert!(!stdout.contains(template), "{template}: {stdout}");
    }

    // A bad template is a config error with its position, and check exits 2.
    std::fs::write(
        &p,
        "[clever]\nclient_id = \"4c63c1cf623dce82caac\"\nclient_secret_env = \"CG_UNSET_SECRET\"\n\
         redirect_uri = \"https://apps.example.org/oauth/clever/callback\"\n\
         [[upstream]]\nname = \"library\"\nurl = \"http://127.0.0.1:9000\"\n\
         [upstream.set_headers]\n\"X-Remote-User\" = \"{student_numbr|lower}\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clever-gateway"))
        .args(["check", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            ":9:21: upstream.set_headers \"X-Remote-User\": unknown field \"student_numbr\""
        ),
        "{stderr}"
    );
}
