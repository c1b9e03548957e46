//! The typed configuration the rest of the gateway uses: validated and resolved. The enums a
//! key names derive `Deserialize`, so their names are written once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderName;
use ipnet::IpNet;
use url::Url;

use crate::identity::{Field, FieldSet, UserType, ValueSpec};

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub clever: CleverConfig,
    pub session: SessionConfig,
    /// In file order; never empty.
    pub upstreams: Vec<Arc<Upstream>>,
    /// Signed identity assertions: `Some` when `[assertion]` is written or an upstream sets
    /// `assertion = true`.
    pub assertion: Option<AssertionConfig>,
    /// `[[district]]` credentials, in file order; ids are unique.
    pub districts: Vec<DistrictConfig>,
    /// Every distinct header value any upstream receives from a session (its identity headers
    /// and `set_headers`), rendered once per session; [`SendValue::Spec`] indexes it.
    pub header_specs: Vec<ValueSpec>,
    /// The fields a session keeps: the core of section 3 and every field a header names.
    pub kept_fields: FieldSet,
    /// What `/_gateway/auth` without `upstream=` answers with: the identity headers sent by
    /// default, under their default names.
    pub default_headers: Vec<SendHeader>,
}

/// One `[[district]]`: a district-app token credential, kept by the district's hosting team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistrictConfig {
    /// The Clever district id the token belongs to.
    pub id: String,
    /// A human name, for `check --online` and logs.
    pub name: String,
    pub description: Option<String>,
    /// Where the district-app token comes from. Never inline in the file.
    pub token: SecretSource,
}

/// `[assertion]`: how `X-Clever-Assertion` tokens are signed and their keys published.
#[derive(Debug, Clone)]
pub struct AssertionConfig {
    /// The `iss` claim: `[assertion] issuer`, else the origin of `clever.redirect_uri`.
    pub issuer: String,
    /// PEM EC P-256 private key; `None`: a key generated at start.
    pub key_file: Option<PathBuf>,
    /// Earlier signing keys, published in the JWKS (not used to sign) for `overlap`.
    pub previous_key_files: Vec<PathBuf>,
    /// How long after start the previous keys stay published.
    pub overlap: Duration,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Plain-HTTP listeners.
    pub listen: Vec<SocketAddr>,
    pub tls_listen: Vec<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Answer requests on the plain `listen` sockets with 308 to HTTPS (health endpoints
    /// excepted). Validation guarantees `tls_listen` is not empty when this is set.
    pub redirect_to_https: bool,
    /// Worker threads; `None` = number of cores.
    pub threads: Option<usize>,
    /// How long SIGTERM (and the old process of a reload) lets in-flight requests finish.
    pub grace_period: Duration,
    /// Log format from the file (`--log-format` overrides it).
    pub log_format: LogFormat,
    /// Absolute path of the pid file `reload` reads to find the running gateway.
    pub pid_file: PathBuf,
    /// Absolute path of the unix socket a new process (`run --upgrade`) receives the listening
    /// sockets on.
    pub upgrade_sock: PathBuf,
    /// Separate listener for metrics and health (`None` = served only under `/_gateway/`).
    pub admin_listen: Option<SocketAddr>,
    /// Index into `Config::upstreams` of the upstream Clever-initiated logins land on.
    pub landing: usize,
    /// Peers whose `X-Forwarded-*` headers are kept and appended to.
    pub trusted_proxies: Vec<IpNet>,
    /// How long a client may take to send a request's whole header, from its first byte.
    pub header_timeout: Duration,
    /// The secret a forward-auth proxy proves itself with (`X-Clever-Forward-Auth-Secret`),
    /// without which `/_gateway/auth` never answers with an access token.
    pub forward_auth_secret: Option<SecretSource>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

impl ServerConfig {
    /// Where the pid file and upgrade socket go when the file does not say: a directory of this
    /// user's under the temp directory (`$TMPDIR/clever-gateway-<uid>`), so `run` and `reload`
    /// find the same files and other users cannot plant them.
    pub fn default_run_dir() -> PathBuf {
        std::env::temp_dir().join(format!("clever-gateway-{}", nix::unistd::getuid()))
    }
}

/// Where the client secret comes from. Never inline in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `v2.x`: the role is `/me`'s `type`.
    V2,
    /// `v3.x`: roles come from `/users/{id}`.
    V3,
}

#[derive(Debug, Clone)]
pub struct CleverConfig {
    pub client_id: String,
    pub client_secret: SecretSource,
    /// Exact URI registered at Clever; its path is the callback path. Validation guarantees
    /// `as_str()` is the text written in the file, character for character, with no query.
    pub redirect_uri: Url,
    /// The version string as written, e.g. `v3.0`, used in API paths.
    pub api_version: String,
    pub api_kind: ApiVersion,
    pub authorize_url: Url,
    pub token_url: Url,
    pub api_base: Url,
    pub timeout: Duration,
    /// `discover_district_tokens`: list the application's district-app tokens at Clever at
    /// start and every `district_tokens_refresh`, and keep them in memory only.
    pub discover_district_tokens: bool,
    /// How often discovery lists the tokens again.
    pub district_tokens_refresh: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    Memory,
    Redis,
}

/// Where the Redis primary is: one address, or whichever node the Sentinels name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// `redis_url`, without a password (validation refuses one written in the URL).
    Url(String),
    /// `redis_sentinels` and `redis_master_name`.
    Sentinel(SentinelTarget),
}

/// The Sentinels that know the primary, and how to talk to them and to the data nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelTarget {
    /// Host (an IPv6 address without brackets) and port of each Sentinel, in the file's order.
    pub sentinels: Vec<(String, u16)>,
    /// The name the Sentinels monitor the primary under (`sentinel monitor <name> ...`).
    pub master_name: String,
    /// `redis_db`: the database on the data nodes.
    pub db: i64,
    /// The entries were written `rediss://`: TLS to the Sentinels and to the data nodes.
    pub tls: bool,
    /// `redis_sentinel_password_env` / `_file`: the Sentinels' own password, if they have one.
    pub password: Option<SecretSource>,
}

/// What `/_gateway/readyz` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// Ready while the session store answers (the default): a load balancer stops sending
    /// traffic to a replica that cannot sign anyone in.
    Store,
    /// Ready while the process runs, whatever the store says: signed-in users keep being served
    /// from each replica's cache while Redis is away; new sign-ins get the 503 page.
    Process,
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub cookie_name: String,
    pub cookie_domain: Option<String>,
    pub cookie_secure: bool,
    /// Session lifetime; at most 24h.
    pub ttl: Duration,
    /// How long a started sign-in may take (state cookie, pending login); 1m to 1h.
    pub login_timeout: Duration,
    pub store: StoreKind,
    /// Where the Redis primary is (`store = "redis"` only).
    pub redis: Option<RedisTarget>,
    /// Where the Redis password comes from (`redis_password_env` / `redis_password_file`): the
    /// data nodes' password, with `redis_url` and with Sentinel alike.
    pub redis_password: Option<SecretSource>,
    /// Whether `/_gateway/readyz` follows the session store (`readiness`).
    pub readiness: Readiness,
    /// Same-site path (or absolute URL chosen by the operator) to send users to after logout.
    pub logout_redirect: String,
    /// `idle_timeout`: a session unused this long ends, whatever `ttl` says (1s to `ttl`);
    /// `None` = sessions end only at `ttl` or sign-out.
    pub idle_timeout: Option<Duration>,
}

/// One `[[upstream]]` table.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub url: UpstreamUrl,
    /// Verify an `https://` upstream's certificate and host name (always true for `http://`).
    pub tls_verify: bool,
    /// PEM file of the CA certificates that an `https://` upstream's certificate must chain to,
    /// instead of the system's roots.
    pub tls_ca: Option<PathBuf>,
    /// How long the app may stay silent while answering (between reads) before the user gets
    /// the 504 page; 1s to 1h, default 60s.
    pub timeout: Duration,
    /// Lower-cased host to match, without port.
    pub host: Option<String>,
    /// Normalised: starts with `/`, no trailing `/` unless it is exactly `/`.
    pub path_prefix: String,
    /// `None` = every type.
    pub allow_user_types: Option<Vec<UserType>>,
    /// `None` = every district.
    pub allow_districts: Option<Vec<String>>,
    pub login_district_id: Option<String>,
    pub public_paths: Vec<PublicPath>,
    pub strip_path_prefix: bool,
    pub forward_access_token: bool,
    /// `Some(audience)` with `assertion = true`: send `X-Clever-Assertion` with this `aud`
    /// (`assertion_audience`, else the upstream's name).
    pub assertion: Option<String>,
    /// Logins started for this upstream ask Clever to re-confirm a student's identity
    /// (`confirmed=false` on the authorize URL), for shared devices.
    pub confirm_students: bool,
    /// `app_cookies`: the app's own session cookies, expired at every sign-in and sign-out
    /// (`session::cookies::AppCookies`), in file order, without repeats.
    pub app_cookies: Vec<String>,
    /// `logout_paths`: normalised paths (exact match) whose answer ends the gateway session.
    pub logout_paths: Vec<String>,
    /// The headers built from the session that this upstream receives, in the order sent: the
    /// identity headers of section 4 (the access token's only with `forward_access_token`),
    /// then `[upstream.set_headers]`.
    pub headers: Vec<SendHeader>,
    /// Every header name a client may not send to the gateway because of this upstream: each
    /// identity header name (the access token's too) and each `set_headers` name.
    pub scrubbed: Vec<HeaderName>,
}

/// A header the gateway adds from the session to what it forwards (and to forward-auth's
/// answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendHeader {
    /// Lower-case, for comparisons.
    pub name: HeaderName,
    /// As written on the wire: the defaults title-cased, configured names as written.
    pub wire: Bytes,
    pub value: SendValue,
    pub origin: HeaderOrigin,
    /// In `required_headers`: a user it cannot be built for gets a 403 page.
    pub required: bool,
}

/// Where a sent header's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendValue {
    /// The session's SSO token (`forward_access_token`).
    Token,
    /// The session's rendering of `Config::header_specs[i]`.
    Spec(usize),
}

/// Which part of the config asked for a sent header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderOrigin {
    /// An identity header of section 4 (`[upstream.headers]` or its default).
    Identity(Field),
    /// `[upstream.set_headers]`.
    Set,
}

/// A parsed and resolved upstream URL.
#[derive(Debug, Clone)]
pub struct UpstreamUrl {
    /// The URL as configured (for messages).
    pub original: Url,
    pub tls: bool,
    /// Host name for SNI and certificate checks.
    pub host: String,
    pub port: u16,
    /// Resolved once at config time (pingora resolves with a blocking call otherwise).
    pub addr: SocketAddr,
    /// Path of the URL (e.g. `/app`), prepended to forwarded paths; `""` when it is `/`.
    pub base_path: String,
}

/// An entry of `public_paths`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicPath {
    /// Entry ending in `/`: every path below it (and the entry itself).
    Prefix(String),
    /// Any other entry: that exact path.
    Exact(String),
}

impl Config {
    /// Whether some upstream sends school ids (so logins keep them).
    pub fn wants_school_ids(&self) -> bool {
        self.kept_fields.contains(Field::SchoolIds)
    }

    /// Whether some upstream sends section ids (so logins read them).
    pub fn wants_section_ids(&self) -> bool {
        self.kept_fields.contains(Field::SectionIds)
    }
}

impl PublicPath {
    /// Whether the normalised `path` is public under this entry.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PublicPath::Exact(p) => path == p,
            PublicPath::Prefix(p) => {
                path.starts_with(p.as_str()) || path == p.trim_end_matches('/')
            }
        }
    }
}
