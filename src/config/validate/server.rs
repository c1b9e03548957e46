//! `[server]`: plain, TLS and admin listeners, worker threads, the landing upstream, and the
//! trusted proxies.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use ipnet::IpNet;

use super::{path, Ctx};
use crate::config::file::{quote, ServerFile, Sp};
use crate::config::model::ServerConfig;

const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8080);

/// A table's span, or the document start when the table is absent.
fn table_span<T>(t: Option<&Sp<T>>) -> Range<usize> {
    t.map(|t| t.span()).unwrap_or(0..0)
}

pub(super) fn server(
    ctx: &mut Ctx<'_, '_>,
    table: Option<&Sp<ServerFile>>,
    upstream_names: &[Option<String>],
) -> Option<ServerConfig> {
    let default = ServerFile::default();
    let s = table.map(|t| t.get_ref()).unwrap_or(&default);
    let tspan = table_span(table);

    let listen = match &s.listen {
        Some(list) => socket_addrs(ctx, list, "server.listen"),
        None if ctx.invalid.contains("server.listen") => None,
        None => Some(vec![DEFAULT_LISTEN]),
    };
    let tls_listen = match &s.tls_listen {
        Some(list) => socket_addrs(ctx, list, "server.tls_listen"),
        None if ctx.invalid.contains("server.tls_listen") => None,
        None => Some(Vec::new()),
    };
    if let (Some(plain), Some(tls)) = (&listen, &tls_listen) {
        if plain.is_empty() && tls.is_empty() {
            let span = s
                .listen
                .as_ref()
                .map(|l| l.span())
                .unwrap_or_else(|| tspan.clone());
            ctx.err(
                span,
                "server.listen and server.tls_listen are both empty, so nothing would listen: \
                 give at least one \"ip:port\" in listen or tls_listen",
            );
        }
    }

    let tls_cert = path(ctx, s.tls_cert.as_ref(), "server.tls_cert");
    let tls_key = path(ctx, s.tls_key.as_ref(), "server.tls_key");
    let tls_wanted = tls_listen.as_ref().is_some_and(|t| !t.is_empty())
        || ctx.invalid.contains("server.tls_listen");
    if tls_wanted {
        let span = s
            .tls_listen
            .as_ref()
            .map(|t| t.span())
            .unwrap_or_else(|| tspan.clone());
        for (key, value) in [("tls_cert", &s.tls_cert), ("tls_key", &s.tls_key)] {
            if !ctx.written(&format!("server.{key}"), value) {
                ctx.err(
                    span.clone(),
                    format!(
                        "server.tls_listen is set but server.{key} is missing: TLS listeners \
                         need both tls_cert and tls_key"
                    ),
                );
            }
        }
    } else if tls_listen.is_some() {
        for (key, value) in [("tls_cert", &s.tls_cert), ("tls_key", &s.tls_key)] {
            if let Some(v) = value {
                ctx.err(
                    v.span(),
                    format!(
                        "server.{key} is set but server.tls_listen is empty: tls_cert and \
                         tls_key are only used with tls_listen, so set all three or none"
                    ),
                );
            }
        }
    }

    let redirect_to_https = redirect_to_https(ctx, s, tls_wanted);

    let threads = s.threads.as_ref().and_then(|t| {
        let n = *t.get_ref();
        match usize::try_from(n) {
            Ok(n) if (1..=1024).contains(&n) => Some(n),
            _ => {
                ctx.err(
                    t.span(),
                    format!(
                        "server.threads is {n}: expected a number of worker threads from 1 to 1024"
                    ),
                );
                None
            }
        }
    });
    let threads_ok = s.threads.is_none() || threads.is_some();

    let admin_listen = match &s.admin_listen {
        Some(a) => socket_addr(ctx, a, "server.admin_listen").map(Some),
        None => Some(None),
    };

    // One address, one listener.
    let mut seen: Vec<SocketAddr> = Vec::new();
    if s.listen.is_none() {
        seen.extend(listen.iter().flatten());
    }
    let lists = [(&s.listen, &listen), (&s.tls_listen, &tls_listen)];
    for (written, parsed) in lists {
        if let (Some(written), Some(parsed)) = (written, parsed) {
            for (w, addr) in written.get_ref().iter().zip(parsed) {
                if seen.contains(addr) {
                    ctx.err(
                        w.span(),
                        format!(
                            "address {addr} is listed twice: each listener needs its own address"
                        ),
                    );
                } else {
                    seen.push(*addr);
                }
            }
        }
    }
    if let (Some(w), Some(Some(addr))) = (&s.admin_listen, &admin_listen) {
        if seen.contains(addr) {
            ctx.err(
                w.span(),
                format!(
                    "server.admin_listen {addr} is also a proxy listener: give the admin \
                     listener its own address"
                ),
            );
        }
    }

    let landing = match &s.landing {
        None => Some(0),
        Some(l) => {
            let wanted = l.get_ref();
            match upstream_names
                .iter()
                .position(|n| n.as_deref() == Some(wanted.as_str()))
            {
                Some(i) => Some(i),
                None => {
                    let known: Vec<String> =
                        upstream_names.iter().flatten().map(|n| quote(n)).collect();
                    let allowed = if known.is_empty() {
                        "expected the name of an [[upstream]]".to_owned()
                    } else {
                        format!("expected one of {}", known.join(", "))
                    };
                    ctx.err(
                        l.span(),
                        format!(
                            "server.landing {} names no upstream: {allowed}",
                            quote(wanted)
                        ),
                    );
                    None
                }
            }
        }
    };

    let trusted_proxies = match &s.trusted_proxies {
        None => Some(Vec::new()),
        Some(list) => {
            let mut out = Vec::new();
            let mut ok = true;
            for item in list.get_ref() {
                let text = item.get_ref().trim();
                let net = text
                    .parse::<IpNet>()
                    .map(|n| n.trunc())
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from));
                match net {
                    Ok(n) => out.push(n),
                    Err(_) => {
                        ok = false;
                        ctx.err(
                            item.span(),
                            format!(
                                "server.trusted_proxies entry {} is not an address: expected a \
                                 CIDR like \"10.0.0.0/8\" or an IP address like \"192.0.2.7\"",
                                quote(item.get_ref())
                            ),
                        );
                    }
                }
            }
            ok.then_some(out)
        }
    };

    if !threads_ok {
        return None;
    }
    Some(ServerConfig {
        listen: listen?,
        tls_listen: tls_listen?,
        tls_cert: tls_cert?,
        tls_key: tls_key?,
        redirect_to_https: redirect_to_https?,
        threads,
        admin_listen: admin_listen?,
        landing: landing?,
        trusted_proxies: trusted_proxies?,
    })
}

/// `redirect_to_https`: only with an HTTPS listener to send browsers to.
fn redirect_to_https(ctx: &mut Ctx<'_, '_>, s: &ServerFile, tls_wanted: bool) -> Option<bool> {
    let Some(v) = &s.redirect_to_https else {
        return Some(false);
    };
    if *v.get_ref() && !tls_wanted {
        ctx.err(
            v.span(),
            "server.redirect_to_https is true but server.tls_listen is empty: the redirect sends \
             browsers to the gateway's HTTPS listener, so set tls_listen (with tls_cert and \
             tls_key) or remove redirect_to_https",
        );
        return None;
    }
    Some(*v.get_ref())
}

fn socket_addr(ctx: &mut Ctx<'_, '_>, v: &Sp<String>, shown: &str) -> Option<SocketAddr> {
    match v.get_ref().trim().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            ctx.err(
                v.span(),
                format!(
                    "{shown} {} is not an address: expected \"ip:port\" such as \"0.0.0.0:8080\" \
                     or \"[::]:8080\"",
                    quote(v.get_ref())
                ),
            );
            None
        }
    }
}

fn socket_addrs(
    ctx: &mut Ctx<'_, '_>,
    list: &Sp<Vec<Sp<String>>>,
    shown: &str,
) -> Option<Vec<SocketAddr>> {
    let mut out = Vec::new();
    let mut ok = true;
    for item in list.get_ref() {
        match socket_addr(ctx, item, shown) {
            Some(a) => out.push(a),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn server_absent_gets_defaults() {
        let c = ok(&format!("{CLEVER}{UPSTREAM}"));
        assert_eq!(c.server.listen, vec![DEFAULT_LISTEN]);
        assert!(c.server.tls_listen.is_empty());
        assert_eq!(c.server.threads, None);
        assert_eq!(c.server.admin_listen, None);
        assert_eq!(c.server.landing, 0);
        assert!(c.server.trusted_proxies.is_empty());
    }

    #[test]
    fn server_listen_list_is_parsed() {
        let c = ok(&doc(
            r#"listen = ["127.0.0.1:80", "[::1]:8080"]"#,
            "",
            "",
            "",
        ));
        assert_eq!(c.server.listen.len(), 2);
        assert_eq!(c.server.listen[1], "[::1]:8080".parse().unwrap());
    }

    #[test]
    fn server_listen_hostname_is_error_at_entry() {
        let src = doc(r#"listen = ["127.0.0.1:80", "localhost:80"]"#, "", "", "");
        let p = one(&src, &["server.listen", "\"localhost:80\"", "ip:port"]);
        assert_eq!((p.line, p.col), (2, 27));
    }

    #[test]
    fn server_listen_and_tls_listen_empty_is_error() {
        one(&doc("listen = []", "", "", ""), &["both empty"]);
    }

    #[test]
    fn server_tls_listen_without_cert_and_key_reports_both() {
        let p = problems(&doc(r#"tls_listen = ["0.0.0.0:8443"]"#, "", "", ""));
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(p[0].message.contains("tls_cert") || p[1].message.contains("tls_cert"));
        assert!(p.iter().any(|p| p.message.contains("tls_key is missing")));
    }

    #[test]
    fn server_tls_cert_without_tls_listen_is_error() {
        one(
            &doc(r#"tls_cert = "/c.pem""#, "", "", ""),
            &["server.tls_cert", "tls_listen is empty"],
        );
    }

    #[test]
    fn server_tls_only_complete_is_accepted() {
        let c = ok(&doc(
            "listen = []\ntls_listen = [\"0.0.0.0:8443\"]\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"",
            "",
            "",
            "",
        ));
        assert!(c.server.listen.is_empty());
        assert_eq!(c.server.tls_cert, Some(PathBuf::from("/c.pem")));
        assert_eq!(c.server.tls_key, Some(PathBuf::from("/k.pem")));
    }

    const TLS: &str =
        "tls_listen = [\"0.0.0.0:8443\"]\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"";

    #[test]
    fn server_redirect_to_https_defaults_to_false() {
        assert!(!ok(&doc(TLS, "", "", "")).server.redirect_to_https);
    }

    #[test]
    fn server_redirect_to_https_with_tls_listen_is_kept() {
        let c = ok(&doc(
            &format!("{TLS}\nredirect_to_https = true"),
            "",
            "",
            "",
        ));
        assert!(c.server.redirect_to_https);
    }

    #[test]
    fn server_redirect_to_https_without_tls_listen_is_error_at_value() {
        let src = doc("redirect_to_https = true", "", "", "");
        let p = one(
            &src,
            &[
                "server.redirect_to_https",
                "tls_listen is empty",
                "set tls_listen",
            ],
        );
        assert_eq!(p.line, line_of(&src, "redirect_to_https"));
        assert_eq!(p.col, "redirect_to_https = ".len() + 1);
        // false needs nothing.
        ok(&doc("redirect_to_https = false", "", "", ""));
    }

    #[test]
    fn server_same_address_twice_is_error() {
        one(
            &doc(
                "listen = [\"0.0.0.0:8080\"]\ntls_listen = [\"0.0.0.0:8080\"]\ntls_cert = \"/c\"\ntls_key = \"/k\"",
                "",
                "",
                "",
            ),
            &["listed twice"],
        );
    }

    #[test]
    fn server_threads_in_range_is_kept() {
        assert_eq!(
            ok(&doc("threads = 1024", "", "", "")).server.threads,
            Some(1024)
        );
        assert_eq!(ok(&doc("threads = 1", "", "", "")).server.threads, Some(1));
    }

    #[test]
    fn server_threads_out_of_range_is_error() {
        one(&doc("threads = 0", "", "", ""), &["1 to 1024"]);
        one(&doc("threads = 1025", "", "", ""), &["1 to 1024"]);
        one(&doc("threads = -3", "", "", ""), &["1 to 1024"]);
    }

    #[test]
    fn server_threads_huge_integer_is_error_not_panic() {
        one(
            &doc("threads = 0x7fffffffffffffff", "", "", ""),
            &["1 to 1024"],
        );
        one(
            &doc("threads = 99999999999999999999", "", "", ""),
            &["threads"],
        );
    }

    #[test]
    fn server_threads_string_is_type_error() {
        let src = doc("threads = \"2\"", "", "", "");
        let p = one(
            &src,
            &[
                "wrong type for server.threads",
                "expected an integer",
                "found a string",
            ],
        );
        assert_eq!((p.line, p.col), (2, 11));
    }

    #[test]
    fn server_admin_listen_is_parsed() {
        let c = ok(&doc(r#"admin_listen = "127.0.0.1:9090""#, "", "", ""));
        assert_eq!(
            c.server.admin_listen,
            Some("127.0.0.1:9090".parse().unwrap())
        );
    }

    #[test]
    fn server_admin_listen_bad_is_error() {
        one(
            &doc(r#"admin_listen = "9090""#, "", "", ""),
            &["server.admin_listen"],
        );
    }

    #[test]
    fn server_admin_listen_same_as_listen_is_error() {
        one(
            &doc(r#"admin_listen = "0.0.0.0:8080""#, "", "", ""),
            &["its own address"],
        );
    }

    #[test]
    fn server_landing_names_upstream_index() {
        let src = doc(
            r#"landing = "second""#,
            "",
            "",
            "[[upstream]]\nname = \"second\"\nurl = \"http://127.0.0.1:9001\"\npath_prefix = \"/b\"",
        );
        assert_eq!(ok(&src).server.landing, 1);
    }

    #[test]
    fn server_landing_unknown_lists_upstreams() {
        one(
            &doc(r#"landing = "nope""#, "", "", ""),
            &["\"nope\" names no upstream", "\"app\""],
        );
    }

    #[test]
    fn server_trusted_proxies_accept_cidrs_and_bare_ips() {
        let c = ok(&doc(
            r#"trusted_proxies = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "10.1.2.3/16"]"#,
            "",
            "",
            "",
        ));
        let nets: Vec<String> = c
            .server
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            nets,
            ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "10.1.0.0/16"]
        );
    }

    #[test]
    fn server_trusted_proxies_bad_entry_is_error() {
        one(
            &doc(r#"trusted_proxies = ["10.0.0.0/33"]"#, "", "", ""),
            &["CIDR"],
        );
    }
}
