//! Property tests (proptest) for every parser that sees network or file input (issue 7, item 1).
//!
//! Each target states its invariant, runs a bounded number of generated cases (override with
//! `PROPTEST_CASES=n` for long runs, see docs/fuzzing.md) and replays a seed corpus of known-bad
//! shapes as plain `#[test]`s.

use clever_gateway::config::parse_str;
use clever_gateway::gateway::routing::normalize_path;
use clever_gateway::testing::invariants::*;
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
    for s in seeds::RETURN_PATH.iter().copied() {
        check_return_path(s);
    }
}

// ---------------------------------------------------------------------------------------------
// (b) spoofable(): every x-clever-* or configured-name equivalent is listed, nothing else.

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
    let names: Vec<String> = seeds::SPOOFABLE.iter().map(|s| s.to_string()).collect();
    check_spoofable(&names);
}

// ---------------------------------------------------------------------------------------------
// (c) cookies: strip never forwards a gateway cookie and keeps every other pair byte for byte;
// read never panics.

fn cookie_pair() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("clever_gateway".to_string()),
        Just("clever_gateway_login".to_string()),
        Just("clever_gateway_bounce".to_string()),
        Just("Clever_Gateway".to_string()),
        Just("clever_gateway_x".to_string()),
        Just("\"clever_gateway\"".to_string()),
        Just("__Host-clever_gateway_login_abcdefghijkl".to_string()),
        Just("clever_gateway_login_abcdefghijkl".to_string()),
        Just("__secure-Clever_Gateway".to_string()),
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
        check_read(&headers.iter().map(|h| h.as_slice()).collect::<Vec<_>>());
    }

    #[test]
    fn read_agrees_with_the_cookie_crate(
        headers in proptest::collection::vec(cookie_text(), 1..3)
    ) {
        check_read(&headers.iter().map(|h| h.as_bytes()).collect::<Vec<_>>());
    }

    #[test]
    fn read_agrees_with_the_cookie_crate_on_arbitrary_strings(text in ".{0,80}") {
        check_read(&[text.as_bytes()]);
    }
}

/// `strip_cow` hands back the header itself exactly when `strip` would return it unchanged,
/// and otherwise what `strip` returns.
fn check_strip_cow(text: &str) {
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
    fn strip_cow_agrees_with_strip(text in cookie_text()) {
        check_strip_cow(&text);
    }

    #[test]
    fn strip_cow_agrees_with_strip_on_arbitrary_strings(text in ".{0,80}") {
        check_strip_cow(&text);
    }
}

#[test]
fn cookie_seed_corpus() {
    let many = "a=b;".repeat(5000);
    let many_ours = "clever_gateway=x;".repeat(5000);
    for raw in seeds::COOKIES
        .iter()
        .copied()
        .chain([many.as_str(), many_ours.as_str()])
    {
        check_strip(raw.as_bytes());
        check_strip_cow(raw);
        check_read(&[raw.as_bytes()]);
    }
    check_strip(b"\xff\xfe=\x00; clever_gateway=s");
}

// ---------------------------------------------------------------------------------------------
// (d) normalize_path: total, output is resolved, public means under /public/ upstream too.

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
        check_normalize(&public_config(), &format!("{prefix}{}", pieces.concat()));
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
    for raw in seeds::NORMALIZE_PATH.iter().copied() {
        check_normalize(&cfg, raw);
    }
}

// ---------------------------------------------------------------------------------------------
// (d2) path readings: every route an app server reads a path under has its rules applied, and
// a path forwarded without a session is public under every reading (issue 14).

/// Pieces of the variants app servers read differently from the gateway: case, `;params`,
/// trailing dots and spaces, full-width and compatibility characters (percent-encoded UTF-8).
fn variant_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_string()),
        Just("staff".to_string()),
        Just("STAFF".to_string()),
        Just("Staff".to_string()),
        Just("hr".to_string()),
        Just("HR".to_string()),
        Just("desk".to_string()),
        Just("lab".to_string()),
        Just("public".to_string()),
        Just("x".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just(";".to_string()),
        Just(";jsessionid=1".to_string()),
        Just("%20".to_string()),
        Just("%2e".to_string()),
        Just("%EF%BC%8E".to_string()),
        Just("%EF%BC%8F".to_string()),
        Just("%EF%BC%9B".to_string()),
        Just("%EF%BD%93".to_string()),
        Just("%EF%BC%B3".to_string()),
        Just("%C5%BF".to_string()),
        Just("%E2%84%AA".to_string()),
        Just("%E2%80%A5".to_string()),
        Just("%EF%BC%85".to_string()),
        Just("%EF%BC%BC".to_string()),
        "[a-zA-Z]{1,3}",
    ]
}

proptest! {
    #![proptest_config(cases(2000))]
    #[test]
    fn placement_applies_every_route_a_server_reads_the_path_under(
        pieces in proptest::collection::vec(variant_piece(), 0..10),
        prefix in prop_oneof![Just("/"), Just("/public/"), Just("/staff"), Just("/x/")],
    ) {
        check_placement(&routes_config(), &format!("{prefix}{}", pieces.concat()));
    }
}

#[test]
fn placement_seed_corpus() {
    let cfg = routes_config();
    for raw in seeds::PLACEMENT
        .iter()
        .chain(seeds::NORMALIZE_PATH)
        .copied()
    {
        check_placement(&cfg, raw);
    }
}

// ---------------------------------------------------------------------------------------------
// (e) parse_callback_query: total; refuses any invalid percent-encoding.

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
    for q in seeds::CALLBACK_QUERY.iter().copied() {
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
    assert!(
        parse_str(VALID, "gateway.toml").is_ok(),
        "the reference gateway.toml is valid"
    );
    for src in seeds::CONFIG.iter().copied() {
        let _ = parse_str(src, "seed.toml");
    }
}

// ---------------------------------------------------------------------------------------------
// (g) set_headers templates: any template over any record renders to a valid header value
// without CR, LF or NUL, or to nothing.

fn template_piece() -> impl Strategy<Value = String> {
    let field = prop::sample::select(
        clever_gateway::identity::fields::template_names().collect::<Vec<_>>(),
    );
    let filter = prop::sample::select(vec!["lower", "upper", "local", "domain", "nope", ""]);
    prop_oneof![
        (field.clone(), proptest::collection::vec(filter, 0..3)).prop_map(|(f, fs)| {
            let mut s = format!("{{{f}");
            for x in fs {
                s.push('|');
                s.push_str(x);
            }
            s.push('}');
            s
        }),
        field.prop_map(|f| format!("{{ {f} }}")),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("{{".to_string()),
        Just("}}".to_string()),
        Just("|".to_string()),
        Just("@".to_string()),
        Just(", ".to_string()),
        Just("\r\n".to_string()),
        Just("\0".to_string()),
        Just("UTF-8''".to_string()),
        any::<char>().prop_map(String::from),
        "[a-z ]{0,6}",
    ]
}

fn record_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("a@b@c.org".to_string()),
        Just("no-at-sign".to_string()),
        Just("Eve\r\nX-Clever-User-Id: 1".to_string()),
        Just("\0\u{7f}\t".to_string()),
        Just("José Ñúñez".to_string()),
        Just("  padded  ".to_string()),
        Just("ß".to_string()),
        Just("5d0a9e5d0958b3005c4e0001".to_string()),
        ".{0,24}",
    ]
}

proptest! {
    #![proptest_config(cases(3000))]
    #[test]
    fn any_template_over_any_record_is_a_header_value_or_nothing(
        pieces in proptest::collection::vec(template_piece(), 1..6),
        values in proptest::collection::vec(record_value(), 1..8),
        roles in any::<u8>(),
    ) {
        check_template(&pieces.concat(), &record_from(&values, roles));
    }

    #[test]
    fn template_parse_total_on_arbitrary_strings(text in ".{0,40}", values in proptest::collection::vec(".{0,12}", 1..4)) {
        check_template(&text, &record_from(&values, 0b11111));
    }
}

#[test]
fn template_seed_corpus() {
    let values: Vec<String> = ["Ana@Example.org", "\r\n", "José", ""]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for text in seeds::TEMPLATE.iter().copied() {
        for roles in [0, 1, 2, 0b11111] {
            check_template(text, &record_from(&values, roles));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (h) Clever's /users/{id}: any answer parses leniently into a record whose values render.

fn user_json() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        Just("null".to_string()),
        Just("7".to_string()),
        Just("1e999".to_string()),
        Just("true".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        ".{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    let key = prop::sample::select(vec![
        "sis_id",
        "student_number",
        "teacher_number",
        "staff_id",
        "state_id",
        "grade",
        "graduation_year",
        "title",
        "department",
        "school",
        "legacy_id",
        "email",
    ]);
    let role = prop::sample::select(vec![
        "student",
        "teacher",
        "staff",
        "district_admin",
        "contact",
        "school_admin",
        "parent",
    ]);
    let record = proptest::collection::vec((key, scalar.clone()), 0..6).prop_map(|kv| {
        let fields: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!(
            "{{{},\"credentials\":{{\"district_username\":\"u\"}},\"schools\":[\"s1\",\"a b\"]}}",
            fields.join(",")
        )
    });
    (
        proptest::collection::vec((role, prop_oneof![record, Just("null".to_string())]), 0..4),
        scalar.clone(),
        scalar,
    )
        .prop_map(|(roles, email, first)| {
            let roles: Vec<String> = roles.iter().map(|(r, v)| format!("\"{r}\":{v}")).collect();
            format!(
                "{{\"data\":{{\"id\":\"x\",\"email\":{email},\"name\":{{\"first\":{first},\"last\":\"L\"}},\"roles\":{{{}}}}}}}",
                roles.join(",")
            )
        })
}

proptest! {
    #![proptest_config(cases(2000))]
    #[test]
    fn users_answer_parses_into_renderable_values(body in user_json()) {
        check_user(body.as_bytes());
    }

    #[test]
    fn users_answer_parse_total_on_arbitrary_bytes(body in proptest::collection::vec(any::<u8>(), 0..64)) {
        check_user(&body);
    }
}

#[test]
fn user_seed_corpus() {
    for body in seeds::USER {
        check_user(body.as_bytes());
    }
}

/// Writes the seed corpora as files for the libFuzzer targets (`fuzz/seeds/<target>/`):
/// `cargo test --test properties -- --ignored write_fuzz_seed_files`.
#[test]
#[ignore = "writes fuzz/seeds/; run by hand when a seed list changes"]
fn write_fuzz_seed_files() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let spoofable_lines = seeds::SPOOFABLE.join("\n");
    for (target, list) in [
        ("return_path", seeds::RETURN_PATH.to_vec()),
        ("spoofable", vec![spoofable_lines.as_str()]),
        ("cookies", seeds::COOKIES.to_vec()),
        (
            "normalize_path",
            seeds::NORMALIZE_PATH
                .iter()
                .chain(seeds::PLACEMENT)
                .copied()
                .collect(),
        ),
        ("callback_query", seeds::CALLBACK_QUERY.to_vec()),
        ("template", seeds::TEMPLATE.to_vec()),
        ("users_answer", seeds::USER.to_vec()),
        (
            "config",
            [VALID].iter().chain(seeds::CONFIG).copied().collect(),
        ),
    ] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seed) in list.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
        }
    }
}
