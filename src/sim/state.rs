//! The simulator's mutable state: registered client, users, issued codes and tokens, the
//! injectable clock, faults and call counters. Locks are never held across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use rand::distr::{Alphanumeric, SampleString};
use rand::RngCore;

use super::faults::{Endpoint, Fault};
use super::users::SimUser;
use super::SimConfig;

/// How long an authorization code may be exchanged.
pub(crate) const CODE_TTL: Duration = Duration::from_secs(60);
/// How long an access token is accepted.
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Used codes are remembered this long (so a replay says "invalid code", not "unknown").
const CODE_MEMORY: Duration = Duration::from_secs(60 * 60);
/// How long a browser session at the simulator lasts (Clever user sessions last 2 h).
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(2 * 60 * 60);

#[derive(Debug)]
struct CodeRecord {
    client_id: String,
    redirect_uri: String,
    user_id: String,
    issued: Instant,
    used: bool,
}

#[derive(Debug)]
struct TokenRecord {
    user_id: String,
    expires: Instant,
}

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
    initial_auto_login: Option<String>,
    mutable: Mutex<Mutable>,
    calls: [AtomicU64; 5],
    total: AtomicU64,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` random hex characters (`n` even).
pub(crate) fn hex_id(n: usize) -> String {
    random_hex(n / 2)
}

impl Shared {
    pub fn new(cfg: SimConfig) -> Shared {
        Shared {
            client_id: cfg.client_id,
            client_secret: cfg.client_secret,
            redirect_uris: cfg.redirect_uris,
            users: cfg.users,
            token_type_in_response: cfg.token_type_in_response,
            initial_auto_login: cfg.auto_login.clone(),
            mutable: Mutex::new(Mutable {
                auto_login: cfg.auto_login,
                ..Mutable::default()
            }),
            calls: Default::default(),
            total: AtomicU64::new(0),
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

    pub fn fault(&self, endpoint: Endpoint) -> Option<Fault> {
        self.lock().faults.get(&endpoint).copied()
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
        m.auto_login = self.initial_auto_login.clone();
        for c in &self.calls {
            c.store(0, Ordering::SeqCst);
        }
        self.total.store(0, Ordering::SeqCst);
    }

    // --- codes and tokens ---

    /// A fresh single-use code for `user_id`, bound to `client_id` and `redirect_uri`.
    pub fn issue_code(&self, client_id: &str, redirect_uri: &str, user_id: &str) -> String {
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
    ) -> Result<SimUser, RedeemError> {
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
        drop(m);
        self.user(&user_id).cloned().ok_or(RedeemError::UnknownUser)
    }

    /// A fresh SSO bearer token (`il…`) for `user_id`, valid 24 h.
    pub fn issue_token(&self, user_id: &str) -> String {
        let token = format!("il{}", Alphanumeric.sample_string(&mut rand::rng(), 38));
        let now = self.now();
        let mut m = self.lock();
        m.tokens.retain(|_, t| t.expires > now);
        m.tokens.insert(
            token.clone(),
            TokenRecord {
                user_id: user_id.to_string(),
                expires: now + TOKEN_TTL,
            },
        );
        token
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
