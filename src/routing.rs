//! Request routing: which upstream serves (host, path), path normalisation for policy
//! decisions, public paths, and the path sent upstream. Pure functions only.

use std::borrow::Cow;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::config::{Config, Upstream};

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
    Ok(NormalizedPath {
        decoded: Cow::Owned(out),
        rewritten,
    })
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
/// port ignored) first, then those without `host`; longest `path_prefix` wins in each group.
pub fn route(cfg: &Config, host: Option<&str>, path: &str) -> Option<usize> {
    let host = host.map(strip_port);
    let best = |want_host: bool| {
        cfg.upstreams
            .iter()
            .enumerate()
            .filter(|(_, u)| match (&u.host, host) {
                (Some(h), Some(req)) if want_host => h.eq_ignore_ascii_case(req),
                (None, _) => !want_host,
                _ => false,
            })
            .filter(|(_, u)| prefix_matches(&u.path_prefix, path))
            .max_by_key(|(_, u)| u.path_prefix.len())
            .map(|(i, _)| i)
    };
    best(true).or_else(|| best(false))
}

/// `host[:port]` or `[v6]:port` → the host part.
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        .map(|(h, _)| h)
        .unwrap_or(host)
}

/// Whether the normalised path is one of the upstream's public paths.
pub fn is_public(upstream: &Upstream, path: &NormalizedPath<'_>) -> bool {
    upstream
        .public_paths
        .iter()
        .any(|p| p.matches(&path.decoded))
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

    #[test]
    fn strip_port_handles_v4_v6_and_names() {
        assert_eq!(strip_port("a.example.org:8080"), "a.example.org");
        assert_eq!(strip_port("a.example.org"), "a.example.org");
        assert_eq!(strip_port("[::1]:80"), "::1");
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
        route(cfg, host, path).map(|i| cfg.upstreams[i].name.clone())
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
}
