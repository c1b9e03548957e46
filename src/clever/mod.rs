//! The only code that talks to Clever: the authorize URL, the code exchange, and the identity
//! calls (`/me`, `/users/{id}`), with Clever's answers parsed leniently.

mod parse;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION};
use url::Url;

use crate::config::{ApiVersion, CleverConfig};
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::secret::Secret;

pub use parse::{parse_me, parse_token_response, parse_user, MeResponse};

/// The Clever call an error came from (for logs and metrics; never includes values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Tokens,
    Me,
    Users,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Tokens => "tokens",
            Endpoint::Me => "me",
            Endpoint::Users => "users",
        }
    }
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
}

impl CleverError {
    /// The status the browser gets: 400 for an expired/used code (bad input), 504 for a
    /// timeout, 503 when Clever rate-limits us, 502 for every other Clever failure.
    pub fn status(&self) -> u16 {
        match self {
            CleverError::InvalidGrant => 400,
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
        }
    }

    /// The Clever call that failed.
    pub fn endpoint(&self) -> Endpoint {
        match self {
            CleverError::InvalidGrant | CleverError::InvalidClient => Endpoint::Tokens,
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
    http: reqwest::Client,
    cfg: CleverConfig,
    secret: Secret,
    metrics: Arc<Metrics>,
}

/// Cap on a Clever response body we are willing to read.
const MAX_BODY: usize = 256 * 1024;

impl CleverClient {
    pub fn new(
        cfg: CleverConfig,
        secret: Secret,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("clever-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(CleverClient {
            http,
            cfg,
            secret,
            metrics,
        })
    }

    pub fn config(&self) -> &CleverConfig {
        &self.cfg
    }

    /// `authorize_url` with `response_type=code`, `client_id`, the exact `redirect_uri`, `state`,
    /// and `district_id` when given.
    pub fn authorize_url(&self, state: &str, district_id: Option<&str>) -> String {
        let mut url = self.cfg.authorize_url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.cfg.client_id)
                .append_pair("redirect_uri", self.cfg.redirect_uri.as_str())
                .append_pair("state", state);
            if let Some(d) = district_id {
                q.append_pair("district_id", d);
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
            .http
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

    /// The identity behind a token: `/me`, and for v3.x `/users/{id}` for roles, name, email.
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
                let body = self.get_json(Endpoint::Users, url, token).await?;
                let user =
                    parse_user(&body).map_err(|e| CleverError::BadResponse(Endpoint::Users, e))?;
                me.into_v3_identity(user)
                    .map_err(|e| CleverError::BadResponse(Endpoint::Users, e))
            }
        }
    }

    fn api_url(&self, segments: &[&str]) -> Url {
        let mut url = self.cfg.api_base.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty().push(&self.cfg.api_version);
            for s in segments {
                p.push(s);
            }
        }
        url
    }

    async fn get_json(
        &self,
        ep: Endpoint,
        url: Url,
        token: &Secret,
    ) -> Result<Vec<u8>, CleverError> {
        let req = self
            .http
            .get(url)
            .header(AUTHORIZATION, format!("Bearer {}", token.expose()))
            .header(ACCEPT, "application/json");
        let (status, body) = self.send(ep, req).await?;
        match status {
            200..=299 => Ok(body),
            401 => Err(CleverError::TokenRejected(ep)),
            429 => Err(CleverError::RateLimited(ep)),
            s => Err(CleverError::Status(ep, s)),
        }
    }

    async fn send(
        &self,
        ep: Endpoint,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), CleverError> {
        let started = Instant::now();
        let result = async {
            let mut resp = req.send().await.map_err(|e| map_reqwest(ep, e))?;
            let status = resp.status().as_u16();
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| map_reqwest(ep, e))? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(CleverError::BadResponse(ep, "response too large".into()));
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, body))
        }
        .await;
        let elapsed: Duration = started.elapsed();
        self.metrics.clever_call(ep.as_str(), elapsed);
        match &result {
            Ok((status, _)) => tracing::debug!(
                endpoint = ep.as_str(),
                status,
                ms = elapsed.as_millis() as u64,
                "clever call"
            ),
            Err(e) => tracing::warn!(
                endpoint = ep.as_str(),
                ms = elapsed.as_millis() as u64,
                error = %e,
                "clever call failed"
            ),
        }
        result
    }
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
