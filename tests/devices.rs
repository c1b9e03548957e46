//! Shared devices (section 4b) through the real binary: the apps' own session cookies expired
//! at sign-in and sign-out (`app_cookies`), the app's own sign-out link ending the gateway
//! session (`logout_paths`), and sessions that end when unused (`session.idle_timeout`). The
//! same over Redis, across replicas, is in tests/redis.rs.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use reqwest::cookie::{CookieStore, Jar};

/// The app at `/` keeps its session in `sessionid` and `PHPSESSID` and signs out at
/// `/logout/`; `/public/bye` is a public page that signs out too.
const APP: &str = "app_cookies = [\"sessionid\", \"PHPSESSID\", \"sessionid\"]\n\
                   logout_paths = [\"/logout/\", \"/public/bye\"]\n\
                   public_paths = [\"/public/\"]";

/// A second app under `/lib` (same test server), with a cookie of its own.
fn lib_app(env_addr: &str) -> String {
    format!(
        "[[upstream]]\nname = \"lib\"\nurl = \"http://{env_addr}\"\npath_prefix = \"/lib\"\n\
         app_cookies = [\"libsid\"]\n"
    )
}

/// Simulator + recording app + gateway with [`APP`] and the `/lib` app, the student signing in.
async fn env() -> Env {
    env_session("").await
}

/// As [`env`], with `session` lines added to `[session]`.
async fn env_session(session: &str) -> Env {
    let student = user_with_roles(&["student"]);
    on_a_free_port(async |port| {
        let sim = sim_for(port, Some(&student)).await;
        let app = Upstream::start().await;
        let cfg = format!(
            "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\n{APP}\n{}",
            base_config(port, &sim, session),
            app.addr,
            lib_app(&app.addr.to_string()),
        );
        let gw = try_start_gateway_env(port, &cfg, sim.client_secret(), &[]).await?;
        Ok(Env { sim, app, gw })
    })
    .await
}

/// The cookies the jar would send to the gateway at `path`, as one `Cookie` header.
fn jar_cookies(jar: &Jar, env: &Env, path: &str) -> String {
    let url = env.gw.url(path).parse().unwrap();
    jar.cookies(&url)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Every `Set-Cookie` of a response.
fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// Whether `set` holds a `Set-Cookie` expiring `name` at `path` (host-only).
fn expires(set: &[String], name: &str, path: &str) -> bool {
    set.iter().any(|c| {
        let attrs: Vec<&str> = c.split(';').map(str::trim).collect();
        attrs[0] == format!("{name}=")
            && attrs.contains(&format!("Path={path}").as_str())
            && attrs.contains(&"Max-Age=0")
            && !attrs.iter().any(|a| a.starts_with("Domain="))
    })
}

/// An API request with only this `Cookie` header (a copied cookie): its status.
async fn api_status(env: &Env, path: &str, cookie: &str) -> u16 {
    reqwest::Client::new()
        .get(env.gw.url(path))
        .header("accept", "application/json")
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Signs the browser in (through the callback), returning the callback's answer and the
/// session cookie as a `Cookie` header.
async fn sign_in_with(env: &Env, client: &reqwest::Client) -> (reqwest::Response, String) {
    let cb = callback_for(client, &env.gw.url("/_gateway/login?rd=/hello")).await;
    let done = client.get(&cb).send().await.unwrap();
    assert_eq!(done.status(), 302, "signed in");
    let cookie = format!(
        "clever_gateway={}",
        set_cookie_value(&done, "clever_gateway").expect("session cookie")
    );
    (done, cookie)
}

#[tokio::test]
async fn app_cookies_expired_at_sign_in_the_app_never_sees_the_last_users_session() {
    let env = env().await;
    let jar = Arc::new(Jar::default());
    let url = env.gw.url("/").parse().unwrap();
    // What the last student's app session left in this browser.
    for c in [
        "sessionid=last-student; Path=/",
        "PHPSESSID=last-student-php; Path=/",
        "theme=dark; Path=/",
    ] {
        jar.add_cookie_str(c, &url);
    }
    let lib_url = env.gw.url("/lib/").parse().unwrap();
    jar.add_cookie_str("libsid=last-student-lib; Path=/lib", &lib_url);
    let client = browser_with(&jar);
    let (done, _) = sign_in_with(&env, &client).await;
    let set = set_cookies(&done);
    for (name, path) in [
        ("sessionid", "/"),
        ("PHPSESSID", "/"),
        ("libsid", "/"),
        ("libsid", "/lib"),
    ] {
        assert!(expires(&set, name, path), "{name} at {path}: {set:#?}");
    }
    assert_eq!(
        set.iter().filter(|c| c.starts_with("sessionid=")).count(),
        1,
        "a name listed twice is expired once: {set:#?}"
    );
    // The next request reaches the apps without the last user's sessions.
    let r = client.get(env.gw.url("/hello")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let sent = env.app.last().header("cookie").unwrap_or_default();
    assert_eq!(sent, "theme=dark", "{sent}");
    client.get(env.gw.url("/lib/x")).send().await.unwrap();
    let sent = env.app.last().header("cookie").unwrap_or_default();
    assert!(!sent.contains("libsid"), "{sent}");
}

#[tokio::test]
async fn gateway_logout_expires_the_app_cookies_too() {
    let env = env().await;
    let jar = Arc::new(Jar::default());
    let client = browser_with(&jar);
    sign_in_with(&env, &client).await;
    // The app signs this student in to itself.
    let url = env.gw.url("/").parse().unwrap();
    jar.add_cookie_str("sessionid=this-student; Path=/", &url);
    jar.add_cookie_str("theme=dark; Path=/", &url);
    let out = sign_out(&env, &client).await;
    assert_eq!(out.status(), 302);
    let set = set_cookies(&out);
    assert!(expires(&set, "clever_gateway", "/"), "{set:#?}");
    assert!(expires(&set, "sessionid", "/"), "{set:#?}");
    assert!(expires(&set, "libsid", "/lib"), "{set:#?}");
    assert_eq!(jar_cookies(&jar, &env, "/"), "theme=dark");
}

#[tokio::test]
async fn logout_path_goes_to_the_app_then_ends_the_gateway_session() {
    let env = env().await;
    let jar = Arc::new(Jar::default());
    let client = browser_with(&jar);
    let (_, copied) = sign_in_with(&env, &client).await;
    let url = env.gw.url("/").parse().unwrap();
    jar.add_cookie_str("sessionid=this-student; Path=/", &url);
    let before = env.app.count();
    // The app's own sign-out link, written as a browser may send it.
    let r = client
        .get(env.gw.url("/x/../logout/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the app answered");
    assert_eq!(r.text().await.unwrap(), "upstream ok");
    assert_eq!(env.app.count(), before + 1, "forwarded to the app");
    let seen = env.app.last();
    assert_eq!(seen.uri, "/logout/");
    assert!(
        seen.header("x-clever-user-id").is_some(),
        "forwarded signed in, as usual: {seen:?}"
    );
    assert!(
        seen.header("cookie")
            .unwrap_or_default()
            .contains("sessionid="),
        "the app sees its own session to end it"
    );
    // Server side: a copied cookie no longer works.
    assert_eq!(api_status(&env, "/hello", &copied).await, 401);
    // The browser holds neither the gateway's nor the app's session.
    let left = jar_cookies(&jar, &env, "/");
    assert!(
        !left.contains("clever_gateway") && !left.contains("sessionid"),
        "{left}"
    );
    // The next request goes to Clever.
    let next = client.get(env.gw.url("/hello")).send().await.unwrap();
    assert_eq!(next.status(), 302);
    assert!(
        location(&next).contains("/oauth/authorize"),
        "{}",
        location(&next)
    );
    assert!(env.gw.logs().contains("logout (the app's logout path)"));
}

/// An app server that ignores case, drops `;params` or trailing dots serves these as its
/// `/logout/`: each ends the gateway session as well, so a shared device is left signed out.
#[tokio::test]
async fn logout_path_as_an_app_server_reads_it_ends_the_gateway_session() {
    let env = env().await;
    for variant in [
        "/LOGOUT/",
        "/Logout/",
        "/logout;jsessionid=1/",
        "/logout./",
        "/logout%20/",
        "/%EF%BD%8Cogout/",
    ] {
        let jar = Arc::new(Jar::default());
        let client = browser_with(&jar);
        let (_, copied) = sign_in_with(&env, &client).await;
        let r = client.get(env.gw.url(variant)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{variant}: forwarded to the app");
        assert!(
            expires(&set_cookies(&r), "clever_gateway", "/"),
            "{variant}: {:?}",
            set_cookies(&r)
        );
        assert_eq!(
            api_status(&env, "/hello", &copied).await,
            401,
            "{variant}: the session ended server-side"
        );
    }
}

#[tokio::test]
async fn logout_path_without_a_session_is_an_ordinary_request() {
    let env = env().await;
    let before = env.app.count();
    let r = browser().get(env.gw.url("/logout/")).send().await.unwrap();
    assert_eq!(r.status(), 302, "a protected path: sign in first");
    assert!(location(&r).contains("/oauth/authorize"));
    assert_eq!(env.app.count(), before, "not forwarded");
    // A public logout path is forwarded, and sets no gateway cookie.
    let r = browser()
        .get(env.gw.url("/public/bye"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(set_cookies(&r).is_empty(), "{:?}", set_cookies(&r));
    assert_eq!(env.app.count(), before + 1);
    // Other paths of a signed-in browser keep its session.
    let jar = Arc::new(Jar::default());
    let client = browser_with(&jar);
    let (_, copied) = sign_in_with(&env, &client).await;
    for path in ["/logout", "/logout/x", "/LOGOUT/x", "/public/bye/"] {
        let r = client.get(env.gw.url(path)).send().await.unwrap();
        assert!(set_cookies(&r).is_empty(), "{path}: {:?}", set_cookies(&r));
    }
    assert_eq!(api_status(&env, "/hello", &copied).await, 200);
}

#[tokio::test]
async fn logout_path_on_a_public_path_still_ends_the_session() {
    let env = env().await;
    let jar = Arc::new(Jar::default());
    let client = browser_with(&jar);
    let (_, copied) = sign_in_with(&env, &client).await;
    let r = client.get(env.gw.url("/public/bye")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = env.app.last();
    assert_eq!(seen.uri, "/public/bye");
    assert!(
        seen.header("x-clever-user-id").is_none(),
        "public: no identity"
    );
    assert!(expires(&set_cookies(&r), "clever_gateway", "/"));
    assert_eq!(api_status(&env, "/hello", &copied).await, 401);
}

#[tokio::test]
async fn logout_path_whose_app_does_not_answer_still_signs_out() {
    let student = user_with_roles(&["student"]);
    // An app that is down: a port nothing listens on.
    let dead = free_port();
    let env = on_a_free_port(async |port| {
        let sim = sim_for(port, Some(&student)).await;
        let app = Upstream::start().await;
        let cfg = format!(
            "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\n\
             [[upstream]]\nname = \"dead\"\nurl = \"http://127.0.0.1:{dead}\"\n\
             path_prefix = \"/dead\"\nlogout_paths = [\"/dead/logout\"]\n\
             app_cookies = [\"deadsid\"]\n",
            base_config(port, &sim, ""),
            app.addr,
        );
        let gw = try_start_gateway_env(port, &cfg, sim.client_secret(), &[]).await?;
        Ok(Env { sim, app, gw })
    })
    .await;
    let client = browser();
    let (_, copied) = sign_in_with(&env, &client).await;
    let r = client.get(env.gw.url("/dead/logout")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let set = set_cookies(&r);
    assert!(expires(&set, "clever_gateway", "/"), "{set:#?}");
    assert!(expires(&set, "deadsid", "/dead"), "{set:#?}");
    assert_eq!(api_status(&env, "/hello", &copied).await, 401);
}

/// `idle_timeout = "2s"`: requests a second apart keep the session for longer than 2 s; then
/// 3 s without one end it (the copied cookie too), though `ttl` is hours away.
#[tokio::test]
async fn idle_timeout_each_request_extends_an_unused_session_ends() {
    let env = env_session("idle_timeout = \"2s\"").await;
    let client = browser();
    let (_, cookie) = sign_in_with(&env, &client).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(api_status(&env, "/hello", &cookie).await, 200, "in use");
    }
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(
        api_status(&env, "/hello", &cookie).await,
        401,
        "unused for 3 s"
    );
    let r = client.get(env.gw.url("/hello")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert!(location(&r).contains("/oauth/authorize"));
    // `/_gateway/me` agrees.
    assert_eq!(api_status(&env, "/_gateway/me", &cookie).await, 401);
}

fn check(text: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gateway.toml");
    std::fs::write(&p, text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_clever-gateway"))
        .args(["check", "--config"])
        .arg(&p)
        .output()
        .unwrap()
}

const CHECKED: &str = "[clever]\nclient_id = \"c\"\nclient_secret_env = \"UNSET_DEVICES_SECRET\"\n\
                       redirect_uri = \"https://gw.example.org/cb\"\n[session]\n";

#[test]
fn check_shows_app_cookies_logout_paths_and_idle_timeout() {
    let out = check(&format!(
        "{CHECKED}idle_timeout = \"20m\"\n[[upstream]]\nname = \"lib\"\n\
         url = \"http://127.0.0.1:9\"\napp_cookies = [\"PHPSESSID\", \"koha_sid\"]\n\
         logout_paths = [\"/logout.php\", \"/cgi-bin/logout\"]\n"
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("app_cookies=PHPSESSID,koha_sid"),
        "{stdout}"
    );
    assert!(
        stdout.contains("logout_paths=/logout.php,/cgi-bin/logout"),
        "{stdout}"
    );
    assert!(
        stdout.contains("session: store=memory ttl=2h idle_timeout=20m"),
        "{stdout}"
    );
    let out = check(&format!(
        "{CHECKED}[[upstream]]\nname = \"lib\"\nurl = \"http://127.0.0.1:9\"\n"
    ));
    assert!(String::from_utf8_lossy(&out.stdout).contains("idle_timeout=off"));
}

#[test]
fn bad_shared_device_keys_are_config_errors_with_positions() {
    let text = format!(
        "{CHECKED}ttl = \"1h\"\nidle_timeout = \"2h\"\n[[upstream]]\nname = \"lib\"\n\
         url = \"http://127.0.0.1:9\"\npath_prefix = \"/lib\"\n\
         app_cookies = [\"clever_gateway\", \"a b\"]\n\
         logout_paths = [\"logout\", \"/lib/../x\", \"/other/logout\", \"/lib/logout?x\"]\n"
    );
    let out = check(&text);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = |needle: &str| {
        let line = text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        format!("gateway.toml:{line}:")
    };
    for (needle, says) in [
        (
            "idle_timeout",
            "session.idle_timeout \"2h\" is longer than session.ttl",
        ),
        (
            "app_cookies",
            "\"clever_gateway\" is one of the gateway's own cookies",
        ),
        ("app_cookies", "\"a b\" is not a cookie name"),
        ("logout_paths", "\"logout\" does not start with \"/\""),
        ("logout_paths", "\"/lib/../x\" is not a normalised path"),
        (
            "logout_paths",
            "\"/other/logout\" is not under this upstream's path_prefix",
        ),
        ("logout_paths", "\"/lib/logout?x\" has \"?\""),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&at(needle)) && l.contains(says)),
            "{says} at {}: {stderr}",
            at(needle)
        );
    }
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("gateway.toml:"))
            .count(),
        7,
        "{stderr}"
    );
}
