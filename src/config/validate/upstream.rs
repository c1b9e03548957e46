//! `[[upstream]]`: names and routes (host, path_prefix) unique across upstreams, URLs (resolved
//! now) and their TLS keys, who may enter, the app's cookies and logout paths. Identity header
//! names are in [`super::headers`].

use std::net::ToSocketAddrs;
use std::path::PathBuf;

use url::Url;

use super::headers::{headers, Specs};
use super::{val, vals, Ctx};
use crate::config::file::{quote, span_of, Sp, Table, Tables, UpstreamFile};
use crate::config::leaf::{bare_host, HttpUrl, UpstreamName};
use crate::config::model::{Upstream, UpstreamUrl};

/// Returns the upstreams (when all are valid) and each upstream's name as written (by index).
pub(super) fn upstreams(
    ctx: &mut Ctx<'_, '_>,
    list: Option<&Tables<UpstreamFile>>,
    specs: &mut Specs,
) -> (Option<Vec<Upstream>>, Vec<Option<String>>) {
    let Some(list) = list.filter(|l| !l.get_ref().is_empty()) else {
        let none = "no [[upstream]] table: define at least one [[upstream]] with a name and a url";
        ctx.missing("upstream", list.map_or(0..0, |l| l.span()), none);
        return (None, Vec::new());
    };
    let (mut out, mut names) = (Vec::new(), Vec::new());
    // Each upstream's route, when read (by index, as `names`).
    let mut routes: Vec<Option<Route>> = Vec::new();
    for (i, up) in list.get_ref().iter().enumerate() {
        let (upstream, route) = upstream(ctx, i, up, specs);
        let name = val(&up.get_ref().name).map(|n| n.0);
        if let Some(n) = up.get_ref().name.as_ref().filter(|_| names.contains(&name)) {
            let dup = format!("upstream.name {} is already used", quote(&n.text));
            ctx.err(n.span(), format!("{dup}: give each upstream its own name"));
        }
        let owner = routes.iter().position(|r| r.is_some() && *r == route);
        if let (Some((host, prefix)), Some(j)) = (&route, owner) {
            let on = host.as_deref().map_or("any host".into(), quote);
            let at = quote(prefix);
            let other = names[j].as_deref().map_or(format!("[{j}]"), quote);
            let why = format!("upstream.path_prefix {at} on {on} is already routed to");
            let span = span_of(&up.get_ref().path_prefix).unwrap_or(up.span());
            ctx.err(span, format!("{why} upstream {other}: change one of them"));
        }
        routes.push(route);
        names.push(name);
        out.push(upstream);
    }
    (out.into_iter().collect(), names)
}

/// Where an upstream is routed: its host (any when `None`) and path_prefix.
type Route = (Option<String>, String);

/// Validates one upstream; also returns its route when both parts were read, for the checks
/// across upstreams.
fn upstream(
    ctx: &mut Ctx<'_, '_>,
    i: usize,
    table: &Table<UpstreamFile>,
    specs: &mut Specs,
) -> (Option<Upstream>, Option<Route>) {
    let (u, tspan) = (table.get_ref(), table.span());
    let key = |k: &str| format!("upstream[{i}].{k}");
    let no_name = "add one, such as name = \"app\"";
    let name = ctx.required(&key("name"), &u.name, tspan.clone(), no_name);
    if u.url.is_none() {
        let no_url = "[[upstream]] has no url: add one, such as url = \"http://127.0.0.1:9000\"";
        ctx.missing(&key("url"), tspan.clone(), no_url);
    }
    let url = u.url.as_ref().and_then(|v| {
        let url = ctx.read::<HttpUrl>(v, "upstream.url")?.0;
        let report = |why| ctx.err(v.span(), format!("upstream.url {why}"));
        upstream_url(url).map_err(report).ok()
    });
    let (tls_verify, tls_ca) = tls(ctx, u, url.as_ref().is_some_and(|url| !url.tls));
    let host = val(&u.host).map(|h| h.0);
    let prefix = val(&u.path_prefix).map_or("/".to_owned(), |p| p.0);
    let readable = ctx.valid(&key("host")) && ctx.valid(&key("path_prefix"));
    let route = readable.then(|| (host.clone(), prefix.clone()));
    let user_types = allow_list(ctx, &key("allow_user_types"), &u.allow_user_types);
    let districts = allow_list(ctx, &key("allow_districts"), &u.allow_districts);
    let blank = |d: &&Sp<String>| d.get_ref().trim().is_empty();
    for item in districts.into_iter().flatten().filter(blank) {
        let why = "upstream.allow_districts has an empty entry: expected Clever district ids";
        ctx.err(item.span(), why);
    }
    // Logout paths are compared exactly with the normalised request path.
    let under = quote(&prefix);
    let not_under =
        format!("is not under this upstream's path_prefix {under}, so it never gets here");
    for item in u.logout_paths.iter().flat_map(|l| l.get_ref()) {
        if !crate::gateway::routing::prefix_matches(&prefix, &item.text) {
            let entry = format!("upstream.logout_paths entry {}", quote(&item.text));
            ctx.err(item.span(), format!("{entry} {not_under}"));
        }
    }
    let headers = headers(ctx, u, specs);
    let assertion_on = u.assertion == Some(true);
    if !assertion_on {
        let why = "upstream.assertion_audience needs assertion = true: add it, or remove this key";
        ctx.if_set(&u.assertion_audience, why);
    }
    let (Some(UpstreamName(name)), Some(url), Some(sends)) = (name, url, headers) else {
        return (None, route);
    };
    let upstream = Upstream {
        assertion: assertion_on.then(|| val(&u.assertion_audience).map_or(name.clone(), |a| a.0)),
        name,
        url,
        tls_verify,
        tls_ca,
        timeout: val(&u.timeout).unwrap_or_default().0,
        host,
        path_prefix: prefix,
        allow_user_types: user_types.map(|l| dedup(l.iter().map(|t| t.value))),
        allow_districts: districts.map(|l| dedup(l.iter().map(|d| d.get_ref().clone()))),
        login_district_id: val(&u.login_district_id).map(|d| d.0),
        public_paths: vals(&u.public_paths),
        strip_path_prefix: u.strip_path_prefix == Some(true),
        confirm_students: u.confirm_students == Some(true),
        forward_access_token: u.forward_access_token == Some(true),
        app_cookies: dedup(vals(&u.app_cookies).into_iter().map(|c| c.0)),
        logout_paths: dedup(vals(&u.logout_paths).into_iter().map(|p| p.0)),
        headers: sends.headers,
        scrubbed: sends.scrubbed,
    };
    (Some(upstream), route)
}

/// Who may enter: `None` (everyone) when absent; never empty, which would lock everyone out.
fn allow_list<'l, E>(
    ctx: &mut Ctx<'_, '_>,
    path: &str,
    list: &'l Option<Sp<Vec<E>>>,
) -> Option<&'l [E]> {
    let list = list.as_ref()?;
    if list.get_ref().is_empty() && ctx.valid(path) {
        let key = path.rsplit('.').next().unwrap_or_default();
        let empty = format!("upstream.{key} is empty, which would lock everyone out");
        let fix = "list one, or remove the key to allow all";
        ctx.err(list.span(), format!("{empty}: {fix}"));
    }
    Some(list.get_ref())
}

/// The items in their first order, without repeats.
fn dedup<T: PartialEq>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    items.into_iter().fold(Vec::new(), |mut out, item| {
        if !out.contains(&item) {
            out.push(item);
        }
        out
    })
}

/// No `app_cookies` entry may name one of the gateway's own cookies: expiring it at sign-in
/// would sign the browser straight out again.
pub(super) fn app_cookies_not_ours(
    ctx: &mut Ctx<'_, '_>,
    list: Option<&Tables<UpstreamFile>>,
    cookie_name: &str,
) {
    let jar = crate::session::cookies::CookieJarSpec::named(cookie_name);
    let name = quote(cookie_name);
    let ours = format!("is one of the gateway's own cookies (session.cookie_name {name})");
    let upstreams = list.iter().flat_map(|l| l.get_ref());
    let cookies = upstreams.flat_map(|u| u.get_ref().app_cookies.iter().flat_map(|l| l.get_ref()));
    for item in cookies.filter(|c| jar.reserves(&c.text)) {
        let entry = format!("upstream.app_cookies entry {}", quote(&item.text));
        ctx.err(item.span(), format!("{entry} {ours}: remove it"));
    }
}

/// `tls_verify` and `tls_ca`: both only for `https://` upstreams, and a CA to verify with
/// contradicts turning verification off.
fn tls(ctx: &mut Ctx<'_, '_>, u: &UpstreamFile, http: bool) -> (bool, Option<PathBuf>) {
    let verify = u.tls_verify.as_ref().is_none_or(|v| *v.get_ref());
    let ca = (u.tls_ca.as_ref()).and_then(|v| ctx.read(v, "upstream.tls_ca"));
    if http {
        let http = |key| format!("upstream.{key} is set but upstream.url is http://: remove it");
        ctx.if_set(&u.tls_verify, http("tls_verify"));
        ctx.if_set(&u.tls_ca, http("tls_ca"));
    } else if !verify {
        let why =
            "upstream.tls_ca would never be used with tls_verify = false: remove that to verify with it";
        ctx.if_set(&u.tls_ca, why);
    }
    (verify, ca)
}

/// An upstream's URL resolved now (the first address wins); `Err` says why not. Nothing here
/// quotes a URL with user info: it may carry a password.
fn upstream_url(url: Url) -> Result<UpstreamUrl, String> {
    if !url.username().is_empty() || url.password().is_some() {
        let why = "has user info (user:password@): remove it; the gateway forwards identity only";
        return Err(why.into());
    }
    if url.query().is_some() {
        return Err(format!("{} has a query: remove it", quote(url.as_str())));
    }
    let tls = url.scheme() == "https";
    let port = url.port().unwrap_or(if tls { 443 } else { 80 });
    let host = bare_host(&url).unwrap_or_default();
    let mut addrs = (host.as_str(), port).to_socket_addrs();
    let Some(addr) = addrs.as_mut().ok().and_then(Iterator::next) else {
        let cause = addrs.err().map_or("no addresses".into(), |e| e.to_string());
        let why = format!("host {} does not resolve ({cause})", quote(&host));
        return Err(format!("{why}: use a resolvable name or an IP address"));
    };
    Ok(UpstreamUrl {
        base_path: url.path().trim_end_matches('/').to_owned(),
        original: url,
        tls,
        host,
        port,
        addr,
    })
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
