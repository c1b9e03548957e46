//! Leaves written as strings and read into their real types while the file is deserialized
//! ([`Leaf`]): durations (bounded ones with their defaults), socket addresses, networks, URLs,
//! header names, enums, paths, Redis targets and names. A leaf that does not read is reported
//! by the file layer at its span, `key "text" why`, and pruned.

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use serde::de::{self, value::StrDeserializer, Deserialize, Deserializer, IntoDeserializer};
use toml::Spanned;
use url::{Host, Url};

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

/// The value and text inside the span (the toml deserializer puts a visitor's error there).
struct Read<T>(T, String);

impl<'de, T: FromText> Deserialize<'de> for Read<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(ReadVisitor(PhantomData))
    }
}

struct ReadVisitor<T>(PhantomData<T>);

impl<T: FromText> de::Visitor<'_> for ReadVisitor<T> {
    type Value = Read<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Read<T>, E> {
        read(v)
            .map(|value| Read(value, v.to_owned()))
            .map_err(E::custom)
    }
}

/// Reads `text` into `T`; `Err` is the message after the key's name: `"text" why`.
pub(crate) fn read<T: FromText>(text: &str) -> Result<T, String> {
    T::from_text(text).map_err(|why| match T::QUOTED {
        true => format!("{} {why}", quote(text)),
        false => why,
    })
}

impl<'de, T: FromText> Deserialize<'de> for Leaf<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let read = Spanned::<Read<T>>::deserialize(d)?;
        let span = read.span();
        let Read(value, text) = read.into_inner();
        Ok(Leaf { value, text, span })
    }
}

/// An enum named by its serde names (`rename_all`): `is not a {what}: expected "a" or "b"`.
fn named<T: for<'de> Deserialize<'de>>(text: &str, what: &str) -> Result<T, String> {
    let d: StrDeserializer<'_, de::value::Error> = text.into_deserializer();
    T::deserialize(d).map_err(|e| {
        let e = e.to_string();
        let names = e.split_once(", expected ").map_or("", |(_, n)| n);
        format!("is not {what}: expected {}", names.replace('`', "\""))
    })
}

impl FromText for LogFormat {
    fn from_text(text: &str) -> Result<Self, String> {
        named(text, "a log format")
    }
}

impl FromText for StoreKind {
    fn from_text(text: &str) -> Result<Self, String> {
        named(text, "a store")
    }
}

impl FromText for Readiness {
    fn from_text(text: &str) -> Result<Self, String> {
        named(text, "a readiness mode").map_err(|_| {
            "is not a readiness mode: expected \"store\" (readyz is 503 while the session store \
             is unreachable; the default) or \"process\" (readyz is 200 while the process runs)"
                .to_owned()
        })
    }
}

impl FromText for Duration {
    fn from_text(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text.trim())
            .map_err(|_| "is not a duration: expected a duration like \"90s\" or \"2h\"".to_owned())
    }
}

impl FromText for SocketAddr {
    fn from_text(text: &str) -> Result<Self, String> {
        text.trim().parse().map_err(|_| {
            "is not an address: expected \"ip:port\" such as \"0.0.0.0:8080\" or \"[::]:8080\""
                .to_owned()
        })
    }
}

/// A network, or one address (a /32 or /128); host bits are cleared.
impl FromText for IpNet {
    fn from_text(text: &str) -> Result<Self, String> {
        let text = text.trim();
        text.parse::<IpNet>()
            .map(|n| n.trunc())
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| {
                "is not an address: expected a CIDR like \"10.0.0.0/8\" or an IP address like \
                 \"192.0.2.7\""
                    .to_owned()
            })
    }
}

impl FromText for HeaderName {
    fn from_text(text: &str) -> Result<Self, String> {
        HeaderName::from_bytes(text.as_bytes()).map_err(|_| {
            "is not a valid header name: expected letters, digits and - such as \
             \"X-Clever-User-Id\""
                .to_owned()
        })
    }
}

impl FromText for UserType {
    fn from_text(text: &str) -> Result<Self, String> {
        UserType::parse(text).ok_or_else(|| {
            "is not a Clever user type: expected one of student, teacher, staff, school_admin, \
             district_admin, contact"
                .to_owned()
        })
    }
}

/// `v2.<n>` or `v3.<n>`.
impl FromText for ApiVersion {
    fn from_text(text: &str) -> Result<Self, String> {
        let kind = match text.split_once('.') {
            Some(("v2", minor)) => Some((ApiVersion::V2, minor)),
            Some(("v3", minor)) => Some((ApiVersion::V3, minor)),
            _ => None,
        };
        kind.filter(|(_, m)| !m.is_empty() && m.len() <= 3 && m.bytes().all(|b| b.is_ascii_digit()))
            .map(|(kind, _)| kind)
            .ok_or_else(|| {
                "is not a Clever API version: expected v2.x or v3.x (v2.0, v2.1, v3.0, v3.1)"
                    .to_owned()
            })
    }
}

/// An entry of `public_paths`: a prefix when it ends in `/`.
impl FromText for PublicPath {
    fn from_text(p: &str) -> Result<Self, String> {
        let why = if !p.starts_with('/') {
            "does not start with \"/\": expected an absolute path such as \"/static/\" or \
             \"/favicon.ico\""
        } else if p.contains(['?', '#']) {
            "has \"?\" or \"#\": public paths match the path only, never the query"
        } else if p.contains("..") {
            "contains \"..\": expected a normalized path"
        } else if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
            "contains a space or control character: expected a plain path"
        } else if p.ends_with('/') {
            return Ok(PublicPath::Prefix(p.to_owned()));
        } else {
            return Ok(PublicPath::Exact(p.to_owned()));
        };
        Err(why.to_owned())
    }
}

/// A file path: anything but empty.
impl FromText for PathBuf {
    const QUOTED: bool = false;
    fn from_text(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("is empty: expected a file path".to_owned());
        }
        Ok(PathBuf::from(text))
    }
}

/// Reads a newtype around a `String` with `check`, which says why not; or, given a predicate
/// and the reason, the text as written when the predicate holds.
macro_rules! text_leaf {
    ($(#[$doc:meta])* $name:ident, $ok:expr, $why:literal) => {
        text_leaf!($(#[$doc])* $name, |text| {
            let ok: fn(&str) -> bool = $ok;
            ok(text).then(|| text.to_owned()).ok_or($why)
        });
    };
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub(crate) struct $name(pub String);

        impl FromText for $name {
            fn from_text(text: &str) -> Result<Self, String> {
                let check: fn(&str) -> Result<String, &'static str> = $check;
                check(text).map($name).map_err(str::to_owned)
            }
        }
    };
}

text_leaf!(
    /// `upstream.name`: letters, digits, `_`, `.`, `-`; not the metrics' own label.
    UpstreamName,
    |text| {
        if text == crate::process::metrics::GATEWAY_UPSTREAM {
            Err("is reserved: metrics use it for requests the gateway answers itself; choose \
                 another name")
        } else if !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            Ok(text.to_owned())
        } else {
            Err("is not a valid name: expected letters, digits, \"_\", \".\" or \"-\" (at least \
                 one)")
        }
    }
);

text_leaf!(
    /// `upstream.host` to match: lower-cased, no port, no path.
    RouteHost,
    |h| {
        if h.is_empty() {
            return Err("is empty: expected a host name such as \
                        \"gradebook.example-district.org\", or remove the key to match any host");
        }
        if h.contains('/') {
            return Err("contains \"/\": expected a bare host name (no scheme or path)");
        }
        if let Some(inner) = h.strip_prefix('[') {
            // An IPv6 literal, as it appears in a Host header.
            return match inner.strip_suffix(']') {
                Some(ip) if ip.parse::<std::net::Ipv6Addr>().is_ok() => Ok(h.to_ascii_lowercase()),
                _ => Err("is not a host: expected a host name or a bracketed IPv6 address, \
                          without a port"),
            };
        }
        if h.contains(':') {
            return Err("has a port: expected the host name alone (the port is ignored when \
                        matching)");
        }
        if !h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
            return Err("is not a host name: expected letters, digits, \"-\", \".\" \
                        (internationalized names in their xn-- form)");
        }
        Ok(h.to_ascii_lowercase())
    }
);

text_leaf!(
    /// `upstream.path_prefix`, normalised: no trailing `/` except for `/` itself.
    PathPrefix,
    |p| {
        if !p.starts_with('/') {
            return Err("does not start with \"/\": expected an absolute path such as \"/staff\"");
        }
        if p.contains(['?', '#']) || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("has a query, fragment or space: expected a plain path such as \"/staff\"");
        }
        if p.split('/').any(|s| s == "." || s == "..") {
            return Err("has a \".\" or \"..\" segment: expected a normalized path");
        }
        let trimmed = p.trim_end_matches('/');
        if trimmed == "/_gateway" || trimmed.starts_with("/_gateway/") {
            return Err("is under /_gateway/, which the gateway reserves for its own endpoints: \
                        choose another prefix");
        }
        Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_owned())
    }
);

text_leaf!(
    /// `district.id`: Clever ids are 24 hex characters; anything id-like is accepted, nothing
    /// that could be unsafe in a URL path, a log line or a header.
    DistrictId,
    |id| !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
    "is not a district id: expected a Clever district id such as \"5d0a9e5d0958b300014e49d2\" \
     (letters, digits, \"-\" and \"_\", at most 64)"
);

text_leaf!(
    /// `session.cookie_domain`: a host name, optionally with one leading dot; lower-cased.
    CookieDomain,
    |s| {
        let name = s.strip_prefix('.').unwrap_or(s);
        let ok = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        ok.then(|| s.to_ascii_lowercase()).ok_or(
            "is not a host name: expected a name like \"example-district.org\" or \
             \".example-district.org\" (no scheme, port or path)",
        )
    }
);

text_leaf!(
    /// `session.logout_redirect`: a same-site path, or an absolute http(s) URL.
    LogoutRedirect,
    |text| match text.strip_prefix('/') {
        Some(path) => {
            !path.starts_with('/') && !text.contains('\\') && !text.contains(char::is_control)
        }
        None => Url::parse(text)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some()),
    },
    "is not a path or URL: expected a path starting with a single \"/\" or an absolute http(s) \
     URL"
);

text_leaf!(
    /// `session.cookie_name`, an `upstream.app_cookies` entry: a cookie name (RFC 6265 token).
    CookieName,
    |name| !name.is_empty() && name.bytes().all(is_cookie_token),
    "is not a cookie name: expected letters, digits and !#$%&'*+-.^_`|~ only (an RFC 6265 token)"
);

text_leaf!(
    /// The name of an environment variable holding a secret: no `=`, NUL or whitespace.
    EnvName,
    |n| !n.is_empty() && !n.contains(['=', '\0']) && !n.contains(char::is_whitespace),
    "is not an environment variable name: expected a name like \"CLIENT_SECRET\""
);

/// `server.pid_file`, `server.upgrade_sock`: absolute, so that `reload` (systemd's ExecReload
/// runs in /) finds the same file as `run`.
#[derive(Debug, Clone)]
pub(crate) struct RunPath(pub PathBuf);

impl FromText for RunPath {
    fn from_text(text: &str) -> Result<Self, String> {
        let path = std::path::Path::new(text);
        let problem = if text.trim().is_empty() {
            "is empty"
        } else if !path.is_absolute() {
            "is relative"
        } else if text.ends_with('/') || path.file_name().is_none() {
            "names a directory"
        } else {
            return Ok(RunPath(path.into()));
        };
        Err(format!(
            "{problem}: expected an absolute file path such as \"/run/clever-gateway/gateway.pid\" \
             or \"/run/clever-gateway/gateway.sock\""
        ))
    }
}

/// An absolute `http://` or `https://` URL with a host and no fragment.
#[derive(Debug, Clone)]
pub(crate) struct HttpUrl(pub Url);

impl FromText for HttpUrl {
    fn from_text(text: &str) -> Result<Self, String> {
        const WANT: &str = "expected an absolute http:// or https:// URL";
        let url = Url::parse(text).map_err(|e| format!("is not a valid URL ({e}): {WANT}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("has scheme {:?}: {WANT}", url.scheme()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("has no host: {WANT}"));
        }
        if url.fragment().is_some() {
            return Err("has a fragment (#…): remove it".to_owned());
        }
        Ok(HttpUrl(url))
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
/// it may hold a password.
#[derive(Debug, Clone)]
pub(crate) struct RedisUrl(pub String);

impl FromText for RedisUrl {
    const QUOTED: bool = false;
    fn from_text(text: &str) -> Result<Self, String> {
        let scheme_ok = text.starts_with("redis://") || text.starts_with("rediss://");
        match Url::parse(text)
            .ok()
            .filter(|p| scheme_ok && p.host_str().is_some())
        {
            // In a file that is shown, copied and committed: it comes from a secret source.
            Some(url) if url.password().is_some() => Err("holds a password: the Redis password \
                is never inline; remove it from the URL and set redis_password_env or \
                redis_password_file"
                .to_owned()),
            Some(_) => Ok(RedisUrl(text.to_owned())),
            None => Err("is not a Redis URL: expected redis://host:port/db or \
                         rediss://host:port/db"
                .to_owned()),
        }
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
        let (tls, url) = match text.strip_prefix("rediss://") {
            Some(rest) => (true, Url::parse(&format!("redis://{rest}"))),
            None if text.starts_with("redis://") => (false, Url::parse(text)),
            None if text.contains("://") => (false, Err(url::ParseError::InvalidDomainCharacter)),
            None => (false, Url::parse(&format!("redis://{text}"))),
        };
        let why = match &url {
            Err(_) => "is not a Sentinel address".to_owned(),
            // Never echoed: it may hold a password.
            Ok(u) if u.password().is_some() || !u.username().is_empty() => "holds a user or \
                password (set redis_sentinel_password_env or redis_sentinel_password_file \
                instead)"
                .to_owned(),
            Ok(u)
                if !matches!(u.path(), "" | "/")
                    || u.query().is_some()
                    || u.fragment().is_some() =>
            {
                format!("{} has a path or query", quote(text))
            }
            Ok(u) => match u.host() {
                Some(Host::Domain(d)) if !d.is_empty() => return Ok(sentinel(d, u, tls)),
                Some(Host::Ipv4(a)) => return Ok(sentinel(&a.to_string(), u, tls)),
                Some(Host::Ipv6(a)) => return Ok(sentinel(&a.to_string(), u, tls)),
                _ => format!("{} has no host", quote(text)),
            },
        };
        Err(format!(
            "{why}: expected host:port like \"10.0.0.5:26379\" (rediss://host:port for TLS)"
        ))
    }
}

fn sentinel(host: &str, url: &Url, tls: bool) -> SentinelAddr {
    let port = url.port().unwrap_or(26379);
    SentinelAddr {
        host: host.to_owned(),
        port,
        tls,
    }
}

text_leaf!(
    /// `session.redis_master_name`: the name the Sentinels monitor the primary under.
    MasterName,
    |n| !n.is_empty() && !n.contains(|c: char| c.is_whitespace() || c.is_control()),
    "is not a Sentinel master name: expected a non-empty name without spaces, like \"gateway\""
);

text_leaf!(
    /// An `upstream.logout_paths` entry: a path as the gateway normalises request paths, so
    /// that comparing it exactly with the normalised request path is meaningful.
    LogoutPath,
    |p| {
        use crate::gateway::routing::normalize_path;
        Err(if !p.starts_with('/') {
            "does not start with \"/\": expected an absolute path such as \"/logout.php\""
        } else if p.contains(['?', '#']) {
            "has \"?\" or \"#\": logout paths match the path only, never the query"
        } else if p.chars().any(|c| c.is_whitespace() || c.is_control()) || p.contains('%') {
            "contains a space, control character or \"%\": expected the path as it reads \
             decoded, such as \"/logout/\""
        } else if !normalize_path(p).is_ok_and(|n| n.decoded == p) {
            "is not a normalised path (\".\", \"..\" or empty segments): expected it as \
             requests are compared, such as \"/app/logout\""
        } else if p == "/_gateway" || p.starts_with(crate::gateway::GATEWAY_PREFIX) {
            "is under /_gateway/, which the gateway answers itself: sign-out there is \
             /_gateway/logout"
        } else {
            return Ok(p.to_owned());
        })
    }
);

/// A duration within `$min..=$max` (out of range: "expected `$expected`"), `$default` when
/// the key is absent.
macro_rules! bounded_duration {
    ($(#[$doc:meta])* $name:ident, $default:expr, $min:expr, $max:expr, $expected:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub(crate) struct $name(pub Duration);

        impl Default for $name {
            fn default() -> Self {
                $name($default)
            }
        }

        impl FromText for $name {
            fn from_text(text: &str) -> Result<Self, String> {
                let d = Duration::from_text(text)?;
                ($min..=$max).contains(&d).then_some($name(d)).ok_or_else(|| {
                    concat!("is out of range: expected ", $expected).to_owned()
                })
            }
        }
    };
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

bounded_duration!(
    /// `server.grace_period`: how long SIGTERM (and the old process of a reload) lets requests
    /// finish; pingora's own default is 300 s.
    GracePeriod, secs(10), secs(0), secs(300), "from 0s to 300s"
);

bounded_duration!(
    /// `server.header_timeout`: a request's whole header must arrive within this, from its
    /// first byte (slow-header attacks); each read alone is bounded by pingora's own timeouts.
    HeaderTimeout, secs(10), secs(1), secs(120),
    "from 1s to 120s (how long a client may take to send a request's header; default 10s)"
);

bounded_duration!(
    /// `clever.timeout`: of each request to Clever.
    CleverTimeout, secs(5), Duration::from_nanos(1), secs(60), "more than 0s and at most 60s"
);

bounded_duration!(
    /// `clever.district_tokens_refresh`: how often discovered district-app tokens are listed
    /// again.
    TokensRefresh, secs(3600), secs(1), secs(24 * 3600),
    "at least 1s and at most 24h (default \"1h\")"
);

bounded_duration!(
    /// `session.login_timeout`: like oauth2-proxy's CSRF cookie, long enough to type a
    /// password, short enough that abandoned sign-ins do not pile up.
    LoginTimeout, secs(600), secs(60), secs(3600),
    "1m to 1h (how long a user may take to sign in at Clever; default 10m)"
);

bounded_duration!(
    /// `upstream.timeout`: like nginx's proxy_read_timeout, how long the app may be silent
    /// while answering.
    UpstreamTimeout, secs(60), secs(1), secs(3600),
    "1s to 1h (how long the app may stay silent while answering; default 60s)"
);

bounded_duration!(
    /// `assertion.overlap`: how long previous keys stay published after start; an assertion
    /// lives 5 minutes, and a shorter overlap would orphan tokens still in use.
    Overlap, secs(3600), crate::auth::assertion::TOKEN_TTL, Duration::MAX,
    "at least \"5m\", an assertion's life, or tokens signed with a previous key would stop \
     verifying while still in use (default \"1h\")"
);

/// `session.ttl`: more than 0s and at most 24h, since Clever access tokens live 24h and a
/// session must not outlive its token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ttl(pub Duration);

impl Default for Ttl {
    fn default() -> Self {
        Ttl(secs(2 * 3600))
    }
}

impl FromText for Ttl {
    fn from_text(text: &str) -> Result<Self, String> {
        Err(match Duration::from_text(text)? {
            d if d.is_zero() => "is zero: expected a session lifetime more than 0s and at most 24h",
            d if d > secs(24 * 3600) => {
                "is longer than 24h: the cap is 24h because Clever access \
                tokens live 24h and a session must not outlive its token"
            }
            d => return Ok(Ttl(d)),
        }
        .to_owned())
    }
}

/// `session.idle_timeout`: at least 1s, since a shorter one would end sessions between a page
/// and its images (and at most `ttl`, checked with `[session]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdleTimeout(pub Duration);

impl FromText for IdleTimeout {
    fn from_text(text: &str) -> Result<Self, String> {
        match Duration::from_text(text)? {
            d if d < secs(1) => Err("is shorter than 1s: expected how long an unused session \
                lives, at least 1s and at most session.ttl (for example \"20m\")"
                .to_owned()),
            d => Ok(IdleTimeout(d)),
        }
    }
}

/// `server.threads`: worker threads, 1 to 1024.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Threads(pub usize);

impl<'de> Deserialize<'de> for Threads {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        match usize::try_from(n) {
            Ok(n) if (1..=1024).contains(&n) => Ok(Threads(n)),
            _ => Err(de::Error::custom(format!(
                "is {n}: expected a number of worker threads from 1 to 1024"
            ))),
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
            n => Err(de::Error::custom(format!(
                "is {n}: expected a database number, 0 or more (default 0)"
            ))),
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
