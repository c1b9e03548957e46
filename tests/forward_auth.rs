//! `/_gateway/auth` (forward-auth for nginx `auth_request`, Traefik ForwardAuth, Caddy
//! `forward_auth`) through the real gateway binary: 200 with identity headers, 401 with the
//! login URL, 403 on policy, 400 for an unknown upstream.

mod common;

use common::*;

/// `app` open to everyone (the default `[[upstream]]`), `staff` teachers only, `legacy` with
/// its own user id header name. Routes do not matter to forward-auth: only `upstream=` does.
async fn env(user: &str) -> Env {
    env_with(
        Some(user),
        "",
        "[[upstream]]\nname = \"staff\"\nurl = \"http://127.0.0.1:9\"\npath_prefix = \"/staff\"\n\
         allow_user_types = [\"teacher\"]\n\
         [[upstream]]\nname = \"legacy\"\nurl = \"http://127.0.0.1:9\"\npath_prefix = \"/legacy\"\n\
         [upstream.headers]\nuser_id = \"X-Remote-User\"\n",
    )
    .await
}

async fn auth(env: &Env, query: &str, cookie: Option<&str>) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client
        .get(env.gw.url(&format!("/_gateway/auth{query}")))
        .header("accept", "text/html")
        .header("x-forwarded-uri", "/grades?term=2")
        .header("x-clever-user-id", "forged");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn forward_auth_signed_in_200_headers_per_upstream() {
    let student = user_with_roles(&["student"]);
    let env = env(&student).await;
    let cookie = session_cookie(&env, &browser()).await;

    let r = auth(&env, "?upstream=app", Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-clever-user-id"), Some(student.clone()));
    assert_eq!(header(&r, "x-clever-user-type").as_deref(), Some("student"));

    let r = auth(&env, "?upstream=legacy", Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-remote-user"), Some(student.clone()));
    assert_eq!(header(&r, "x-clever-user-id"), None);

    let r = auth(&env, "", Some(&cookie)).await;
    assert_eq!(r.status(), 200, "no upstream: any valid session");
    assert_eq!(header(&r, "x-clever-user-id"), Some(student));
}

#[tokio::test]
async fn forward_auth_policy_refuses_403() {
    let env = env(&user_with_roles(&["student"])).await;
    let cookie = session_cookie(&env, &browser()).await;
    let r = auth(&env, "?upstream=staff", Some(&cookie)).await;
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "x-clever-user-id"), None);
}

#[tokio::test]
async fn forward_auth_anonymous_401_with_login_url() {
    let env = env(&user_with_roles(&["teacher"])).await;
    for cookie in [None, Some("clever_gateway=not-a-session")] {
        let r = auth(&env, "?upstream=app", cookie).await;
        assert_eq!(r.status(), 401, "{cookie:?}");
        assert_eq!(
            header(&r, "x-clever-login-url").as_deref(),
            Some("/_gateway/login?rd=%2Fgrades%3Fterm%3D2")
        );
        assert_eq!(header(&r, "x-clever-user-id"), None);
    }
}

#[tokio::test]
async fn forward_auth_unknown_upstream_400() {
    let env = env(&user_with_roles(&["teacher"])).await;
    let cookie = session_cookie(&env, &browser()).await;
    let r = auth(&env, "?upstream=nope", Some(&cookie)).await;
    assert_eq!(r.status(), 400);
    assert_eq!(header(&r, "x-clever-user-id"), None);
}
