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

/// The forward-auth proxy's secret in these tests (as `server.forward_auth_secret_env`).
const PROXY_SECRET: &str = "0f9c2e7b5d41a8c3e6f0b2d4a7c9e1f35b8d0a2c4e6f8a1b3d5c7e9f0a2b4c6d";

/// `app` forwards the access token; the proxy proves itself with [`PROXY_SECRET`].
async fn token_env(user: &str) -> Env {
    on_a_free_port(async |port| {
        let sim = sim_for(port, Some(user)).await;
        let app = Upstream::start().await;
        let cfg = base_config(port, &sim, "").replacen(
            "[server]\n",
            "[server]\nforward_auth_secret_env = \"FA_SECRET\"\n",
            1,
        );
        let cfg = format!(
            "{cfg}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\nforward_access_token = true\n",
            app.addr
        );
        let gw =
            try_start_gateway_env(port, &cfg, sim.client_secret(), &[("FA_SECRET", PROXY_SECRET)])
                .await?;
        Ok(Env { sim, app, gw })
    })
    .await
}

/// `/_gateway/auth?upstream=app` with this cookie and, if given, this proxy secret.
async fn auth_with(env: &Env, cookie: &str, secret: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(env.gw.url("/_gateway/auth?upstream=app"))
        .header("cookie", cookie);
    if let Some(s) = secret {
        req = req.header("x-clever-forward-auth-secret", s);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn forward_auth_gives_the_access_token_only_to_the_proxy_with_the_secret() {
    let teacher = user_with_roles(&["teacher"]);
    let env = token_env(&teacher).await;
    let c = browser();
    let cookie = session_cookie(&env, &c).await;
    // The token the session holds, as a proxied request delivers it to the app.
    let r = c.get(env.gw.url("/page")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let token = env
        .app
        .last()
        .header("x-clever-access-token")
        .expect("token upstream");

    // A script on the gateway's origin (or any browser) asks forward-auth: identity, no token.
    for secret in [
        None,
        Some("wrong"),
        Some(&PROXY_SECRET[..PROXY_SECRET.len() - 1]),
    ] {
        let r = auth_with(&env, &cookie, secret).await;
        assert_eq!(r.status(), 200, "{secret:?}");
        assert_eq!(
            header(&r, "x-clever-user-id").as_deref(),
            Some(teacher.as_str())
        );
        assert_eq!(
            header(&r, "x-clever-access-token"),
            None,
            "{secret:?}: a live Clever token in a response a browser can read"
        );
        assert!(!r.text().await.unwrap().contains(&token));
    }
    // The proxy, with the secret: the token, for it to pass to the app.
    let r = auth_with(&env, &cookie, Some(PROXY_SECRET)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-clever-access-token"), Some(token.clone()));

    // The secret never reaches an app, whatever a proxy sends where.
    c.get(env.gw.url("/other"))
        .header("x-clever-forward-auth-secret", PROXY_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(env.app.last().header("x-clever-forward-auth-secret"), None);
    let logs = env.gw.logs();
    assert!(logs.contains("access token withheld"), "{logs}");
    assert!(
        !logs.contains(PROXY_SECRET) && !logs.contains(&token),
        "{logs}"
    );

    // After logout the session, and its token with it, is gone on the server.
    let out = c
        .post(env.gw.url("/_gateway/logout"))
        .header("origin", env.gw.url(""))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 302);
    let r = auth_with(&env, &cookie, Some(PROXY_SECRET)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "x-clever-access-token"), None);
    let before = env.app.count();
    let r = reqwest::Client::new()
        .get(env.gw.url("/page"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        env.app.count(),
        before,
        "nothing forwarded with the old cookie"
    );
}

#[tokio::test]
async fn forward_auth_secret_too_short_or_unreadable_stops_the_start() {
    let port = free_port();
    let sim = sim_for(port, None).await;
    let cfg = format!(
        "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9\"\n",
        base_config(port, &sim, "").replacen(
            "[server]\n",
            "[server]\nforward_auth_secret_env = \"FA_SECRET\"\n",
            1
        )
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, &cfg).unwrap();
    for env in [vec![("FA_SECRET", "s3cr3t")], vec![]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_clever-gateway"))
            .args(["run", "--config"])
            .arg(&path)
            .env(SECRET_ENV, sim.client_secret())
            .env_remove("FA_SECRET")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("forward_auth_secret"), "{err}");
        assert!(
            !err.contains("short\n") || err.contains("characters long"),
            "{err}"
        );
    }
}
