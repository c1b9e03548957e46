//! Request routing: which upstream serves (host, path), path normalisation for policy
//! decisions, public paths, and the path sent upstream. Pure functions only. How app servers
//! read a path differently from the gateway, and so which routes' rules apply to it, is in
//! `readings`.

pub mod readings;

use std::borrow::Cow;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use super::host::Host;
use crate::config::{Config, Upstream};
use readings::Case;

/// Why a request path is refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is not absolute")]
    NotAbsolute,
    #[error("the path has invalid percent-encoding")]
    BadEncoding,
    #[error("the path is not UTF-8 once decoded")]
    NotUtf8,
    #[error("the path contains a control character, '#' or '\\'")]
    ForbiddenChar,
    #[error("the path still holds an encoded '.', '/', '\\' or '%' after decoding")]
    DoubleEncoded,
    #[error("the path has a segment of only dots and spaces, such as '...' or '.. '")]
    DotLookalike,
    #[error("some app servers read the path as outside every route")]
    OutsideRoutes,
}

/// A request path made safe to decide on: decoded once, dot segments (including `..;x`)
/// resolved, empty segments merged. Borrows the raw path when that already is all of this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath<'a> {
    /// Decoded, resolved path, e.g. `/admin/report`.
    pub decoded: Cow<'a, str>,
    /// Whether the raw path differs structurally (dot or empty segments): then the
    /// re-encoded normalised path is what goes upstream, never the raw one.
    pub rewritten: bool,
}

/// Characters re-encoded when a normalised path is sent upstream.
const PATH_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'%')
    .add(b'\\');

/// Normalises a raw request path (no query) per the spec: decode once, refuse what is still
/// encoded after that, resolve `.`/`..` segments (also `..;param`), merge `//`.
pub fn normalize_path(raw: &str) -> Result<NormalizedPath<'_>, PathError> {
    if is_normal(raw) {
        return Ok(NormalizedPath {
            decoded: Cow::Borrowed(raw),
            rewritten: false,
        });
    }
    normalize_slow(raw)
}

/// Whether `raw` is its own normalised form: absolute, visible ASCII without `%`, `#` or `\`
/// (nothing to decode or refuse), no `.` or `..` segment (`;params` included) nor one of only
/// dots (refused by the slow path), and no empty segment but the last. Most paths are; they are decided on without a copy.
fn is_normal(raw: &str) -> bool {
    let b = raw.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    if b.iter()
        .any(|&c| !c.is_ascii_graphic() || c == b'%' || c == b'#' || c == b'\\')
    {
        return false;
    }
    let segments = raw[1..].split('/');
    let last = raw[1..].matches('/').count();
    segments.enumerate().all(|(i, seg)| {
        let bare = seg.split(';').next().unwrap_or("");
        bare != "." && bare != ".." && !is_dot_lookalike(bare) && (i == last || !seg.is_empty())
    })
}

fn normalize_slow(raw: &str) -> Result<NormalizedPath<'_>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if raw
        .bytes()
        .any(|b| b < 0x20 || b == 0x7f || b == b'#' || b == b'\\')
    {
        return Err(PathError::ForbiddenChar);
    }
    check_percent_encoding(raw)?;
    let lower = raw.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return Err(PathError::DoubleEncoded);
    }
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| PathError::NotUtf8)?;
    if decoded.chars().any(|c| c.is_control() || c == '\\') {
        return Err(PathError::ForbiddenChar);
    }
    let dl = decoded.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "%25"].iter().any(|e| dl.contains(e)) {
        return Err(PathError::DoubleEncoded);
    }
    let (out, rewritten) = resolve_segments(&decoded)?;
    Ok(NormalizedPath {
        decoded: Cow::Owned(out),
        rewritten,
    })
}

/// Resolves the dot segments (`.`, `..`, also `..;param`) and merges the empty segments of an
/// absolute decoded path; refuses a segment only some servers read as `..`. Also says whether
/// anything was resolved or merged.
fn resolve_segments(decoded: &str) -> Result<(String, bool), PathError> {
    let mut segments: Vec<&str> = Vec::new();
    let mut rewritten = false;
    let parts: Vec<&str> = decoded[1..].split('/').collect();
    let last = parts.len() - 1;
    for (i, seg) in parts.iter().enumerate() {
        let bare = seg.split(';').next().unwrap_or("");
        if bare == "." {
            rewritten = true;
        } else if is_dot_lookalike(bare) {
            return Err(PathError::DotLookalike);
        } else if bare == ".." {
            rewritten = true;
            segments.pop();
        } else if seg.is_empty() && i != last {
            rewritten = true;
        } else {
            segments.push(seg);
        }
    }
    // A trailing dot segment means the result is a directory: keep its trailing slash.
    let trailing_dir = {
        let bare = parts[last].split(';').next().unwrap_or("");
        (bare == "." || bare == "..") && !segments.is_empty()
    };
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing_dir {
        out.push('/');
    }
    Ok((out, rewritten))
}

/// A segment that is not `.` or `..` but that some servers read as one: Windows (IIS, and any
/// app that maps paths to files there) drops trailing dots and spaces from a name, so `.. `,
/// `..%20` and `...` can climb out of a public directory after the gateway has let them in.
/// No real page has such a name: refused.
fn is_dot_lookalike(segment: &str) -> bool {
    segment.len() >= 2
        && segment != ".."
        && segment.starts_with('.')
        && segment.bytes().all(|b| b == b'.' || b == b' ')
}

fn check_percent_encoding(raw: &str) -> Result<(), PathError> {
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok = i + 2 < b.len()
                && b[i + 1].is_ascii_hexdigit()
                && b.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit());
            if !ok {
                return Err(PathError::BadEncoding);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Whether `path` lies under `prefix` on whole segments (`/staff` covers `/staff/x`, not
/// `/staffing`). `prefix` is normalised (no trailing `/` unless it is `/`).
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || (path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/')))
}

/// The upstream for a request: upstreams whose `host` equals the request host (case-insensitive,
/// port and one trailing dot ignored) first, then those without `host`; longest `path_prefix`
/// wins in each group.
pub fn route(cfg: &Config, host: Option<Host<'_>>, path: &str) -> Option<usize> {
    route_to(cfg, host.map(|h| h.route_name()), path)
}

/// `route` for a host name already made what routes match ([`Host::route_name`]).
fn route_to(cfg: &Config, host: Option<&str>, path: &str) -> Option<usize> {
    let best = |want_host: bool| {
        cfg.upstreams
            .iter()
            .enumerate()
            .filter(|(_, u)| host_group(u, host, want_host))
            .filter(|(_, u)| prefix_matches(&u.path_prefix, path))
            .max_by_key(|(_, u)| u.path_prefix.len())
            .map(|(i, _)| i)
    };
    best(true).or_else(|| best(false))
}

/// Whether upstream `u` is in the group being tried: the request's host's upstreams
/// (`want_host`) or the ones without `host`.
fn host_group(u: &Upstream, host: Option<&str>, want_host: bool) -> bool {
    match (&u.host, host) {
        (Some(h), Some(req)) if want_host => h.eq_ignore_ascii_case(req),
        (None, _) => !want_host,
        _ => false,
    }
}

/// As `route_to`, comparing prefixes as `case` says, calling `each` for every upstream of the
/// longest matching prefix (compared without case, `/Staff` and `/staff` may both be the
/// longest). Whether any matched.
fn routes_as(
    cfg: &Config,
    host: Option<&str>,
    path: &str,
    case: Case,
    mut each: impl FnMut(usize),
) -> bool {
    for want_host in [true, false] {
        let matches = |u: &Upstream| {
            host_group(u, host, want_host) && readings::under(&u.path_prefix, path, case)
        };
        // (prefix length, first upstream with it); `tied`: another has the same length.
        let mut best: Option<(usize, usize)> = None;
        let mut tied = false;
        for (i, u) in cfg.upstreams.iter().enumerate() {
            if !matches(u) {
                continue;
            }
            let len = u.path_prefix.len();
            match best {
                Some((l, _)) if len < l => {}
                Some((l, _)) if len == l => tied = true,
                _ => {
                    best = Some((len, i));
                    tied = false;
                }
            }
        }
        let Some((len, first)) = best else {
            continue;
        };
        if tied {
            for (i, u) in cfg.upstreams.iter().enumerate() {
                if u.path_prefix.len() == len && matches(u) {
                    each(i);
                }
            }
        } else {
            each(first);
        }
        return true;
    }
    false
}

/// Where a request goes and whose rules apply to it, from every reading of its path that
/// `readings` models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The route of the path as it is: the upstream the request is forwarded to.
    pub upstream: usize,
    /// The other upstreams whose route some app server's reading of the path falls under. A
    /// signed-in user must pass their policies too. Empty for ordinary paths.
    pub also: Vec<usize>,
    /// Every reading lands on a public path of its route: forwarded without a session.
    pub public: bool,
}

impl Placement {
    /// Counts one reading: `read` (the path as read) falls under upstream `u`'s route.
    fn add(&mut self, cfg: &Config, u: usize, read: &str) {
        if self.public && !public_path(&cfg.upstreams[u], read) {
            self.public = false;
        }
        if u != self.upstream && !self.also.contains(&u) {
            self.also.push(u);
        }
    }
}

/// Routes a normalised path under every reading of `readings`: `Ok(None)` when the path as it
/// is has no route (404); `Err` when some reading makes a path the gateway refuses, or reads
/// it outside every route (400).
///
/// The rule: the request goes to the route of the path as it is; a signed-in user must pass
/// the policy of every route that any reading (any combination of NFKC, dropped `;params`,
/// dropped trailing dots and spaces, compared with or without case) places the path under;
/// and the request is public only if every reading is on a public path of its route
/// (public paths compared with case).
pub fn place(
    cfg: &Config,
    host: Option<Host<'_>>,
    norm: &NormalizedPath<'_>,
) -> Result<Option<Placement>, PathError> {
    let path: &str = &norm.decoded;
    let host = host.map(|h| h.route_name());
    let Some(upstream) = route_to(cfg, host, path) else {
        return Ok(None);
    };
    let mut placement = Placement {
        upstream,
        also: Vec::new(),
        public: public_path(&cfg.upstreams[upstream], path),
    };
    if readings::reads_as_itself(path) {
        // Every reading is the path itself: only comparing prefixes without case can differ.
        routes_as(cfg, host, path, Case::Insensitive, |u| {
            placement.add(cfg, u, path)
        });
    } else {
        place_every_reading(cfg, host, path, &mut placement)?;
    }
    Ok(Some(placement))
}

/// Adds every reading of `path` to `placement` (`place` without its shortcut for paths that
/// read as themselves).
fn place_every_reading(
    cfg: &Config,
    host: Option<&str>,
    path: &str,
    placement: &mut Placement,
) -> Result<(), PathError> {
    for read in readings::distinct_readings(path)? {
        for case in [Case::Sensitive, Case::Insensitive] {
            if !routes_as(cfg, host, &read, case, |u| placement.add(cfg, u, &read)) {
                return Err(PathError::OutsideRoutes);
            }
        }
    }
    Ok(())
}

/// Whether the normalised path is one of the upstream's public paths, as it is (the gateway's
/// decision also asks every reading: `place`).
pub fn is_public(upstream: &Upstream, path: &NormalizedPath<'_>) -> bool {
    public_path(upstream, &path.decoded)
}

fn public_path(upstream: &Upstream, path: &str) -> bool {
    upstream.public_paths.iter().any(|p| p.matches(path))
}

/// The path-and-query sent upstream: the raw path unless normalisation changed its
/// structure, the route prefix removed with `strip_path_prefix`, the URL's base path in front.
pub fn upstream_path<'a>(
    upstream: &Upstream,
    raw_path: &'a str,
    norm: &NormalizedPath<'_>,
    query: Option<&str>,
) -> Cow<'a, str> {
    let path: Cow<'a, str> = if norm.rewritten {
        Cow::Owned(utf8_percent_encode(&norm.decoded, PATH_ENCODE).to_string())
    } else {
        Cow::Borrowed(raw_path)
    };
    let mut path = path;
    if strips_prefix(upstream) {
        // The prefix matched on the decoded path; strip the same number of segments.
        let n = upstream.path_prefix.matches('/').count();
        let rest = skip_segments(&path, n).to_string();
        path = Cow::Owned(if rest.is_empty() { "/".into() } else { rest });
    }
    let base = &upstream.url.base_path;
    if base.is_empty() && query.is_none() {
        return path;
    }
    let mut out = String::with_capacity(base.len() + path.len() + 1);
    out.push_str(base);
    if !(base.ends_with('/') && path.starts_with('/')) {
        out.push_str(&path);
    } else {
        out.push_str(&path[1..]);
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Cow::Owned(out)
}

/// Whether the upstream's route prefix is removed from the path sent to it.
pub fn strips_prefix(upstream: &Upstream) -> bool {
    upstream.strip_path_prefix && upstream.path_prefix != "/"
}

/// Drops the first `n` segments of an absolute path (`/a/b/c`, 1 → `/b/c`).
fn skip_segments(path: &str, n: usize) -> &str {
    let mut idx = 0;
    for _ in 0..n {
        match path[idx + 1..].find('/') {
            Some(p) => idx = idx + 1 + p,
            None => return "",
        }
    }
    &path[idx..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> String {
        normalize_path(p).unwrap().decoded.into_owned()
    }

    #[test]
    fn prefix_matches_whole_segments_only() {
        assert!(prefix_matches("/staff", "/staff"));
        assert!(prefix_matches("/staff", "/staff/x"));
        assert!(!prefix_matches("/staff", "/staffing"));
        assert!(prefix_matches("/", "/anything"));
    }

    #[test]
    fn normalize_resolves_dot_segments() {
        assert_eq!(norm("/public/../admin"), "/admin");
        assert_eq!(norm("/a/./b"), "/a/b");
        assert_eq!(norm("/../../etc"), "/etc");
        assert_eq!(norm("/a/b/.."), "/a/");
        assert_eq!(norm("/"), "/");
    }

    #[test]
    fn normalize_encoded_dots_decoded_once_then_resolved() {
        assert_eq!(norm("/public/%2e%2e/admin"), "/admin");
        assert_eq!(norm("/static/..;/admin"), "/admin");
    }

    #[test]
    fn normalize_plain_paths_borrowed_unchanged() {
        for p in [
            "/",
            "/a",
            "/a/b/",
            "/grades/2026/term1",
            "/a;x/b",
            "/a.b/..c/.d",
            "/~u/x-y_z",
        ] {
            let n = normalize_path(p).unwrap();
            assert!(matches!(n.decoded, Cow::Borrowed(_)), "{p}");
            assert_eq!(n.decoded, p);
            assert!(!n.rewritten);
        }
    }

    #[test]
    fn normalize_fast_path_agrees_with_full_normalisation() {
        for p in [
            "/",
            "//",
            "/a",
            "/a/",
            "/a//b",
            "/./a",
            "/a/.",
            "/a/..",
            "/a/..;x/b",
            "/a/.;/b",
            "/a;b",
            "/.a",
            "/..a",
            "/a.",
            "/a/b/c/",
            "/a b",
            "/a%20b",
            "/é",
            "/a\\b",
            "a",
            "",
        ] {
            let slow = normalize_slow(p).map(|n| (n.decoded.into_owned(), n.rewritten));
            let fast = normalize_path(p).map(|n| (n.decoded.into_owned(), n.rewritten));
            assert_eq!(fast, slow, "{p:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn normalize_fast_path_agrees_on_generated_paths(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(String::new()),
                    proptest::strategy::Just(".".to_string()),
                    proptest::strategy::Just("..".to_string()),
                    proptest::strategy::Just("..;x".to_string()),
                    "[a-z.;%2eE~ -]{1,4}",
                ],
                0..6,
            ),
        ) {
            let p = format!("/{}", pieces.join("/"));
            let slow = normalize_slow(&p).map(|n| (n.decoded.into_owned(), n.rewritten));
            let fast = normalize_path(&p).map(|n| (n.decoded.into_owned(), n.rewritten));
            proptest::prop_assert_eq!(fast, slow, "{:?}", p);
        }
    }

    #[test]
    fn normalize_merges_empty_segments() {
        let n = normalize_path("//admin//x").unwrap();
        assert_eq!(n.decoded, "/admin/x");
        assert!(n.rewritten);
        assert!(!normalize_path("/admin/x/").unwrap().rewritten);
    }

    #[test]
    fn normalize_rejects_double_encoding_and_encoded_slashes() {
        for p in ["/%252e%252e/admin", "/a%2fb", "/a%5Cb", "/a%2525"] {
            assert_eq!(normalize_path(p), Err(PathError::DoubleEncoded), "{p}");
        }
    }

    #[test]
    fn normalize_rejects_segments_windows_reads_as_dot_dot() {
        for p in [
            "/public/..%20/admin",
            "/public/.. /admin",
            "/public/.../admin",
            "/public/....",
            "/public/.%20/x",
            "/public/..%20;x/admin",
        ] {
            assert_eq!(normalize_path(p), Err(PathError::DotLookalike), "{p}");
        }
        // Names that merely contain or start with dots are pages like any other.
        for p in [
            "/public/.well-known/x",
            "/public/a..b",
            "/public/..x",
            "/public/v1.2",
        ] {
            assert!(normalize_path(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn normalize_rejects_bad_encoding_and_controls() {
        assert_eq!(normalize_path("/a%zz"), Err(PathError::BadEncoding));
        assert_eq!(normalize_path("/a%2"), Err(PathError::BadEncoding));
        assert_eq!(normalize_path("/a%0a"), Err(PathError::ForbiddenChar));
        assert_eq!(normalize_path("/a\\b"), Err(PathError::ForbiddenChar));
        assert_eq!(normalize_path("/a#b"), Err(PathError::ForbiddenChar));
        assert_eq!(normalize_path("/%ff"), Err(PathError::NotUtf8));
        assert_eq!(normalize_path("a"), Err(PathError::NotAbsolute));
    }

    fn config(upstreams: &str) -> Config {
        let text = format!(
            "[clever]\nclient_id = \"4c63c1cf623dce82caac\"\nclient_secret_env = \"X\"\nredirect_uri = \"https://gw.example.org/cb\"\n{upstreams}"
        );
        crate::config::parse_str(&text, "t.toml").unwrap()
    }

    fn up(name: &str, extra: &str) -> String {
        format!("[[upstream]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:9000/base\"\n{extra}\n")
    }

    fn routed(cfg: &Config, host: Option<&str>, path: &str) -> Option<String> {
        route(cfg, host.map(Host::parse), path).map(|i| cfg.upstreams[i].name.clone())
    }

    #[test]
    fn route_longest_prefix_wins_on_whole_segments() {
        let cfg = config(&format!(
            "{}{}{}",
            up("root", ""),
            up("staff", "path_prefix = \"/staff\""),
            up("staff-hr", "path_prefix = \"/staff/hr\"")
        ));
        assert_eq!(
            routed(&cfg, None, "/staff/hr/x").as_deref(),
            Some("staff-hr")
        );
        assert_eq!(routed(&cfg, None, "/staff/x").as_deref(), Some("staff"));
        assert_eq!(routed(&cfg, None, "/staff").as_deref(), Some("staff"));
        assert_eq!(routed(&cfg, None, "/staffing").as_deref(), Some("root"));
    }

    #[test]
    fn route_host_upstreams_first_then_any_host() {
        let cfg = config(&format!(
            "{}{}",
            up("any", "path_prefix = \"/app\""),
            up("hr", "host = \"hr.example.org\"")
        ));
        assert_eq!(
            routed(&cfg, Some("HR.example.org:8443"), "/app").as_deref(),
            Some("hr")
        );
        assert_eq!(
            routed(&cfg, Some("other.example.org"), "/app").as_deref(),
            Some("any")
        );
        assert_eq!(routed(&cfg, Some("other.example.org"), "/"), None);
        assert_eq!(routed(&cfg, None, "/x"), None);
    }

    #[test]
    fn upstream_path_strip_prefix_and_base_path() {
        let cfg = config(&up(
            "lib",
            "path_prefix = \"/library\"\nstrip_path_prefix = true",
        ));
        let u = &cfg.upstreams[0];
        let n = normalize_path("/library/books/1").unwrap();
        assert_eq!(
            upstream_path(u, "/library/books/1", &n, Some("q=1")),
            "/base/books/1?q=1"
        );
        let n = normalize_path("/library").unwrap();
        assert_eq!(upstream_path(u, "/library", &n, None), "/base/");
    }

    #[test]
    fn upstream_path_rewritten_path_is_normalized_and_reencoded() {
        let cfg = config(&up("root", ""));
        let u = &cfg.upstreams[0];
        let n = normalize_path("/a/../b%20c//d").unwrap();
        assert_eq!(
            upstream_path(u, "/a/../b%20c//d", &n, None),
            "/base/b%20c/d"
        );
    }

    #[test]
    fn is_public_matches_normalized_path_only() {
        let cfg = config(&up(
            "root",
            "public_paths = [\"/static/\", \"/favicon.ico\"]",
        ));
        let u = &cfg.upstreams[0];
        let public = |p: &str| is_public(u, &normalize_path(p).unwrap());
        assert!(public("/static/app.css"));
        assert!(public("/static"));
        assert!(public("/favicon.ico"));
        assert!(!public("/favicon.ico/x"));
        assert!(!public("/static/../admin"));
        assert!(!public("/staticky"));
    }

    #[test]
    fn skip_segments_counts_segments() {
        assert_eq!(skip_segments("/a/b/c", 1), "/b/c");
        assert_eq!(skip_segments("/a", 1), "");
        assert_eq!(skip_segments("/a/", 1), "/");
    }

    /// The demo's layout: `/` open to everyone signed in (with a public `/public/`), `/staff`
    /// for teachers, both the same app.
    fn demo_layout() -> Config {
        config(&format!(
            "{}{}",
            up("root", "public_paths = [\"/public/\"]"),
            up(
                "staff",
                "path_prefix = \"/staff\"\nallow_user_types = [\"teacher\"]"
            )
        ))
    }

    /// `place` for a raw request path (`Err` also for what `normalize_path` refuses).
    fn placed(cfg: &Config, host: Option<&str>, raw: &str) -> Result<Placement, PathError> {
        let n = normalize_path(raw)?;
        place(cfg, host.map(Host::parse), &n).map(|p| p.expect("routed"))
    }

    /// The upstreams whose rules apply to `p`: its route, then the others.
    fn applying(p: &Placement) -> Vec<usize> {
        std::iter::once(p.upstream).chain(p.also.clone()).collect()
    }

    #[test]
    fn place_issue_variants_of_staff_fall_under_staff_or_are_refused() {
        let cfg = demo_layout();
        for raw in [
            "/STAFF/x",
            "/Staff/x",
            "/staff;x/x",
            "/staff;jsessionid=1/x",
            "/staff./x",
            "/staff%20/x",
            "/staff%2e/x",
            "/staff%2E%2e%20/x",
            "/%EF%BD%93taff/x",
            "/%C5%BFtaff/x",
            "/public/%EF%BC%8E%EF%BC%8E/staff/x",
            "/public/%EF%BC%8E%EF%BC%8E%EF%BC%8Fstaff/x",
            "/x/%E2%80%A5/staff/x",
            "/STAFF;x./x",
            "/staff",
            "/STAFF",
        ] {
            match placed(&cfg, None, raw) {
                Ok(p) => {
                    assert!(applying(&p).contains(&1), "{raw}: {p:?}");
                    assert!(!p.public, "{raw}: {p:?}");
                }
                Err(e) => assert_ne!(e, PathError::NotAbsolute, "{raw}"),
            }
        }
    }

    #[test]
    fn place_ordinary_paths_have_one_route() {
        let cfg = demo_layout();
        for (raw, upstream, public) in [
            ("/", 0, false),
            ("/grades/Report.aspx", 0, false),
            ("/Grades/2026;v=1/x", 0, false),
            ("/staffing/x", 0, false),
            ("/staff/x", 1, false),
            ("/staff/X.", 1, false),
            ("/public/app.css", 0, true),
            ("/public/a/%EF%BC%8E%EF%BC%8E/b", 0, true),
            ("/caf%C3%A9/x", 0, false),
        ] {
            let p = placed(&cfg, None, raw).unwrap();
            assert_eq!(
                p,
                Placement {
                    upstream,
                    also: vec![],
                    public
                },
                "{raw}"
            );
        }
    }

    #[test]
    fn place_public_path_is_public_only_under_every_reading() {
        let cfg = demo_layout();
        for raw in [
            // Full-width dots and slashes climb out under NFKC.
            "/public/%EF%BC%8E%EF%BC%8E/x",
            "/public/%EF%BC%8E%EF%BC%8E%EF%BC%8Fx",
            "/public/a/%EF%BC%8E%EF%BC%8E/%EF%BC%8E%EF%BC%8E/x",
            "/public/%E2%80%A5/x",
            // Not public as it is, public to a case-insensitive or Windows server.
            "/PUBLIC/x",
            "/public./x",
            "/public;x/x",
        ] {
            let p = placed(&cfg, None, raw).unwrap();
            assert!(!p.public, "{raw}: {p:?}");
        }
    }

    #[test]
    fn place_refuses_what_a_reading_makes_unsafe_or_unrouted() {
        let cfg = demo_layout();
        for (raw, why) in [
            (
                "/public/%EF%BC%8E%EF%BC%8E%EF%BC%8E/x",
                PathError::DotLookalike,
            ),
            ("/public/%20../x", PathError::DotLookalike),
            ("/public/%EF%BC%BCx", PathError::ForbiddenChar),
            ("/public/%EF%BC%85%EF%BC%92e/x", PathError::DoubleEncoded),
        ] {
            assert_eq!(placed(&cfg, None, raw), Err(why), "{raw}");
        }
        // With no route at `/`, a path an NFKC server reads outside `/app` is refused.
        let cfg = config(&up("app", "path_prefix = \"/app\""));
        assert_eq!(
            placed(&cfg, None, "/app/%EF%BC%8E%EF%BC%8E/x"),
            Err(PathError::OutsideRoutes)
        );
        assert_eq!(placed(&cfg, None, "/app/x").unwrap().upstream, 0);
    }

    #[test]
    fn place_prefixes_equal_without_case_all_apply() {
        let cfg = config(&format!(
            "{}{}{}",
            up("root", ""),
            up("open", "path_prefix = \"/STAFF\""),
            up(
                "staff",
                "path_prefix = \"/staff\"\nallow_user_types = [\"teacher\"]"
            )
        ));
        let p = placed(&cfg, None, "/STAFF/x").unwrap();
        assert_eq!((p.upstream, p.also), (1, vec![2]));
        let p = placed(&cfg, None, "/Staff/x").unwrap();
        assert_eq!(p.upstream, 0);
        let mut also = p.also;
        also.sort();
        assert_eq!(also, vec![1, 2]);
    }

    #[test]
    fn place_more_open_longer_route_wins_under_its_reading_too() {
        // `/staff/handbook` is open inside the teachers' `/staff`: read without case, a path
        // under it is under the open route, as it is for the literal path.
        let cfg = config(&format!(
            "{}{}{}",
            up("root", ""),
            up(
                "staff",
                "path_prefix = \"/staff\"\nallow_user_types = [\"teacher\"]"
            ),
            up("handbook", "path_prefix = \"/staff/handbook\"")
        ));
        let p = placed(&cfg, None, "/STAFF/handbook/x").unwrap();
        assert_eq!((p.upstream, p.also), (0, vec![2]));
    }

    #[test]
    fn route_host_ignores_one_trailing_dot() {
        let cfg = config(&format!(
            "{}{}",
            up("any", ""),
            up("hr", "host = \"hr.example.org\"")
        ));
        for host in ["hr.example.org", "hr.example.org.", "HR.Example.org.:8443"] {
            assert_eq!(
                routed(&cfg, Some(host), "/x").as_deref(),
                Some("hr"),
                "{host}"
            );
        }
        assert_eq!(
            routed(&cfg, Some("hr.example.org.."), "/x").as_deref(),
            Some("any")
        );
    }

    /// A segment of a generated restricted prefix, rewritten the way one reading undoes.
    fn variant_segment(seg: &str, how: u8, at: usize) -> String {
        let enc = |c: char| -> String {
            let mut b = [0u8; 4];
            c.encode_utf8(&mut b)
                .bytes()
                .map(|x| format!("%{x:02X}"))
                .collect()
        };
        let i = at % seg.len();
        let (head, rest) = seg.split_at(i);
        let c = rest.chars().next().unwrap();
        let tail = &rest[c.len_utf8()..];
        match how % 10 {
            0 => seg.to_string(),
            1 => seg.to_ascii_uppercase(),
            2 => format!("{head}{}{tail}", c.to_ascii_uppercase()),
            3 => format!("{seg};jsessionid=1"),
            4 => format!("{seg}."),
            5 => format!("{seg}%20"),
            6 => format!("{seg}%2e%20."),
            // Full-width letter (NFKC folds it back).
            7 => {
                let wide = char::from_u32(0xFF41 + (c as u32 - 'a' as u32)).unwrap();
                format!("{head}{}{tail}", enc(wide))
            }
            // Letters only NFKC (`ſ`) or NFKC then case (`K`, the Kelvin sign) make ASCII.
            8 => match c {
                's' => format!("{head}{}{tail}", enc('\u{17F}')),
                'k' => format!("{head}{}{tail}", enc('\u{212A}')),
                _ => format!("{seg};x."),
            },
            _ => format!("{};x", seg.to_ascii_uppercase()),
        }
    }

    proptest::proptest! {
        /// For any set of restricted prefixes and any variant of a path under one of them that
        /// the model says an app server reads as that path, the gateway applies the rules of
        /// the path's route (its policy, never only a more open route's) or refuses it.
        #[test]
        fn place_variant_read_under_restricted_prefix_gets_its_rules_or_400(
            prefixes in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::sample::select(vec!["staff", "desk", "hr", "sk", "a"]), 1..3),
                1..4),
            target in 0usize..4,
            tail in proptest::collection::vec("[a-z]{1,4}", 0..3),
            hows in proptest::collection::vec(0u8..10, 2),
            ats in proptest::collection::vec(0usize..8, 2),
            climb in 0u8..4,
        ) {
            let mut text = up("root", "public_paths = [\"/public/\"]");
            let mut seen = Vec::new();
            for (i, segs) in prefixes.iter().enumerate() {
                let p = format!("/{}", segs.join("/"));
                if !seen.contains(&p) {
                    text.push_str(&up(
                        &format!("r{i}"),
                        &format!("path_prefix = \"{p}\"\nallow_user_types = [\"teacher\"]"),
                    ));
                    seen.push(p);
                }
            }
            let cfg = config(&text);
            let target = &prefixes[target % prefixes.len()];
            // The path an app server serves: under the target prefix.
            let read_as = format!("/{}", target.iter().copied()
                .chain(tail.iter().map(|t| t.as_str())).collect::<Vec<_>>().join("/"));
            let expected = route(&cfg, None, &read_as).unwrap();
            proptest::prop_assume!(expected != 0);
            // The variant the client sends.
            let mut segs: Vec<String> = target
                .iter()
                .enumerate()
                .map(|(i, s)| variant_segment(s, hows[i % 2], ats[i % 2]))
                .collect();
            segs.extend(tail.iter().cloned());
            let variant = match climb {
                0 => format!("/{}", segs.join("/")),
                1 => format!("/public/%EF%BC%8E%EF%BC%8E/{}", segs.join("/")),
                2 => format!("/public/%EF%BC%8E%EF%BC%8E%EF%BC%8F{}", segs.join("/")),
                _ => format!("/public/x/%EF%BC%8E%EF%BC%8E/%EF%BC%8E%EF%BC%8E/{}", segs.join("/")),
            };
            match placed(&cfg, None, &variant) {
                Ok(p) => {
                    proptest::prop_assert!(
                        applying(&p).contains(&expected),
                        "{} (read as {}): {:?} lacks {}", variant, read_as, p, expected
                    );
                    proptest::prop_assert!(!p.public, "{} is public: {:?}", variant, p);
                }
                Err(e) => proptest::prop_assert!(
                    matches!(e, PathError::DotLookalike | PathError::OutsideRoutes),
                    "{}: {:?}", variant, e
                ),
            }
        }

        /// The shortcut for paths that read as themselves decides as every reading does.
        #[test]
        fn place_shortcut_agrees_with_every_reading(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("staff".to_string()),
                    proptest::strategy::Just("STAFF".to_string()),
                    proptest::strategy::Just("public".to_string()),
                    "[a-zA-Z0-9._~-]{1,5}",
                ],
                0..5,
            ),
        ) {
            let cfg = demo_layout();
            let raw = format!("/{}", pieces.join("/"));
            let Ok(n) = normalize_path(&raw) else { return Ok(()) };
            let path: &str = &n.decoded;
            proptest::prop_assume!(readings::reads_as_itself(path));
            let fast = place(&cfg, None, &n).unwrap().unwrap();
            let mut slow = Placement {
                upstream: fast.upstream,
                also: vec![],
                public: public_path(&cfg.upstreams[fast.upstream], path),
            };
            place_every_reading(&cfg, None, path, &mut slow).unwrap();
            proptest::prop_assert_eq!(fast, slow, "{}", raw);
        }
    }
}
