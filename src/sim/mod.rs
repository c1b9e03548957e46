//! A faithful in-repo Clever simulator (OAuth + identity API) for tests and `demo`.
//!
//! One hyper server answers both `clever.com` paths (`/oauth/authorize`, `/oauth/tokens`,
//! `/oauth/instant-login`, `/oauth/logout`) and `api.clever.com` paths (`/v3.0/me`, `/v3.0/users/{id}`,
//! `/userinfo`, …), plus a control surface under `/_sim/` (see the `control` module). Behaviour follows
//! `spec/clever.md`; where the simulator has to choose, the choice is documented on the handler.
//!
//! District-app tokens (see the `districts` module): `GET /oauth/tokens?owner_type=district`,
//! `/v3.0/districts/{id}`, `/v3.0/users/{id}/sections` and `/v3.0/sections`, paged; every API
//! answer carries `X-RateLimit-*` headers and a token over its per-minute limit gets 429.

mod api;
mod control;
mod districts;
mod faults;
mod oauth;
mod oidc;
mod router;
pub(crate) mod server;
mod session;
mod state;
mod users;
pub(crate) mod web;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use districts::{demo_districts, SimDistrict, UserView};
pub use faults::{Endpoint, Fault};
pub use oauth::SCOPE;
pub use users::{demo_users, RoleRecord, SimRole, SimUser, DEMO_DISTRICT, DEMO_DISTRICT_2};

use state::{hex_id, Shared};

/// How the simulated Clever application is registered, and who can sign in.
#[derive(Clone)]
pub struct SimConfig {
    /// 20 hex characters.
    pub client_id: String,
    /// 40 hex characters.
    pub client_secret: String,
    /// Registered redirect URIs; the first is the primary one (Clever-initiated logins go there).
    pub redirect_uris: Vec<String>,
    pub users: Vec<SimUser>,
    /// A user id signed in at `/oauth/authorize` without showing the sign-in page. When set it
    /// wins over the browser's simulator session (`clever_sim_session`).
    pub auto_login: Option<String>,
    /// Whether the token response carries `"token_type":"bearer"` (Clever's is not guaranteed).
    pub token_type_in_response: bool,
    /// Districts and their district-app tokens ([`demo_districts`] by default).
    pub districts: Vec<SimDistrict>,
    /// Items per page of a list without `limit` (Clever's default is 100).
    pub page_limit: usize,
    /// API requests per token per minute (Clever's is 1200).
    pub rate_limit: u32,
    /// Latency injected into every answer of a Clever endpoint (authorize, tokens, the API),
    /// as Clever's own servers take 100-300 ms over the Internet; `None`: answer at once.
    pub latency: Option<Latency>,
}

/// An injected delay: uniform between `mean - jitter` and `mean + jitter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    pub mean: Duration,
    pub jitter: Duration,
}

impl Latency {
    /// One delay.
    pub fn sample(self) -> Duration {
        use rand::Rng;
        let low = self.mean.saturating_sub(self.jitter);
        let high = self.mean.saturating_add(self.jitter);
        if high <= low {
            return low;
        }
        rand::rng().random_range(low..=high)
    }
}

impl SimConfig {
    /// Random client id and secret, [`demo_users`], [`demo_districts`] (random tokens), no
    /// auto-login, `token_type` present, Clever's page size and rate limit.
    pub fn new(redirect_uris: Vec<String>) -> Self {
        SimConfig {
            client_id: hex_id(20),
            client_secret: hex_id(40),
            redirect_uris,
            users: demo_users(),
            auto_login: None,
            token_type_in_response: true,
            districts: demo_districts(),
            page_limit: 100,
            rate_limit: 1200,
            latency: None,
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uris", &self.redirect_uris)
            .field("users", &self.users.len())
            .field("auto_login", &self.auto_login)
            .field("token_type_in_response", &self.token_type_in_response)
            .field("districts", &self.districts)
            .field("page_limit", &self.page_limit)
            .field("rate_limit", &self.rate_limit)
            .field("latency", &self.latency)
            .finish()
    }
}

/// A running simulator. Dropping it (or [`SimHandle::shutdown`]) stops the server and closes
/// its connections.
pub struct SimHandle {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    servers: Vec<server::Server>,
}

impl fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The path and query of an Instant Login link for `user` (with the user's district, if any).
pub(crate) fn instant_login_path(client_id: &str, user: &SimUser) -> String {
    let mut params = vec![("client_id", client_id)];
    if let Some(d) = &user.district {
        params.push(("district_id", d));
    }
    params.push(("user", &user.id));
    web::with_query("/oauth/instant-login", &params)
}

impl SimHandle {
    /// Binds `addr` (port 0 is fine) and serves on the current tokio runtime.
    pub async fn start(addr: SocketAddr, cfg: SimConfig) -> std::io::Result<SimHandle> {
        Self::start_with(addr, cfg, None).await
    }

    /// As [`SimHandle::start`], over HTTPS with `tls` (a certificate the gateway must trust:
    /// the storm benchmark makes a test CA and gives the gateway `SSL_CERT_FILE`).
    pub async fn start_tls(
        addr: SocketAddr,
        cfg: SimConfig,
        tls: Arc<tokio_rustls::rustls::ServerConfig>,
    ) -> std::io::Result<SimHandle> {
        Self::start_with(addr, cfg, Some(tls)).await
    }

    async fn start_with(
        addr: SocketAddr,
        cfg: SimConfig,
        tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    ) -> std::io::Result<SimHandle> {
        let shared = Arc::new(Shared::new(cfg, tls.is_some()));
        let mut sim = SimHandle {
            addr,
            shared,
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            servers: Vec::new(),
        };
        sim.addr = sim.add_listener(addr).await?;
        Ok(sim)
    }

    /// One more address serving the same simulator (same TLS), with connections counted on
    /// their own: the storm benchmark gives the gateway this one for its server-to-server calls
    /// (`token_url`, `api_base`), so the connections the gateway opens to Clever are counted
    /// apart from the browsers'.
    pub async fn add_listener(&mut self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let for_server = Arc::clone(&self.shared);
        let listening = server::Listening {
            tls: self.tls.clone(),
            connections: Some(self.shared.listener(bound.port())),
        };
        let server = server::spawn_on(listener, listening, move |req| {
            router::handle(Arc::clone(&for_server), req)
        })?;
        self.servers.push(server);
        Ok(bound)
    }

    /// `http://127.0.0.1:PORT` (`https://` when serving HTTPS; or whatever address was bound).
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.shared.scheme(), self.addr)
    }

    /// Connections accepted on `port` (one of this simulator's listeners), and TLS handshakes
    /// completed on them, since start or `reset`.
    pub fn connections(&self, port: u16) -> (u64, u64) {
        use std::sync::atomic::Ordering::SeqCst;
        self.shared
            .listeners()
            .iter()
            .find(|l| l.port == port)
            .map_or((0, 0), |l| {
                (l.connections.load(SeqCst), l.tls_handshakes.load(SeqCst))
            })
    }

    /// Clever's time per sign-in when latency is injected, by the code Clever issued for it
    /// (microseconds, summed over authorize, token exchange and every API call made with the
    /// sign-in's token): how long each call was held, its injected latency as slept and the
    /// building of its answer.
    pub fn delays(&self) -> std::collections::HashMap<String, u64> {
        self.shared.delays()
    }

    /// The part of [`delays`](Self::delays) the browser itself waited on (authorize): the rest
    /// is Clever's time in the relying party's own calls (token exchange, API).
    pub fn browser_delays(&self) -> std::collections::HashMap<String, u64> {
        self.shared.browser_delays()
    }

    pub fn authorize_url(&self) -> String {
        format!("{}/oauth/authorize", self.base_url())
    }

    pub fn token_url(&self) -> String {
        format!("{}/oauth/tokens", self.base_url())
    }

    /// The API base: `/v3.0/me` etc. are served by the same server.
    pub fn api_base(&self) -> String {
        self.base_url()
    }

    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    pub fn client_secret(&self) -> &str {
        &self.shared.client_secret
    }

    /// The registered redirect URIs (the first is the primary one).
    pub fn redirect_uris(&self) -> &[String] {
        &self.shared.redirect_uris
    }

    /// The users this simulator knows.
    pub fn users(&self) -> &[SimUser] {
        &self.shared.users
    }

    /// Signs this user in at `/oauth/authorize` without a page (`None`: the browser's simulator
    /// session decides, else the page is shown).
    pub fn set_auto_login(&self, user_id: Option<&str>) {
        self.shared.set_auto_login(user_id);
    }

    /// Injects `fault` into `endpoint` until replaced or cleared with `None`.
    pub fn set_fault(&self, endpoint: Endpoint, fault: Option<Fault>) {
        self.shared.set_fault(endpoint, fault);
    }

    /// Requests that reached `endpoint` (counted before any fault is applied).
    pub fn calls(&self, endpoint: Endpoint) -> u64 {
        self.shared.calls(endpoint)
    }

    /// Every request the simulator received except the `/_sim/` control surface (so it also
    /// counts Instant Login links and unknown paths).
    pub fn total_calls(&self) -> u64 {
        self.shared.total_calls()
    }

    /// Clears faults and counters and restores the configured auto-login user (browser
    /// sessions are kept).
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// A URL that, when fetched, logs `user_id` in and 302s to the PRIMARY redirect URI with
    /// `code` and `scope` and no `state` (a Clever-initiated login).
    pub fn instant_login_url(&self, user_id: &str) -> String {
        let path = match self.shared.user(user_id) {
            Some(user) => instant_login_path(&self.shared.client_id, user),
            // Unknown user: the link still points at the simulator, which answers 400.
            None => web::with_query(
                "/oauth/instant-login",
                &[("client_id", &self.shared.client_id), ("user", user_id)],
            ),
        };
        format!("{}{}", self.base_url(), path)
    }

    /// Issues a code for `user_id` bound to this client and `redirect_uri` (not checked against
    /// the registered URIs, so tests can exercise mismatches).
    pub fn issue_code(&self, user_id: &str, redirect_uri: &str) -> String {
        self.shared
            .issue_code(&self.shared.client_id, redirect_uri, user_id)
    }

    /// The districts and whether each authorized the application (tokens redacted in Debug).
    pub fn districts(&self) -> Vec<SimDistrict> {
        self.shared.districts()
    }

    /// The district-app token of `district_id`, if it authorized the application.
    pub fn district_token(&self, district_id: &str) -> Option<String> {
        self.shared
            .with_district(district_id, |d| d.token.clone())
            .flatten()
    }

    /// The district authorizes the application (again): a fresh token replaces any old one,
    /// which stops working. `None` if the simulator has no such district.
    pub fn authorize_district(&self, district_id: &str) -> Option<String> {
        let token = hex_id(40);
        self.shared
            .with_district(district_id, |d| d.token = Some(token.clone()))
            .map(|()| token)
    }

    /// The district disconnects the application: its token stops working (401) and is no
    /// longer listed.
    pub fn revoke_district_token(&self, district_id: &str) {
        self.shared.with_district(district_id, |d| d.token = None);
    }

    /// Makes a district a Secure Sync customer (its token may read sections) or not.
    pub fn set_secure_sync(&self, district_id: &str, on: bool) {
        self.shared
            .with_district(district_id, |d| d.secure_sync = on);
    }

    /// What users' own sign-in tokens read of `/v3.x/users/{id}` in a district.
    pub fn set_sso_view(&self, district_id: &str, view: UserView) {
        self.shared
            .with_district(district_id, |d| d.sso_view = view);
    }

    /// Items per page of list answers without `limit`.
    pub fn set_page_limit(&self, n: usize) {
        self.shared.set_page_limit(n);
    }

    /// API requests per token per minute; past it, 429 until the window resets.
    pub fn set_rate_limit(&self, n: u32) {
        self.shared.set_rate_limit(n);
    }

    /// Moves the simulator's clock forward (codes expire 60 s after issue, tokens after 24 h).
    pub fn advance_clock(&self, by: Duration) {
        self.shared.advance_clock(by);
    }

    /// Stops the server and closes its connections (same as dropping the handle).
    pub fn shutdown(self) {
        drop(self);
    }
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::testutil::*;
    use super::*;

    #[tokio::test]
    async fn sim_config_new_has_clever_shaped_credentials() {
        let cfg = SimConfig::new(vec![REDIRECT.into()]);
        assert_eq!(cfg.client_id.len(), 20);
        assert_eq!(cfg.client_secret.len(), 40);
        assert!(cfg
            .client_id
            .chars()
            .chain(cfg.client_secret.chars())
            .all(|c| c.is_ascii_hexdigit()));
        assert!(cfg.auto_login.is_none());
        assert!(cfg.token_type_in_response);
        assert!(!format!("{cfg:?}").contains(&cfg.client_secret));
        for d in &cfg.districts {
            let token = d.token.as_deref().unwrap();
            assert_eq!(token.len(), 40);
            assert!(!format!("{cfg:?}").contains(token));
        }
    }

    #[tokio::test]
    async fn sim_urls_point_at_bound_port() {
        let sim = start().await;
        assert_ne!(sim.addr.port(), 0);
        let base = format!("http://127.0.0.1:{}", sim.addr.port());
        assert_eq!(sim.base_url(), base);
        assert_eq!(sim.authorize_url(), format!("{base}/oauth/authorize"));
        assert_eq!(sim.token_url(), format!("{base}/oauth/tokens"));
        assert_eq!(sim.api_base(), base);
    }

    #[tokio::test]
    async fn calls_count_each_endpoint_and_total() {
        let sim = start_with(|c| c.auto_login = Some(MULTI.into())).await;
        client()
            .get(authorize_url(&sim, REDIRECT, &[]))
            .send()
            .await
            .unwrap();
        let token = token_for(&sim, MULTI).await;
        api_get(&sim, "/v3.0/me", &token).await;
        api_get(&sim, &format!("/v3.0/users/{MULTI}"), &token).await;
        api_get(&sim, "/userinfo", &token).await;
        api_get(&sim, "/userinfo", &token).await;
        for (e, n) in [
            (Endpoint::Authorize, 1),
            (Endpoint::Tokens, 1),
            (Endpoint::Me, 1),
            (Endpoint::Users, 1),
            (Endpoint::UserInfo, 2),
        ] {
            assert_eq!(sim.calls(e), n, "{e}");
        }
        assert_eq!(sim.total_calls(), 6);
        // Instant Login links and unknown paths count towards the total only.
        client()
            .get(sim.instant_login_url(STUDENT))
            .send()
            .await
            .unwrap();
        client()
            .get(format!("{}/favicon.ico", sim.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(sim.total_calls(), 8);
        assert_eq!(sim.calls(Endpoint::Authorize), 1);
    }

    #[tokio::test]
    async fn shutdown_stops_the_server() {
        let sim = start().await;
        let url = sim.base_url();
        // A kept-alive connection must be closed too.
        let c = client();
        assert!(c.get(&url).send().await.is_ok());
        sim.shutdown();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(c.get(&url).send().await.is_err());
        assert!(client().get(&url).send().await.is_err());
    }

    #[tokio::test]
    async fn index_lists_instant_login_links() {
        let sim = start().await;
        let html = client()
            .get(sim.base_url())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("/oauth/instant-login?client_id="));
        assert!(html.contains("José Ñúñez"));
    }
    #[tokio::test]
    async fn sim_survives_garbage_requests() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sim = start_with(|c| c.auto_login = Some(STUDENT.into())).await;
        let mut long_header = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        long_header.extend(std::iter::repeat_n(b'a', 1 << 20));
        long_header.extend(b"\r\n\r\n");
        let requests: Vec<Vec<u8>> = vec![
            b"GARBAGE\r\n\r\n".to_vec(),
            b"GET /oauth/authorize?%%%%&&==&\x7f HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            b"GET /v3.0/users/%FF HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\r\n\r\n"
                .to_vec(),
            b"POST /oauth/tokens HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
              Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .to_vec(),
            b"POST /oauth/tokens HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n"
                .to_vec(),
            long_header,
        ];
        for raw in requests {
            let mut stream = tokio::net::TcpStream::connect(sim.addr).await.unwrap();
            let _ = stream.write_all(&raw).await;
            let mut buf = Vec::new();
            let _ = tokio::time::timeout(Duration::from_millis(300), stream.read_to_end(&mut buf))
                .await;
        }
        let resp = client()
            .get(authorize_url(&sim, REDIRECT, &[]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
    }

    #[tokio::test]
    async fn injected_latency_is_recorded_per_sign_in() {
        let latency = Latency {
            mean: Duration::from_millis(20),
            jitter: Duration::ZERO,
        };
        let sim = start_with(|c| {
            c.auto_login = Some(TEACHER.into());
            c.latency = Some(latency);
        })
        .await;
        let resp = client()
            .get(authorize_url(&sim, REDIRECT, &[("state", "s")]))
            .send()
            .await
            .unwrap();
        let (_, q) = location(&resp);
        let body: serde_json::Value = exchange(&sim, &q["code"], REDIRECT)
            .await
            .json()
            .await
            .unwrap();
        let token = body["access_token"].as_str().unwrap();
        api_get(&sim, "/v3.0/me", token).await;
        api_get(&sim, &format!("/v3.0/users/{TEACHER}"), token).await;
        // authorize, tokens, /me and /users: four delays, all this sign-in's, each as held
        // (a sleep ends after its sample, and the answer is built after it).
        let delays = sim.delays();
        assert_eq!(delays.len(), 1, "{delays:?}");
        assert!(delays[&q["code"]] > 4 * 20_000, "{delays:?}");
        // The browser waited on authorize; the relying party on the other three.
        let browser = sim.browser_delays()[&q["code"]];
        assert!(browser > 20_000, "{browser}");
        assert!(
            delays[&q["code"]] - browser > 3 * 20_000,
            "{browser} of {delays:?}"
        );
        assert_eq!(latency.sample(), Duration::from_millis(20));
        let jittered = Latency {
            mean: Duration::from_millis(150),
            jitter: Duration::from_millis(50),
        };
        for _ in 0..100 {
            let d = jittered.sample();
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
        }
    }

    #[tokio::test]
    async fn https_counts_connections_and_handshakes() {
        let ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let cert = ca.cert.der().clone();
        let key = tokio_rustls::rustls::pki_types::PrivateKeyDer::try_from(
            ca.signing_key.serialize_der(),
        )
        .unwrap();
        let provider = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider();
        let tls = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider.into())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let cfg = SimConfig::new(vec![REDIRECT.into()]);
        let sim = SimHandle::start_tls("127.0.0.1:0".parse().unwrap(), cfg, Arc::new(tls))
            .await
            .unwrap();
        assert!(sim.base_url().starts_with("https://127.0.0.1:"));
        let client = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_der(&cert).unwrap()])
            .build()
            .unwrap();
        for _ in 0..3 {
            let resp = client.get(sim.base_url()).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.bytes().await.unwrap();
        }
        // One kept-alive connection, one handshake.
        let port = sim.addr.port();
        assert_eq!(sim.connections(port), (1, 1));
        // A plain-HTTP client gets no answer and completes no handshake.
        let plain = reqwest::get(format!("http://{}/", sim.addr)).await;
        assert!(plain.is_err() || !plain.unwrap().status().is_success());
        assert_eq!(sim.connections(port).1, 1);
        // A second listener serves the same simulator and counts on its own.
        let mut sim = sim;
        let api = sim
            .add_listener("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let resp = client
            .get(format!("https://{api}/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(sim.connections(api.port()), (1, 1));
        assert_eq!(sim.connections(port).0, 2);
    }
}
