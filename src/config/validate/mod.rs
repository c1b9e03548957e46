//! Turns the parsed file into the typed model, collecting every problem (never just the first)
//! with its place: the entry point, the problem context [`Ctx`] and the shapes of rule the
//! tables share (a required key, a required secret from one source, a key that must not be
//! written). The leaves arrive already read into their types ([`super::leaf`]); what is left
//! here are the rules across keys and tables, each table in its own module. A table's builder
//! may fill a refused key with its default: the model is returned only when nothing was
//! reported, and [`Ctx::valid`] keeps the rules across keys from running on such a default.

mod assertion;
mod clever;
mod district;
mod headers;
mod redis;
mod server;
mod session;
mod tls;
mod upstream;

use std::collections::HashSet;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use super::file::{Parsed, Sink, Sp, Written};
use super::leaf::{self, EnvName, FromText, Leaf};
use super::model::{Config, SecretSource};
use crate::identity::CORE_FIELDS;
use clever::clever;
use server::server;
use session::session;
use upstream::upstreams;

/// Builds the model; `None` if anything was reported (the problems are in `sink`).
pub(crate) fn validate(parsed: Parsed, sink: &mut Sink<'_>) -> Option<Config> {
    let mut ctx = Ctx {
        sink,
        invalid: &parsed.invalid,
        sources: None,
    };
    let file = &parsed.file;
    let clever = clever(&mut ctx, file.clever.as_ref());
    let districts = district::districts(&mut ctx, file.district.as_ref());
    ctx.sources = clever.as_ref().map(|c| headers::Sources {
        api: c.api_kind,
        no_tokens: !c.discover_district_tokens && districts.as_ref().is_some_and(Vec::is_empty),
    });
    let mut specs = headers::Specs::default();
    // What `/_gateway/auth` answers with when no upstream is named: the identity headers an
    // upstream sends by default, under their default names.
    let default_headers = headers::headers(&mut ctx, &Default::default(), &mut specs)
        .map(|h| h.headers)
        .unwrap_or_default();
    let (upstreams, names) = upstreams(&mut ctx, file.upstream.as_ref(), &mut specs);
    let server = server(&mut ctx, file.server.as_ref(), &names);
    let session = session(&mut ctx, file.session.as_ref());
    let cookie_name = file
        .session
        .as_ref()
        .and_then(|s| s.get_ref().cookie_name.as_ref())
        .map_or(session::DEFAULT_COOKIE_NAME, |n| n.text.as_str());
    upstream::app_cookies_not_ours(&mut ctx, file.upstream.as_ref(), cookie_name);
    tls::secure_cookies_with_tls(&mut ctx, file.session.as_ref(), server.as_ref());
    let wanted = upstreams.iter().flatten().any(|u| u.assertion.is_some());
    let assertion =
        assertion::assertion(&mut ctx, file.assertion.as_ref(), clever.as_ref(), wanted);
    if !ctx.sink.problems.is_empty() {
        return None;
    }
    Some(Config {
        server: server?,
        clever: clever?,
        session: session?,
        upstreams: upstreams?.into_iter().map(Arc::new).collect(),
        assertion: assertion?,
        districts: districts?,
        kept_fields: specs
            .0
            .iter()
            .fold(CORE_FIELDS, |kept, s| kept.union(s.fields())),
        header_specs: specs.0,
        default_headers,
    })
}

/// The problem collector every table reports into, and the keys the file layer already
/// reported (present but pruned: wrong type or unknown), so they are not also called missing;
/// and, once `[clever]` and `[[district]]` are read, what the upstreams' headers can be given.
struct Ctx<'s, 'a> {
    sink: &'s mut Sink<'a>,
    invalid: &'s HashSet<String>,
    sources: Option<headers::Sources>,
}

impl Ctx<'_, '_> {
    fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.sink.at(span, message);
    }

    /// Reports a missing key, unless it was there with a wrong type (already reported).
    fn missing(&mut self, path: &str, span: Range<usize>, message: impl Into<String>) {
        if self.valid(path) {
            self.err(span, message);
        }
    }

    /// Reports `message` at a key's value if the key is written (a key that must not be).
    fn if_set(&mut self, v: &Option<impl Written>, message: impl Into<String>) {
        if let Some(v) = v {
            self.err(v.at(), message);
        }
    }

    /// Whether the key at `path` was not refused by the file layer (absent or read).
    fn valid(&self, path: &str) -> bool {
        !self.invalid.contains(path)
    }

    /// A required leaf's value; when absent (and not refused), "`[table]` has no `key`: `why`"
    /// is reported at `span`.
    fn required<T: Clone>(
        &mut self,
        path: &str,
        v: &Option<Leaf<T>>,
        span: Range<usize>,
        why: &str,
    ) -> Option<T> {
        if v.is_none() {
            let (table, key) = path.rsplit_once('.').unwrap_or(("", path));
            let table = match table.split_once('[') {
                Some((list, _)) => format!("[[{list}]]"),
                None => format!("[{table}]"),
            };
            self.missing(path, span, format!("{table} has no {key}: {why}"));
        }
        val(v)
    }

    /// A secret that must come from somewhere: reported at `span` when neither source is
    /// set and none of `keys` (paths) was refused.
    fn required_secret(
        &mut self,
        source: Option<Option<SecretSource>>,
        keys: &[String],
        span: Range<usize>,
        message: &str,
    ) -> Option<SecretSource> {
        if source == Some(None) && keys.iter().all(|k| self.valid(k)) {
            self.err(span, message);
        }
        source.flatten()
    }

    /// A string leaf read here rather than by the file layer (to name it `shown`): reported
    /// as the file layer reports a [`Leaf`], `None` when it does not read.
    fn read<T: FromText>(&mut self, v: &Sp<String>, shown: &str) -> Option<T> {
        let read = leaf::read(v.get_ref());
        read.map_err(|why| self.err(v.span(), format!("{shown} {why}")))
            .ok()
    }
}

/// A leaf's value, if written and read (a refused one was reported).
fn val<T: Clone>(v: &Option<Leaf<T>>) -> Option<T> {
    v.as_ref().map(|v| v.value.clone())
}

/// A list of leaves' values (empty when absent; a refused entry was reported).
fn vals<T: Clone>(v: &Option<Sp<Vec<Leaf<T>>>>) -> Vec<T> {
    v.iter()
        .flat_map(|l| l.get_ref())
        .map(|l| l.value.clone())
        .collect()
}

/// Where a secret comes from: `{key}_env` (an environment variable's name) or `{key}_file` (a
/// path), never both. `Some(None)`: neither is set, which the caller judges; `None`: a problem
/// was reported.
fn secret_source(
    ctx: &mut Ctx<'_, '_>,
    key: &str,
    env: &Option<Sp<String>>,
    file: &Option<Leaf<PathBuf>>,
) -> Option<Option<SecretSource>> {
    match (env, file) {
        (Some(_), Some(f)) => {
            let both = format!("{key}_env and {key}_file are both set: use exactly one of them");
            ctx.err(f.span(), both);
            None
        }
        (Some(e), None) => {
            (ctx.read(e, &format!("{key}_env"))).map(|n: EnvName| Some(SecretSource::Env(n.0)))
        }
        (None, Some(f)) => Some(Some(SecretSource::File(f.value.clone()))),
        (None, None) => Some(None),
    }
}

#[cfg(test)]
mod testutil {
    //! The valid skeleton every table's tests start from, and how they look at the result.

    use super::super::{parse_str, ConfigProblem};
    use super::Config;

    pub(super) const CLEVER: &str =
        "[clever]\nclient_id = \"id\"\nclient_secret_env = \"CLEVER_SECRET\"\n\
         redirect_uri = \"https://gw.example.org/oauth/callback\"\n";
    pub(super) const UPSTREAM: &str =
        "[[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9000\"\n";

    /// A valid file with `server`, `clever` and `session` keys and upstream keys added.
    pub(super) fn doc(server: &str, clever: &str, session: &str, upstream: &str) -> String {
        format!(
            "[server]\n{server}\n{CLEVER}{clever}\n[session]\n{session}\n{UPSTREAM}{upstream}\n"
        )
    }

    pub(super) fn ok(src: &str) -> Config {
        match parse_str(src, "t.toml") {
            Ok(c) => c,
            Err(e) => panic!("expected a valid config, got:\n{e}\n--- file:\n{src}"),
        }
    }

    pub(super) fn problems(src: &str) -> Vec<ConfigProblem> {
        match parse_str(src, "t.toml") {
            Ok(_) => panic!("expected problems in:\n{src}"),
            Err(e) => e.problems,
        }
    }

    /// Exactly one problem, whose message contains every needle.
    pub(super) fn one(src: &str, needles: &[&str]) -> ConfigProblem {
        let p = problems(src);
        assert_eq!(p.len(), 1, "expected one problem, got {p:#?}");
        for n in needles {
            assert!(p[0].message.contains(n), "{:?} lacks {n:?}", p[0].message);
        }
        p.into_iter().next().unwrap()
    }

    pub(super) fn line_of(src: &str, needle: &str) -> usize {
        src.lines().position(|l| l.contains(needle)).unwrap() + 1
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;

    /// A missing key is named once, by its table as the file writes it.
    #[test]
    fn a_missing_key_is_named_once_by_its_table() {
        let cases = [
            (
                format!("{CLEVER}[[upstream]]\nurl = \"http://127.0.0.1:9000\"\n"),
                "[[upstream]] has no name: ",
            ),
            (
                format!("[clever]\nclient_secret_env = \"S\"\nredirect_uri = \"https://g.org/cb\"\n{UPSTREAM}"),
                "[clever] has no client_id: ",
            ),
            (
                doc("", "", "", "") + "[[district]]\nname = \"D\"\ntoken_env = \"T\"\n",
                "[[district]] has no id: ",
            ),
        ];
        for (src, head) in cases {
            let p = one(&src, &[head]);
            assert_eq!(p.message.matches(" has no ").count(), 1, "{}", p.message);
        }
    }
}
