//! The admin listener (`server.admin_listen`): a small pingora HTTP app that answers health,
//! readiness and metrics from the same `Gateway` (same store, same metrics) as the proxy, and
//! 404 to everything else. It never routes, proxies or looks at cookies.

use std::sync::Arc;

use async_trait::async_trait;
use http::header::CONTENT_LENGTH;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::gateway::pages::Reply;
use crate::gateway::Gateway;

/// The app served on `admin_listen`.
pub struct AdminApp {
    pub gateway: Arc<Gateway>,
}

/// A gateway reply as the `http::Response` pingora's `ServeHttp` writes out; `head` drops the
/// body and keeps its length.
pub fn to_response(reply: Reply, head: bool) -> http::Response<Vec<u8>> {
    let mut resp = http::Response::new(if head {
        Vec::new()
    } else {
        reply.body.to_vec()
    });
    *resp.status_mut() =
        http::StatusCode::from_u16(reply.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    for (name, value) in reply.headers {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            headers.append(name, v);
        }
    }
    headers.insert(CONTENT_LENGTH, http::HeaderValue::from(reply.body.len()));
    resp
}

#[async_trait]
impl ServeHttp for AdminApp {
    /// Health, readiness or metrics by path; the request body, if any, is never read (pingora
    /// drains it before reusing the connection).
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let req = session.req_header();
        let head = req.method == http::Method::HEAD;
        let reply = self.gateway.admin(req.uri.path()).await;
        tracing::debug!(status = reply.status, path = %req.uri.path(), "admin request");
        to_response(reply, head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_response_keeps_status_headers_and_length() {
        let r = to_response(Reply::text(503, "not ready\n"), false);
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["content-length"], "10");
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.body(), b"not ready\n");
    }

    #[test]
    fn to_response_head_has_no_body_but_its_length() {
        let r = to_response(Reply::text(200, "ok\n"), true);
        assert_eq!(r.headers()["content-length"], "3");
        assert!(r.body().is_empty());
    }
}
