//! The pingora glue: the `ProxyHttp` implementation. It gathers request facts, calls the
//! plain decision code in `gateway`, and writes replies or forwards with rewritten headers.
//! The only module that sees pingora's `Session`.

pub(crate) mod admin;
pub(crate) mod header_guard;
pub(crate) mod response;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{ACCEPT, COOKIE, HOST, SET_COOKIE};
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::{HttpPeer, PeerOptions};
use pingora::{ErrorSource, ErrorType};
use tracing::Instrument;

use crate::config::ServerConfig;
use crate::gateway::host::Host;
use crate::gateway::https;
use crate::gateway::pages::Reply;
use crate::gateway::refusal::Refusal;
use crate::gateway::upstream_headers::{self as headers, Edits, ForwardFacts};
use crate::gateway::{
    refuse_request, request_span, wants_html, Decision, Forward, Gateway, RequestFacts,
};
use crate::process::tls::UpstreamCa;

/// How long to wait for an upstream to accept a connection (for its answer: its `timeout`).
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an upgraded connection (WebSocket) may stay silent in both directions: apps often
/// send nothing for minutes, and many ping only every few minutes.
const UPGRADED_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Per-request state shared across the phases.
#[derive(Debug, Default)]
pub struct RequestCtx {
    request_id: RequestId,
    started: Option<Instant>,
    /// When the request was handed to the upstream (before peer selection and connect).
    upstream_started: Option<Instant>,
    /// From `upstream_started` to the upstream's response headers.
    upstream_took: Option<Duration>,
    forward: Option<Forward>,
    wants_html: bool,
    /// Counts this request until the context is dropped (graceful shutdown waits for it).
    _in_flight: crate::process::lifecycle::InFlight,
}

/// The gateway as a pingora proxy service.
pub struct GatewayProxy {
    pub gateway: Arc<Gateway>,
}

/// A request id: 96 random bits, base64url (16 characters). It names a request in logs and is
/// no secret, so it comes from the thread's CSPRNG (seeded from the OS) rather than a
/// `getrandom` system call per request. Kept as the header value it is sent as (upstream and
/// in the response): each of those is a reference count, not a copy.
#[derive(Clone)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// A fresh id.
    pub fn new() -> Self {
        use base64::Engine;
        use rand::RngCore;
        let mut bytes = [0u8; 12];
        rand::rng().fill_bytes(&mut bytes);
        let mut text = [0u8; 16];
        let ok = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode_slice(bytes, &mut text)
            .is_ok();
        // One allocation holds the text and its reference count (`Bytes::from_owner`).
        match HeaderValue::from_maybe_shared(Bytes::from_owner(text)) {
            Ok(v) if ok => RequestId(v),
            _ => RequestId::default(),
        }
    }

    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }

    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId(HeaderValue::from_static(""))
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A fresh request id (see `RequestId`).
pub fn request_id() -> RequestId {
    RequestId::new()
}

fn sec_fetch_mode(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get("sec-fetch-mode")
        .and_then(|v| v.to_str().ok())
}

/// The host the request was sent to.
fn request_host(req: &RequestHeader) -> Option<Host<'_>> {
    Host::of_request(
        req.uri.authority().map(|a| a.as_str()),
        req.headers.get(HOST).and_then(|v| v.to_str().ok()),
    )
}

/// Certificate checks for an `https://` upstream: both on unless `tls_verify = false`, against
/// its `tls_ca` when set (else the system roots).
fn upstream_tls(options: &mut PeerOptions, verify: bool, ca: Option<&UpstreamCa>) {
    options.verify_cert = verify;
    options.verify_hostname = verify;
    options.ca = ca.map(|c| c.0.clone());
}

/// `redirect_to_https`: the answer for a request that came in on a plain `listen` socket
/// (`None`: carry on). A connection whose local address is unknown counts as plain.
fn plain_http_redirect(
    server: &ServerConfig,
    session: &Session,
    wants_html: bool,
    request_id: &str,
) -> Option<Reply> {
    let https_port = server.tls_listen.first()?.port();
    if !server.redirect_to_https || is_tls(session) {
        return None;
    }
    let local = session.server_addr().and_then(|a| a.as_inet());
    if local.is_some_and(|a| !https::on_listener(*a, &server.listen)) {
        return None;
    }
    let req = session.req_header();
    let target = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
    https::https_redirect(
        request_host(req),
        req.uri.path(),
        target,
        https_port,
        wants_html,
        request_id,
    )
}

fn is_tls(session: &Session) -> bool {
    session
        .digest()
        .and_then(|d| d.ssl_digest.as_ref())
        .is_some()
}

/// Applies header edits to the upstream request. A name that is also set needs no removal
/// (inserting replaces every value), and the gateway's own names go out in their usual case
/// from static strings, which spares pingora a copy of the name per insert.
pub fn apply(req: &mut RequestHeader, edits: Edits) -> pingora::Result<()> {
    for name in &edits.remove {
        if !edits.set.iter().any(|(n, _)| n == name) {
            req.remove_header(name);
        }
    }
    for (name, value) in edits.set {
        match headers::wire_name(&name) {
            Some(cased) => req.insert_header(cased, value)?,
            None => req.insert_header(name, value)?,
        }
    }
    Ok(())
}

/// Removes from an upstream's response every `Set-Cookie` that would set one of the gateway's
/// cookies (`CookieJarSpec::sets_reserved`): an app, or a header injection in one, must not
/// sign a browser in or out, or plant a login cookie (login CSRF). Returns how many went.
pub fn drop_reserved_set_cookies(
    resp: &mut ResponseHeader,
    jar: &crate::session::cookies::CookieJarSpec,
) -> pingora::Result<usize> {
    let all = resp.headers.get_all(SET_COOKIE);
    if !all.iter().any(|v| jar.sets_reserved(v.as_bytes())) {
        return Ok(0);
    }
    let kept: Vec<HeaderValue> = all
        .iter()
        .filter(|v| !jar.sets_reserved(v.as_bytes()))
        .cloned()
        .collect();
    let dropped = all.iter().count() - kept.len();
    resp.remove_header(&SET_COOKIE);
    for v in kept {
        resp.append_header(SET_COOKIE, v)?;
    }
    Ok(dropped)
}

/// Applies `upstream_cookie`'s answer to the upstream request.
pub fn apply_cookie(
    req: &mut RequestHeader,
    cookie: headers::UpstreamCookie,
) -> pingora::Result<()> {
    match cookie {
        headers::UpstreamCookie::Keep => {}
        headers::UpstreamCookie::Remove => {
            req.remove_header(&COOKIE);
        }
        // Inserting replaces every `Cookie` header.
        headers::UpstreamCookie::Set(v) => req.insert_header(COOKIE, v)?,
    }
    Ok(())
}

impl GatewayProxy {
    /// Counts one finished request and, for a forwarded one that got response headers, the
    /// upstream's latency. Label values: configured upstream names and fixed classes only.
    fn record_metrics(&self, session: &Session, ctx: &RequestCtx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let metrics = &self.gateway.metrics;
        match &ctx.forward {
            Some(f) => {
                let name = &f.upstream.cfg.name;
                metrics.request(name, status);
                if let Some(took) = ctx.upstream_took {
                    metrics.upstream_latency(name, took);
                }
            }
            None => metrics.request(crate::process::metrics::GATEWAY_UPSTREAM, status),
        }
    }
}

/// Whether the connection may carry another request after one of the gateway's own replies:
/// the request had no body (nothing unread is left behind it: a body means `Content-Length`
/// other than `0`, or `Transfer-Encoding`) and asked for no protocol upgrade. Pingora still
/// closes it when the client or a drain (`early_request_filter`) says so.
pub fn reply_keeps_connection(req: &RequestHeader) -> bool {
    use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING, UPGRADE};
    let no_body = !req.headers.contains_key(TRANSFER_ENCODING)
        && req
            .headers
            .get_all(CONTENT_LENGTH)
            .iter()
            .all(|v| v.as_bytes() == b"0");
    no_body && !req.headers.contains_key(UPGRADE)
}

/// Writes a gateway reply (the response is complete once this returns). `keep_alive`: the
/// connection may serve another request (see `reply_keeps_connection`); otherwise it closes.
async fn write_reply(
    session: &mut Session,
    reply: Reply,
    request_id: &str,
    keep_alive: bool,
) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(reply.status, Some(reply.headers.len() + 2))?;
    for (k, v) in reply.headers {
        resp.append_header(k, v)?;
    }
    resp.insert_header("x-request-id", request_id)?;
    resp.insert_header(http::header::CONTENT_LENGTH, reply.body.len().to_string())?;
    let head = session.req_header().method == http::Method::HEAD;
    if !keep_alive {
        // The request body, if any, stays unread (or the request was refused): close.
        session.set_keepalive(None);
    }
    if head || reply.body.is_empty() {
        session.write_response_header(Box::new(resp), true).await?;
    } else {
        session.write_response_header(Box::new(resp), false).await?;
        session.write_response_body(Some(reply.body), true).await?;
    }
    Ok(())
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            request_id: request_id(),
            started: Some(Instant::now()),
            ..Default::default()
        }
    }

    /// While the process hands its sockets to a new one (reload), answers with
    /// `Connection: close` so keep-alive clients reconnect, to whichever process accepts.
    async fn early_request_filter(
        &self,
        session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if crate::process::lifecycle::draining() {
            session.set_keepalive(None);
        }
        Ok(())
    }

    /// Scrubs spoofable identity headers first, then decides: answer it ourselves (login,
    /// gateway endpoints, 401/403/404/400) or forward it.
    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        let gw = &self.gateway;
        let req = session.req_header_mut();
        // The forward-auth proxy's proof, kept before every `X-Clever-` header is scrubbed.
        let forward_auth_secret = req
            .headers
            .get(crate::gateway::X_CLEVER_FORWARD_AUTH_SECRET)
            .cloned();
        for name in headers::spoofable(&req.headers, &gw.identity_header_names) {
            req.remove_header(&name);
        }
        let raw_head = session.as_http1().map(|h1| h1.get_headers_raw_bytes());
        let req = session.req_header();
        if let Some(refusal) = refuse_request(req.raw_path(), &req.headers, raw_head.as_deref()) {
            let reply = refusal.answer(&ctx.request_id, false, Some(&gw.metrics));
            write_reply(session, reply, &ctx.request_id, false).await?;
            // The response is already written.
            return Ok(true);
        }
        ctx.wants_html = wants_html(
            sec_fetch_mode(req),
            req.headers.get(ACCEPT).and_then(|v| v.to_str().ok()),
        );
        if let Some(reply) =
            plain_http_redirect(&gw.cfg.server, session, ctx.wants_html, &ctx.request_id)
        {
            let keep_alive = reply_keeps_connection(session.req_header());
            write_reply(session, reply, &ctx.request_id, keep_alive).await?;
            // The response is already written.
            return Ok(true);
        }
        let req = session.req_header();
        let cookies = gw
            .cookies
            .read(req.headers.get_all(COOKIE).iter().map(|v| v.as_bytes()));
        let facts = RequestFacts {
            method: req.method.as_str(),
            host: request_host(req),
            path: req.uri.path(),
            query: req.uri.query(),
            cookies,
            wants_html: ctx.wants_html,
            request_id: &ctx.request_id,
            forwarded_uri: req
                .headers
                .get(headers::X_FORWARDED_URI)
                .and_then(|v| v.to_str().ok()),
            forward_auth_secret: forward_auth_secret.as_ref().map(|v| v.as_bytes()),
            sec_fetch_site: req
                .headers
                .get("sec-fetch-site")
                .and_then(|v| v.to_str().ok()),
            origin: req
                .headers
                .get(http::header::ORIGIN)
                .and_then(|v| v.to_str().ok()),
        };
        match gw.decide(&facts).await {
            Decision::Reply(reply) => {
                let keep_alive = reply_keeps_connection(session.req_header());
                write_reply(session, reply, &ctx.request_id, keep_alive).await?;
                // The response is already written.
                Ok(true)
            }
            Decision::Forward(f) => {
                ctx.forward = Some(f);
                Ok(false)
            }
        }
    }

    /// The upstream chosen by `request_filter`, at the address resolved at config time.
    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let Some(f) = &ctx.forward else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no upstream chosen",
            ));
        };
        let up = &f.upstream.cfg;
        let u = &up.url;
        let mut peer = HttpPeer::new(u.addr, u.tls, u.host.clone());
        if u.tls {
            upstream_tls(&mut peer.options, up.tls_verify, f.upstream.ca.as_ref());
        }
        peer.options.connection_timeout = Some(UPSTREAM_CONNECT_TIMEOUT);
        peer.options.total_connection_timeout = Some(UPSTREAM_CONNECT_TIMEOUT * 2);
        if session.is_upgrade_req() {
            // Both directions: pingora reads the client with its own 60 s default too.
            peer.options.read_timeout = Some(UPGRADED_IDLE_TIMEOUT);
            session.set_read_timeout(Some(UPGRADED_IDLE_TIMEOUT));
        } else {
            peer.options.read_timeout = Some(up.timeout);
        }
        Ok(Box::new(peer))
    }

    /// Rewrites what goes upstream: scrub again, strip the gateway's cookies, set
    /// `X-Forwarded-*`/`X-Request-Id`, add the session's headers (identity and `set_headers`),
    /// rewrite the path.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let gw = &self.gateway;
        let Some(f) = &ctx.forward else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no upstream chosen",
            ));
        };
        let upstream = &f.upstream.cfg;
        for name in headers::spoofable(&upstream_request.headers, &gw.identity_header_names) {
            upstream_request.remove_header(&name);
        }
        apply_cookie(
            upstream_request,
            headers::upstream_cookie(&upstream_request.headers, &gw.cookies),
        )?;
        let tls = is_tls(session);
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let fwd = headers::forwarding(
            &upstream_request.headers,
            ForwardFacts {
                client_ip,
                tls,
                host: request_host(upstream_request).map(|h| h.as_str()),
                request_id: ctx.request_id.header_value(),
            },
            &gw.cfg.server.trusted_proxies,
        );
        apply(upstream_request, fwd)?;
        if let Some(rec) = &f.session {
            let sent = headers::session_headers(&upstream.headers, rec, &gw.cfg.header_specs);
            for (h, value) in sent {
                // Inserting replaces any value (the scrub above removed the client's anyway).
                upstream_request.insert_header(h.wire.clone(), value)?;
            }
        }
        if let Some(token) = &f.assertion {
            upstream_request
                .insert_header(crate::auth::assertion::X_CLEVER_ASSERTION, token.as_ref())?;
        }
        if let Some(p) = &f.upstream_path {
            let uri: http::Uri = p
                .parse()
                .map_err(|_| Error::explain(ErrorType::InternalError, "bad upstream path"))?;
            upstream_request.set_uri(uri);
        }
        Ok(())
    }

    /// Starts the upstream latency clock: the last phase before pingora picks the peer and
    /// connects, so connect time (and a TLS handshake) counts as upstream latency.
    async fn proxy_upstream_filter(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        ctx.upstream_started = Some(Instant::now());
        // Proceed to the upstream (pingora's default answer).
        Ok(true)
    }

    /// Stops the upstream latency clock when the upstream's response headers arrive; refuses
    /// an unrequested `101` (the client gets the 502 page), removes the framing headers of a
    /// response that has no body (`response`), and drops any `Set-Cookie` of the gateway's own
    /// cookies (one log line).
    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if ctx.upstream_took.is_none() {
            ctx.upstream_took = ctx.upstream_started.map(|s| s.elapsed());
        }
        let upstream = |ctx: &RequestCtx| {
            ctx.forward
                .as_ref()
                .map(|f| f.upstream.cfg.name.clone())
                .unwrap_or_else(|| "-".to_string())
        };
        let status = upstream_response.status.as_u16();
        if let Some(why) = response::refusal(status, session.is_upgrade_req()) {
            let upstream = upstream(ctx);
            tracing::warn!(request_id = %ctx.request_id, upstream, status, why, "upstream response refused");
            return Err(Error::explain(ErrorType::InvalidHTTPHeader, why).into_up());
        }
        if response::has_no_body(status) {
            upstream_response.remove_header(&http::header::CONTENT_LENGTH);
            upstream_response.remove_header(&http::header::TRANSFER_ENCODING);
        }
        let dropped = drop_reserved_set_cookies(upstream_response, &self.gateway.cookies)?;
        if dropped > 0 {
            let upstream = upstream(ctx);
            tracing::warn!(
                request_id = %ctx.request_id,
                upstream,
                dropped,
                "the app tried to set the gateway's own cookies: Set-Cookie removed"
            );
        }
        Ok(())
    }

    /// Adds the request id to every response, for support conversations. After the app
    /// answered one of its `logout_paths`, ends the gateway session and expires its cookies
    /// (and the `app_cookies`) in that answer.
    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        upstream_response.insert_header("X-Request-Id", ctx.request_id.header_value().clone())?;
        if let Some(cookies) = ctx.forward.as_mut().and_then(|f| f.sign_out.take()) {
            for set in self
                .gateway
                .app_signed_out(&cookies)
                .instrument(request_span(&ctx.request_id))
                .await
            {
                upstream_response.append_header(SET_COOKIE, set)?;
            }
        }
        Ok(())
    }

    /// The gateway's own error page instead of pingora's: 502 when the upstream fails,
    /// 504 when it times out, 400 for a broken request.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(c) => *c,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                if matches!(e.esource(), ErrorSource::Upstream) {
                    504
                } else {
                    408
                }
            }
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        let upstream = ctx
            .forward
            .as_ref()
            .map(|f| f.upstream.cfg.name.as_str())
            .unwrap_or("-");
        tracing::warn!(request_id = %ctx.request_id, upstream, status = code, error = e.etype().as_str(), "request failed");
        if code > 0 && session.response_written().is_none() {
            // Logged above, with the pingora error: rendered only.
            let mut reply = Refusal::Upstream(code).reply(&ctx.request_id, ctx.wants_html);
            // A logout path the app did not answer still signs the browser out.
            if let Some(cookies) = ctx.forward.as_mut().and_then(|f| f.sign_out.take()) {
                for set in self
                    .gateway
                    .app_signed_out(&cookies)
                    .instrument(request_span(&ctx.request_id))
                    .await
                {
                    reply = reply.with_cookie(set);
                }
            }
            if let Err(err) = write_reply(session, reply, &ctx.request_id, false).await {
                tracing::debug!(error = %err, "could not write error page");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// What pingora puts in its own error logs: method, path and host only, never the query
    /// (a callback's query holds the sign-in code).
    fn request_summary(&self, session: &Session, ctx: &RequestCtx) -> String {
        let req = session.req_header();
        format!(
            "{} {}, request_id: {}",
            req.method,
            req.uri.path(),
            ctx.request_id
        )
    }

    /// One access-log line per request; never a query string, cookie or token. Then the
    /// connection's next request header is bounded again (`header_guard`); a connection whose
    /// request body was not read to its end is closed rather than drained unguarded.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        if session.as_http1().is_some() {
            if session.is_body_done() {
                if let Some(h1) = session.as_http1() {
                    header_guard::request_done(h1.stream());
                }
            } else {
                session.set_keepalive(None);
            }
        }
        self.record_metrics(session, ctx);
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let req = session.req_header();
        let upstream = ctx
            .forward
            .as_ref()
            .map(|f| f.upstream.cfg.name.as_str())
            .unwrap_or("-");
        let user_id = ctx
            .forward
            .as_ref()
            .and_then(|f| f.session.as_ref())
            .map(|s| s.identity.user_id())
            .unwrap_or("-");
        let ms = ctx
            .started
            .map(|s| crate::process::logfmt::millis(s.elapsed()))
            .unwrap_or(0.0);
        tracing::info!(
            // crate::process::logfmt::ACCESS_TARGET: the human format writes this line itself.
            target: "access",
            request_id = %ctx.request_id,
            upstream,
            method = %req.method,
            path = %req.uri.path(),
            status,
            duration_ms = ms,
            user_id,
            error = e.map(|e| e.etype().as_str()),
            "request"
        );
    }
}

/// Bytes alias kept for callers building replies.
pub type Body = Bytes;

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/app", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn reply_keeps_connection_only_without_body_or_upgrade() {
        assert!(reply_keeps_connection(&req(&[("Host", "x")])));
        assert!(reply_keeps_connection(&req(&[("Content-Length", "0")])));
        for refused in [
            vec![("Content-Length", "5")],
            vec![("Content-Length", "0"), ("Content-Length", "1")],
            vec![("Transfer-Encoding", "chunked")],
            vec![("Content-Length", "00")],
            vec![("Upgrade", "websocket"), ("Connection", "Upgrade")],
        ] {
            assert!(!reply_keeps_connection(&req(&refused)), "{refused:?}");
        }
    }

    #[test]
    fn drop_reserved_set_cookies_keeps_the_apps_in_order() {
        let jar = crate::session::cookies::CookieJarSpec {
            session: "clever_gateway".into(),
            login: "clever_gateway_login".into(),
            bounce: "clever_gateway_bounce".into(),
            secure: true,
            domain: None,
        };
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for v in [
            "a=1; Path=/",
            "clever_gateway=planted; Path=/",
            "b=2",
            "__Host-clever_gateway_login_x=v; Secure; Path=/",
        ] {
            resp.append_header(SET_COOKIE, v).unwrap();
        }
        resp.append_header("x-other", "kept").unwrap();
        assert_eq!(drop_reserved_set_cookies(&mut resp, &jar).unwrap(), 2);
        let left: Vec<_> = resp.headers.get_all(SET_COOKIE).iter().collect();
        assert_eq!(left, ["a=1; Path=/", "b=2"]);
        assert_eq!(resp.headers["x-other"], "kept");
        assert_eq!(drop_reserved_set_cookies(&mut resp, &jar).unwrap(), 0);
    }

    #[test]
    fn request_id_is_16_base64url_characters_and_fresh() {
        let a = request_id();
        let b = request_id();
        assert_eq!(a.len(), 16);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a.header_value(), a.as_str());
        assert_eq!(format!("{a}"), a.as_str());
    }
}
