//! Request headers that claim what only a proxy in front of the app may say: where the client
//! is and what it asked for (the forwarding family), or which path the app should serve (the
//! path-override family). Which of them the gateway drops on the way upstream, and from whom.
//!
//! Names compare as a CGI or PHP app sees them: case-insensitive, `_` equal to `-`
//! (`X_Real_IP` is `HTTP_X_REAL_IP` like `X-Real-IP`).

use http::{HeaderMap, HeaderName};

/// What a request header claims, for the gateway's purposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Claims nothing the gateway guards.
    None,
    /// One of the names the gateway sets itself (`X-Forwarded-For`, `-Proto`, `-Host`,
    /// `X-Request-Id`): replaced by the gateway's value (see `headers::forwarding`).
    GatewaySet,
    /// The client's address, scheme, host, port or path prefix as a proxy saw it (`Forwarded`,
    /// `X-Real-IP`, `X-Forwarded-Port`, …): frameworks that trust the gateway believe these.
    /// Kept only from `server.trusted_proxies`.
    Forwarding,
    /// Another path for the app to serve (`X-Original-URL`, `X-Rewrite-URL`, …): older Symfony
    /// and Zend, and IIS URL Rewrite setups, serve that path instead of the request line's, which
    /// the gateway's policy was decided on. Dropped from every request.
    PathOverride,
}

/// The headers the gateway sets on every forwarded request.
const GATEWAY_SET: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// Every other `X-Forwarded-*` name is a forwarding claim too (`-Port`, `-Prefix`, `-Server`,
/// `-Ssl`, `-Scheme`, `-Uri`, `-Path`, `-By`, …).
const FORWARDED_PREFIX: &str = "x-forwarded-";

/// Forwarding claims outside `X-Forwarded-*`: RFC 7239's `Forwarded`, and the client-address,
/// scheme and host headers of the common load balancers, CDNs and frameworks (nginx, Akamai,
/// Cloudflare, Fastly, Envoy, ingress-nginx, ASP.NET Core's `X-Original-*`, Microsoft's
/// `Front-End-Https`).
const FORWARDING: [&str; 26] = [
    "forwarded",
    "forwarded-for",
    "x-forwarded",
    "x-real-ip",
    "true-client-ip",
    "client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-proxyuser-ip",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "x-envoy-external-address",
    "x-original-forwarded-for",
    "x-original-remote-addr",
    "x-original-for",
    "x-original-proto",
    "x-original-host",
    "x-original-prefix",
    "x-host",
    "x-http-host-override",
    "x-scheme",
    "x-url-scheme",
    "front-end-https",
];

/// Path-override headers: the original or rewritten URL as a front end (IIS URL Rewrite,
/// ISAPI_Rewrite, nginx `auth_request` recipes) would pass it.
const PATH_OVERRIDE: [&str; 6] = [
    "x-original-url",
    "x-rewrite-url",
    "x-override-url",
    "x-original-uri",
    "x-http-destinationurl",
    "x-proxy-url",
];

/// What the header `name` claims (`name` as the `http` crate holds it: lower case).
pub fn claim(name: &str) -> Claim {
    // Every name above starts like one of these; a browser's usual headers do not (this runs
    // on every header of every forwarded request).
    if !matches!(
        name.as_bytes(),
        [b'x', b'-' | b'_', ..] | [b'f', ..] | [b't', b'r', ..] | [b'c', b'l' | b'f', ..]
    ) {
        return Claim::None;
    }
    let canon: std::borrow::Cow<'_, str> = if name.contains('_') {
        crate::identity::canonical_header_name(name).into()
    } else {
        name.into()
    };
    let c: &str = &canon;
    if GATEWAY_SET.contains(&c) {
        Claim::GatewaySet
    } else if PATH_OVERRIDE.contains(&c) {
        Claim::PathOverride
    } else if c.starts_with(FORWARDED_PREFIX) || FORWARDING.contains(&c) {
        Claim::Forwarding
    } else {
        Claim::None
    }
}

/// The request headers to drop before forwarding: every path override; every forwarding
/// claim unless the peer is a trusted proxy; and any spelling other than the gateway's of a
/// name the gateway sets (`X_Forwarded_For` beside the gateway's `X-Forwarded-For` would reach
/// a CGI app as the same variable).
pub fn dropped(headers: &HeaderMap, from_trusted_proxy: bool) -> Vec<HeaderName> {
    let mut out: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        let drop = match claim(name.as_str()) {
            Claim::None => false,
            Claim::PathOverride => true,
            Claim::Forwarding => !from_trusted_proxy,
            Claim::GatewaySet => name.as_str().contains('_'),
        };
        if drop && !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(names: &[&str]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for n in names {
            m.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        m
    }

    fn names(v: Vec<HeaderName>) -> Vec<String> {
        v.into_iter().map(|n| n.as_str().to_string()).collect()
    }

    #[test]
    fn claim_classifies_the_issue_names_in_any_spelling() {
        for n in [
            "forwarded",
            "x-real-ip",
            "true-client-ip",
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-forwarded-server",
            "x-forwarded-ssl",
            "x-original-host",
            "x_real_ip",
            "x-forwarded_port",
            "x-forwarded-anything-new",
        ] {
            assert_eq!(claim(n), Claim::Forwarding, "{n}");
        }
        for n in [
            "x-original-url",
            "x-rewrite-url",
            "x-override-url",
            "x_original_url",
        ] {
            assert_eq!(claim(n), Claim::PathOverride, "{n}");
        }
        for n in ["x-forwarded-for", "x_forwarded_for", "x-request-id"] {
            assert_eq!(claim(n), Claim::GatewaySet, "{n}");
        }
        for n in [
            "host",
            "cookie",
            "x-http-method-override",
            "x-forwardedfor",
            "accept",
            "x-originally",
        ] {
            assert_eq!(claim(n), Claim::None, "{n}");
        }
    }

    #[test]
    fn claim_first_letters_cover_every_listed_name() {
        for n in GATEWAY_SET
            .iter()
            .chain(&FORWARDING)
            .chain(&PATH_OVERRIDE)
            .chain(&[FORWARDED_PREFIX])
        {
            assert_ne!(claim(n), Claim::None, "{n}");
        }
    }

    #[test]
    fn dropped_untrusted_loses_every_claim_but_the_gateways_own_names() {
        let h = map(&[
            "accept",
            "forwarded",
            "x-real-ip",
            "x-real-ip",
            "x-forwarded-for",
            "x_forwarded_for",
            "x-forwarded-port",
            "x-original-url",
            "x-request-id",
        ]);
        assert_eq!(
            names(dropped(&h, false)),
            vec![
                "forwarded",
                "x-real-ip",
                "x_forwarded_for",
                "x-forwarded-port",
                "x-original-url"
            ]
        );
    }

    #[test]
    fn dropped_trusted_proxy_keeps_forwarding_claims_not_overrides() {
        let h = map(&[
            "forwarded",
            "x-forwarded-port",
            "x-real-ip",
            "x-rewrite-url",
            "x_forwarded_proto",
        ]);
        assert_eq!(
            names(dropped(&h, true)),
            vec!["x-rewrite-url", "x_forwarded_proto"]
        );
    }

    #[test]
    fn dropped_nothing_for_an_ordinary_browser_request() {
        let h = map(&[
            "host",
            "user-agent",
            "accept",
            "cookie",
            "sec-fetch-site",
            "x-requested-with",
        ]);
        assert!(dropped(&h, false).is_empty());
    }
}
