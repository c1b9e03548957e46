//! The `gateway.toml` file as written: serde structs mirroring it, the shape check that finds
//! every unknown key and wrong type at once, and the mapping from byte spans to `line:col`.
//!
//! Serde stops at its first error, so the document is first parsed into toml's spanned tree and
//! walked against [`ROOT`]: each unknown key or mistyped value is reported and pruned, which lets
//! the serde pass that follows succeed and validation report its own problems in the same run.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::ConfigProblem;
use crate::identity::template::did_you_mean;

/// A value with the byte span it was read from.
pub(crate) type Sp<T> = Spanned<T>;

/// The whole file. Every field is optional here; validation says what is missing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub server: Option<Sp<ServerFile>>,
    pub clever: Option<Sp<CleverFile>>,
    pub session: Option<Sp<SessionFile>>,
    pub upstream: Option<Sp<Vec<Sp<UpstreamFile>>>>,
    pub assertion: Option<Sp<AssertionFile>>,
    pub district: Option<Sp<Vec<Sp<DistrictFile>>>>,
}

/// One `[[district]]`: a district-app token credential.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DistrictFile {
    pub id: Option<Sp<String>>,
    pub name: Option<Sp<String>>,
    pub description: Option<Sp<String>>,
    pub token_env: Option<Sp<String>>,
    pub token_file: Option<Sp<String>>,
}

/// `[assertion]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssertionFile {
    pub issuer: Option<Sp<String>>,
    pub key_file: Option<Sp<String>>,
    pub previous_key_files: Option<Sp<Vec<Sp<String>>>>,
    pub overlap: Option<Sp<String>>,
}

/// `[server]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerFile {
    pub listen: Option<Sp<Vec<Sp<String>>>>,
    pub tls_listen: Option<Sp<Vec<Sp<String>>>>,
    pub tls_cert: Option<Sp<String>>,
    pub tls_key: Option<Sp<String>>,
    pub redirect_to_https: Option<Sp<bool>>,
    pub threads: Option<Sp<i64>>,
    pub grace_period: Option<Sp<String>>,
    pub log_format: Option<Sp<String>>,
    pub pid_file: Option<Sp<String>>,
    pub upgrade_sock: Option<Sp<String>>,
    pub admin_listen: Option<Sp<String>>,
    pub landing: Option<Sp<String>>,
    pub trusted_proxies: Option<Sp<Vec<Sp<String>>>>,
    pub header_timeout: Option<Sp<String>>,
    pub forward_auth_secret_env: Option<Sp<String>>,
    pub forward_auth_secret_file: Option<Sp<String>>,
}

/// `[clever]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CleverFile {
    pub client_id: Option<Sp<String>>,
    pub client_secret_env: Option<Sp<String>>,
    pub client_secret_file: Option<Sp<String>>,
    pub redirect_uri: Option<Sp<String>>,
    pub api_version: Option<Sp<String>>,
    pub authorize_url: Option<Sp<String>>,
    pub token_url: Option<Sp<String>>,
    pub api_base: Option<Sp<String>>,
    pub timeout: Option<Sp<String>>,
    pub discover_district_tokens: Option<Sp<bool>>,
    pub district_tokens_refresh: Option<Sp<String>>,
}

/// `[session]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionFile {
    pub cookie_name: Option<Sp<String>>,
    pub cookie_domain: Option<Sp<String>>,
    pub cookie_secure: Option<Sp<bool>>,
    pub ttl: Option<Sp<String>>,
    pub login_timeout: Option<Sp<String>>,
    pub store: Option<Sp<String>>,
    pub redis_url: Option<Sp<String>>,
    pub redis_password_env: Option<Sp<String>>,
    pub redis_password_file: Option<Sp<String>>,
    pub redis_sentinels: Option<Sp<Vec<Sp<String>>>>,
    pub redis_master_name: Option<Sp<String>>,
    pub redis_db: Option<Sp<i64>>,
    pub redis_sentinel_password_env: Option<Sp<String>>,
    pub redis_sentinel_password_file: Option<Sp<String>>,
    pub readiness: Option<Sp<String>>,
    pub logout_redirect: Option<Sp<String>>,
    pub idle_timeout: Option<Sp<String>>,
}

/// One `[[upstream]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamFile {
    pub name: Option<Sp<String>>,
    pub url: Option<Sp<String>>,
    pub host: Option<Sp<String>>,
    pub path_prefix: Option<Sp<String>>,
    pub allow_user_types: Option<Sp<Vec<Sp<String>>>>,
    pub allow_districts: Option<Sp<Vec<Sp<String>>>>,
    pub login_district_id: Option<Sp<String>>,
    pub public_paths: Option<Sp<Vec<Sp<String>>>>,
    pub strip_path_prefix: Option<Sp<bool>>,
    pub forward_access_token: Option<Sp<bool>>,
    pub tls_verify: Option<Sp<bool>>,
    pub tls_ca: Option<Sp<String>>,
    pub timeout: Option<Sp<String>>,
    pub assertion: Option<Sp<bool>>,
    pub assertion_audience: Option<Sp<String>>,
    pub confirm_students: Option<Sp<bool>>,
    pub required_headers: Option<Sp<Vec<Sp<String>>>>,
    pub app_cookies: Option<Sp<Vec<Sp<String>>>>,
    pub logout_paths: Option<Sp<Vec<Sp<String>>>>,
    pub headers: Option<Sp<HeadersFile>>,
    pub set_headers: Option<Sp<SetHeadersFile>>,
}

/// `[upstream.headers]`: identity header key (a `header` key of the field table) = name, in
/// file order.
#[derive(Debug, Default)]
pub(crate) struct HeadersFile(pub Vec<(Sp<String>, Sp<String>)>);

/// `[upstream.set_headers]`: header name = value, in file order.
#[derive(Debug, Default)]
pub(crate) struct SetHeadersFile(pub Vec<(Sp<String>, Sp<SetValueFile>)>);

/// One `set_headers` value: a template, a list of them, or a table of either by role.
#[derive(Debug)]
pub(crate) enum SetValueFile {
    One(String),
    List(Vec<Sp<String>>),
    ByRole(Vec<(Sp<String>, Sp<TemplatesFile>)>),
}

impl SetValueFile {
    /// Every template string of the value with its span (`whole`: the value's own).
    pub fn templates(&self, whole: Range<usize>) -> Vec<(&str, Range<usize>)> {
        match self {
            SetValueFile::One(t) => vec![(t.as_str(), whole)],
            SetValueFile::List(list) => list
                .iter()
                .map(|t| (t.get_ref().as_str(), t.span()))
                .collect(),
            SetValueFile::ByRole(entries) => entries
                .iter()
                .flat_map(|(_, e)| match e.get_ref() {
                    TemplatesFile::One(t) => vec![(t.as_str(), e.span())],
                    TemplatesFile::List(list) => list
                        .iter()
                        .map(|t| (t.get_ref().as_str(), t.span()))
                        .collect(),
                })
                .collect(),
        }
    }
}

/// A role table's entry: a template or a list of them.
#[derive(Debug)]
pub(crate) enum TemplatesFile {
    One(String),
    List(Vec<Sp<String>>),
}

/// A table's entries: key and value, each with its span.
type Entries<V> = Vec<(Sp<String>, Sp<V>)>;

/// A table's entries in file order (toml hands them over sorted by key).
fn entries_in_file_order<'de, A, V>(mut map: A) -> Result<Entries<V>, A::Error>
where
    A: MapAccess<'de>,
    V: Deserialize<'de>,
{
    let mut out: Vec<(Sp<String>, Sp<V>)> = Vec::new();
    while let Some(k) = map.next_key::<Sp<String>>()? {
        out.push((k, map.next_value()?));
    }
    out.sort_by_key(|(k, _)| k.span().start);
    Ok(out)
}

/// The serde visitor of a hand-shaped value above: `expecting` names the shape.
struct Shape<T>(&'static str, std::marker::PhantomData<T>);

impl<T> Shape<T> {
    fn new(what: &'static str) -> Self {
        Shape(what, std::marker::PhantomData)
    }
}

/// The strings of an array, each with its span.
fn spanned_strings<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Vec<Sp<String>>, A::Error> {
    let mut out = Vec::new();
    while let Some(s) = seq.next_element::<Sp<String>>()? {
        out.push(s);
    }
    Ok(out)
}

impl<'de> Visitor<'de> for Shape<HeadersFile> {
    type Value = HeadersFile;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<HeadersFile, A::Error> {
        entries_in_file_order(map).map(HeadersFile)
    }
}

impl<'de> Visitor<'de> for Shape<SetHeadersFile> {
    type Value = SetHeadersFile;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SetHeadersFile, A::Error> {
        entries_in_file_order(map).map(SetHeadersFile)
    }
}

impl<'de> Visitor<'de> for Shape<SetValueFile> {
    type Value = SetValueFile;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SetValueFile, E> {
        Ok(SetValueFile::One(v.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<SetValueFile, A::Error> {
        spanned_strings(seq).map(SetValueFile::List)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SetValueFile, A::Error> {
        entries_in_file_order(map).map(SetValueFile::ByRole)
    }
}

impl<'de> Visitor<'de> for Shape<TemplatesFile> {
    type Value = TemplatesFile;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TemplatesFile, E> {
        Ok(TemplatesFile::One(v.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<TemplatesFile, A::Error> {
        spanned_strings(seq).map(TemplatesFile::List)
    }
}

impl<'de> Deserialize<'de> for HeadersFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(Shape::<HeadersFile>::new("a table of header names"))
    }
}

impl<'de> Deserialize<'de> for SetHeadersFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(Shape::<SetHeadersFile>::new("a table of headers"))
    }
}

impl<'de> Deserialize<'de> for SetValueFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Shape::<SetValueFile>::new(
            "a template, a list of templates or a table of them by role",
        ))
    }
}

impl<'de> Deserialize<'de> for TemplatesFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Shape::<TemplatesFile>::new(
            "a template or a list of templates",
        ))
    }
}

/// The type a key must have.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Str,
    Bool,
    Int,
    StrList,
    Table(&'static Section),
    Tables(&'static Section),
    /// A `set_headers` value: a template, a list of them, or a role table of either.
    Template,
    /// A role table's entry: a template or a list of them.
    Templates,
}

impl Kind {
    fn expected(self) -> String {
        match self {
            Kind::Str => "a string".to_owned(),
            Kind::Bool => "true or false".to_owned(),
            Kind::Int => "an integer".to_owned(),
            Kind::StrList => "an array of strings".to_owned(),
            Kind::Template => {
                "a template (\"{email}\"), a list of templates or a table of them by role"
                    .to_owned()
            }
            Kind::Templates => "a template or a list of templates".to_owned(),
            Kind::Table(s) => format!("a table ([{}])", s.title),
            Kind::Tables(s) => format!("an array of tables ([[{}]], one per entry)", s.title),
        }
    }
}

/// The keys one table may hold. A fixed list names exactly the fields of its serde struct (a
/// test checks).
pub(crate) struct Section {
    /// How the table is written in messages: `server`, `upstream`, `upstream.headers`.
    pub title: &'static str,
    pub keys: Keys,
}

/// Which keys a table may hold.
#[derive(Clone, Copy)]
pub(crate) enum Keys {
    /// These keys, each with its type.
    Fixed(&'static [(&'static str, Kind)]),
    /// The keys the function lists (from a table elsewhere), all of one type.
    Listed(fn() -> Vec<&'static str>, Kind),
    /// Any key (a header name), all of one type.
    Any(Kind),
}

impl Section {
    /// The type of `key`, or `None` when the table may not hold it.
    pub fn kind_of(&self, key: &str) -> Option<Kind> {
        match self.keys {
            Keys::Fixed(keys) => keys.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind),
            Keys::Listed(list, kind) => list().contains(&key).then_some(kind),
            Keys::Any(kind) => Some(kind),
        }
    }

    /// The keys it may hold, for messages (empty for any key).
    pub fn allowed(&self) -> Vec<&'static str> {
        match self.keys {
            Keys::Fixed(keys) => keys.iter().map(|(k, _)| *k).collect(),
            Keys::Listed(list, _) => list(),
            Keys::Any(_) => Vec::new(),
        }
    }
}

/// The document root.
pub(crate) static ROOT: Section = Section {
    title: "",
    keys: Keys::Fixed(&[
        ("server", Kind::Table(&SERVER)),
        ("clever", Kind::Table(&CLEVER)),
        ("session", Kind::Table(&SESSION)),
        ("upstream", Kind::Tables(&UPSTREAM)),
        ("assertion", Kind::Table(&ASSERTION)),
        ("district", Kind::Tables(&DISTRICT)),
    ]),
};

pub(crate) static DISTRICT: Section = Section {
    title: "district",
    keys: Keys::Fixed(&[
        ("id", Kind::Str),
        ("name", Kind::Str),
        ("description", Kind::Str),
        ("token_env", Kind::Str),
        ("token_file", Kind::Str),
    ]),
};

pub(crate) static ASSERTION: Section = Section {
    title: "assertion",
    keys: Keys::Fixed(&[
        ("issuer", Kind::Str),
        ("key_file", Kind::Str),
        ("previous_key_files", Kind::StrList),
        ("overlap", Kind::Str),
    ]),
};

pub(crate) static SERVER: Section = Section {
    title: "server",
    keys: Keys::Fixed(&[
        ("listen", Kind::StrList),
        ("tls_listen", Kind::StrList),
        ("tls_cert", Kind::Str),
        ("tls_key", Kind::Str),
        ("redirect_to_https", Kind::Bool),
        ("threads", Kind::Int),
        ("grace_period", Kind::Str),
        ("log_format", Kind::Str),
        ("pid_file", Kind::Str),
        ("upgrade_sock", Kind::Str),
        ("admin_listen", Kind::Str),
        ("landing", Kind::Str),
        ("trusted_proxies", Kind::StrList),
        ("header_timeout", Kind::Str),
        ("forward_auth_secret_env", Kind::Str),
        ("forward_auth_secret_file", Kind::Str),
    ]),
};

pub(crate) static CLEVER: Section = Section {
    title: "clever",
    keys: Keys::Fixed(&[
        ("client_id", Kind::Str),
        ("client_secret_env", Kind::Str),
        ("client_secret_file", Kind::Str),
        ("redirect_uri", Kind::Str),
        ("api_version", Kind::Str),
        ("authorize_url", Kind::Str),
        ("token_url", Kind::Str),
        ("api_base", Kind::Str),
        ("timeout", Kind::Str),
        ("discover_district_tokens", Kind::Bool),
        ("district_tokens_refresh", Kind::Str),
    ]),
};

pub(crate) static SESSION: Section = Section {
    title: "session",
    keys: Keys::Fixed(&[
        ("cookie_name", Kind::Str),
        ("cookie_domain", Kind::Str),
        ("cookie_secure", Kind::Bool),
        ("ttl", Kind::Str),
        ("login_timeout", Kind::Str),
        ("store", Kind::Str),
        ("redis_url", Kind::Str),
        ("redis_password_env", Kind::Str),
        ("redis_password_file", Kind::Str),
        ("redis_sentinels", Kind::StrList),
        ("redis_master_name", Kind::Str),
        ("redis_db", Kind::Int),
        ("redis_sentinel_password_env", Kind::Str),
        ("redis_sentinel_password_file", Kind::Str),
        ("readiness", Kind::Str),
        ("logout_redirect", Kind::Str),
        ("idle_timeout", Kind::Str),
    ]),
};

pub(crate) static UPSTREAM: Section = Section {
    title: "upstream",
    keys: Keys::Fixed(&[
        ("name", Kind::Str),
        ("url", Kind::Str),
        ("host", Kind::Str),
        ("path_prefix", Kind::Str),
        ("allow_user_types", Kind::StrList),
        ("allow_districts", Kind::StrList),
        ("login_district_id", Kind::Str),
        ("public_paths", Kind::StrList),
        ("strip_path_prefix", Kind::Bool),
        ("forward_access_token", Kind::Bool),
        ("tls_verify", Kind::Bool),
        ("tls_ca", Kind::Str),
        ("timeout", Kind::Str),
        ("assertion", Kind::Bool),
        ("assertion_audience", Kind::Str),
        ("confirm_students", Kind::Bool),
        ("required_headers", Kind::StrList),
        ("app_cookies", Kind::StrList),
        ("logout_paths", Kind::StrList),
        ("headers", Kind::Table(&HEADERS)),
        ("set_headers", Kind::Table(&SET_HEADERS)),
    ]),
};

/// `[upstream.headers]`: the identity headers of the field table, each a header name.
pub(crate) static HEADERS: Section = Section {
    title: "upstream.headers",
    keys: Keys::Listed(
        || crate::identity::fields::header_keys().collect(),
        Kind::Str,
    ),
};

/// `[upstream.set_headers]`: any header name = a template value.
pub(crate) static SET_HEADERS: Section = Section {
    title: "upstream.set_headers",
    keys: Keys::Any(Kind::Template),
};

/// A role table inside `[upstream.set_headers]`: a role or `default` = template(s).
pub(crate) static ROLE_TABLE: Section = Section {
    title: "upstream.set_headers role table",
    keys: Keys::Listed(
        || crate::identity::template::ValueSpec::role_keys().collect(),
        Kind::Templates,
    ),
};

/// Maps byte offsets in the source to 1-based `line:col` (columns count characters).
pub(crate) struct Locator<'a> {
    src: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    pub fn new(src: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Locator { src, line_starts }
    }

    /// 1-based line and column of a byte offset; offsets past the end map to the end.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let col = match self.src.get(start..offset) {
            Some(text) => text.chars().count(),
            None => offset.saturating_sub(start),
        };
        (line + 1, col + 1)
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
        let written = self.locator.src.get(span.clone()).unwrap_or_default();
        let plain = written.len() == text.len() + 2
            && written.get(1..written.len() - 1) == Some(text)
            && (written.starts_with('"') || written.starts_with('\''));
        if plain && offset <= text.len() {
            let at = span.start + 1 + offset;
            at..at
        } else {
            span
        }
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

/// The file after parsing and the shape check.
pub(crate) struct Parsed {
    pub file: FileConfig,
    /// Dotted paths (`server.threads`, `upstream[0].url`, `clever`) of keys that were present
    /// but pruned (wrong type, unknown), so validation does not also call them missing.
    pub invalid: HashSet<String>,
}

/// Parses the document, reports syntax errors, unknown keys and wrong types into `sink`, and
/// deserializes what is left. `None` when the document could not be read as TOML at all.
pub(crate) fn parse(src: &str, sink: &mut Sink<'_>) -> Option<Parsed> {
    let (root, errors) = DeTable::parse_recoverable(src);
    if !errors.is_empty() {
        for e in errors {
            let span = e.span().unwrap_or(0..0);
            sink.at(span, format!("invalid TOML: {}", e.message()));
        }
        return None;
    }
    let span = root.span();
    let mut table = root.into_inner();
    let mut invalid = HashSet::new();
    check_table(&ROOT, &mut table, "", sink, &mut invalid);
    let root = Spanned::new(span, table);
    match FileConfig::deserialize(toml::de::Deserializer::from(root)) {
        Ok(file) => Some(Parsed { file, invalid }),
        Err(e) => {
            // Not expected after the shape check; reported rather than trusted.
            sink.at(e.span().unwrap_or(0..0), e.message().to_owned());
            None
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Checks one table against `section`, recursing into sub-tables; prunes bad entries.
fn check_table(
    section: &Section,
    table: &mut DeTable<'_>,
    path: &str,
    sink: &mut Sink<'_>,
    invalid: &mut HashSet<String>,
) {
    let mut drop: Vec<String> = Vec::new();
    for (key, value) in table.iter_mut() {
        let name: &str = key.get_ref();
        let key_path = join(path, name);
        let Some(kind) = section.kind_of(name) else {
            sink.at(key.span(), unknown_key_message(section, name));
            // An inline secret is still a secret the user meant to give: not "missing" too.
            invalid.insert(key_path);
            drop.push(name.to_owned());
            continue;
        };
        if !check_value(kind, value, &key_path, section, name, sink, invalid) {
            invalid.insert(key_path);
            drop.push(name.to_owned());
        }
    }
    for name in &drop {
        table.remove(name.as_str());
    }
}

/// Checks one value; `false` when it has the wrong type and must be pruned.
fn check_value(
    kind: Kind,
    value: &mut Spanned<DeValue<'_>>,
    path: &str,
    section: &Section,
    name: &str,
    sink: &mut Sink<'_>,
    invalid: &mut HashSet<String>,
) -> bool {
    let span = value.span();
    let shown = display_path(section, name);
    let wrong = |sink: &mut Sink<'_>, found: &DeValue<'_>, span: Range<usize>| {
        sink.at(
            span,
            format!(
                "wrong type for {shown}: expected {}, found {}",
                kind.expected(),
                describe(found)
            ),
        );
    };
    match (kind, value.get_mut()) {
        (Kind::Str, DeValue::String(_)) | (Kind::Bool, DeValue::Boolean(_)) => true,
        (Kind::Int, DeValue::Integer(i)) => {
            if i64::from_str_radix(i.as_str(), i.radix()).is_ok() {
                true
            } else {
                sink.at(
                    span,
                    format!("{shown} is too large: expected a small integer"),
                );
                false
            }
        }
        (Kind::StrList, DeValue::Array(items)) => {
            let mut ok = true;
            for item in items.iter() {
                if !item.get_ref().is_str() {
                    sink.at(
                        item.span(),
                        format!(
                            "wrong type in {shown}: expected a string, found {}",
                            describe(item.get_ref())
                        ),
                    );
                    ok = false;
                }
            }
            ok
        }
        (Kind::Table(sub), DeValue::Table(t)) => {
            check_table(sub, t, path, sink, invalid);
            true
        }
        (Kind::Template | Kind::Templates, DeValue::String(_)) => true,
        (Kind::Template | Kind::Templates, DeValue::Array(items)) => {
            let mut ok = true;
            for item in items.iter() {
                if !item.get_ref().is_str() {
                    sink.at(
                        item.span(),
                        format!(
                            "wrong type in {shown}: expected a template (a string), found {}",
                            describe(item.get_ref())
                        ),
                    );
                    ok = false;
                }
            }
            ok
        }
        (Kind::Template, DeValue::Table(t)) if t.is_empty() => {
            sink.at(
                span,
                format!(
                    "{shown} is an empty role table: give at least one of {}",
                    ROLE_TABLE.allowed().join(", ")
                ),
            );
            false
        }
        (Kind::Template, DeValue::Table(t)) => {
            check_table(&ROLE_TABLE, t, path, sink, invalid);
            true
        }
        (Kind::Tables(sub), DeValue::Array(items)) => {
            if let Some(bad) = items.iter().find(|i| !i.get_ref().is_table()) {
                let (bad_span, found) = (bad.span(), describe(bad.get_ref()));
                sink.at(
                    bad_span,
                    format!(
                        "wrong type in {shown}: expected {}, found {found}",
                        kind.expected()
                    ),
                );
                return false;
            }
            for (i, item) in items.iter_mut().enumerate() {
                if let DeValue::Table(t) = item.get_mut() {
                    check_table(sub, t, &format!("{path}[{i}]"), sink, invalid);
                }
            }
            true
        }
        (_, found) => {
            wrong(sink, found, span);
            false
        }
    }
}

/// `server.threads`, `upstream.headers.email`, `[clever]`.
fn display_path(section: &Section, key: &str) -> String {
    if section.title.is_empty() {
        format!("[{key}]")
    } else {
        format!("{}.{key}", section.title)
    }
}

fn describe(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(a) if a.iter().all(|i| i.get_ref().is_table()) && !a.is_empty() => {
            "an array of tables"
        }
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn unknown_key_message(section: &Section, key: &str) -> String {
    if section.title == "clever" && key == "client_secret" {
        return "the client secret is never inline: use client_secret_env or client_secret_file"
            .to_owned();
    }
    if section.title == "district" && matches!(key, "token" | "access_token") {
        return "a district-app token is never inline: use token_env or token_file".to_owned();
    }
    let allowed: Vec<&str> = section.allowed();
    let place = if section.title.is_empty() {
        "at the top level".to_owned()
    } else if matches!(section.title, "upstream" | "district") {
        format!("in [[{}]]", section.title)
    } else if section.title == ROLE_TABLE.title {
        "in a role table of [upstream.set_headers]".to_owned()
    } else {
        format!("in [{}]", section.title)
    };
    let hint = did_you_mean(key, &allowed);
    format!(
        "unknown key {} {place}{hint}: allowed keys are {}",
        quote(key),
        allowed.join(", ")
    )
}

/// A user-supplied string for a message: quoted, escaped, and cut if long.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut:?}…")
    } else {
        format!("{s:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::{self, Deserializer, Visitor};

    /// Captures the field names serde passes to `deserialize_struct`.
    struct FieldNames(Vec<&'static str>);

    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Stop
        }
    }

    impl<'de> Deserializer<'de> for &mut FieldNames {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0.extend_from_slice(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    fn fields<T: for<'de> Deserialize<'de>>() -> Vec<&'static str> {
        let mut names = FieldNames(Vec::new());
        let _ = T::deserialize(&mut names);
        names.0.sort_unstable();
        names.0
    }

    fn keys(section: &Section) -> Vec<&'static str> {
        let mut k: Vec<&str> = section.allowed();
        k.sort_unstable();
        k
    }

    #[test]
    fn schema_every_section_matches_its_serde_struct() {
        assert_eq!(keys(&ROOT), fields::<FileConfig>());
        assert_eq!(keys(&SERVER), fields::<ServerFile>());
        assert_eq!(keys(&CLEVER), fields::<CleverFile>());
        assert_eq!(keys(&SESSION), fields::<SessionFile>());
        assert_eq!(keys(&UPSTREAM), fields::<UpstreamFile>());
        assert_eq!(keys(&ASSERTION), fields::<AssertionFile>());
        assert_eq!(keys(&DISTRICT), fields::<DistrictFile>());
    }

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
