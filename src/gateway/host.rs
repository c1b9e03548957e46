//! The host a request was sent to, parsed once: `host[:port]` from the URI's authority (HTTP/2
//! `:authority`, an HTTP/1 absolute-form target; user info dropped) or else the HTTP/1 `Host`
//! header. Routing, the same-site check of a sign-out, `redirect_to_https` and the return
//! target after login all read it through [`Host`].

use std::net::Ipv6Addr;

/// A request's host as sent (`name[:port]` or `[v6][:port]`), split into its name and port.
///
/// A trailing `:digits` (possibly empty) is the port; anything else after a colon is part of
/// the name, which then never matches a route, an `Origin` or a URL host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host<'a> {
    raw: &'a str,
    /// Without the port; an IPv6 address without its brackets.
    name: &'a str,
    port: Option<&'a str>,
    /// `[v6]` form: the closing bracket is there and nothing but `:port` follows it.
    bracketed: Option<bool>,
}

impl<'a> Host<'a> {
    /// The host of a request: its URI's authority when it has one, else its `Host` header.
    pub fn of_request(authority: Option<&'a str>, host_header: Option<&'a str>) -> Option<Self> {
        match authority {
            Some(a) => Some(Self::from_authority(a)),
            None => host_header.map(Self::parse),
        }
    }

    /// The host (and port) of a URI authority, without user info: an HTTP/2 `:authority` or
    /// an HTTP/1 absolute-form target (`http://user@host:port/`).
    pub fn from_authority(authority: &'a str) -> Self {
        Self::parse(
            authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host),
        )
    }

    /// `name[:port]` or `[v6][:port]` as a `Host` header carries it.
    pub fn parse(raw: &'a str) -> Self {
        if let Some(rest) = raw.strip_prefix('[') {
            return match rest.split_once(']') {
                Some((name, after)) => Self {
                    raw,
                    name,
                    port: after.strip_prefix(':'),
                    bracketed: Some(after.is_empty() || after.starts_with(':')),
                },
                None => Self {
                    raw,
                    name: rest,
                    port: None,
                    bracketed: Some(false),
                },
            };
        }
        match raw.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => Self {
                raw,
                name,
                port: Some(port),
                bracketed: None,
            },
            _ => Self {
                raw,
                name: raw,
                port: None,
                bracketed: None,
            },
        }
    }

    /// The host as sent (`host[:port]`, user info dropped).
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// The name without the port; an IPv6 address without its brackets.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The port as sent (`None` without one; digits unless the host is a bracketed IPv6
    /// address with something else after its `:`).
    pub fn port(&self) -> Option<&'a str> {
        self.port
    }

    /// The name routes match: without the port, and without one trailing dot
    /// (`apps.example.org.` is the same name to DNS and to the app's web server).
    pub fn route_name(&self) -> &'a str {
        self.name.strip_suffix('.').unwrap_or(self.name)
    }

    /// The name when the host is a plain DNS name or IPv4 address (letters, digits, `.`, `-`;
    /// no brackets) with no port or a non-empty numeric one: a host the browser may be sent
    /// back to after login.
    pub fn plain_name(&self) -> Option<&'a str> {
        let port_ok = self.bracketed.is_none() && self.port != Some("");
        let name_ok = !self.name.is_empty()
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        (port_ok && name_ok).then_some(self.name)
    }

    /// Whether the host is an IPv6 literal in brackets (`[v6][:port]`).
    pub fn is_bracketed(&self) -> bool {
        self.bracketed.is_some()
    }

    /// The host part as it may appear in a URL: lower-cased, without the port, brackets kept
    /// around an IPv6 address. `None` for anything that is not a plain host name, an IPv4
    /// address or a bracketed IPv6 address with an optional numeric port: such a value is
    /// never copied into a `Location`.
    pub fn url_host(&self) -> Option<String> {
        let port_ok = self
            .port
            .is_none_or(|p| p.bytes().all(|b| b.is_ascii_digit()));
        match self.bracketed {
            Some(well_formed) => (well_formed && port_ok && self.name.parse::<Ipv6Addr>().is_ok())
                .then(|| format!("[{}]", self.name.to_ascii_lowercase())),
            None => {
                let name_ok = !self.name.is_empty()
                    && self
                        .name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
                name_ok.then(|| self.name.to_ascii_lowercase())
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The helpers `Host` replaced, as they were: the properties below hold `Host` to them.
    mod before {
        use std::net::Ipv6Addr;

        pub fn authority_host(authority: &str) -> &str {
            authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host)
        }

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

        pub fn strip_port(host: &str) -> &str {
            if let Some(rest) = host.strip_prefix('[') {
                return rest.split(']').next().unwrap_or(rest);
            }
            host.rsplit_once(':')
                .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                .map(|(h, _)| h)
                .unwrap_or(host)
        }

        pub fn route_host(host: &str) -> &str {
            let h = strip_port(host);
            h.strip_suffix('.').unwrap_or(h)
        }

        /// `Auth::return_target`'s test of a host it may send the browser back to. (It
        /// sliced `h[bare.len()..]`, which panics inside a non-ASCII `[..]` host; hosts reach
        /// it as ASCII only, from `http`'s parsers, so here the slice is taken with `get`.)
        pub fn return_host_ok(h: &str) -> bool {
            let bare = strip_port(h);
            let port_ok = h.len() == bare.len()
                || h.get(bare.len()..)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            let name_ok = !bare.is_empty()
                && bare
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            port_ok && name_ok
        }
    }

    /// Host values built from the pieces that change how they split.
    pub(crate) fn host_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just("a"),
            Just("Apps.Example.org"),
            Just("."),
            Just(":"),
            Just("80"),
            Just("8443"),
            Just("["),
            Just("]"),
            Just("::1"),
            Just("2001:db8::7"),
            Just("@"),
            Just("u:p"),
            Just("/"),
            Just(" "),
            Just("é"),
            Just("_"),
            Just("-"),
            Just("x"),
            Just("b"),
        ];
        proptest::collection::vec(piece, 0..7).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 4000,
            failure_persistence: None,
            ..Default::default()
        })]

        #[test]
        fn host_answers_what_the_helpers_it_replaced_answered(raw in host_text()) {
            let h = Host::parse(&raw);
            proptest::prop_assert_eq!(h.url_host(), before::url_host(&raw));
            proptest::prop_assert_eq!(h.route_name(), before::route_host(&raw));
            proptest::prop_assert_eq!(h.name(), before::strip_port(&raw));
            proptest::prop_assert_eq!(h.as_str(), raw.as_str());
            proptest::prop_assert_eq!(Host::from_authority(&raw).as_str(), before::authority_host(&raw));
            // `Auth::return_target`'s test of a host it may send the browser back to.
            proptest::prop_assert_eq!(h.plain_name().is_some(), before::return_host_ok(&raw));
            if let Some(name) = h.plain_name() {
                proptest::prop_assert_eq!(name, before::strip_port(&raw));
            }
        }
    }

    fn url_host(host: &str) -> Option<String> {
        Host::parse(host).url_host()
    }

    #[test]
    fn authority_host_drops_user_info_keeps_port() {
        assert_eq!(
            Host::from_authority("apps.example.org:8443").as_str(),
            "apps.example.org:8443"
        );
        assert_eq!(
            Host::from_authority("u:p@apps.example.org").as_str(),
            "apps.example.org"
        );
        assert_eq!(Host::from_authority("[::1]:8443").as_str(), "[::1]:8443");
    }

    #[test]
    fn strip_port_handles_v4_v6_and_names() {
        assert_eq!(Host::parse("a.example.org:8080").name(), "a.example.org");
        assert_eq!(Host::parse("a.example.org").name(), "a.example.org");
        assert_eq!(Host::parse("[::1]:80").name(), "::1");
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
}
