//! Request dispatch: maps a path to an endpoint, counts it, applies its fault, and calls the
//! handler.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::api::{self, Version};
use super::control;
use super::faults::{self, Endpoint, Fault};
use super::oauth;
use super::session;
use super::state::Shared;
use super::web::{page, read_body, Params, Reply};

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
            _ => {}
        }
        let mut parts = path.strip_prefix('/').unwrap_or("").split('/');
        let (Some(v), Some(resource)) = (parts.next(), parts.next()) else {
            return Route::NotFound;
        };
        let Some(version) = Version::parse(v) else {
            return Route::NotFound;
        };
        match (resource, parts.next(), parts.next()) {
            ("me", None, _) => Route::Me(version),
            ("users", Some(id), None) if version.is_v3() && !id.is_empty() => {
                Route::Users(version, id.to_string())
            }
            _ => Route::NotFound,
        }
    }

    fn endpoint(&self) -> Option<Endpoint> {
        Some(match self {
            Route::Authorize | Route::Pick => Endpoint::Authorize,
            Route::Tokens => Endpoint::Tokens,
            Route::Me(_) => Endpoint::Me,
            Route::Users(..) => Endpoint::Users,
            Route::UserInfo => Endpoint::UserInfo,
            Route::Index | Route::InstantLogin | Route::Logout | Route::NotFound => return None,
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
    let route = Route::parse(&path);
    let endpoint = route.endpoint();
    let fault = endpoint.and_then(|e| {
        shared.count(e);
        shared.fault(e)
    });
    match fault {
        Some(Fault::Status(code)) => return faults::status_reply(code).into_response(),
        Some(Fault::RateLimited) => {
            return faults::rate_limited_reply(shared.wall_now()).into_response()
        }
        Some(Fault::Html) => return faults::html_reply().into_response(),
        Some(Fault::AccessDenied) if endpoint != Some(Endpoint::Authorize) => {
            return faults::access_denied_reply().into_response()
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    let reply = answer(&shared, route, req, fault == Some(Fault::AccessDenied)).await;
    if fault == Some(Fault::Truncated) {
        faults::truncate(reply).into_response()
    } else {
        reply.into_response()
    }
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
        Route::Tokens | Route::NotFound => Reply::new(StatusCode::NOT_FOUND),
    }
}

/// `GET /`: what this server is, with Instant Login links for each user.
fn index(shared: &Shared) -> Reply {
    use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
    let mut rows = String::new();
    for u in &shared.users {
        let link = super::instant_login_path(&shared.client_id, u);
        let roles: Vec<&str> = u.roles.iter().map(|r| r.as_str()).collect();
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
        assert_eq!(Route::parse("/v4.0/me"), Route::NotFound);
        assert_eq!(Route::parse("/v3.0/me/"), Route::NotFound);
        assert_eq!(Route::parse(""), Route::NotFound);
    }
}
