//! The gateway's cookies: names, reading them from requests, removing them from what goes
//! upstream, refusing them in what comes back (an app must not plant them), and the
//! `Set-Cookie` values (HttpOnly, SameSite=Lax, Secure unless disabled).

use std::borrow::Cow;
use std::time::Duration;

use cookie::{Cookie, SameSite};

use crate::config::SessionConfig;

/// At most this many same-named session cookies are considered (parent and host domains).
pub const MAX_SESSION_CANDIDATES: usize = 3;
/// At most this many login cookies are read from one request (more than a browser keeps:
/// `auth::login_state::MAX_LOGIN_COOKIES`), so a hostile header costs bounded work.
pub const MAX_LOGIN_CANDIDATES: usize = 32;

/// The prefixes browsers give meaning to (`__Host-`: Secure, Path=/, no Domain, set by the
/// host itself; `__Secure-`: Secure). Browsers compare them without regard to case.
const COOKIE_PREFIXES: [&str; 2] = ["__Host-", "__Secure-"];

/// Names and attributes of the cookies the gateway sets.
#[derive(Debug, Clone)]
pub struct CookieJarSpec {
    /// The session cookie (`session.cookie_name`).
    pub session: String,
    /// The one login cookie of gateways before per-sign-in cookies (`<cookie_name>_login`):
    /// recognised (a sign-in started before an upgrade is "expired") and stripped, never set.
    /// Each sign-in's own cookie is named `<prefix><cookie_name>_login_<tag>` (`login_name`).
    pub login: String,
    /// Marks a Clever-initiated bounce in progress, to stop loops.
    pub bounce: String,
    pub secure: bool,
    pub domain: Option<String>,
}

/// The gateway's cookies as found in one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GatewayCookies {
    /// Values of cookies named like the session cookie, in header order.
    pub session: Vec<String>,
    /// Sign-ins in progress: each login cookie's name and value, in header order (the oldest
    /// first, as browsers send them), at most [`MAX_LOGIN_CANDIDATES`].
    pub logins: Vec<(String, String)>,
    /// The browser holds a login cookie of the format before per-sign-in cookies.
    pub legacy_login: bool,
    pub bounce: bool,
}

/// `name` without a `__Host-`/`__Secure-` prefix (compared as browsers do, in any case).
fn unprefixed(name: &str) -> &str {
    for p in COOKIE_PREFIXES {
        if name.len() >= p.len() && name.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes()) {
            return &name[p.len()..];
        }
    }
    name
}

/// Whether `name` starts with `stem` (ASCII case ignored) and has more after it.
fn extends_ci(name: &str, stem: &str) -> bool {
    name.len() > stem.len() && name.as_bytes()[..stem.len()].eq_ignore_ascii_case(stem.as_bytes())
}

impl CookieJarSpec {
    pub fn from_config(cfg: &SessionConfig) -> Self {
        CookieJarSpec {
            secure: cfg.cookie_secure,
            domain: cfg.cookie_domain.clone(),
            ..Self::named(&cfg.cookie_name)
        }
    }

    /// The cookies of a session cookie named `cookie_name` (Secure, no Domain): enough to
    /// tell which names are the gateway's (`reserves`).
    pub fn named(cookie_name: &str) -> Self {
        CookieJarSpec {
            session: cookie_name.to_owned(),
            login: format!("{cookie_name}_login"),
            bounce: format!("{cookie_name}_bounce"),
            secure: true,
            domain: None,
        }
    }

    /// The prefix of the login cookies' names: `__Host-` when Secure without a Domain,
    /// `__Secure-` when Secure with one, so that no other host and no plain-HTTP page can
    /// plant one; none for plain-HTTP development.
    fn login_prefix(&self) -> &'static str {
        match (self.secure, self.domain.is_some()) {
            (true, false) => "__Host-",
            (true, true) => "__Secure-",
            (false, _) => "",
        }
    }

    /// The name of the cookie that carries the sign-in started with `state`:
    /// `<prefix><cookie_name>_login_<tag>`, a cookie per sign-in (tabs signing in at once).
    pub fn login_name(&self, state: &str) -> String {
        format!(
            "{}{}_login_{}",
            self.login_prefix(),
            unprefixed(&self.session),
            crate::auth::login_state::state_tag(state)
        )
    }

    /// A per-sign-in login cookie's name, exactly as the gateway sets it (any tag).
    fn is_login(&self, name: &[u8]) -> bool {
        name.strip_prefix(self.login_prefix().as_bytes())
            .and_then(|n| n.strip_prefix(unprefixed(&self.session).as_bytes()))
            .and_then(|n| n.strip_prefix(b"_login_".as_slice()))
            .is_some_and(|tag| !tag.is_empty())
    }

    /// One of the names the gateway reads, exactly.
    fn is_ours(&self, name: &[u8]) -> bool {
        name == self.session.as_bytes()
            || name == self.login.as_bytes()
            || name == self.bounce.as_bytes()
            || self.is_login(name)
    }

    /// Whether a cookie named `name` belongs to the gateway however a browser might store or
    /// send it: whitespace around it, a `__Host-`/`__Secure-` prefix and ASCII case ignored,
    /// every login cookie's name (with any tag) included. Such cookies never go upstream, and
    /// an app's `Set-Cookie` of one never reaches the browser.
    pub fn reserves(&self, name: &str) -> bool {
        let n = unprefixed(name.trim());
        let login = unprefixed(&self.login);
        n.eq_ignore_ascii_case(unprefixed(&self.session))
            || n.eq_ignore_ascii_case(unprefixed(&self.bounce))
            || n.eq_ignore_ascii_case(login)
            || (extends_ci(n, login) && n.as_bytes()[login.len()] == b'_')
    }

    /// Whether an upstream's `Set-Cookie` value would set one of the gateway's cookies: its
    /// name (the text before the first `=` of the part before the first `;`) is reserved, or
    /// it has no name and its value reads as a reserved `name=value` (browsers send a
    /// nameless cookie as its value alone).
    pub fn sets_reserved(&self, set_cookie: &[u8]) -> bool {
        let text = String::from_utf8_lossy(set_cookie);
        let pair = text.split(';').next().unwrap_or("");
        match pair.split_once('=') {
            Some((name, value)) if name.trim().is_empty() => {
                self.reserves(value.split('=').next().unwrap_or(""))
            }
            Some((name, _)) => self.reserves(name),
            None => self.reserves(pair),
        }
    }

    /// Reads the gateway's cookies from every `Cookie` header value. Undecodable input is
    /// simply "no cookie".
    ///
    /// The same as running `Cookie::split_parse` over the header, but only the pieces named
    /// like one of ours go through the cookie parser: `split_parse` splits on `;` and takes
    /// the name as the text before the first `=`, trimmed, which is what `piece_name` reads.
    /// Browsers send the app's cookies too, and parsing each of them costs more than the rest
    /// of the lookup.
    pub fn read<'a>(&self, headers: impl Iterator<Item = &'a [u8]>) -> GatewayCookies {
        let mut found = GatewayCookies::default();
        for raw in headers {
            let Ok(text) = std::str::from_utf8(raw) else {
                continue;
            };
            let ours = text
                .split(';')
                .filter(|piece| self.is_ours(piece_name(piece).as_bytes()));
            for c in ours.filter_map(|piece| Cookie::parse(piece).ok()) {
                let (name, value) = (c.name(), c.value());
                if name == self.session {
                    if found.session.len() < MAX_SESSION_CANDIDATES {
                        found.session.push(value.to_string());
                    }
                } else if name == self.login {
                    found.legacy_login = true;
                } else if name == self.bounce {
                    found.bounce = true;
                } else if self.is_login(name.as_bytes())
                    && found.logins.len() < MAX_LOGIN_CANDIDATES
                {
                    found.logins.push((name.to_string(), value.to_string()));
                }
            }
        }
        found
    }

    /// The `Cookie` header value to send upstream: the app's own cookies, byte for byte,
    /// without the gateway's. `None` when nothing is left.
    pub fn strip(&self, raw: &[u8]) -> Option<Vec<u8>> {
        let out = self.strip_cow(raw);
        (!out.is_empty()).then(|| out.into_owned())
    }

    /// What `strip` returns (empty for `None`), borrowed from `raw` when it is a prefix of it:
    /// `Cow::Borrowed(raw)` itself, all of it, when there is nothing to strip and the pieces
    /// are already joined by `"; "`, which is how browsers send them.
    pub fn strip_cow<'r>(&self, raw: &'r [u8]) -> Cow<'r, [u8]> {
        // While `out` is `None`, the output so far is `raw[..kept]`.
        let mut out: Option<Vec<u8>> = None;
        let mut kept = 0;
        let mut start = 0;
        for piece in raw.split(|&b| b == b';') {
            let at = start;
            start += piece.len() + 1;
            let trimmed = trim_ascii(piece);
            if trimmed.is_empty() {
                continue;
            }
            let name = match trimmed.iter().position(|&b| b == b'=') {
                Some(i) => trim_ascii(&trimmed[..i]),
                None => trimmed,
            };
            // The reader (`cookie::Cookie::parse`) trims Unicode whitespace around the name,
            // so `\u{a0}clever_gateway=…` is ours there; `reserves` compares the same way (and
            // also catches prefixed and re-cased variants of the gateway's names).
            if self.is_ours(name) || std::str::from_utf8(name).is_ok_and(|n| self.reserves(n)) {
                continue;
            }
            let from = at + (trimmed.as_ptr() as usize - piece.as_ptr() as usize);
            let to = from + trimmed.len();
            match &mut out {
                None if (kept == 0 && from == 0) || (kept > 0 && raw[kept..from] == *b"; ") => {
                    kept = to;
                }
                None => {
                    let mut o = Vec::with_capacity(raw.len());
                    o.extend_from_slice(&raw[..kept]);
                    if !o.is_empty() {
                        o.extend_from_slice(b"; ");
                    }
                    o.extend_from_slice(trimmed);
                    out = Some(o);
                }
                Some(o) => {
                    if !o.is_empty() {
                        o.extend_from_slice(b"; ");
                    }
                    o.extend_from_slice(trimmed);
                }
            }
        }
        match out {
            Some(o) => Cow::Owned(o),
            None => Cow::Borrowed(&raw[..kept]),
        }
    }

    fn build<'c>(&self, name: &'c str, value: String) -> cookie::CookieBuilder<'c> {
        let mut b = Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure);
        if let Some(d) = &self.domain {
            b = b.domain(d.clone());
        }
        b
    }

    /// `Set-Cookie` for a new session.
    pub fn set_session(&self, id: &str, ttl: Duration) -> String {
        self.build(&self.session, id.to_string())
            .max_age(cookie::time::Duration::seconds(ttl.as_secs() as i64))
            .build()
            .to_string()
    }

    /// `Set-Cookie` for the login cookie `name` (see `login_name`) of one sign-in.
    pub fn set_login(&self, name: &str, value: &str, ttl: Duration) -> String {
        self.build(name, value.to_string())
            .max_age(cookie::time::Duration::seconds(ttl.as_secs() as i64))
            .build()
            .to_string()
    }

    /// `Set-Cookie` marking a Clever-initiated bounce in progress.
    pub fn set_bounce(&self) -> String {
        self.build(&self.bounce, "1".to_string())
            .max_age(cookie::time::Duration::seconds(300))
            .build()
            .to_string()
    }

    /// `Set-Cookie` that deletes cookie `name` (same path and domain it was set with).
    pub fn clear(&self, name: &str) -> String {
        self.build(name, String::new())
            .max_age(cookie::time::Duration::ZERO)
            .expires(cookie::time::OffsetDateTime::UNIX_EPOCH)
            .build()
            .to_string()
    }
}

/// The `Set-Cookie` values that expire every upstream's `app_cookies` (section 4b), built once
/// at start: sent with every sign-in (the callback) and sign-out (`/_gateway/logout`, a
/// `logout_paths` answer), so the next user of a shared device never inherits the last one's
/// app session. Each name is expired for `Path=/` and for its upstream's `path_prefix`, each
/// host-only and, with `session.cookie_domain`, on that domain too (an app may set either).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppCookies(Vec<String>);

impl AppCookies {
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        let secure = cfg.session.cookie_secure;
        let domains: Vec<Option<&str>> = std::iter::once(None)
            .chain(cfg.session.cookie_domain.as_deref().map(Some))
            .collect();
        let mut out: Vec<String> = Vec::new();
        for up in &cfg.upstreams {
            let paths: &[&str] = if up.path_prefix == "/" {
                &["/"]
            } else {
                &["/", &up.path_prefix]
            };
            for name in &up.app_cookies {
                for set in expiring(name, paths, &domains, secure) {
                    if !out.contains(&set) {
                        out.push(set);
                    }
                }
            }
        }
        AppCookies(out)
    }

    /// Each `Set-Cookie` value, in a stable order.
    pub fn set_cookies(&self) -> &[String] {
        &self.0
    }
}

/// The `Set-Cookie` values expiring `name` at each of `paths` and `domains` (`None`: host-only).
/// Browsers accept a `__Host-` name only Secure, host-only, on `Path=/`, and a `__Secure-` one
/// only Secure: those are expired the one way they can have been set.
fn expiring(name: &str, paths: &[&str], domains: &[Option<&str>], secure: bool) -> Vec<String> {
    let lower = name.to_ascii_lowercase();
    let (paths, domains, secure): (&[&str], &[Option<&str>], bool) = if lower.starts_with("__host-")
    {
        (&["/"], &[None], true)
    } else if lower.starts_with("__secure-") {
        (paths, domains, true)
    } else {
        (paths, domains, secure)
    };
    let mut out = Vec::new();
    for path in paths {
        for domain in domains {
            let mut b = Cookie::build((name.to_owned(), String::new()))
                .path(path.to_string())
                .max_age(cookie::time::Duration::ZERO)
                .expires(cookie::time::OffsetDateTime::UNIX_EPOCH)
                .secure(secure);
            if let Some(d) = domain {
                b = b.domain(d.to_string());
            }
            out.push(b.build().to_string());
        }
    }
    out
}

/// A cookie piece's name as `cookie::Cookie::parse` reads it: the text before the first `=`
/// (all of it when there is none), trimmed of Unicode whitespace.
fn piece_name(piece: &str) -> &str {
    piece.split_once('=').map_or(piece, |(name, _)| name).trim()
}

fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_removes_names_the_reader_sees_after_unicode_trim() {
        // Found by tests/properties.rs: read() took these as the session, strip() forwarded them.
        let jar = spec();
        for raw in [
            "\u{a0}clever_gateway=s; a=b",
            "a=b; clever_gateway\u{3000}=s",
            "\u{2028}clever_gateway_login=l; a=b",
        ] {
            let found = jar.read(std::iter::once(raw.as_bytes()));
            assert!(!found.session.is_empty() || found.legacy_login);
            assert_eq!(
                jar.strip(raw.as_bytes()).as_deref(),
                Some(&b"a=b"[..]),
                "{raw:?}"
            );
        }
    }

    fn spec() -> CookieJarSpec {
        CookieJarSpec {
            session: "clever_gateway".into(),
            login: "clever_gateway_login".into(),
            bounce: "clever_gateway_bounce".into(),
            secure: true,
            domain: None,
        }
    }

    #[test]
    fn strip_removes_gateway_cookies_keeps_app_cookies() {
        let out = spec()
            .strip(b"PHPSESSID=abc; clever_gateway=SECRET; theme=dark; clever_gateway_login=x")
            .unwrap();
        assert_eq!(out, b"PHPSESSID=abc; theme=dark");
    }

    #[test]
    fn strip_removes_login_cookies_and_every_variant_of_the_names() {
        let out = spec()
            .strip(
                b"a=1; __Host-clever_gateway_login_abcdefghijkl=x; __host-Clever_Gateway=y; \
                  __Secure-clever_gateway_bounce=1; CLEVER_GATEWAY_LOGIN_zz=2; b=2",
            )
            .unwrap();
        assert_eq!(out, b"a=1; b=2");
    }

    #[test]
    fn reserves_names_as_browsers_store_them() {
        let s = spec();
        for ours in [
            "clever_gateway",
            " clever_gateway ",
            "Clever_Gateway",
            "__Host-clever_gateway",
            "__HOST-clever_gateway",
            "__secure-clever_gateway",
            "clever_gateway_login",
            "clever_gateway_login_x",
            "__Host-clever_gateway_login_abcdefghijkl",
            "clever_gateway_bounce",
            "\u{a0}clever_gateway",
        ] {
            assert!(s.reserves(ours), "{ours:?}");
        }
        for app in [
            "PHPSESSID",
            "clever_gateway2",
            "clever_gateway_x",
            "clever_gateway_loginx",
            "__Host-app",
            "",
            "x_clever_gateway",
        ] {
            assert!(!s.reserves(app), "{app:?}");
        }
    }

    #[test]
    fn sets_reserved_reads_the_name_as_browsers_do() {
        let s = spec();
        for planted in [
            &b"clever_gateway=abc; Path=/"[..],
            b"  __Host-clever_gateway_login_abcdefghijkl=v; Secure; Path=/",
            b"CLEVER_GATEWAY=abc",
            b"=clever_gateway=abc",
            b" =clever_gateway_login_q=1",
            b"clever_gateway",
            b"clever_gateway_bounce=1; Max-Age=300",
        ] {
            assert!(
                s.sets_reserved(planted),
                "{:?}",
                String::from_utf8_lossy(planted)
            );
        }
        for app in [
            &b"PHPSESSID=abc; Path=/; HttpOnly"[..],
            b"theme=clever_gateway",
            b"a=b; Path=/clever_gateway=x",
            b"=theme=dark",
            b"\xff\xfe=1",
        ] {
            assert!(!s.sets_reserved(app), "{:?}", String::from_utf8_lossy(app));
        }
    }

    fn app_cookies(session: &str, upstreams: &str) -> Vec<String> {
        let cfg = crate::config::parse_str(
            &format!(
                "[clever]\nclient_id = \"c\"\nclient_secret_env = \"X\"\nredirect_uri = \"https://gw.example.org/cb\"\n[session]\n{session}\n{upstreams}"
            ),
            "t.toml",
        )
        .unwrap();
        AppCookies::from_config(&cfg).set_cookies().to_vec()
    }

    #[test]
    fn app_cookies_expired_at_root_and_prefix_host_only_and_on_the_cookie_domain() {
        let set = app_cookies(
            "cookie_domain = \".example.org\"",
            "[[upstream]]\nname = \"a\"\nurl = \"http://127.0.0.1:9\"\npath_prefix = \"/lib\"\napp_cookies = [\"PHPSESSID\"]\n\
             [[upstream]]\nname = \"b\"\nurl = \"http://127.0.0.1:9\"\napp_cookies = [\"sessionid\", \"PHPSESSID\"]\n",
        );
        let exp = "Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT";
        assert_eq!(
            set,
            [
                format!("PHPSESSID=; Secure; Path=/; {exp}"),
                format!("PHPSESSID=; Secure; Path=/; Domain=example.org; {exp}"),
                format!("PHPSESSID=; Secure; Path=/lib; {exp}"),
                format!("PHPSESSID=; Secure; Path=/lib; Domain=example.org; {exp}"),
                format!("sessionid=; Secure; Path=/; {exp}"),
                format!("sessionid=; Secure; Path=/; Domain=example.org; {exp}"),
            ]
        );
    }

    #[test]
    fn app_cookies_prefixed_names_expired_the_way_browsers_accept_them() {
        let set = app_cookies(
            "cookie_secure = false",
            "[[upstream]]\nname = \"a\"\nurl = \"http://127.0.0.1:9\"\npath_prefix = \"/x\"\napp_cookies = [\"__Host-sid\", \"__Secure-t\", \"plain\"]\n",
        );
        let exp = "Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT";
        assert_eq!(
            set,
            [
                format!("__Host-sid=; Secure; Path=/; {exp}"),
                format!("__Secure-t=; Secure; Path=/; {exp}"),
                format!("__Secure-t=; Secure; Path=/x; {exp}"),
                format!("plain=; Path=/; {exp}"),
                format!("plain=; Path=/x; {exp}"),
            ]
        );
        assert!(app_cookies(
            "",
            "[[upstream]]\nname = \"a\"\nurl = \"http://127.0.0.1:9\"\n"
        )
        .is_empty());
    }

    proptest::proptest! {
        /// Every cookie name an operator may list comes back from its `Set-Cookie` values as
        /// browsers read them: that name, empty, `Max-Age=0`, at `/` or the upstream's prefix.
        #[test]
        fn app_cookies_any_token_name_is_expired_as_written(
            name in "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}",
            prefix in proptest::option::of("/[a-z]{1,8}"),
        ) {
            let prefix_line = prefix
                .as_ref()
                .map(|p| format!("path_prefix = \"{p}\"\n"))
                .unwrap_or_default();
            let Ok(cfg) = crate::config::parse_str(
                &format!(
                    "[clever]\nclient_id = \"c\"\nclient_secret_env = \"X\"\nredirect_uri = \"https://gw.example.org/cb\"\n[[upstream]]\nname = \"a\"\nurl = \"http://127.0.0.1:9\"\n{prefix_line}app_cookies = [{name:?}]\n"
                ),
                "t.toml",
            ) else {
                // Only the gateway's own names are refused.
                proptest::prop_assert!(CookieJarSpec::named("clever_gateway").reserves(&name));
                return Ok(());
            };
            let set = AppCookies::from_config(&cfg);
            proptest::prop_assert!(!set.set_cookies().is_empty());
            for line in set.set_cookies() {
                let c = Cookie::parse(line.as_str()).unwrap();
                proptest::prop_assert_eq!(c.name(), name.as_str());
                proptest::prop_assert_eq!(c.value(), "");
                proptest::prop_assert_eq!(c.max_age(), Some(cookie::time::Duration::ZERO));
                let path = c.path().unwrap();
                proptest::prop_assert!(path == "/" || Some(path) == prefix.as_deref(), "{}", line);
            }
        }
    }

    #[test]
    fn from_config_prefixes_login_cookies_as_the_attributes_allow() {
        let cfg = |secure: bool, domain: Option<&str>| {
            SessionConfig {
            cookie_secure: secure,
            cookie_domain: domain.map(String::from),
            ..crate::config::parse_str(
                "[clever]\nclient_id = \"c\"\nclient_secret_env = \"X\"\nredirect_uri = \"https://gw.example.org/cb\"\n[[upstream]]\nname = \"a\"\nurl = \"http://127.0.0.1:9\"\n",
                "t.toml",
            )
            .unwrap()
            .session
        }
        };
        let name =
            |secure, domain| CookieJarSpec::from_config(&cfg(secure, domain)).login_name("st");
        let tag = crate::auth::login_state::state_tag("st");
        assert_eq!(
            name(true, None),
            format!("__Host-clever_gateway_login_{tag}")
        );
        assert_eq!(
            name(true, Some("example.org")),
            format!("__Secure-clever_gateway_login_{tag}")
        );
        assert_eq!(name(false, None), format!("clever_gateway_login_{tag}"));
        let jar = CookieJarSpec::from_config(&cfg(true, None));
        let set = jar.set_login(&jar.login_name("st"), "v", Duration::from_secs(600));
        assert!(set.starts_with("__Host-clever_gateway_login_"), "{set}");
        assert!(set.contains("; Secure") && set.contains("Path=/"), "{set}");
        assert!(!set.contains("Domain"), "{set}");
    }

    #[test]
    fn strip_only_gateway_cookies_none() {
        assert_eq!(
            spec().strip(b"clever_gateway=a;clever_gateway_bounce=1"),
            None
        );
    }

    #[test]
    fn strip_keeps_malformed_foreign_pieces_and_similar_names() {
        let out = spec()
            .strip(b"flag; clever_gateway2=keep;  clever_gateway = drop ;x=\xff")
            .unwrap();
        assert_eq!(out, b"flag; clever_gateway2=keep; x=\xff");
    }

    #[test]
    fn strip_cow_no_gateway_cookie_borrows_the_header() {
        let raw = b"PHPSESSID=abc; theme=dark";
        assert!(matches!(spec().strip_cow(raw), Cow::Borrowed(b) if b == raw));
    }

    #[test]
    fn strip_cow_trailing_gateway_cookie_borrows_a_prefix() {
        let raw = b"PHPSESSID=abc; theme=dark; clever_gateway=SECRET";
        assert!(
            matches!(spec().strip_cow(raw), Cow::Borrowed(b) if b == b"PHPSESSID=abc; theme=dark")
        );
    }

    #[test]
    fn strip_cow_respaced_or_inner_gateway_cookie_copies() {
        for (raw, want) in [
            (&b"a=1;b=2"[..], &b"a=1; b=2"[..]),
            (b" a=1", b"a=1"),
            (b"a=1; clever_gateway=S; b=2", b"a=1; b=2"),
            (b"clever_gateway=S; a=1", b"a=1"),
            (b"a=1;; b=2", b"a=1; b=2"),
        ] {
            let got = spec().strip_cow(raw);
            assert!(matches!(got, Cow::Owned(_)), "{raw:?}");
            assert_eq!(&*got, want);
        }
    }

    #[test]
    fn read_finds_session_login_and_bounce() {
        let s = spec();
        let got = s.read(
            [
                b"a=1; clever_gateway=one".as_slice(),
                b"clever_gateway_login=L; clever_gateway_bounce=1; clever_gateway=two",
                b"__Host-clever_gateway_login_tag1=A; clever_gateway_login_tag2=planted; \
                  __Host-clever_gateway_login_tag3=B",
            ]
            .into_iter(),
        );
        assert_eq!(got.session, vec!["one".to_string(), "two".to_string()]);
        assert!(got.legacy_login);
        assert_eq!(
            got.logins,
            vec![
                ("__Host-clever_gateway_login_tag1".into(), "A".into()),
                ("__Host-clever_gateway_login_tag3".into(), "B".into())
            ],
            "only the exact, prefixed names the gateway sets"
        );
        assert!(got.bounce);
    }

    #[test]
    fn read_non_utf8_or_garbage_is_no_cookie() {
        let s = spec();
        let got = s.read([b"\xff\xfe=\x00; ;;; =".as_slice()].into_iter());
        assert_eq!(got, GatewayCookies::default());
    }

    #[test]
    fn set_session_has_security_attributes() {
        let v = spec().set_session("ID", Duration::from_secs(7200));
        assert!(v.contains("HttpOnly"), "{v}");
        assert!(v.contains("SameSite=Lax"), "{v}");
        assert!(v.contains("Secure"), "{v}");
        assert!(v.contains("Path=/"), "{v}");
        assert!(v.contains("Max-Age=7200"), "{v}");
    }

    #[test]
    fn set_session_insecure_and_domain() {
        let mut s = spec();
        s.secure = false;
        s.domain = Some(".example-district.org".into());
        let v = s.set_session("ID", Duration::from_secs(60));
        assert!(!v.contains("Secure"), "{v}");
        assert!(v.contains("Domain=example-district.org"), "{v}");
    }

    #[test]
    fn login_bounce_and_clear_follow_secure_like_the_session() {
        let s = spec();
        for v in [
            s.set_login(
                "__Host-clever_gateway_login_t",
                "L",
                Duration::from_secs(600),
            ),
            s.set_bounce(),
            s.clear("clever_gateway"),
        ] {
            assert!(v.contains("; Secure"), "{v}");
        }
        let mut plain = spec();
        plain.secure = false;
        for v in [
            plain.set_login("clever_gateway_login_t", "L", Duration::from_secs(600)),
            plain.set_bounce(),
        ] {
            assert!(!v.contains("Secure"), "{v}");
        }
    }

    #[test]
    fn clear_expires_cookie() {
        let v = spec().clear("clever_gateway");
        assert!(v.starts_with("clever_gateway=;"), "{v}");
        assert!(v.contains("Max-Age=0"), "{v}");
    }
}
