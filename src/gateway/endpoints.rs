//! The gateway's own endpoints under `/_gateway/`: login, logout, me, forward-auth, JWKS,
//! health, readiness, metrics, and the admin listener's answers.

use super::*;
use crate::config::Readiness;
use subtle::ConstantTimeEq;

/// The header in a forward-auth 401 that carries the login URL, for the proxy's error page.
pub const X_CLEVER_LOGIN_URL: http::HeaderName =
    http::HeaderName::from_static("x-clever-login-url");

/// The header a forward-auth proxy proves itself with (`server.forward_auth_secret_*`). Under
/// `X-Clever-`, so it is scrubbed from every request before anything is forwarded: an app
/// never sees it, whatever the proxy sends where.
pub const X_CLEVER_FORWARD_AUTH_SECRET: http::HeaderName =
    http::HeaderName::from_static("x-clever-forward-auth-secret");

/// Whether a request proves it comes from the forward-auth proxy: a secret is configured and
/// the request carries exactly it (compared in constant time). Without that proof
/// `/_gateway/auth` never answers with an access token: its answer may reach a browser (any
/// page on the gateway's origin can call it), and a script could read the token.
pub fn forward_auth_proven(expected: Option<&Secret>, presented: Option<&[u8]>) -> bool {
    match (expected, presented) {
        (Some(secret), Some(given)) => bool::from(secret.expose().as_bytes().ct_eq(given)),
        _ => false,
    }
}

/// `/_gateway/login?rd=…` for a same-site return path.
pub fn login_url(return_path: &str) -> String {
    format!(
        "/_gateway/login?rd={}",
        url::form_urlencoded::byte_serialize(return_path.as_bytes()).collect::<String>()
    )
}

/// The upstream `/_gateway/auth` answers for: `Ok(None)` without `upstream=` (default header
/// names, no policy), `Err` for an unknown, empty or repeated name or a malformed query.
pub fn forward_auth_upstream(
    cfg: &Config,
    query: Option<&str>,
) -> Result<Option<usize>, &'static str> {
    let Some(q) = query else {
        return Ok(None);
    };
    if !crate::auth::valid_percent_encoding(q) {
        return Err("The query string is malformed.");
    }
    let mut name: Option<String> = None;
    for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
        if k == "upstream" {
            if name.is_some() {
                return Err("The upstream parameter is repeated.");
            }
            name = Some(v.into_owned());
        }
    }
    match name {
        None => Ok(None),
        Some(n) => cfg
            .upstreams
            .iter()
            .position(|u| u.name == n)
            .map(Some)
            .ok_or("No upstream of that name is configured."),
    }
}

impl Gateway {
    pub(super) async fn endpoint(&self, ctx: Ctx<'_>, req: &RequestFacts<'_>, name: &str) -> Reply {
        match name {
            "login" => self.login_endpoint(ctx, req).await,
            "logout" => self.logout_endpoint(ctx, req).await,
            "auth" => self.forward_auth(ctx, req).await,
            "jwks.json" => self.jwks(),
            "me" => match self.auth.session(&req.cookies).await {
                Ok(Some((_, rec))) => {
                    let mut me = rec.identity.fields_json();
                    me.insert("expires_at".into(), unix_secs(rec.expires_at).into());
                    Reply::json(200, &serde_json::Value::Object(me))
                }
                // An API: JSON whatever the client accepts.
                Ok(None) => self.refuse(
                    Ctx {
                        wants_html: false,
                        ..ctx
                    },
                    Refusal::Unauthenticated {
                        login_url: login_url("/"),
                    },
                ),
                Err(e) => self.refuse(
                    Ctx {
                        wants_html: false,
                        ..ctx
                    },
                    Refusal::StoreUnavailable(e.to_string()),
                ),
            },
            "healthz" => self.healthz(),
            "readyz" => self.readyz().await,
            // With an admin listener, metrics stay off the public listeners.
            "metrics" if self.cfg.server.admin_listen.is_none() => self.metrics_text().await,
            _ => self.refuse(ctx, Refusal::NoGatewayPage),
        }
    }

    /// `/_gateway/jwks.json`: the public keys that verify `X-Clever-Assertion` (none when
    /// assertions are off). Cacheable for a minute: rotation keeps old keys published longer.
    fn jwks(&self) -> Reply {
        let keys = match &self.assertions {
            Some(a) => a.jwks(),
            None => serde_json::json!({ "keys": [] }),
        };
        let mut r = Reply::typed(200, "application/jwk-set+json", keys.to_string());
        r.headers.retain(|(k, _)| k != http::header::CACHE_CONTROL);
        r.with_header(
            http::header::CACHE_CONTROL,
            "public, max-age=60".to_string(),
        )
    }

    /// Liveness: the process answers.
    pub fn healthz(&self) -> Reply {
        Reply::text(200, "ok\n")
    }

    /// Readiness: the configuration is loaded (it is, once requests are served) and, with
    /// `readiness = "store"` (the default), the session store answers; 503 otherwise. With
    /// `readiness = "process"` the store is not asked: a replica stays in the load balancer's
    /// pool while Redis is away and serves its signed-in users from its cache.
    pub async fn readyz(&self) -> Reply {
        let ready = match self.cfg.session.readiness {
            Readiness::Process => true,
            Readiness::Store => self.store.ready().await,
        };
        if ready {
            Reply::text(200, "ready\n")
        } else {
            Reply::text(503, "not ready: session store unavailable\n")
        }
    }

    /// Every metric family in the Prometheus text format, with the live-session gauge read
    /// from the store just now.
    pub async fn metrics_text(&self) -> Reply {
        match self.store.session_count().await {
            Ok(n) => self.metrics.set_sessions(n),
            Err(e) => tracing::warn!(error = %e, "metrics: cannot count sessions"),
        }
        match self.metrics.render() {
            Ok(text) => Reply::typed(200, crate::process::metrics::CONTENT_TYPE, text),
            Err(e) => {
                tracing::error!(error = %e, "metrics: cannot render");
                Reply::text(500, "metrics unavailable\n")
            }
        }
    }

    /// What the admin listener answers: health, readiness and metrics (under `/_gateway/`
    /// as on the public listeners, or at the root as probes and Prometheus expect by
    /// default); 404 for everything else.
    pub async fn admin(&self, path: &str) -> Reply {
        match path.strip_prefix("/_gateway").unwrap_or(path) {
            "/healthz" => self.healthz(),
            "/readyz" => self.readyz().await,
            "/metrics" => self.metrics_text().await,
            _ => Reply::text(404, "not found\n"),
        }
    }

    /// `/_gateway/auth?upstream=NAME`: forward-auth for nginx `auth_request`, Traefik
    /// ForwardAuth and Caddy `forward_auth`. 200 with NAME's identity headers for a valid
    /// session that passes NAME's policy (no `upstream`: the default header names and no
    /// policy beyond a valid session); 401 with the login URL in `X-Clever-Login-Url`; 403
    /// when the policy refuses; 400 for an unknown or repeated `upstream`. The policy comes
    /// from `upstream` only, never from `X-Forwarded-Uri`/`-Host`; `X-Forwarded-Uri` is used
    /// only as the login's same-site return path. The access token (`forward_access_token`)
    /// is included only for a request that proves it comes from the proxy
    /// (`forward_auth_proven`); otherwise it is withheld and the answer says nothing else.
    async fn forward_auth(&self, ctx: Ctx<'_>, req: &RequestFacts<'_>) -> Reply {
        let up = match forward_auth_upstream(&self.cfg, req.query) {
            Ok(up) => up,
            Err(why) => return self.refuse(ctx, Refusal::BadForwardAuthQuery(why)),
        };
        let found = match self.auth.session(&req.cookies).await {
            Ok(f) => f,
            Err(e) => return self.refuse(ctx, Refusal::StoreUnavailable(e.to_string())),
        };
        let Some((sid, rec)) = found else {
            let rd = req
                .forwarded_uri
                .and_then(safe_return_path)
                .unwrap_or_else(|| "/".to_string());
            let login_url = login_url(&rd);
            // Traefik (and Caddy without handle_response) hand this body to the browser: a
            // page with a sign-in link for navigations, the usual JSON for everything else.
            let refusal = Refusal::Unauthenticated {
                login_url: login_url.clone(),
            };
            return self
                .refuse(ctx, refusal)
                .with_header(X_CLEVER_LOGIN_URL, login_url);
        };
        let specs = &self.cfg.header_specs;
        let (headers, assertion, token_allowed) = match up {
            None => (&self.cfg.default_headers, None, false),
            Some(up) => {
                let upstream = &self.cfg.upstreams[up];
                let allowed = policy::check(upstream, &rec.identity)
                    .and_then(|()| policy::required(upstream, &rec, specs));
                if let Err(denial) = allowed {
                    return self.denied(ctx, &upstream.name, &rec, denial);
                }
                let proven =
                    forward_auth_proven(self.forward_auth_secret.as_ref(), req.forward_auth_secret);
                if upstream.forward_access_token && !proven {
                    tracing::warn!(
                        upstream = %upstream.name,
                        secret_configured = self.forward_auth_secret.is_some(),
                        "forward-auth: access token withheld: the request did not carry \
                         server.forward_auth_secret in X-Clever-Forward-Auth-Secret"
                    );
                }
                (
                    &upstream.headers,
                    self.assertion_for(up, &sid, &rec),
                    proven,
                )
            }
        };
        let mut reply = Reply::text(200, "ok\n");
        if let Some(token) = assertion {
            reply = reply.with_header(X_CLEVER_ASSERTION, token.to_string());
        }
        for (h, value) in super::upstream_headers::session_headers(headers, &rec, specs) {
            // The access token only for a proxy that proved itself (forward_auth_secret).
            if h.value == crate::config::SendValue::Token && !token_allowed {
                continue;
            }
            if let Ok(v) = value.to_str() {
                reply = reply.with_header(h.name.clone(), v.to_string());
            }
        }
        reply
    }

    /// The 403 for a signed-in user the upstream's policy refuses; counted and logged.
    pub(super) fn denied(
        &self,
        ctx: Ctx<'_>,
        upstream: &str,
        rec: &SessionRecord,
        denial: policy::Denial,
    ) -> Reply {
        let refusal = Refusal::Denied {
            upstream: upstream.to_string(),
            user_id: rec.identity.user_id().to_string(),
            denial,
        };
        self.refuse(ctx, refusal)
    }

    /// `/_gateway/logout`: `POST` signs out, unless the browser says another site sent it
    /// (403: a page elsewhere must not sign users out); `GET` shows a page whose button sends
    /// that `POST` (to a browser; anything else is told to `POST`, 405).
    async fn logout_endpoint(&self, ctx: Ctx<'_>, req: &RequestFacts<'_>) -> Reply {
        match req.method {
            "POST" => {
                if let Some(why) = origin::cross_site(req.sec_fetch_site, req.origin, req.host) {
                    return self.refuse(ctx, Refusal::CrossSiteSignOut(why));
                }
                self.auth.logout(ctx).await
            }
            "GET" | "HEAD" if req.wants_html => {
                crate::gateway::pages::sign_out_page(req.request_id)
                    .with_form_target(self.logout_origin().as_deref())
            }
            // JSON whatever the client accepts: only a script sends other methods.
            _ => self.refuse(
                Ctx {
                    wants_html: false,
                    ..ctx
                },
                Refusal::SignOutMethod,
            ),
        }
    }

    /// The origin of `session.logout_redirect` when it is on another site: the sign-out forms
    /// must be allowed to lead there.
    pub(super) fn logout_origin(&self) -> Option<String> {
        let url = url::Url::parse(&self.cfg.session.logout_redirect).ok()?;
        Some(url.origin().ascii_serialization()).filter(|o| o != "null")
    }

    /// `/_gateway/login?rd=/path`: an explicit login returning to a same-site path.
    async fn login_endpoint(&self, ctx: Ctx<'_>, req: &RequestFacts<'_>) -> Reply {
        let mut rd: Option<String> = None;
        if let Some(q) = req.query {
            if !crate::auth::valid_percent_encoding(q) {
                return self.refuse(ctx, Refusal::BadLoginLink);
            }
            for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
                if k == "rd" {
                    if rd.is_some() {
                        return self.refuse(ctx, Refusal::RepeatedRd);
                    }
                    rd = Some(v.into_owned());
                }
            }
        }
        let return_to = match rd {
            None => "/".to_string(),
            Some(rd) => match safe_return_path(&rd) {
                Some(p) => p,
                None => return self.refuse(ctx, Refusal::BadReturnPath),
            },
        };
        let return_to = self.auth.return_target(req.host, &return_to);
        let login = self.auth.login_params_for(&return_to);
        self.auth.start_login(ctx, &return_to, login, false).await
    }
}

#[cfg(test)]
mod endpoint_tests {
    //! Health, readiness and metrics answers, and policy denials counted, over a parsed config
    //! and a memory store (no call to Clever is made).
    use super::*;
    use crate::clever::CleverClient;
    use crate::identity::{Identity, UserType};
    use crate::process::metrics::parse_text;
    use crate::secret::Secret;
    use crate::session::memory::MemoryLimits;
    use crate::session::{
        CodeClaim, ManualClock, MemoryStore, SessionId, SessionStore, StoreError, SystemClock,
    };
    use async_trait::async_trait;
    use std::time::Duration;

    /// A memory store that can be told to be unreachable (readiness, session count).
    #[derive(Debug)]
    struct Flaky {
        inner: MemoryStore,
        up: bool,
    }

    #[async_trait]
    impl SessionStore for Flaky {
        async fn get(&self, id: &SessionId) -> Result<Option<Arc<SessionRecord>>, StoreError> {
            self.inner.get(id).await
        }
        async fn insert(&self, id: &SessionId, r: SessionRecord) -> Result<(), StoreError> {
            self.inner.insert(id, r).await
        }
        async fn remove(&self, id: &SessionId) -> Result<(), StoreError> {
            self.inner.remove(id).await
        }
        async fn claim_code(&self, k: &str, c: CodeClaim) -> Result<Option<CodeClaim>, StoreError> {
            self.inner.claim_code(k, c).await
        }
        async fn code(&self, k: &str) -> Result<Option<CodeClaim>, StoreError> {
            self.inner.code(k).await
        }
        async fn complete_code(&self, k: &str, c: CodeClaim) -> Result<(), StoreError> {
            self.inner.complete_code(k, c).await
        }
        async fn ready(&self) -> bool {
            self.up
        }
        async fn session_count(&self) -> Result<u64, StoreError> {
            if self.up {
                self.inner.session_count().await
            } else {
                Err(StoreError::Unavailable("down".into()))
            }
        }
    }

    const CONFIG: &str = r#"
[clever]
client_id = "c"
client_secret_env = "X"
redirect_uri = "https://gw.example.org/oauth/clever/callback"
[[upstream]]
name = "app"
url = "http://127.0.0.1:9"
[[upstream]]
name = "staff"
url = "http://127.0.0.1:9"
path_prefix = "/staff"
allow_user_types = ["teacher"]
[[upstream]]
name = "legacy"
url = "http://127.0.0.1:9"
path_prefix = "/legacy"
[upstream.headers]
user_id = "X-Remote-User"
"#;

    fn gateway(server: &str, up: bool) -> (Gateway, Arc<Flaky>) {
        gateway_from(&format!("[server]\n{server}\n{CONFIG}"), up)
    }

    fn gateway_from(toml: &str, up: bool) -> (Gateway, Arc<Flaky>) {
        let cfg = Arc::new(crate::config::parse_str(toml, "t.toml").unwrap());
        let store = Arc::new(Flaky {
            inner: MemoryStore::new(
                Duration::from_secs(3600),
                Arc::new(ManualClock::new()),
                MemoryLimits::default(),
            ),
            up,
        });
        let metrics = Arc::new(Metrics::new().unwrap());
        let clever =
            CleverClient::new(cfg.clever.clone(), Secret::new("s"), metrics.clone()).unwrap();
        let auth = Auth::new(
            cfg.clone(),
            store.clone(),
            clever,
            Arc::new(SystemClock),
            metrics.clone(),
        );
        (Gateway::new(cfg, auth, store.clone(), metrics), store)
    }

    fn facts<'a>(path: &'a str, cookies: GatewayCookies) -> RequestFacts<'a> {
        RequestFacts {
            method: "GET",
            host: Some(Host::parse("gw.example.org")),
            path,
            query: None,
            cookies,
            wants_html: false,
            request_id: "t",
            forwarded_uri: None,
            forward_auth_secret: None,
            sec_fetch_site: None,
            origin: None,
        }
    }

    async fn reply(gw: &Gateway, path: &str) -> Reply {
        match gw.decide(&facts(path, GatewayCookies::default())).await {
            Decision::Reply(r) => r,
            Decision::Forward(_) => panic!("{path} was forwarded"),
        }
    }

    fn body(r: &Reply) -> &str {
        std::str::from_utf8(&r.body).unwrap()
    }

    #[tokio::test]
    async fn readyz_store_up_200_down_503() {
        let (gw, _) = gateway("", true);
        let r = reply(&gw, "/_gateway/readyz").await;
        assert_eq!((r.status, body(&r)), (200, "ready\n"));
        let (gw, _) = gateway("", false);
        let r = reply(&gw, "/_gateway/readyz").await;
        assert_eq!(r.status, 503);
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        let r = reply(&gw, "/_gateway/healthz").await;
        assert_eq!(
            (r.status, body(&r)),
            (200, "ok\n"),
            "alive though not ready"
        );
    }

    #[tokio::test]
    async fn readyz_process_mode_200_while_store_down() {
        let cfg = format!("[server]\n{CONFIG}\n[session]\nreadiness = \"process\"\n");
        let (gw, _) = gateway_from(&cfg, false);
        let r = reply(&gw, "/_gateway/readyz").await;
        assert_eq!((r.status, body(&r)), (200, "ready\n"));
        assert_eq!(gw.admin("/readyz").await.status, 200);
        // The store is still down for what needs it.
        let r = reply(&gw, "/_gateway/metrics").await;
        assert_eq!(r.status, 200);
    }

    #[tokio::test]
    async fn metrics_public_without_admin_listen() {
        let (gw, _) = gateway("", true);
        let r = reply(&gw, "/_gateway/metrics").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));
        assert!(
            body(&r).contains("clever_gateway_sessions 0"),
            "{}",
            body(&r)
        );
    }

    #[tokio::test]
    async fn metrics_store_down_still_renders() {
        let (gw, _) = gateway("", false);
        let r = reply(&gw, "/_gateway/metrics").await;
        assert_eq!(r.status, 200);
        assert!(body(&r).contains("clever_gateway_logins_total"));
    }

    #[tokio::test]
    async fn metrics_with_admin_listen_404_on_public_listener() {
        let (gw, _) = gateway(r#"admin_listen = "127.0.0.1:9091""#, true);
        assert_eq!(reply(&gw, "/_gateway/metrics").await.status, 404);
        assert_eq!(reply(&gw, "/_gateway/healthz").await.status, 200);
        assert_eq!(reply(&gw, "/_gateway/readyz").await.status, 200);
    }

    #[tokio::test]
    async fn admin_serves_three_paths_and_404_elsewhere() {
        let (gw, _) = gateway(r#"admin_listen = "127.0.0.1:9091""#, true);
        for p in [
            "/_gateway/healthz",
            "/healthz",
            "/_gateway/readyz",
            "/readyz",
        ] {
            assert_eq!(gw.admin(p).await.status, 200, "{p}");
        }
        for p in ["/_gateway/metrics", "/metrics"] {
            let r = gw.admin(p).await;
            assert_eq!(r.status, 200, "{p}");
            assert!(body(&r).contains("# TYPE clever_gateway_logins_total counter"));
        }
        for p in [
            "/",
            "/_gateway/me",
            "/_gateway/login",
            "/_gatewaymetrics",
            "/metrics/",
            "/oauth/clever/callback",
        ] {
            assert_eq!(gw.admin(p).await.status, 404, "{p}");
        }
    }

    #[tokio::test]
    async fn policy_denial_counted_by_upstream_and_reason_and_sessions_gauge() {
        let (gw, store) = gateway("", true);
        let cookies = student_cookies(&store).await;
        match gw.decide(&facts("/staff/x", cookies)).await {
            Decision::Reply(r) => assert_eq!(r.status, 403),
            Decision::Forward(_) => panic!("student forwarded to staff"),
        }
        let text = body(&reply(&gw, "/_gateway/metrics").await).to_string();
        let samples = parse_text(&text);
        let denial = samples
            .iter()
            .find(|s| s.name == crate::process::metrics::names::DENIALS)
            .expect("denial counted");
        assert_eq!(
            denial.labels,
            vec![
                ("reason".to_string(), "user_type_not_allowed".to_string()),
                ("upstream".to_string(), "staff".to_string())
            ]
        );
        assert_eq!(denial.value, 1.0);
        assert!(text.contains("clever_gateway_sessions 1"), "{text}");
        assert!(
            !text.contains("5fc43758db087d0be186c29d"),
            "no user id in labels"
        );
    }

    /// A signed-in student's cookies, with their session in `store`.
    async fn student_cookies(store: &Flaky) -> GatewayCookies {
        let id = SessionId::generate();
        let student = Identity::builder("5fc43758db087d0be186c29d")
            .district("5d0a9e5d0958b300014e49d2")
            .role(UserType::Student)
            .build();
        let rec = SessionRecord::new(
            student,
            Secret::new("t"),
            std::time::SystemTime::now(),
            Duration::from_secs(60),
        );
        store.insert(&id, rec).await.unwrap();
        GatewayCookies {
            session: vec![id.expose().to_string()],
            ..Default::default()
        }
    }

    async fn auth(
        gw: &Gateway,
        query: Option<&str>,
        cookies: GatewayCookies,
        forwarded_uri: Option<&str>,
    ) -> Reply {
        let mut f = facts("/_gateway/auth", cookies);
        f.query = query;
        f.forwarded_uri = forwarded_uri;
        f.wants_html = true;
        match gw.decide(&f).await {
            Decision::Reply(r) => r,
            Decision::Forward(_) => panic!("forward-auth was forwarded"),
        }
    }

    #[tokio::test]
    async fn forward_auth_no_session_401_with_login_url_from_forwarded_uri() {
        let (gw, _) = gateway("", true);
        let r = auth(
            &gw,
            Some("upstream=app"),
            GatewayCookies::default(),
            Some("/grades?term=2"),
        )
        .await;
        assert_eq!(
            r.status, 401,
            "a browser navigation still gets 401, never 302"
        );
        let want = "/_gateway/login?rd=%2Fgrades%3Fterm%3D2";
        assert_eq!(r.header("x-clever-login-url"), Some(want));
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Clever realm="clever-gateway""#)
        );
        assert!(
            body(&r).contains(&format!("href=\"{want}\"")),
            "a page with a sign-in link: {}",
            body(&r)
        );
    }

    #[tokio::test]
    async fn forward_auth_no_session_json_for_non_browsers() {
        let (gw, _) = gateway("", true);
        let mut f = facts("/_gateway/auth", GatewayCookies::default());
        f.forwarded_uri = Some("/x");
        let Decision::Reply(r) = gw.decide(&f).await else {
            panic!("forwarded")
        };
        assert_eq!(r.status, 401);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["login_url"], "/_gateway/login?rd=%2Fx");
        assert_eq!(
            r.header("x-clever-login-url"),
            Some("/_gateway/login?rd=%2Fx")
        );
    }

    #[tokio::test]
    async fn forward_auth_foreign_forwarded_uri_returns_to_root() {
        let (gw, _) = gateway("", true);
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/%2F%2Fevil.example",
        ] {
            let r = auth(&gw, None, GatewayCookies::default(), Some(bad)).await;
            assert_eq!(r.status, 401);
            assert_eq!(
                r.header("x-clever-login-url"),
                Some("/_gateway/login?rd=%2F"),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn forward_auth_without_upstream_default_names_no_policy() {
        let (gw, store) = gateway("", true);
        let r = auth(&gw, None, student_cookies(&store).await, None).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-clever-user-id"),
            Some("5fc43758db087d0be186c29d")
        );
        assert_eq!(r.header("x-clever-user-type"), Some("student"));
        assert_eq!(
            r.header("x-clever-district-id"),
            Some("5d0a9e5d0958b300014e49d2")
        );
        assert_eq!(r.header("x-clever-access-token"), None);
    }

    #[tokio::test]
    async fn forward_auth_upstream_header_names_used() {
        let (gw, store) = gateway("", true);
        let r = auth(
            &gw,
            Some("upstream=legacy"),
            student_cookies(&store).await,
            None,
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-remote-user"), Some("5fc43758db087d0be186c29d"));
        assert_eq!(r.header("x-clever-user-id"), None);
    }

    #[tokio::test]
    async fn forward_auth_policy_refuses_403_counted() {
        let (gw, store) = gateway("", true);
        let r = auth(
            &gw,
            Some("upstream=staff"),
            student_cookies(&store).await,
            None,
        )
        .await;
        assert_eq!(r.status, 403);
        assert_eq!(r.header("x-clever-user-id"), None);
        let text = body(&reply(&gw, "/_gateway/metrics").await).to_string();
        let denied = parse_text(&text)
            .into_iter()
            .find(|s| s.name == crate::process::metrics::names::DENIALS)
            .expect("denial counted");
        assert_eq!(denied.value, 1.0);
        assert!(denied
            .labels
            .contains(&("upstream".to_string(), "staff".to_string())));
    }

    #[tokio::test]
    async fn forward_auth_forwarded_uri_never_chooses_policy() {
        let (gw, store) = gateway("", true);
        let cookies = student_cookies(&store).await;
        // The student is refused on `staff` whatever the proxy says the URI was...
        let r = auth(
            &gw,
            Some("upstream=staff"),
            cookies.clone(),
            Some("/public"),
        )
        .await;
        assert_eq!(r.status, 403);
        // ...and `app` answers for `app`, not for the `/staff/...` the header names.
        let r = auth(&gw, Some("upstream=app"), cookies, Some("/staff/x")).await;
        assert_eq!(r.status, 200);
    }

    #[tokio::test]
    async fn forward_auth_unknown_repeated_or_bad_upstream_400() {
        let (gw, store) = gateway("", true);
        let cookies = student_cookies(&store).await;
        for q in [
            "upstream=nope",
            "upstream=app&upstream=staff",
            "upstream=",
            "upstream=%zz",
        ] {
            let r = auth(&gw, Some(q), cookies.clone(), None).await;
            assert_eq!(r.status, 400, "{q}");
            assert_eq!(r.header("x-clever-user-id"), None, "{q}");
        }
        // An unknown name is refused even without a session (no oracle for names needed).
        let r = auth(&gw, Some("upstream=nope"), GatewayCookies::default(), None).await;
        assert_eq!(r.status, 400);
    }

    #[tokio::test]
    async fn jwks_without_assertions_empty_set_one_cache_control() {
        let (gw, _) = gateway("", true);
        let r = reply(&gw, "/_gateway/jwks.json").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/jwk-set+json"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v, serde_json::json!({ "keys": [] }));
        let cc: Vec<_> = r
            .headers
            .iter()
            .filter(|(k, _)| k == http::header::CACHE_CONTROL)
            .collect();
        assert_eq!(cc.len(), 1, "{cc:?}");
    }
}
