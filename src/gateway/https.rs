//! Request decisions that depend on how the request arrived, decided without pingora: the
//! whether a connection came in on a plain `listen` socket, and the `redirect_to_https` answer
//! for those (to the request's [`Host`]).

use std::net::SocketAddr;

use super::host::Host;

use crate::gateway::pages::Reply;
use crate::gateway::refusal::Refusal;

/// Answered on plain HTTP even with `redirect_to_https`: load balancers and orchestrators
/// probe them there.
pub const PLAIN_HTTP_PATHS: [&str; 2] = ["/_gateway/healthz", "/_gateway/readyz"];

/// Whether a connection accepted on local address `local` came in on one of the `listen`
/// addresses (a listener on `0.0.0.0` or `[::]` accepts on every address of its port).
pub fn on_listener(local: SocketAddr, listen: &[SocketAddr]) -> bool {
    listen
        .iter()
        .any(|l| l.port() == local.port() && (l.ip() == local.ip() || l.ip().is_unspecified()))
}

/// Where `redirect_to_https` sends a request: `https://` + the request's host without its port +
/// `:https_port` unless it is 443 + the path and query as received. `None` when the request
/// names no usable host.
pub fn https_location(
    host: Option<Host<'_>>,
    path_and_query: &str,
    https_port: u16,
) -> Option<String> {
    let host = host?.url_host()?;
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    // An asterisk-form target (`OPTIONS *`) has no path to keep.
    let target = if path_and_query.starts_with('/') {
        path_and_query
    } else {
        "/"
    };
    Some(format!("https://{host}{port}{target}"))
}

/// The answer to a request that arrived on a plain `listen` socket while `redirect_to_https` is
/// on: `None` for the health endpoints (served as usual), 308 to HTTPS (method and body are
/// kept by the browser), or 400 when there is no host to redirect to.
pub fn https_redirect(
    host: Option<Host<'_>>,
    path: &str,
    path_and_query: &str,
    https_port: u16,
    wants_html: bool,
    request_id: &str,
) -> Option<Reply> {
    if PLAIN_HTTP_PATHS.contains(&path) {
        return None;
    }
    match https_location(host, path_and_query, https_port) {
        Some(location) => {
            let mut reply = Reply::redirect(&location);
            reply.status = 308;
            Some(reply)
        }
        None => Some(Refusal::NoHostForHttps.answer(request_id, wants_html, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn https_location(host: Option<&str>, path_and_query: &str, port: u16) -> Option<String> {
        super::https_location(host.map(Host::parse), path_and_query, port)
    }

    fn https_redirect(
        host: Option<&str>,
        path: &str,
        path_and_query: &str,
        port: u16,
        html: bool,
        id: &str,
    ) -> Option<Reply> {
        super::https_redirect(host.map(Host::parse), path, path_and_query, port, html, id)
    }

    #[test]
    fn on_listener_exact_and_unspecified_addresses() {
        let listen = [
            addr("127.0.0.1:8080"),
            addr("0.0.0.0:9080"),
            addr("[::]:7080"),
        ];
        assert!(on_listener(addr("127.0.0.1:8080"), &listen));
        assert!(!on_listener(addr("127.0.0.2:8080"), &listen));
        assert!(on_listener(addr("10.1.2.3:9080"), &listen));
        assert!(on_listener(addr("[2001:db8::1]:7080"), &listen));
        assert!(!on_listener(addr("127.0.0.1:8443"), &listen));
        assert!(!on_listener(addr("127.0.0.1:8080"), &[]));
    }

    #[test]
    fn https_location_adds_non_default_port_and_keeps_target() {
        assert_eq!(
            https_location(Some("apps.example.org:8080"), "/grades?term=2&x=%2F", 8443).as_deref(),
            Some("https://apps.example.org:8443/grades?term=2&x=%2F")
        );
        assert_eq!(
            https_location(Some("apps.example.org"), "/", 443).as_deref(),
            Some("https://apps.example.org/")
        );
        assert_eq!(
            https_location(Some("[::1]:80"), "/x", 443).as_deref(),
            Some("https://[::1]/x")
        );
        assert_eq!(
            https_location(Some("h"), "*", 443).as_deref(),
            Some("https://h/")
        );
        assert_eq!(https_location(None, "/", 443), None);
    }

    #[test]
    fn https_redirect_is_308_with_location() {
        let r = https_redirect(Some("a.example:8080"), "/x", "/x?y=1", 8443, true, "rid").unwrap();
        assert_eq!(r.status, 308);
        assert_eq!(r.header("location"), Some("https://a.example:8443/x?y=1"));
        assert!(r.body.is_empty());
    }

    #[test]
    fn https_redirect_health_endpoints_are_served_on_plain_http() {
        for p in PLAIN_HTTP_PATHS {
            assert_eq!(https_redirect(Some("a"), p, p, 8443, false, "rid"), None);
        }
        // Everything else under /_gateway/ is redirected, login and metrics included.
        for p in ["/_gateway/login", "/_gateway/metrics", "/_gateway/healthz/"] {
            let r = https_redirect(Some("a"), p, p, 443, false, "rid").unwrap();
            assert_eq!(r.status, 308, "{p}");
        }
    }

    #[test]
    fn https_redirect_without_usable_host_is_400() {
        for host in [None, Some("evil.example/x")] {
            let r = https_redirect(host, "/", "/", 443, false, "rid").unwrap();
            assert_eq!(r.status, 400);
            assert_eq!(r.header("location"), None);
        }
    }
}
