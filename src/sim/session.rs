//! The simulator's browser session, standing in for the one real Clever keeps: choosing a user
//! at `/oauth/authorize/pick` or arriving through `/oauth/instant-login` sets the
//! `clever_sim_session` cookie, after which `/oauth/authorize` from the same browser answers at
//! once with a code (see `oauth::authorize`). `GET /oauth/logout?return=URL` ends it.
//!
//! The cookie holds a random token only; the simulator keeps token → user id (and expiry,
//! [`SESSION_TTL`](super::state::SESSION_TTL)) in its state. An unknown, expired or forged token
//! is ignored, as if there were no cookie.

use http::{header, HeaderMap, StatusCode};

use super::state::Shared;
use super::users::SimUser;
use super::web::{page, Params, Reply};

/// Name of the simulator's browser-session cookie.
pub(crate) const COOKIE: &str = "clever_sim_session";

/// Attributes of the session cookie (a browser-session cookie: no `Max-Age`).
// Path=/oauth/: browsers ignore ports, so on 127.0.0.1 a Path=/ cookie would also reach the
// gateway and the demo app; every simulator page that reads it lives under /oauth/.
const ATTRIBUTES: &str = "Path=/oauth/; HttpOnly; SameSite=Lax";

/// Every `clever_sim_session` value in the request's `Cookie` headers, in order.
fn tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|c| c.name() == COOKIE && !c.value().is_empty())
        .map(|c| c.value().to_string())
        .collect()
}

/// The user of the browser session this request carries, if it is live.
pub(crate) fn current_user(shared: &Shared, headers: &HeaderMap) -> Option<SimUser> {
    tokens(headers).iter().find_map(|t| shared.session_user(t))
}

/// `reply` with a fresh browser session for `user_id` set on it. Any session the request
/// already carried is ended first (the browser now belongs to `user_id`).
pub(crate) fn sign_in(shared: &Shared, headers: &HeaderMap, user_id: &str, reply: Reply) -> Reply {
    for t in tokens(headers) {
        shared.end_session(&t);
    }
    let token = shared.start_session(user_id);
    reply.header(
        header::SET_COOKIE,
        format!("{COOKIE}={token}; {ATTRIBUTES}"),
    )
}

/// `GET /oauth/logout?return=URL`: ends the browser session (server side, and clears the
/// cookie) and shows a small page, with a "Sign in again" link to `return` when it is an
/// absolute http(s) URL.
pub(crate) fn logout(shared: &Shared, headers: &HeaderMap, q: &Params) -> Reply {
    use html_escape::encode_double_quoted_attribute as attr;
    for t in tokens(headers) {
        shared.end_session(&t);
    }
    let again = match q.single("return") {
        Ok(Some(raw)) => return_url(raw)
            .map(|u| format!("<p><a href=\"{}\">Sign in again</a></p>", attr(&u)))
            .unwrap_or_default(),
        _ => String::new(),
    };
    let body = format!(
        "<h1>Signed out of the Clever simulator</h1>\
         <p>This browser is no longer signed in to the simulator: the next sign-in shows the \
         sign-in page, so you can pick another user.</p>{again}"
    );
    Reply::html(
        StatusCode::OK,
        page("Signed out of the Clever simulator", &body),
    )
    .header(header::CACHE_CONTROL, "no-store")
    .header(
        header::SET_COOKIE,
        format!("{COOKIE}=; {ATTRIBUTES}; Max-Age=0"),
    )
}

/// `raw` as an absolute http(s) URL with a host (normalised), else `None`.
fn return_url(raw: &str) -> Option<String> {
    let u = url::Url::parse(raw).ok()?;
    (matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()))
        .then(|| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_finds_every_session_cookie() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; clever_sim_session=abc; clever_gateway=x"
                .parse()
                .unwrap(),
        );
        h.append(header::COOKIE, "clever_sim_session=def".parse().unwrap());
        h.append(header::COOKIE, "clever_sim_session=".parse().unwrap());
        assert_eq!(tokens(&h), vec!["abc".to_string(), "def".to_string()]);
        assert!(tokens(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn return_url_accepts_only_absolute_http_urls() {
        assert_eq!(
            return_url("http://127.0.0.1:8080/").as_deref(),
            Some("http://127.0.0.1:8080/")
        );
        assert!(return_url("https://app.example.org/x?y=1").is_some());
        for bad in [
            "/relative",
            "//evil.example/",
            "javascript:alert(1)",
            "data:text/html,hi",
            "ftp://example.org/",
            "file:///etc/passwd",
            "",
        ] {
            assert_eq!(return_url(bad), None, "{bad}");
        }
    }
}

#[cfg(test)]
mod http_tests {
    use std::time::Duration;

    use crate::sim::testutil::*;
    use crate::sim::{Endpoint, DEMO_DISTRICT, DEMO_DISTRICT_2};

    const RETURN: &str = "http://127.0.0.1:9/";

    fn logout_url(sim: &crate::sim::SimHandle, ret: Option<&str>) -> String {
        let mut url = url::Url::parse(&format!("{}/oauth/logout", sim.base_url())).unwrap();
        if let Some(r) = ret {
            url.query_pairs_mut().append_pair("return", r);
        }
        url.to_string()
    }

    /// The `clever_sim_session` Set-Cookie of `resp`, whole.
    fn session_set_cookie(resp: &reqwest::Response) -> Option<String> {
        resp.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("clever_sim_session="))
            .map(str::to_string)
    }

    /// Authorize from `c`: `Ok(code)` when answered at once, `Err(html)` when the page is shown.
    async fn authorize_from(
        sim: &crate::sim::SimHandle,
        c: &reqwest::Client,
        extra: &[(&str, &str)],
    ) -> Result<String, String> {
        let resp = c
            .get(authorize_url(sim, REDIRECT, extra))
            .send()
            .await
            .unwrap();
        match resp.status().as_u16() {
            302 => {
                let (base, q) = location(&resp);
                assert_eq!(base, REDIRECT);
                Ok(q["code"].clone())
            }
            200 => Err(resp.text().await.unwrap()),
            s => panic!("authorize answered {s}"),
        }
    }

    fn assert_picker(answer: Result<String, String>) -> String {
        let html = answer.expect_err("the sign-in page, not a code");
        assert!(html.contains("sign in as…"), "{html}");
        html
    }

    #[tokio::test]
    async fn pick_sets_session_cookie_and_second_authorize_answers_at_once() {
        let sim = start().await;
        let c = browser();
        assert_picker(authorize_from(&sim, &c, &[("state", "one")]).await);

        let picked = c
            .get(pick_url(&sim, REDIRECT, STAFF, &[("state", "one")]))
            .send()
            .await
            .unwrap();
        assert_eq!(picked.status(), 302);
        let sc = session_set_cookie(&picked).expect("session cookie on the pick redirect");
        let value = sc["clever_sim_session=".len()..].split(';').next().unwrap();
        assert_eq!(value.len(), 64, "{sc}");
        assert!(
            !value.contains(STAFF),
            "the cookie is a token, not the user id: {sc}"
        );
        for attr in ["HttpOnly", "SameSite=Lax", "Path=/oauth/"] {
            assert!(sc.split("; ").any(|a| a == attr), "{attr} in {sc}");
        }
        let (_, q) = location(&picked);
        assert_eq!(code_user(&sim, &q["code"], REDIRECT).await, STAFF);

        // Same browser, a new authorize with a new state: a code at once, state echoed.
        let resp = c
            .get(authorize_url(&sim, REDIRECT, &[("state", "two")]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        assert!(session_set_cookie(&resp).is_none(), "no new session");
        let (base, q) = location(&resp);
        assert_eq!(base, REDIRECT);
        assert_eq!(q["state"], "two");
        assert_eq!(q["scope"], crate::sim::SCOPE);
        assert_eq!(code_user(&sim, &q["code"], REDIRECT).await, STAFF);

        // Another browser is not signed in.
        assert_picker(authorize_from(&sim, &browser(), &[]).await);
        // Picking again (another user) replaces the session.
        c.get(pick_url(&sim, REDIRECT, TEACHER, &[]))
            .send()
            .await
            .unwrap();
        let code = authorize_from(&sim, &c, &[]).await.unwrap();
        assert_eq!(code_user(&sim, &code, REDIRECT).await, TEACHER);
    }

    #[tokio::test]
    async fn instant_login_starts_session_for_the_bounce() {
        let sim = start().await;
        let c = browser();
        let il = c.get(sim.instant_login_url(TEACHER)).send().await.unwrap();
        assert_eq!(il.status(), 302);
        assert!(session_set_cookie(&il).is_some());
        // The app's bounce: authorize with its own fresh state, answered at once.
        let resp = c
            .get(authorize_url(&sim, REDIRECT, &[("state", "fresh")]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        let (_, q) = location(&resp);
        assert_eq!(q["state"], "fresh");
        assert_eq!(code_user(&sim, &q["code"], REDIRECT).await, TEACHER);
        // A failed Instant Login link starts nothing.
        let other = browser();
        let bad = other
            .get(sim.instant_login_url("nobody"))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
        assert!(session_set_cookie(&bad).is_none());
        assert_picker(authorize_from(&sim, &other, &[]).await);
    }

    #[tokio::test]
    async fn deny_on_the_picker_starts_no_session() {
        let sim = start().await;
        let c = browser();
        let url = authorize_url(&sim, REDIRECT, &[("deny", "1")])
            .replace("/oauth/authorize?", "/oauth/authorize/pick?");
        let resp = c.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 302);
        assert!(session_set_cookie(&resp).is_none());
        assert_picker(authorize_from(&sim, &c, &[]).await);
    }

    #[tokio::test]
    async fn logout_ends_session_server_side_and_clears_cookie() {
        let sim = start().await;
        let c = browser();
        let picked = c
            .get(pick_url(&sim, REDIRECT, TEACHER, &[]))
            .send()
            .await
            .unwrap();
        let sc = session_set_cookie(&picked).unwrap();
        let stolen = sc.split(';').next().unwrap().to_string();
        assert!(authorize_from(&sim, &c, &[]).await.is_ok());

        let before = sim.total_calls();
        let authorize_before = sim.calls(Endpoint::Authorize);
        let out = c.get(logout_url(&sim, Some(RETURN))).send().await.unwrap();
        assert_eq!(out.status(), 200);
        assert_eq!(out.headers()["cache-control"], "no-store");
        let cleared = session_set_cookie(&out).expect("the cookie is cleared");
        assert!(cleared.starts_with("clever_sim_session=;"), "{cleared}");
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
        assert!(cleared.contains("Path=/oauth/"), "{cleared}");
        let html = out.text().await.unwrap();
        assert!(
            html.contains("<h1>Signed out of the Clever simulator</h1>"),
            "{html}"
        );
        assert!(
            html.contains(&format!("<a href=\"{RETURN}\">Sign in again</a>")),
            "{html}"
        );
        // Counted in the total only.
        assert_eq!(sim.total_calls(), before + 1);
        assert_eq!(sim.calls(Endpoint::Authorize), authorize_before);

        assert_picker(authorize_from(&sim, &c, &[]).await);
        // The old cookie, replayed by hand, no longer signs anyone in.
        let resp = client()
            .get(authorize_url(&sim, REDIRECT, &[]))
            .header("cookie", &stolen)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        // Logging out again (or without a session) is harmless.
        assert_eq!(
            c.get(logout_url(&sim, None)).send().await.unwrap().status(),
            200
        );
    }

    #[tokio::test]
    async fn logout_links_back_only_to_http_urls_escaped() {
        let sim = start().await;
        let page = |ret: Option<&'static str>| {
            let url = logout_url(&sim, ret);
            async move {
                client()
                    .get(url)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            }
        };
        for ret in [
            None,
            Some("javascript:alert(1)"),
            Some("/relative"),
            Some("//evil.example/"),
            Some("data:text/html,<script>x</script>"),
        ] {
            let html = page(ret).await;
            assert!(
                html.contains("Signed out of the Clever simulator"),
                "{html}"
            );
            assert!(!html.contains("Sign in again"), "{ret:?}: {html}");
            assert!(!html.contains("<script>"), "{html}");
        }
        let html = page(Some(
            "https://app.example.org/a?b=\"><script>x</script>&c=1",
        ))
        .await;
        assert!(html.contains("Sign in again"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        // Normalised (quotes and brackets percent-encoded), then HTML-escaped (`&`).
        assert!(
            html.contains(
                "<a href=\"https://app.example.org/a?b=%22%3E%3Cscript%3Ex%3C/script%3E&amp;c=1\">"
            ),
            "{html}"
        );
        // Repeated `return`: no link.
        let twice = format!(
            "{}/oauth/logout?return={RETURN}&return={RETURN}",
            sim.base_url()
        );
        let html = client()
            .get(twice)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!html.contains("Sign in again"), "{html}");
    }

    #[tokio::test]
    async fn auto_login_wins_over_session() {
        let sim = start_with(|c| c.auto_login = Some(TEACHER.into())).await;
        let c = browser();
        let picked = c
            .get(pick_url(&sim, REDIRECT, STAFF, &[]))
            .send()
            .await
            .unwrap();
        assert!(session_set_cookie(&picked).is_some());
        let code = authorize_from(&sim, &c, &[]).await.unwrap();
        assert_eq!(code_user(&sim, &code, REDIRECT).await, TEACHER);
        // Even when the auto-login user is refused by district_id, the session is not used.
        let html =
            assert_picker(authorize_from(&sim, &c, &[("district_id", DEMO_DISTRICT_2)]).await);
        assert!(html.contains("Auto-login user"), "{html}");
        // Without the override the session answers.
        sim.set_auto_login(None);
        let code = authorize_from(&sim, &c, &[]).await.unwrap();
        assert_eq!(code_user(&sim, &code, REDIRECT).await, STAFF);
    }

    #[tokio::test]
    async fn forged_or_unknown_session_cookie_shows_picker() {
        let sim = start().await;
        // A real session exists, so the map is not empty.
        browser()
            .get(pick_url(&sim, REDIRECT, TEACHER, &[]))
            .send()
            .await
            .unwrap();
        for cookie in [
            format!("clever_sim_session={}", "0".repeat(64)),
            format!("clever_sim_session={TEACHER}"),
            "clever_sim_session=".to_string(),
            "clever_sim_session=%FF%00; clever_sim_session=\"x\"".to_string(),
            "clever_gateway=abc".to_string(),
        ] {
            let resp = client()
                .get(authorize_url(&sim, REDIRECT, &[]))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{cookie}");
            assert!(
                resp.text().await.unwrap().contains("sign in as…"),
                "{cookie}"
            );
        }
    }

    #[tokio::test]
    async fn session_respects_district_id() {
        let sim = start().await;
        let c = browser();
        c.get(pick_url(&sim, REDIRECT, TEACHER, &[]))
            .send()
            .await
            .unwrap();
        let html =
            assert_picker(authorize_from(&sim, &c, &[("district_id", DEMO_DISTRICT_2)]).await);
        assert!(html.contains("not in district"), "{html}");
        assert!(html.contains(TEACHER_B), "{html}");
        assert!(!html.contains(&format!("value=\"{TEACHER}\"")), "{html}");
        let code = authorize_from(&sim, &c, &[("district_id", DEMO_DISTRICT)])
            .await
            .unwrap();
        assert_eq!(code_user(&sim, &code, REDIRECT).await, TEACHER);
    }

    #[tokio::test]
    async fn session_expires_after_two_hours() {
        let sim = start().await;
        let c = browser();
        c.get(pick_url(&sim, REDIRECT, TEACHER, &[]))
            .send()
            .await
            .unwrap();
        sim.advance_clock(Duration::from_secs(2 * 60 * 60 - 5));
        assert!(authorize_from(&sim, &c, &[]).await.is_ok());
        sim.advance_clock(Duration::from_secs(10));
        assert_picker(authorize_from(&sim, &c, &[]).await);
    }
}
