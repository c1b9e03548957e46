//! TLS end to end through the real gateway binary: HTTPS and HTTP/2 listeners with a certificate
//! chain made at test time, Secure cookies, the plain-HTTP redirect, HTTPS upstreams with and
//! without verification, and the start refused for unusable TLS files.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio_rustls::rustls;

use common::*;

/// A root CA, an intermediate CA, and a server certificate for 127.0.0.1 and localhost issued
/// by the intermediate, written as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    root_pem: String,
    /// The server certificate followed by the intermediate: what `tls_cert` holds.
    chain: PathBuf,
    key: PathBuf,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let root =
            CertifiedIssuer::self_signed(ca_params("test root"), KeyPair::generate().unwrap())
                .unwrap();
        let inter = CertifiedIssuer::signed_by(
            ca_params("test intermediate"),
            KeyPair::generate().unwrap(),
            &root,
        )
        .unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &inter)
            .unwrap();
        let chain = dir.path().join("chain.pem");
        std::fs::write(&chain, format!("{}{}", leaf.pem(), inter.pem())).unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
        Pki {
            root_pem: root.pem(),
            dir,
            chain,
            key,
        }
    }

    /// A file in the PKI's directory.
    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

/// A browser-like HTTPS client that trusts only the test root, keeps cookies, does not follow
/// redirects, asks for HTML, and offers HTTP/2 by ALPN (HTTP/1.1 only with `h1_only`).
fn https_browser(pki: &Pki, h1_only: bool) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::ACCEPT,
        "text/html,application/xhtml+xml".parse().unwrap(),
    );
    let root = reqwest::Certificate::from_pem(pki.root_pem.as_bytes()).unwrap();
    let mut b = reqwest::Client::builder()
        .tls_certs_only([root])
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(h);
    if h1_only {
        b = b.http1_only();
    }
    b.build().unwrap()
}

/// Simulator + recording upstream + gateway with a plain listener (`gw.port`) and a TLS
/// listener on `tls_port`, whose callback is the HTTPS one. `server_extra` is added to
/// `[server]`.
async fn tls_env(pki: &Pki, user: Option<&str>, server_extra: &str) -> (Env, u16) {
    let port = free_port();
    let tls_port = free_port();
    let redirect_uri = format!("https://127.0.0.1:{tls_port}/oauth/clever/callback");
    let sim = clever_gateway::sim::SimHandle::start(
        "127.0.0.1:0".parse().unwrap(),
        clever_gateway::sim::SimConfig::new(vec![redirect_uri.clone()]),
    )
    .await
    .unwrap();
    sim.set_auto_login(user);
    let app = Upstream::start().await;
    let cfg = format!(
        r#"[server]
listen = ["127.0.0.1:{port}"]
tls_listen = ["127.0.0.1:{tls_port}"]
tls_cert = "{cert}"
tls_key = "{key}"
threads = 2
{server_extra}

[clever]
client_id = "{cid}"
client_secret_env = "{SECRET_ENV}"
redirect_uri = "{redirect_uri}"
authorize_url = "{base}/oauth/authorize"
token_url = "{base}/oauth/tokens"
api_base = "{base}"
timeout = "2s"

[[upstream]]
name = "app"
url = "http://{app}"
"#,
        cert = pki.chain.display(),
        key = pki.key.display(),
        cid = sim.client_id(),
        base = sim.base_url(),
        app = app.addr,
    );
    let gw = start_gateway(port, &cfg, sim.client_secret()).await;
    wait_https(pki, tls_port).await;
    (Env { sim, app, gw }, tls_port)
}

/// Waits until the TLS listener answers.
async fn wait_https(pki: &Pki, tls_port: u16) {
    let c = https_browser(pki, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    let url = format!("https://127.0.0.1:{tls_port}/_gateway/healthz");
    loop {
        if c.get(&url).send().await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "TLS listener did not answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn set_cookie_line(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no Set-Cookie for {name}"))
        .to_string()
}

#[tokio::test]
async fn tls_login_over_https_and_http2_sets_secure_cookies_and_forwards_identity() {
    let pki = Pki::new();
    let teacher = user_with_roles(&["teacher"]);
    let (env, tls_port) = tls_env(&pki, Some(&teacher), "").await;
    let base = format!("https://127.0.0.1:{tls_port}");
    let c = https_browser(&pki, false);

    // The client trusts only the root: the handshake works because the chain is served.
    let start = c.get(format!("{base}/grades?term=2")).send().await.unwrap();
    assert_eq!(start.version(), reqwest::Version::HTTP_2, "h2 by ALPN");
    assert_eq!(start.status(), 302);
    let (name, _, login) = login_cookie(&start).expect("login cookie");
    assert!(
        name.starts_with("__Host-clever_gateway_login_"),
        "Secure, no Domain: a __Host- cookie no other host can plant: {name}"
    );
    assert!(login.contains("; Secure"), "{login}");
    let at_clever = c.get(location(&start)).send().await.unwrap();
    let callback = location(&at_clever);
    assert!(
        callback.starts_with(&format!("{base}/oauth/clever/callback?")),
        "{callback}"
    );
    let done = c.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 302);
    let session = set_cookie_line(&done, "clever_gateway");
    for attr in ["; Secure", "; HttpOnly", "; SameSite=Lax"] {
        assert!(session.contains(attr), "{attr} in {session}");
    }
    assert_eq!(done.headers()["location"], "/grades?term=2");

    // Signed in, over HTTP/2: the app gets the identity and the forwarding headers.
    let r = c.get(format!("{base}/grades?term=2")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "upstream ok");
    let seen = env.app.last();
    assert_eq!(seen.uri, "/grades?term=2");
    assert_eq!(seen.header("x-clever-user-id").unwrap(), teacher);
    assert_eq!(seen.header("x-clever-user-type").unwrap(), "teacher");
    assert_eq!(seen.header("x-forwarded-proto").unwrap(), "https");
    let authority = format!("127.0.0.1:{tls_port}");
    assert_eq!(
        seen.header("host").unwrap(),
        authority,
        ":authority as Host"
    );
    assert_eq!(seen.header("x-forwarded-host").unwrap(), authority);
    assert!(
        seen.header("cookie").is_none(),
        "gateway cookies stay at the gateway"
    );

    // HTTP/1.1 over TLS with the same cookie sees the same headers.
    let h1 = https_browser(&pki, true);
    let cookie = format!(
        "clever_gateway={}",
        session["clever_gateway=".len()..]
            .split(';')
            .next()
            .unwrap()
    );
    let r = h1
        .get(format!("{base}/other"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), 200);
    let seen = env.app.last();
    assert_eq!(seen.header("x-clever-user-id").unwrap(), teacher);
    assert_eq!(seen.header("x-forwarded-host").unwrap(), authority);
    assert_eq!(seen.header("x-forwarded-proto").unwrap(), "https");
}

#[tokio::test]
async fn tls_http2_hostile_and_anonymous_requests_get_gateway_answers() {
    let pki = Pki::new();
    let (env, tls_port) = tls_env(&pki, None, "").await;
    let base = format!("https://127.0.0.1:{tls_port}");
    let api = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.root_pem.as_bytes()).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = api
        .get(format!("{base}/api/grades"))
        .header("accept", "application/json")
        .header("x-clever-user-id", "spoofed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 401);
    let r = api
        .get(format!("{base}/a/%252e%252e/b"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 400);
    let r = api
        .get(format!("{base}/_gateway/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(env.app.count(), 0, "nothing reached the app");
}

#[tokio::test]
async fn tls_redirect_to_https_answers_308_except_health() {
    let pki = Pki::new();
    let (env, tls_port) = tls_env(&pki, None, "redirect_to_https = true").await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = plain
        .get(env.gw.url("/grades?term=2&x=%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(
        location(&r),
        format!("https://127.0.0.1:{tls_port}/grades?term=2&x=%2F")
    );
    // The host the browser used, without its port; the method is kept by 308.
    let r = plain
        .post(env.gw.url("/form"))
        .header("host", "Apps.Example-District.org:8080")
        .body("a=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(
        location(&r),
        format!("https://apps.example-district.org:{tls_port}/form")
    );
    // Gateway pages too, but not the health endpoints.
    let r = plain.get(env.gw.url("/_gateway/me")).send().await.unwrap();
    assert_eq!(r.status(), 308);
    for p in ["/_gateway/healthz", "/_gateway/readyz"] {
        let r = plain.get(env.gw.url(p)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{p}");
    }
    // A Host that is not a host is not copied into a Location.
    let answer = raw(
        env.gw.port,
        b"GET / HTTP/1.1\r\nHost: evil.example/x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&answer), 400, "{answer}");
    // On the TLS listener nothing is redirected: the login starts.
    let r = https_browser(&pki, false)
        .get(format!("https://127.0.0.1:{tls_port}/grades"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(location(&r).starts_with(&env.sim.authorize_url()));
    assert_eq!(env.app.count(), 0);
}

/// An HTTPS upstream with `cert_pem`/`key_pem` that records requests like `common::Upstream`.
async fn tls_upstream(cert_pem: &str, key_pem: &str) -> Upstream {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let rec = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, rec) = (acceptor.clone(), rec.clone());
            tokio::spawn(async move {
                // A refused handshake is the expected end of some tests.
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                serve_recorded(tls, rec, b"tls upstream ok").await;
            });
        }
    });
    Upstream { addr, seen }
}

/// A self-signed certificate and key for `names`.
fn self_signed(names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let c = rcgen::generate_simple_self_signed(names).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

/// A plain-HTTP gateway whose one upstream is the HTTPS `upstream`, public (no login needed),
/// with `extra` lines in its table.
async fn gateway_to_https(upstream: &Upstream, extra: &str) -> Gateway {
    let port = free_port();
    let sim = sim_for(port, None).await;
    let cfg = format!(
        "{}\n[[upstream]]\nname = \"legacy\"\nurl = \"https://{}\"\npublic_paths = [\"/\"]\n{extra}\n",
        base_config(port, &sim, ""),
        upstream.addr
    );
    let gw = start_gateway(port, &cfg, sim.client_secret()).await;
    // The simulator is not needed past the start: public paths never log in.
    drop(sim);
    gw
}

async fn get(gw: &Gateway, path: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(gw.url(path))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn tls_upstream_self_signed_is_refused_by_default_with_502_page() {
    let (cert, key) = self_signed(&["127.0.0.1"]);
    let app = tls_upstream(&cert, &key).await;
    let gw = gateway_to_https(&app, "").await;
    let (status, body) = get(&gw, "/x").await;
    assert_eq!(status, 502);
    assert!(body.contains("The application is not responding"), "{body}");
    assert!(!body.contains("Pingora"));
    assert_eq!(
        app.count(),
        0,
        "no request sent over an unverified connection"
    );
    assert!(!gw.logs().contains("tls_verify = false"));
}

#[tokio::test]
async fn tls_upstream_verify_false_connects_and_warns_naming_upstream() {
    let (cert, key) = self_signed(&["127.0.0.1"]);
    let app = tls_upstream(&cert, &key).await;
    let gw = gateway_to_https(&app, "tls_verify = false").await;
    let (status, body) = get(&gw, "/x?y=1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "tls upstream ok");
    assert_eq!(app.last().uri, "/x?y=1");
    let logs = gw.logs();
    let warn = logs
        .lines()
        .find(|l| l.contains("tls_verify = false"))
        .unwrap_or_else(|| panic!("no warning in:\n{logs}"));
    assert!(warn.contains("WARN") && warn.contains("legacy"), "{warn}");
}

#[tokio::test]
async fn tls_upstream_tls_ca_verifies_self_signed_certificate_and_host() {
    let (cert, key) = self_signed(&["127.0.0.1"]);
    let app = tls_upstream(&cert, &key).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("app.pem");
    std::fs::write(&ca, &cert).unwrap();
    let gw = gateway_to_https(&app, &format!("tls_ca = \"{}\"", ca.display())).await;
    let (status, body) = get(&gw, "/ok").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.count(), 1);

    // Trusted, but issued for another name: the host check still refuses it.
    let (cert, key) = self_signed(&["other.example"]);
    let wrong = tls_upstream(&cert, &key).await;
    let ca = dir.path().join("wrong.pem");
    std::fs::write(&ca, &cert).unwrap();
    let gw = gateway_to_https(&wrong, &format!("tls_ca = \"{}\"", ca.display())).await;
    let (status, _) = get(&gw, "/ok").await;
    assert_eq!(status, 502);
    assert_eq!(wrong.count(), 0);
}

/// Runs `clever-gateway run` on `config` and returns its exit code and stderr; it must exit
/// within 20 s.
fn run_to_exit(config: &str) -> (Option<i32>, String) {
    run_to_exit_with_env(config, &[])
}

/// `run_to_exit` with environment variables set (`Some`) or removed (`None`).
fn run_to_exit_with_env(config: &str, env: &[(&str, Option<&str>)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gateway.toml");
    std::fs::write(&cfg, config).unwrap();
    let err = dir.path().join("stderr");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clever-gateway"));
    cmd.args(["run", "--config"])
        .arg(&cfg)
        .env(SECRET_ENV, "s3cret");
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "gateway kept running:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.code(), std::fs::read_to_string(&err).unwrap())
}

fn tls_config(cert: &Path, key: &Path, upstream_extra: &str) -> String {
    format!(
        r#"[server]
listen = []
tls_listen = ["127.0.0.1:{port}"]
tls_cert = "{cert}"
tls_key = "{key}"

[clever]
client_id = "id"
client_secret_env = "{SECRET_ENV}"
redirect_uri = "https://127.0.0.1/oauth/clever/callback"

[[upstream]]
name = "app"
url = "https://127.0.0.1:9"
{upstream_extra}
"#,
        port = free_port(),
        cert = cert.display(),
        key = key.display(),
    )
}

#[test]
fn tls_unusable_files_stop_the_start_with_exit_2_naming_them() {
    let pki = Pki::new();
    let missing = pki.dir.path().join("missing-cert.pem");
    let garbage = pki.write("garbage.pem", "not a certificate\n");
    let (other_cert, other_key) = self_signed(&["127.0.0.1"]);
    let other_key = pki.write("other-key.pem", &other_key);
    let other_cert = pki.write("other-cert.pem", &other_cert);
    let key_secret = std::fs::read_to_string(&pki.key).unwrap();
    let cases: Vec<(String, &str, PathBuf)> = vec![
        (
            tls_config(&missing, &pki.key, ""),
            "server.tls_cert",
            missing.clone(),
        ),
        (
            tls_config(&garbage, &pki.key, ""),
            "server.tls_cert",
            garbage.clone(),
        ),
        (
            tls_config(&pki.chain, &garbage, ""),
            "server.tls_key",
            garbage.clone(),
        ),
        (
            tls_config(&pki.chain, &other_key, ""),
            "server.tls_key",
            other_key.clone(),
        ),
        (
            // A key file given as the certificate: no certificate in it.
            tls_config(&pki.key, &pki.key, ""),
            "server.tls_cert",
            pki.key.clone(),
        ),
        (
            tls_config(
                &pki.chain,
                &pki.key,
                &format!("tls_ca = \"{}\"", missing.display()),
            ),
            "upstream \"app\" tls_ca",
            missing.clone(),
        ),
        (
            tls_config(
                &other_cert,
                &other_key,
                &format!("tls_ca = \"{}\"", garbage.display()),
            ),
            "upstream \"app\" tls_ca",
            garbage.clone(),
        ),
    ];
    for (config, key, file) in cases {
        let (code, stderr) = run_to_exit(&config);
        assert_eq!(code, Some(2), "{key} {}: {stderr}", file.display());
        let line = format!("clever-gateway: {key} {}: ", file.display());
        assert!(stderr.contains(&line), "expected {line:?} in:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        for secret_line in key_secret.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!stderr.contains(secret_line), "key material in:\n{stderr}");
        }
    }
}

#[test]
fn tls_unreadable_system_roots_stop_the_start_with_exit_2_not_a_panic() {
    // pingora's connector loads the system roots when the proxy is built and panics if that
    // fails; the gateway loads them first and stops with a message instead.
    let pki = Pki::new();
    let config = tls_config(&pki.chain, &pki.key, "tls_verify = false");
    let missing = pki.dir.path().join("no-bundle.pem");
    let (code, stderr) = run_to_exit_with_env(
        &config,
        &[
            ("SSL_CERT_FILE", Some(missing.to_str().unwrap())),
            ("SSL_CERT_DIR", None),
        ],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("clever-gateway: cannot load the system's CA certificates"),
        "{stderr}"
    );
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn tls_cookie_secure_false_with_public_tls_listener_is_refused_by_check() {
    let pki = Pki::new();
    let config = format!(
        "{}\n[session]\ncookie_secure = false\n",
        tls_config(&pki.chain, &pki.key, "").replace("127.0.0.1:", "0.0.0.0:")
    );
    let path = pki.write("gateway.toml", &config);
    let out = Command::new(env!("CARGO_BIN_EXE_clever-gateway"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("session.cookie_secure = false with the TLS listener 0.0.0.0:"),
        "{stderr}"
    );
}
