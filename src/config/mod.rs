//! Configuration: loading `gateway.toml`, reporting every problem in it with `file:line:col`,
//! reading secrets (client secret, district-app tokens), and describing the routes for
//! `clever-gateway check`.
//!
//! Layers: [`file`] is the file's schema (serde, spans) with its leaves read into their types
//! ([`leaf`]), [`validate`] applies the rules across keys and builds the typed [`model`] the rest
//! of the gateway uses.

mod file;
mod leaf;
pub mod model;
mod validate;

pub use model::*;

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: String,
    /// 1-based; 0 only when the problem concerns the whole file (it cannot be read).
    pub line: usize,
    /// 1-based, counted in characters; 0 together with `line`.
    pub col: usize,
    /// `what is wrong: what is allowed`, on one line.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.message
            )
        }
    }
}

/// Every problem found in a config file, in file order. Displays one problem per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", lines(.problems))]
pub struct ConfigErrors {
    pub problems: Vec<ConfigProblem>,
}

fn lines(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why the client secret could not be read. Names the variable or file, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {var} is not set")]
    EnvUnset { var: String },
    #[error("environment variable {var} is not valid UTF-8")]
    EnvNotUnicode { var: String },
    #[error("environment variable {var} is empty")]
    EnvEmpty { var: String },
    #[error("cannot read secret file {}: {source}", .path.display())]
    FileUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret file {} is not valid UTF-8", .path.display())]
    FileNotUnicode { path: PathBuf },
    #[error("secret file {} is empty", .path.display())]
    FileEmpty { path: PathBuf },
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ConfigErrors {
        problems: vec![ConfigProblem {
            file: name.clone(),
            line: 0,
            col: 0,
            message: format!("cannot read the config file: {e}"),
        }],
    })?;
    match std::str::from_utf8(&bytes) {
        Ok(src) => parse_str(src, &name),
        Err(e) => {
            // Point at the first bad byte: the text before it is valid.
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default();
            let mut sink = file::Sink::new(&name, valid);
            sink.at(
                valid.len()..valid.len(),
                "the file is not valid UTF-8: expected UTF-8 text",
            );
            Err(ConfigErrors {
                problems: sink.problems,
            })
        }
    }
}

/// Parses and validates config text; `file_name` is used in messages.
pub fn parse_str(src: &str, file_name: &str) -> Result<Config, ConfigErrors> {
    let mut sink = file::Sink::new(file_name, src);
    let config =
        file::parse(src, &mut sink).and_then(|parsed| validate::validate(parsed, &mut sink));
    match config {
        Some(config) if sink.problems.is_empty() => Ok(config),
        _ => {
            let mut problems = sink.problems;
            if problems.is_empty() {
                // Not expected: every `None` above comes with a problem. Never report success.
                problems.push(ConfigProblem {
                    file: file_name.to_owned(),
                    line: 1,
                    col: 1,
                    message: "the configuration is invalid".to_owned(),
                });
            }
            problems.sort_by_key(|p| (p.line, p.col));
            Err(ConfigErrors { problems })
        }
    }
}

/// Reads a secret (client secret, Redis password, district-app token) from its variable or
/// file, trimming trailing newlines.
pub fn read_secret(src: &SecretSource) -> Result<String, SecretError> {
    match src {
        SecretSource::Env(var) => {
            let value = std::env::var(var).map_err(|e| match e {
                std::env::VarError::NotPresent => SecretError::EnvUnset { var: var.clone() },
                std::env::VarError::NotUnicode(_) => {
                    SecretError::EnvNotUnicode { var: var.clone() }
                }
            })?;
            let value = trim_newlines(value);
            if value.is_empty() {
                return Err(SecretError::EnvEmpty { var: var.clone() });
            }
            Ok(value)
        }
        SecretSource::File(path) => {
            let bytes = std::fs::read(path).map_err(|source| SecretError::FileUnreadable {
                path: path.clone(),
                source,
            })?;
            let value = String::from_utf8(bytes)
                .map_err(|_| SecretError::FileNotUnicode { path: path.clone() })?;
            let value = trim_newlines(value);
            if value.is_empty() {
                return Err(SecretError::FileEmpty { path: path.clone() });
            }
            Ok(value)
        }
    }
}

fn trim_newlines(mut s: String) -> String {
    let keep = s.trim_end_matches(['\n', '\r']).len();
    s.truncate(keep);
    s
}

/// A table of the routes for `clever-gateway check`: one row per upstream, in file order, each
/// followed by what that upstream receives ([`sends`]) and how its logins and paths behave
/// ([`options`]), on indented lines wrapped to [`DETAIL_WIDTH`] columns.
pub fn describe_routes(cfg: &Config) -> String {
    let header = ["UPSTREAM", "HOST", "PATH_PREFIX", "URL", "PUBLIC", "POLICY"].map(String::from);
    let mut rows = vec![header];
    let mut details = vec![String::new()];
    for (i, up) in cfg.upstreams.iter().enumerate() {
        let name = if i == cfg.server.landing {
            format!("{} (landing)", up.name)
        } else {
            up.name.clone()
        };
        let public = if up.public_paths.is_empty() {
            "-".to_owned()
        } else {
            up.public_paths
                .iter()
                .map(|p| match p {
                    PublicPath::Prefix(p) => format!("{p}*"),
                    PublicPath::Exact(p) => p.clone(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let types = match &up.allow_user_types {
            None => "any".to_owned(),
            Some(t) => t.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(","),
        };
        let districts = match &up.allow_districts {
            None => "any".to_owned(),
            Some(d) => d.join(","),
        };
        rows.push([
            name,
            up.host.clone().unwrap_or_else(|| "*".to_owned()),
            up.path_prefix.clone(),
            format!("{} ({})", up.url.original, up.url.addr),
            public,
            format!("types={types} districts={districts}"),
        ]);
        details.push(detail("sends:", &sends(up)) + &detail("options:", &options(up)));
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (row, detail) in rows.iter().zip(details) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        out.push_str(&detail);
    }
    out
}

/// One line for `clever-gateway check` saying how sessions live: the store, `ttl`, and
/// `idle_timeout` (`off` when sessions end only at `ttl` or sign-out).
pub fn describe_session(cfg: &Config) -> String {
    let s = &cfg.session;
    let store = match s.store {
        StoreKind::Memory => "memory",
        StoreKind::Redis => "redis",
    };
    let idle = s.idle_timeout.map_or_else(
        || "off".to_owned(),
        |d| humantime::format_duration(d).to_string(),
    );
    format!(
        "session: store={store} ttl={} idle_timeout={idle}\n",
        humantime::format_duration(s.ttl)
    )
}

/// The width the lines under each route row are wrapped to.
const DETAIL_WIDTH: usize = 100;

/// What an upstream receives with a signed-in request besides the request itself: each
/// identity header as `key=header-name` (the `[upstream.headers]` key; email, name, school and
/// section ids only when named), each `set_headers` header as `set:Name` (`set:Name(required)`
/// when in `required_headers`), the access token's header only with `forward_access_token`, and
/// `assertion(aud=…)` with `assertion = true`. Names only, never a value or a template.
fn sends(up: &Upstream) -> Vec<String> {
    let token_last = |h: &&SendHeader| h.value == SendValue::Token;
    let (token, rest): (Vec<&SendHeader>, Vec<&SendHeader>) =
        up.headers.iter().partition(token_last);
    let mut tokens: Vec<String> = rest
        .into_iter()
        .chain(token)
        .map(|h| match h.origin {
            HeaderOrigin::Identity(field) => format!(
                "{}={}",
                field.def().header.map_or(field.name(), |d| d.key),
                h.name
            ),
            HeaderOrigin::Set => format!(
                "set:{}{}",
                String::from_utf8_lossy(&h.wire),
                if h.required { "(required)" } else { "" }
            ),
        })
        .collect();
    if let Some(audience) = &up.assertion {
        tokens.push(format!("assertion(aud={audience})"));
    }
    tokens
}

/// The upstream's settings that change its logins, the path it receives and how the gateway
/// talks to it, when they differ from the defaults: `tls_verify=off` above all, which an
/// operator must be able to see.
fn options(up: &Upstream) -> Vec<String> {
    let mut tokens = Vec::new();
    if up.strip_path_prefix {
        tokens.push("strip_path_prefix".to_owned());
    }
    if let Some(id) = &up.login_district_id {
        tokens.push(format!("login_district_id={id}"));
    }
    if up.confirm_students {
        tokens.push("confirm_students".to_owned());
    }
    if !up.tls_verify {
        tokens.push("tls_verify=off".to_owned());
    }
    if let Some(ca) = &up.tls_ca {
        tokens.push(format!("tls_ca={}", ca.display()));
    }
    if !up.app_cookies.is_empty() {
        tokens.push(format!("app_cookies={}", up.app_cookies.join(",")));
    }
    if !up.logout_paths.is_empty() {
        tokens.push(format!("logout_paths={}", up.logout_paths.join(",")));
    }
    if up.timeout != leaf::UpstreamTimeout::default().0 {
        let t = up.timeout;
        tokens.push(if t.subsec_nanos() == 0 {
            format!("timeout={}s", t.as_secs())
        } else {
            format!("timeout={}ms", t.as_millis())
        });
    }
    tokens
}

/// `  label tokens…` (`-` for none), wrapped at [`DETAIL_WIDTH`] with the continuation lines
/// indented under the first token; a token too long for any line gets a line of its own.
fn detail(label: &str, tokens: &[String]) -> String {
    let lead = format!("  {label:<8} ");
    let indent = " ".repeat(lead.chars().count());
    let dash = ["-".to_owned()];
    let tokens = if tokens.is_empty() { &dash[..] } else { tokens };
    let mut out = String::new();
    let mut line = lead;
    let mut empty = true;
    for token in tokens {
        if !empty && line.chars().count() + 1 + token.chars().count() > DETAIL_WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = indent.clone();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(token);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../gateway.toml");
    const MINIMAL: &str = "[clever]\nclient_id = \"id\"\nclient_secret_env = \"S\"\n\
                           redirect_uri = \"https://gw.example.org/cb\"\n\n\
                           [[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9000\"\n";

    #[test]
    fn secret_env_names_with_whitespace_or_equals_rejected() {
        let bad_client =
            MINIMAL.replace("client_secret_env = \"S\"", "client_secret_env = \"A B\"");
        let p = problems(&bad_client);
        assert!(
            p.iter()
                .any(|p| p.message.contains("clever.client_secret_env")
                    && p.message.contains("not an environment variable name")),
            "{p:?}"
        );
        let bad_redis = format!(
            "{MINIMAL}\n[session]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:6379/0\"\nredis_password_env = \"PW=1\"\n"
        );
        let p = problems(&bad_redis);
        assert!(
            p.iter()
                .any(|p| p.message.contains("session.redis_password_env")
                    && p.message.contains("not an environment variable name")),
            "{p:?}"
        );
    }

    fn problems(src: &str) -> Vec<ConfigProblem> {
        match parse_str(src, "gw.toml") {
            Ok(_) => panic!("expected problems in:\n{src}"),
            Err(e) => e.problems,
        }
    }

    /// 1-based (line, col) of the first occurrence of `needle`.
    fn pos(src: &str, needle: &str) -> (usize, usize) {
        let at = src.find(needle).expect("needle in source");
        let before = &src[..at];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        (line, col)
    }

    #[test]
    fn example_gateway_toml_parses() {
        let cfg = match parse_str(EXAMPLE, "gateway.toml") {
            Ok(c) => c,
            Err(e) => panic!("gateway.toml is invalid:\n{e}"),
        };
        assert_eq!(cfg.upstreams.len(), 1);
        assert_eq!(cfg.upstreams[0].name, "gradebook");
        assert_eq!(
            cfg.clever.client_secret,
            SecretSource::Env("CLEVER_CLIENT_SECRET".into())
        );
    }

    #[test]
    fn example_gateway_toml_commented_keys_are_known_keys() {
        // Every commented-out `# key = value` line of the example names a key of the table it
        // sits in, so the example cannot drift from the contract.
        let mut checked = 0;
        for line in EXAMPLE.lines() {
            let Some(rest) = line.strip_prefix("# ") else {
                continue;
            };
            let key = rest.split([' ', '=']).next().unwrap_or("");
            if !rest.contains(" = ")
                || key.is_empty()
                || !key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            {
                continue;
            }
            // Find which table this line sits in.
            let upto = &EXAMPLE[..EXAMPLE.find(line).unwrap()];
            let table = upto
                .lines()
                .filter_map(|l| l.trim_start_matches("# ").strip_prefix('['))
                .next_back()
                .unwrap_or("");
            // The key alone in its table, uncommented: the schema must know it.
            let doc = match table.trim_matches(['[', ']']) {
                "upstream" => format!("[[upstream]]\n{rest}\n"),
                sub @ ("upstream.headers" | "upstream.set_headers") => {
                    format!("[[upstream]]\n[{sub}]\n{rest}\n")
                }
                "district" => format!("[[district]]\n{rest}\n"),
                t @ ("server" | "clever" | "session" | "assertion") => format!("[{t}]\n{rest}\n"),
                other => panic!("unexpected table {other:?} before {line:?}"),
            };
            let mut sink = file::Sink::new("x", &doc);
            let _ = file::parse(&doc, &mut sink);
            assert!(
                !sink
                    .problems
                    .iter()
                    .any(|p| p.message.contains("unknown key")),
                "example key {key:?} is not in [{table}]: {:?}",
                sink.problems
            );
            checked += 1;
        }
        assert!(checked >= 30, "only {checked} example keys found");
    }

    #[test]
    fn minimal_file_parses() {
        parse_str(MINIMAL, "gw.toml").unwrap();
    }

    #[test]
    fn typo_key_public_path_is_rejected_with_position() {
        let src = format!("{MINIMAL}public_path = [\"/static/\"]\n");
        let p = problems(&src);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert_eq!((p[0].line, p[0].col), pos(&src, "public_path ="));
        assert_eq!((p[0].line, p[0].col), (9, 1));
        let m = &p[0].message;
        assert!(
            m.contains("unknown key \"public_path\" in [[upstream]]"),
            "{m}"
        );
        assert!(m.contains("did you mean \"public_paths\""), "{m}");
        assert!(
            m.contains("allowed keys are name, url, host, path_prefix"),
            "{m}"
        );
    }

    #[test]
    fn unknown_table_is_rejected_listing_tables() {
        let src = format!("[sever]\nlisten = []\n{MINIMAL}");
        let p = problems(&src);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert_eq!((p[0].line, p[0].col), (1, 2));
        assert!(p[0]
            .message
            .contains("at the top level (did you mean \"server\"?)"));
        assert!(p[0].message.contains("server, clever, session, upstream"));
    }

    #[test]
    fn unknown_key_in_headers_is_rejected() {
        let src = format!("{MINIMAL}[upstream.headers]\n  userid = \"X-Id\"\n");
        let p = problems(&src);
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].line, p[0].col), (10, 3));
        assert!(p[0].message.contains("in [upstream.headers]"));
        assert!(p[0]
            .message
            .contains("user_id, user_type, district_id, email, name, access_token"));
    }

    #[test]
    fn upstream_written_as_single_table_is_type_error() {
        let src = MINIMAL.replace("[[upstream]]", "[upstream]");
        let p = problems(&src);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(p[0].message.contains("[[upstream]]"), "{}", p[0].message);
        assert!(p[0].message.contains("found a table"));
    }

    #[test]
    fn server_as_array_of_tables_is_type_error() {
        let src = format!("[[server]]\nthreads = 2\n{MINIMAL}");
        let p = problems(&src);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(p[0].message.contains("wrong type for [server]"));
    }

    #[test]
    fn wrong_types_are_all_reported_with_positions() {
        let src = format!(
            "[server]\nlisten = \"0.0.0.0:8080\"\nthreads = 1.5\ntrusted_proxies = [\"10.0.0.0/8\", 7]\n{MINIMAL}"
        );
        let p = problems(&src);
        assert_eq!(p.len(), 3, "{p:#?}");
        assert_eq!((p[0].line, p[0].col), (2, 10));
        assert!(p[0]
            .message
            .contains("expected an array of strings, found a string"));
        assert_eq!((p[1].line, p[1].col), (3, 11));
        assert!(p[1].message.contains("found a float"));
        assert_eq!((p[2].line, p[2].col), (4, 34));
    }

    #[test]
    fn several_problems_in_one_file_are_all_reported_in_order() {
        let src = "\
[server]
threads = 0
colour = \"blue\"

[clever]
client_id = \"id\"
client_secret = \"inline\"
redirect_uri = \"not a url\"

[session]
ttl = \"48h\"

[[upstream]]
name = \"app\"
url = \"http://127.0.0.1:9000\"
public_path = [\"/x\"]
allow_user_types = []
";
        let p = problems(src);
        let at: Vec<(usize, usize)> = p.iter().map(|p| (p.line, p.col)).collect();
        assert_eq!(
            at,
            vec![
                pos(src, "0\n"),
                pos(src, "colour"),
                pos(src, "client_secret ="),
                pos(src, "\"not a url\""),
                pos(src, "\"48h\""),
                pos(src, "public_path ="),
                pos(src, "[]\n"),
            ],
            "{p:#?}"
        );
        // The inline secret names the fix, and is not also called missing.
        assert!(p[2].message.contains("never inline"));
        assert!(!p.iter().any(|p| p.message.contains("no client secret")));
        assert!(!p.iter().any(|p| p.message.contains("inline\"")));
    }

    #[test]
    fn wrong_type_is_not_also_reported_missing() {
        let src = MINIMAL.replace("client_id = \"id\"", "client_id = 42");
        let p = problems(&src);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(p[0].message.contains("wrong type for clever.client_id"));
    }

    #[test]
    fn syntax_error_is_reported_with_position() {
        let src = format!("{MINIMAL}path_prefix = \"/x\n");
        let p = problems(&src);
        assert!(!p.is_empty());
        assert!(p[0].message.starts_with("invalid TOML"), "{}", p[0].message);
        assert_eq!(p[0].line, 9);
    }

    #[test]
    fn duplicate_key_is_reported() {
        let src = format!("{MINIMAL}name = \"again\"\n");
        let p = problems(&src);
        assert_eq!(p[0].line, 9, "{p:#?}");
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let src = format!("# é è\n[server]\nthreads = \"ü\"\n{MINIMAL}");
        let p = problems(&src);
        assert_eq!((p[0].line, p[0].col), (3, 11));
    }

    #[test]
    fn errors_display_one_problem_per_line() {
        let src = "[server]\nthreads = 0\nlisten = [\"x\"]\n";
        let e = parse_str(src, "gw.toml").unwrap_err();
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), e.problems.len());
        assert!(e.problems.len() >= 4, "{text}");
        assert!(lines[0].starts_with("gw.toml:1:1: "), "{text}");
        assert!(lines
            .iter()
            .any(|l| l.starts_with("gw.toml:2:11: server.threads is 0: ")));
        assert!(lines.iter().all(|l| l.starts_with("gw.toml:")));
    }

    #[test]
    fn empty_file_reports_missing_tables() {
        let p = problems("");
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(p.iter().all(|p| (p.line, p.col) == (1, 1)));
    }

    #[test]
    fn parse_never_panics_on_truncated_example() {
        let mut cut = 0;
        while cut <= EXAMPLE.len() {
            if EXAMPLE.is_char_boundary(cut) {
                let _ = parse_str(&EXAMPLE[..cut], "gateway.toml");
            }
            cut += 7;
        }
    }

    #[test]
    fn parse_never_panics_on_odd_input() {
        let odd = [
            "\u{feff}[server]",
            "[server]\nthreads = 1979-05-27",
            "[[upstream]]\n[[upstream]]\n[[upstream.headers]]",
            "upstream = [1, 2]",
            "upstream = [{}, {name = 3}]",
            "[clever]\ntimeout = \"18446744073709551616s\"",
            "[clever]\ntimeout = \"99999999999999999999999h\"",
            "[server]\nlisten = [[1]]",
            "a.b.c.d = 1",
            "\"\\u0000\" = 1",
            "[session]\nttl = \"\"",
            "[[upstream]]\nurl = \"http://[::1\"",
            "[[upstream]]\nurl = \"http://\u{1F600}.invalid\"",
        ];
        for src in odd {
            assert!(parse_str(src, "x").is_err(), "{src:?}");
        }
    }

    /// One bad line per kind of problem the file layer finds: a leaf that does not read, a
    /// wrong type, a bad list entry, an unknown key.
    const BAD_SERVER_LINES: &[(&str, &str)] = &[
        (
            "grace_period = \"soon\"",
            "server.grace_period \"soon\" is not a duration",
        ),
        ("header_timeout = 5", "wrong type for server.header_timeout"),
        (
            "log_format = \"xml\"",
            "server.log_format \"xml\" is not a log format",
        ),
        (
            "admin_listen = \"nowhere\"",
            "server.admin_listen \"nowhere\" is not an address",
        ),
        (
            "trusted_proxies = [\"10.0.0.0/8\", \"bad\"]",
            "server.trusted_proxies entry \"bad\" is not an address",
        ),
        ("threads = \"many\"", "wrong type for server.threads"),
        ("colour = \"blue\"", "unknown key \"colour\" in [server]"),
        ("upgrade_sock = 7", "wrong type for server.upgrade_sock"),
    ];

    proptest::proptest! {
        /// Every problem at once: however many bad lines a table holds, in any order, each is
        /// reported once, on its own line, and nothing else is.
        #[test]
        fn every_bad_leaf_is_reported_once_at_its_line(
            lines in proptest::strategy::Strategy::prop_shuffle(
                proptest::sample::subsequence(BAD_SERVER_LINES.to_vec(), 1..=8),
            ),
        ) {
            let body: Vec<&str> = lines.iter().map(|(line, _)| *line).collect();
            let src = format!("[server]\n{}\n{MINIMAL}", body.join("\n"));
            let p = match parse_str(&src, "gw.toml") {
                Ok(_) => panic!("expected problems in:\n{src}"),
                Err(e) => e.problems,
            };
            proptest::prop_assert_eq!(p.len(), lines.len(), "{:#?}", p);
            for (i, (_, says)) in lines.iter().enumerate() {
                let at = p.iter().find(|p| p.line == i + 2);
                proptest::prop_assert!(
                    at.is_some_and(|p| p.message.contains(says)),
                    "line {}: {:?} in {:#?}", i + 2, says, p
                );
            }
        }
    }

    #[test]
    fn load_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.toml");
        std::fs::write(&path, MINIMAL).unwrap();
        let cfg = load(&path).unwrap();
        assert_eq!(cfg.upstreams[0].name, "app");
    }

    #[test]
    fn load_missing_file_names_it() {
        let e = load(Path::new("/nonexistent/gw.toml")).unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert!(e
            .to_string()
            .starts_with("/nonexistent/gw.toml: cannot read the config file"));
    }

    #[test]
    fn load_non_utf8_points_at_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.toml");
        std::fs::write(&path, b"[server]\nthreads = \"\xff\"\n").unwrap();
        let e = load(&path).unwrap_err();
        assert_eq!((e.problems[0].line, e.problems[0].col), (2, 12));
        assert!(e.problems[0].message.contains("UTF-8"));
    }

    #[test]
    fn read_secret_env_trims_newline() {
        let var = "CLEVER_GATEWAY_TEST_SECRET_ENV_OK";
        std::env::set_var(var, "s3cret\n");
        assert_eq!(
            read_secret(&SecretSource::Env(var.into())).unwrap(),
            "s3cret"
        );
    }

    #[test]
    fn read_secret_env_unset_names_variable() {
        let var = "CLEVER_GATEWAY_TEST_SECRET_ENV_UNSET";
        let e = read_secret(&SecretSource::Env(var.into())).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("environment variable {var} is not set")
        );
    }

    #[test]
    fn read_secret_env_empty_is_error() {
        let var = "CLEVER_GATEWAY_TEST_SECRET_ENV_EMPTY";
        std::env::set_var(var, "\n");
        assert!(matches!(
            read_secret(&SecretSource::Env(var.into())),
            Err(SecretError::EnvEmpty { .. })
        ));
    }

    #[test]
    fn read_secret_file_trims_trailing_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, " a b \r\n").unwrap();
        assert_eq!(read_secret(&SecretSource::File(path)).unwrap(), " a b ");
    }

    #[test]
    fn read_secret_file_missing_names_file() {
        let e = read_secret(&SecretSource::File("/nonexistent/secret".into())).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("cannot read secret file /nonexistent/secret: "));
    }

    #[test]
    fn read_secret_error_never_prints_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, b"top\xffsecret").unwrap();
        let e = read_secret(&SecretSource::File(path)).unwrap_err();
        assert!(!e.to_string().contains("secret\u{fffd}") && !format!("{e:?}").contains("top"));
    }

    #[test]
    fn describe_routes_lists_each_upstream() {
        let src = format!(
            "{MINIMAL}public_paths = [\"/static/\", \"/favicon.ico\"]\nallow_user_types = [\"teacher\"]\n\
             [[upstream]]\nname = \"hr\"\nurl = \"http://127.0.0.1:9001/hr\"\nhost = \"HR.example.org\"\n\
             path_prefix = \"/staff/\"\nallow_districts = [\"d1\"]\n"
        );
        let cfg = parse_str(&src, "gw.toml").unwrap();
        let table = describe_routes(&cfg);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 7, "{table}");
        assert!(lines[0].starts_with("UPSTREAM"));
        assert!(lines[1].starts_with("app (landing)"));
        assert!(lines[1].contains(" * "));
        assert!(lines[1].contains("http://127.0.0.1:9000/"));
        assert!(lines[1].contains("/static/* /favicon.ico"));
        assert!(lines[1].contains("types=teacher districts=any"));
        assert!(lines[4].contains("hr.example.org"));
        assert!(lines[4].contains("/staff "));
        assert!(lines[4].contains("types=any districts=d1"));
        // Under each row: the default identity headers, no token, no options.
        for at in [2, 5] {
            assert_eq!(
                lines[at],
                "  sends:   user_id=x-clever-user-id user_type=x-clever-user-type \
                 district_id=x-clever-district-id",
                "{table}"
            );
            assert_eq!(lines[at + 1], "  options: -", "{table}");
        }
    }

    #[test]
    fn describe_routes_shows_headers_token_assertion_and_login_options() {
        // Section ids need district-app tokens: discovery provides them.
        let minimal = MINIMAL.replace("[clever]\n", "[clever]\ndiscover_district_tokens = true\n");
        let src = format!(
            "{minimal}\n[[upstream]]\nname = \"hr\"\nurl = \"https://127.0.0.1:9001/hr\"\n\
             path_prefix = \"/staff\"\nstrip_path_prefix = true\nforward_access_token = true\n\
             tls_verify = false\ntimeout = \"90s\"\n\
             assertion = true\nassertion_audience = \"urn:example:hr\"\nconfirm_students = true\n\
             login_district_id = \"5d0a9e5d0958b300014e49d2\"\n\
             [upstream.headers]\nuser_id = \"Remote-User\"\nemail = \"X-Mail\"\n\
             name = \"X-Clever-Name\"\nschool_ids = \"X-Schools\"\n\
             section_ids = \"X-Sections\"\naccess_token = \"X-Token\"\n"
        );
        let cfg = parse_str(&src, "gw.toml").unwrap();
        let table = describe_routes(&cfg);
        let hr = &table[table.find("\nhr ").expect("hr row")..];
        // The wrapped lines under the row, joined back into one list of tokens each.
        let mut sends = Vec::new();
        let mut options = Vec::new();
        let mut into = &mut sends;
        for line in hr.lines().skip(2) {
            assert!(line.chars().count() <= DETAIL_WIDTH, "{line:?}\n{table}");
            let rest = if let Some(rest) = line.strip_prefix("  sends:   ") {
                into = &mut sends;
                rest
            } else if let Some(rest) = line.strip_prefix("  options: ") {
                into = &mut options;
                rest
            } else {
                line.strip_prefix("           ")
                    .unwrap_or_else(|| panic!("{line:?}\n{table}"))
            };
            into.extend(rest.split(' '));
        }
        assert_eq!(
            sends,
            [
                "user_id=remote-user",
                "user_type=x-clever-user-type",
                "district_id=x-clever-district-id",
                "email=x-mail",
                "name=x-clever-name",
                "school_ids=x-schools",
                "section_ids=x-sections",
                "access_token=x-token",
                "assertion(aud=urn:example:hr)",
            ],
            "{table}"
        );
        assert_eq!(
            options,
            [
                "strip_path_prefix",
                "login_district_id=5d0a9e5d0958b300014e49d2",
                "confirm_students",
                "tls_verify=off",
                "timeout=90s",
            ],
            "{table}"
        );
        // The first upstream turns none of it on: no token header, no assertion.
        let app = &table[..table.find("\nhr ").unwrap()];
        assert!(
            !app.contains("access_token") && !app.contains("assertion"),
            "{table}"
        );
        assert!(app.ends_with("  options: -"), "{table}");
    }

    #[test]
    fn describe_routes_shows_a_ca_and_a_sub_second_timeout() {
        let src = format!(
            "{MINIMAL}\n[[upstream]]\nname = \"sis\"\nurl = \"https://127.0.0.1:9443/\"\n\
             path_prefix = \"/sis\"\ntls_ca = \"/etc/clever-gateway/district-ca.pem\"\n\
             timeout = \"1500ms\"\n"
        );
        let table = describe_routes(&parse_str(&src, "gw.toml").unwrap());
        assert!(
            table
                .contains("  options: tls_ca=/etc/clever-gateway/district-ca.pem timeout=1500ms\n"),
            "{table}"
        );
        // Verification stays on with a CA: no tls_verify token.
        assert!(!table.contains("tls_verify"), "{table}");
    }

    #[test]
    fn detail_wraps_at_width_and_gives_a_long_token_its_own_line() {
        let tokens: Vec<String> = (0..30).map(|i| format!("token{i:02}")).collect();
        let text = detail("sends:", &tokens);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 1, "{text}");
        assert!(lines[0].starts_with("  sends:   token00 token01"), "{text}");
        assert!(
            lines.iter().all(|l| l.chars().count() <= DETAIL_WIDTH),
            "{text}"
        );
        assert!(
            lines[1..].iter().all(|l| l.starts_with("           token")),
            "{text}"
        );
        let joined: Vec<&str> = text.split_whitespace().skip(1).collect();
        assert_eq!(joined, tokens, "every token once, in order");

        let long = "x".repeat(DETAIL_WIDTH + 5);
        let text = detail("options:", &["a".to_owned(), long.clone(), "b".to_owned()]);
        assert_eq!(
            text,
            format!("  options: a\n           {long}\n           b\n")
        );
        assert_eq!(detail("options:", &[]), "  options: -\n");
    }
}
