//! Known-bad corpora through the real gateway binary (issue 7, item 2): each shape gets a 4xx
//! (or a redirect that stays on site), never reaches the upstream unauthenticated, and the
//! gateway keeps serving afterwards.

mod common;

use common::*;

/// `raw` request bytes for `path` with extra header lines.
fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n{extra}Connection: close\r\n\r\n")
        .into_bytes()
}

async fn still_serving(env: &Env) {
    let ok = reqwest::get(env.gw.url("/public/ok")).await.unwrap();
    assert_eq!(ok.status(), 200, "the gateway keeps serving");
}

/// Requests the upstream saw whose URI does not start with `/public/ok`.
fn unexpected(env: &Env) -> Vec<String> {
    env.app
        .requests()
        .iter()
        .map(|s| s.uri.clone())
        .filter(|u| !u.starts_with("/public/ok") && u != "/public")
        .collect()
}

#[tokio::test]
async fn oauth2_proxy_open_redirect_corpus() {
    let env = env_with(None, "public_paths = [\"/public/\"]", "").await;
    let c = browser();
    for rd in [
        // CVE-2020-5233
        "/\\evil.example",
        "/\\t/evil.example",
        "/\\\\evil.example",
        // GHSA-j7px: encoded whitespace and controls between the slashes
        "/%09/evil.example",
        "/%0a/evil.example",
        "/%0d/evil.example",
        "/%0b/evil.example",
        "/%0c/evil.example",
        "/%e3%80%80/evil.example",
        "/\t/evil.example",
        // CVE-2021-21291: look-alike domains; rd is a path only, so every absolute URL is refused
        "https://gw.example.org.evil.example/",
        "https://127.0.0.1.evil.example/",
        "https://evil.example/127.0.0.1",
        "//127.0.0.1.evil.example",
        "https://127.0.0.1@evil.example/",
    ] {
        let q: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        let r = c
            .get(env.gw.url(&format!("/_gateway/login?rd={q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{rd:?}");
    }
    // Accepted with a space (`/%20/evil.example` is the path "/ /evil.example" on this site):
    // a login starts, and the return path, once resolved, stays on the gateway.
    for rd in ["/%20/evil.example", "/ /evil.example"] {
        assert!(
            clever_gateway::auth::return_path::safe_return_path(rd).is_none_or(|v| {
                url::Url::parse("https://gw.example.org/")
                    .unwrap()
                    .join(&v)
                    .unwrap()
                    .host_str()
                    == Some("gw.example.org")
            }),
            "{rd:?}"
        );
    }
    assert!(unexpected(&env).is_empty(), "{:?}", unexpected(&env));
    still_serving(&env).await;
}

#[tokio::test]
async fn header_spoofing_variants_corpus() {
    let env = env_with(
        None,
        "public_paths = [\"/public/\"]\n[upstream.headers]\nuser_id = \"X-School-User\"",
        "",
    )
    .await;
    // Line folding (obs-fold) and a non-token byte in a name are malformed HTTP: pingora 400.
    for (name, extra) in [
        (
            "obs-fold",
            "X-Note: a\r\n X-Clever-User-Id: evil1\r\n".to_string(),
        ),
        ("tab fold", "X-Note: a\r\n\tX_School_User: evil2\r\n".into()),
        ("non-ASCII name", "X-Cl\u{e9}ver-User-Id: evil3\r\n".into()),
    ] {
        let answer = raw(env.gw.port, &get("/public/x", &extra)).await;
        assert_eq!(raw_status(&answer), 400, "{name}: {answer:.300}");
    }
    assert!(
        env.app.requests().is_empty(),
        "a malformed request reached the upstream"
    );
    // Case, `_`, duplicates and non-ASCII values on a public path: forwarded, scrubbed.
    let mut req = b"GET /public/y HTTP/1.1\r\nHost: x\r\nX-CLEVER-USER-ID: evil4\r\nx_clever_user_id: evil5\r\nX-Clever-User-Id: evil6\r\nX_school-USER: evil7\r\nX-Clever-Email: evil8\xc3\xa9\r\nX-Clever-Name: \xff\xfeevil9\r\n".to_vec();
    req.extend_from_slice(b"Connection: close\r\n\r\n");
    let answer = raw(env.gw.port, &req).await;
    let status = raw_status(&answer);
    assert!(status == 200 || status == 400, "{answer:.300}");
    for s in env.app.requests() {
        for (k, v) in &s.headers {
            let v = String::from_utf8_lossy(v);
            assert!(!v.contains("evil"), "spoofed {k}: {v} reached the upstream");
        }
    }
    still_serving(&env).await;
}

#[tokio::test]
async fn malformed_and_oversized_cookie_corpus() {
    let env = env_with(None, "public_paths = [\"/public/\"]", "").await;
    let many = "a=b; ".repeat(1500);
    let many_ours = "clever_gateway=x; ".repeat(1500);
    let eq = "=".repeat(8000);
    let semi = ";".repeat(8000);
    for cookie in [
        ";",
        "=",
        ";=;=;",
        " ",
        "clever_gateway",
        "clever_gateway=",
        "\u{a0}clever_gateway=forged",
        many.as_str(),
        many_ours.as_str(),
        eq.as_str(),
        semi.as_str(),
    ] {
        let answer = raw(
            env.gw.port,
            &get("/private", &format!("Cookie: {cookie}\r\n")),
        )
        .await;
        let status = raw_status(&answer);
        assert!(
            (400..500).contains(&status),
            "cookie {:.40?}: {answer:.300}",
            cookie
        );
    }
    assert!(unexpected(&env).is_empty(), "{:?}", unexpected(&env));
    still_serving(&env).await;
}

#[tokio::test]
async fn public_path_tricks_corpus() {
    let env = env_with(None, "public_paths = [\"/public/\"]", "").await;
    for path in [
        "/public/../admin",
        "/public/..;x/admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/.%2e/admin",
        "/public/%252e%252e/admin",
        "/public/..%2fadmin",
        "/public/..%5cadmin",
        "/public//../../admin",
        "/public/./../admin",
        "/public;x/../admin",
        "/public/%2e%2e;x/admin",
        "/public/..",
        "/public/..%20/admin",
        "/public/.../admin",
        "/public#/../admin",
        "/public/%23/../../admin",
        "//public/../admin",
        "/publicx/a",
    ] {
        let answer = raw(env.gw.port, &get(path, "")).await;
        let status = raw_status(&answer);
        // `#` included: pingora's parser cuts the fragment off the target, and the gateway
        // refuses it from the raw request line.
        assert!((400..500).contains(&status), "{path}: {answer:.300}");
    }
    assert!(unexpected(&env).is_empty(), "{:?}", unexpected(&env));
    still_serving(&env).await;
}

#[tokio::test]
async fn request_smuggling_corpus() {
    let env = env_with(None, "public_paths = [\"/public/\"]", "").await;
    for (name, req) in [
        ("CL+TE", "POST /private HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /private HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("TE+CL", "POST /private HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\nGET /private HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("two CLs", "POST /private HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\nGET /private HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("TE obfuscated", "POST /private HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\nContent-Length: 3\r\n\r\nabc"),
        ("chunk size zz", "POST /private HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
        ("chunk size negative", "POST /private HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n"),
        ("chunk size overflow", "POST /private HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
    ] {
        let answer = raw(env.gw.port, req.as_bytes()).await;
        let status = raw_status(&answer);
        assert!(
            status == 0 || status == 302 || (400..500).contains(&status),
            "{name}: {answer:.300}"
        );
        assert!(!answer.contains("HTTP/1.1 200"), "{name}: {answer:.300}");
    }
    assert!(unexpected(&env).is_empty(), "{:?}", unexpected(&env));
    still_serving(&env).await;
}
