//! Apps cannot plant the gateway's cookies: every `Set-Cookie` of the gateway's names (the
//! session, login and bounce cookies, with any `__Host-`/`__Secure-` prefix, in any case, or
//! nameless) is removed from the apps' responses, so an app, or a header injection in one,
//! cannot sign a browser in as someone else (login CSRF). Through the real binary.

mod common;

use std::sync::{Arc, Mutex};

use clever_gateway::sim::Endpoint;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An app that answers every request 200 "ok" with these `Set-Cookie` values.
async fn cookie_setting_app(set_cookies: Arc<Mutex<Vec<String>>>) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let set_cookies = set_cookies.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let mut head = String::from("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n");
                for c in set_cookies.lock().unwrap().iter() {
                    head.push_str(&format!("set-cookie: {c}\r\n"));
                }
                head.push_str("connection: close\r\n\r\nok");
                let _ = s.write_all(head.as_bytes()).await;
            });
        }
    });
    addr
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn app_set_cookie_of_gateway_names_never_reaches_the_browser() {
    let planted: Vec<String> = [
        "clever_gateway=planted-session; Path=/",
        "Clever_Gateway=planted; Path=/",
        "__Host-clever_gateway=planted; Secure; Path=/",
        "clever_gateway_login=planted",
        "__Secure-clever_gateway_login_abcdefghijkl=planted; Secure; Path=/",
        "__host-CLEVER_GATEWAY_LOGIN_x=planted; Secure; Path=/",
        "=clever_gateway=nameless",
        " clever_gateway_bounce=1; Max-Age=300",
        "PHPSESSID=app-session; Path=/; HttpOnly",
        "theme=dark",
    ]
    .map(String::from)
    .to_vec();
    let app = cookie_setting_app(Arc::new(Mutex::new(planted))).await;
    let teacher = user_with_roles(&["teacher"]);
    let tail = format!(
        "[[upstream]]\nname = \"evil\"\nurl = \"http://{app}\"\npath_prefix = \"/evil\"\n\
         public_paths = [\"/evil/public/\"]\n"
    );
    let env = env_with(Some(&teacher), "", &tail).await;
    let c = browser();
    sign_in(&env, &c, "/").await;
    for path in ["/evil/page", "/evil/public/x"] {
        let r = c.get(env.gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            set_cookies(&r),
            ["PHPSESSID=app-session; Path=/; HttpOnly", "theme=dark"],
            "{path}: only the app's own cookies"
        );
    }
    // Still signed in as the teacher: nothing the app sent replaced the session.
    let me: serde_json::Value = c
        .get(env.gw.url("/_gateway/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user_id"], teacher.as_str());
    let logs = env.gw.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("Set-Cookie removed"))
        .collect();
    assert_eq!(lines.len(), 2, "one line per response:\n{logs}");
    assert!(
        lines[0].contains("dropped=8") && lines[0].contains("evil"),
        "{}",
        lines[0]
    );
    assert!(!logs.contains("planted"), "no cookie value in the logs");
}

/// Login CSRF: the attacker starts a sign-in in their own browser, signs in at Clever as
/// themselves, and keeps the callback URL; an app behind the gateway (or a header injection in
/// one) plants the attacker's login cookie in the victim's browser, and the victim is sent to
/// the callback. The victim must not end up signed in as the attacker.
#[tokio::test]
async fn planted_login_cookie_does_not_sign_the_victim_in_as_the_attacker() {
    let attacker_id = user_with_roles(&["student"]);
    let planted: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = cookie_setting_app(planted.clone()).await;
    let tail = format!(
        "[[upstream]]\nname = \"evil\"\nurl = \"http://{app}\"\npath_prefix = \"/evil\"\n\
         public_paths = [\"/evil/\"]\n"
    );
    let env = env_with(Some(&attacker_id), "", &tail).await;
    // The attacker's own sign-in: the login cookie and the callback URL, never used.
    let attacker = browser();
    let start = attacker.get(env.gw.url("/")).send().await.unwrap();
    assert_eq!(start.status(), 302);
    let (name, value, _) = login_cookie(&start).expect("the attacker's login cookie");
    let at_clever = attacker.get(location(&start)).send().await.unwrap();
    let callback = location(&at_clever);
    // The app plants it in the victim's browser; the victim then follows the callback link.
    *planted.lock().unwrap() = vec![format!("{name}={value}; Path=/")];
    let victim = browser();
    let r = victim.get(env.gw.url("/evil/news")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let landed = victim.get(&callback).send().await.unwrap();
    assert!(
        set_cookie_value(&landed, "clever_gateway").is_none(),
        "the victim got a session from the attacker's sign-in"
    );
    assert_eq!(landed.status(), 400);
    let me = victim.get(env.gw.url("/_gateway/me")).send().await.unwrap();
    assert_eq!(
        me.status(),
        401,
        "the victim is not signed in as the attacker"
    );
    assert_eq!(
        env.sim.calls(Endpoint::Tokens),
        0,
        "the code was never exchanged"
    );
}
