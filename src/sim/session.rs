//! The simulator's browser session, standing in for the one real Clever keeps: choosing a user
//! at `/oauth/authorize/pick` or arriving through `/oauth/instant-login` sets the
//! `clever_sim_session` cookie, after which `/oauth/authorize` from the same browser answers at
//! once with a code (see `oauth::authorize`). `GET /oauth/logout?return=URL` ends it.
//!
//! The cookie holds a random token only; the simulator keeps token → user id (and expiry,
//! [`SESSION_TTL`](super::state::SESSION_TTL)) in its state. An unknown, expired or forged token
//! is ignored, as if there were no cookie.

use http::{header, HeaderMap, StatusCode};

use super::state::Shared;
use super::users::SimUser;
use super::web::{page, Params, Reply};

/// Name of the simulator's browser-session cookie.
pub(crate) const COOKIE: &str = "clever_sim_session";

/// Attributes of the session cookie (a browser-session cookie: no `Max-Age`).
const ATTRIBUTES: &str = "Path=/; HttpOnly; SameSite=Lax";

/// Every `clever_sim_session` value in the request's `Cookie` headers, in order.
fn tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|c| c.name() == COOKIE && !c.value().is_empty())
        .map(|c| c.value().to_string())
        .collect()
}

/// The user of the browser session this request carries, if it is live.
pub(crate) fn current_user(shared: &Shared, headers: &HeaderMap) -> Option<SimUser> {
    tokens(headers).iter().find_map(|t| shared.session_user(t))
}

/// `reply` with a fresh browser session for `user_id` set on it. Any session the request
/// already carried is ended first (the browser now belongs to `user_id`).
pub(crate) fn sign_in(shared: &Shared, headers: &HeaderMap, user_id: &str, reply: Reply) -> Reply {
    for t in tokens(headers) {
        shared.end_session(&t);
    }
    let token = shared.start_session(user_id);
    reply.header(
        header::SET_COOKIE,
        format!("{COOKIE}={token}; {ATTRIBUTES}"),
    )
}

/// `GET /oauth/logout?return=URL`: ends the browser session (server side, and clears the
/// cookie) and shows a small page, with a "Sign in again" link to `return` when it is an
/// absolute http(s) URL.
pub(crate) fn logout(shared: &Shared, headers: &HeaderMap, q: &Params) -> Reply {
    use html_escape::encode_double_quoted_attribute as attr;
    for t in tokens(headers) {
        shared.end_session(&t);
    }
    let again = match q.single("return") {
        Ok(Some(raw)) => return_url(raw)
            .map(|u| format!("<p><a href=\"{}\">Sign in again</a></p>", attr(&u)))
            .unwrap_or_default(),
        _ => String::new(),
    };
    let body = format!(
        "<h1>Signed out of the Clever simulator</h1>\
         <p>This browser is no longer signed in to the simulator: the next sign-in shows the \
         sign-in page, so you can pick another user.</p>{again}"
    );
    Reply::html(
        StatusCode::OK,
        page("Signed out of the Clever simulator", &body),
    )
    .header(header::CACHE_CONTROL, "no-store")
    .header(
        header::SET_COOKIE,
        format!("{COOKIE}=; {ATTRIBUTES}; Max-Age=0"),
    )
}

/// `raw` as an absolute http(s) URL with a host (normalised), else `None`.
fn return_url(raw: &str) -> Option<String> {
    let u = url::Url::parse(raw).ok()?;
    (matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()))
        .then(|| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_finds_every_session_cookie() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; clever_sim_session=abc; clever_gateway=x"
                .parse()
                .unwrap(),
        );
        h.append(header::COOKIE, "clever_sim_session=def".parse().unwrap());
        h.append(header::COOKIE, "clever_sim_session=".parse().unwrap());
        assert_eq!(tokens(&h), vec!["abc".to_string(), "def".to_string()]);
        assert!(tokens(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn return_url_accepts_only_absolute_http_urls() {
        assert_eq!(
            return_url("http://127.0.0.1:8080/").as_deref(),
            Some("http://127.0.0.1:8080/")
        );
        assert!(return_url("https://app.example.org/x?y=1").is_some());
        for bad in [
            "/relative",
            "//evil.example/",
            "javascript:alert(1)",
            "data:text/html,hi",
            "ftp://example.org/",
            "file:///etc/passwd",
            "",
        ] {
            assert_eq!(return_url(bad), None, "{bad}");
        }
    }
}
