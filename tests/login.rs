//! Login end to end through the real gateway binary and the Clever simulator.

mod common;

use std::time::Duration;

use clever_gateway::sim::{Endpoint, Fault};
use common::*;

#[tokio::test]
async fn login_navigation_redirects_to_authorize_with_required_params() {
    let env = env_with(None, "login_district_id = \"5d0a9e5d0958b300014e49d2\"", "").await;
    let r = browser()
        .get(env.gw.url("/grades?term=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(loc.as_str().starts_with(&env.sim.authorize_url()));
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], env.sim.client_id());
    assert_eq!(q["redirect_uri"], env.gw.url("/oauth/clever/callback"));
    assert_eq!(q["district_id"], "5d0a9e5d0958b300014e49d2");
    assert!(q["state"].len() >= 22, "state has >= 128 bits");
    let (_, _, sc) = login_cookie(&r).expect("state cookie");
    assert!(
        sc.contains("HttpOnly") && sc.contains("SameSite=Lax"),
        "{sc}"
    );
    assert_eq!(env.app.count(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn login_state_cookie_lives_as_long_as_login_timeout() {
    let max_age = |r: &reqwest::Response| {
        login_cookie(r).and_then(|(_, _, line)| {
            line.split("; ")
                .find_map(|a| a.strip_prefix("Max-Age="))
                .map(str::to_owned)
        })
    };
    let env = env_with(None, "", "").await;
    let r = browser().get(env.gw.url("/")).send().await.unwrap();
    assert_eq!(max_age(&r).as_deref(), Some("600"), "default 10m");

    let port = free_port();
    let sim = sim_for(port, None).await;
    let app = Upstream::start().await;
    let cfg = format!(
        "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\n",
        base_config(port, &sim, "login_timeout = \"2m\""),
        app.addr
    );
    let gw = start_gateway(port, &cfg, sim.client_secret()).await;
    let r = browser().get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(max_age(&r).as_deref(), Some("120"));
}

#[tokio::test]
async fn login_api_request_gets_401_json_not_redirect() {
    let env = env_with(None, "", "").await;
    let r = reqwest::Client::new()
        .get(env.gw.url("/api/grades"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Clever realm="clever-gateway""#
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "unauthenticated");
    assert_eq!(v["login_url"], "/_gateway/login?rd=%2Fapi%2Fgrades");
}

/// `/_gateway/me` without a session answers like every other 401: JSON with the login URL,
/// `WWW-Authenticate` (RFC 9110 requires it on a 401) and the request id, even to a browser.
#[tokio::test]
async fn me_without_session_is_the_same_401_as_any_api_request() {
    let env = env_with(None, "", "").await;
    for accept in ["application/json", "text/html"] {
        let r = reqwest::Client::new()
            .get(env.gw.url("/_gateway/me"))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{accept}");
        assert_eq!(
            r.headers()["www-authenticate"],
            r#"Clever realm="clever-gateway""#,
            "{accept}"
        );
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"], "unauthenticated");
        assert_eq!(v["login_url"], "/_gateway/login?rd=%2F");
    }
}

#[tokio::test]
async fn login_full_flow_returns_to_saved_path_with_identity_headers() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let c = browser();
    let resp = sign_in(&env, &c, "/grades?term=2").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "upstream ok");
    let seen = env.app.last();
    assert_eq!(seen.uri, "/grades?term=2");
    assert_eq!(seen.header("x-clever-user-id").unwrap(), teacher);
    assert_eq!(seen.header("x-clever-user-type").unwrap(), "teacher");
    assert!(seen.header("x-clever-district-id").is_some());
    assert!(seen.header("x-request-id").is_some());
    assert_eq!(env.sim.calls(Endpoint::Tokens), 1);
}

#[tokio::test]
async fn login_session_cookie_is_new_256_bit_httponly_lax() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let c = browser();
    let (r, _) = follow(&c, &env.gw.url("/")).await;
    assert_eq!(r.status(), 200);
    // Redo the callback step by hand to see its Set-Cookie.
    let cb_url = callback_for(&c, &env.gw.url("/_gateway/login?rd=/x")).await;
    let done = c.get(&cb_url).send().await.unwrap();
    assert_eq!(done.status(), 302);
    assert_eq!(done.headers()["location"], "/x");
    let sc = done
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("clever_gateway="))
        .unwrap();
    let value = sc["clever_gateway=".len()..].split(';').next().unwrap();
    assert_eq!(value.len(), 43, "256-bit base64url id");
    assert!(sc.contains("HttpOnly") && sc.contains("SameSite=Lax") && sc.contains("Path=/"));
    assert!(!sc.contains("Secure"), "cookie_secure = false in this test");
}

#[tokio::test]
async fn login_many_tabs_at_once_all_succeed() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let c = browser();
    // Five tabs start a login before any finishes.
    let mut callbacks = Vec::new();
    for i in 0..5 {
        let r = c.get(env.gw.url(&format!("/tab{i}"))).send().await.unwrap();
        assert_eq!(r.status(), 302);
        let a = c.get(location(&r)).send().await.unwrap();
        callbacks.push(location(&a));
    }
    for (i, cb) in callbacks.iter().enumerate() {
        let r = c.get(cb).send().await.unwrap();
        assert_eq!(r.status(), 302, "tab {i}");
        assert_eq!(r.headers()["location"], format!("/tab{i}").as_str());
    }
    assert_eq!(env.sim.calls(Endpoint::Tokens), 5);
}

#[tokio::test]
async fn signed_in_requests_make_zero_clever_calls() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let c = browser();
    sign_in(&env, &c, "/").await;
    let before = env.sim.total_calls();
    for i in 0..25 {
        let r = c
            .get(env.gw.url(&format!("/page/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        env.sim.total_calls(),
        before,
        "25 signed-in requests, 0 Clever calls"
    );
    assert_eq!(env.app.count(), 26);
}

#[tokio::test]
async fn forged_state_creates_no_session() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let c = browser();
    let code = env
        .sim
        .issue_code(&teacher, &env.gw.url("/oauth/clever/callback"));
    let r = c
        .get(
            env.gw
                .url(&format!("/oauth/clever/callback?code={code}&state=forged")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(set_cookie_value(&r, "clever_gateway").is_none());
    assert_eq!(
        env.sim.calls(Endpoint::Tokens),
        0,
        "forged state: code never exchanged"
    );
    let me = c.get(env.gw.url("/_gateway/me")).send().await.unwrap();
    assert_eq!(me.status(), 401);
}

#[tokio::test]
async fn state_from_another_browser_is_refused() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let victim = browser();
    let attacker = browser();
    // The attacker starts a login and hands the callback URL to the victim (login CSRF).
    let cb = callback_for(&attacker, &env.gw.url("/")).await;
    let v = victim.get(&cb).send().await.unwrap();
    assert_eq!(v.status(), 400);
    assert!(set_cookie_value(&v, "clever_gateway").is_none());
    assert_eq!(env.sim.calls(Endpoint::Tokens), 0);
}

#[tokio::test]
async fn clever_initiated_login_bounces_without_exchanging_first_code() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let c = browser();
    let (resp, visited) = follow(&c, &env.sim.instant_login_url(&teacher)).await;
    assert_eq!(resp.status(), 200, "visited {visited:?}");
    // Exactly one exchange: the bounced code, not the Portal's.
    assert_eq!(env.sim.calls(Endpoint::Tokens), 1);
    assert_eq!(
        env.sim.calls(Endpoint::Authorize),
        1,
        "one bounce through authorize"
    );
    assert_eq!(
        env.app.last().uri,
        "/",
        "landed on the landing upstream's root"
    );
    assert_eq!(env.app.last().header("x-clever-user-id").unwrap(), teacher);
}

#[tokio::test]
async fn clever_initiated_twice_in_a_row_shows_error_not_loop() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let c = browser();
    let first = c
        .get(env.sim.instant_login_url(&teacher))
        .send()
        .await
        .unwrap();
    let cb1 = location(&first);
    let bounce = c.get(&cb1).send().await.unwrap();
    assert_eq!(bounce.status(), 302, "first stateless callback bounces");
    // The bounce never comes back; a second stateless callback arrives.
    let second = c
        .get(env.sim.instant_login_url(&teacher))
        .send()
        .await
        .unwrap();
    let cb2 = location(&second);
    let r = c.get(&cb2).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains("open the app from Clever again"), "{body}");
    assert_eq!(env.sim.calls(Endpoint::Tokens), 0);
}

#[tokio::test]
async fn replayed_callback_is_not_posted_again_and_resumes_session() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let c = browser();
    let cb = callback_for(&c, &env.gw.url("/report")).await;
    let first = c.get(&cb).send().await.unwrap();
    assert_eq!(first.status(), 302);
    // Refresh / back button: the same callback URL again.
    let again = c.get(&cb).send().await.unwrap();
    assert_eq!(again.status(), 302);
    assert_eq!(again.headers()["location"], "/report");
    assert_eq!(
        env.sim.calls(Endpoint::Tokens),
        1,
        "code never POSTed twice"
    );
}

#[tokio::test]
async fn replayed_callback_in_other_browser_starts_fresh_login() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let c = browser();
    let cb = callback_for(&c, &env.gw.url("/report")).await;
    assert_eq!(c.get(&cb).send().await.unwrap().status(), 302);
    let other = browser();
    let r = other.get(&cb).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with(&env.sim.authorize_url()));
    assert!(set_cookie_value(&r, "clever_gateway").is_none());
    assert_eq!(env.sim.calls(Endpoint::Tokens), 1);
}

#[tokio::test]
async fn logout_revokes_copied_cookie() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let c = browser();
    sign_in(&env, &c, "/").await;
    let me = c.get(env.gw.url("/_gateway/me")).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let v: serde_json::Value = me.json().await.unwrap();
    assert_eq!(v["user_id"], teacher.as_str());
    assert!(v.get("access_token").is_none());
    // Copy the cookie out of the jar by asking the gateway what it set.
    let cookie_header = session_cookie(&env, &c).await;
    let thief = reqwest::Client::new();
    let ok = thief
        .get(env.gw.url("/_gateway/me"))
        .header("cookie", &cookie_header)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "copied cookie works before logout");
    let out = sign_out(&env, &c).await;
    assert_eq!(out.status(), 302);
    assert_eq!(out.headers()["location"], "/");
    let after = thief
        .get(env.gw.url("/_gateway/me"))
        .header("cookie", &cookie_header)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401, "copied cookie revoked server side");
}

/// `/_gateway/me`'s status for the browser `c`.
async fn me_status(env: &Env, c: &reqwest::Client) -> u16 {
    c.get(env.gw.url("/_gateway/me"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn logout_get_asks_with_a_post_form_and_keeps_the_session() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let c = browser();
    sign_in(&env, &c, "/").await;
    let page = c.get(env.gw.url("/_gateway/logout")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        set_cookie_value(&page, "clever_gateway").is_none(),
        "no cookie cleared"
    );
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("form-action 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<form method="post" action="/_gateway/logout">"#),
        "{html}"
    );
    assert_eq!(me_status(&env, &c).await, 200, "a GET signs nobody out");
    // HEAD answers like GET, without signing out either.
    let head = c.head(env.gw.url("/_gateway/logout")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(me_status(&env, &c).await, 200);
    // A script or API client is told to POST.
    let api = c
        .get(env.gw.url("/_gateway/logout"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 405);
    assert_eq!(api.headers()["allow"], "GET, HEAD, POST");
    let v: serde_json::Value = api.json().await.unwrap();
    assert_eq!(v["error"], "method_not_allowed");
    assert_eq!(me_status(&env, &c).await, 200);
}

#[tokio::test]
async fn logout_post_from_another_site_refused_and_session_kept() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let c = browser();
    sign_in(&env, &c, "/").await;
    let own = env.gw.url("");
    for (site, origin) in [
        (None, Some("https://evil.example")),
        (None, Some("null")),
        (Some("cross-site"), Some(own.as_str())),
        (Some("same-site"), None),
        (Some("cross-site"), None),
    ] {
        let mut r = c.post(env.gw.url("/_gateway/logout"));
        if let Some(s) = site {
            r = r.header("sec-fetch-site", s);
        }
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        let out = r.send().await.unwrap();
        assert_eq!(out.status(), 403, "{site:?} {origin:?}");
        assert!(set_cookie_value(&out, "clever_gateway").is_none());
        assert_eq!(
            me_status(&env, &c).await,
            200,
            "{site:?} {origin:?}: still signed in"
        );
    }
    assert!(
        env.gw.logs().contains("sign-out refused"),
        "{}",
        env.gw.logs()
    );
}

#[tokio::test]
async fn logout_post_from_the_site_or_an_api_client_signs_out() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    // A browser at the gateway's page, sending its form.
    let c = browser();
    sign_in(&env, &c, "/").await;
    let page = c.get(env.gw.url("/_gateway/logout")).send().await.unwrap();
    assert_eq!(page.status(), 200, "the page that asks");
    let out = c
        .post(env.gw.url("/_gateway/logout"))
        .header("sec-fetch-site", "same-origin")
        .header("origin", env.gw.url(""))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 302);
    assert_eq!(out.headers()["location"], "/");
    assert_eq!(
        set_cookie_value(&out, "clever_gateway").as_deref(),
        Some("")
    );
    assert_eq!(me_status(&env, &c).await, 401);
    // An older browser: Origin only.
    let c = browser();
    sign_in(&env, &c, "/").await;
    let out = c
        .post(env.gw.url("/_gateway/logout"))
        .header("origin", env.gw.url(""))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 302);
    assert_eq!(me_status(&env, &c).await, 401);
    // An API client with the session cookie: neither header.
    let c = browser();
    let cookie = session_cookie(&env, &c).await;
    let api = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let out = api
        .post(env.gw.url("/_gateway/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 302);
    let me = api
        .get(env.gw.url("/_gateway/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401, "the session ended on the server");
}

#[tokio::test]
async fn session_expires_after_ttl() {
    let teacher = user_with_roles(&["teacher"]);
    let port = free_port();
    let sim = sim_for(port, Some(&teacher)).await;
    let app = Upstream::start().await;
    let cfg = format!(
        "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\n",
        base_config(port, &sim, "ttl = \"2s\""),
        app.addr
    );
    let gw = start_gateway(port, &cfg, sim.client_secret()).await;
    let env = Env { sim, app, gw };
    let c = browser();
    sign_in(&env, &c, "/").await;
    assert_eq!(
        c.get(env.gw.url("/_gateway/me"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(
        c.get(env.gw.url("/_gateway/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let r = c.get(env.gw.url("/x")).send().await.unwrap();
    assert_eq!(r.status(), 302, "expired session goes back to login");
}

#[tokio::test]
async fn clever_down_at_login_gives_5xx_page_while_signed_in_users_keep_working() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let signed_in = browser();
    sign_in(&env, &signed_in, "/").await;
    env.sim
        .set_fault(Endpoint::Tokens, Some(Fault::Status(503)));
    let newcomer = browser();
    let (r, _) = follow(&newcomer, &env.gw.url("/")).await;
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    assert!(body.contains("Try again"), "{body}");
    assert!(body.contains("request id"), "{body}");
    let ok = signed_in.get(env.gw.url("/still")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn clever_slow_at_login_gives_504() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    env.sim
        .set_fault(Endpoint::Me, Some(Fault::Delay(Duration::from_secs(6))));
    let (r, _) = follow(&browser(), &env.gw.url("/")).await;
    assert_eq!(r.status(), 504);
}

#[tokio::test]
async fn clever_error_callback_gives_page_with_retry() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    env.sim
        .set_fault(Endpoint::Authorize, Some(Fault::AccessDenied));
    let (r, _) = follow(&browser(), &env.gw.url("/")).await;
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("access_denied") && body.contains("Try again"),
        "{body}"
    );
}

#[tokio::test]
async fn expired_code_gives_400_page() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let c = browser();
    let cb = callback_for(&c, &env.gw.url("/")).await;
    env.sim.advance_clock(Duration::from_secs(61));
    let r = c.get(&cb).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("expired"));
}

#[tokio::test]
async fn v2_api_type_from_me() {
    let staff = user_with_roles(&["staff"]);
    let port = free_port();
    let sim = sim_for(port, Some(&staff)).await;
    let app = Upstream::start().await;
    let cfg = format!(
        "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\nallow_user_types = [\"school_admin\"]\n",
        base_config(port, &sim, "").replace("timeout = \"4s\"", "timeout = \"4s\"\napi_version = \"v2.1\""),
        app.addr
    );
    let gw = start_gateway(port, &cfg, sim.client_secret()).await;
    let env = Env { sim, app, gw };
    let r = sign_in(&env, &browser(), "/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        env.app.last().header("x-clever-user-type").unwrap(),
        "staff"
    );
    assert_eq!(
        env.sim.calls(Endpoint::Users),
        0,
        "v2 takes the type from /me"
    );
}

#[tokio::test]
async fn clever_faults_map_to_documented_statuses() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    for (endpoint, fault, status) in [
        (Endpoint::Tokens, Fault::RateLimited, 503),
        (Endpoint::Tokens, Fault::Status(500), 502),
        (Endpoint::Me, Fault::Html, 502),
        (Endpoint::Users, Fault::Truncated, 502),
        // Clever's "not shared with this application": the user's own page (clever.md 4b).
        (Endpoint::Users, Fault::Status(404), 403),
    ] {
        env.sim.set_fault(endpoint, Some(fault));
        let (r, _) = follow(&browser(), &env.gw.url("/")).await;
        assert_eq!(r.status(), status, "{endpoint:?} {fault:?}");
        let body = r.text().await.unwrap();
        assert!(body.contains("Try again"), "{endpoint:?} {fault:?}: {body}");
        let api = reqwest::Client::new()
            .get(env.gw.url("/_gateway/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), 200, "gateway healthy after {fault:?}");
        env.sim.set_fault(endpoint, None);
    }
    let (r, _) = follow(&browser(), &env.gw.url("/")).await;
    assert_eq!(r.status(), 200, "logins work again once Clever recovers");
}

#[tokio::test]
async fn login_on_another_configured_host_returns_to_that_host() {
    let teacher = user_with_roles(&["teacher"]);
    let other = Upstream::start().await;
    let env = env_with(
        Some(&teacher),
        "",
        &format!(
            "[[upstream]]\nname = \"gradebook\"\nurl = \"http://{}\"\nhost = \"gradebook.example-district.org\"\n",
            other.addr
        ),
    )
    .await;
    for (host, expected) in [
        (
            "gradebook.example-district.org",
            "http://gradebook.example-district.org/grades?t=1",
        ),
        // A host no upstream names never becomes an absolute return URL.
        ("evil.example", "/grades?t=1"),
    ] {
        let c = browser();
        let r = c
            .get(env.gw.url("/grades?t=1"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{host}");
        let a = c.get(location(&r)).send().await.unwrap();
        let done = c.get(location(&a)).send().await.unwrap();
        assert_eq!(done.status(), 302, "{host}");
        assert_eq!(location(&done), expected, "{host}");
    }
}
