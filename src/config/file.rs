//! The `gateway.toml` file as written: the serde structs below are the schema (the one place
//! that names each key and its type), [`parse`] reports every unknown key and wrong type at once,
//! and [`Locator`] maps byte spans to `line:col`.
//!
//! Serde stops at its first error, so [`parse`] deserializes toml's spanned tree, reports the
//! error at its span, prunes the key or value it names and deserializes again, until the rest
//! reads; validation then reports its own problems in the same run.

use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::LazyLock;

use http::HeaderName;
use ipnet::IpNet;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::leaf::*;
use super::model::{ApiVersion, LogFormat, PublicPath, Readiness, StoreKind};
use super::ConfigProblem;
use crate::identity::template::did_you_mean;
use crate::identity::UserType;

/// A value with the byte span it was read from.
pub(crate) type Sp<T> = Spanned<T>;

/// The whole file. Every field is optional here; validation says what is missing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub server: Option<Table<ServerFile>>,
    pub clever: Option<Table<CleverFile>>,
    pub session: Option<Table<SessionFile>>,
    pub upstream: Option<Tables<UpstreamFile>>,
    pub assertion: Option<Table<AssertionFile>>,
    pub district: Option<Tables<DistrictFile>>,
}

/// A table, with its span.
pub(crate) type Table<T> = Sp<MapOnly<T>>;
/// `[[upstream]]`, `[[district]]`: the tables with the array's span.
pub(crate) type Tables<T> = Sp<Vec<Table<T>>>;

/// A table only: a derived struct alone would also read an array (as its fields in order).
#[derive(Debug)]
pub(crate) struct MapOnly<T>(pub T);

impl<T> std::ops::Deref for MapOnly<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Shape<MapOnly<T>> {
    type Value = MapOnly<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MapOnly<T>, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(MapOnly)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Shape::<Self>(PhantomData))
    }
}

/// A value written in the file, with its span: a [`Sp`] or a [`Leaf`].
pub(crate) trait Written {
    fn at(&self) -> Range<usize>;
}

impl<T> Written for Sp<T> {
    fn at(&self) -> Range<usize> {
        self.span()
    }
}

impl<T> Written for Leaf<T> {
    fn at(&self) -> Range<usize> {
        self.span()
    }
}

/// The span of a key's value, if it is written.
pub(crate) fn span_of(v: &Option<impl Written>) -> Option<Range<usize>> {
    v.as_ref().map(Written::at)
}

/// One `[[district]]`: a district-app token credential.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DistrictFile {
    pub id: Option<Leaf<DistrictId>>,
    pub name: Option<Leaf<NonEmpty>>,
    pub description: Option<Sp<String>>,
    pub token_env: Option<Sp<String>>,
    pub token_file: Option<Leaf<PathBuf>>,
}

/// `[assertion]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssertionFile {
    pub issuer: Option<Leaf<HttpUrl>>,
    pub key_file: Option<Leaf<PathBuf>>,
    pub previous_key_files: Option<Sp<Vec<Leaf<PathBuf>>>>,
    pub overlap: Option<Leaf<Overlap>>,
}

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerFile {
    pub listen: Option<Sp<Vec<Leaf<SocketAddr>>>>,
    pub tls_listen: Option<Sp<Vec<Leaf<SocketAddr>>>>,
    pub tls_cert: Option<Leaf<PathBuf>>,
    pub tls_key: Option<Leaf<PathBuf>>,
    pub redirect_to_https: Option<Sp<bool>>,
    pub threads: Option<Threads>,
    pub grace_period: Option<Leaf<GracePeriod>>,
    pub log_format: Option<Leaf<LogFormat>>,
    pub pid_file: Option<Leaf<RunPath>>,
    pub upgrade_sock: Option<Leaf<RunPath>>,
    pub admin_listen: Option<Leaf<SocketAddr>>,
    pub landing: Option<Sp<String>>,
    pub trusted_proxies: Option<Sp<Vec<Leaf<IpNet>>>>,
    pub header_timeout: Option<Leaf<HeaderTimeout>>,
    pub forward_auth_secret_env: Option<Sp<String>>,
    pub forward_auth_secret_file: Option<Leaf<PathBuf>>,
}

/// `[clever]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CleverFile {
    pub client_id: Option<Leaf<NonEmpty>>,
    pub client_secret_env: Option<Sp<String>>,
    pub client_secret_file: Option<Leaf<PathBuf>>,
    pub redirect_uri: Option<Leaf<HttpUrl>>,
    pub api_version: Option<Leaf<ApiVersion>>,
    pub authorize_url: Option<Leaf<HttpUrl>>,
    pub token_url: Option<Leaf<HttpUrl>>,
    pub api_base: Option<Leaf<HttpUrl>>,
    pub timeout: Option<Leaf<CleverTimeout>>,
    pub discover_district_tokens: Option<bool>,
    pub district_tokens_refresh: Option<Leaf<TokensRefresh>>,
}

/// `[session]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionFile {
    pub cookie_name: Option<Leaf<CookieName>>,
    pub cookie_domain: Option<Leaf<CookieDomain>>,
    pub cookie_secure: Option<Sp<bool>>,
    pub ttl: Option<Leaf<Ttl>>,
    pub login_timeout: Option<Leaf<LoginTimeout>>,
    pub store: Option<Leaf<StoreKind>>,
    pub redis_url: Option<Leaf<RedisUrl>>,
    pub redis_password_env: Option<Sp<String>>,
    pub redis_password_file: Option<Leaf<PathBuf>>,
    pub redis_sentinels: Option<Sp<Vec<Leaf<SentinelAddr>>>>,
    pub redis_master_name: Option<Leaf<MasterName>>,
    pub redis_db: Option<Sp<RedisDb>>,
    pub redis_sentinel_password_env: Option<Sp<String>>,
    pub redis_sentinel_password_file: Option<Leaf<PathBuf>>,
    pub readiness: Option<Leaf<Readiness>>,
    pub logout_redirect: Option<Leaf<LogoutRedirect>>,
    pub idle_timeout: Option<Leaf<IdleTimeout>>,
}

/// One `[[upstream]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamFile {
    pub name: Option<Leaf<UpstreamName>>,
    pub url: Option<Sp<String>>,
    pub host: Option<Leaf<RouteHost>>,
    pub path_prefix: Option<Leaf<PathPrefix>>,
    pub allow_user_types: Option<Sp<Vec<Leaf<UserType>>>>,
    pub allow_districts: Option<Sp<Vec<Sp<String>>>>,
    pub login_district_id: Option<Leaf<NonEmpty>>,
    pub public_paths: Option<Sp<Vec<Leaf<PublicPath>>>>,
    pub strip_path_prefix: Option<bool>,
    pub forward_access_token: Option<bool>,
    pub tls_verify: Option<Sp<bool>>,
    pub tls_ca: Option<Sp<String>>,
    pub timeout: Option<Leaf<UpstreamTimeout>>,
    pub assertion: Option<bool>,
    pub assertion_audience: Option<Leaf<NonEmpty>>,
    pub confirm_students: Option<bool>,
    pub required_headers: Option<Sp<Vec<Sp<String>>>>,
    pub app_cookies: Option<Sp<Vec<Leaf<CookieName>>>>,
    pub logout_paths: Option<Sp<Vec<Leaf<LogoutPath>>>>,
    pub headers: Option<Sp<HeadersFile>>,
    pub set_headers: Option<Sp<SetHeadersFile>>,
}

/// `[upstream.headers]`: identity header key (a `header` key of the field table) = name, in
/// file order.
#[derive(Debug, Default)]
pub(crate) struct HeadersFile(pub Entries<Leaf<HeaderName>>);

/// `[upstream.set_headers]`: header name = value, in file order.
#[derive(Debug, Default)]
pub(crate) struct SetHeadersFile(pub Entries<Sp<SetValueFile>>);

/// One `set_headers` value: templates, or a table of them by role.
#[derive(Debug)]
pub(crate) enum SetValueFile {
    Templates(TemplatesFile),
    ByRole(Entries<Sp<TemplatesFile>>),
}

/// A template or a list of them.
#[derive(Debug)]
pub(crate) enum TemplatesFile {
    One(String),
    List(Vec<Sp<String>>),
}

impl TemplatesFile {
    /// Each template with its span (`whole`: the value's own).
    pub fn templates(&self, whole: Range<usize>) -> Vec<(&str, Range<usize>)> {
        match self {
            TemplatesFile::One(t) => vec![(t.as_str(), whole)],
            TemplatesFile::List(list) => list
                .iter()
                .map(|t| (t.get_ref().as_str(), t.span()))
                .collect(),
        }
    }
}

/// A table's entries in file order: key (with its span) and value.
pub(crate) type Entries<V> = Vec<(Sp<String>, V)>;

/// `[upstream.headers]` may name the identity headers of the field table only.
static HEADER_KEYS: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| crate::identity::fields::header_keys().collect());
/// A role table of `[upstream.set_headers]`: a role or `default`.
static ROLE_KEYS: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| crate::identity::template::ValueSpec::role_keys().collect());

/// The keys a table allows (`None`: any).
type Allowed = Option<&'static [&'static str]>;

/// A table key with its span, refused (at the key) unless it is allowed.
struct KeyIn(Allowed);

impl<'de> DeserializeSeed<'de> for KeyIn {
    type Value = Sp<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Sp<String>, D::Error> {
        let key = Sp::<String>::deserialize(d)?;
        match self.0 {
            Some(allowed) if !allowed.contains(&key.get_ref().as_str()) => {
                Err(de::Error::unknown_field(key.get_ref(), allowed))
            }
            _ => Ok(key),
        }
    }
}

/// A table's entries in file order (toml hands them over sorted by key).
fn entries<'de, A: MapAccess<'de>, V: Deserialize<'de>>(
    mut map: A,
    allowed: Allowed,
) -> Result<Entries<V>, A::Error> {
    let mut out: Entries<V> = Vec::new();
    while let Some(k) = map.next_key_seed(KeyIn(allowed))? {
        out.push((k, map.next_value()?));
    }
    out.sort_by_key(|(k, _)| k.span().start);
    Ok(out)
}

/// The serde visitor of a value of a shape serde does not derive: it reads what its `visit_*`
/// methods accept; anything else is a wrong type, "expected …" (a table is named by its key
/// in the message).
struct Shape<T>(PhantomData<T>);

macro_rules! shaped {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(Shape::<Self>(PhantomData))
            }
        }
    )*};
}
shaped!(HeadersFile, SetHeadersFile, SetValueFile, TemplatesFile);

impl<'de> Visitor<'de> for Shape<HeadersFile> {
    type Value = HeadersFile;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<HeadersFile, A::Error> {
        entries(map, Some(&HEADER_KEYS[..])).map(HeadersFile)
    }
}

impl<'de> Visitor<'de> for Shape<SetHeadersFile> {
    type Value = SetHeadersFile;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SetHeadersFile, A::Error> {
        entries(map, None).map(SetHeadersFile)
    }
}

impl<'de> Visitor<'de> for Shape<SetValueFile> {
    type Value = SetValueFile;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a template (\"{email}\"), a list of templates or a table of them by role")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<SetValueFile, E> {
        Ok(SetValueFile::Templates(TemplatesFile::One(s.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<SetValueFile, A::Error> {
        let list = Vec::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(SetValueFile::Templates(TemplatesFile::List(list)))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SetValueFile, A::Error> {
        match entries(map, Some(&ROLE_KEYS[..]))? {
            roles if roles.is_empty() => Err(de::Error::custom(format!(
                "is an empty role table: give at least one of {}",
                ROLE_KEYS.join(", ")
            ))),
            roles => Ok(SetValueFile::ByRole(roles)),
        }
    }
}

impl<'de> Visitor<'de> for Shape<TemplatesFile> {
    type Value = TemplatesFile;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a template or a list of templates")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<TemplatesFile, E> {
        Ok(TemplatesFile::One(s.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<TemplatesFile, A::Error> {
        Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(TemplatesFile::List)
    }
}

/// Maps byte offsets in the source to 1-based `line:col` (columns count characters).
pub(crate) struct Locator<'a>(&'a str);

impl<'a> Locator<'a> {
    pub fn new(src: &'a str) -> Self {
        Locator(src)
    }

    /// 1-based line and column of a byte offset; offsets past the end map to the end, and
    /// inside a character to its start.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let mut at = offset.min(self.0.len());
        while !self.0.is_char_boundary(at) {
            at -= 1;
        }
        let before = &self.0[..at];
        let line = before.matches('\n').count() + 1;
        let start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[start..].chars().count() + 1)
    }
}

/// Collects problems for one file, turning spans into positions.
pub(crate) struct Sink<'a> {
    file: &'a str,
    locator: Locator<'a>,
    pub problems: Vec<ConfigProblem>,
}

impl<'a> Sink<'a> {
    pub fn new(file: &'a str, src: &'a str) -> Self {
        Sink {
            file,
            locator: Locator::new(src),
            problems: Vec::new(),
        }
    }

    /// The span of byte `offset` of the string `text` written at `span`: exact when the
    /// string is written without escapes (`"…"` or `'…'` on one line), else the string's start.
    pub fn inside(&self, span: Range<usize>, text: &str, offset: usize) -> Range<usize> {
        let written = self.locator.0.get(span.clone()).unwrap_or_default();
        let quoted = |q: char| written == format!("{q}{text}{q}");
        if (quoted('"') || quoted('\'')) && offset <= text.len() {
            let at = span.start + 1 + offset;
            return at..at;
        }
        span
    }

    /// Records a problem at the start of `span`.
    pub fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, col) = self.locator.position(span.start);
        // One problem, one line: a message never spans lines.
        let message = message.into().replace(['\n', '\r'], " ");
        self.problems.push(ConfigProblem {
            file: self.file.to_owned(),
            line,
            col,
            message,
        });
    }
}

/// The file after parsing.
pub(crate) struct Parsed {
    pub file: FileConfig,
    /// Dotted paths (`server.threads`, `upstream[0].url`, `clever`) of keys that were present
    /// but pruned (wrong type, unknown, unreadable), or lists that lost an entry, so validation
    /// does not also call them missing or empty.
    pub invalid: HashSet<String>,
}

/// One step of a path into the document.
#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Parses the document and deserializes it into [`FileConfig`], reporting every syntax error,
/// unknown key, wrong type and unreadable value into `sink`: each serde error is reported at its
/// span and what it names is pruned, until the rest deserializes. `None` when the document could
/// not be read as TOML at all.
pub(crate) fn parse(src: &str, sink: &mut Sink<'_>) -> Option<Parsed> {
    let (root, errors) = DeTable::parse_recoverable(src);
    for e in &errors {
        let at = e.span().unwrap_or(0..0);
        sink.at(at, format!("invalid TOML: {}", e.message()));
    }
    if !errors.is_empty() {
        return None;
    }
    let mut root = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    let mut invalid = HashSet::new();
    loop {
        let e = match FileConfig::deserialize(ValueDeserializer::from(root.clone())) {
            Ok(file) => return Some(Parsed { file, invalid }),
            Err(e) => e,
        };
        let at = e.span().unwrap_or(0..0);
        let unknown = e.message().starts_with("unknown field `");
        let path = find(root.get_ref(), &at, unknown);
        let Some((node, path)) = path.and_then(|p| Some((prune(root.get_mut(), &p)?, p))) else {
            // Not expected: every error names a key or a value. Reported rather than trusted.
            sink.at(at, e.message().to_owned());
            return None;
        };
        let said = message(e.message(), &path, Some(&node).filter(|_| !unknown));
        sink.at(at, said);
        // A list with a bad entry keeps its other entries, for the rules across keys that
        // read them; it is invalid as a whole.
        invalid.insert(dotted(key_of(&path)));
    }
}

/// The path to the key (`key`) or value whose span is `at`, outermost first (an array of
/// tables spans like its first table).
fn find(v: &DeValue<'_>, at: &Range<usize>, key: bool) -> Option<Vec<Seg>> {
    let under: Vec<(Seg, Option<Range<usize>>, &DeValue<'_>)> = match v {
        DeValue::Table(t) => (t.iter())
            .map(|(k, v)| {
                let span = if key { k.span() } else { v.span() };
                (Seg::Key(k.get_ref().to_string()), Some(span), v.get_ref())
            })
            .collect(),
        DeValue::Array(a) => (a.iter().enumerate())
            .map(|(i, v)| (Seg::Index(i), (!key).then(|| v.span()), v.get_ref()))
            .collect(),
        _ => return None,
    };
    under.into_iter().find_map(|(seg, span, v)| {
        let mut path = match span.as_ref() == Some(at) {
            true => Vec::new(),
            false => find(v, at, key)?,
        };
        path.insert(0, seg);
        Some(path)
    })
}

/// Removes what `path` names and returns it; a role table left empty goes too (its keys were
/// reported).
fn prune<'i>(root: &mut DeValue<'i>, path: &[Seg]) -> Option<DeValue<'i>> {
    let (last, parent) = path.split_last()?;
    let removed = match (last, value_mut(root, parent)?) {
        (Seg::Key(k), DeValue::Table(t)) => t.remove(k.as_str())?,
        (Seg::Index(i), DeValue::Array(a)) if *i < a.len() => {
            let mut items = a.to_vec();
            let removed = items.remove(*i);
            *a = items.into_iter().collect();
            removed
        }
        _ => return None,
    };
    let role_table = matches!(parent, [_, _, Seg::Key(s), _] if s == "set_headers");
    if role_table && matches!(value_mut(root, parent), Some(DeValue::Table(t)) if t.is_empty()) {
        prune(root, parent);
    }
    Some(removed.into_inner())
}

fn value_mut<'t, 'i>(mut v: &'t mut DeValue<'i>, path: &[Seg]) -> Option<&'t mut DeValue<'i>> {
    for seg in path {
        v = match (seg, v) {
            (Seg::Key(k), DeValue::Table(t)) => t.get_mut(k.as_str())?.get_mut(),
            (Seg::Index(i), DeValue::Array(a)) => a.get_mut(*i)?.get_mut(),
            _ => return None,
        };
    }
    Some(v)
}

/// The key a path names: the path itself, or the list holding the entry it names.
fn key_of(path: &[Seg]) -> &[Seg] {
    match path {
        [list @ .., Seg::Index(_)] => list,
        _ => path,
    }
}

/// `upstream[0].url`, for [`Parsed::invalid`].
fn dotted(path: &[Seg]) -> String {
    path.iter().fold(String::new(), |out, seg| match seg {
        Seg::Key(k) if out.is_empty() => k.clone(),
        Seg::Key(k) => format!("{out}.{k}"),
        Seg::Index(i) => format!("{out}[{i}]"),
    })
}

/// The keys of a path, array indices left out: `upstream.headers.email`.
fn keys(path: &[Seg]) -> String {
    let keys = path.iter().filter(|s| matches!(s, Seg::Key(_)));
    dotted(&keys.cloned().collect::<Vec<_>>())
}

/// The message for one serde error about the key or value at `path` (`node`: the value).
fn message(serde: &str, path: &[Seg], node: Option<&DeValue<'_>>) -> String {
    let Some(node) = node else {
        return unknown_key_message(serde, path);
    };
    let owner = key_of(path);
    let (element, named) = (owner.len() < path.len(), keys(owner));
    // A key is named by its keys; a top-level table as `[clever]`.
    let shown = match owner {
        [Seg::Key(top)] => format!("[{top}]"),
        _ => named.clone(),
    };
    let wrong = serde.strip_prefix("invalid type: ");
    if let Some((_, expected)) = wrong.and_then(|m| m.rsplit_once(", expected ")) {
        let expected = match expected {
            _ if named == "upstream" || named == "district" => {
                format!("an array of tables ([[{named}]], one per entry)")
            }
            "a boolean" => "true or false".to_owned(),
            "i64" => "an integer".to_owned(),
            "a sequence" => "an array of strings".to_owned(),
            "a string" if named.contains("set_headers") => "a template (a string)".to_owned(),
            "a table" => format!("a table ([{named}])"),
            s => s.to_owned(),
        };
        let (word, found) = (if element { "in" } else { "for" }, describe(node));
        return format!("wrong type {word} {shown}: expected {expected}, found {found}");
    }
    if matches!(node, DeValue::Integer(_)) && serde.contains("overflow") {
        return format!("{shown} is too large: expected a small integer");
    }
    // A leaf that does not read: an entry of a list, or a key of an [[upstream]] named with
    // its index as validation names it (`upstream[0].timeout`).
    match path {
        _ if element => format!("{shown} entry {serde}"),
        [_, Seg::Index(_), _] => format!("{} {serde}", dotted(path)),
        _ => format!("{shown} {serde}"),
    }
}

/// What a value is, for "found …".
fn describe(v: &DeValue<'_>) -> String {
    match (v, v.type_str()) {
        (DeValue::Array(a), _) if !a.is_empty() && a.iter().all(|i| i.get_ref().is_table()) => {
            "an array of tables".to_owned()
        }
        (_, t @ ("integer" | "array")) => format!("an {t}"),
        (_, t) => format!("a {t}"),
    }
}

/// An unknown key, from serde's "unknown field `key`, expected one of `a`, `b`": the keys the
/// table's struct allows, in declaration order. A secret written inline names its sources.
fn unknown_key_message(serde: &str, path: &[Seg]) -> String {
    let Some((Seg::Key(key), table)) = path.split_last() else {
        return serde.to_owned();
    };
    let inline = |what, key| format!("{what} is never inline: use {key}_env or {key}_file");
    match (keys(&path[..1]).as_str(), key.as_str()) {
        ("clever", "client_secret") => return inline("the client secret", "client_secret"),
        ("district", "token" | "access_token") => return inline("a district-app token", "token"),
        _ => {}
    }
    // The last ", expected" is serde's: a key may contain the words, a key name never does.
    let (_, listed) = serde.rsplit_once(", expected ").unwrap_or_default();
    let allowed: Vec<&str> = listed.split('`').skip(1).step_by(2).collect();
    let place = match table {
        [] => "at the top level".to_owned(),
        [_, Seg::Index(_)] => format!("in [[{}]]", keys(table)),
        [.., Seg::Key(s), _] if s == "set_headers" => {
            "in a role table of [upstream.set_headers]".to_owned()
        }
        _ => format!("in [{}]", keys(table)),
    };
    let (key, hint, allowed) = (quote(key), did_you_mean(key, &allowed), allowed.join(", "));
    format!("unknown key {key} {place}{hint}: allowed keys are {allowed}")
}

/// A user-supplied string for a message: quoted, escaped, and cut if long.
pub(crate) fn quote(s: &str) -> String {
    let cut: String = s.chars().take(80).collect();
    match cut.len() < s.len() {
        true => format!("{cut:?}…"),
        false => format!("{s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locator_multibyte_line_counts_characters() {
        let src = "a = 1\né = \"x\"\n";
        let loc = Locator::new(src);
        assert_eq!(loc.position(0), (1, 1));
        assert_eq!(loc.position(6), (2, 1));
        let quote_at = src.find('"').unwrap();
        assert_eq!(loc.position(quote_at), (2, 5));
    }

    #[test]
    fn locator_offset_past_end_clamps() {
        let loc = Locator::new("ab\ncd");
        assert_eq!(loc.position(999), (2, 3));
        assert_eq!(Locator::new("").position(5), (1, 1));
    }

    #[test]
    fn locator_offset_inside_character_does_not_panic() {
        let loc = Locator::new("é");
        let _ = loc.position(1);
    }

    #[test]
    fn quote_long_value_is_cut() {
        let q = quote(&"x".repeat(500));
        assert!(q.len() < 100, "{q}");
        assert_eq!(quote("a\nb"), "\"a\\nb\"");
    }
}
