//! Leaves written as strings and read into their real types while the file is deserialized
//! ([`Leaf`]): durations (bounded ones with their defaults), socket addresses, networks, URLs,
//! header names, enums, paths, Redis targets and names. A leaf that does not read is reported
//! by the file layer at its span, `key "text" why`, and pruned.

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use serde::de::{self, value::StrDeserializer, Deserialize, Deserializer, IntoDeserializer};
use toml::Spanned;
use url::{Host, Position, Url};

use super::file::quote;
use super::model::{ApiVersion, LogFormat, PublicPath, Readiness, StoreKind};
use crate::identity::UserType;

/// A string leaf read into `T`, with its span and its text as written.
#[derive(Debug, Clone)]
pub(crate) struct Leaf<T> {
    pub value: T,
    pub text: String,
    span: Range<usize>,
}

impl<T> Leaf<T> {
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }
}

/// How a leaf reads its text; `Err` says why not, as it follows the quoted text in a message
/// (`is not a duration: expected …`).
pub(crate) trait FromText: Sized {
    /// Whether the message quotes the text before the reason.
    const QUOTED: bool = true;
    fn from_text(text: &str) -> Result<Self, String>;
}

/// Reads `text` into `T`; `Err` is the message after the key's name: `"text" why`.
pub(crate) fn read<T: FromText>(text: &str) -> Result<T, String> {
    T::from_text(text).map_err(|why| match T::QUOTED {
        true => format!("{} {why}", quote(text)),
        false => why,
    })
}

/// A leaf is read as a newtype: toml puts an error of the newtype's visitor at the value's
/// span, also for an entry of a list.
impl<'de, T: FromText> Deserialize<'de> for Leaf<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_newtype_struct("Leaf", LeafVisitor(PhantomData))
    }
}

struct LeafVisitor<T>(PhantomData<T>);

impl<'de, T: FromText> de::Visitor<'de> for LeafVisitor<T> {
    type Value = Leaf<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Leaf<T>, D::Error> {
        let text = Spanned::<String>::deserialize(d)?;
        let value = read(text.get_ref()).map_err(de::Error::custom)?;
        let (span, text) = (text.span(), text.into_inner());
        Ok(Leaf { value, text, span })
    }
}

/// Enums named by their serde names (`rename_all`): `is not {what}: expected "a" or "b"`.
macro_rules! named {
    ($($t:ty: $what:literal),*) => {$(
        impl FromText for $t {
            fn from_text(text: &str) -> Result<Self, String> {
                let d: StrDeserializer<'_, de::value::Error> = text.into_deserializer();
                <$t>::deserialize(d).map_err(|e| {
                    let e = e.to_string();
                    let names = e.split_once(", expected ").map_or("", |(_, n)| n);
                    format!("is not {}: expected {}", $what, names.replace('`', "\""))
                })
            }
        }
    )*};
}
named!(LogFormat: "a log format", StoreKind: "a store", Readiness: "a readiness mode");

/// Leaves read by a parser that says only whether they read; `$why` says what is expected.
macro_rules! parsed_leaves {
    ($($(#[$doc:meta])* $t:ty, $parse:expr, $why:literal;)*) => {$(
        $(#[$doc])*
        impl FromText for $t {
            fn from_text(text: &str) -> Result<Self, String> {
                let parse: fn(&str) -> Option<$t> = $parse;
                parse(text).ok_or_else(|| $why.to_owned())
            }
        }
    )*};
}

parsed_leaves! {
    Duration, |t| humantime::parse_duration(t.trim()).ok(),
        r#"is not a duration: expected a duration like "90s" or "2h""#;
    SocketAddr, |t| t.trim().parse().ok(),
        r#"is not an address: expected "ip:port" such as "0.0.0.0:8080" or "[::]:8080""#;
    /// A network, or one address (a /32 or /128); host bits are cleared.
    IpNet, |t| {
        let net = t.trim().parse::<IpNet>().map(|n| n.trunc());
        net.or_else(|_| t.trim().parse::<IpAddr>().map(IpNet::from)).ok()
    },
        r#"is not an address: expected a CIDR like "10.0.0.0/8" or an IP address"#;
    HeaderName, |t| HeaderName::from_bytes(t.as_bytes()).ok(),
        r#"is not a valid header name: expected letters, digits and - like "X-User-Id""#;
    UserType, UserType::parse,
        "is not a Clever user type: expected one of student, teacher, staff, school_admin, \
         district_admin, contact";
    /// `v2.<n>` or `v3.<n>`.
    ApiVersion, |t| {
        let (major, minor) = t.split_once('.')?;
        let n = !minor.is_empty() && minor.len() <= 3 && minor.bytes().all(|b| b.is_ascii_digit());
        match major {
            "v2" if n => Some(ApiVersion::V2),
            "v3" if n => Some(ApiVersion::V3),
            _ => None,
        }
    },
        "is not a Clever API version: expected v2.x or v3.x (v2.0, v2.1, v3.0, v3.1)";
}

/// An entry of `public_paths`: a prefix when it ends in `/`.
impl FromText for PublicPath {
    fn from_text(p: &str) -> Result<Self, String> {
        Err(if !p.starts_with('/') {
            r#"does not start with "/": expected an absolute path such as "/static/""#
        } else if p.contains(['?', '#']) {
            "has \"?\" or \"#\": public paths match the path only, never the query"
        } else if p.contains("..") {
            r#"contains "..": expected a normalized path"#
        } else if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
            "contains a space or control character: expected a plain path"
        } else if p.ends_with('/') {
            return Ok(PublicPath::Prefix(p.to_owned()));
        } else {
            return Ok(PublicPath::Exact(p.to_owned()));
        }
        .into())
    }
}

/// A file path: anything but empty.
impl FromText for PathBuf {
    const QUOTED: bool = false;
    fn from_text(text: &str) -> Result<Self, String> {
        match text.trim().is_empty() {
            true => Err("is empty: expected a file path".to_owned()),
            false => Ok(PathBuf::from(text)),
        }
    }
}

/// Newtypes around a `String`, each read with a check that says why not; or, given a predicate
/// and the reason, the text as written when the predicate holds.
macro_rules! text_leaves {
    ($($(#[$doc:meta])* $name:ident, $check:expr $(, $why:literal)?;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub(crate) struct $name(pub String);

        impl FromText for $name {
            fn from_text(text: &str) -> Result<Self, String> {
                let checked = text_leaves!(@check text, $check $(, $why)?);
                checked.map($name).map_err(str::to_owned)
            }
        }
    )*};
    (@check $text:ident, $ok:expr, $why:literal) => {{
        let ok: fn(&str) -> bool = $ok;
        ok($text).then(|| $text.to_owned()).ok_or($why)
    }};
    (@check $text:ident, $check:expr) => {{
        let check: fn(&str) -> Result<String, &'static str> = $check;
        check($text)
    }};
}

text_leaves! {
    /// `upstream.name`: letters, digits, `_`, `.`, `-`; not the metrics' own label.
    UpstreamName, |text| {
        let named = |b: u8| b.is_ascii_alphanumeric() || b"_.-".contains(&b);
        Err(if text == crate::process::metrics::GATEWAY_UPSTREAM {
            "is reserved for the gateway's own requests in metrics: choose another name"
        } else if text.is_empty() || !text.bytes().all(named) {
            r#"is not a valid name: expected letters, digits, "_", "." or "-""#
        } else {
            return Ok(text.to_owned());
        })
    };

    /// `upstream.host` to match: lower-cased, no port, no path; an IPv6 literal in brackets,
    /// as it appears in a Host header.
    RouteHost, |h| {
        let ipv6 = h.strip_prefix('[').and_then(|ip| ip.strip_suffix(']'));
        Err(if h.is_empty() {
            "is empty: expected a host name, or remove the key to match any host"
        } else if h.contains('/') {
            r#"contains "/": expected a bare host name (no scheme or path)"#
        } else if ipv6.is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok()) {
            return Ok(h.to_ascii_lowercase());
        } else if h.starts_with('[') {
            "is not a host: expected a host name or a bracketed IPv6 address, without a port"
        } else if h.contains(':') {
            "has a port: expected the host name alone"
        } else if !h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
            r#"is not a host name: expected letters, digits, "-" and "." (IDNs as xn--)"#
        } else {
            return Ok(h.to_ascii_lowercase());
        })
    };

    /// `upstream.path_prefix`, normalised: no trailing `/` except for `/` itself.
    PathPrefix, |p| {
        let trimmed = p.trim_end_matches('/');
        let odd = |c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#';
        Err(if !p.starts_with('/') {
            r#"does not start with "/": expected an absolute path such as "/staff""#
        } else if p.contains(odd) {
            "has a query, fragment or space: expected a plain path"
        } else if p.split('/').any(|s| s == "." || s == "..") {
            r#"has a "." or ".." segment: expected a normalized path"#
        } else if trimmed == "/_gateway" || trimmed.starts_with("/_gateway/") {
            "is under /_gateway/, which the gateway reserves: choose another prefix"
        } else {
            return Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_owned());
        })
    };

    /// `district.id`: Clever ids are 24 hex characters; anything id-like is accepted, nothing
    /// that could be unsafe in a URL path, a log line or a header.
    DistrictId, |id| !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
    r#"is not a district id: expected at most 64 letters, digits, "-" and "_""#;

    /// `session.cookie_domain`: a host name, optionally with one leading dot; lower-cased.
    CookieDomain, |s| {
        let name = s.strip_prefix('.').unwrap_or(s);
        let label = |l: &str| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        let ok = (1..=253).contains(&name.len()) && name.split('.').all(label);
        let why = r#"is not a host name: expected a name like ".example-district.org""#;
        ok.then(|| s.to_ascii_lowercase()).ok_or(why)
    };

    /// `session.logout_redirect`: a same-site path, or an absolute http(s) URL.
    LogoutRedirect, |text| match text.strip_prefix('/') {
        Some(path) => {
            !path.starts_with('/') && !text.contains('\\') && !text.contains(char::is_control)
        }
        None => Url::parse(text)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some()),
    },
    r#"is not a path or URL: expected a path starting with a single "/" or an http(s) URL"#;

    /// `session.cookie_name`, an `upstream.app_cookies` entry: a cookie name (RFC 6265 token).
    CookieName, |name| !name.is_empty() && name.bytes().all(is_cookie_token),
    "is not a cookie name: expected letters, digits and !#$%&'*+-.^_`|~ only (an RFC 6265 token)";

    /// The name of an environment variable holding a secret: no `=`, NUL or whitespace.
    EnvName, |n| !n.is_empty() && !n.contains(['=', '\0']) && !n.contains(char::is_whitespace),
    r#"is not an environment variable name: expected a name like "CLIENT_SECRET""#;

    /// `session.redis_master_name`: the name the Sentinels monitor the primary under.
    MasterName, |n| !n.is_empty() && !n.contains(|c: char| c.is_whitespace() || c.is_control()),
    r#"is not a Sentinel master name: expected a name without spaces, like "gateway""#;

    /// An `upstream.logout_paths` entry: a path as the gateway normalises request paths, so
    /// that comparing it exactly with the normalised request path is meaningful.
    LogoutPath, |p| {
        use crate::gateway::routing::normalize_path;
        Err(if !p.starts_with('/') {
            r#"does not start with "/": expected an absolute path such as "/logout.php""#
        } else if p.contains(['?', '#']) {
            "has \"?\" or \"#\": logout paths match the path only, never the query"
        } else if p.chars().any(|c| c.is_whitespace() || c.is_control()) || p.contains('%') {
            r#"contains a space, control character or "%": expected the path decoded"#
        } else if !normalize_path(p).is_ok_and(|n| n.decoded == p) {
            r#"is not a normalised path (".", ".." or empty segments): expected "/app/logout""#
        } else if p == "/_gateway" || p.starts_with(crate::gateway::GATEWAY_PREFIX) {
            "is under /_gateway/, which the gateway answers itself: use /_gateway/logout"
        } else {
            return Ok(p.to_owned());
        })
    };
}

/// `server.pid_file`, `server.upgrade_sock`: absolute, so that `reload` (systemd's ExecReload
/// runs in /) finds the same file as `run`.
#[derive(Debug, Clone)]
pub(crate) struct RunPath(pub PathBuf);

impl FromText for RunPath {
    fn from_text(text: &str) -> Result<Self, String> {
        let path = Path::new(text);
        let problem = if text.trim().is_empty() {
            "is empty"
        } else if !path.is_absolute() {
            "is relative"
        } else if text.ends_with('/') || path.file_name().is_none() {
            "names a directory"
        } else {
            return Ok(RunPath(path.into()));
        };
        let want = r#"expected an absolute file path like "/run/clever-gateway/gateway.sock""#;
        Err(format!("{problem}: {want}"))
    }
}

/// An absolute `http://` or `https://` URL with a host and no fragment.
#[derive(Debug, Clone)]
pub(crate) struct HttpUrl(pub Url);

impl FromText for HttpUrl {
    fn from_text(text: &str) -> Result<Self, String> {
        let why = match Url::parse(text) {
            Err(e) => format!("is not a valid URL ({e})"),
            Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                format!("has scheme {:?}", u.scheme())
            }
            Ok(u) if u.host_str().is_none_or(str::is_empty) => "has no host".to_owned(),
            Ok(u) if u.fragment().is_some() => "has a fragment (#…)".to_owned(),
            Ok(u) => return Ok(HttpUrl(u)),
        };
        let want = "expected an absolute http:// or https:// URL without a fragment";
        Err(format!("{why}: {want}"))
    }
}

/// Text that is not empty (nor only spaces); the message does not quote it.
#[derive(Debug, Clone)]
pub(crate) struct NonEmpty(pub String);

impl FromText for NonEmpty {
    const QUOTED: bool = false;
    fn from_text(text: &str) -> Result<Self, String> {
        match text.trim().is_empty() {
            true => Err("is empty: expected a value".to_owned()),
            false => Ok(NonEmpty(text.to_owned())),
        }
    }
}

/// `session.redis_url`: `redis://` or `rediss://` with a host and no password. Never quoted:
/// it may hold a password, which belongs in a secret source, not in a file that is shown,
/// copied and committed.
#[derive(Debug, Clone)]
pub(crate) struct RedisUrl(pub String);

impl FromText for RedisUrl {
    const QUOTED: bool = false;
    fn from_text(text: &str) -> Result<Self, String> {
        let scheme_ok = text.starts_with("redis://") || text.starts_with("rediss://");
        let url = Url::parse(text).ok().filter(|u| scheme_ok && u.has_host());
        Err(match url {
            Some(u) if u.password().is_some() => {
                "holds a password, which is never inline: set redis_password_env or \
                 redis_password_file instead"
            }
            Some(_) => return Ok(RedisUrl(text.to_owned())),
            None => "is not a Redis URL: expected redis://host:port/db or rediss://host:port/db",
        }
        .to_owned())
    }
}

/// A `redis_sentinels` entry: `host:port`, `redis://host:port` or `rediss://host:port` (TLS);
/// the port defaults to Sentinel's 26379. The host is an IPv6 address without brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SentinelAddr {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl FromText for SentinelAddr {
    const QUOTED: bool = false;
    fn from_text(text: &str) -> Result<Self, String> {
        let tls = text.starts_with("rediss://");
        let scheme = if tls { "rediss://" } else { "redis://" };
        let rest = text.strip_prefix(scheme).unwrap_or(text);
        let url = Url::parse(&format!("redis://{rest}")).ok();
        let why = match url.filter(|_| !rest.contains("://")) {
            None => "is not a Sentinel address".to_owned(),
            // Never echoed: it may hold a password.
            Some(u) if u.password().is_some() || !u.username().is_empty() => {
                let fix = "redis_sentinel_password_env or redis_sentinel_password_file";
                format!("holds a user or password (set {fix} instead)")
            }
            Some(u) if !matches!(&u[Position::BeforePath..], "" | "/") => {
                format!("{} has a path or query", quote(text))
            }
            Some(u) => match bare_host(&u) {
                Some(host) => {
                    let port = u.port().unwrap_or(26379);
                    return Ok(SentinelAddr { host, port, tls });
                }
                None => format!("{} has no host", quote(text)),
            },
        };
        let want = r#"expected host:port like "10.0.0.5:26379" (rediss:// for TLS)"#;
        Err(format!("{why}: {want}"))
    }
}

/// A URL's host as a name to connect to: an IPv6 address without its brackets, written as
/// the standard library writes it; `None` when there is no host.
pub(crate) fn bare_host(url: &Url) -> Option<String> {
    match url.host()? {
        Host::Ipv6(ip) => Some(ip.to_string()),
        Host::Domain("") => None,
        host => Some(host.to_string()),
    }
}

/// Durations within `$min..=$max` (out of range: "expected `$expected`"), `$default` when
/// the key is absent (if it has one).
macro_rules! bounded_durations {
    ($($(#[$doc:meta])* $name:ident, $min:expr, $max:expr, $expected:literal $(, $default:expr)?;)*)
        => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub(crate) struct $name(pub Duration);

        $(impl Default for $name {
            fn default() -> Self {
                $name($default)
            }
        })?

        impl FromText for $name {
            fn from_text(text: &str) -> Result<Self, String> {
                let d = Duration::from_text(text)?;
                ($min..=$max).contains(&d).then_some($name(d)).ok_or_else(|| {
                    concat!("is out of range: expected ", $expected).to_owned()
                })
            }
        }
    )*};
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

bounded_durations! {
    /// `server.grace_period`: how long SIGTERM (and the old process of a reload) lets requests
    /// finish; pingora's own default is 300 s.
    GracePeriod, secs(0), secs(300), "from 0s to 300s", secs(10);
    /// `server.header_timeout`: a request's whole header must arrive within this, from its
    /// first byte (slow-header attacks); each read alone is bounded by pingora's own timeouts.
    HeaderTimeout, secs(1), secs(120), "from 1s to 120s", secs(10);
    /// `clever.timeout`: of each request to Clever.
    CleverTimeout, Duration::from_nanos(1), secs(60), "more than 0s and at most 60s", secs(5);
    /// `clever.district_tokens_refresh`: how often discovered district-app tokens are listed
    /// again.
    TokensRefresh, secs(1), secs(24 * 3600), "at least 1s and at most 24h", secs(3600);
    /// `session.login_timeout`: like oauth2-proxy's CSRF cookie, long enough to type a
    /// password, short enough that abandoned sign-ins do not pile up.
    LoginTimeout, secs(60), secs(3600), "1m to 1h", secs(600);
    /// `upstream.timeout`: like nginx's proxy_read_timeout, how long the app may be silent
    /// while answering.
    UpstreamTimeout, secs(1), secs(3600), "1s to 1h", secs(60);
    /// `assertion.overlap`: how long previous keys stay published after start; an assertion
    /// lives 5 minutes, and a shorter overlap would orphan tokens still in use.
    Overlap, crate::auth::assertion::TOKEN_TTL, Duration::MAX,
        "at least 5m (an assertion's life), or tokens of a previous key stop verifying in use",
        secs(3600);
    /// `session.idle_timeout`: at least 1s, since a shorter one would end sessions between a
    /// page and its images (and at most `ttl`, checked with `[session]`); no default.
    IdleTimeout, secs(1), Duration::MAX, "at least 1s and at most session.ttl";
    /// `session.ttl`: Clever access tokens live 24h, and a session must not outlive its token.
    Ttl, Duration::from_nanos(1), secs(24 * 3600),
        "more than zero and not longer than 24h: the cap is 24h because Clever access tokens \
         live 24h and a session must not outlive its token",
        secs(2 * 3600);
}

/// `server.threads`: worker threads, 1 to 1024.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Threads(pub usize);

impl<'de> Deserialize<'de> for Threads {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match i64::deserialize(d)? {
            n @ 1..=1024 => Ok(Threads(n as usize)),
            n => Err(de::Error::custom(format!("is {n}: expected 1 to 1024"))),
        }
    }
}

/// `session.redis_db`: a database number, 0 or more.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RedisDb(pub i64);

impl<'de> Deserialize<'de> for RedisDb {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match i64::deserialize(d)? {
            n if n >= 0 => Ok(RedisDb(n)),
            n => Err(de::Error::custom(format!("is {n}: expected 0 or more"))),
        }
    }
}

/// RFC 6265 `token`: a visible ASCII character that is not a separator.
pub(crate) fn is_cookie_token(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && !b"()<>@,;:\\\"/[]?={}".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_kind(text: &str) -> Option<ApiVersion> {
        ApiVersion::from_text(text).ok()
    }

    /// A Sentinel's host and an upstream's host are the address as the standard library
    /// writes it, for every IPv6 form (the URL parser writes an IPv4-mapped one in hex).
    #[test]
    fn an_ipv6_host_is_written_without_brackets_as_std_writes_it() {
        for (written, host) in [
            ("[::ffff:10.0.0.5]:26379", "::ffff:10.0.0.5"),
            ("[FD00:0:0::7]:26380", "fd00::7"),
            ("10.0.0.5", "10.0.0.5"),
            ("sentinel-b.internal", "sentinel-b.internal"),
        ] {
            let s = SentinelAddr::from_text(written).unwrap();
            assert_eq!(s.host, host, "{written}");
            let url = Url::parse(&format!("http://{written}/")).unwrap();
            assert_eq!(bare_host(&url).as_deref(), Some(host), "{written}");
        }
    }

    #[test]
    fn api_kind_parses_versions() {
        assert_eq!(api_kind("v2.0"), Some(ApiVersion::V2));
        assert_eq!(api_kind("v3.10"), Some(ApiVersion::V3));
        assert_eq!(api_kind("v3."), None);
        assert_eq!(api_kind("v1.0"), None);
    }

    #[test]
    fn route_host_bracketed_ipv6_is_accepted() {
        assert_eq!(
            RouteHost::from_text("[::1]"),
            Ok(RouteHost("[::1]".to_owned()))
        );
        assert!(RouteHost::from_text("[::1]:80").is_err());
    }
}
