//! What happens to one request, decided without pingora: routing, public paths, session
//! lookup, policy, and the login redirect or 401 for anonymous requests. The gateway's own
//! endpoints live in `endpoints`, the request's host in `host`, routing in `routing`, the
//! checks made before any decision in `precheck`, the same-site check of a sign-out in
//! `origin`, the header edits on the way upstream in `upstream_headers` (with the forwarding
//! and path-override claims in `claims`), the gateway's own pages in `pages` and every refusal
//! in `refusal`. Nothing here imports `proxy`: the pingora glue depends on these decisions,
//! never the reverse.

pub(crate) mod claims;
mod endpoints;
pub mod host;
pub(crate) mod https;
mod origin;
pub(crate) mod pages;
mod precheck;
pub(crate) mod refusal;
pub mod routing;
pub mod upstream_headers;

pub use endpoints::{
    forward_auth_proven, forward_auth_upstream, login_url, X_CLEVER_FORWARD_AUTH_SECRET,
    X_CLEVER_LOGIN_URL,
};
pub use precheck::{
    framing_error, raw_has_content_length, refuse_request, MAX_HEADER_BYTES, MAX_HEADER_SECTION,
};

use std::sync::Arc;

use tracing::Instrument;

use crate::auth::assertion::{Assertions, X_CLEVER_ASSERTION};
use crate::auth::{policy, safe_return_path, Auth, Ctx};
use crate::clever::LoginParams;
use crate::config::{Config, Upstream};
use crate::gateway::pages::Reply;
use crate::gateway::refusal::Refusal;
use crate::identity::{canonical_header_name, SPOOFABLE_PREFIX};
use crate::process::metrics::Metrics;
use crate::process::tls::UpstreamCa;
use crate::secret::Secret;
use crate::session::cookies::{CookieJarSpec, GatewayCookies};
use crate::session::{unix_secs, SessionId, SessionRecord, SessionStore};
use host::Host;
use routing::NormalizedPath;

/// The reserved prefix for the gateway's own endpoints, on every host.
pub const GATEWAY_PREFIX: &str = "/_gateway/";

/// The facts of a request the decision needs.
#[derive(Debug, Clone)]
pub struct RequestFacts<'a> {
    pub method: &'a str,
    /// The host the request was sent to.
    pub host: Option<Host<'a>>,
    /// Raw path of the request target (no query).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub cookies: GatewayCookies,
    /// A browser navigation (`Sec-Fetch-Mode: navigate` or `Accept: text/html`).
    pub wants_html: bool,
    pub request_id: &'a str,
    /// `X-Forwarded-Uri` as a forward-auth proxy sends it: used only as the same-site return
    /// path of `/_gateway/auth`'s login URL, never to choose an upstream or policy.
    pub forwarded_uri: Option<&'a str>,
    /// `X-Clever-Forward-Auth-Secret` as the request carried it (read before the `X-Clever-`
    /// headers are scrubbed): the forward-auth proxy's proof, see `forward_auth_proven`.
    pub forward_auth_secret: Option<&'a [u8]>,
    /// The browser's `Sec-Fetch-Site` and `Origin`: whether a sign-out comes from this site.
    pub sec_fetch_site: Option<&'a str>,
    pub origin: Option<&'a str>,
}

/// What to do with the request.
#[derive(Debug)]
pub enum Decision {
    /// Answer it ourselves.
    Reply(Reply),
    /// Send it to `upstream`, with identity headers when `session` is set.
    Forward(Forward),
}

/// One upstream as the requests sent to it use it, built once at start: its configuration
/// (address, timeouts, identity header names, `set_headers`, login parameters) and the CA its
/// certificate must chain to. A decision carries it, so the proxy needs no index into
/// `cfg.upstreams` and no list beside it.
#[derive(Debug)]
pub struct UpstreamRt {
    /// The upstream's configuration: the same allocation as its entry in `Config.upstreams`.
    pub cfg: Arc<Upstream>,
    /// `tls_ca`, read at start (`None`: the system roots, or a plain `http://` upstream).
    pub(crate) ca: Option<UpstreamCa>,
}

impl UpstreamRt {
    /// The parameters of a login started for this upstream.
    pub fn login_params(&self) -> LoginParams<'_> {
        LoginParams::for_upstream(&self.cfg)
    }
}

#[derive(Debug)]
pub struct Forward {
    /// The upstream to send the request to.
    pub upstream: Arc<UpstreamRt>,
    pub session: Option<Arc<SessionRecord>>,
    /// Path and query to send upstream, when it differs from the request's.
    pub upstream_path: Option<String>,
    /// `X-Clever-Assertion` for an upstream with `assertion = true` (signed-in only).
    pub assertion: Option<Arc<str>>,
    /// A signed-in request to one of the upstream's `logout_paths`: the browser's gateway
    /// cookies, whose sessions end once the app has answered (`Gateway::app_signed_out`).
    pub sign_out: Option<GatewayCookies>,
}

/// The gateway's request-level logic over its configuration and login flows.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub cfg: Arc<Config>,
    pub auth: Auth,
    /// Canonical (lower-case, `-`) names of every header any upstream receives from the session
    /// (identity headers, `set_headers`), but those under `X-Clever-`, which is spoofable as a
    /// whole.
    pub identity_header_names: Vec<String>,
    /// The session store (readiness, the session count of `/_gateway/metrics`).
    pub store: Arc<dyn SessionStore>,
    /// The gateway's cookies: read from each request, removed from what goes upstream and
    /// refused in what comes back.
    pub cookies: CookieJarSpec,
    /// The same metrics the login flows and the Clever client record into.
    pub metrics: Arc<Metrics>,
    /// Every upstream, in `cfg.upstreams`' order (routing answers with a position).
    pub upstreams: Vec<Arc<UpstreamRt>>,
    /// The assertion signer, when `[assertion]` or an upstream's `assertion = true` asks.
    pub assertions: Option<Arc<Assertions>>,
    /// `server.forward_auth_secret`, read at start: only a request that carries it gets an
    /// access token from `/_gateway/auth`.
    pub forward_auth_secret: Option<Secret>,
}

/// Whether the request comes from a browser navigation rather than XHR/fetch/API.
pub fn wants_html(sec_fetch_mode: Option<&str>, accept: Option<&str>) -> bool {
    match sec_fetch_mode {
        Some(m) => m.eq_ignore_ascii_case("navigate"),
        None => accept.is_some_and(|a| a.to_ascii_lowercase().contains("text/html")),
    }
}

impl Gateway {
    /// The request logic over `auth`'s login flows and the same `store` and `metrics` they use.
    pub fn new(
        cfg: Arc<Config>,
        auth: Auth,
        store: Arc<dyn SessionStore>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut names: Vec<String> = Vec::new();
        for u in &cfg.upstreams {
            for h in &u.scrubbed {
                let c = canonical_header_name(h.as_str());
                // The `X-Clever-` prefix rule already covers these (every request header is
                // checked against this list).
                if !c.starts_with(SPOOFABLE_PREFIX) && !names.contains(&c) {
                    names.push(c);
                }
            }
        }
        let upstreams = cfg
            .upstreams
            .iter()
            .map(|u| {
                Arc::new(UpstreamRt {
                    cfg: u.clone(),
                    ca: None,
                })
            })
            .collect();
        Gateway {
            upstreams,
            cookies: CookieJarSpec::from_config(&cfg.session),
            cfg,
            store,
            metrics,
            auth,
            identity_header_names: names,
            assertions: None,
            forward_auth_secret: None,
        }
    }

    /// Each upstream's `tls_ca` (by position in `cfg.upstreams`), read at start.
    pub(crate) fn with_upstream_cas(mut self, cas: Vec<Option<UpstreamCa>>) -> Self {
        self.upstreams = self
            .upstreams
            .iter()
            .zip(cas.into_iter().chain(std::iter::repeat(None)))
            .map(|(u, ca)| {
                Arc::new(UpstreamRt {
                    cfg: u.cfg.clone(),
                    ca,
                })
            })
            .collect();
        self
    }

    /// The secret a forward-auth proxy must send for `/_gateway/auth` to include access tokens.
    pub fn with_forward_auth_secret(mut self, secret: Secret) -> Self {
        self.forward_auth_secret = Some(secret);
        self
    }

    /// Signs `X-Clever-Assertion` for the upstreams that ask, and serves the JWKS.
    pub fn with_assertions(mut self, assertions: Arc<Assertions>) -> Self {
        self.assertions = Some(assertions);
        self
    }

    /// The assertion for upstream `up` and this session, if the upstream asks for one.
    fn assertion_for(&self, up: usize, sid: &SessionId, rec: &SessionRecord) -> Option<Arc<str>> {
        let audience = self.cfg.upstreams[up].assertion.as_deref()?;
        match &self.assertions {
            Some(a) => a.token(sid, rec, audience),
            None => {
                tracing::error!("assertion: upstream asks for one but no signer was set up");
                None
            }
        }
    }

    pub async fn decide(&self, req: &RequestFacts<'_>) -> Decision {
        let ctx = Ctx {
            cookies: &req.cookies,
            wants_html: req.wants_html,
            request_id: req.request_id,
        };
        if req.path == self.auth.callback_path() {
            let sign_in = self.auth.callback(ctx, req.query);
            return Decision::Reply(sign_in.instrument(request_span(req.request_id)).await);
        }
        if let Some(endpoint) = req.path.strip_prefix(GATEWAY_PREFIX) {
            let answer = self.endpoint(ctx, req, endpoint);
            return Decision::Reply(answer.instrument(request_span(req.request_id)).await);
        }
        let norm = match routing::normalize_path(req.path) {
            Ok(n) => n,
            Err(e) => return Decision::Reply(self.refuse(ctx, Refusal::BadPath(e.to_string()))),
        };
        let placement = match routing::place(&self.cfg, req.host, &norm) {
            Ok(Some(p)) => p,
            Ok(None) => return Decision::Reply(self.refuse(ctx, Refusal::NotFound)),
            Err(e) => return Decision::Reply(self.refuse(ctx, Refusal::BadPath(e.to_string()))),
        };
        let up = placement.upstream;
        let upstream_path = self.upstream_path(up, req, &norm);
        let logout_path = is_logout_path(&self.cfg.upstreams[up], &norm);
        // A public path asks the store only when it is also a logout path the browser brings a
        // session to (that session still ends); every other path needs the session.
        let wants_session = !placement.public || (logout_path && !req.cookies.session.is_empty());
        let found = if wants_session {
            match self.auth.session(&req.cookies).await {
                Ok(f) => f,
                Err(e) => {
                    let refusal = Refusal::StoreUnavailable(e.to_string());
                    return Decision::Reply(self.refuse(ctx, refusal));
                }
            }
        } else {
            None
        };
        if placement.public {
            return Decision::Forward(Forward {
                upstream: self.upstreams[up].clone(),
                session: None,
                upstream_path,
                assertion: None,
                sign_out: found.map(|_| req.cookies.clone()),
            });
        }
        let Some((sid, rec)) = found else {
            let login = self.anonymous(ctx, req, up);
            return Decision::Reply(login.instrument(request_span(req.request_id)).await);
        };
        // The route's policy, and that of every route an app server may read the path as
        // under (`routing::place`).
        for u in std::iter::once(up).chain(placement.also.iter().copied()) {
            let upstream = &self.cfg.upstreams[u];
            if let Err(denial) = policy::check(upstream, &rec.identity) {
                return Decision::Reply(self.denied(ctx, &upstream.name, &rec, denial));
            }
        }
        // The headers the forwarded-to app requires must be buildable for this user.
        let upstream = &self.cfg.upstreams[up];
        if let Err(denial) = policy::required(upstream, &rec, &self.cfg.header_specs) {
            return Decision::Reply(self.denied(ctx, &upstream.name, &rec, denial));
        }
        Decision::Forward(Forward {
            upstream: self.upstreams[up].clone(),
            assertion: self.assertion_for(up, &sid, &rec),
            session: Some(rec),
            upstream_path,
            sign_out: logout_path.then(|| req.cookies.clone()),
        })
    }

    /// After the app answered a request to one of its `logout_paths` (whatever the status):
    /// ends the sessions the browser's cookies name, the way `/_gateway/logout` does, and
    /// returns the `Set-Cookie` values to add to the app's answer (the session cookie and every
    /// `app_cookies` expired). A store that cannot be reached is logged; the browser's cookies
    /// are expired all the same.
    /// Run it in the request's span (`request_span`).
    pub async fn app_signed_out(&self, cookies: &GatewayCookies) -> Vec<String> {
        match self.auth.end_sessions(cookies).await {
            Ok(()) => tracing::info!("logout (the app's logout path)"),
            Err(e) => tracing::error!(
                error = %e,
                "logout path: session store unavailable, the session is not ended server side \
                 (its cookie is expired)"
            ),
        }
        self.auth.sign_out_cookies().collect()
    }

    /// No valid session: browsers go to Clever; everything else gets 401 JSON.
    async fn anonymous(&self, ctx: Ctx<'_>, req: &RequestFacts<'_>, up: usize) -> Reply {
        let target = match req.query {
            Some(q) => format!("{}?{}", req.path, q),
            None => req.path.to_string(),
        };
        let path = safe_return_path(&target).unwrap_or_else(|| "/".to_string());
        if req.wants_html {
            let return_to = self.auth.return_target(req.host, &path);
            let login = self.upstreams[up].login_params();
            return self.auth.start_login(ctx, &return_to, login, false).await;
        }
        let login_url = login_url(&path);
        self.refuse(ctx, Refusal::Unauthenticated { login_url })
    }

    /// The path sent upstream when it differs from the request's raw path.
    fn upstream_path(
        &self,
        up: usize,
        req: &RequestFacts<'_>,
        norm: &NormalizedPath<'_>,
    ) -> Option<String> {
        let u = &self.cfg.upstreams[up];
        if !norm.rewritten && u.url.base_path.is_empty() && !routing::strips_prefix(u) {
            // The raw path and query go upstream as they are.
            return None;
        }
        let p = routing::upstream_path(u, req.path, norm, req.query);
        let unchanged = match req.query {
            None => p == req.path,
            Some(q) => {
                p.len() == req.path.len() + 1 + q.len() && p.starts_with(req.path) && p.ends_with(q)
            }
        };
        (!unchanged).then(|| p.into_owned())
    }

    /// Logs, counts and renders a refusal (`Refusal::answer`); a page that offers "Sign out"
    /// may lead to the sign-out's redirect.
    fn refuse(&self, ctx: Ctx<'_>, refusal: Refusal) -> Reply {
        let reply = refusal.answer(ctx.request_id, ctx.wants_html, Some(&self.metrics));
        if refusal.offers_sign_out() {
            reply.with_form_target(self.logout_origin().as_deref())
        } else {
            reply
        }
    }
}

/// Whether the normalised path is one of the upstream's `logout_paths` as any app server reads
/// it (case, `;params`, trailing dots: `routing::readings`), so the app's sign-out ends the
/// gateway session however its link spells the path; a false match only signs someone out.
pub fn is_logout_path(upstream: &crate::config::Upstream, path: &NormalizedPath<'_>) -> bool {
    !upstream.logout_paths.is_empty()
        && routing::readings::reads_as_one_of(&path.decoded, &upstream.logout_paths)
}

/// The span a request's sign-in, sign-out, `/_gateway/` endpoint and refusal lines are written
/// in: it carries the request id (at the top level of a JSON line too), so the layers below log
/// without being handed it. Not opened on the paths whose only line is the access line, which
/// names the request id itself. At ERROR level, so that it is on whenever any line is.
pub fn request_span(request_id: &str) -> tracing::Span {
    tracing::error_span!(REQUEST_SPAN, request_id = %request_id)
}

/// The name of [`request_span`].
pub const REQUEST_SPAN: &str = "request";

/// Whether the current span is a [`request_span`].
pub fn in_request_span() -> bool {
    tracing::Span::current()
        .metadata()
        .is_some_and(|m| m.name() == REQUEST_SPAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_logout_path_on_every_reading_of_the_normalised_path() {
        let cfg = crate::config::parse_str(
            "[clever]\nclient_id = \"c\"\nclient_secret_env = \"X\"\nredirect_uri = \"https://gw.example.org/cb\"\n\
             [[upstream]]\nname = \"a\"\nurl = \"http://127.0.0.1:9\"\nlogout_paths = [\"/logout/\", \"/app/logout.php\"]\n",
            "t.toml",
        )
        .unwrap();
        let up = &cfg.upstreams[0];
        let yes = |raw: &str| is_logout_path(up, &routing::normalize_path(raw).unwrap());
        assert!(yes("/logout/"));
        assert!(yes("/app/logout.php"));
        assert!(yes("/x/../logout/"));
        assert!(yes("//app//logout.php"));
        assert!(yes("/app/logout%2Ephp"));
        // As Tomcat, IIS or Express read it.
        assert!(yes("/LOGOUT/"));
        assert!(yes("/logout;jsessionid=1/"));
        assert!(yes("/logout./"));
        assert!(yes("/App/Logout.PHP"));
        assert!(yes("/app;x/logout.php"));
        assert!(!yes("/logout"));
        assert!(!yes("/logout/x"));
        assert!(!yes("/LOGOUT/x"));
        assert!(!yes("/app/logout.php/"));
        assert!(!yes("/app/logout.php.bak"));
    }

    #[test]
    fn wants_html_navigation_detection() {
        assert!(wants_html(Some("navigate"), None));
        assert!(!wants_html(Some("cors"), Some("text/html")));
        assert!(wants_html(None, Some("text/html,application/xhtml+xml")));
        assert!(!wants_html(None, Some("application/json")));
        assert!(!wants_html(None, None));
    }
}
