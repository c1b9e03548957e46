//! Request decisions that depend on how the request arrived, decided without pingora: the
//! request's host for HTTP/1 (`Host`) and HTTP/2 (`:authority`), whether a connection came in on
//! a plain `listen` socket, and the `redirect_to_https` answer for those.

use std::net::{Ipv6Addr, SocketAddr};

use crate::gateway::pages::Reply;
use crate::gateway::refusal::Refusal;

/// Answered on plain HTTP even with `redirect_to_https`: load balancers and orchestrators
/// probe them there.
pub const PLAIN_HTTP_PATHS: [&str; 2] = ["/_gateway/healthz", "/_gateway/readyz"];

/// The host (and port) of a URI authority, without user info: an HTTP/2 `:authority` or an
/// HTTP/1 absolute-form target (`http://user@host:port/`).
pub fn authority_host(authority: &str) -> &str {
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

/// Whether a connection accepted on local address `local` came in on one of the `listen`
/// addresses (a listener on `0.0.0.0` or `[::]` accepts on every address of its port).
pub fn on_listener(local: SocketAddr, listen: &[SocketAddr]) -> bool {
    listen
        .iter()
        .any(|l| l.port() == local.port() && (l.ip() == local.ip() || l.ip().is_unspecified()))
}

/// The host part of a `Host` value as it may appear in a URL: lower-cased, without the port,
/// brackets kept around an IPv6 address. `None` for anything that is not a plain host name, an
/// IPv4 address or a bracketed IPv6 address with an optional numeric port: such a value is
/// never copied into a `Location`.
pub fn url_host(host: &str) -> Option<String> {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => {
            let (ip, after) = rest.split_once(']')?;
            ip.parse::<Ipv6Addr>().ok()?;
            (&host[..ip.len() + 2], after)
        }
        None => match host.split_once(':') {
            Some((name, _)) => (name, &host[name.len()..]),
            None => (host, ""),
        },
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = name.starts_with('[')
        || (!name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)));
    (port_ok && name_ok).then(|| name.to_ascii_lowercase())
}

/// Where `redirect_to_https` sends a request: `https://` + the request's host without its port +
/// `:https_port` unless it is 443 + the path and query as received. `None` when the request
/// names no usable host.
pub fn https_location(host: Option<&str>, path_and_query: &str, https_port: u16) -> Option<String> {
    let host = url_host(host?)?;
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
    host: Option<&str>,
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

    #[test]
    fn authority_host_drops_user_info_keeps_port() {
        assert_eq!(
            authority_host("apps.example.org:8443"),
            "apps.example.org:8443"
        );
        assert_eq!(authority_host("u:p@apps.example.org"), "apps.example.org");
        assert_eq!(authority_host("[::1]:8443"), "[::1]:8443");
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
    fn url_host_strips_port_keeps_ipv6_brackets() {
        assert_eq!(
            url_host("Apps.Example.org:8080").as_deref(),
            Some("apps.example.org")
        );
        assert_eq!(
            url_host("apps.example.org").as_deref(),
            Some("apps.example.org")
        );
        assert_eq!(url_host("127.0.0.1:80").as_deref(), Some("127.0.0.1"));
        assert_eq!(url_host("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(url_host("[::1]").as_deref(), Some("[::1]"));
        assert_eq!(url_host("host:").as_deref(), Some("host"));
    }

    #[test]
    fn url_host_refuses_what_could_change_the_url() {
        for bad in [
            "",
            ":8080",
            "evil.example/path",
            "a@evil.example",
            "evil.example:80x",
            "evil.example:80:80",
            "[::1",
            "[not-ip]:80",
            "[::1]x",
            "ex ample.org",
            "evil.example\\@x",
            "évil.example",
        ] {
            assert_eq!(url_host(bad), None, "{bad:?}");
        }
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
