//! Whether a state-changing request (a sign-out) was sent by the gateway's own site, from the
//! browser's own signals: `Sec-Fetch-Site` when it sends one, else `Origin` compared with the
//! host the request was sent to. A request with neither did not come from another site's form
//! or script (browsers send `Origin` with every cross-origin POST): API clients send neither,
//! and pass.

use super::host::Host;

/// Why the request is refused as sent from another site (a 403), or `None`.
pub fn cross_site(
    sec_fetch_site: Option<&str>,
    origin: Option<&str>,
    host: Option<Host<'_>>,
) -> Option<&'static str> {
    if let Some(site) = sec_fetch_site {
        // `none`: the user's own action (address bar, bookmark), not a page's.
        return match site.trim() {
            s if s.eq_ignore_ascii_case("same-origin") || s.eq_ignore_ascii_case("none") => None,
            _ => Some("the browser says another site sent this request (Sec-Fetch-Site)"),
        };
    }
    let origin = origin?.trim();
    if same_origin_as_host(origin, host) {
        None
    } else {
        Some("the request comes from another site (Origin)")
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the host and port of `host`; a port left
/// out is the scheme's default.
fn same_origin_as_host(origin: &str, host: Option<Host<'_>>) -> bool {
    let (Ok(o), Some(host)) = (url::Url::parse(origin), host) else {
        return false;
    };
    let Some(o_host) = o.host_str() else {
        return false;
    };
    let o_host = o_host.trim_start_matches('[').trim_end_matches(']');
    let (name, port) = (host.name(), host.port());
    if port.is_none() && !host.is_bracketed() && name.contains(':') {
        // What follows the last colon is no port number: never this site.
        return false;
    }
    let port_ok = match port {
        None => o.port().is_none(),
        Some(p) => p.parse::<u16>().ok() == o.port_or_known_default(),
    };
    matches!(o.scheme(), "http" | "https") && o_host.eq_ignore_ascii_case(name) && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `same_origin_as_host` as it was, on the host text (with its own split of it).
    fn same_origin_before(origin: &str, host: &str) -> bool {
        fn split_host(host: &str) -> (&str, Option<&str>) {
            if let Some(rest) = host.strip_prefix('[') {
                let (name, after) = rest.split_once(']').unwrap_or((rest, ""));
                return (name, after.strip_prefix(':'));
            }
            match host.rsplit_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (host, None),
            }
        }
        let Ok(o) = url::Url::parse(origin) else {
            return false;
        };
        let Some(o_host) = o.host_str() else {
            return false;
        };
        let o_host = o_host.trim_start_matches('[').trim_end_matches(']');
        let (name, port) = split_host(host);
        let port_ok = match port {
            None => o.port().is_none(),
            Some(p) => p.parse::<u16>().ok() == o.port_or_known_default(),
        };
        matches!(o.scheme(), "http" | "https") && o_host.eq_ignore_ascii_case(name) && port_ok
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 4000,
            failure_persistence: None,
            ..Default::default()
        })]

        #[test]
        fn same_origin_answers_what_it_answered_before(
            host in super::super::host::tests::host_text(),
            scheme in proptest::sample::select(vec!["http://", "https://", "ftp://"]),
            origin_host in super::super::host::tests::host_text(),
        ) {
            let origins = [
                format!("{scheme}{origin_host}"),
                format!("{scheme}{host}"),
                format!("{scheme}[{host}]"),
            ];
            for origin in origins {
                proptest::prop_assert_eq!(
                    same_origin_as_host(&origin, Some(Host::parse(&host))),
                    same_origin_before(&origin, &host),
                    "{} {}", origin, host
                );
            }
        }
    }

    #[test]
    fn unbracketed_host_with_a_non_numeric_tail_is_never_this_site() {
        // As before `Host`: the text after the last colon was the port, and no number.
        for (origin, host) in [
            ("http://[::1:b]", "::1:b"),
            ("http://[2001:db8::b]", "2001:db8::b"),
        ] {
            assert!(
                !same_origin_as_host(origin, Some(Host::parse(host))),
                "{host}"
            );
            assert!(!same_origin_before(origin, host), "{host}");
        }
        assert!(same_origin_as_host(
            "http://[::1]:8080",
            Some(Host::parse("[::1]:8080"))
        ));
    }

    fn cross_site(
        sec_fetch_site: Option<&str>,
        origin: Option<&str>,
        host: Option<&str>,
    ) -> Option<&'static str> {
        super::cross_site(sec_fetch_site, origin, host.map(Host::parse))
    }

    #[test]
    fn cross_site_sec_fetch_site_decides_when_sent() {
        for ok in ["same-origin", "none", "Same-Origin"] {
            assert_eq!(
                cross_site(Some(ok), Some("https://evil.example"), Some("gw")),
                None,
                "{ok}"
            );
        }
        for bad in ["cross-site", "same-site", "", "bogus"] {
            assert!(
                cross_site(Some(bad), Some("https://gw"), Some("gw")).is_some(),
                "{bad}"
            );
        }
    }

    #[test]
    fn cross_site_origin_compared_with_host() {
        let host = Some("apps.example.org");
        for ok in [
            "https://apps.example.org",
            "http://apps.example.org",
            "https://APPS.example.org",
        ] {
            assert_eq!(cross_site(None, Some(ok), host), None, "{ok}");
        }
        for bad in [
            "https://evil.example",
            "https://apps.example.org.evil.example",
            "https://apps.example.org:8443",
            "null",
            "apps.example.org",
            "ftp://apps.example.org",
        ] {
            assert!(cross_site(None, Some(bad), host).is_some(), "{bad}");
        }
        assert_eq!(
            cross_site(None, Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080")),
            None
        );
        assert!(cross_site(None, Some("http://127.0.0.1:8081"), Some("127.0.0.1:8080")).is_some());
        assert_eq!(
            cross_site(
                None,
                Some("https://apps.example.org"),
                Some("apps.example.org:443")
            ),
            None
        );
        assert_eq!(
            cross_site(None, Some("http://[::1]:8080"), Some("[::1]:8080")),
            None
        );
        assert!(cross_site(None, Some("https://apps.example.org"), None).is_some());
    }

    #[test]
    fn cross_site_neither_header_is_not_a_browser_and_passes() {
        assert_eq!(cross_site(None, None, Some("apps.example.org")), None);
        assert_eq!(cross_site(None, None, None), None);
    }
}
