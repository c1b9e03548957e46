//! The only code that talks to Clever: the authorize URL, the code exchange, the identity
//! calls (`/me`, `/users/{id}`), and the calls made with district-app tokens (the token list,
//! `/districts/{id}`, sections; see [`district`] and [`roster`]), with Clever's answers parsed
//! leniently.

pub mod check_online;
pub(crate) mod district;
mod parse;
pub(crate) mod roster;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION};
use thread_local::ThreadLocal;
use url::Url;

use crate::config::{ApiVersion, CleverConfig};
use crate::identity::Identity;
use crate::process::metrics::Metrics;
use crate::secret::Secret;

pub use parse::{parse_me, parse_token_response, parse_user, role_schools, MeResponse};

use crate::identity::IdentityBuilder;

/// The Clever call an error came from (for logs and metrics; never includes values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Tokens,
    Me,
    Users,
    /// `GET /oauth/tokens?owner_type=district`: the application's district-app tokens.
    DistrictTokens,
    /// `GET /{v}/districts/{id}` with a district-app token.
    Districts,
    /// `GET /{v}/users/{id}/sections` and `/{v}/sections` with a district-app token.
    Sections,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Tokens => "tokens",
            Endpoint::Me => "me",
            Endpoint::Users => "users",
            Endpoint::DistrictTokens => "district_tokens",
            Endpoint::Districts => "districts",
            Endpoint::Sections => "sections",
        }
    }
}

/// One answer from Clever as read: status, headers (for `X-RateLimit-*`) and body (capped).
#[derive(Debug)]
pub(crate) struct Raw {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Why a call to Clever failed. `Display` never contains a token, code or secret.
#[derive(Debug, thiserror::Error)]
pub enum CleverError {
    #[error("Clever did not answer {} in time", .0.as_str())]
    Timeout(Endpoint),
    #[error("could not reach Clever for {ep}: {msg}", ep = .0.as_str(), msg = .1)]
    Connect(Endpoint, String),
    #[error("Clever answered {ep} with HTTP {st}", ep = .0.as_str(), st = .1)]
    Status(Endpoint, u16),
    #[error("Clever is rate limiting {}", .0.as_str())]
    RateLimited(Endpoint),
    #[error("Clever refused the sign-in code (invalid_grant: expired or already used)")]
    InvalidGrant,
    #[error("Clever refused the client credentials (invalid_client): check client_id and the client secret")]
    InvalidClient,
    #[error("Clever rejected the access token at {}", .0.as_str())]
    TokenRejected(Endpoint),
    #[error("Clever's answer from {ep} could not be understood: {msg}", ep = .0.as_str(), msg = .1)]
    BadResponse(Endpoint, String),
    /// `/users/{id}` answered 404 for the signed-in user: the district has not shared the user
    /// with the application (or the user was deleted).
    #[error("Clever does not share the user with this application (users answered 404)")]
    UserNotShared,
}

impl CleverError {
    /// The status the browser gets: 400 for an expired/used code (bad input), 504 for a
    /// timeout, 503 when Clever rate-limits us, 502 for every other Clever failure.
    pub fn status(&self) -> u16 {
        match self {
            CleverError::InvalidGrant => 400,
            CleverError::UserNotShared => 403,
            CleverError::Timeout(_) => 504,
            CleverError::RateLimited(_) => 503,
            _ => 502,
        }
    }

    /// A short machine-readable reason (logs, JSON errors, metrics labels).
    pub fn reason(&self) -> &'static str {
        match self {
            CleverError::Timeout(_) => "clever_timeout",
            CleverError::Connect(..) => "clever_unreachable",
            CleverError::Status(..) => "clever_error",
            CleverError::RateLimited(_) => "clever_rate_limited",
            CleverError::InvalidGrant => "invalid_grant",
            CleverError::InvalidClient => "invalid_client",
            CleverError::TokenRejected(_) => "token_rejected",
            CleverError::BadResponse(..) => "clever_bad_response",
            CleverError::UserNotShared => "user_not_shared",
        }
    }

    /// The Clever call that failed.
    pub fn endpoint(&self) -> Endpoint {
        match self {
            CleverError::InvalidGrant | CleverError::InvalidClient => Endpoint::Tokens,
            CleverError::UserNotShared => Endpoint::Users,
            CleverError::Timeout(ep)
            | CleverError::Connect(ep, _)
            | CleverError::Status(ep, _)
            | CleverError::RateLimited(ep)
            | CleverError::TokenRejected(ep)
            | CleverError::BadResponse(ep, _) => *ep,
        }
    }
}

/// Calls Clever with the configured endpoints and credentials.
#[derive(Debug, Clone)]
pub struct CleverClient {
    /// The connections to Clever, a pool per thread that calls it (see [`CleverClient::http`]).
    http: Arc<ThreadLocal<reqwest::Client>>,
    /// The pool of the thread that built this client: where a thread whose own could not be
    /// built (never seen: the same settings built this one) makes its calls.
    shared: reqwest::Client,
    cfg: CleverConfig,
    secret: Secret,
    metrics: Arc<Metrics>,
    /// The first backoff between retried GETs (`FIRST_BACKOFF`; shorter in unit tests).
    backoff: Duration,
}

/// The connections to Clever: HTTP/1.1 keep-alive, a pool per thread (every sign-in on the
/// thread shares it). A connection idle this long is closed (a quiet hour holds none open; the
/// next sign-in opens one again).
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per Clever host and thread: above the sign-ins a district's 8:00 AM
/// storm keeps in flight at once (a few dozen: `bench/storm.sh`), so a storm reuses its
/// connections instead of closing and opening them, and bounded, so a burst does not leave
/// hundreds open.
pub const POOL_MAX_IDLE_PER_HOST: usize = 128;

/// A pool of connections to Clever with the configured timeouts; no redirects followed.
fn http_client(cfg: &CleverConfig) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("clever-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Cap on a Clever response body we are willing to read.
const MAX_BODY: usize = 256 * 1024;

/// Most tries of one idempotent GET (`/me`, `/users/{id}`) when Clever answers 5xx or cannot
/// be reached. The token POST is never retried: a code is single-use.
const MAX_TRIES: u32 = 5;
/// The first wait between tries; it doubles after each (1 s, 2 s, 4 s, 8 s).
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

impl CleverClient {
    pub fn new(
        cfg: CleverConfig,
        secret: Secret,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let shared = http_client(&cfg)?;
        let http = ThreadLocal::new();
        http.get_or(|| shared.clone());
        Ok(CleverClient {
            http: Arc::new(http),
            shared,
            cfg,
            secret,
            metrics,
            backoff: FIRST_BACKOFF,
        })
    }

    pub fn config(&self) -> &CleverConfig {
        &self.cfg
    }

    /// The calling thread's pool of connections to Clever. A pooled connection is driven by
    /// the runtime that opened it, and each pingora thread is a runtime of its own: with one
    /// pool per thread, a call's request and answer are handled on the thread that waits for
    /// them, rather than handed to another thread and back (two more wake-ups, each one a
    /// wait for a CPU at 8:00 AM; bench/results/storm-profile.md).
    fn http(&self) -> &reqwest::Client {
        self.http
            .get_or(|| http_client(&self.cfg).unwrap_or_else(|_| self.shared.clone()))
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The client secret, as key material for what every replica must derive alike (the
    /// login-cookie key). Never log it.
    pub(crate) fn client_secret(&self) -> &Secret {
        &self.secret
    }

    /// `authorize_url` with `response_type=code`, `client_id`, the exact `redirect_uri`, `state`,
    /// `district_id` when the login names one, and `confirmed=false` when Clever must
    /// re-confirm a student (shared devices).
    pub fn authorize_url(&self, state: &str, login: LoginParams<'_>) -> String {
        let mut url = self.cfg.authorize_url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.cfg.client_id)
                .append_pair("redirect_uri", self.cfg.redirect_uri.as_str())
                .append_pair("state", state);
            if let Some(d) = login.district_id {
                q.append_pair("district_id", d);
            }
            if login.confirm_students {
                q.append_pair("confirmed", "false");
            }
        }
        url.to_string()
    }

    /// Exchanges a code for an SSO access token: HTTP Basic, form body, exact redirect_uri.
    /// Never retried: a code is single-use.
    pub async fn exchange_code(&self, code: &str) -> Result<Secret, CleverError> {
        self.counted(self.exchange_code_once(code).await)
    }

    async fn exchange_code_once(&self, code: &str) -> Result<Secret, CleverError> {
        let ep = Endpoint::Tokens;
        let form = [
            ("code", code),
            ("grant_type", "authorization_code"),
            ("redirect_uri", self.cfg.redirect_uri.as_str()),
        ];
        let req = self
            .http()
            .post(self.cfg.token_url.clone())
            .basic_auth(&self.cfg.client_id, Some(self.secret.expose()))
            .header(ACCEPT, "application/json")
            .form(&form);
        let (status, body) = self.send(ep, req).await?;
        match status {
            200..=299 => parse_token_response(&body).map_err(|e| CleverError::BadResponse(ep, e)),
            400 if error_code(&body).as_deref() == Some("invalid_grant") => {
                Err(CleverError::InvalidGrant)
            }
            401 => Err(CleverError::InvalidClient),
            400 if error_code(&body).as_deref() == Some("invalid_client") => {
                Err(CleverError::InvalidClient)
            }
            429 => Err(CleverError::RateLimited(ep)),
            s => Err(CleverError::Status(ep, s)),
        }
    }

    /// The identity behind a token: `/me`, and for v3.x the user's record from `/users/{id}`
    /// (which may lack roles: the caller decides). A 404 there is [`CleverError::UserNotShared`].
    pub async fn fetch_identity(&self, token: &Secret) -> Result<Identity, CleverError> {
        self.counted(self.fetch_identity_once(token).await)
    }

    /// Counts a failed call in `clever_gateway_clever_errors_total{endpoint,reason}`.
    fn counted<T>(&self, result: Result<T, CleverError>) -> Result<T, CleverError> {
        if let Err(e) = &result {
            self.metrics.clever_error(e.endpoint().as_str(), e.reason());
        }
        result
    }

    async fn fetch_identity_once(&self, token: &Secret) -> Result<Identity, CleverError> {
        let me_url = self.api_url(&["me"]);
        let me_body = self.get_json(Endpoint::Me, me_url, token).await?;
        let me = parse_me(&me_body).map_err(|e| CleverError::BadResponse(Endpoint::Me, e))?;
        match self.cfg.api_kind {
            ApiVersion::V2 => me
                .into_v2_identity()
                .map_err(|e| CleverError::BadResponse(Endpoint::Me, e)),
            ApiVersion::V3 => {
                let url = self.api_url(&["users", &me.id]);
                let body = match self.get_json(Endpoint::Users, url, token).await {
                    Err(CleverError::Status(Endpoint::Users, 404)) => {
                        return Err(CleverError::UserNotShared)
                    }
                    other => other?,
                };
                let user =
                    parse_user(&body).map_err(|e| CleverError::BadResponse(Endpoint::Users, e))?;
                Ok(me.into_v3_identity(user))
            }
        }
    }

    /// `GET /{v}/users/{id}` with a district-app token: the fuller record a Secure Sync
    /// district's token reads. One try within `clever.timeout` (a sign-in waits for it; it is
    /// never retried).
    pub async fn user_record(
        &self,
        user_id: &str,
        token: &Secret,
    ) -> Result<IdentityBuilder, CleverError> {
        let ep = Endpoint::Users;
        let url = self.district_api_url(&["users", user_id]);
        let result = async {
            let body = self.get_json_once(ep, url, token, self.cfg.timeout).await?;
            parse_user(&body).map_err(|e| CleverError::BadResponse(ep, e))
        }
        .await;
        self.counted(result)
    }

    fn api_url(&self, segments: &[&str]) -> Url {
        api_url(&self.cfg.api_base, &self.cfg.api_version, segments)
    }

    /// An API URL for a call made with a district-app token: the configured version when it is
    /// v3.x, else `v3.0` (district-app tokens are a v3 feature).
    pub(crate) fn district_api_url(&self, segments: &[&str]) -> Url {
        let version = match self.cfg.api_kind {
            ApiVersion::V3 => self.cfg.api_version.as_str(),
            ApiVersion::V2 => "v3.0",
        };
        api_url(&self.cfg.api_base, version, segments)
    }

    /// The application's district-app tokens: `GET {token_url}?owner_type=district` with the
    /// client credentials (HTTP Basic). Also the way `check --online` learns whether Clever
    /// accepts the client id and secret.
    pub async fn list_district_tokens(&self) -> Result<Vec<district::ListedToken>, CleverError> {
        let ep = Endpoint::DistrictTokens;
        let mut url = self.cfg.token_url.clone();
        url.query_pairs_mut().append_pair("owner_type", "district");
        let req = self
            .http()
            .get(url)
            .basic_auth(&self.cfg.client_id, Some(self.secret.expose()))
            .header(ACCEPT, "application/json");
        let result = async {
            let raw = self.send_raw(ep, req).await?;
            match raw.status {
                200..=299 => district::parse_token_list(&raw.body)
                    .map_err(|e| CleverError::BadResponse(ep, e)),
                401 => Err(CleverError::InvalidClient),
                400 if error_code(&raw.body).as_deref() == Some("invalid_client") => {
                    Err(CleverError::InvalidClient)
                }
                429 => Err(CleverError::RateLimited(ep)),
                s => Err(CleverError::Status(ep, s)),
            }
        }
        .await;
        self.counted(result)
    }

    /// `GET /{v}/districts/{id}` with a district-app token: which district the token reads.
    /// 401: the token is revoked or wrong; 404: the district has not authorized the
    /// application (or the token is another district's).
    pub async fn district(
        &self,
        district_id: &str,
        token: &Secret,
    ) -> Result<district::DistrictInfo, CleverError> {
        let ep = Endpoint::Districts;
        let url = self.district_api_url(&["districts", district_id]);
        let result = async {
            let body = self.get_json(ep, url, token).await?;
            district::parse_district(&body).map_err(|e| CleverError::BadResponse(ep, e))
        }
        .await;
        self.counted(result)
    }

    /// Whether a district-app token may read rosters (Secure Sync): `GET /{v}/sections?limit=1`
    /// answers 2xx; 401, 403 or 404 mean no access.
    pub async fn secure_sync_access(&self, token: &Secret) -> Result<bool, CleverError> {
        let ep = Endpoint::Sections;
        let mut url = self.district_api_url(&["sections"]);
        url.query_pairs_mut().append_pair("limit", "1");
        let result = match self.get_json(ep, url, token).await {
            Ok(_) => Ok(true),
            Err(CleverError::TokenRejected(_)) => Ok(false),
            Err(CleverError::Status(_, 403 | 404)) => Ok(false),
            Err(e) => Err(e),
        };
        self.counted(result)
    }

    /// One idempotent GET, retried with doubling backoff when Clever answers 5xx or cannot be
    /// reached, at most `MAX_TRIES` times and only while the whole call (every try and every
    /// wait) fits in `clever.timeout`: a retry never makes a login wait longer than one call
    /// may. Timeouts, 429 and 4xx are not retried.
    async fn get_json(
        &self,
        ep: Endpoint,
        url: Url,
        token: &Secret,
    ) -> Result<Vec<u8>, CleverError> {
        let started = Instant::now();
        let budget = self.cfg.timeout;
        let mut backoff = self.backoff;
        let mut tries = 1;
        loop {
            let left = budget.saturating_sub(started.elapsed());
            let result = self.get_json_once(ep, url.clone(), token, left).await;
            let retryable = matches!(
                &result,
                Err(CleverError::Status(_, s)) if *s >= 500
            ) || matches!(&result, Err(CleverError::Connect(..)));
            if !retryable || tries >= MAX_TRIES {
                return result;
            }
            // Retry only if the wait leaves time for a try.
            if started.elapsed() + backoff >= budget {
                return result;
            }
            tracing::info!(
                endpoint = ep.as_str(),
                tries,
                backoff_ms = backoff.as_millis() as u64,
                "retrying clever call"
            );
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            tries += 1;
        }
    }

    async fn get_json_once(
        &self,
        ep: Endpoint,
        url: Url,
        token: &Secret,
        left: Duration,
    ) -> Result<Vec<u8>, CleverError> {
        let req = self.bearer_get(ep, url, token, left)?;
        let (status, body) = self.send(ep, req).await?;
        match status {
            200..=299 => Ok(body),
            401 => Err(CleverError::TokenRejected(ep)),
            429 => Err(CleverError::RateLimited(ep)),
            s => Err(CleverError::Status(ep, s)),
        }
    }

    /// A GET with a bearer token and at most `left` to answer, as read (status and headers
    /// included), for callers that look at more than the body (rate limits, paging).
    pub(crate) async fn get_raw(
        &self,
        ep: Endpoint,
        url: Url,
        token: &Secret,
        left: Duration,
    ) -> Result<Raw, CleverError> {
        let req = self.bearer_get(ep, url, token, left)?;
        self.send_raw(ep, req).await
    }

    /// A JSON GET with a bearer token, bounded by `left` (none left: a timeout already).
    fn bearer_get(
        &self,
        ep: Endpoint,
        url: Url,
        token: &Secret,
        left: Duration,
    ) -> Result<reqwest::RequestBuilder, CleverError> {
        if left.is_zero() {
            return Err(CleverError::Timeout(ep));
        }
        Ok(self
            .http()
            .get(url)
            .timeout(left)
            .header(AUTHORIZATION, format!("Bearer {}", token.expose()))
            .header(ACCEPT, "application/json"))
    }

    async fn send(
        &self,
        ep: Endpoint,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), CleverError> {
        self.send_raw(ep, req).await.map(|r| (r.status, r.body))
    }

    async fn send_raw(
        &self,
        ep: Endpoint,
        req: reqwest::RequestBuilder,
    ) -> Result<Raw, CleverError> {
        let started = Instant::now();
        let result = async {
            let mut resp = req.send().await.map_err(|e| map_reqwest(ep, e))?;
            let status = resp.status().as_u16();
            let headers = std::mem::take(resp.headers_mut());
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| map_reqwest(ep, e))? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(CleverError::BadResponse(ep, "response too large".into()));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Raw {
                status,
                headers,
                body,
            })
        }
        .await;
        let elapsed: Duration = started.elapsed();
        self.metrics.clever_call(ep.as_str(), elapsed);
        match &result {
            Ok(Raw { status, .. }) => tracing::debug!(
                endpoint = ep.as_str(),
                status,
                duration_ms = crate::process::logfmt::millis(elapsed),
                "clever call"
            ),
            Err(e) => tracing::warn!(
                endpoint = ep.as_str(),
                duration_ms = crate::process::logfmt::millis(elapsed),
                error = %e,
                "clever call failed"
            ),
        }
        result
    }
}

/// What a login asks Clever for besides the basics: the upstream's `login_district_id` and
/// `confirm_students`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginParams<'a> {
    /// Sent as `district_id` (skips Clever's school picker).
    pub district_id: Option<&'a str>,
    /// Sends `confirmed=false`: Clever re-confirms a student's identity (shared devices).
    pub confirm_students: bool,
}

impl<'a> LoginParams<'a> {
    /// The parameters of a login started for `upstream`.
    pub fn for_upstream(upstream: &'a crate::config::Upstream) -> Self {
        LoginParams {
            district_id: upstream.login_district_id.as_deref(),
            confirm_students: upstream.confirm_students,
        }
    }
}

/// `{api_base}/{version}/{segments…}`, each segment percent-encoded.
fn api_url(base: &Url, version: &str, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut p) = url.path_segments_mut() {
        p.pop_if_empty().push(version);
        for s in segments {
            p.push(s);
        }
    }
    url
}

fn map_reqwest(ep: Endpoint, e: reqwest::Error) -> CleverError {
    if e.is_timeout() {
        CleverError::Timeout(ep)
    } else {
        // reqwest's Display can include the URL, but never our headers or body.
        let mut msg = e.without_url().to_string();
        msg.truncate(200);
        CleverError::Connect(ep, msg)
    }
}

/// The `error` field of an OAuth error body, if it is JSON.
fn error_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get("error")?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::Endpoint as CleverEp;
    use super::*;
    use crate::sim::testutil::{start, token_for, REDIRECT, TEACHER};
    use crate::sim::{Endpoint as SimEp, Fault, SimHandle};

    /// A client of `sim` with `timeout` as the budget and `backoff` as the first wait.
    fn client_for(sim: &SimHandle, timeout: &str, backoff: Duration) -> CleverClient {
        let text = format!(
            "[clever]\nclient_id = \"{}\"\nclient_secret_env = \"X\"\nredirect_uri = \"{REDIRECT}\"\nauthorize_url = \"{}\"\ntoken_url = \"{}\"\napi_base = \"{}\"\ntimeout = \"{timeout}\"\n[session]\nttl = \"1h\"\n[[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9\"\n",
            sim.client_id(),
            sim.authorize_url(),
            sim.token_url(),
            sim.api_base()
        );
        let cfg = crate::config::parse_str(&text, "t.toml").unwrap();
        let mut c = CleverClient::new(
            cfg.clever.clone(),
            Secret::new(sim.client_secret()),
            Arc::new(Metrics::new().unwrap()),
        )
        .unwrap();
        c.backoff = backoff;
        c
    }

    /// Each pingora thread is a tokio runtime of its own. A call on one thread must not wait
    /// for another to be scheduled: a connection pooled by a thread whose runtime is not
    /// running (busy with its own requests, here not driven at all) is never handed to another
    /// thread's call.
    #[test]
    fn a_call_never_waits_for_another_threads_runtime() {
        let sim_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let sim = sim_rt.block_on(start());
        let token = Secret::new(sim_rt.block_on(token_for(&sim, TEACHER)));
        let c = client_for(&sim, "3s", Duration::from_millis(10));
        let current = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        // Thread B signs someone in and leaves its connection idle; its runtime is kept but no
        // longer driven (as a thread busy with other work).
        let b = std::thread::scope(|s| {
            s.spawn(|| {
                let rt = current();
                let id = rt.block_on(c.fetch_identity(&token));
                (rt, id.map(|i| i.user_id().to_string()))
            })
            .join()
            .unwrap()
        });
        assert_eq!(b.1.as_deref().ok(), Some(TEACHER));
        // Thread A's call does not depend on B's runtime.
        let a = current().block_on(c.fetch_identity(&token));
        assert_eq!(
            a.as_ref().map(|i| i.user_id()).map_err(|e| e.to_string()),
            Ok(TEACHER)
        );
        drop(b);
    }

    #[tokio::test]
    async fn a_5xx_me_is_retried_until_it_recovers() {
        let sim = Arc::new(start().await);
        let token = Secret::new(token_for(&sim, TEACHER).await);
        let c = client_for(&sim, "5s", Duration::from_millis(100));
        sim.set_fault(SimEp::Me, Some(Fault::Status(503)));
        let before = sim.calls(SimEp::Me);
        let sim2 = sim.clone();
        let heal = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            sim2.set_fault(SimEp::Me, None);
        });
        let id = c
            .fetch_identity(&token)
            .await
            .expect("identity after retries");
        heal.await.unwrap();
        assert_eq!(id.user_id(), TEACHER);
        // Tries at ~0, 100 and 300 ms: the third one succeeds.
        assert_eq!(sim.calls(SimEp::Me) - before, 3);
    }

    #[tokio::test]
    async fn retries_stop_at_five_tries() {
        let sim = start().await;
        let token = Secret::new(token_for(&sim, TEACHER).await);
        let c = client_for(&sim, "10s", Duration::from_millis(10));
        for code in [500, 502, 503] {
            sim.set_fault(SimEp::Users, Some(Fault::Status(code)));
            let before = sim.calls(SimEp::Users);
            let e = c.fetch_identity(&token).await.unwrap_err();
            assert!(matches!(e, CleverError::Status(CleverEp::Users, s) if s == code));
            assert_eq!(e.status(), 502);
            assert_eq!(sim.calls(SimEp::Users) - before, u64::from(MAX_TRIES));
        }
    }

    #[tokio::test]
    async fn retries_never_wait_past_the_budget() {
        let sim = start().await;
        let token = Secret::new(token_for(&sim, TEACHER).await);
        // Budget 1.5 s, backoff 1 s: tries at 0 and 1 s; the next wait (2 s) would pass it.
        let c = client_for(&sim, "1500ms", Duration::from_secs(1));
        sim.set_fault(SimEp::Me, Some(Fault::Status(500)));
        let before = sim.calls(SimEp::Me);
        let t = Instant::now();
        let e = c.fetch_identity(&token).await.unwrap_err();
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(e.status(), 502);
        assert_eq!(sim.calls(SimEp::Me) - before, 2);
    }

    #[tokio::test]
    async fn the_token_post_429_and_401_are_never_retried() {
        let sim = start().await;
        let c = client_for(&sim, "5s", Duration::from_millis(10));
        sim.set_fault(SimEp::Tokens, Some(Fault::Status(503)));
        let code = sim.issue_code(TEACHER, REDIRECT);
        let e = c.exchange_code(&code).await.unwrap_err();
        assert_eq!(e.status(), 502);
        assert_eq!(sim.calls(SimEp::Tokens), 1);
        sim.set_fault(SimEp::Tokens, None);

        let token = Secret::new(token_for(&sim, TEACHER).await);
        sim.set_fault(SimEp::Me, Some(Fault::RateLimited));
        let before = sim.calls(SimEp::Me);
        let e = c.fetch_identity(&token).await.unwrap_err();
        assert_eq!(e.status(), 503);
        assert_eq!(sim.calls(SimEp::Me) - before, 1);

        sim.set_fault(SimEp::Me, None);
        let before = sim.calls(SimEp::Me);
        let e = c
            .fetch_identity(&Secret::new("not-a-token"))
            .await
            .unwrap_err();
        assert!(matches!(e, CleverError::TokenRejected(_)));
        assert_eq!(e.status(), 502);
        assert_eq!(sim.calls(SimEp::Me) - before, 1);
    }

    #[tokio::test]
    async fn a_slow_me_is_a_timeout_and_is_not_retried() {
        let sim = start().await;
        let token = Secret::new(token_for(&sim, TEACHER).await);
        let c = client_for(&sim, "300ms", Duration::from_millis(10));
        sim.set_fault(SimEp::Me, Some(Fault::Delay(Duration::from_secs(2))));
        let before = sim.calls(SimEp::Me);
        let e = c.fetch_identity(&token).await.unwrap_err();
        assert!(matches!(e, CleverError::Timeout(_)));
        assert_eq!(e.status(), 504);
        assert_eq!(sim.calls(SimEp::Me) - before, 1);
    }
}
