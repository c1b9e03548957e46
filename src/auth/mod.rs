//! The login state machine: starting a login, the callback (state check, code exchange,
//! identity, new session), Clever-initiated bounces, code replay, logout, and the return-path
//! policy. It returns `Reply` values and never touches pingora.

pub mod assertion;
pub(crate) mod enrich;
pub(crate) mod login_state;
pub mod policy;
pub mod return_path;

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clever::district::DistrictTokens;
use crate::clever::{CleverClient, CleverError, Endpoint, LoginParams};
use crate::config::Config;
use crate::gateway::host::Host;
use crate::gateway::pages::Reply;
use crate::gateway::refusal::Refusal;
use crate::process::metrics::{LoginOutcome, Metrics, NO_REASON};
use crate::secret::random_token;
use crate::session::cookies::{AppCookies, CookieJarSpec, GatewayCookies};
use crate::session::{Clock, CodeClaim, SessionId, SessionRecord, SessionStore, StoreError};
use login_state::{LoginSealer, LoginState, OpenError};

pub use return_path::safe_return_path;

/// Per-request facts the login flows need. The flows run in the request's span
/// (`gateway::request_span`), which gives their log lines the request id; `request_id` is here
/// for the pages that show it.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub cookies: &'a GatewayCookies,
    pub wants_html: bool,
    pub request_id: &'a str,
}

/// The query of a callback, once checked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Parses a callback query strictly: valid percent-encoding, UTF-8, no repeated parameter.
pub fn parse_callback_query(query: Option<&str>) -> Result<CallbackParams, &'static str> {
    let mut p = CallbackParams::default();
    let Some(q) = query else { return Ok(p) };
    if !valid_percent_encoding(q) {
        return Err("the callback query has invalid percent-encoding");
    }
    for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
        if v.contains('\u{fffd}') || k.contains('\u{fffd}') {
            return Err("the callback query is not UTF-8");
        }
        let slot = match k.as_ref() {
            "code" => &mut p.code,
            "state" => &mut p.state,
            "error" => &mut p.error,
            "error_description" => &mut p.error_description,
            _ => continue,
        };
        if slot.is_some() {
            return Err("a callback parameter is repeated");
        }
        *slot = Some(v.into_owned());
    }
    Ok(p)
}

/// Whether every `%` is followed by two hex digits.
pub fn valid_percent_encoding(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// What is stored about a code: its hash, never the code itself.
fn code_key(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

/// What ties an exchanged code to the sign-in that received it (its `CodeClaim::binding`):
/// the hash of that sign-in's state, which only the browser holding its login cookie can
/// prove it started.
fn binding_of(state: &str) -> String {
    code_key(state)
}

/// Outcome of looking up the browser's session.
pub type SessionLookup = Result<Option<(SessionId, Arc<SessionRecord>)>, StoreError>;

/// Login flows over a session store and a Clever client.
#[derive(Debug, Clone)]
pub struct Auth {
    cfg: Arc<Config>,
    store: Arc<dyn SessionStore>,
    clever: CleverClient,
    clock: Arc<dyn Clock>,
    cookies: CookieJarSpec,
    /// Every upstream's `app_cookies`, expired at each sign-in and sign-out.
    app_cookies: Arc<AppCookies>,
    callback_path: String,
    metrics: Arc<Metrics>,
    /// The fuller record, section ids, and what the session keeps of them.
    enricher: Arc<enrich::Enricher>,
    /// Seals the login cookies (the sign-ins in progress) under a key derived from the
    /// client secret.
    sealer: Arc<LoginSealer>,
}

impl Auth {
    pub fn new(
        cfg: Arc<Config>,
        store: Arc<dyn SessionStore>,
        clever: CleverClient,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let cookies = CookieJarSpec::from_config(&cfg.session);
        let app_cookies = Arc::new(AppCookies::from_config(&cfg));
        let callback_path = cfg.clever.redirect_uri.path().to_string();
        let enricher = Arc::new(enrich::Enricher::new(&cfg, Arc::default()));
        let sealer = Arc::new(LoginSealer::derive(
            clever.client_secret().expose().as_bytes(),
        ));
        Auth {
            cfg,
            store,
            clever,
            clock,
            cookies,
            app_cookies,
            callback_path,
            metrics,
            enricher,
            sealer,
        }
    }

    /// Reads fuller records and section ids with these district-app tokens (none by default).
    pub fn with_district_tokens(mut self, tokens: Arc<DistrictTokens>) -> Self {
        self.enricher = Arc::new(enrich::Enricher::new(&self.cfg, tokens));
        self
    }

    /// The Clever client the login flows use.
    pub fn clever(&self) -> &CleverClient {
        &self.clever
    }

    #[cfg(test)]
    fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The path Clever redirects back to (the path of `redirect_uri`).
    pub fn callback_path(&self) -> &str {
        &self.callback_path
    }

    /// The browser's live session, if any of its session cookies names one.
    pub async fn session(&self, cookies: &GatewayCookies) -> SessionLookup {
        for value in &cookies.session {
            if let Some(id) = SessionId::from_cookie(value) {
                if let Some(rec) = self.store.get(&id).await? {
                    return Ok(Some((id, rec)));
                }
            }
        }
        Ok(None)
    }

    /// 302 to Clever with a fresh state, and the sign-in (return address, start time) sealed
    /// in a login cookie of its own named after the state: the server keeps nothing. `return_to`
    /// must already be a safe same-site path (or the operator-configured landing URL); one
    /// longer than `login_state::MAX_RETURN_TO` is shortened (`cap_return_to`). `login` carries
    /// the upstream's `login_district_id` and `confirm_students`. The browser's oldest login
    /// cookies are expired past `MAX_LOGIN_COOKIES` or `LOGIN_COOKIE_BUDGET`.
    pub async fn start_login(
        &self,
        ctx: Ctx<'_>,
        return_to: &str,
        login: LoginParams<'_>,
        from_clever: bool,
    ) -> Reply {
        let state = random_token(32);
        let capped = login_state::cap_return_to(return_to);
        if capped.len() < return_to.len() {
            tracing::info!(
                len = return_to.len(),
                max = login_state::MAX_RETURN_TO,
                "return address too long to keep: shortened"
            );
        }
        let name = self.cookies.login_name(&state);
        let value = self.sealer.seal(
            &name,
            &state,
            &LoginState {
                return_to: capped.into_owned(),
                started: self.clock.now(),
            },
        );
        let evicted = login_state::to_evict(&ctx.cookies.logins, name.len() + value.len() + 3);
        tracing::info!(from_clever, "login started");
        let who = if from_clever {
            "clever_initiated"
        } else {
            "gateway"
        };
        self.metrics.login(LoginOutcome::Started, who);
        let mut reply = Reply::redirect(&self.clever.authorize_url(&state, login)).with_cookie(
            self.cookies
                .set_login(&name, &value, self.cfg.session.login_timeout),
        );
        for (old, _) in evicted {
            reply = reply.with_cookie(self.cookies.clear(old));
        }
        if ctx.cookies.legacy_login {
            reply = reply.with_cookie(self.cookies.clear(&self.cookies.login));
        }
        reply
    }

    /// Handles Clever's redirect back to `redirect_uri`. The login cookie of the sign-in it
    /// names is expired with the answer, whatever the outcome: each is used once.
    pub async fn callback(&self, ctx: Ctx<'_>, query: Option<&str>) -> Reply {
        let params = match parse_callback_query(query) {
            Ok(p) => p,
            Err(why) => return self.refuse(ctx, Refusal::BadCallback(why)),
        };
        let login_cookie = params.state.as_deref().and_then(|state| {
            let name = self.cookies.login_name(state);
            let value = ctx
                .cookies
                .logins
                .iter()
                .find(|(n, _)| *n == name)?
                .1
                .clone();
            Some((name, value))
        });
        let reply = self.callback_for(ctx, &params, login_cookie.as_ref()).await;
        match login_cookie {
            Some((name, _)) => reply.with_cookie(self.cookies.clear(&name)),
            None => reply,
        }
    }

    /// The callback, with the browser's login cookie for its state (name, value) if it has one.
    async fn callback_for(
        &self,
        ctx: Ctx<'_>,
        params: &CallbackParams,
        login_cookie: Option<&(String, String)>,
    ) -> Reply {
        if let Some(err) = &params.error {
            return self.clever_error_callback(ctx, err, params).await;
        }
        let Some(code) = params.code.as_deref().filter(|c| !c.is_empty()) else {
            return self.refuse(ctx, Refusal::MissingCode);
        };
        let key = code_key(code);
        let Some(state) = params.state.as_deref() else {
            return self.clever_initiated(ctx).await;
        };
        let opened = login_cookie.map(|(name, value)| {
            self.sealer.open(
                name,
                state,
                value,
                self.cfg.session.login_timeout,
                self.clock.now(),
            )
        });
        let login = match opened {
            Some(Ok(login)) => login,
            refused => {
                // Not a sign-in this browser started (or no longer a valid one). A code seen
                // before (refresh, back button) resumes what it made; anything else is refused.
                match self.store.code(&key).await {
                    Ok(Some(claim)) => return self.replay(ctx, claim, false).await,
                    Ok(None) => {}
                    Err(e) => return self.store_unavailable(ctx, &e),
                }
                let refusal = match refused {
                    Some(Err(OpenError::Expired)) => {
                        Refusal::InvalidState("callback with an expired login cookie")
                    }
                    Some(Err(_)) => Refusal::InvalidState(
                        "callback with a login cookie that is not valid for its state",
                    ),
                    _ if ctx.cookies.legacy_login => Refusal::InvalidState(
                        "callback for a sign-in started before the gateway was upgraded",
                    ),
                    _ => Refusal::StateMismatch,
                };
                return self.refuse(ctx, refusal);
            }
        };
        let claim = CodeClaim {
            binding: binding_of(state),
            return_to: login.return_to.clone(),
            session: None,
        };
        match self.store.claim_code(&key, claim.clone()).await {
            Ok(None) => {}
            Ok(Some(existing)) => {
                let same = bool::from(existing.binding.as_bytes().ct_eq(claim.binding.as_bytes()));
                return self.replay(ctx, existing, same).await;
            }
            Err(e) => return self.store_unavailable(ctx, &e),
        }
        let token = match self.clever.exchange_code(code).await {
            Ok(t) => t,
            Err(e) => return self.refuse(ctx, Refusal::Clever(e)),
        };
        let identity = match self.clever.fetch_identity(&token).await {
            Ok(i) => i,
            Err(e) => return self.refuse(ctx, Refusal::Clever(e)),
        };
        let identity = self.enricher.enrich(&self.clever, identity).await;
        if identity.roles().is_empty() {
            let e = CleverError::BadResponse(Endpoint::Users, "the user has no known role".into());
            self.metrics.clever_error(e.endpoint().as_str(), e.reason());
            return self.refuse(ctx, Refusal::Clever(e));
        }
        let user_id = identity.user_id().to_string();
        let id = SessionId::generate();
        let record = SessionRecord::new(identity, token, self.clock.now(), self.cfg.session.ttl);
        // Rendered now rather than at the first request (which a store may not see: Redis).
        record.rendered(&self.cfg.header_specs);
        if let Err(e) = self.store.insert(&id, record).await {
            return self.store_unavailable(ctx, &e);
        }
        let done = CodeClaim {
            session: Some(id.clone()),
            ..claim
        };
        if let Err(e) = self.store.complete_code(&key, done).await {
            tracing::warn!(error = %e, "could not record exchanged code");
        }
        tracing::info!(user_id = %user_id, "login completed");
        self.metrics.login(LoginOutcome::Completed, NO_REASON);
        let mut reply = self.expire_app_cookies(
            Reply::redirect(&login.return_to)
                .with_cookie(self.cookies.set_session(id.expose(), self.cfg.session.ttl)),
        );
        if ctx.cookies.bounce {
            reply = reply.with_cookie(self.cookies.clear(&self.cookies.bounce));
        }
        reply
    }

    /// A code without our state: Clever's Portal or an Instant Login link. Never exchange it;
    /// bounce once through authorize with a fresh state. A second one in a row is an error.
    async fn clever_initiated(&self, ctx: Ctx<'_>) -> Reply {
        if ctx.cookies.bounce {
            return self
                .refuse(ctx, Refusal::BounceLoop)
                .with_cookie(self.cookies.clear(&self.cookies.bounce));
        }
        let landing = &self.cfg.upstreams[self.cfg.server.landing];
        let return_to = match &landing.host {
            Some(h) => format!(
                "{}://{}{}",
                self.cfg.clever.redirect_uri.scheme(),
                h,
                landing_root(&landing.path_prefix)
            ),
            None => landing_root(&landing.path_prefix),
        };
        tracing::info!("Clever-initiated login; bouncing through authorize");
        // Never confirmed=false here: the user just chose the app in their own Clever session,
        // and the bounce must stay invisible.
        let login = LoginParams {
            district_id: landing.login_district_id.as_deref(),
            confirm_students: false,
        };
        self.start_login(ctx, &return_to, login, true)
            .await
            .with_cookie(self.cookies.set_bounce())
    }

    /// A code seen before is never POSTed again: resume the session it made for this browser
    /// (`same_browser`: the request proves, with the login cookie of the sign-in that received
    /// the code, that it started that sign-in), or start a fresh login.
    async fn replay(&self, ctx: Ctx<'_>, claim: CodeClaim, same_browser: bool) -> Reply {
        tracing::info!("sign-in code seen before; not exchanging it again");
        match self.session(ctx.cookies).await {
            Ok(Some(_)) => return Reply::redirect(&claim.return_to),
            Ok(None) => {}
            Err(e) => return self.store_unavailable(ctx, &e),
        }
        if same_browser {
            if let Some(id) = &claim.session {
                if let Ok(Some(_)) = self.store.get(id).await {
                    // A sign-in for this browser after all: the app's old session goes too.
                    return self.expire_app_cookies(
                        Reply::redirect(&claim.return_to).with_cookie(
                            self.cookies.set_session(id.expose(), self.cfg.session.ttl),
                        ),
                    );
                }
            }
        }
        let login = self.login_params_for(&claim.return_to);
        self.start_login(ctx, &claim.return_to, login, false).await
    }

    /// Clever sent `error=` back. (The sign-in's login cookie is expired by `callback`.)
    async fn clever_error_callback(
        &self,
        ctx: Ctx<'_>,
        error: &str,
        params: &CallbackParams,
    ) -> Reply {
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect();
        let desc: String = params
            .error_description
            .as_deref()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        let refusal = Refusal::CleverCallbackError {
            code,
            description: desc,
        };
        self.refuse(ctx, refusal)
    }

    /// `/_gateway/logout`: ends the session server side (a copied cookie stops working),
    /// clears the cookie and the apps' cookies, and sends the browser to `logout_redirect`.
    pub async fn logout(&self, ctx: Ctx<'_>) -> Reply {
        if let Err(e) = self.end_sessions(ctx.cookies).await {
            return self.refuse(ctx, Refusal::SignOutStoreUnavailable(e.to_string()));
        }
        tracing::info!("logout");
        self.signed_out(Reply::redirect(&self.cfg.session.logout_redirect))
    }

    /// Ends every session the browser's cookies name, server side: the store forgets it (with
    /// Redis, the revocation reaches every replica), so a copied cookie stops working. Every
    /// sign-out (`/_gateway/logout`, a `logout_paths` answer) goes through here.
    pub async fn end_sessions(&self, cookies: &GatewayCookies) -> Result<(), StoreError> {
        for value in &cookies.session {
            if let Some(id) = SessionId::from_cookie(value) {
                self.store.remove(&id).await?;
            }
        }
        Ok(())
    }

    /// `reply` with what every sign-out sends the browser: the session cookie and every
    /// upstream's `app_cookies` expired.
    pub fn signed_out(&self, mut reply: Reply) -> Reply {
        for set in self.sign_out_cookies() {
            reply = reply.with_cookie(set);
        }
        reply
    }

    /// The `Set-Cookie` values of a sign-out ([`Auth::signed_out`]), also for an answer that
    /// is not a `Reply` (an app's, on a `logout_paths` path).
    pub fn sign_out_cookies(&self) -> impl Iterator<Item = String> + '_ {
        std::iter::once(self.cookies.clear(&self.cookies.session))
            .chain(self.app_cookies.set_cookies().iter().cloned())
    }

    /// `reply` with every upstream's `app_cookies` expired (a sign-in or a sign-out).
    fn expire_app_cookies(&self, mut reply: Reply) -> Reply {
        for set in self.app_cookies.set_cookies() {
            reply = reply.with_cookie(set.clone());
        }
        reply
    }

    /// Where to send the browser after login: the same-site `path` on the host it asked for.
    /// A host other than the callback's is kept, as an absolute URL, only when an upstream is
    /// configured for it (`host`); for any other host the path alone is used.
    pub fn return_target(&self, host: Option<Host<'_>>, path: &str) -> String {
        let Some(h) = host else {
            return path.to_string();
        };
        let Some(bare) = h.plain_name() else {
            return path.to_string();
        };
        let callback_host = self.cfg.clever.redirect_uri.host_str().unwrap_or("");
        let configured = self.cfg.upstreams.iter().any(|u| {
            u.host
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(bare))
        });
        if bare.eq_ignore_ascii_case(callback_host) || !configured {
            return path.to_string();
        }
        format!(
            "{}://{}{}",
            self.cfg.clever.redirect_uri.scheme(),
            h.as_str().to_ascii_lowercase(),
            path
        )
    }

    /// The login parameters (`login_district_id`, `confirm_students`) of the upstream that
    /// serves a return target (a path on the callback's host, or an absolute URL made by
    /// `return_target`); the defaults when no upstream serves it.
    pub fn login_params_for(&self, return_to: &str) -> LoginParams<'_> {
        let (host, path) = match url::Url::parse(return_to) {
            Ok(u) => (u.host_str().map(str::to_string), u.path().to_string()),
            Err(_) => (
                self.cfg.clever.redirect_uri.host_str().map(str::to_string),
                return_to.split('?').next().unwrap_or("/").to_string(),
            ),
        };
        crate::gateway::routing::route(&self.cfg, host.as_deref().map(Host::parse), &path)
            .map(|i| LoginParams::for_upstream(&self.cfg.upstreams[i]))
            .unwrap_or_default()
    }

    /// A login (start or callback) that failed on the session store.
    fn store_unavailable(&self, ctx: Ctx<'_>, e: &StoreError) -> Reply {
        self.refuse(ctx, Refusal::SignInStoreUnavailable(e.to_string()))
    }

    /// Logs, counts and renders a refusal of a sign-in (`Refusal::answer`).
    fn refuse(&self, ctx: Ctx<'_>, refusal: Refusal) -> Reply {
        refusal.answer(ctx.request_id, ctx.wants_html, Some(&self.metrics))
    }
}

/// `/staff` → `/staff/`, `/` → `/`.
fn landing_root(prefix: &str) -> String {
    if prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::session::memory::MemoryLimits;
    use crate::session::{ManualClock, MemoryStore};
    use crate::sim::{demo_users, Endpoint, SimConfig, SimHandle};
    use std::time::Duration;

    const REDIRECT: &str = "https://gw.example.org/oauth/clever/callback";

    /// The login flows over an in-process simulator, a memory store and a manual clock.
    async fn setup() -> (SimHandle, Auth, Arc<ManualClock>) {
        let sim = SimHandle::start(
            "127.0.0.1:0".parse().unwrap(),
            SimConfig::new(vec![REDIRECT.to_string()]),
        )
        .await
        .unwrap();
        let teacher = demo_users()
            .into_iter()
            .find(|u| u.role_types() == vec![crate::identity::UserType::Teacher])
            .unwrap();
        sim.set_auto_login(Some(&teacher.id));
        let text = format!(
            "[clever]\nclient_id = \"{}\"\nclient_secret_env = \"X\"\nredirect_uri = \"{REDIRECT}\"\nauthorize_url = \"{}\"\ntoken_url = \"{}\"\napi_base = \"{}\"\n[session]\nttl = \"1h\"\n[[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9\"\n",
            sim.client_id(),
            sim.authorize_url(),
            sim.token_url(),
            sim.api_base()
        );
        let cfg = Arc::new(crate::config::parse_str(&text, "t.toml").unwrap());
        let clock = Arc::new(ManualClock::new());
        let store = Arc::new(MemoryStore::new(
            cfg.session.ttl,
            clock.clone(),
            MemoryLimits::default(),
        ));
        let metrics = Arc::new(Metrics::new().unwrap());
        let clever = CleverClient::new(
            cfg.clever.clone(),
            Secret::new(sim.client_secret()),
            metrics.clone(),
        )
        .unwrap();
        let auth = Auth::new(cfg, store, clever, clock.clone(), metrics);
        (sim, auth, clock)
    }

    /// Starts a login and lets the simulator answer; returns (login cookie, callback query).
    async fn to_callback(auth: &Auth) -> ((String, String), String) {
        let cookies = GatewayCookies::default();
        let ctx = Ctx {
            cookies: &cookies,
            wants_html: true,
            request_id: "t",
        };
        let start = auth
            .start_login(ctx, "/back", LoginParams::default(), false)
            .await;
        assert_eq!(start.status, 302);
        let binding = first_cookie(&start);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = client
            .get(start.header("location").unwrap())
            .send()
            .await
            .unwrap();
        let cb = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        (binding, cb.query().unwrap().to_string())
    }

    /// The name and value of the first `Set-Cookie` of a reply.
    fn first_cookie(r: &Reply) -> (String, String) {
        let pair = r.header("set-cookie").unwrap().split(';').next().unwrap();
        let (name, value) = pair.split_once('=').unwrap();
        (name.to_string(), value.to_string())
    }

    /// Runs the callback in the browser that started the login; the reply and the session
    /// cookie jar it leaves.
    async fn finish(
        auth: &Auth,
        binding: &(String, String),
        query: &str,
    ) -> (Reply, GatewayCookies) {
        let cookies = with_login(binding);
        let ctx = Ctx {
            cookies: &cookies,
            wants_html: true,
            request_id: "t",
        };
        let r = auth.callback(ctx, Some(query)).await;
        let jar = GatewayCookies {
            session: vec![first_cookie(&r).1],
            ..Default::default()
        };
        (r, jar)
    }

    fn with_login(login: &(String, String)) -> GatewayCookies {
        GatewayCookies {
            logins: vec![login.clone()],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn callback_valid_state_creates_session_and_returns() {
        let (sim, auth, _) = setup().await;
        let (binding, query) = to_callback(&auth).await;
        let (r, jar) = finish(&auth, &binding, &query).await;
        assert_eq!(r.status, 302);
        assert_eq!(r.header("location"), Some("/back"));
        let (_, rec) = auth.session(&jar).await.unwrap().expect("session");
        assert_eq!(
            rec.identity.user_types().collect::<Vec<_>>(),
            vec![crate::identity::UserType::Teacher]
        );
        assert_eq!(sim.calls(Endpoint::Tokens), 1);
    }

    /// The value of `clever_gateway_logins_total{outcome,reason}` in `auth`'s metrics.
    fn logins(auth: &Auth, outcome: &str, reason: &str) -> f64 {
        crate::process::metrics::parse_text(&auth.metrics().render().unwrap())
            .into_iter()
            .find(|s| {
                s.name == crate::process::metrics::names::LOGINS
                    && s.labels
                        == vec![
                            ("outcome".to_string(), outcome.to_string()),
                            ("reason".to_string(), reason.to_string()),
                        ]
            })
            .map_or(0.0, |s| s.value)
    }

    #[tokio::test]
    async fn callback_success_counts_started_and_completed() {
        let (_sim, auth, _) = setup().await;
        let (binding, query) = to_callback(&auth).await;
        finish(&auth, &binding, &query).await;
        assert_eq!(logins(&auth, "started", "gateway"), 1.0);
        assert_eq!(logins(&auth, "completed", "none"), 1.0);
        let text = auth.metrics().render().unwrap();
        assert!(text.contains(r#"endpoint="tokens""#), "{text}");
        assert!(text.contains(r#"endpoint="users""#), "{text}");
    }

    #[tokio::test]
    async fn callback_from_other_browser_counts_state_mismatch() {
        let (_sim, auth, _) = setup().await;
        let (_, query) = to_callback(&auth).await;
        let other = GatewayCookies::default();
        let ctx = Ctx {
            cookies: &other,
            wants_html: false,
            request_id: "t",
        };
        assert_eq!(auth.callback(ctx, Some(&query)).await.status, 400);
        assert_eq!(logins(&auth, "failed", "state_mismatch"), 1.0);
        assert_eq!(logins(&auth, "completed", "none"), 0.0);
    }

    #[tokio::test]
    async fn callback_clever_503_counts_clever_error_at_tokens() {
        let (sim, auth, _) = setup().await;
        let (binding, query) = to_callback(&auth).await;
        sim.set_fault(Endpoint::Tokens, Some(crate::sim::Fault::Status(503)));
        let cookies = with_login(&binding);
        let ctx = Ctx {
            cookies: &cookies,
            wants_html: false,
            request_id: "t",
        };
        assert_eq!(auth.callback(ctx, Some(&query)).await.status, 502);
        assert_eq!(logins(&auth, "failed", "clever_error"), 1.0);
        let errors = crate::process::metrics::parse_text(&auth.metrics().render().unwrap())
            .into_iter()
            .find(|s| s.name == crate::process::metrics::names::CLEVER_ERRORS)
            .expect("a Clever error counted");
        assert_eq!(
            errors.labels,
            vec![
                ("endpoint".to_string(), "tokens".to_string()),
                ("reason".to_string(), "clever_error".to_string())
            ]
        );
    }

    #[tokio::test]
    async fn callback_after_pending_login_expired_on_clock_refused() {
        let (sim, auth, clock) = setup().await;
        let (binding, query) = to_callback(&auth).await;
        clock.advance(crate::session::LoginTimes::DEFAULT_TIMEOUT + Duration::from_secs(1));
        let cookies = with_login(&binding);
        let ctx = Ctx {
            cookies: &cookies,
            wants_html: false,
            request_id: "t",
        };
        let r = auth.callback(ctx, Some(&query)).await;
        assert_eq!(r.status, 400);
        assert_eq!(
            sim.calls(Endpoint::Tokens),
            0,
            "expired state: code not exchanged"
        );
    }

    #[tokio::test]
    async fn session_expires_on_injected_clock() {
        let (_sim, auth, clock) = setup().await;
        let (binding, query) = to_callback(&auth).await;
        let (_, jar) = finish(&auth, &binding, &query).await;
        clock.advance(Duration::from_secs(3599));
        assert!(auth.session(&jar).await.unwrap().is_some());
        clock.advance(Duration::from_secs(1));
        assert!(
            auth.session(&jar).await.unwrap().is_none(),
            "ttl = 1h on the clock"
        );
    }

    #[test]
    fn parse_callback_query_ok() {
        let p = parse_callback_query(Some("code=abc&scope=read%3Auser_id&state=xyz")).unwrap();
        assert_eq!(p.code.as_deref(), Some("abc"));
        assert_eq!(p.state.as_deref(), Some("xyz"));
        assert_eq!(p.error, None);
    }

    #[test]
    fn parse_callback_query_bad_encoding_rejected() {
        assert!(parse_callback_query(Some("code=%zz")).is_err());
        assert!(parse_callback_query(Some("code=%e")).is_err());
        assert!(parse_callback_query(Some("code=%ff%fe")).is_err());
    }

    #[test]
    fn parse_callback_query_repeated_param_rejected() {
        assert!(parse_callback_query(Some("code=a&code=b")).is_err());
        assert!(parse_callback_query(Some("state=a&code=x&state=b")).is_err());
    }

    #[test]
    fn code_key_is_hash_not_code() {
        let k = code_key("secretcode");
        assert_eq!(k.len(), 64);
        assert!(!k.contains("secretcode"));
    }

    #[tokio::test]
    async fn return_target_keeps_configured_other_host_only() {
        let (_sim, auth, _) = setup().await;
        // The callback host: a path is enough.
        assert_eq!(
            auth.return_target(Some(Host::parse("gw.example.org")), "/x"),
            "/x"
        );
        // A host no upstream is configured for: never an absolute URL to it.
        assert_eq!(
            auth.return_target(Some(Host::parse("evil.example")), "/x"),
            "/x"
        );
        assert_eq!(auth.return_target(None, "/x"), "/x");
    }

    #[test]
    fn landing_root_adds_slash() {
        assert_eq!(landing_root("/"), "/");
        assert_eq!(landing_root("/staff"), "/staff/");
    }
}
