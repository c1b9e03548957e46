//! `[[upstream]]`: names and routes (host, path_prefix) unique across upstreams, URLs (resolved
//! now) and their TLS keys, who may enter, the app's cookies and logout paths. Identity header
//! names are in [`super::headers`].

use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::path::PathBuf;

use url::Host;

use super::headers::{headers, Specs};
use super::{val, vals, Ctx};
use crate::config::file::{quote, span_of, Sp, Table, Tables, UpstreamFile};
use crate::config::leaf::{HttpUrl, PathPrefix};
use crate::config::model::{Upstream, UpstreamUrl};

/// Returns the upstreams (when all are valid) and each upstream's name as written (by index).
pub(super) fn upstreams(
    ctx: &mut Ctx<'_, '_>,
    list: Option<&Tables<UpstreamFile>>,
    specs: &mut Specs,
) -> (Option<Vec<Upstream>>, Vec<Option<String>>) {
    let Some(list) = list.filter(|l| !l.get_ref().is_empty()) else {
        ctx.missing(
            "upstream",
            list.map_or(0..0, |l| l.span()),
            "no [[upstream]] table: define at least one [[upstream]] with a name and a url",
        );
        return (None, Vec::new());
    };
    let (mut out, mut names) = (Vec::new(), Vec::new());
    // (host, path_prefix, name) of each upstream whose route could be read.
    let mut routes: Vec<(Option<String>, String, Option<String>)> = Vec::new();
    for (i, up) in list.get_ref().iter().enumerate() {
        let (upstream, route) = upstream(ctx, i, up, specs);
        let name = val(&up.get_ref().name).map(|n| n.0);
        if let Some(n) = up.get_ref().name.as_ref().filter(|_| names.contains(&name)) {
            ctx.err(
                n.span(),
                format!(
                    "upstream.name {} is already used by an earlier upstream: each upstream needs \
                     its own name",
                    quote(&n.text)
                ),
            );
        }
        if let Some((host, prefix, span)) = route {
            match routes.iter().find(|(h, p, _)| *h == host && *p == prefix) {
                Some((_, _, other)) => ctx.err(
                    span,
                    format!(
                        "upstream path_prefix {} on {} is already routed to {}: each (host, \
                         path_prefix) pair must be unique",
                        quote(&prefix),
                        host.as_deref().map_or("any host".into(), quote),
                        other
                            .as_deref()
                            .map_or("an earlier upstream".into(), |n| format!(
                                "upstream {}",
                                quote(n)
                            ))
                    ),
                ),
                None => routes.push((host, prefix, name.clone())),
            }
        }
        names.push(name);
        out.push(upstream);
    }
    (out.into_iter().collect(), names)
}

type Route = (Option<String>, String, Range<usize>);

/// Validates one upstream; also returns its route (host, prefix, span) when readable, for the
/// checks across upstreams.
fn upstream(
    ctx: &mut Ctx<'_, '_>,
    i: usize,
    table: &Table<UpstreamFile>,
    specs: &mut Specs,
) -> (Option<Upstream>, Option<Route>) {
    let (u, tspan) = (table.get_ref(), table.span());
    let key = |k: &str| format!("upstream[{i}].{k}");
    let name = ctx.required(
        &key("name"),
        &u.name,
        tspan.clone(),
        "expected a name of letters, digits, \"_\", \".\" or \"-\"",
    );
    if u.url.is_none() {
        ctx.missing(
            &key("url"),
            tspan.clone(),
            "[[upstream]] has no url: expected the app's address such as \"http://127.0.0.1:9000\"",
        );
    }
    let url = u.url.as_ref().and_then(|v| upstream_url(ctx, v));
    let (tls_verify, tls_ca) = upstream_tls(ctx, u, url.as_ref());
    // `None` when refused (reported): the route is then not compared.
    let host = ctx.valid(&key("host")).then(|| val(&u.host));
    let prefix = val(&u.path_prefix).unwrap_or(PathPrefix("/".into()));
    let prefix = ctx.valid(&key("path_prefix")).then_some(prefix);
    let allow_user_types = allow_list(
        ctx,
        &u.allow_user_types,
        (&key("allow_user_types"), "type"),
        |t| t.value,
    );
    let allow_districts = allow_list(
        ctx,
        &u.allow_districts,
        (&key("allow_districts"), "district"),
        |d| d.get_ref().clone(),
    );
    for item in u.allow_districts.iter().flat_map(|l| l.get_ref()) {
        if item.get_ref().trim().is_empty() {
            ctx.err(
                item.span(),
                "upstream.allow_districts has an empty entry: expected Clever district ids",
            );
        }
    }
    // Logout paths are compared exactly with the normalised request path.
    for item in u.logout_paths.iter().flat_map(|l| l.get_ref()) {
        let routing = crate::gateway::routing::prefix_matches;
        if prefix.as_ref().is_some_and(|p| !routing(&p.0, &item.text)) {
            ctx.err(
                item.span(),
                format!(
                    "upstream.logout_paths entry {} is not under this upstream's path_prefix, so \
                     it never reaches this upstream: expected a path the app serves under its \
                     path_prefix",
                    quote(&item.text)
                ),
            );
        }
    }
    let forward_access_token = u.forward_access_token == Some(true);
    let headers = headers(ctx, u, forward_access_token, specs);
    let assertion_on = u.assertion == Some(true);
    if !assertion_on {
        ctx.if_set(
            &u.assertion_audience,
            "upstream.assertion_audience is set but assertion is not true: add assertion = true \
             to this upstream, or remove assertion_audience",
        );
    }
    let span = span_of(&u.path_prefix).unwrap_or(tspan);
    let route = (host.clone().zip(prefix.clone())).map(|(h, p)| (h.map(|h| h.0), p.0, span));
    let built = (|| {
        let name = name?.0;
        let audience = val(&u.assertion_audience).map_or_else(|| name.clone(), |a| a.0);
        let sends = headers?;
        Some(Upstream {
            assertion: assertion_on.then_some(audience),
            name,
            url: url?,
            tls_verify,
            tls_ca,
            timeout: val(&u.timeout).unwrap_or_default().0,
            host: host?.map(|h| h.0),
            path_prefix: prefix?.0,
            allow_user_types,
            allow_districts,
            login_district_id: val(&u.login_district_id).map(|d| d.0),
            public_paths: vals(&u.public_paths),
            strip_path_prefix: u.strip_path_prefix == Some(true),
            confirm_students: u.confirm_students == Some(true),
            forward_access_token,
            app_cookies: dedup(vals(&u.app_cookies).into_iter().map(|c| c.0)),
            logout_paths: dedup(vals(&u.logout_paths).into_iter().map(|p| p.0)),
            headers: sends.headers,
            scrubbed: sends.scrubbed,
        })
    })();
    (built, route)
}

/// Who may enter: `None` (everyone) when absent; never empty, which would lock everyone out;
/// repeats dropped.
fn allow_list<E, T: PartialEq>(
    ctx: &mut Ctx<'_, '_>,
    list: &Option<Sp<Vec<E>>>,
    (path, what): (&str, &str),
    value: impl Fn(&E) -> T,
) -> Option<Vec<T>> {
    let list = list.as_ref()?;
    let key = path.rsplit('.').next().unwrap_or_default();
    if list.get_ref().is_empty() && ctx.valid(path) {
        ctx.err(
            list.span(),
            format!(
                "upstream.{key} is empty, which would lock everyone out: list at least one \
                 {what}, or remove the key to allow every {what}"
            ),
        );
    }
    Some(dedup(list.get_ref().iter().map(value)))
}

/// The items in their first order, without repeats.
fn dedup<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// No `app_cookies` entry may name one of the gateway's own cookies: expiring it at sign-in
/// would sign the browser straight out again.
pub(super) fn app_cookies_not_ours(
    ctx: &mut Ctx<'_, '_>,
    list: Option<&Tables<UpstreamFile>>,
    cookie_name: &str,
) {
    let jar = crate::session::cookies::CookieJarSpec::named(cookie_name);
    let ups = list.map(|l| l.get_ref().as_slice()).unwrap_or_default();
    for item in ups
        .iter()
        .flat_map(|u| &u.get_ref().app_cookies)
        .flat_map(|l| l.get_ref())
    {
        if jar.reserves(&item.text) {
            ctx.err(
                item.span(),
                format!(
                    "upstream.app_cookies entry {} is one of the gateway's own cookies \
                     (session.cookie_name {}): list only the app's cookies",
                    quote(&item.text),
                    quote(cookie_name)
                ),
            );
        }
    }
}

/// `tls_verify` and `tls_ca`: both only for `https://` upstreams, and a CA to verify with
/// contradicts turning verification off.
fn upstream_tls(
    ctx: &mut Ctx<'_, '_>,
    u: &UpstreamFile,
    url: Option<&UpstreamUrl>,
) -> (bool, Option<PathBuf>) {
    let verify = u.tls_verify.as_ref().is_none_or(|v| *v.get_ref());
    let ca = u
        .tls_ca
        .as_ref()
        .and_then(|v| ctx.read::<PathBuf>(v, "upstream.tls_ca"));
    if url.is_some_and(|url| !url.tls) {
        ctx.if_set(
            &u.tls_verify,
            "upstream.tls_verify is set but upstream.url is http://: certificate verification \
             applies only to https:// upstreams, so remove tls_verify or use an https:// url",
        );
        ctx.if_set(
            &u.tls_ca,
            "upstream.tls_ca is set but upstream.url is http://: a CA applies only to https:// \
             upstreams, so remove tls_ca or use an https:// url",
        );
    } else if !verify {
        ctx.if_set(
            &u.tls_ca,
            "upstream.tls_ca is set together with tls_verify = false, which turns verification \
             off so the CA would never be used: keep tls_ca and remove tls_verify = false (the \
             app's certificate is then verified against that CA)",
        );
    }
    (verify, ca)
}

fn upstream_url(ctx: &mut Ctx<'_, '_>, v: &Sp<String>) -> Option<UpstreamUrl> {
    let url = ctx.read::<HttpUrl>(v, "upstream.url")?.0;
    // Nothing here quotes a URL with user info: it may carry a password.
    let why = if !url.username().is_empty() || url.password().is_some() {
        "has user info (user:password@): not allowed; the gateway forwards identity headers, \
         not credentials"
            .to_owned()
    } else if url.query().is_some() {
        let text = quote(url.as_str());
        format!("{text} has a query (?…): expected scheme, host, port and path only")
    } else {
        let tls = url.scheme() == "https";
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        // An IPv6 address without brackets; resolved once, now; the first address wins.
        let host = match url.host()? {
            Host::Ipv6(ip) => ip.to_string(),
            host => host.to_string(),
        };
        match resolve(&host, port) {
            Ok(addr) => {
                let base_path = url.path().trim_end_matches('/').to_owned();
                return Some(UpstreamUrl {
                    original: url,
                    tls,
                    host,
                    port,
                    addr,
                    base_path,
                });
            }
            Err(why) => format!(
                "host {} does not resolve ({why}): expected a resolvable host name or an IP \
                 address",
                quote(&host)
            ),
        }
    };
    ctx.err(v.span(), format!("upstream.url {why}"));
    None
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let mut addrs = (host, port).to_socket_addrs().map_err(|e| e.to_string())?;
    addrs.next().ok_or_else(|| "no addresses".to_owned())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::config::model::PublicPath;
    use crate::identity::UserType;
    use std::time::Duration;

    #[test]
    fn upstream_none_is_error() {
        one(CLEVER, &["at least one [[upstream]]"]);
        one(
            &format!("upstream = []\n{CLEVER}"),
            &["at least one [[upstream]]"],
        );
    }

    #[test]
    fn upstream_app_cookies_and_logout_paths_are_kept_in_order_without_repeats() {
        let c = ok(&doc(
            "",
            "",
            "",
            "app_cookies = [\"PHPSESSID\", \"__Host-sid\", \"PHPSESSID\"]\n\
             logout_paths = [\"/logout.php\", \"/a/logout/\", \"/logout.php\"]",
        ));
        let u = &c.upstreams[0];
        assert_eq!(u.app_cookies, ["PHPSESSID", "__Host-sid"]);
        assert_eq!(u.logout_paths, ["/logout.php", "/a/logout/"]);
        let d = ok(&doc("", "", "", ""));
        assert!(d.upstreams[0].app_cookies.is_empty() && d.upstreams[0].logout_paths.is_empty());
    }

    #[test]
    fn upstream_logout_paths_must_be_normalised_and_this_upstreams() {
        for (bad, says) in [
            ("logout", "does not start with"),
            ("/a//b", "not a normalised path"),
            ("/a/./b", "not a normalised path"),
            ("/a/%2e%2e/b", "\"%\""),
            ("/a b", "space"),
            ("/logout#x", "\"#\""),
            ("/_gateway/logout", "/_gateway/"),
        ] {
            one(
                &doc("", "", "", &format!("logout_paths = [{bad:?}]")),
                &["upstream.logout_paths entry", says],
            );
        }
        one(
            &doc(
                "",
                "",
                "",
                "path_prefix = \"/lib\"\nlogout_paths = [\"/library/out\"]",
            ),
            &["not under this upstream's path_prefix"],
        );
        ok(&doc(
            "",
            "",
            "",
            "path_prefix = \"/lib\"\nlogout_paths = [\"/lib/out\", \"/lib\"]",
        ));
    }

    #[test]
    fn upstream_list_with_a_bad_entry_still_has_its_other_entries_checked() {
        // The bad name is refused while the file is read; the gateway's own cookie next to it
        // is still refused by the rule that joins [session] and app_cookies.
        let src = doc("", "", "", "app_cookies = [\"clever_gateway\", \"a b\"]");
        let p = problems(&src);
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(p[0]
            .message
            .contains("\"clever_gateway\" is one of the gateway's own cookies"));
        assert!(p[1].message.contains("\"a b\" is not a cookie name"));
        // Nor does a list left without a good entry read as empty.
        one(
            &doc("", "", "", "allow_user_types = [\"pupil\"]"),
            &["\"pupil\" is not a Clever user type"],
        );
    }

    #[test]
    fn upstream_app_cookies_not_a_name_or_the_gateways_own_is_error() {
        for bad in ["a b", "", "a;b", "x=y"] {
            one(
                &doc("", "", "", &format!("app_cookies = [{bad:?}]")),
                &["not a cookie name"],
            );
        }
        for ours in [
            "clever_gateway",
            "__Host-clever_gateway",
            "CLEVER_GATEWAY_bounce",
            "clever_gateway_login_x",
        ] {
            one(
                &doc("", "", "", &format!("app_cookies = [{ours:?}]")),
                &["one of the gateway's own cookies"],
            );
        }
        // The configured name counts, not the default.
        one(
            &doc("", "", "cookie_name = \"gw\"", "app_cookies = [\"gw\"]"),
            &["\"gw\" is one of the gateway's own cookies (session.cookie_name \"gw\")"],
        );
        ok(&doc(
            "",
            "",
            "cookie_name = \"gw\"",
            "app_cookies = [\"clever_gateway\"]",
        ));
    }

    #[test]
    fn upstream_defaults_are_applied() {
        let c = ok(&doc("", "", "", ""));
        let u = &c.upstreams[0];
        assert_eq!(u.name, "app");
        assert_eq!(u.host, None);
        assert_eq!(u.path_prefix, "/");
        assert_eq!(u.allow_user_types, None);
        assert_eq!(u.allow_districts, None);
        assert_eq!(u.login_district_id, None);
        assert!(u.public_paths.is_empty());
        assert!(!u.strip_path_prefix);
        assert!(!u.forward_access_token);
        let names: Vec<&str> = u.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "x-clever-user-id",
                "x-clever-user-type",
                "x-clever-district-id"
            ]
        );
    }

    #[test]
    fn upstream_url_resolves_now() {
        let u = &ok(&doc("", "", "", "")).upstreams[0].url;
        assert!(!u.tls);
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 9000);
        assert_eq!(u.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(u.base_path, "");
    }

    #[test]
    fn upstream_url_localhost_name_resolves() {
        let src = format!("{CLEVER}[[upstream]]\nname = \"a\"\nurl = \"http://localhost:9000\"\n");
        let u = &ok(&src).upstreams[0].url;
        assert_eq!(u.host, "localhost");
        assert!(u.addr.ip().is_loopback());
    }

    #[test]
    fn upstream_url_default_ports_and_base_path() {
        let src = format!(
            "{CLEVER}[[upstream]]\nname = \"a\"\nurl = \"https://127.0.0.1/app/\"\n\
             [[upstream]]\nname = \"b\"\nurl = \"http://[::1]/x/y\"\npath_prefix = \"/b\"\n"
        );
        let c = ok(&src);
        let (a, b) = (&c.upstreams[0].url, &c.upstreams[1].url);
        assert!(a.tls);
        assert_eq!((a.port, a.base_path.as_str()), (443, "/app"));
        assert_eq!(
            (b.port, b.base_path.as_str(), b.host.as_str()),
            (80, "/x/y", "::1")
        );
    }

    fn with_url(url: &str) -> String {
        format!("{CLEVER}[[upstream]]\nname = \"a\"\nurl = {url:?}\n")
    }

    #[test]
    fn upstream_url_unresolvable_is_error_at_url() {
        let src = with_url("http://no-such-host.invalid:9000");
        let p = one(&src, &["does not resolve", "\"no-such-host.invalid\""]);
        assert_eq!((p.line, p.col), (line_of(&src, "url ="), 7));
    }

    #[test]
    fn upstream_url_bad_forms_are_errors() {
        one(&with_url("127.0.0.1:9000"), &["upstream.url"]);
        one(&with_url("ftp://127.0.0.1/"), &["scheme"]);
        one(&with_url("http://127.0.0.1/?a=b"), &["query"]);
        one(&with_url("http://127.0.0.1/#top"), &["fragment"]);
    }

    #[test]
    fn upstream_url_with_user_info_is_error_without_echoing_it() {
        let p = one(&with_url("http://admin:s3cret@127.0.0.1/"), &["user info"]);
        assert!(!p.message.contains("s3cret"));
    }

    #[test]
    fn upstream_missing_name_and_url_are_reported() {
        let src = format!("{CLEVER}[[upstream]]\nhost = \"a.example\"\n");
        let p = problems(&src);
        assert_eq!(p.len(), 2, "{p:#?}");
        let header = line_of(&src, "[[upstream]]");
        assert!(p.iter().all(|p| (p.line, p.col) == (header, 1)));
    }

    #[test]
    fn upstream_wrong_type_is_not_also_reported_missing() {
        let src = format!("{CLEVER}[[upstream]]\nname = \"a\"\nurl = \"http://127.0.0.1\"\n[[upstream]]\nname = 5\nurl = [\"x\"]\npath_prefix = \"/b\"\n");
        let p = problems(&src);
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(p.iter().all(|p| p.message.starts_with("wrong type")));
    }

    #[test]
    fn upstream_name_bad_characters_is_error() {
        for bad in ["", "my app", "app/1", "é"] {
            let src = format!("{CLEVER}[[upstream]]\nname = {bad:?}\nurl = \"http://127.0.0.1\"\n");
            one(&src, &["letters, digits"]);
        }
    }

    #[test]
    fn upstream_name_gateway_label_is_reserved() {
        let src =
            format!("{CLEVER}[[upstream]]\nname = \"_gateway\"\nurl = \"http://127.0.0.1\"\n");
        one(&src, &["reserved"]);
    }

    #[test]
    fn upstream_duplicate_name_is_error_at_second() {
        let src = doc(
            "",
            "",
            "",
            "[[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9001\"\npath_prefix = \"/b\"",
        );
        let p = one(&src, &["already used"]);
        assert_eq!(
            p.line,
            src.lines()
                .enumerate()
                .filter(|(_, l)| l.contains("name = \"app\""))
                .last()
                .unwrap()
                .0
                + 1
        );
    }

    #[test]
    fn upstream_host_is_lowercased() {
        let c = ok(&doc("", "", "", "host = \"Grades.Example.ORG\""));
        assert_eq!(c.upstreams[0].host.as_deref(), Some("grades.example.org"));
    }

    #[test]
    fn upstream_host_with_port_or_slash_is_error() {
        one(
            &doc("", "", "", "host = \"grades.example.org:443\""),
            &["port"],
        );
        one(
            &doc("", "", "", "host = \"grades.example.org/x\""),
            &["\"/\""],
        );
        one(
            &doc("", "", "", "host = \"https://grades.example.org\""),
            &["\"/\""],
        );
        one(&doc("", "", "", "host = \"\""), &["empty"]);
    }

    #[test]
    fn upstream_path_prefix_trailing_slash_is_removed() {
        let c = ok(&doc("", "", "", "path_prefix = \"/staff/\""));
        assert_eq!(c.upstreams[0].path_prefix, "/staff");
        let c = ok(&doc("", "", "", "path_prefix = \"/\""));
        assert_eq!(c.upstreams[0].path_prefix, "/");
    }

    #[test]
    fn upstream_path_prefix_without_slash_is_error() {
        one(
            &doc("", "", "", "path_prefix = \"staff\""),
            &["start with \"/\""],
        );
        one(
            &doc("", "", "", "path_prefix = \"/_gateway/x\""),
            &["reserves"],
        );
    }

    #[test]
    fn upstream_same_host_and_prefix_is_error() {
        let second =
            "[[upstream]]\nname = \"b\"\nurl = \"http://127.0.0.1:9001\"\npath_prefix = \"/x/\"";
        let src = doc("", "", "", &format!("path_prefix = \"/x\"\n{second}"));
        let p = one(&src, &["already routed to upstream \"app\""]);
        assert_eq!(p.line, line_of(&src, "path_prefix = \"/x/\""));
    }

    #[test]
    fn upstream_same_prefix_on_other_host_is_accepted() {
        let second =
            "[[upstream]]\nname = \"b\"\nurl = \"http://127.0.0.1:9001\"\nhost = \"b.example\"";
        let c = ok(&doc("", "", "", second));
        assert_eq!(c.upstreams.len(), 2);
    }

    #[test]
    fn upstream_allow_user_types_parse_with_alias() {
        let c = ok(&doc(
            "",
            "",
            "",
            r#"allow_user_types = ["teacher", "school_admin", "staff"]"#,
        ));
        assert_eq!(
            c.upstreams[0].allow_user_types,
            Some(vec![UserType::Teacher, UserType::Staff])
        );
    }

    #[test]
    fn upstream_allow_user_types_unknown_lists_allowed() {
        let src = doc("", "", "", r#"allow_user_types = ["teacher", "admin"]"#);
        let p = one(
            &src,
            &[
                "\"admin\"",
                "student, teacher, staff, school_admin, district_admin, contact",
            ],
        );
        assert_eq!(p.col, 32);
    }

    #[test]
    fn upstream_allow_user_types_empty_is_lockout_error() {
        one(
            &doc("", "", "", "allow_user_types = []"),
            &["lock everyone out"],
        );
    }

    #[test]
    fn upstream_allow_districts_are_kept() {
        let c = ok(&doc("", "", "", r#"allow_districts = ["d1", "d2"]"#));
        assert_eq!(
            c.upstreams[0].allow_districts,
            Some(vec!["d1".into(), "d2".into()])
        );
    }

    #[test]
    fn upstream_allow_districts_empty_is_error() {
        one(
            &doc("", "", "", "allow_districts = []"),
            &["lock everyone out"],
        );
        one(
            &doc("", "", "", r#"allow_districts = [""]"#),
            &["empty entry"],
        );
    }

    #[test]
    fn upstream_login_district_id_is_kept() {
        let c = ok(&doc("", "", "", r#"login_district_id = "d1""#));
        assert_eq!(c.upstreams[0].login_district_id.as_deref(), Some("d1"));
        one(&doc("", "", "", r#"login_district_id = """#), &["empty"]);
    }

    #[test]
    fn upstream_confirm_students_defaults_false() {
        assert!(!ok(&doc("", "", "", "")).upstreams[0].confirm_students);
        let c = ok(&doc("", "", "", "confirm_students = true"));
        assert!(c.upstreams[0].confirm_students);
        one(
            &doc("", "", "", "confirm_students = \"yes\""),
            &["wrong type for upstream.confirm_students"],
        );
    }

    #[test]
    fn upstream_public_paths_prefix_and_exact() {
        let c = ok(&doc(
            "",
            "",
            "",
            r#"public_paths = ["/static/", "/favicon.ico"]"#,
        ));
        assert_eq!(
            c.upstreams[0].public_paths,
            vec![
                PublicPath::Prefix("/static/".into()),
                PublicPath::Exact("/favicon.ico".into())
            ]
        );
    }

    #[test]
    fn upstream_public_paths_bad_entries_are_each_reported() {
        let src = doc(
            "",
            "",
            "",
            r#"public_paths = ["static/", "/a?b", "/x#y", "/a/../b"]"#,
        );
        let p = problems(&src);
        assert_eq!(p.len(), 4, "{p:#?}");
        assert!(p[0].message.contains("start with \"/\""));
        assert!(p[1].message.contains("\"?\""));
        assert!(p[2].message.contains("\"#\""));
        assert!(p[3].message.contains("\"..\""));
    }

    /// A valid file whose one upstream is `https://127.0.0.1:9443`, with `extra` lines added.
    fn https_doc(extra: &str) -> String {
        format!(
            "{CLEVER}\n[[upstream]]\nname = \"app\"\nurl = \"https://127.0.0.1:9443\"\n{extra}\n"
        )
    }

    #[test]
    fn upstream_timeout_default_60s_range_1s_to_1h() {
        assert_eq!(
            ok(&doc("", "", "", "")).upstreams[0].timeout,
            Duration::from_secs(60)
        );
        let u = &ok(&doc("", "", "", "timeout = \"2m\"")).upstreams[0];
        assert_eq!(u.timeout, Duration::from_secs(120));
        for bad in ["0s", "500ms", "2h"] {
            one(
                &doc("", "", "", &format!("timeout = \"{bad}\"")),
                &["upstream[0].timeout", "out of range", "1s to 1h"],
            );
        }
        one(
            &doc("", "", "", "timeout = \"forever\""),
            &["upstream[0].timeout", "not a duration"],
        );
    }

    #[test]
    fn upstream_tls_verify_defaults_to_true_without_ca() {
        let u = &ok(&https_doc("")).upstreams[0];
        assert!(u.url.tls);
        assert!(u.tls_verify);
        assert_eq!(u.tls_ca, None);
        assert!(ok(&doc("", "", "", "")).upstreams[0].tls_verify);
    }

    #[test]
    fn upstream_tls_verify_false_and_tls_ca_are_kept() {
        assert!(!ok(&https_doc("tls_verify = false")).upstreams[0].tls_verify);
        let u = &ok(&https_doc("tls_ca = \"/etc/ssl/app-ca.pem\"")).upstreams[0];
        assert!(u.tls_verify);
        assert_eq!(u.tls_ca, Some(PathBuf::from("/etc/ssl/app-ca.pem")));
    }

    #[test]
    fn upstream_tls_keys_on_http_url_are_errors_at_their_values() {
        let src = doc("", "", "", "tls_verify = false\ntls_ca = \"/ca.pem\"");
        let p = problems(&src);
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(p[0]
            .message
            .contains("upstream.tls_verify is set but upstream.url is http://"));
        assert_eq!(p[0].line, line_of(&src, "tls_verify"));
        assert!(p[1]
            .message
            .contains("upstream.tls_ca is set but upstream.url is http://"));
        assert_eq!(p[1].line, line_of(&src, "tls_ca"));
    }

    #[test]
    fn upstream_tls_ca_with_verify_false_is_error() {
        one(
            &https_doc("tls_verify = false\ntls_ca = \"/ca.pem\""),
            &["upstream.tls_ca", "tls_verify = false", "never be used"],
        );
        // tls_verify = true said out loud is fine with a CA.
        ok(&https_doc("tls_verify = true\ntls_ca = \"/ca.pem\""));
    }

    #[test]
    fn upstream_tls_ca_empty_is_error() {
        one(&https_doc("tls_ca = \"\""), &["upstream.tls_ca is empty"]);
    }

    #[test]
    fn upstream_booleans_are_kept() {
        let c = ok(&doc(
            "",
            "",
            "",
            "strip_path_prefix = true\nforward_access_token = true",
        ));
        assert!(c.upstreams[0].strip_path_prefix);
        assert!(c.upstreams[0].forward_access_token);
    }

    #[test]
    fn upstream_boolean_as_string_is_type_error() {
        one(
            &doc("", "", "", "strip_path_prefix = \"yes\""),
            &["upstream.strip_path_prefix", "true or false"],
        );
    }
}
