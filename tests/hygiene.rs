//! Routing, header hygiene, policy and hostile input through the real gateway binary.

mod common;

use common::*;

#[tokio::test]
async fn spoofed_identity_headers_never_reach_upstream() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(
        Some(&teacher),
        "public_paths = [\"/public/\"]\n[upstream.headers]\nuser_id = \"X-School-User\"",
        "",
    )
    .await;
    let c = browser();
    let cookie = session_cookie(&env, &c).await;
    for (path, cookie) in [("/public/x", None), ("/private", Some(cookie.as_str()))] {
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Clever-User-Id: evil1\r\nx-clever-user-id: evil2\r\nX_Clever_User_Id: evil3\r\nX-CLEVER-USER-TYPE: district_admin\r\nX_clever-District_ID: evil4\r\nX-Clever-Anything: evil5\r\nX-School-User: evil6\r\nX_School_User: evil7\r\nx-clever-user-id: evil8\r\n"
        );
        if let Some(c) = cookie {
            req.push_str(&format!("Cookie: {c}\r\n"));
        }
        req.push_str("Connection: close\r\n\r\n");
        let answer = raw(env.gw.port, req.as_bytes()).await;
        assert_eq!(raw_status(&answer), 200, "{answer}");
        let seen = env.app.last();
        for (k, v) in &seen.headers {
            let v = String::from_utf8_lossy(v);
            assert!(
                !v.contains("evil"),
                "{path}: spoofed {k}: {v} reached the upstream"
            );
        }
        if cookie.is_some() {
            assert_eq!(seen.header("x-school-user").unwrap(), teacher);
            assert_eq!(seen.all("x-school-user").len(), 1);
            assert_eq!(seen.header("x-clever-user-type").unwrap(), "teacher");
        } else {
            assert!(seen.header("x-school-user").is_none());
            assert!(seen.header("x-clever-user-type").is_none());
        }
    }
}

#[tokio::test]
async fn gateway_cookies_removed_app_cookies_kept() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    let c = browser();
    let cookie = session_cookie(&env, &c).await;
    let r = reqwest::Client::new()
        .get(env.gw.url("/app"))
        .header(
            "cookie",
            format!("PHPSESSID=abc; {cookie}; theme=dark; clever_gateway_login=zzz"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = env.app.last();
    assert_eq!(seen.header("cookie").unwrap(), "PHPSESSID=abc; theme=dark");
    assert_eq!(seen.header("x-clever-user-id").unwrap(), teacher);
}

#[tokio::test]
async fn forwarded_headers_replaced_for_untrusted_clients() {
    let env = env_with(None, "public_paths = [\"/public/\"]", "").await;
    let r = reqwest::Client::new()
        .get(env.gw.url("/public/a"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .header("x-request-id", "spoofed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let seen = env.app.last();
    assert_eq!(seen.header("x-forwarded-for").unwrap(), "127.0.0.1");
    assert_eq!(seen.header("x-forwarded-proto").unwrap(), "http");
    assert_eq!(
        seen.header("x-forwarded-host").unwrap(),
        format!("127.0.0.1:{}", env.gw.port)
    );
    assert_eq!(seen.header("x-request-id").unwrap(), rid);
    assert_ne!(rid, "spoofed");
}

/// Forwarding claims a client may send (the issue's list, other `X-Forwarded-*`, `_`
/// spellings) and path overrides.
const FORWARDING_CLAIMS: &[(&str, &str)] = &[
    ("forwarded", "for=6.6.6.6;proto=https;host=evil.example"),
    ("x-real-ip", "6.6.6.6"),
    ("true-client-ip", "6.6.6.6"),
    ("x-forwarded-port", "443"),
    ("x-forwarded-prefix", "/admin"),
    ("x-forwarded-server", "evil.example"),
    ("x-forwarded-ssl", "on"),
    ("x-original-host", "evil.example"),
    ("x-client-ip", "6.6.6.6"),
    ("cf-connecting-ip", "6.6.6.6"),
    ("x_real_ip", "6.6.6.6"),
];
const PATH_OVERRIDES: &[(&str, &str)] = &[
    ("x-original-url", "/admin"),
    ("x-rewrite-url", "/admin"),
    ("x-override-url", "/admin"),
    ("x_original_url", "/admin"),
];

/// The gateway on `port` with one public app and `server_extra` in `[server]`.
async fn claims_env(server_extra: &'static str) -> Env {
    on_a_free_port(async |port| {
        let sim = sim_for(port, None).await;
        let app = Upstream::start().await;
        let cfg = format!(
            "{}\n[[upstream]]\nname = \"app\"\nurl = \"http://{}\"\npublic_paths = [\"/public/\"]\n",
            base_config(port, &sim, "").replacen("[server]\n", &format!("[server]\n{server_extra}\n"), 1),
            app.addr,
        );
        let gw = try_start_gateway_env(port, &cfg, sim.client_secret(), &[]).await?;
        Ok(Env { sim, app, gw })
    })
    .await
}

/// `GET /public/a` with every claim and override, as the app receives it.
async fn with_claims(env: &Env) -> Seen {
    let mut r = reqwest::Client::new()
        .get(env.gw.url("/public/a"))
        .header("x_forwarded_for", "6.6.6.6");
    for (k, v) in FORWARDING_CLAIMS.iter().chain(PATH_OVERRIDES) {
        r = r.header(*k, *v);
    }
    assert_eq!(r.send().await.unwrap().status(), 200);
    env.app.last()
}

#[tokio::test]
async fn client_forwarding_claims_and_path_overrides_never_reach_the_app() {
    let env = claims_env("").await;
    let seen = with_claims(&env).await;
    for (k, _) in FORWARDING_CLAIMS.iter().chain(PATH_OVERRIDES) {
        assert_eq!(seen.header(k), None, "{k} reached the app");
    }
    assert_eq!(seen.header("x_forwarded_for"), None);
    assert_eq!(seen.all("x-forwarded-for"), vec!["127.0.0.1"]);
}

#[tokio::test]
async fn trusted_proxy_keeps_forwarding_claims_but_never_path_overrides() {
    let env = claims_env("trusted_proxies = [\"127.0.0.1\"]").await;
    let seen = with_claims(&env).await;
    for (k, v) in FORWARDING_CLAIMS {
        assert_eq!(
            seen.header(k).as_deref(),
            Some(*v),
            "{k} from a trusted proxy"
        );
    }
    for (k, _) in PATH_OVERRIDES {
        assert_eq!(seen.header(k), None, "{k} reached the app");
    }
    assert_eq!(
        seen.header("x_forwarded_for"),
        None,
        "only the gateway's spelling"
    );
}

#[tokio::test]
async fn student_refused_on_teacher_only_upstream_and_upstream_sees_nothing() {
    let student = user_with_roles(&["student"]);
    let env = env_with(Some(&student), "allow_user_types = [\"teacher\"]", "").await;
    let c = browser();
    let (r, _) = follow(&c, &env.gw.url("/gradebook")).await;
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("Sign out")
            && body.contains(r#"<form method="post" action="/_gateway/logout">"#),
        "{body}"
    );
    assert_eq!(env.app.count(), 0);
}

#[tokio::test]
async fn multi_role_user_passes_and_header_lists_all_roles() {
    let both = user_with_roles(&["teacher", "district_admin"]);
    let env = env_with(Some(&both), "allow_user_types = [\"district_admin\"]", "").await;
    let r = sign_in(&env, &browser(), "/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        env.app.last().header("x-clever-user-type").unwrap(),
        "teacher,district_admin"
    );
}

#[tokio::test]
async fn district_policy_refuses_other_district() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(
        Some(&teacher),
        "allow_districts = [\"000000000000000000000000\"]",
        "",
    )
    .await;
    let (r, _) = follow(&browser(), &env.gw.url("/")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(env.app.count(), 0);
}

#[tokio::test]
async fn email_and_name_only_when_configured_non_ascii_encoded() {
    let user = clever_gateway::sim::demo_users()
        .into_iter()
        .find(|u| !u.full_name().is_ascii())
        .expect("a demo user with a non-ASCII name");
    let env = env_with(
        Some(&user.id),
        "[upstream.headers]\nemail = \"X-Clever-Email\"\nname = \"X-Clever-Name\"",
        "",
    )
    .await;
    sign_in(&env, &browser(), "/").await;
    let seen = env.app.last();
    let name = seen.header("x-clever-name").unwrap();
    assert!(name.starts_with("UTF-8''"), "{name}");
    assert!(name.is_ascii());
    let decoded = percent_encoding::percent_decode_str(&name[7..])
        .decode_utf8()
        .unwrap();
    assert!(decoded.contains(user.first.as_deref().unwrap()));
}

#[tokio::test]
async fn routing_longest_prefix_whole_segments_and_404() {
    let port = free_port();
    let teacher = user_with_roles(&["teacher"]);
    let sim = sim_for(port, Some(&teacher)).await;
    let a = Upstream::start().await;
    let b = Upstream::start().await;
    let cfg = format!(
        "{}\n[[upstream]]\nname = \"staff\"\nurl = \"http://{}\"\npath_prefix = \"/staff\"\npublic_paths = [\"/staff/\"]\nstrip_path_prefix = true\n\n[[upstream]]\nname = \"other-host\"\nurl = \"http://{}\"\nhost = \"other.example\"\npublic_paths = [\"/\"]\n",
        base_config(port, &sim, ""),
        a.addr,
        b.addr
    );
    let gw = start_gateway(port, &cfg, sim.client_secret()).await;
    let c = reqwest::Client::new();
    let r = c.get(gw.url("/staff/x?y=1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(a.last().uri, "/x?y=1", "prefix stripped");
    let r = c.get(gw.url("/staffing")).send().await.unwrap();
    assert_eq!(r.status(), 404, "/staff does not match /staffing");
    let body = r.text().await.unwrap();
    assert!(body.contains("request id") || body.contains("request_id"));
    let r = c
        .get(gw.url("/anything"))
        .header("host", "OTHER.example:8443")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(b.count(), 1, "host match, case-insensitive, port ignored");
}

#[tokio::test]
async fn public_path_tricks_do_not_bypass_login() {
    let env = env_with(None, "public_paths = [\"/public/\", \"/favicon.ico\"]", "").await;
    let c = reqwest::Client::new();
    let ok = c.get(env.gw.url("/public/style.css")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let before = env.app.count();
    for path in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/..;/admin",
        "/favicon.ico/../admin",
        "/public%2f..%2fadmin",
        "/public/%252e%252e/admin",
    ] {
        let answer = raw(
            env.gw.port,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        let status = raw_status(&answer);
        assert!(status == 400 || status == 401, "{path}: {status}");
    }
    assert_eq!(env.app.count(), before, "no trick reached the upstream");
}

#[tokio::test]
async fn login_rd_open_redirect_shapes_stay_on_site() {
    let env = env_with(None, "", "").await;
    let c = browser();
    for rd in [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "/%2F%2Fevil.example",
        "/%09/evil.example",
        "javascript:alert(1)",
        "/%5Cevil.example",
    ] {
        let q: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        let r = c
            .get(env.gw.url(&format!("/_gateway/login?rd={q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{rd}");
    }
    let r = c
        .get(env.gw.url("/_gateway/login?rd=%2Fok%3Fa%3D1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
}

#[tokio::test]
async fn request_target_open_redirect_falls_back_to_root() {
    let teacher = user_with_roles(&["teacher"]);
    let env = env_with(Some(&teacher), "", "").await;
    // A request for `//evil.example/x` must not come back as Location: //evil.example/x.
    let answer = raw(
        env.gw.port,
        b"GET //evil.example/x HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&answer), 302, "{answer}");
    let c = browser();
    let (_, visited) = follow(&c, &env.gw.url("//evil.example/x")).await;
    assert!(
        visited
            .iter()
            .all(|u| !u.starts_with("http://evil.example")),
        "{visited:?}"
    );
}

/// Reads one HTTP/1.1 answer with a `Content-Length` body from `s`.
async fn read_answer(s: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return text;
            }
        }
        let n = tokio::time::timeout(std::time::Duration::from_secs(3), s.read(&mut chunk))
            .await
            .expect("answer in time")
            .unwrap();
        assert!(n > 0, "connection closed mid-answer: {text:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn gateway_answers_keep_the_connection_when_no_body_is_left_unread() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = env_with(None, "", "").await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", env.gw.port))
        .await
        .unwrap();
    // Anonymous browser navigations: 302 to Clever, twice on one connection.
    for _ in 0..2 {
        s.write_all(b"GET /app HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n\r\n")
            .await
            .unwrap();
        let answer = read_answer(&mut s).await;
        assert_eq!(raw_status(&answer), 302, "{answer}");
        assert!(
            !answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    // An API client's 401, still on the same connection.
    s.write_all(b"GET /app HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(raw_status(&read_answer(&mut s).await), 401);

    // A request whose body the gateway does not read: answered, then the connection closes,
    // so the body can never be taken for a next request.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", env.gw.port))
        .await
        .unwrap();
    s.write_all(
        b"POST /app HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\nContent-Length: 44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(3), s.read_to_end(&mut buf))
        .await
        .expect("the gateway closes the connection")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf);
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert_eq!(raw_status(&answer), 302, "{answer}");
}

#[tokio::test]
async fn hostile_input_gets_4xx_and_gateway_keeps_serving() {
    let env = env_with(None, "public_paths = [\"/public/\"]", "").await;
    let port = env.gw.port;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "malformed cookie",
            b"GET /x HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nCookie: clever_gateway=%%%; =;;; \xff\xfe\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "oversized cookie",
            format!("GET /x HTTP/1.1\r\nHost: x\r\nCookie: clever_gateway={}\r\nConnection: close\r\n\r\n", "A".repeat(70_000)).into_bytes(),
        ),
        (
            "bad callback encoding",
            b"GET /oauth/clever/callback?code=%zz&state=a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "CL and TE",
            b"POST /public/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "unknown gateway page",
            b"GET /_gateway/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "repeated callback params",
            b"GET /oauth/clever/callback?code=a&code=b&state=s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "fragment in target",
            b"GET /x#frag HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "control character in target",
            b"GET /x\x01y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "non-UTF-8 path",
            b"GET /%ff%fe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        ),
    ];
    for (name, req) in cases {
        let answer = raw(port, &req).await;
        let status = raw_status(&answer);
        if name == "malformed cookie" {
            assert_eq!(
                status, 401,
                "{name}: an undecodable cookie is 'not signed in'"
            );
        } else {
            assert!(
                (400..500).contains(&status),
                "{name}: got {status}: {answer:.300}"
            );
        }
        assert!(
            !answer.contains("Server: Pingora")
                || name == "oversized cookie"
                || name == "CL and TE",
            "{name}: {answer:.300}"
        );
    }
    let ok = reqwest::get(env.gw.url("/public/ok")).await.unwrap();
    assert_eq!(ok.status(), 200, "still serving");
    assert_eq!(
        env.app
            .requests()
            .iter()
            .filter(|s| s.uri.starts_with("/public/x"))
            .count(),
        0,
        "the smuggling shape never reached the upstream"
    );
}

#[tokio::test]
async fn bad_upstream_gives_502_page() {
    let dead = free_port();
    let port = free_port();
    let sim = sim_for(port, None).await;
    let cfg = format!(
        "{}\n[[upstream]]\nname = \"dead\"\nurl = \"http://127.0.0.1:{dead}\"\npublic_paths = [\"/\"]\n",
        base_config(port, &sim, "")
    );
    let gw = start_gateway(port, &cfg, sim.client_secret()).await;
    let r = browser().get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("request id") && !body.contains("Pingora"),
        "{body}"
    );
}

#[tokio::test]
async fn logs_never_contain_secret_token_code_or_session_id() {
    let teacher = user_with_roles(&["teacher"]);
    // forward_access_token lets the test learn the token the gateway holds.
    let env = env_with(Some(&teacher), "forward_access_token = true", "").await;
    let c = browser();
    let cb = callback_for(&c, &env.gw.url("/x")).await;
    let code = url::Url::parse(&cb)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let done = c.get(&cb).send().await.unwrap();
    let sid = set_cookie_value(&done, "clever_gateway").unwrap();
    c.get(env.gw.url("/y")).send().await.unwrap();
    let token = env
        .app
        .last()
        .header("x-clever-access-token")
        .expect("token forwarded");
    assert!(token.len() > 8);
    sign_out(&env, &c).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let logs = env.gw.logs();
    assert!(
        logs.contains("login completed"),
        "logs are captured:\n{logs}"
    );
    assert!(
        !logs.contains(env.sim.client_secret()),
        "client secret in logs"
    );
    assert!(!logs.contains(&code), "code in logs");
    assert!(!logs.contains(&sid), "session id in logs");
    assert!(!logs.contains(&token), "access token in logs");
    assert!(!logs.contains("Bearer"), "token header in logs");
}
