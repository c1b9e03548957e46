//! Request dispatch: maps a path to an endpoint, counts it, applies its fault, and calls the
//! handler.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::api::{self, Version};
use super::control;
use super::districts;
use super::faults::{self, Endpoint, Fault};
use super::oauth;
use super::oidc;
use super::session;
use super::state::Shared;
use super::web::{bearer_token, page, read_body, Params, Reply};

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Index,
    Authorize,
    Pick,
    InstantLogin,
    Logout,
    Tokens,
    Me(Version),
    Users(Version, String),
    UserInfo,
    /// `GET /oauth/tokens?owner_type=…` (the path alone is `Tokens`; see `for_request`).
    DistrictTokens,
    Districts(Version, String),
    UserSections(Version, String),
    Sections(Version),
    Discovery,
    Certs,
    NotFound,
}

impl Route {
    fn parse(path: &str) -> Route {
        match path {
            "/" => return Route::Index,
            "/oauth/authorize" => return Route::Authorize,
            "/oauth/authorize/pick" => return Route::Pick,
            "/oauth/instant-login" => return Route::InstantLogin,
            "/oauth/logout" => return Route::Logout,
            "/oauth/tokens" => return Route::Tokens,
            "/userinfo" => return Route::UserInfo,
            "/.well-known/openid-configuration" => return Route::Discovery,
            "/oauth/certs" => return Route::Certs,
            _ => {}
        }
        let parts: Vec<&str> = path.strip_prefix('/').unwrap_or("").split('/').collect();
        let Some(version) = parts.first().and_then(|v| Version::parse(v)) else {
            return Route::NotFound;
        };
        match parts[1..] {
            ["me"] => Route::Me(version),
            ["users", id] if version.is_v3() && !id.is_empty() => {
                Route::Users(version, id.to_string())
            }
            ["users", id, "sections"] if version.is_v3() && !id.is_empty() => {
                Route::UserSections(version, id.to_string())
            }
            ["sections"] if version.is_v3() => Route::Sections(version),
            ["districts", id] if !id.is_empty() => Route::Districts(version, id.to_string()),
            _ => Route::NotFound,
        }
    }

    /// The route of a request: a GET of `/oauth/tokens` with `owner_type` lists the
    /// application's tokens; any other request of that path is the code exchange.
    fn for_request(method: &Method, path: &str, query: Option<&str>) -> Route {
        let route = Route::parse(path);
        if route == Route::Tokens
            && (method == Method::GET || method == Method::HEAD)
            && Params::from_query(query).has("owner_type")
        {
            return Route::DistrictTokens;
        }
        route
    }

    /// Whether the route is Clever's API, answered with rate-limit headers per token.
    fn rate_limited(&self) -> bool {
        matches!(
            self,
            Route::Me(_)
                | Route::Users(..)
                | Route::UserInfo
                | Route::Districts(..)
                | Route::UserSections(..)
                | Route::Sections(_)
        )
    }

    fn endpoint(&self) -> Option<Endpoint> {
        Some(match self {
            Route::Authorize | Route::Pick => Endpoint::Authorize,
            Route::Tokens => Endpoint::Tokens,
            Route::Me(_) => Endpoint::Me,
            Route::Users(..) => Endpoint::Users,
            Route::UserInfo => Endpoint::UserInfo,
            Route::DistrictTokens => Endpoint::DistrictTokens,
            Route::Districts(..) => Endpoint::Districts,
            Route::UserSections(..) | Route::Sections(_) => Endpoint::Sections,
            Route::Index
            | Route::InstantLogin
            | Route::Logout
            | Route::Discovery
            | Route::Certs
            | Route::NotFound => return None,
        })
    }
}

/// Serves one request.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    if path == "/_sim" || path.starts_with("/_sim/") {
        return control::handle(&shared, req.method(), &path, req.uri().query()).into_response();
    }
    shared.count_total();
    let route = Route::for_request(req.method(), &path, req.uri().query());
    let endpoint = route.endpoint();
    let _in_flight = endpoint.map(|_| shared.in_flight());
    let fault = endpoint.and_then(|e| {
        shared.count(e);
        shared.use_fault(e)
    });
    match fault {
        Some(Fault::Status(code)) => return faults::status_reply(code).into_response(),
        Some(Fault::RateLimited) => {
            return faults::rate_limited_reply(shared.wall_now()).into_response()
        }
        Some(Fault::RateLimitedTimes(_)) => {
            return faults::rate_limited_briefly(shared.wall_now()).into_response()
        }
        Some(Fault::Html) => return faults::html_reply().into_response(),
        Some(Fault::AccessDenied) if endpoint != Some(Endpoint::Authorize) => {
            return faults::access_denied_reply().into_response()
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    // Clever's per-token rate limit, on the API (unknown tokens are refused by the handler).
    let rate = if route.rate_limited() {
        bearer_token(req.headers())
            .and_then(|t| shared.rate_bucket(&t))
            .map(|bucket| shared.rate_take(&bucket))
    } else {
        None
    };
    if let Some(r) = rate.as_ref().filter(|r| r.exceeded) {
        return faults::rate_limited_until(r.reset, r.limit, &r.bucket).into_response();
    }
    // Clever's own latency, when injected: every endpoint but the simulator's extras. The
    // sign-in's ledger gets the time this call was held here as it was, the sleep (which ends
    // at the timer's next tick after the sample, or later on a busy machine) and building the
    // answer, so that what a relying party is said to add excludes all of Clever's time.
    let held = Instant::now();
    let delay = endpoint.and_then(|_| shared.latency_sample());
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let token = delay.and_then(|_| bearer_token(req.headers()));
    let mut reply = answer(&shared, route, req, fault == Some(Fault::AccessDenied)).await;
    if delay.is_some() {
        if let Some(code) = sign_in_of(&shared, token.as_deref(), &reply) {
            let by_browser = endpoint == Some(Endpoint::Authorize);
            shared.record_delay(&code, held.elapsed(), by_browser);
        }
    }
    if let Some(r) = rate {
        reply = faults::with_rate_headers(reply, r.limit, r.remaining, r.reset, &r.bucket);
    }
    if fault == Some(Fault::Truncated) {
        faults::truncate(reply).into_response()
    } else {
        reply.into_response()
    }
}

/// The sign-in (its code) an answer belongs to, for the delay ledger: the code an authorize
/// answer issues, the code a token answer's token was issued for, or the code of the API
/// call's bearer token.
fn sign_in_of(shared: &Shared, bearer: Option<&str>, reply: &Reply) -> Option<String> {
    if let Some(token) = bearer {
        return shared.code_of_token(token);
    }
    let location = reply
        .headers
        .iter()
        .find(|(name, _)| name == http::header::LOCATION)
        .map(|(_, v)| v.as_str());
    if let Some(url) = location.and_then(|l| url::Url::parse(l).ok()) {
        return url
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned());
    }
    let body: serde_json::Value = serde_json::from_slice(&reply.body).ok()?;
    shared.code_of_token(body.get("access_token")?.as_str()?)
}

fn method_not_allowed(allow: &Method) -> Reply {
    Reply::json(
        StatusCode::METHOD_NOT_ALLOWED,
        &serde_json::json!({"error": "method not allowed"}),
    )
    .header(http::header::ALLOW, allow.as_str())
}

async fn answer(shared: &Shared, route: Route, req: Request<Incoming>, denied: bool) -> Reply {
    let (parts, body) = req.into_parts();
    let is_get = parts.method == Method::GET || parts.method == Method::HEAD;
    if route == Route::Tokens {
        if parts.method != Method::POST {
            return method_not_allowed(&Method::POST);
        }
        let body = read_body(&parts.headers, body).await;
        return oauth::tokens(shared, &parts.headers, body.as_deref().map_err(|e| *e));
    }
    if !is_get {
        return method_not_allowed(&Method::GET);
    }
    let q = Params::from_query(parts.uri.query());
    match route {
        Route::Index => index(shared),
        Route::Authorize => oauth::authorize(shared, &parts.headers, &q, denied),
        Route::Pick => oauth::pick(shared, &parts.headers, &q, denied),
        Route::InstantLogin => oauth::instant_login(shared, &parts.headers, &q),
        Route::Logout => session::logout(shared, &parts.headers, &q),
        Route::Me(v) => api::me(shared, &parts.headers, v),
        Route::Users(v, id) => api::user(shared, &parts.headers, v, &id),
        Route::UserInfo => api::userinfo(shared, &parts.headers),
        Route::DistrictTokens => districts::token_list(shared, &parts.headers, &q),
        Route::Districts(v, id) => districts::district(shared, &parts.headers, v, &id),
        Route::UserSections(v, id) => districts::user_sections(shared, &parts.headers, &q, v, &id),
        Route::Sections(v) => districts::sections(shared, &parts.headers, &q, v),
        Route::Discovery => oidc::discovery(shared, &parts.headers),
        Route::Certs => oidc::certs(shared),
        Route::Tokens | Route::NotFound => Reply::new(StatusCode::NOT_FOUND),
    }
}

/// `GET /`: what this server is, with Instant Login links for each user.
fn index(shared: &Shared) -> Reply {
    use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
    let mut rows = String::new();
    for u in &shared.users {
        let link = super::instant_login_path(&shared.client_id, u);
        let roles: Vec<&str> = u.role_types().iter().map(|r| r.as_str()).collect();
        rows.push_str(&format!(
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td><code>{}</code></td></tr>",
            attr(&link),
            text(&u.full_name()),
            text(&roles.join(", ")),
            text(u.district.as_deref().unwrap_or("—")),
        ));
    }
    let body = format!(
        "<h1>Clever simulator</h1><p>A stand-in for <code>clever.com</code> and \
         <code>api.clever.com</code>. Each name below is a Clever Portal / Instant Login link \
         (a login Clever starts, with no <code>state</code>).</p>\
         <table><tr><th>user</th><th>roles</th><th>district</th></tr>{rows}</table>\
         <p>Signing in (a link above, or a user on the sign-in page) keeps this browser signed \
         in to the simulator, as Clever does: <a href=\"/oauth/logout\">sign out of the \
         simulator</a> to pick another user.</p>\
         <p class=\"muted\">Control surface: <code>POST /_sim/fault?endpoint=tokens&amp;fault=500</code>, \
         <code>POST /_sim/reset</code>, <code>GET /_sim/calls</code>.</p>"
    );
    Reply::html(StatusCode::OK, page("Clever simulator", &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_parse_maps_paths() {
        assert_eq!(Route::parse("/oauth/logout"), Route::Logout);
        assert_eq!(Route::parse("/v3.0/me"), Route::Me(Version::V3_0));
        assert_eq!(Route::parse("/v2.1/me"), Route::Me(Version::V2_1));
        assert_eq!(
            Route::parse("/v3.1/users/abc"),
            Route::Users(Version::V3_1, "abc".into())
        );
        assert_eq!(Route::parse("/v2.1/users/abc"), Route::NotFound);
        assert_eq!(Route::parse("/v3.0/users/"), Route::NotFound);
        assert_eq!(Route::parse("/v3.0/users/a/b"), Route::NotFound);
        assert_eq!(
            Route::parse("/v3.0/users/a/sections"),
            Route::UserSections(Version::V3_0, "a".into())
        );
        assert_eq!(Route::parse("/v2.1/users/a/sections"), Route::NotFound);
        assert_eq!(
            Route::parse("/v3.1/sections"),
            Route::Sections(Version::V3_1)
        );
        assert_eq!(
            Route::parse("/v2.1/districts/d"),
            Route::Districts(Version::V2_1, "d".into())
        );
        assert_eq!(Route::parse("/v3.0/districts/"), Route::NotFound);
        assert_eq!(
            Route::for_request(&Method::GET, "/oauth/tokens", Some("owner_type=district")),
            Route::DistrictTokens
        );
        assert_eq!(
            Route::for_request(&Method::POST, "/oauth/tokens", Some("owner_type=district")),
            Route::Tokens
        );
        assert_eq!(
            Route::for_request(&Method::GET, "/oauth/tokens", None),
            Route::Tokens
        );
        assert_eq!(Route::parse("/v4.0/me"), Route::NotFound);
        assert_eq!(Route::parse("/v3.0/me/"), Route::NotFound);
        assert_eq!(Route::parse(""), Route::NotFound);
    }
}
