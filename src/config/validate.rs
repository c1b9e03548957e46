//! Turns the file mirror into the typed model: defaults, ranges, URLs, names, cross-checks, and
//! upstream address resolution, collecting every problem (never just the first) with its place.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use url::{Host, Url};

use super::file::{
    quote, CleverFile, HeadersFile, Parsed, ServerFile, SessionFile, Sink, Sp, UpstreamFile,
};
use super::model::*;
use crate::identity::UserType;

/// Every name `UserType::parse` accepts, for messages.
const USER_TYPES: &str = "student, teacher, staff, school_admin, district_admin, contact";
const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8080);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_TTL: Duration = Duration::from_secs(2 * 3600);
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
const DURATION_HINT: &str = "expected a duration like \"90s\" or \"2h\"";
/// Headers the gateway itself sets or that carry the request's framing: never identity headers.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "cookie",
    "set-cookie",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// Builds the model; `None` if anything was reported (the problems are in `sink`).
pub(crate) fn validate(parsed: Parsed, sink: &mut Sink<'_>) -> Option<Config> {
    let mut ctx = Ctx {
        sink,
        invalid: &parsed.invalid,
    };
    let file = &parsed.file;
    let (upstreams, names) = upstreams(&mut ctx, file.upstream.as_ref());
    let server = server(&mut ctx, file.server.as_ref(), &names);
    let clever = clever(&mut ctx, file.clever.as_ref());
    let session = session(&mut ctx, file.session.as_ref());
    if !ctx.sink.problems.is_empty() {
        return None;
    }
    Some(Config {
        server: server?,
        clever: clever?,
        session: session?,
        upstreams: upstreams?,
    })
}

struct Ctx<'s, 'a> {
    sink: &'s mut Sink<'a>,
    invalid: &'s HashSet<String>,
}

impl Ctx<'_, '_> {
    fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.sink.at(span, message);
    }

    /// Reports a missing key, unless it was there with a wrong type (already reported).
    fn missing(&mut self, path: &str, span: Range<usize>, message: impl Into<String>) {
        if !self.invalid.contains(path) {
            self.err(span, message);
        }
    }

    /// Whether the key was written at all (even with a wrong type).
    fn written<T>(&self, path: &str, value: &Option<T>) -> bool {
        value.is_some() || self.invalid.contains(path)
    }
}

/// A table's span, or the document start when the table is absent.
fn table_span<T>(t: Option<&Sp<T>>) -> Range<usize> {
    t.map(|t| t.span()).unwrap_or(0..0)
}

// ---------------------------------------------------------------------------------------------
// [server]

fn server(
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
        threads,
        admin_listen: admin_listen?,
        landing: landing?,
        trusted_proxies: trusted_proxies?,
    })
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

/// An optional file path: `Some(None)` when absent, `None` when invalid.
fn path(ctx: &mut Ctx<'_, '_>, v: Option<&Sp<String>>, shown: &str) -> Option<Option<PathBuf>> {
    match v {
        None => Some(None),
        Some(p) if p.get_ref().trim().is_empty() => {
            ctx.err(p.span(), format!("{shown} is empty: expected a file path"));
            None
        }
        Some(p) => Some(Some(PathBuf::from(p.get_ref()))),
    }
}

// ---------------------------------------------------------------------------------------------
// [clever]

fn clever(ctx: &mut Ctx<'_, '_>, table: Option<&Sp<CleverFile>>) -> Option<CleverConfig> {
    let Some(table) = table else {
        ctx.missing(
            "clever",
            0..0,
            "missing [clever] table: it needs client_id, redirect_uri, and client_secret_env or \
             client_secret_file",
        );
        return None;
    };
    let c = table.get_ref();
    let tspan = table.span();

    let client_id = match &c.client_id {
        Some(id) if id.get_ref().trim().is_empty() => {
            ctx.err(
                id.span(),
                "clever.client_id is empty: expected the client id of the app registered at Clever",
            );
            None
        }
        Some(id) => Some(id.get_ref().clone()),
        None => {
            ctx.missing(
                "clever.client_id",
                tspan.clone(),
                "[clever] has no client_id: expected the client id of the app registered at Clever",
            );
            None
        }
    };

    let client_secret = match (&c.client_secret_env, &c.client_secret_file) {
        (Some(_), Some(file)) => {
            ctx.err(
                file.span(),
                "clever.client_secret_env and clever.client_secret_file are both set: use \
                 exactly one of them",
            );
            None
        }
        (Some(env), None) => {
            let name = env.get_ref();
            if name.is_empty()
                || name.contains(['=', '\0'])
                || name.chars().any(char::is_whitespace)
            {
                ctx.err(
                    env.span(),
                    format!(
                        "clever.client_secret_env {} is not an environment variable name: \
                         expected a name like \"CLEVER_CLIENT_SECRET\"",
                        quote(name)
                    ),
                );
                None
            } else {
                Some(SecretSource::Env(name.clone()))
            }
        }
        (None, Some(file)) => path(ctx, Some(file), "clever.client_secret_file")
            .flatten()
            .map(SecretSource::File),
        (None, None) => {
            let written = ["client_secret_env", "client_secret_file", "client_secret"]
                .iter()
                .any(|k| ctx.invalid.contains(&format!("clever.{k}")));
            if !written {
                ctx.err(
                    tspan.clone(),
                    "[clever] has no client secret: set client_secret_env (an environment \
                     variable) or client_secret_file (a file path)",
                );
            }
            None
        }
    };

    let redirect_uri = match &c.redirect_uri {
        Some(u) => redirect_uri(ctx, u),
        None => {
            ctx.missing(
                "clever.redirect_uri",
                tspan.clone(),
                "[clever] has no redirect_uri: expected the absolute URL registered at Clever, \
                 whose path the gateway serves as its callback",
            );
            None
        }
    };

    let (api_version, api_kind) = match &c.api_version {
        None => (Some("v3.0".to_owned()), Some(ApiVersion::V3)),
        Some(v) => match api_kind(v.get_ref()) {
            Some(kind) => (Some(v.get_ref().clone()), Some(kind)),
            None => {
                ctx.err(
                    v.span(),
                    format!(
                        "clever.api_version {} is not a Clever API version: expected v2.x or \
                         v3.x (v2.0, v2.1, v3.0, v3.1)",
                        quote(v.get_ref())
                    ),
                );
                (None, None)
            }
        },
    };

    let authorize_url = url_or_default(
        ctx,
        &c.authorize_url,
        "clever.authorize_url",
        "https://clever.com/oauth/authorize",
    );
    let token_url = url_or_default(
        ctx,
        &c.token_url,
        "clever.token_url",
        "https://clever.com/oauth/tokens",
    );
    let api_base = url_or_default(
        ctx,
        &c.api_base,
        "clever.api_base",
        "https://api.clever.com",
    );

    let timeout = match &c.timeout {
        None => Some(DEFAULT_TIMEOUT),
        Some(t) => duration(ctx, t, "clever.timeout").and_then(|d| {
            if d.is_zero() || d > MAX_TIMEOUT {
                ctx.err(
                    t.span(),
                    format!(
                        "clever.timeout {} is out of range: expected more than 0s and at most 60s",
                        quote(t.get_ref())
                    ),
                );
                None
            } else {
                Some(d)
            }
        }),
    };

    Some(CleverConfig {
        client_id: client_id?,
        client_secret: client_secret?,
        redirect_uri: redirect_uri?,
        api_version: api_version?,
        api_kind: api_kind?,
        authorize_url: authorize_url?,
        token_url: token_url?,
        api_base: api_base?,
        timeout: timeout?,
    })
}

/// The callback URL, which must stay byte for byte what was written: Clever compares the
/// `redirect_uri` sent at authorize and at token exchange with the registered URI exactly, and
/// the gateway sends `Url::as_str`, so a URL that parsing would normalise is refused.
fn redirect_uri(ctx: &mut Ctx<'_, '_>, v: &Sp<String>) -> Option<Url> {
    let url = http_url(
        ctx,
        v,
        "clever.redirect_uri",
        "https://apps.example-district.org/oauth/clever/callback",
    )?;
    let text = v.get_ref();
    if url.query().is_some() {
        ctx.err(
            v.span(),
            format!(
                "clever.redirect_uri {} has a query (?…): expected scheme, host, port and path \
                 only (Clever adds its own code and state parameters to this URL)",
                quote(text)
            ),
        );
        return None;
    }
    if url.as_str() != text {
        let sent = quote(url.as_str());
        ctx.err(
            v.span(),
            format!(
                "clever.redirect_uri {} would be sent as {sent}: redirect_uri must be written \
                 exactly as it will be sent to Clever: {sent} (register that exact URI at Clever)",
                quote(text)
            ),
        );
        return None;
    }
    Some(url)
}

/// `v2.<n>` or `v3.<n>`.
fn api_kind(v: &str) -> Option<ApiVersion> {
    let (kind, minor) = if let Some(rest) = v.strip_prefix("v2.") {
        (ApiVersion::V2, rest)
    } else if let Some(rest) = v.strip_prefix("v3.") {
        (ApiVersion::V3, rest)
    } else {
        return None;
    };
    (!minor.is_empty() && minor.len() <= 3 && minor.bytes().all(|b| b.is_ascii_digit()))
        .then_some(kind)
}

fn url_or_default(
    ctx: &mut Ctx<'_, '_>,
    v: &Option<Sp<String>>,
    shown: &str,
    default: &str,
) -> Option<Url> {
    match v {
        Some(u) => http_url(ctx, u, shown, default),
        None => Url::parse(default).ok(),
    }
}

/// An absolute http(s) URL with a host and no fragment.
fn http_url(ctx: &mut Ctx<'_, '_>, v: &Sp<String>, shown: &str, example: &str) -> Option<Url> {
    let text = v.get_ref();
    let allowed = format!("expected an absolute http:// or https:// URL such as {example:?}");
    let url = match Url::parse(text) {
        Ok(u) => u,
        Err(e) => {
            ctx.err(
                v.span(),
                format!(
                    "{shown} {} is not a valid URL ({e}): {allowed}",
                    quote(text)
                ),
            );
            return None;
        }
    };
    if !matches!(url.scheme(), "http" | "https") {
        ctx.err(
            v.span(),
            format!(
                "{shown} {} has scheme {:?}: {allowed}",
                quote(text),
                url.scheme()
            ),
        );
        return None;
    }
    if url.host_str().is_none_or(str::is_empty) {
        ctx.err(
            v.span(),
            format!("{shown} {} has no host: {allowed}", quote(text)),
        );
        return None;
    }
    if url.fragment().is_some() {
        ctx.err(
            v.span(),
            format!("{shown} {} has a fragment (#…): remove it", quote(text)),
        );
        return None;
    }
    Some(url)
}

fn duration(ctx: &mut Ctx<'_, '_>, v: &Sp<String>, shown: &str) -> Option<Duration> {
    match humantime::parse_duration(v.get_ref().trim()) {
        Ok(d) => Some(d),
        Err(_) => {
            ctx.err(
                v.span(),
                format!(
                    "{shown} {} is not a duration: {DURATION_HINT}",
                    quote(v.get_ref())
                ),
            );
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// [session]

fn session(ctx: &mut Ctx<'_, '_>, table: Option<&Sp<SessionFile>>) -> Option<SessionConfig> {
    let default = SessionFile::default();
    let s = table.map(|t| t.get_ref()).unwrap_or(&default);

    let cookie_secure = s
        .cookie_secure
        .as_ref()
        .map(|b| *b.get_ref())
        .unwrap_or(true);

    let cookie_name = match &s.cookie_name {
        None => Some("clever_gateway".to_owned()),
        Some(n) => {
            let name = n.get_ref();
            if name.is_empty() || !name.bytes().all(is_cookie_token) {
                ctx.err(
                    n.span(),
                    format!(
                        "session.cookie_name {} is not a cookie name: expected letters, digits \
                         and !#$%&'*+-.^_`|~ only (an RFC 6265 token)",
                        quote(name)
                    ),
                );
                None
            } else if name.starts_with("__Host-") && (!cookie_secure || s.cookie_domain.is_some()) {
                ctx.err(
                    n.span(),
                    "session.cookie_name starts with __Host-, which browsers accept only with \
                     cookie_secure = true and no cookie_domain: change the name or those settings",
                );
                None
            } else if name.starts_with("__Secure-") && !cookie_secure {
                ctx.err(
                    n.span(),
                    "session.cookie_name starts with __Secure-, which browsers accept only with \
                     cookie_secure = true: change the name or set cookie_secure = true",
                );
                None
            } else {
                Some(name.clone())
            }
        }
    };

    let cookie_domain = match &s.cookie_domain {
        None => Some(None),
        Some(d) => {
            let text = d.get_ref();
            if is_cookie_domain(text) {
                Some(Some(text.to_ascii_lowercase()))
            } else {
                ctx.err(
                    d.span(),
                    format!(
                        "session.cookie_domain {} is not a host name: expected a name like \
                         \"example-district.org\" or \".example-district.org\" (no scheme, port \
                         or path)",
                        quote(text)
                    ),
                );
                None
            }
        }
    };

    let ttl = match &s.ttl {
        None => Some(DEFAULT_TTL),
        Some(t) => duration(ctx, t, "session.ttl").and_then(|d| {
            if d.is_zero() {
                ctx.err(
                    t.span(),
                    "session.ttl is zero: expected a session lifetime more than 0s and at most 24h",
                );
                None
            } else if d > MAX_TTL {
                ctx.err(
                    t.span(),
                    format!(
                        "session.ttl {} is longer than 24h: the cap is 24h because Clever access \
                         tokens live 24h and a session must not outlive its token",
                        quote(t.get_ref())
                    ),
                );
                None
            } else {
                Some(d)
            }
        }),
    };

    let store = match &s.store {
        None => Some(StoreKind::Memory),
        Some(v) => match v.get_ref().as_str() {
            "memory" => Some(StoreKind::Memory),
            "redis" => Some(StoreKind::Redis),
            other => {
                ctx.err(
                    v.span(),
                    format!(
                        "session.store {} is not a store: expected \"memory\" or \"redis\"",
                        quote(other)
                    ),
                );
                None
            }
        },
    };

    // The URL may hold a password: never quoted in messages.
    let redis_url = match (store, &s.redis_url) {
        (Some(StoreKind::Redis), None) => {
            let span = s.store.as_ref().map(|v| v.span()).unwrap_or(0..0);
            ctx.missing(
                "session.redis_url",
                span,
                "session.store is \"redis\" but redis_url is missing: expected a URL starting \
                 with redis:// or rediss://",
            );
            None
        }
        (Some(StoreKind::Memory), Some(u)) => {
            ctx.err(
                u.span(),
                "session.redis_url is set but session.store is not \"redis\": set store = \
                 \"redis\" or remove redis_url",
            );
            None
        }
        (_, Some(u)) => {
            let text = u.get_ref();
            let scheme_ok = text.starts_with("redis://") || text.starts_with("rediss://");
            if scheme_ok && Url::parse(text).is_ok_and(|p| p.host_str().is_some()) {
                Some(Some(text.clone()))
            } else {
                ctx.err(
                    u.span(),
                    "session.redis_url is not a Redis URL: expected redis://host:port/db or \
                     rediss://host:port/db",
                );
                None
            }
        }
        (_, None) => Some(None),
    };

    let logout_redirect = match &s.logout_redirect {
        None => Some("/".to_owned()),
        Some(v) => {
            let text = v.get_ref();
            let is_path = text.starts_with('/')
                && !text.starts_with("//")
                && !text.contains('\\')
                && !text.chars().any(char::is_control);
            let is_url = !text.starts_with('/')
                && Url::parse(text).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https") && u.host_str().is_some()
                });
            if is_path || is_url {
                Some(text.clone())
            } else {
                ctx.err(
                    v.span(),
                    format!(
                        "session.logout_redirect {} is not a path or URL: expected a path \
                         starting with a single \"/\" or an absolute http(s) URL",
                        quote(text)
                    ),
                );
                None
            }
        }
    };

    Some(SessionConfig {
        cookie_name: cookie_name?,
        cookie_domain: cookie_domain?,
        cookie_secure,
        ttl: ttl?,
        store: store?,
        redis_url: redis_url?,
        logout_redirect: logout_redirect?,
    })
}

/// RFC 6265 `token`: a visible ASCII character that is not a separator.
fn is_cookie_token(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && !b"()<>@,;:\\\"/[]?={}".contains(&b)
}

/// A host name, optionally with one leading dot.
fn is_cookie_domain(s: &str) -> bool {
    let name = s.strip_prefix('.').unwrap_or(s);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

// ---------------------------------------------------------------------------------------------
// [[upstream]]

/// Returns the upstreams (when all are valid) and each upstream's name as written (by index).
fn upstreams(
    ctx: &mut Ctx<'_, '_>,
    list: Option<&Sp<Vec<Sp<UpstreamFile>>>>,
) -> (Option<Vec<Upstream>>, Vec<Option<String>>) {
    const NONE: &str =
        "no [[upstream]] table: define at least one [[upstream]] with a name and a url";
    let Some(list) = list else {
        ctx.missing("upstream", 0..0, NONE);
        return (None, Vec::new());
    };
    if list.get_ref().is_empty() {
        ctx.err(list.span(), NONE);
        return (None, Vec::new());
    }

    let mut out = Vec::new();
    let mut ok = true;
    let mut names: Vec<Option<String>> = Vec::new();
    // (host, path_prefix, name) of each upstream whose route could be read.
    let mut routes: Vec<(Option<String>, String, Option<String>)> = Vec::new();
    for (i, up) in list.get_ref().iter().enumerate() {
        let (upstream, name, route) = upstream(ctx, i, up);
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
        Some(n) => {
            let text = n.get_ref();
            if !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            {
                Some(text.clone())
            } else {
                ctx.err(
                    n.span(),
                    format!(
                        "upstream.name {} is not a valid name: expected letters, digits, \"_\", \
                         \".\" or \"-\" (at least one)",
                        quote(text)
                    ),
                );
                None
            }
        }
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

    let host = match &u.host {
        None => Some(None),
        Some(h) => match route_host(h.get_ref()) {
            Ok(host) => Some(Some(host)),
            Err(why) => {
                ctx.err(
                    h.span(),
                    format!("upstream.host {} {why}", quote(h.get_ref())),
                );
                None
            }
        },
    };

    let path_prefix = match &u.path_prefix {
        None => Some("/".to_owned()),
        Some(p) => match path_prefix(p.get_ref()) {
            Ok(prefix) => Some(prefix),
            Err(why) => {
                ctx.err(
                    p.span(),
                    format!("upstream.path_prefix {} {why}", quote(p.get_ref())),
                );
                None
            }
        },
    };

    let allow_user_types = match &u.allow_user_types {
        None => Some(None),
        Some(list) if list.get_ref().is_empty() => {
            ctx.err(
                list.span(),
                "upstream.allow_user_types is empty, which would lock everyone out: list at \
                 least one type, or remove the key to allow every type",
            );
            None
        }
        Some(list) => {
            let mut types: Vec<UserType> = Vec::new();
            let mut ok = true;
            for item in list.get_ref() {
                match UserType::parse(item.get_ref()) {
                    Some(t) if types.contains(&t) => {}
                    Some(t) => types.push(t),
                    None => {
                        ok = false;
                        ctx.err(
                            item.span(),
                            format!(
                                "upstream.allow_user_types entry {} is not a Clever user type: \
                                 expected one of {USER_TYPES}",
                                quote(item.get_ref())
                            ),
                        );
                    }
                }
            }
            ok.then_some(Some(types))
        }
    };

    let allow_districts = match &u.allow_districts {
        None => Some(None),
        Some(list) if list.get_ref().is_empty() => {
            ctx.err(
                list.span(),
                "upstream.allow_districts is empty, which would lock everyone out: list at least \
                 one district id, or remove the key to allow every district",
            );
            None
        }
        Some(list) => {
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
    };

    let login_district_id = match &u.login_district_id {
        None => Some(None),
        Some(d) if d.get_ref().trim().is_empty() => {
            ctx.err(
                d.span(),
                "upstream.login_district_id is empty: expected a Clever district id, or remove \
                 the key",
            );
            None
        }
        Some(d) => Some(Some(d.get_ref().clone())),
    };

    let public_paths = match &u.public_paths {
        None => Some(Vec::new()),
        Some(list) => {
            let mut out = Vec::new();
            let mut ok = true;
            for item in list.get_ref() {
                match public_path(item.get_ref()) {
                    Ok(p) => out.push(p),
                    Err(why) => {
                        ok = false;
                        ctx.err(
                            item.span(),
                            format!(
                                "upstream.public_paths entry {} {why}",
                                quote(item.get_ref())
                            ),
                        );
                    }
                }
            }
            ok.then_some(out)
        }
    };

    let headers = headers(ctx, u.headers.as_ref());

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
        Some(Upstream {
            name: name.clone()?,
            url: url?,
            host: host?,
            path_prefix: path_prefix?,
            allow_user_types: allow_user_types?,
            allow_districts: allow_districts?,
            login_district_id: login_district_id?,
            public_paths: public_paths?,
            strip_path_prefix: u.strip_path_prefix.as_ref().is_some_and(|b| *b.get_ref()),
            forward_access_token: u
                .forward_access_token
                .as_ref()
                .is_some_and(|b| *b.get_ref()),
            headers: headers?,
        })
    })();
    (built, name, route)
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

/// `host` to match: lower-cased, no port, no path.
fn route_host(h: &str) -> Result<String, &'static str> {
    if h.is_empty() {
        return Err("is empty: expected a host name such as \"gradebook.example-district.org\", or remove the key to match any host");
    }
    if h.contains('/') {
        return Err("contains \"/\": expected a bare host name (no scheme or path)");
    }
    if let Some(inner) = h.strip_prefix('[') {
        // An IPv6 literal, as it appears in a Host header.
        return match inner.strip_suffix(']') {
            Some(ip) if ip.parse::<std::net::Ipv6Addr>().is_ok() => Ok(h.to_ascii_lowercase()),
            _ => Err(
                "is not a host: expected a host name or a bracketed IPv6 address, without a port",
            ),
        };
    }
    if h.contains(':') {
        return Err("has a port: expected the host name alone (the port is ignored when matching)");
    }
    if !h
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        return Err("is not a host name: expected letters, digits, \"-\", \".\" (internationalized names in their xn-- form)");
    }
    Ok(h.to_ascii_lowercase())
}

/// `path_prefix`, normalised: no trailing `/` except for `/` itself.
fn path_prefix(p: &str) -> Result<String, &'static str> {
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
        return Err("is under /_gateway/, which the gateway reserves for its own endpoints: choose another prefix");
    }
    Ok(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

fn public_path(p: &str) -> Result<PublicPath, &'static str> {
    if !p.starts_with('/') {
        return Err("does not start with \"/\": expected an absolute path such as \"/static/\" or \"/favicon.ico\"");
    }
    if p.contains(['?', '#']) {
        return Err("has \"?\" or \"#\": public paths match the path only, never the query");
    }
    if p.contains("..") {
        return Err("contains \"..\": expected a normalized path");
    }
    if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains a space or control character: expected a plain path");
    }
    Ok(if p.ends_with('/') {
        PublicPath::Prefix(p.to_owned())
    } else {
        PublicPath::Exact(p.to_owned())
    })
}

/// One identity header as it will be sent: its `[upstream.headers]` key, its name, and where it
/// was written (absent for a default).
struct ChosenHeader<'f> {
    field: &'static str,
    header: HeaderName,
    written: Option<&'f Sp<String>>,
}

fn headers(ctx: &mut Ctx<'_, '_>, table: Option<&Sp<HeadersFile>>) -> Option<HeaderNames> {
    let defaults = HeaderNames::default();
    let Some(table) = table else {
        return Some(defaults);
    };
    let h = table.get_ref();
    let mut ok = true;
    let fields = [
        ("user_id", &h.user_id, Some(&defaults.user_id)),
        ("user_type", &h.user_type, Some(&defaults.user_type)),
        ("district_id", &h.district_id, Some(&defaults.district_id)),
        ("email", &h.email, None),
        ("name", &h.name, None),
        (
            "access_token",
            &h.access_token,
            Some(&defaults.access_token),
        ),
    ];
    let mut chosen: Vec<ChosenHeader<'_>> = Vec::new();
    for (field, value, default) in fields {
        let header = match value {
            None => default.cloned(),
            Some(v) => match HeaderName::from_bytes(v.get_ref().as_bytes()) {
                Ok(n) if RESERVED_HEADERS.contains(&n.as_str()) => {
                    ok = false;
                    ctx.err(
                        v.span(),
                        format!(
                            "upstream.headers.{field} {} is a header the gateway or HTTP itself \
                             uses: choose another name, such as \"X-Clever-User-Id\"",
                            quote(v.get_ref())
                        ),
                    );
                    None
                }
                Ok(n) => Some(n),
                Err(_) => {
                    ok = false;
                    ctx.err(
                        v.span(),
                        format!(
                            "upstream.headers.{field} {} is not a valid header name: expected \
                             letters, digits and - such as \"X-Clever-User-Id\"",
                            quote(v.get_ref())
                        ),
                    );
                    None
                }
            },
        };
        if let Some(header) = header {
            chosen.push(ChosenHeader {
                field,
                header,
                written: value.as_ref(),
            });
        }
    }

    // `_` and `-` are the same header to CGI and PHP apps.
    let norm = |h: &HeaderName| h.as_str().replace('_', "-");
    for (j, later) in chosen.iter().enumerate() {
        for earlier in &chosen[..j] {
            if norm(&later.header) != norm(&earlier.header) {
                continue;
            }
            // Point at a name the user wrote (two defaults never clash).
            let (this, other) = if later.written.is_some() {
                (later, earlier)
            } else {
                (earlier, later)
            };
            if let Some(v) = this.written {
                ok = false;
                ctx.err(
                    v.span(),
                    format!(
                        "upstream.headers.{} {} is the same header as {} (\"_\" and \"-\" count \
                         as equal): give each identity header its own name",
                        this.field,
                        quote(v.get_ref()),
                        other.field
                    ),
                );
            }
        }
    }

    if !ok {
        return None;
    }
    let mut names = defaults.clone();
    for c in chosen {
        match c.field {
            "user_id" => names.user_id = c.header,
            "user_type" => names.user_type = c.header,
            "district_id" => names.district_id = c.header,
            "email" => names.email = Some(c.header),
            "name" => names.name = Some(c.header),
            _ => names.access_token = c.header,
        }
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::super::{parse_str, ConfigProblem};
    use super::*;

    const CLEVER: &str = "[clever]\nclient_id = \"id\"\nclient_secret_env = \"CLEVER_SECRET\"\n\
                          redirect_uri = \"https://gw.example.org/oauth/callback\"\n";
    const UPSTREAM: &str = "[[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9000\"\n";

    /// A valid file with `server`, `clever` and `session` keys and upstream keys added.
    fn doc(server: &str, clever: &str, session: &str, upstream: &str) -> String {
        format!(
            "[server]\n{server}\n{CLEVER}{clever}\n[session]\n{session}\n{UPSTREAM}{upstream}\n"
        )
    }

    fn ok(src: &str) -> Config {
        match parse_str(src, "t.toml") {
            Ok(c) => c,
            Err(e) => panic!("expected a valid config, got:\n{e}\n--- file:\n{src}"),
        }
    }

    fn problems(src: &str) -> Vec<ConfigProblem> {
        match parse_str(src, "t.toml") {
            Ok(_) => panic!("expected problems in:\n{src}"),
            Err(e) => e.problems,
        }
    }

    /// Exactly one problem, whose message contains every needle.
    fn one(src: &str, needles: &[&str]) -> ConfigProblem {
        let p = problems(src);
        assert_eq!(p.len(), 1, "expected one problem, got {p:#?}");
        for n in needles {
            assert!(p[0].message.contains(n), "{:?} lacks {n:?}", p[0].message);
        }
        p.into_iter().next().unwrap()
    }

    fn line_of(src: &str, needle: &str) -> usize {
        src.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    // --- [server] ---

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

    // --- [clever] ---

    #[test]
    fn clever_missing_table_is_error_at_start() {
        let p = one(UPSTREAM, &["missing [clever]"]);
        assert_eq!((p.line, p.col), (1, 1));
    }

    #[test]
    fn clever_defaults_are_applied() {
        let c = ok(&doc("", "", "", "")).clever;
        assert_eq!(c.client_id, "id");
        assert_eq!(c.client_secret, SecretSource::Env("CLEVER_SECRET".into()));
        assert_eq!(c.api_version, "v3.0");
        assert_eq!(c.api_kind, ApiVersion::V3);
        assert_eq!(
            c.authorize_url.as_str(),
            "https://clever.com/oauth/authorize"
        );
        assert_eq!(c.token_url.as_str(), "https://clever.com/oauth/tokens");
        assert_eq!(c.api_base.as_str(), "https://api.clever.com/");
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.redirect_uri.path(), "/oauth/callback");
    }

    #[test]
    fn clever_missing_required_keys_are_all_reported() {
        let src = format!("[clever]\n{UPSTREAM}");
        let p = problems(&src);
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(p.iter().all(|p| (p.line, p.col) == (1, 1)));
        assert!(p.iter().any(|p| p.message.contains("client_id")));
        assert!(p.iter().any(|p| p.message.contains("client secret")));
        assert!(p.iter().any(|p| p.message.contains("redirect_uri")));
    }

    #[test]
    fn clever_empty_client_id_is_error() {
        let src = CLEVER.replace("client_id = \"id\"", "client_id = \"\"") + UPSTREAM;
        one(&src, &["client_id is empty"]);
    }

    #[test]
    fn clever_inline_client_secret_is_rejected() {
        let src = doc("", "client_secret = \"hunter2\"", "", "");
        let p = one(
            &src,
            &["the client secret is never inline: use client_secret_env or client_secret_file"],
        );
        assert!(!p.message.contains("hunter2"));
        assert_eq!(p.line, line_of(&src, "client_secret ="));
    }

    #[test]
    fn clever_both_secret_sources_is_error() {
        one(
            &doc("", "client_secret_file = \"/s\"", "", ""),
            &["exactly one"],
        );
    }

    #[test]
    fn clever_no_secret_source_is_error() {
        let src = CLEVER.replace("client_secret_env = \"CLEVER_SECRET\"\n", "") + UPSTREAM;
        one(&src, &["client_secret_env", "client_secret_file"]);
    }

    #[test]
    fn clever_secret_file_is_source() {
        let src = CLEVER.replace(
            "client_secret_env = \"CLEVER_SECRET\"",
            "client_secret_file = \"/run/s\"",
        ) + UPSTREAM;
        assert_eq!(
            ok(&src).clever.client_secret,
            SecretSource::File("/run/s".into())
        );
    }

    #[test]
    fn clever_secret_env_bad_name_is_error() {
        let src = CLEVER.replace("\"CLEVER_SECRET\"", "\"A=B\"") + UPSTREAM;
        one(&src, &["environment variable name"]);
    }

    fn with_redirect(uri: &str) -> String {
        CLEVER.replace("https://gw.example.org/oauth/callback", uri) + UPSTREAM
    }

    #[test]
    fn clever_redirect_uri_relative_is_error() {
        one(
            &with_redirect("/oauth/callback"),
            &["clever.redirect_uri", "not a valid URL"],
        );
    }

    #[test]
    fn clever_redirect_uri_fragment_is_error() {
        one(&with_redirect("https://gw.example.org/cb#x"), &["fragment"]);
    }

    #[test]
    fn clever_redirect_uri_other_scheme_is_error() {
        one(
            &with_redirect("ftp://gw.example.org/cb"),
            &["scheme \"ftp\"", "http://"],
        );
    }

    #[test]
    fn clever_redirect_uri_http_is_accepted() {
        ok(&with_redirect("http://localhost:8080/cb"));
    }

    #[test]
    fn clever_redirect_uri_is_kept_exactly_as_written() {
        for exact in [
            "https://gw.example.org/oauth/callback/",
            "https://gw.example.org/",
            "http://127.0.0.1:8080/cb",
            "https://gw.example.org/a%20b",
        ] {
            assert_eq!(
                ok(&with_redirect(exact)).clever.redirect_uri.as_str(),
                exact
            );
        }
    }

    #[test]
    fn clever_redirect_uri_normalised_by_parsing_is_error_at_value() {
        for (written, sent) in [
            ("https://gw.example.org", "https://gw.example.org/"),
            ("https://GW.Example.org/cb", "https://gw.example.org/cb"),
            ("https://gw.example.org:443/cb", "https://gw.example.org/cb"),
            ("http://gw.example.org:80/cb", "http://gw.example.org/cb"),
            ("HTTPS://gw.example.org/cb", "https://gw.example.org/cb"),
            ("https://gw.example.org/a b", "https://gw.example.org/a%20b"),
            (
                "https://gw.example.org/a/../cb",
                "https://gw.example.org/cb",
            ),
            // TOML `\\` is one backslash, which parsing turns into "/".
            ("https://gw.example.org\\\\cb", "https://gw.example.org/cb"),
        ] {
            let src = with_redirect(written);
            let p = one(
                &src,
                &[
                    "clever.redirect_uri",
                    &format!("redirect_uri must be written exactly as it will be sent to Clever: {sent:?} (register that exact URI at Clever)"),
                ],
            );
            assert_eq!(
                (p.line, p.col),
                (line_of(&src, "redirect_uri ="), 16),
                "{written}"
            );
        }
    }

    #[test]
    fn clever_redirect_uri_query_is_error_at_value() {
        for written in [
            "https://gw.example.org/cb?app=1",
            "https://gw.example.org/cb?",
        ] {
            let src = with_redirect(written);
            let p = one(&src, &["clever.redirect_uri", "has a query"]);
            assert_eq!(
                (p.line, p.col),
                (line_of(&src, "redirect_uri ="), 16),
                "{written}"
            );
        }
    }

    #[test]
    fn clever_redirect_uri_empty_fragment_is_error() {
        one(&with_redirect("https://gw.example.org/cb#"), &["fragment"]);
    }

    #[test]
    fn clever_api_version_v2_maps_to_v2() {
        let c = ok(&doc("", "api_version = \"v2.1\"", "", "")).clever;
        assert_eq!(
            (c.api_version.as_str(), c.api_kind),
            ("v2.1", ApiVersion::V2)
        );
        let c = ok(&doc("", "api_version = \"v3.1\"", "", "")).clever;
        assert_eq!(c.api_kind, ApiVersion::V3);
    }

    #[test]
    fn clever_api_version_unknown_is_error() {
        for bad in ["v4.0", "3.0", "v3", "v3.x", "V3.0", ""] {
            one(
                &doc("", &format!("api_version = {bad:?}"), "", ""),
                &["v2.x or v3.x (v2.0, v2.1, v3.0, v3.1)"],
            );
        }
    }

    #[test]
    fn clever_endpoint_urls_are_overridable() {
        let c = ok(&doc(
            "",
            "authorize_url = \"http://127.0.0.1:7000/oauth/authorize\"\ntoken_url = \"http://127.0.0.1:7000/oauth/tokens\"\napi_base = \"http://127.0.0.1:7000\"",
            "",
            "",
        ))
        .clever;
        assert_eq!(c.authorize_url.port(), Some(7000));
        assert_eq!(c.api_base.host_str(), Some("127.0.0.1"));
    }

    #[test]
    fn clever_endpoint_url_bad_is_error() {
        one(
            &doc("", "token_url = \"clever.com/oauth/tokens\"", "", ""),
            &["clever.token_url"],
        );
        one(
            &doc("", "api_base = \"mailto:x@y\"", "", ""),
            &["clever.api_base"],
        );
    }

    #[test]
    fn clever_timeout_is_parsed() {
        let c = ok(&doc("", "timeout = \"1500ms\"", "", "")).clever;
        assert_eq!(c.timeout, Duration::from_millis(1500));
        ok(&doc("", "timeout = \"60s\"", "", ""));
    }

    #[test]
    fn clever_timeout_out_of_range_is_error() {
        one(&doc("", "timeout = \"0s\"", "", ""), &["at most 60s"]);
        one(&doc("", "timeout = \"61s\"", "", ""), &["at most 60s"]);
    }

    #[test]
    fn clever_timeout_not_a_duration_is_error() {
        one(
            &doc("", "timeout = \"soon\"", "", ""),
            &["expected a duration like \"90s\" or \"2h\""],
        );
    }

    // --- [session] ---

    #[test]
    fn session_defaults_are_applied() {
        let s = ok(&doc("", "", "", "")).session;
        assert_eq!(s.cookie_name, "clever_gateway");
        assert_eq!(s.cookie_domain, None);
        assert!(s.cookie_secure);
        assert_eq!(s.ttl, Duration::from_secs(7200));
        assert_eq!(s.store, StoreKind::Memory);
        assert_eq!(s.redis_url, None);
        assert_eq!(s.logout_redirect, "/");
    }

    #[test]
    fn session_cookie_name_with_separator_is_error() {
        one(
            &doc("", "", "cookie_name = \"my cookie\"", ""),
            &["RFC 6265"],
        );
        one(&doc("", "", "cookie_name = \"a;b\"", ""), &["RFC 6265"]);
        one(&doc("", "", "cookie_name = \"\"", ""), &["RFC 6265"]);
    }

    #[test]
    fn session_cookie_name_token_is_kept() {
        let s = ok(&doc("", "", "cookie_name = \"__Host-gw.1\"", "")).session;
        assert_eq!(s.cookie_name, "__Host-gw.1");
    }

    #[test]
    fn session_host_prefix_cookie_without_secure_is_error() {
        one(
            &doc(
                "",
                "",
                "cookie_name = \"__Host-gw\"\ncookie_secure = false",
                "",
            ),
            &["__Host-"],
        );
    }

    #[test]
    fn session_cookie_domain_with_dot_is_lowercased() {
        let s = ok(&doc(
            "",
            "",
            "cookie_domain = \".Example-District.org\"",
            "",
        ))
        .session;
        assert_eq!(s.cookie_domain.as_deref(), Some(".example-district.org"));
    }

    #[test]
    fn session_cookie_domain_not_a_host_is_error() {
        for bad in [
            "example.org:443",
            "https://example.org",
            "",
            ".",
            "a..b",
            "ex ample.org",
        ] {
            one(
                &doc("", "", &format!("cookie_domain = {bad:?}"), ""),
                &["not a host name"],
            );
        }
    }

    #[test]
    fn session_cookie_secure_false_is_kept() {
        assert!(
            !ok(&doc("", "", "cookie_secure = false", ""))
                .session
                .cookie_secure
        );
    }

    #[test]
    fn session_ttl_at_cap_is_accepted() {
        let s = ok(&doc("", "", "ttl = \"24h\"", "")).session;
        assert_eq!(s.ttl, Duration::from_secs(86400));
    }

    #[test]
    fn session_ttl_over_cap_says_cap_and_why() {
        one(
            &doc("", "", "ttl = \"25h\"", ""),
            &[
                "longer than 24h",
                "cap is 24h",
                "Clever access tokens live 24h",
            ],
        );
    }

    #[test]
    fn session_ttl_zero_is_error() {
        one(&doc("", "", "ttl = \"0s\"", ""), &["zero"]);
    }

    #[test]
    fn session_ttl_bad_duration_says_example() {
        one(
            &doc("", "", "ttl = \"2 hours and a bit\"", ""),
            &["session.ttl", "expected a duration like \"90s\" or \"2h\""],
        );
    }

    #[test]
    fn session_redis_store_with_url_is_accepted() {
        let s = ok(&doc(
            "",
            "",
            "store = \"redis\"\nredis_url = \"rediss://r.internal:6380/0\"",
            "",
        ))
        .session;
        assert_eq!(s.store, StoreKind::Redis);
        assert_eq!(s.redis_url.as_deref(), Some("rediss://r.internal:6380/0"));
    }

    #[test]
    fn session_redis_store_without_url_is_error() {
        one(
            &doc("", "", "store = \"redis\"", ""),
            &["redis_url is missing"],
        );
    }

    #[test]
    fn session_redis_url_without_redis_store_is_error() {
        one(
            &doc("", "", "redis_url = \"redis://r:6379\"", ""),
            &["not \"redis\""],
        );
    }

    #[test]
    fn session_redis_url_bad_scheme_is_error_without_echoing_it() {
        let p = one(
            &doc(
                "",
                "",
                "store = \"redis\"\nredis_url = \"http://:pw@r:6379\"",
                "",
            ),
            &["redis://"],
        );
        assert!(!p.message.contains("pw"));
    }

    #[test]
    fn session_unknown_store_is_error() {
        one(
            &doc("", "", "store = \"postgres\"", ""),
            &["\"memory\" or \"redis\""],
        );
    }

    #[test]
    fn session_logout_redirect_path_or_url_is_accepted() {
        ok(&doc("", "", "logout_redirect = \"/bye\"", ""));
        let s = ok(&doc(
            "",
            "",
            "logout_redirect = \"https://www.example.org/\"",
            "",
        ))
        .session;
        assert_eq!(s.logout_redirect, "https://www.example.org/");
    }

    #[test]
    fn session_logout_redirect_protocol_relative_is_error() {
        for bad in [
            "//evil.example",
            "/\\\\evil.example",
            "bye",
            "javascript:alert(1)",
        ] {
            one(
                &doc("", "", &format!("logout_redirect = {bad:?}"), ""),
                &["single \"/\""],
            );
        }
    }

    // --- [[upstream]] ---

    #[test]
    fn upstream_none_is_error() {
        one(CLEVER, &["at least one [[upstream]]"]);
        one(
            &format!("upstream = []\n{CLEVER}"),
            &["at least one [[upstream]]"],
        );
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
        assert_eq!(u.headers.user_id.as_str(), "x-clever-user-id");
        assert_eq!(u.headers.email, None);
        assert_eq!(u.headers.name, None);
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

    #[test]
    fn upstream_headers_are_lowercased_and_optional_ones_set() {
        let c = ok(&doc(
            "",
            "",
            "",
            "[upstream.headers]\nuser_id = \"Remote-User\"\nemail = \"X-Email\"\naccess_token = \"X-Token\"",
        ));
        let h = &c.upstreams[0].headers;
        assert_eq!(h.user_id.as_str(), "remote-user");
        assert_eq!(h.user_type.as_str(), "x-clever-user-type");
        assert_eq!(h.email.as_ref().map(|h| h.as_str()), Some("x-email"));
        assert_eq!(h.name, None);
        assert_eq!(h.access_token.as_str(), "x-token");
    }

    #[test]
    fn upstream_headers_invalid_name_is_error() {
        one(
            &doc("", "", "", "[upstream.headers]\nname = \"X Name\""),
            &["upstream.headers.name", "not a valid header name"],
        );
    }

    #[test]
    fn upstream_headers_reserved_name_is_error() {
        one(
            &doc("", "", "", "[upstream.headers]\nuser_id = \"Cookie\""),
            &["choose another"],
        );
    }

    #[test]
    fn upstream_headers_same_name_modulo_underscore_is_error() {
        let src = doc(
            "",
            "",
            "",
            "[upstream.headers]\nuser_id = \"X-User\"\nemail = \"x_user\"",
        );
        let p = one(&src, &["upstream.headers.email", "same header as user_id"]);
        assert_eq!(p.line, line_of(&src, "email = "));
    }

    #[test]
    fn upstream_headers_clash_with_default_is_error() {
        one(
            &doc(
                "",
                "",
                "",
                "[upstream.headers]\nname = \"X-Clever-User-Type\"",
            ),
            &["same header as user_type"],
        );
    }

    #[test]
    fn upstream_headers_inline_table_is_accepted() {
        let c = ok(&doc("", "", "", "headers = { email = \"X-Mail\" }"));
        assert!(c.upstreams[0].headers.email.is_some());
    }

    #[test]
    fn route_host_bracketed_ipv6_is_accepted() {
        assert_eq!(route_host("[::1]"), Ok("[::1]".to_owned()));
        assert!(route_host("[::1]:80").is_err());
    }

    #[test]
    fn api_kind_parses_versions() {
        assert_eq!(api_kind("v2.0"), Some(ApiVersion::V2));
        assert_eq!(api_kind("v3.10"), Some(ApiVersion::V3));
        assert_eq!(api_kind("v3."), None);
        assert_eq!(api_kind("v1.0"), None);
    }
}
