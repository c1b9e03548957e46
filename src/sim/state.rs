//! The simulator's mutable state: registered client, users, issued codes and tokens, the
//! injectable clock, faults and call counters. Locks are never held across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use rand::distr::{Alphanumeric, SampleString};
use rand::RngCore;

use super::districts::SimDistrict;
use super::faults::{Endpoint, Fault};
use super::users::SimUser;
use super::Latency;
use super::SimConfig;

/// How long an authorization code may be exchanged.
pub(crate) const CODE_TTL: Duration = Duration::from_secs(60);
/// How long an access token is accepted.
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Used codes are remembered this long (so a replay says "invalid code", not "unknown").
const CODE_MEMORY: Duration = Duration::from_secs(60 * 60);
/// How long a browser session at the simulator lasts (Clever user sessions last 2 h).
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(2 * 60 * 60);
/// Clever's rate-limit window (the limit is per token per minute).
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct CodeRecord {
    client_id: String,
    redirect_uri: String,
    user_id: String,
    issued: Instant,
    used: bool,
    openid: Option<OpenIdRequest>,
}

/// What an authorize request asked of OpenID Connect: `scope` with `openid`, and its `nonce`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenIdRequest {
    pub nonce: Option<String>,
}

/// A code that was exchanged: who it signed in, and its OpenID Connect request, if any.
#[derive(Debug)]
pub(crate) struct Redeemed {
    pub user: SimUser,
    pub openid: Option<OpenIdRequest>,
}

#[derive(Debug)]
struct TokenRecord {
    user_id: String,
    expires: Instant,
    /// The code the token was issued for (the sign-in it belongs to).
    code: String,
}

/// What one listener counts.
#[derive(Debug)]
pub(crate) struct ConnCounters {
    pub port: u16,
    /// Connections accepted.
    pub connections: AtomicU64,
    /// TLS handshakes completed (HTTPS only).
    pub tls_handshakes: AtomicU64,
}

/// A request in flight (see [`Shared::in_flight`]).
pub(crate) struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// At most this many sign-ins' injected delays are kept (`/_sim/delays`).
const MAX_DELAY_RECORDS: usize = 200_000;

/// A browser signed in at the simulator (the `clever_sim_session` cookie's token).
#[derive(Debug)]
struct SessionRecord {
    user_id: String,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Mutable {
    auto_login: Option<String>,
    faults: HashMap<Endpoint, Fault>,
    codes: HashMap<String, CodeRecord>,
    tokens: HashMap<String, TokenRecord>,
    sessions: HashMap<String, SessionRecord>,
    clock_offset: Duration,
    districts: Vec<SimDistrict>,
    /// Items per page when a list request has no `limit`.
    page_limit: usize,
    /// Requests per token per minute.
    rate_limit: u32,
    /// Per rate-limit bucket: when its window started and how many requests it counted.
    rate_windows: HashMap<String, (Instant, u32)>,
    /// Clever's time per sign-in (its code), microseconds, summed over its calls as held.
    delays: HashMap<String, u64>,
    /// The part of `delays` the browser itself waited on (authorize), not the relying party.
    browser_delays: HashMap<String, u64>,
}

/// A request's place in its rate-limit window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RateState {
    pub bucket: String,
    pub limit: u32,
    pub remaining: u32,
    /// When the window resets, unix seconds (on the simulator's clock).
    pub reset: u64,
    /// This request is over the limit.
    pub exceeded: bool,
}

/// Why a code could not be exchanged. All map to `invalid_grant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedeemError {
    Unknown,
    Used,
    Expired,
    WrongClient,
    WrongRedirectUri,
    UnknownUser,
}

/// State shared by every connection of one simulator.
#[derive(Debug)]
pub(crate) struct Shared {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    pub users: Vec<SimUser>,
    pub token_type_in_response: bool,
    /// Injected latency of every Clever endpoint, when set.
    pub latency: Option<Latency>,
    /// Signs OpenID Connect id_tokens; published at `/oauth/certs`.
    pub signing_key: crate::auth::assertion::SigningKey,
    /// Served over HTTPS.
    pub tls: bool,
    /// Per listener: connections accepted, and TLS handshakes completed on them.
    listeners: Mutex<Vec<Arc<ConnCounters>>>,
    /// Requests to Clever's endpoints being answered now, and the most at once.
    in_flight: AtomicU64,
    pub peak_in_flight: AtomicU64,
    initial_auto_login: Option<String>,
    mutable: Mutex<Mutable>,
    calls: [AtomicU64; Endpoint::ALL.len()],
    total: AtomicU64,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// `n` random hex characters (`n` even).
pub(crate) fn hex_id(n: usize) -> String {
    random_hex(n / 2)
}

impl Shared {
    pub fn new(cfg: SimConfig, tls: bool) -> Shared {
        Shared {
            tls,
            client_id: cfg.client_id,
            client_secret: cfg.client_secret,
            redirect_uris: cfg.redirect_uris,
            users: cfg.users,
            token_type_in_response: cfg.token_type_in_response,
            latency: cfg.latency,
            signing_key: crate::auth::assertion::SigningKey::generate()
                .expect("the OS can generate a P-256 key"),
            listeners: Mutex::new(Vec::new()),
            in_flight: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
            initial_auto_login: cfg.auto_login.clone(),
            mutable: Mutex::new(Mutable {
                auto_login: cfg.auto_login,
                districts: cfg.districts,
                page_limit: cfg.page_limit.max(1),
                rate_limit: cfg.rate_limit.max(1),
                ..Mutable::default()
            }),
            calls: Default::default(),
            total: AtomicU64::new(0),
        }
    }

    /// `https` when served over TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    fn lock(&self) -> MutexGuard<'_, Mutable> {
        // A panic elsewhere must not wedge the simulator: the data stays consistent per call.
        self.mutable.lock().unwrap_or_else(|e| e.into_inner())
    }

    // --- clock ---

    /// The simulator's monotonic "now": real time plus everything `advance_clock` added.
    pub fn now(&self) -> Instant {
        Instant::now() + self.lock().clock_offset
    }

    /// Wall-clock "now" on the same injectable clock (for `X-RateLimit-Reset`).
    pub fn wall_now(&self) -> SystemTime {
        SystemTime::now() + self.lock().clock_offset
    }

    pub fn advance_clock(&self, by: Duration) {
        let mut m = self.lock();
        m.clock_offset = m.clock_offset.saturating_add(by);
    }

    // --- users ---

    pub fn user(&self, id: &str) -> Option<&SimUser> {
        self.users.iter().find(|u| u.id == id)
    }

    pub fn auto_login(&self) -> Option<String> {
        self.lock().auto_login.clone()
    }

    pub fn set_auto_login(&self, user_id: Option<&str>) {
        self.lock().auto_login = user_id.map(str::to_string);
    }

    // --- counters and faults ---

    pub fn count(&self, endpoint: Endpoint) {
        self.calls[endpoint.index()].fetch_add(1, Ordering::SeqCst);
    }

    pub fn count_total(&self) {
        self.total.fetch_add(1, Ordering::SeqCst);
    }

    pub fn calls(&self, endpoint: Endpoint) -> u64 {
        self.calls[endpoint.index()].load(Ordering::SeqCst)
    }

    pub fn total_calls(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    #[cfg(test)]
    pub fn fault(&self, endpoint: Endpoint) -> Option<Fault> {
        self.lock().faults.get(&endpoint).copied()
    }

    /// The fault to apply to one request of `endpoint`: a counted fault
    /// ([`Fault::RateLimitedTimes`]) is used up by one, and clears itself at zero.
    pub fn use_fault(&self, endpoint: Endpoint) -> Option<Fault> {
        let mut m = self.lock();
        let fault = m.faults.get(&endpoint).copied();
        if let Some(Fault::RateLimitedTimes(n)) = fault {
            if n <= 1 {
                m.faults.remove(&endpoint);
            } else {
                m.faults.insert(endpoint, Fault::RateLimitedTimes(n - 1));
            }
        }
        fault
    }

    pub fn set_fault(&self, endpoint: Endpoint, fault: Option<Fault>) {
        let mut m = self.lock();
        match fault {
            Some(f) => m.faults.insert(endpoint, f),
            None => m.faults.remove(&endpoint),
        };
    }

    /// Clears faults and counters and restores the configured auto-login user. Codes, tokens,
    /// browser sessions and the clock are kept.
    pub fn reset(&self) {
        let mut m = self.lock();
        m.faults.clear();
        m.delays.clear();
        m.browser_delays.clear();
        m.auto_login = self.initial_auto_login.clone();
        for l in self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            l.connections.store(0, Ordering::SeqCst);
            l.tls_handshakes.store(0, Ordering::SeqCst);
        }
        self.peak_in_flight
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
        for c in &self.calls {
            c.store(0, Ordering::SeqCst);
        }
        self.total.store(0, Ordering::SeqCst);
    }

    // --- codes and tokens ---

    /// A fresh single-use code for `user_id`, bound to `client_id` and `redirect_uri`.
    pub fn issue_code(&self, client_id: &str, redirect_uri: &str, user_id: &str) -> String {
        self.issue_code_for(client_id, redirect_uri, user_id, None)
    }

    /// As [`Shared::issue_code`], remembering the authorize request's OpenID Connect part.
    pub fn issue_code_for(
        &self,
        client_id: &str,
        redirect_uri: &str,
        user_id: &str,
        openid: Option<OpenIdRequest>,
    ) -> String {
        let code = random_hex(16);
        let now = self.now();
        let mut m = self.lock();
        m.codes
            .retain(|_, c| now.saturating_duration_since(c.issued) < CODE_MEMORY);
        m.codes.insert(
            code.clone(),
            CodeRecord {
                client_id: client_id.to_string(),
                redirect_uri: redirect_uri.to_string(),
                user_id: user_id.to_string(),
                issued: now,
                used: false,
                openid,
            },
        );
        code
    }

    /// Exchanges `code` once. A used code stays used; a mismatched `redirect_uri` or client
    /// does not use the code up.
    pub fn redeem_code(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
    ) -> Result<Redeemed, RedeemError> {
        let now = self.now();
        let mut m = self.lock();
        let record = m.codes.get_mut(code).ok_or(RedeemError::Unknown)?;
        if record.used {
            return Err(RedeemError::Used);
        }
        if now.saturating_duration_since(record.issued) >= CODE_TTL {
            return Err(RedeemError::Expired);
        }
        if record.client_id != client_id {
            return Err(RedeemError::WrongClient);
        }
        if record.redirect_uri != redirect_uri {
            return Err(RedeemError::WrongRedirectUri);
        }
        record.used = true;
        let user_id = record.user_id.clone();
        let openid = record.openid.clone();
        drop(m);
        let user = self
            .user(&user_id)
            .cloned()
            .ok_or(RedeemError::UnknownUser)?;
        Ok(Redeemed { user, openid })
    }

    /// A fresh SSO bearer token (`il…`) for `user_id`, issued for `code`, valid 24 h.
    pub fn issue_token(&self, user_id: &str, code: &str) -> String {
        let token = format!("il{}", Alphanumeric.sample_string(&mut rand::rng(), 38));
        let now = self.now();
        let mut m = self.lock();
        m.tokens.retain(|_, t| t.expires > now);
        m.tokens.insert(
            token.clone(),
            TokenRecord {
                user_id: user_id.to_string(),
                expires: now + TOKEN_TTL,
                code: code.to_string(),
            },
        );
        token
    }

    /// The code a token was issued for.
    pub fn code_of_token(&self, token: &str) -> Option<String> {
        self.lock().tokens.get(token).map(|t| t.code.clone())
    }

    /// New counters for a listener on `port`.
    pub fn listener(&self, port: u16) -> Arc<ConnCounters> {
        let counters = Arc::new(ConnCounters {
            port,
            connections: AtomicU64::new(0),
            tls_handshakes: AtomicU64::new(0),
        });
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(counters.clone());
        counters
    }

    /// Every listener's counters, in the order they were added.
    pub fn listeners(&self) -> Vec<Arc<ConnCounters>> {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Counts one request to a Clever endpoint as in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }

    // --- injected latency ---

    /// How long to hold one answer of a Clever endpoint, when latency is injected.
    pub fn latency_sample(&self) -> Option<Duration> {
        self.latency.map(|l| l.sample())
    }

    /// Adds the time one call was held (its injected latency, as slept) to the sign-in of `code`;
    /// `by_browser` when the browser made the call (authorize), not the relying party.
    pub fn record_delay(&self, code: &str, delay: Duration, by_browser: bool) {
        let mut m = self.lock();
        if m.delays.len() >= MAX_DELAY_RECORDS && !m.delays.contains_key(code) {
            return;
        }
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        *m.delays.entry(code.to_string()).or_default() += us;
        if by_browser {
            *m.browser_delays.entry(code.to_string()).or_default() += us;
        }
    }

    /// Clever's time per sign-in (by code), microseconds.
    pub fn delays(&self) -> HashMap<String, u64> {
        self.lock().delays.clone()
    }

    /// The part of [`delays`](Self::delays) spent on calls the browser made (by code).
    pub fn browser_delays(&self) -> HashMap<String, u64> {
        self.lock().browser_delays.clone()
    }

    /// The user a live token belongs to.
    pub fn token_user(&self, token: &str) -> Option<SimUser> {
        let now = self.now();
        let user_id = {
            let m = self.lock();
            let t = m.tokens.get(token)?;
            if t.expires <= now {
                return None;
            }
            t.user_id.clone()
        };
        self.user(&user_id).cloned()
    }

    // --- districts and district-app tokens ---

    pub fn districts(&self) -> Vec<SimDistrict> {
        self.lock().districts.clone()
    }

    /// The district a live district-app token belongs to.
    pub fn district_by_token(&self, token: &str) -> Option<SimDistrict> {
        self.lock()
            .districts
            .iter()
            .find(|d| d.token.as_deref() == Some(token))
            .cloned()
    }

    /// Applies `f` to the district `id`; `None` if there is no such district.
    pub fn with_district<T>(&self, id: &str, f: impl FnOnce(&mut SimDistrict) -> T) -> Option<T> {
        self.lock().districts.iter_mut().find(|d| d.id == id).map(f)
    }

    pub fn page_limit(&self) -> usize {
        self.lock().page_limit
    }

    pub fn set_page_limit(&self, n: usize) {
        self.lock().page_limit = n.max(1);
    }

    pub fn set_rate_limit(&self, n: u32) {
        let mut m = self.lock();
        m.rate_limit = n.max(1);
        m.rate_windows.clear();
    }

    /// The rate-limit bucket of a bearer token: `district:<id>` for a district-app token,
    /// `user:<id>` for an SSO token; `None` for a token the simulator does not know.
    pub fn rate_bucket(&self, token: &str) -> Option<String> {
        if let Some(d) = self.district_by_token(token) {
            return Some(format!("district:{}", d.id));
        }
        self.token_user(token).map(|u| format!("user:{}", u.id))
    }

    /// Counts one request in `bucket`'s window (a minute on the simulator's clock).
    pub fn rate_take(&self, bucket: &str) -> RateState {
        let now = self.now();
        let wall = self.wall_now();
        let mut m = self.lock();
        let limit = m.rate_limit;
        let entry = m.rate_windows.entry(bucket.to_string()).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= RATE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        let left = RATE_WINDOW.saturating_sub(now.saturating_duration_since(entry.0));
        let reset = wall
            .checked_add(left)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
        RateState {
            bucket: bucket.to_string(),
            limit,
            remaining: limit.saturating_sub(entry.1),
            reset,
            exceeded: entry.1 > limit,
        }
    }

    // --- browser sessions ---

    /// Starts a browser session for `user_id`, valid [`SESSION_TTL`]; returns its token (the
    /// cookie value). The token says nothing about the user.
    pub fn start_session(&self, user_id: &str) -> String {
        let token = random_hex(32);
        let now = self.now();
        let mut m = self.lock();
        m.sessions.retain(|_, s| s.expires > now);
        m.sessions.insert(
            token.clone(),
            SessionRecord {
                user_id: user_id.to_string(),
                expires: now + SESSION_TTL,
            },
        );
        token
    }

    /// The user of a live browser session.
    pub fn session_user(&self, token: &str) -> Option<SimUser> {
        let now = self.now();
        let user_id = {
            let m = self.lock();
            let s = m.sessions.get(token)?;
            if s.expires <= now {
                return None;
            }
            s.user_id.clone()
        };
        self.user(&user_id).cloned()
    }

    /// Ends a browser session (unknown tokens are ignored).
    pub fn end_session(&self, token: &str) {
        self.lock().sessions.remove(token);
    }
}
