//! `[[upstream]]`: names and routes (host, path_prefix) unique across upstreams, URLs (resolved
//! now) and their TLS keys, who may enter, the app's cookies and logout paths. Identity header
//! names are in [`super::headers`].

use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use url::Host;

use super::headers::{headers, Specs};
use super::{duration_in, http_url, path, Ctx};
use crate::config::file::{quote, Sp, UpstreamFile};
use crate::config::leaf::{AppCookie, Leaf, PathPrefix};
use crate::config::model::{Upstream, UpstreamUrl};
use crate::identity::UserType;

/// Like nginx's proxy_read_timeout: how long the app may be silent while answering.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const MIN_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// Returns the upstreams (when all are valid) and each upstream's name as written (by index).
pub(super) fn upstreams(
    ctx: &mut Ctx<'_, '_>,
    list: Option<&Sp<Vec<Sp<UpstreamFile>>>>,
    specs: &mut Specs,
) -> (Option<Vec<Upstream>>, Vec<Option<String>>) {
    const NONE: &str =
        "no [[upstream]] table: define at least one [[upstream]] with a name and a url";
    let Some(list) = list else {
        ctx.missing("upstream", 0..0, NONE);
        return (None, Vec::new());
    };
    if list.get_ref().is_empty() {
        ctx.missing("upstream", list.span(), NONE);
        return (None, Vec::new());
    }

    let mut out = Vec::new();
    let mut ok = true;
    let mut names: Vec<Option<String>> = Vec::new();
    // (host, path_prefix, name) of each upstream whose route could be read.
    let mut routes: Vec<(Option<String>, String, Option<String>)> = Vec::new();
    for (i, up) in list.get_ref().iter().enumerate() {
        let (upstream, name, route) = upstream(ctx, i, up, specs);
        // Unique names.
        if let (Some(n), Some(written)) = (&name, &up.get_ref().name) {
            if names.iter().flatten().any(|m| m == n) {
                ctx.err(
                    written.span(),
                    format!(
                        "upstream.name {} is already used by an earlier upstream: each upstream \
                         needs its own name",
                        quote(n)
                    ),
                );
                ok = false;
            }
        }
        // Unique (host, path_prefix).
        if let Some((host, prefix, span)) = route {
            if let Some((_, _, other)) = routes.iter().find(|(h, p, _)| *h == host && *p == prefix)
            {
                let host_text = host
                    .as_deref()
                    .map(quote)
                    .unwrap_or_else(|| "any host".into());
                ctx.err(
                    span,
                    format!(
                        "upstream path_prefix {} on {host_text} is already routed to {}: \
                         each (host, path_prefix) pair must be unique",
                        quote(&prefix),
                        other
                            .as_deref()
                            .map(|n| format!("upstream {}", quote(n)))
                            .unwrap_or_else(|| "an earlier upstream".to_owned())
                    ),
                );
                ok = false;
            } else {
                routes.push((host, prefix, name.clone()));
            }
        }
        names.push(name);
        match upstream {
            Some(u) => out.push(u),
            None => ok = false,
        }
    }
    (ok.then_some(out), names)
}

type Route = (Option<String>, String, Range<usize>);

/// Validates one upstream; also returns its name and route (host, prefix, span) when readable,
/// for the checks across upstreams.
fn upstream(
    ctx: &mut Ctx<'_, '_>,
    i: usize,
    table: &Sp<UpstreamFile>,
    specs: &mut Specs,
) -> (Option<Upstream>, Option<String>, Option<Route>) {
    let u = table.get_ref();
    let tspan = table.span();
    let key = |k: &str| format!("upstream[{i}].{k}");

    let name = match &u.name {
        None => {
            ctx.missing(
                &key("name"),
                tspan.clone(),
                "[[upstream]] has no name: expected a name of letters, digits, \"_\", \".\" or \"-\"",
            );
            None
        }
        Some(n) => Some(n.value.0.clone()),
    };

    let url = match &u.url {
        None => {
            ctx.missing(
                &key("url"),
                tspan.clone(),
                "[[upstream]] has no url: expected the app's address such as \"http://127.0.0.1:9000\"",
            );
            None
        }
        Some(v) => upstream_url(ctx, v),
    };

    let (tls_verify, tls_ca) = upstream_tls(ctx, u, url.as_ref());

    let timeout = duration_in(
        ctx,
        u.timeout.as_ref(),
        &key("timeout"),
        DEFAULT_TIMEOUT,
        MIN_TIMEOUT..=MAX_TIMEOUT,
        "1s to 1h (how long the app may stay silent while answering; default 60s)",
    );

    let host = ctx
        .optional(&key("host"), u.host.as_ref())
        .map(|h| h.map(|h| h.0));
    let path_prefix = ctx
        .value(
            &key("path_prefix"),
            u.path_prefix.as_ref(),
            PathPrefix("/".into()),
        )
        .map(|p| p.0);

    let allow_user_types = allow_user_types(ctx, u, &key("allow_user_types"));
    let allow_districts = allow_districts(ctx, u);
    let login_district_id = login_district_id(ctx, u);
    let public_paths = ctx.values(&key("public_paths"), u.public_paths.as_ref(), Vec::new());

    let app_cookies = app_cookies(ctx, &key("app_cookies"), u.app_cookies.as_ref());
    let logout_paths = logout_paths(ctx, u.logout_paths.as_ref(), path_prefix.as_deref());

    let forward_access_token = u.forward_access_token == Some(true);
    let headers = headers(ctx, u, forward_access_token, specs);
    let assertion_on = u.assertion == Some(true);
    let assertion_audience = assertion_audience(ctx, u, assertion_on);

    let route = match (&host, &path_prefix) {
        (Some(h), Some(p)) => {
            let span = u
                .path_prefix
                .as_ref()
                .map(|p| p.span())
                .unwrap_or_else(|| tspan.clone());
            Some((h.clone(), p.clone(), span))
        }
        _ => None,
    };

    let built = (|| {
        let name = name.clone()?;
        let audience = assertion_audience?;
        let sends = headers?;
        Some(Upstream {
            assertion: assertion_on.then(|| audience.unwrap_or_else(|| name.clone())),
            name,
            url: url?,
            tls_verify: tls_verify?,
            tls_ca: tls_ca?,
            timeout: timeout?,
            host: host?,
            path_prefix: path_prefix?,
            allow_user_types: allow_user_types?,
            allow_districts: allow_districts?,
            login_district_id: login_district_id?,
            public_paths: public_paths?,
            strip_path_prefix: u.strip_path_prefix == Some(true),
            confirm_students: u.confirm_students == Some(true),
            forward_access_token,
            app_cookies: app_cookies?,
            logout_paths: logout_paths?,
            headers: sends.headers,
            scrubbed: sends.scrubbed,
        })
    })();
    (built, name, route)
}

/// `allow_user_types`: never empty (that would lock everyone out); repeats dropped.
fn allow_user_types(
    ctx: &mut Ctx<'_, '_>,
    u: &UpstreamFile,
    path: &str,
) -> Option<Option<Vec<UserType>>> {
    let Some(list) = &u.allow_user_types else {
        return Some(None);
    };
    if ctx.invalid.contains(path) {
        return None;
    }
    if list.get_ref().is_empty() {
        ctx.err(
            list.span(),
            "upstream.allow_user_types is empty, which would lock everyone out: list at least \
             one type, or remove the key to allow every type",
        );
        return None;
    }
    let mut types: Vec<UserType> = Vec::new();
    for t in list.get_ref() {
        if !types.contains(&t.value) {
            types.push(t.value);
        }
    }
    Some(Some(types))
}

/// `allow_districts`: never empty, no empty entry; repeats dropped.
fn allow_districts(ctx: &mut Ctx<'_, '_>, u: &UpstreamFile) -> Option<Option<Vec<String>>> {
    let Some(list) = &u.allow_districts else {
        return Some(None);
    };
    if list.get_ref().is_empty() {
        ctx.err(
            list.span(),
            "upstream.allow_districts is empty, which would lock everyone out: list at least \
             one district id, or remove the key to allow every district",
        );
        return None;
    }
    let mut ids: Vec<String> = Vec::new();
    let mut ok = true;
    for item in list.get_ref() {
        let id = item.get_ref();
        if id.trim().is_empty() {
            ok = false;
            ctx.err(
                item.span(),
                "upstream.allow_districts has an empty entry: expected Clever district ids",
            );
        } else if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    ok.then_some(Some(ids))
}

fn login_district_id(ctx: &mut Ctx<'_, '_>, u: &UpstreamFile) -> Option<Option<String>> {
    match &u.login_district_id {
        Some(d) if d.get_ref().trim().is_empty() => {
            ctx.err(
                d.span(),
                "upstream.login_district_id is empty: expected a Clever district id, or remove \
                 the key",
            );
            None
        }
        d => Some(d.as_ref().map(|d| d.get_ref().clone())),
    }
}

/// `assertion_audience`: only with `assertion = true`, and not empty.
fn assertion_audience(
    ctx: &mut Ctx<'_, '_>,
    u: &UpstreamFile,
    assertion_on: bool,
) -> Option<Option<String>> {
    let Some(a) = &u.assertion_audience else {
        return Some(None);
    };
    if !assertion_on {
        ctx.err(
            a.span(),
            "upstream.assertion_audience is set but assertion is not true: add assertion = true \
             to this upstream, or remove assertion_audience",
        );
        return None;
    }
    if a.get_ref().trim().is_empty() {
        ctx.err(
            a.span(),
            "upstream.assertion_audience is empty: expected the audience the app checks \
             (default: the upstream's name)",
        );
        return None;
    }
    Some(Some(a.get_ref().clone()))
}

/// `app_cookies`: cookie names (RFC 6265 tokens), repeats dropped. Whether one is the
/// gateway's own is checked with `[session]` (`app_cookies_not_ours`).
fn app_cookies(
    ctx: &Ctx<'_, '_>,
    path: &str,
    list: Option<&Sp<Vec<Leaf<AppCookie>>>>,
) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for name in ctx.values(path, list, Vec::new())? {
        if !out.contains(&name.0) {
            out.push(name.0);
        }
    }
    Some(out)
}

/// No `app_cookies` entry may name one of the gateway's own cookies: expiring it at sign-in
/// would sign the browser straight out again.
pub(super) fn app_cookies_not_ours(
    ctx: &mut Ctx<'_, '_>,
    list: Option<&Sp<Vec<Sp<UpstreamFile>>>>,
    cookie_name: &str,
) {
    let jar = crate::session::cookies::CookieJarSpec::named(cookie_name);
    for up in list.map(|l| l.get_ref().as_slice()).unwrap_or_default() {
        let Some(names) = &up.get_ref().app_cookies else {
            continue;
        };
        for item in names.get_ref() {
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
}

/// `logout_paths`: absolute, normalised paths (compared exactly with the request's normalised
/// path) that this upstream serves: under its `path_prefix`, never under `/_gateway/`.
fn logout_paths(
    ctx: &mut Ctx<'_, '_>,
    list: Option<&Sp<Vec<Sp<String>>>>,
    prefix: Option<&str>,
) -> Option<Vec<String>> {
    let Some(list) = list else {
        return Some(Vec::new());
    };
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    for item in list.get_ref() {
        let p = item.get_ref();
        let why = logout_path(p).err().or_else(|| {
            let prefix = prefix?;
            (!crate::gateway::routing::prefix_matches(prefix, p)).then_some(
                "is not under this upstream's path_prefix, so it never reaches this upstream: \
                 expected a path the app serves under its path_prefix",
            )
        });
        match why {
            Some(why) => {
                ok = false;
                ctx.err(
                    item.span(),
                    format!("upstream.logout_paths entry {} {why}", quote(p)),
                );
            }
            None if !out.contains(p) => out.push(p.clone()),
            None => {}
        }
    }
    ok.then_some(out)
}

/// One `logout_paths` entry: a path as the gateway normalises request paths, so an exact
/// comparison with the normalised request path is meaningful.
fn logout_path(p: &str) -> Result<(), &'static str> {
    if !p.starts_with('/') {
        return Err("does not start with \"/\": expected an absolute path such as \"/logout.php\"");
    }
    if p.contains(['?', '#']) {
        return Err("has \"?\" or \"#\": logout paths match the path only, never the query");
    }
    if p.chars().any(|c| c.is_whitespace() || c.is_control()) || p.contains('%') {
        return Err(
            "contains a space, control character or \"%\": expected the path as it \
                    reads decoded, such as \"/logout/\"",
        );
    }
    match crate::gateway::routing::normalize_path(p) {
        Ok(n) if n.decoded == p => {}
        _ => {
            return Err(
                "is not a normalised path (\".\", \"..\" or empty segments): expected \
                         it as requests are compared, such as \"/app/logout\"",
            )
        }
    }
    if p == "/_gateway" || p.starts_with(crate::gateway::GATEWAY_PREFIX) {
        return Err(
            "is under /_gateway/, which the gateway answers itself: sign-out there is \
                    /_gateway/logout",
        );
    }
    Ok(())
}

/// `tls_verify` and `tls_ca`: both only for `https://` upstreams, and a CA to verify with
/// contradicts turning verification off. `None` where invalid.
fn upstream_tls(
    ctx: &mut Ctx<'_, '_>,
    u: &UpstreamFile,
    url: Option<&UpstreamUrl>,
) -> (Option<bool>, Option<Option<PathBuf>>) {
    let mut verify = Some(u.tls_verify.as_ref().is_none_or(|v| *v.get_ref()));
    let mut ca = path(ctx, u.tls_ca.as_ref(), "upstream.tls_ca");
    if url.is_some_and(|url| !url.tls) {
        if let Some(v) = &u.tls_verify {
            ctx.err(
                v.span(),
                "upstream.tls_verify is set but upstream.url is http://: certificate \
                 verification applies only to https:// upstreams, so remove tls_verify or use \
                 an https:// url",
            );
            verify = None;
        }
        if let Some(v) = &u.tls_ca {
            ctx.err(
                v.span(),
                "upstream.tls_ca is set but upstream.url is http://: a CA applies only to \
                 https:// upstreams, so remove tls_ca or use an https:// url",
            );
            ca = None;
        }
    } else if let (Some(v), Some(false)) = (&u.tls_ca, verify) {
        ctx.err(
            v.span(),
            "upstream.tls_ca is set together with tls_verify = false, which turns verification \
             off so the CA would never be used: keep tls_ca and remove tls_verify = false (the \
             app's certificate is then verified against that CA)",
        );
        ca = None;
    }
    (verify, ca)
}

fn upstream_url(ctx: &mut Ctx<'_, '_>, v: &Sp<String>) -> Option<UpstreamUrl> {
    let url = http_url(ctx, v, "upstream.url", "http://127.0.0.1:9000")?;
    // Nothing below quotes the URL: it may carry a password in its user info.
    if !url.username().is_empty() || url.password().is_some() {
        ctx.err(
            v.span(),
            "upstream.url has user info (user:password@): not allowed; the gateway forwards \
             identity headers, not credentials",
        );
        return None;
    }
    if url.query().is_some() {
        ctx.err(
            v.span(),
            format!(
                "upstream.url {} has a query (?…): expected scheme, host, port and path only",
                quote(url.as_str())
            ),
        );
        return None;
    }
    let tls = url.scheme() == "https";
    let port = url
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    let (host, addr) = match url.host() {
        Some(Host::Ipv4(ip)) => (ip.to_string(), Ok(SocketAddr::new(ip.into(), port))),
        Some(Host::Ipv6(ip)) => (ip.to_string(), Ok(SocketAddr::new(ip.into(), port))),
        Some(Host::Domain(d)) => (d.to_owned(), resolve(d, port)),
        None => return None,
    };
    let addr = match addr {
        Ok(a) => a,
        Err(why) => {
            ctx.err(
                v.span(),
                format!(
                    "upstream.url host {} does not resolve ({why}): expected a resolvable host \
                     name or an IP address",
                    quote(&host)
                ),
            );
            return None;
        }
    };
    let base_path = url.path().trim_end_matches('/').to_owned();
    Some(UpstreamUrl {
        original: url,
        tls,
        host,
        port,
        addr,
        base_path,
    })
}

/// Resolves once, now; the first address wins.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    match (host, port).to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(|| "no addresses".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::config::model::PublicPath;

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
