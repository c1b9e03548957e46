//! Property tests (proptest) for every parser that sees network or file input (issue 7, item 1).
//!
//! Each target states its invariant, runs a bounded number of generated cases (override with
//! `PROPTEST_CASES=n` for long runs, see docs/fuzzing.md) and replays a seed corpus of known-bad
//! shapes as plain `#[test]`s.

use clever_gateway::auth::parse_callback_query;
use clever_gateway::auth::return_path::safe_return_path;
use clever_gateway::config::{parse_str, Config};
use clever_gateway::identity::canonical_header_name;
use clever_gateway::proxy::headers::spoofable;
use clever_gateway::routing::{is_public, normalize_path, upstream_path};
use clever_gateway::session::cookies::CookieJarSpec;
use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::percent_decode_str;
use proptest::prelude::*;

/// Cases per property: `PROPTEST_CASES` when set, else `default` (sized so the whole file runs
/// in a few seconds in a debug build).
fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// (a) safe_return_path: an accepted value never resolves off the site.

const SITE: &str = "https://gw.example.org/";

/// The invariant: anything `safe_return_path` returns, resolved against the site by a WHATWG
/// URL parser, as given and after one or two lenient decodings, stays on `gw.example.org`.
fn check_return_path(input: &str) {
    let Some(v) = safe_return_path(input) else {
        return;
    };
    assert_eq!(v, input, "the validator returns the input unchanged");
    let base = url::Url::parse(SITE).unwrap();
    let mut seen = v.clone();
    for round in 0..3 {
        let joined = base
            .join(&seen)
            .unwrap_or_else(|e| panic!("{input:?} (round {round}) does not resolve: {e}"));
        assert_eq!(
            joined.host_str(),
            Some("gw.example.org"),
            "{input:?} (decoded {round}x: {seen:?}) resolves to {joined}"
        );
        assert_eq!(joined.scheme(), "https", "{input:?} -> {joined}");
        assert!(
            joined.username().is_empty() && joined.password().is_none(),
            "{input:?} -> {joined}"
        );
        seen = percent_decode_str(&seen).decode_utf8_lossy().into_owned();
    }
}

/// Fragments an open-redirect payload is made of.
fn return_path_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_string()),
        Just("\\".to_string()),
        Just("%".to_string()),
        Just("%2f".to_string()),
        Just("%2F".to_string()),
        Just("%5c".to_string()),
        Just("%25".to_string()),
        Just("%09".to_string()),
        Just("%0a".to_string()),
        Just("%0d".to_string()),
        Just("%20".to_string()),
        Just("%e3%80%80".to_string()),
        Just("\t".to_string()),
        Just("\r\n".to_string()),
        Just("@".to_string()),
        Just(":".to_string()),
        Just(".".to_string()),
        Just("evil.example".to_string()),
        Just("https".to_string()),
        Just("\u{3000}".to_string()),
        Just("\u{ff0f}".to_string()),
        Just("\u{feff}".to_string()),
        "[0-9a-fA-F]{1,2}",
        "[a-z]{1,4}",
        any::<char>().prop_map(String::from),
    ]
}

fn return_path_input() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(return_path_piece(), 0..10).prop_map(|v| v.concat()),
        proptest::collection::vec(return_path_piece(), 0..10)
            .prop_map(|v| format!("/{}", v.concat())),
        ".{0,40}",
    ]
}

proptest! {
    #![proptest_config(cases(4000))]
    #[test]
    fn return_path_never_leaves_the_site(input in return_path_input()) {
        check_return_path(&input);
    }
}

#[test]
fn return_path_seed_corpus() {
    for s in [
        "/\\evil.example",
        "/\\\\evil.example",
        "/\\t/evil.example",
        "/\t/evil.example",
        "//evil.example",
        "///evil.example",
        "/%09/evil.example",
        "/%0a/evil.example",
        "/%0d/evil.example",
        "/%20/evil.example",
        "/%2F%2Fevil.example",
        "/%252F%252Fevil.example",
        "/%25252F%25252Fevil.example",
        "/%5Cevil.example",
        "/%5C%5Cevil.example",
        "/%e3%80%80/evil.example",
        "https://evil.example",
        "https://gw.example.org.evil.example/",
        "https://gw.example.org@evil.example/",
        "//gw.example.org.evil.example",
        "/@evil.example",
        "/:@evil.example",
        "https:evil.example",
        "javascript:alert(1)",
        "/ /evil.example",
        "/\u{3000}/evil.example",
        "/\u{ff0f}evil.example",
        "/.%2e/.%2e//evil.example",
        "/a/../../evil.example",
        "/..//evil.example",
        "/%2e%2e//evil.example",
        "/.//evil.example",
    ] {
        check_return_path(s);
    }
}

// ---------------------------------------------------------------------------------------------
// (b) spoofable(): every x-clever-* or configured-name equivalent is listed, nothing else.

const CONFIGURED: &[&str] = &["x-school-user", "remote-user", "x-role"];

fn check_spoofable(raw_names: &[String]) {
    let configured: Vec<String> = CONFIGURED.iter().map(|s| s.to_string()).collect();
    let mut map = HeaderMap::new();
    for n in raw_names {
        let Ok(name) = HeaderName::from_bytes(n.as_bytes()) else {
            continue;
        };
        map.append(name, HeaderValue::from_static("v"));
    }
    let listed = spoofable(&map, &configured);
    for name in map.keys() {
        let canon = canonical_header_name(name.as_str());
        let expected = canon.starts_with("x-clever-") || configured.contains(&canon);
        assert_eq!(
            listed.contains(name),
            expected,
            "{name}: expected spoofable = {expected}, listed {listed:?}"
        );
    }
    for l in &listed {
        assert!(map.contains_key(l), "{l} listed but not in the request");
    }
    let mut dedup = listed.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), listed.len(), "duplicates in {listed:?}");
}

/// A header name that is a case / `_`-`-` variant of a base name, possibly with a suffix.
fn header_name() -> impl Strategy<Value = String> {
    let base = prop_oneof![
        Just("x-clever-user-id"),
        Just("x-clever-user-type"),
        Just("x-clever-"),
        Just("x-clever"),
        Just("x-cleverx-id"),
        Just("x--clever-id"),
        Just("xclever-id"),
        Just("x-school-user"),
        Just("x-school-users"),
        Just("remote-user"),
        Just("remote-usr"),
        Just("x-role"),
        Just("x-forwarded-for"),
        Just("cookie"),
    ];
    (
        base,
        proptest::collection::vec(any::<(bool, bool)>(), 20),
        prop_oneof![Just(String::new()), "[a-zA-Z0-9_-]{1,6}"],
        "[a-zA-Z0-9_-]{1,20}",
        any::<bool>(),
    )
        .prop_map(|(base, flips, suffix, random, use_random)| {
            if use_random {
                return random;
            }
            let mut s: String = base
                .chars()
                .zip(flips.iter().cycle())
                .map(|(c, &(upper, swap))| match c {
                    '-' if swap => '_',
                    c if upper => c.to_ascii_uppercase(),
                    c => c,
                })
                .collect();
            s.push_str(&suffix);
            s
        })
}

proptest! {
    #![proptest_config(cases(3000))]
    #[test]
    fn spoofable_lists_exactly_the_identity_equivalents(
        names in proptest::collection::vec(header_name(), 1..12)
    ) {
        check_spoofable(&names);
    }
}

#[test]
fn spoofable_seed_corpus() {
    let names: Vec<String> = [
        "X-Clever-User-Id",
        "x-clever-user-id",
        "X_Clever_User_Id",
        "X-CLEVER-USER-TYPE",
        "X_clever-District_ID",
        "X-Clever-Anything",
        "x_clever_",
        "X-Clever",
        "X-Cleverly",
        "X-School-User",
        "X_School_User",
        "x_SCHOOL-user",
        "Remote_User",
        "X-Role",
        "X-Roles",
        "X-Forwarded-For",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    check_spoofable(&names);
}

// ---------------------------------------------------------------------------------------------
// (c) cookies: strip never forwards a gateway cookie and keeps every other pair byte for byte;
// read never panics.

fn jar() -> CookieJarSpec {
    CookieJarSpec {
        session: "clever_gateway".into(),
        login: "clever_gateway_login".into(),
        bounce: "clever_gateway_bounce".into(),
        secure: true,
        domain: None,
    }
}

fn ascii_trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &s[start..end.max(start)]
}

fn check_strip(raw: &[u8]) {
    let jar = jar();
    let ours = |name: &[u8]| {
        [&jar.session, &jar.login, &jar.bounce]
            .iter()
            .any(|n| n.as_bytes() == name)
    };
    let expected: Vec<&[u8]> = raw
        .split(|&b| b == b';')
        .map(ascii_trim)
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = match p.iter().position(|&b| b == b'=') {
                Some(i) => ascii_trim(&p[..i]),
                None => p,
            };
            // The reader trims Unicode whitespace around names too.
            let unicode = std::str::from_utf8(name).map(str::trim).unwrap_or("");
            !ours(name) && !ours(unicode.as_bytes())
        })
        .collect();
    let out = jar.strip(raw);
    match &out {
        None => assert!(expected.is_empty(), "{raw:?}: dropped {expected:?}"),
        Some(out) => assert_eq!(out, &expected.join(&b"; "[..]), "{raw:?}"),
    }
    // Whatever goes upstream, the gateway's own reader finds none of its cookies in it.
    if let Some(out) = out {
        let found = jar.read(std::iter::once(out.as_slice()));
        assert!(
            found.session.is_empty() && found.login.is_none() && !found.bounce,
            "{:?}: a gateway cookie survived strip(): {:?} in {:?}",
            String::from_utf8_lossy(raw),
            found,
            String::from_utf8_lossy(&out)
        );
    }
}

fn cookie_pair() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("clever_gateway".to_string()),
        Just("clever_gateway_login".to_string()),
        Just("clever_gateway_bounce".to_string()),
        Just("Clever_Gateway".to_string()),
        Just("clever_gateway_x".to_string()),
        Just("\"clever_gateway\"".to_string()),
        "[A-Za-z0-9_.-]{0,10}",
    ];
    let ws = prop_oneof![
        Just(""),
        Just(" "),
        Just("\t"),
        Just("  "),
        Just("\u{a0}"),
        Just("\u{3000}"),
        Just("\u{2028}")
    ];
    (
        ws.clone(),
        name,
        ws.clone(),
        prop_oneof![Just("="), Just(""), Just("==")],
        ws,
        "[A-Za-z0-9%=\" ._-]{0,12}",
    )
        .prop_map(|(w1, n, w2, eq, w3, v)| format!("{w1}{n}{w2}{eq}{w3}{v}"))
}

proptest! {
    #![proptest_config(cases(3000))]
    #[test]
    fn strip_forwards_no_gateway_cookie(
        pairs in proptest::collection::vec(cookie_pair(), 0..10),
        sep in prop_oneof![Just(";"), Just("; "), Just(";;"), Just(" ; ")],
    ) {
        check_strip(pairs.join(sep).as_bytes());
    }

    #[test]
    fn strip_and_read_survive_arbitrary_bytes(
        headers in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..4)
    ) {
        for h in &headers {
            check_strip(h);
        }
        let _ = jar().read(headers.iter().map(|h| h.as_slice()));
    }
}

/// `cookie_pairs` (the gateway's reader) reads exactly the pairs `cookie::Cookie::split_parse`
/// reads, which the reader used before; and `strip_cow` hands back the header itself exactly
/// when `strip` would return it unchanged.
fn check_pairs_and_strip_cow(text: &str) {
    let ours: Vec<(&str, &str)> = clever_gateway::session::cookies::cookie_pairs(text).collect();
    let theirs: Vec<(String, String)> = cookie::Cookie::split_parse(text)
        .flatten()
        .map(|c| (c.name().to_string(), c.value().to_string()))
        .collect();
    let ours_owned: Vec<(String, String)> = ours
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(ours_owned, theirs, "{text:?}");
    let raw = text.as_bytes();
    let cow = jar().strip_cow(raw);
    let unchanged = jar().strip(raw).as_deref() == Some(raw);
    assert_eq!(
        matches!(cow, std::borrow::Cow::Borrowed(b) if b.len() == raw.len() && !b.is_empty()),
        unchanged,
        "{text:?}"
    );
    assert_eq!(&*cow, jar().strip(raw).unwrap_or_default().as_slice());
}

fn cookie_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        cookie_pair(),
        Just(String::new()),
        Just(" ".to_string()),
        Just("\u{a0}".to_string()),
        "[ =a-z\u{2028}\u{3000}\t]{0,6}",
    ];
    (
        proptest::collection::vec(piece, 0..8),
        prop_oneof![Just(";"), Just("; "), Just(" ;"), Just(";\u{a0}")],
    )
        .prop_map(|(pieces, sep)| pieces.join(sep))
}

proptest! {
    #![proptest_config(cases(3000))]
    #[test]
    fn cookie_pairs_read_like_the_cookie_crate(text in cookie_text()) {
        check_pairs_and_strip_cow(&text);
    }

    #[test]
    fn cookie_pairs_total_on_arbitrary_strings(text in ".{0,80}") {
        check_pairs_and_strip_cow(&text);
    }
}

#[test]
fn cookie_seed_corpus() {
    let many = "a=b;".repeat(5000);
    let many_ours = "clever_gateway=x;".repeat(5000);
    for raw in [
        ";",
        "=",
        ";;;;",
        "====",
        "=;=;=",
        " ; = ; ",
        "clever_gateway",
        "clever_gateway=",
        " clever_gateway =x",
        "\tclever_gateway\t=\tx",
        "a=b; clever_gateway=s; c=d",
        "clever_gateway=s;clever_gateway_login=l;clever_gateway_bounce=1",
        "\u{a0}clever_gateway=s",
        "clever_gateway\u{a0}=s",
        "\u{3000}clever_gateway=s",
        "clever_gateway=\u{a0}",
        "\"clever_gateway\"=s",
        many.as_str(),
        many_ours.as_str(),
    ] {
        check_strip(raw.as_bytes());
        check_pairs_and_strip_cow(raw);
        let _ = jar().read(std::iter::once(raw.as_bytes()));
    }
    check_strip(b"\xff\xfe=\x00; clever_gateway=s");
}

// ---------------------------------------------------------------------------------------------
// (d) normalize_path: total, output is resolved, public means under /public/ upstream too.

fn public_config() -> Config {
    parse_str(
        "[clever]\nclient_id = \"4c63c1cf623dce82caac\"\nclient_secret_env = \"X\"\nredirect_uri = \"https://gw.example.org/cb\"\n[[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9000/\"\npublic_paths = [\"/public/\"]\n",
        "t.toml",
    )
    .unwrap()
}

fn check_normalize(cfg: &Config, raw: &str) {
    let Ok(n) = normalize_path(raw) else {
        return;
    };
    let d = &n.decoded;
    assert!(d.starts_with('/'), "{raw:?} -> {d:?}");
    assert!(!d.contains("//"), "{raw:?} -> {d:?}");
    for seg in d.split('/') {
        let bare = seg.split(';').next().unwrap_or("");
        assert!(
            bare != "." && bare != "..",
            "{raw:?} -> {d:?} keeps a dot segment"
        );
    }
    let up = &cfg.upstreams[0];
    if is_public(up, &n) {
        // What goes upstream, resolved and decoded as the app would, is under /public/.
        let sent = upstream_path(up, raw, &n, None).into_owned();
        let resolved = url::Url::parse("http://app.internal/")
            .unwrap()
            .join(&sent)
            .unwrap_or_else(|e| panic!("{raw:?}: upstream path {sent:?} does not resolve: {e}"));
        assert_eq!(
            resolved.host_str(),
            Some("app.internal"),
            "{raw:?} -> {sent:?}"
        );
        let path = percent_decode_str(resolved.path()).decode_utf8_lossy();
        assert!(
            path.starts_with("/public/") || path == "/public",
            "{raw:?} is public but goes upstream as {sent:?}, i.e. {path:?}"
        );
        for seg in sent.split('/') {
            let bare = seg.split(';').next().unwrap_or("");
            let bare = percent_decode_str(bare).decode_utf8_lossy();
            assert!(bare != ".." && bare != ".", "{raw:?} -> upstream {sent:?}");
        }
    }
}

fn path_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("%2e".to_string()),
        Just("%2E".to_string()),
        Just("%2f".to_string()),
        Just("%252e".to_string()),
        Just("%25".to_string()),
        Just("%".to_string()),
        Just("%5c".to_string()),
        Just("\\".to_string()),
        Just(";".to_string()),
        Just(";x".to_string()),
        Just("#".to_string()),
        Just("?".to_string()),
        Just("public".to_string()),
        Just("admin".to_string()),
        Just("%c3%a9".to_string()),
        Just("%ff".to_string()),
        Just("%00".to_string()),
        Just("\u{e9}".to_string()),
        "[0-9a-fA-F]{1,2}",
        any::<char>().prop_map(String::from),
    ]
}

proptest! {
    #![proptest_config(cases(4000))]
    #[test]
    fn normalize_path_resolves_and_public_stays_public(
        pieces in proptest::collection::vec(path_piece(), 0..14),
        prefix in prop_oneof![Just(""), Just("/"), Just("/public/"), Just("/public")],
    ) {
        // The gateway hands normalize_path the path without its query.
        let raw = format!("{prefix}{}", pieces.concat());
        let raw = raw.split('?').next().unwrap_or("");
        check_normalize(&public_config(), raw);
    }

    #[test]
    fn normalize_path_total_on_arbitrary_strings(raw in ".{0,60}") {
        let _ = normalize_path(&raw);
        let _ = normalize_path(&format!("/{raw}"));
    }
}

#[test]
fn normalize_path_seed_corpus() {
    let cfg = public_config();
    for raw in [
        "/public/../admin",
        "/public/..;x/admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/.%2e/admin",
        "/public/%252e%252e/admin",
        "/public/..%2fadmin",
        "/public/..%5cadmin",
        "/public/..\\admin",
        "//public/../admin",
        "/public//../admin",
        "/public/./../admin",
        "/public;x/../admin",
        "/public/x;/../../admin",
        "/public#/../admin",
        "/public/%23/../admin",
        "/public/..",
        "/public/.",
        "/public",
        "/publicx/a",
        "/x/..;/public/a",
        "/x/../public/a",
        "/public/\u{e9}/a",
        "/public/%c0%ae%c0%ae/admin",
        "/public/%ff/a",
        "/",
        "",
        "..",
        "/..",
        "/../..",
    ] {
        check_normalize(&cfg, raw);
    }
}

// ---------------------------------------------------------------------------------------------
// (e) parse_callback_query: total; refuses any invalid percent-encoding.

/// Independent statement of "valid percent-encoding": every `%` starts `%XX`, hex.
fn percent_ok(q: &str) -> bool {
    let chars: Vec<char> = q.chars().collect();
    chars.iter().enumerate().all(|(i, &c)| {
        c != '%'
            || (chars.get(i + 1).is_some_and(char::is_ascii_hexdigit)
                && chars.get(i + 2).is_some_and(char::is_ascii_hexdigit))
    })
}

fn check_callback(q: &str) {
    let r = parse_callback_query(Some(q));
    if !percent_ok(q) {
        assert!(
            r.is_err(),
            "{q:?} has invalid percent-encoding but parsed: {r:?}"
        );
    }
    if let Ok(p) = r {
        for v in [&p.code, &p.state, &p.error, &p.error_description]
            .into_iter()
            .flatten()
        {
            assert!(!v.contains('\u{fffd}'), "{q:?}: lossy value {v:?}");
        }
    }
}

fn query_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("code=".to_string()),
        Just("state=".to_string()),
        Just("error=".to_string()),
        Just("error_description=".to_string()),
        Just("&".to_string()),
        Just("=".to_string()),
        Just("%".to_string()),
        Just("%2".to_string()),
        Just("%zz".to_string()),
        Just("%ff".to_string()),
        Just("%c3%a9".to_string()),
        Just("%25".to_string()),
        Just("+".to_string()),
        "[0-9a-fA-F]{1,2}",
        "[a-z]{1,5}",
        any::<char>().prop_map(String::from),
    ]
}

proptest! {
    #![proptest_config(cases(4000))]
    #[test]
    fn callback_query_refuses_bad_percent_encoding(
        pieces in proptest::collection::vec(query_piece(), 0..14)
    ) {
        check_callback(&pieces.concat());
    }

    #[test]
    fn callback_query_total_on_arbitrary_strings(q in ".{0,80}") {
        check_callback(&q);
    }
}

#[test]
fn callback_seed_corpus() {
    for q in [
        "%",
        "%%",
        "%2",
        "code=%",
        "code=%g0",
        "code=%0g",
        "code=a%",
        "code=%ff",
        "code=%c3",
        "code=a&code=b",
        "state=%e9",
        "code=%\u{e9}9",
        "code=%1\u{e9}",
        "&&&",
        "===",
        "code=a&state=b&error=c&error_description=d",
    ] {
        check_callback(q);
    }
}

// ---------------------------------------------------------------------------------------------
// (f) config::parse_str: total on arbitrary and mutated valid TOML.

const VALID: &str = include_str!("../gateway.toml");

fn mutate(src: &str, edits: &[(usize, u8, char)]) -> String {
    let mut chars: Vec<char> = src.chars().collect();
    for &(pos, op, c) in edits {
        if chars.is_empty() {
            chars.push(c);
            continue;
        }
        let i = pos % chars.len();
        match op % 4 {
            0 => {
                chars.remove(i);
            }
            1 => chars.insert(i, c),
            2 => chars[i] = c,
            _ => {
                // Duplicate a slice: repeated keys and tables.
                let end = (i + 40).min(chars.len());
                let dup: Vec<char> = chars[i..end].to_vec();
                chars.splice(i..i, dup);
            }
        }
    }
    chars.into_iter().collect()
}

fn toml_char() -> impl Strategy<Value = char> {
    prop_oneof![
        Just('"'),
        Just('\''),
        Just('['),
        Just(']'),
        Just('='),
        Just('\n'),
        Just('#'),
        Just('.'),
        Just(','),
        Just('{'),
        Just('}'),
        Just('0'),
        Just('-'),
        Just('\\'),
        any::<char>(),
    ]
}

proptest! {
    #![proptest_config(cases(1500))]
    #[test]
    fn config_parse_total_on_mutated_valid_toml(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), toml_char()), 1..8)
    ) {
        let _ = parse_str(&mutate(VALID, &edits), "fuzz.toml");
    }

    #[test]
    fn config_parse_total_on_arbitrary_text(src in "(.|\n){0,200}") {
        let _ = parse_str(&src, "fuzz.toml");
    }
}

#[test]
fn config_seed_corpus() {
    assert!(parse_str(VALID, "gateway.toml").is_ok() || parse_str(VALID, "gateway.toml").is_err());
    for src in [
        "",
        "[",
        "[[upstream]]",
        "[[upstream]]\n[[upstream]]\n",
        "[clever]\nclient_id = 1\n",
        "[session]\nttl = \"-1s\"\n",
        "[session]\nttl = \"99999999999999999999y\"\n",
        "[upstream]\nname = \"x\"\n",
        "a = \"\\u{d800}\"",
        "x = 1e999999",
        "[[upstream]]\nname = \"a\"\nurl = \"http://[::1\"\n",
        "[[upstream]]\nname = \"a\"\nurl = \"http://a\"\npath_prefix = \"\"\npublic_paths = [\"\", \"*\", \"//\"]\n",
    ] {
        let _ = parse_str(src, "seed.toml");
    }
}
