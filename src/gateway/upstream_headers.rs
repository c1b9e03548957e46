//! Header hygiene on the way upstream: scrub spoofable identity headers, remove the gateway's
//! cookies, set `X-Forwarded-*` and `X-Request-Id` (dropping the client's other forwarding and
//! path-override claims, which `claims` names), and the session's headers (identity headers
//! and `set_headers`, rendered once per session).

use std::borrow::Cow;
use std::net::IpAddr;

use bytes::Bytes;
use http::header::COOKIE;
use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

use crate::config::{SendHeader, SendValue};
use crate::identity::{is_spoofable_identity_header, ValueSpec};
use crate::session::cookies::CookieJarSpec;
use crate::session::SessionRecord;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The original request URI, as nginx (by recipe), Traefik and Caddy send it to forward-auth.
pub const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");

/// The case a forwarding header the gateway sets is written in (the session's headers carry
/// their own, [`SendHeader::wire`]).
pub fn wire_name(name: &HeaderName) -> Option<&'static str> {
    Some(match name.as_str() {
        "x-forwarded-for" => "X-Forwarded-For",
        "x-forwarded-proto" => "X-Forwarded-Proto",
        "x-forwarded-host" => "X-Forwarded-Host",
        "x-request-id" => "X-Request-Id",
        _ => return None,
    })
}

/// The header edits to apply, decided without pingora so they can be tested on a `HeaderMap`.
#[derive(Debug, Default)]
pub struct Edits {
    pub remove: Vec<HeaderName>,
    pub set: Vec<(HeaderName, HeaderValue)>,
}

/// Names of incoming headers that could carry identity (all of `X-Clever-*` and every
/// configured identity header name, `_`/`-` and case folded). `configured` holds canonical
/// names (see `identity::canonical_header_name`).
pub fn spoofable(headers: &HeaderMap, configured: &[String]) -> Vec<HeaderName> {
    let mut out: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        if is_spoofable_identity_header(name.as_str(), configured) && !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

/// What to do with the `Cookie` header on the way upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamCookie {
    /// Leave it as it is: one `Cookie` header (or none) with nothing of the gateway's in it.
    Keep,
    /// Remove it: only the gateway's cookies were in it.
    Remove,
    /// Replace every `Cookie` header with this one value, without the gateway's cookies.
    Set(HeaderValue),
}

/// The single `Cookie` header to send upstream, without the gateway's cookies. Costs no
/// allocation when there is nothing to remove from a single header (public paths, apps'
/// own requests without a gateway cookie).
pub fn upstream_cookie(headers: &HeaderMap, jar: &CookieJarSpec) -> UpstreamCookie {
    let mut values = headers.get_all(COOKIE).iter();
    let (Some(first), None) = (values.next(), values.next()) else {
        return merged_cookie(headers, jar);
    };
    let raw = first.as_bytes();
    match jar.strip_cow(raw) {
        Cow::Borrowed(kept) if kept.len() == raw.len() && !kept.is_empty() => UpstreamCookie::Keep,
        kept if kept.is_empty() => UpstreamCookie::Remove,
        kept => match HeaderValue::from_maybe_shared(Bytes::from(kept.into_owned())) {
            Ok(v) => UpstreamCookie::Set(v),
            Err(_) => UpstreamCookie::Remove,
        },
    }
}

/// Several `Cookie` headers (HTTP/2 sends one per cookie) joined into one, or none.
fn merged_cookie(headers: &HeaderMap, jar: &CookieJarSpec) -> UpstreamCookie {
    let mut joined: Vec<u8> = Vec::new();
    for v in headers.get_all(COOKIE) {
        let kept = jar.strip_cow(v.as_bytes());
        if !kept.is_empty() {
            if !joined.is_empty() {
                joined.extend_from_slice(b"; ");
            }
            joined.extend_from_slice(&kept);
        }
    }
    if joined.is_empty() {
        return if headers.contains_key(COOKIE) {
            UpstreamCookie::Remove
        } else {
            UpstreamCookie::Keep
        };
    }
    match HeaderValue::from_maybe_shared(Bytes::from(joined)) {
        Ok(v) => UpstreamCookie::Set(v),
        Err(_) => UpstreamCookie::Remove,
    }
}

/// Inputs to the forwarding headers.
#[derive(Debug, Clone, Copy)]
pub struct ForwardFacts<'a> {
    pub client_ip: Option<IpAddr>,
    pub tls: bool,
    pub host: Option<&'a str>,
    /// The request id, as the header value it is sent as.
    pub request_id: &'a HeaderValue,
}

/// `X-Forwarded-For/-Proto/-Host` and `X-Request-Id`. A client's values are replaced unless it
/// is a trusted proxy, whose chain is kept and appended to. The client's other forwarding and
/// path-override claims are dropped (`claims::dropped`). `remove` lists only what is not also
/// set (setting replaces).
pub fn forwarding(headers: &HeaderMap, facts: ForwardFacts<'_>, trusted: &[IpNet]) -> Edits {
    let from_trusted = facts
        .client_ip
        .is_some_and(|ip| trusted.iter().any(|n| n.contains(&ip)));
    let mut e = Edits {
        remove: super::claims::dropped(headers, from_trusted),
        set: Vec::with_capacity(4),
    };
    let xff = if from_trusted {
        let client = facts.client_ip.map(|ip| ip.to_string());
        let prior_xff = Some(
            headers
                .get_all(&X_FORWARDED_FOR)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(", "),
        )
        .filter(|s| !s.is_empty());
        let xff = match (prior_xff, client) {
            (Some(p), Some(c)) => Some(format!("{p}, {c}")),
            (Some(p), None) => Some(p),
            (None, c) => c,
        };
        xff.and_then(|v| HeaderValue::from_str(&v).ok())
    } else {
        facts.client_ip.map(ip_value)
    };
    match xff {
        Some(v) => e.set.push((X_FORWARDED_FOR, v)),
        None => e.remove.push(X_FORWARDED_FOR),
    }
    let keep = |name: &HeaderName| from_trusted.then(|| headers.get(name).cloned()).flatten();
    let proto = keep(&X_FORWARDED_PROTO)
        .unwrap_or_else(|| HeaderValue::from_static(if facts.tls { "https" } else { "http" }));
    e.set.push((X_FORWARDED_PROTO, proto));
    let fhost =
        keep(&X_FORWARDED_HOST).or_else(|| facts.host.and_then(|h| HeaderValue::from_str(h).ok()));
    match fhost {
        Some(h) => e.set.push((X_FORWARDED_HOST, h)),
        None => e.remove.push(X_FORWARDED_HOST),
    }
    e.set.push((X_REQUEST_ID, facts.request_id.clone()));
    e
}

/// An IP address as `Display` writes it, as a header value; IPv4 without the formatting
/// machinery (it is on every forwarded request): `Ipv4Addr`'s `Display` cost 1.6k
/// instructions of a signed-in request's 124k (1.3%, `bench/callgrind.sh`, 2026-12-05).
pub fn ip_value(ip: IpAddr) -> HeaderValue {
    match ip {
        IpAddr::V4(v4) => {
            let mut buf = [0u8; 15];
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
            HeaderValue::from_bytes(&buf[..n]).unwrap_or_else(|_| HeaderValue::from_static(""))
        }
        IpAddr::V6(_) => {
            HeaderValue::from_str(&ip.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
        }
    }
}

/// The values of `headers` for this session, in order, each a reference count of the values
/// rendered once for the session (`specs`: the configuration's); a header without a value for
/// this user is left out.
pub fn session_headers<'a>(
    headers: &'a [SendHeader],
    rec: &'a SessionRecord,
    specs: &'a [ValueSpec],
) -> impl Iterator<Item = (&'a SendHeader, HeaderValue)> + 'a {
    let rendered = rec.rendered(specs);
    headers.iter().filter_map(move |h| {
        let value = match h.value {
            SendValue::Token => rec.access_token_value(),
            SendValue::Spec(i) => rendered.value(&rec.identity, i),
        }?;
        Some((h, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::identity::{header_safe_value, Field, Identity, IdentityBuilder, UserType};
    use crate::secret::Secret;
    use std::time::{Duration, SystemTime};

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    fn record(id: Identity) -> SessionRecord {
        SessionRecord::new(
            id,
            Secret::new("ilTOKEN"),
            SystemTime::now(),
            Duration::from_secs(60),
        )
    }

    fn teacher() -> IdentityBuilder {
        Identity::builder("5fc43758db087d0be186c29d")
            .district("5d0a9e5d0958b300014e49d2")
            .role(UserType::Teacher)
            .role(UserType::DistrictAdmin)
    }

    fn rec(email: Option<&str>, name: Option<&str>) -> SessionRecord {
        let mut b = teacher();
        if let Some(e) = email {
            b = b.with(Field::Email, e);
        }
        if let Some(n) = name {
            b = b.with(Field::Name, n);
        }
        record(b.build())
    }

    /// A config whose one upstream has `extra` lines.
    fn cfg(extra: &str) -> Config {
        crate::config::parse_str(
            &format!(
                "[clever]\nclient_id = \"c\"\nclient_secret_env = \"S\"\n\
                 redirect_uri = \"https://gw.example.org/cb\"\ndiscover_district_tokens = true\n\
                 [[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9\"\n{extra}\n"
            ),
            "t.toml",
        )
        .unwrap()
    }

    /// What the upstream receives from the session: (wire name, value).
    fn sent(c: &Config, rec: &SessionRecord) -> Vec<(String, String)> {
        session_headers(&c.upstreams[0].headers, rec, &c.header_specs)
            .map(|(h, v)| {
                (
                    String::from_utf8_lossy(&h.wire).into_owned(),
                    v.to_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn get(sent: &[(String, String)], name: &str) -> Option<String> {
        sent.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    #[test]
    fn spoofable_finds_every_variant_once() {
        let h = map(&[
            ("x-clever-user-id", "1"),
            ("x-clever-user-id", "2"),
            ("x_clever_user_type", "admin"),
            ("x-my-user", "eve"),
            ("accept", "*/*"),
        ]);
        let got = spoofable(&h, &["x-my-user".to_string()]);
        let names: Vec<&str> = got.iter().map(|n| n.as_str()).collect();
        assert_eq!(
            names,
            vec!["x-clever-user-id", "x_clever_user_type", "x-my-user"]
        );
    }

    #[test]
    fn forwarding_replaces_untrusted_values() {
        let h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
        ]);
        let e = forwarding(
            &h,
            ForwardFacts {
                client_ip: Some("192.0.2.7".parse().unwrap()),
                tls: false,
                host: Some("apps.example.org"),
                request_id: &HeaderValue::from_static("rid"),
            },
            &[],
        );
        let get = |n: &HeaderName| e.set.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get(&X_FORWARDED_FOR).unwrap(), "192.0.2.7");
        assert_eq!(get(&X_FORWARDED_PROTO).unwrap(), "http");
        assert_eq!(get(&X_FORWARDED_HOST).unwrap(), "apps.example.org");
        assert_eq!(get(&X_REQUEST_ID).unwrap(), "rid");
    }

    #[test]
    fn forwarding_without_client_ip_or_host_removes_them() {
        let h = map(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-host", "evil")]);
        let e = forwarding(
            &h,
            ForwardFacts {
                client_ip: None,
                tls: true,
                host: None,
                request_id: &HeaderValue::from_static("rid"),
            },
            &[],
        );
        assert_eq!(e.remove, vec![X_FORWARDED_FOR, X_FORWARDED_HOST]);
        let names: Vec<&str> = e.set.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, vec!["x-forwarded-proto", "x-request-id"]);
    }

    #[test]
    fn ip_value_writes_what_display_writes() {
        let mut ips: Vec<IpAddr> = [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "192.0.2.44",
            "100.9.10.99",
            "::1",
            "::ffff:192.0.2.1",
            "2001:db8::8a2e:370:7334",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        for o in 0..=255u8 {
            ips.push(IpAddr::from([o, 255 - o, o / 3, o.wrapping_mul(7)]));
        }
        for ip in ips {
            assert_eq!(ip_value(ip), ip.to_string().as_str(), "{ip}");
        }
    }

    #[test]
    fn forwarding_trusted_proxy_chain_appended() {
        let h = map(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ]);
        let e = forwarding(
            &h,
            ForwardFacts {
                client_ip: Some("10.1.2.3".parse().unwrap()),
                tls: false,
                host: Some("h"),
                request_id: &HeaderValue::from_static("rid"),
            },
            &["10.0.0.0/8".parse().unwrap()],
        );
        let get = |n: &HeaderName| e.set.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get(&X_FORWARDED_FOR).unwrap(), "203.0.113.9, 10.1.2.3");
        assert_eq!(get(&X_FORWARDED_PROTO).unwrap(), "https");
    }

    #[test]
    fn identity_headers_default_names_and_roles() {
        let c = cfg("");
        let got = sent(&c, &rec(Some("a@b.org"), Some("Ada")));
        assert_eq!(
            got,
            [
                ("X-Clever-User-Id".into(), "5fc43758db087d0be186c29d".into()),
                ("X-Clever-User-Type".into(), "teacher,district_admin".into()),
                (
                    "X-Clever-District-Id".into(),
                    "5d0a9e5d0958b300014e49d2".into()
                ),
            ]
        );
    }

    #[test]
    fn identity_headers_email_name_only_when_configured_and_encoded() {
        let c = cfg("[upstream.headers]\nemail = \"X-Clever-Email\"\nname = \"x-clever-name\"");
        let got = sent(&c, &rec(Some("a@b.org"), Some("José Ñúñez")));
        assert_eq!(get(&got, "x-clever-email").unwrap(), "a@b.org");
        assert_eq!(
            get(&got, "x-clever-name").unwrap(),
            "UTF-8''Jos%C3%A9%20%C3%91%C3%BA%C3%B1ez"
        );
        assert!(
            got.iter().any(|(k, _)| k == "x-clever-name"),
            "sent as written"
        );
        assert!(get(&got, "x-clever-access-token").is_none());
    }

    #[test]
    fn identity_access_token_only_with_forward_access_token() {
        let c = cfg("forward_access_token = true");
        let got = sent(&c, &rec(None, None));
        assert_eq!(get(&got, "x-clever-access-token").unwrap(), "ilTOKEN");
    }

    #[test]
    fn identity_prerendered_values_equal_per_request_rendering() {
        let c = cfg("[upstream.headers]\nemail = \"X-Clever-Email\"\nname = \"X-Clever-Name\"");
        let odd = [
            "",
            "plain",
            "José Ñúñez",
            "UTF-8''looks-encoded",
            "tab\there",
            "Eve\r\nX-Clever-User-Id: 1",
            "del\u{7f}",
            "日本語",
            " spaced ",
        ];
        for (i, text) in odd.iter().enumerate() {
            let types: &[UserType] = match i % 4 {
                0 => &[],
                1 => &[UserType::Teacher],
                2 => &[UserType::DistrictAdmin, UserType::Teacher],
                _ => &[UserType::Student, UserType::Contact],
            };
            let mut b = Identity::builder(text)
                .roles(types.iter().copied())
                .with(Field::Email, &format!("{text}@example.org"));
            if i % 3 == 2 {
                b = b.district(text);
            }
            if i % 2 == 0 {
                b = b.with(Field::Name, text);
            }
            let id = b.build();
            // What rendering each value per request would send.
            let mut want: Vec<(String, String)> = Vec::new();
            let mut put = |name: &str, value: Option<&str>| {
                if let Some(v) = value.filter(|v| !v.is_empty()) {
                    let v = header_safe_value(v);
                    if HeaderValue::from_str(&v).is_ok() {
                        want.push((name.to_string(), v));
                    }
                }
            };
            put("X-Clever-User-Id", id.get(Field::Id));
            put("X-Clever-User-Type", Some(id.user_type_header()));
            put("X-Clever-District-Id", id.district_id());
            put("X-Clever-Email", id.get(Field::Email));
            put("X-Clever-Name", id.get(Field::Name));
            assert_eq!(sent(&c, &record(id)), want, "{text:?}");
        }
    }

    #[test]
    fn identity_prerendered_values_share_the_session_buffer() {
        let c = cfg("");
        let r = rec(Some("a@b.org"), Some("Ada"));
        let first = |r: &SessionRecord| {
            session_headers(&c.upstreams[0].headers, r, &c.header_specs)
                .next()
                .unwrap()
                .1
        };
        let (a, b) = (first(&r), first(&r));
        assert_eq!(
            a.as_bytes().as_ptr(),
            b.as_bytes().as_ptr(),
            "no copy per request"
        );
    }

    #[test]
    fn identity_school_and_section_ids_only_when_named_and_known() {
        let with_ids = |schools: &[&str], sections: &[&str]| {
            record(
                teacher()
                    .ids(Field::SchoolIds, schools)
                    .ids(Field::SectionIds, sections)
                    .build(),
            )
        };
        let plain = sent(&cfg(""), &with_ids(&["s1", "s2"], &[]));
        assert!(!plain.iter().any(|(k, _)| k.contains("Ids")));
        let c = cfg("[upstream.headers]\nschool_ids = \"X-Clever-School-Ids\"\nsection_ids = \"X-Clever-Section-Ids\"");
        // A session renders its values for the one configuration of its process: a fresh one.
        let got = sent(&c, &with_ids(&["s1", "s2"], &[]));
        assert_eq!(get(&got, "x-clever-school-ids").unwrap(), "s1,s2");
        assert!(
            get(&got, "x-clever-section-ids").is_none(),
            "no sections: no header"
        );
        let got = sent(&c, &with_ids(&["s1", "s2"], &["c1"]));
        assert_eq!(get(&got, "x-clever-section-ids").unwrap(), "c1");
    }

    #[test]
    fn set_headers_follow_the_identity_headers_as_written() {
        let c = cfg("[upstream.set_headers]\n\"X-Remote-User\" = { student = \"{student_number}\", teacher = [\"{district_username}\", \"{email|local|lower}\"] }\n\"x-display-name\" = \"{last_name}, {first_name}\"");
        let r = record(
            teacher()
                .with(Field::Email, "Maria.Lopez@x.org")
                .with(Field::FirstName, "Maria")
                .build(),
        );
        let got = sent(&c, &r);
        assert_eq!(
            got[3..],
            [("X-Remote-User".to_string(), "maria.lopez".to_string())],
            "no last name: X-Display-Name is not sent"
        );
    }

    #[test]
    fn wire_name_title_cases_own_names_only() {
        assert_eq!(wire_name(&X_FORWARDED_FOR), Some("X-Forwarded-For"));
        assert_eq!(wire_name(&HeaderName::from_static("x-school-user")), None);
        for n in [
            X_FORWARDED_FOR,
            X_FORWARDED_PROTO,
            X_FORWARDED_HOST,
            X_REQUEST_ID,
        ] {
            assert!(wire_name(&n).unwrap().eq_ignore_ascii_case(n.as_str()));
        }
    }

    #[test]
    fn upstream_cookie_merges_and_strips() {
        let jar = CookieJarSpec {
            session: "clever_gateway".into(),
            login: "clever_gateway_login".into(),
            bounce: "clever_gateway_bounce".into(),
            secure: true,
            domain: None,
        };
        let set = |v: &str| UpstreamCookie::Set(HeaderValue::from_str(v).unwrap());
        let h = map(&[("cookie", "a=1; clever_gateway=S"), ("cookie", "b=2")]);
        assert_eq!(upstream_cookie(&h, &jar), set("a=1; b=2"));
        let h = map(&[("cookie", "clever_gateway=S")]);
        assert_eq!(upstream_cookie(&h, &jar), UpstreamCookie::Remove);
        let h = map(&[("cookie", "a=1; clever_gateway=S; b=2")]);
        assert_eq!(upstream_cookie(&h, &jar), set("a=1; b=2"));
        let h = map(&[("cookie", "a=1;b=2")]);
        assert_eq!(
            upstream_cookie(&h, &jar),
            set("a=1; b=2"),
            "re-spaced as before"
        );
        let h = map(&[
            ("cookie", "clever_gateway=S"),
            ("cookie", "clever_gateway_login=L"),
        ]);
        assert_eq!(upstream_cookie(&h, &jar), UpstreamCookie::Remove);
        let h = map(&[("cookie", "")]);
        assert_eq!(upstream_cookie(&h, &jar), UpstreamCookie::Remove);
    }

    #[test]
    fn upstream_cookie_without_gateway_cookies_kept_as_is() {
        let jar = CookieJarSpec {
            session: "clever_gateway".into(),
            login: "clever_gateway_login".into(),
            bounce: "clever_gateway_bounce".into(),
            secure: true,
            domain: None,
        };
        for raw in [
            "a=1",
            "a=1; b=2",
            "PHPSESSID=x; theme=dark; clever_gateway2=y",
        ] {
            let h = map(&[("cookie", raw)]);
            assert_eq!(upstream_cookie(&h, &jar), UpstreamCookie::Keep, "{raw}");
        }
        assert_eq!(
            upstream_cookie(&HeaderMap::new(), &jar),
            UpstreamCookie::Keep
        );
    }
}
