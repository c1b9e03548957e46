//! `[server]`: plain, TLS and admin listeners, worker threads, the landing upstream, the
//! trusted proxies, and the process itself (grace period, log format, pid file, upgrade socket).

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;

use super::{secret_source, val, vals, Ctx};
use crate::config::file::{quote, span_of, ServerFile, Table};
use crate::config::leaf::{Leaf, RunPath};
use crate::config::model::{LogFormat, ServerConfig};

const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8080);
/// A unix socket path must fit `sun_path`: 108 bytes with the terminating NUL.
const MAX_SOCK_PATH: usize = 107;
/// A list of listeners as read: `None` when one was refused (reported).
type Addrs = Option<Vec<SocketAddr>>;

pub(super) fn server(
    ctx: &mut Ctx<'_, '_>,
    table: Option<&Table<ServerFile>>,
    upstream_names: &[Option<String>],
) -> Option<ServerConfig> {
    let default = ServerFile::default();
    let s = table.map_or(&default, |t| &t.get_ref().0);
    let tspan = table.map_or(0..0, |t| t.span());

    // `None` when a listener was refused (reported): the rules across them wait.
    let written = s.listen.is_some().then(|| vals(&s.listen));
    let listen = ctx
        .valid("server.listen")
        .then(|| written.unwrap_or(vec![DEFAULT_LISTEN]));
    let tls_listen = ctx.valid("server.tls_listen").then(|| vals(&s.tls_listen));
    if let (Some([]), Some([])) = (listen.as_deref(), tls_listen.as_deref()) {
        let none = "server.listen and server.tls_listen are both empty, so nothing would listen: \
                    give at least one \"ip:port\"";
        ctx.err(span_of(&s.listen).unwrap_or(tspan.clone()), none);
    }
    listeners_distinct(ctx, s, &listen, &tls_listen);

    // A refused `tls_listen` (reported) counts as wanting TLS.
    let tls_wanted = tls_listen.as_ref().is_none_or(|t| !t.is_empty());
    tls_files(ctx, s, tls_wanted, tspan.clone());
    let redirect = s.redirect_to_https.as_ref().filter(|v| *v.get_ref());
    if let Some(v) = redirect.filter(|_| !tls_wanted) {
        let why =
            "server.redirect_to_https is true but server.tls_listen is empty: set tls_listen \
             (with tls_cert and tls_key) or remove redirect_to_https";
        ctx.err(v.span(), why);
    }
    let first_addr = listen.iter().chain(&tls_listen).flatten().next();
    let first_addr = first_addr.filter(|_| listen.is_some() && tls_listen.is_some());
    let (pid_file, upgrade_sock) = run_files(ctx, s, first_addr.copied(), tspan);
    let landing = landing(ctx, s, upstream_names);
    let (env, file) = (&s.forward_auth_secret_env, &s.forward_auth_secret_file);
    let secret = secret_source(ctx, "server.forward_auth_secret", env, file);
    Some(ServerConfig {
        listen: listen?,
        tls_listen: tls_listen?,
        tls_cert: val(&s.tls_cert),
        tls_key: val(&s.tls_key),
        redirect_to_https: redirect.is_some(),
        threads: s.threads.map(|t| t.0),
        grace_period: val(&s.grace_period).unwrap_or_default().0,
        log_format: val(&s.log_format).unwrap_or(LogFormat::Human),
        pid_file: pid_file?,
        upgrade_sock: upgrade_sock?,
        admin_listen: val(&s.admin_listen),
        landing: landing?,
        trusted_proxies: vals(&s.trusted_proxies),
        header_timeout: val(&s.header_timeout).unwrap_or_default().0,
        forward_auth_secret: secret?,
    })
}

/// One address, one listener; and no two listeners on one port where one of them takes every
/// address (the second could not be bound). The admin listener is no proxy listener either.
fn listeners_distinct(ctx: &mut Ctx<'_, '_>, s: &ServerFile, listen: &Addrs, tls_listen: &Addrs) {
    // The default listener, when `listen` is absent.
    let mut seen: Vec<SocketAddr> = match s.listen {
        None => listen.iter().flatten().copied().collect(),
        Some(_) => Vec::new(),
    };
    // Lists with a refused entry are left out (reported).
    let lists = [(&s.listen, listen), (&s.tls_listen, tls_listen)];
    let proxies = lists.into_iter().filter(|(_, read)| read.is_some());
    let proxies = proxies.flat_map(|(written, _)| written.iter().flat_map(|l| l.get_ref()));
    let admin = s.admin_listen.iter().map(|w| (true, w));
    for (admin, w) in proxies.map(|w| (false, w)).chain(admin) {
        let (addr, port) = (w.value, w.value.port());
        let Some(&other) = seen.iter().find(|s| listeners_clash(**s, addr)) else {
            seen.push(addr);
            continue;
        };
        let why = match (other == addr, admin) {
            (false, _) => format!(
                "address {addr} overlaps {other}: one of them takes every address of port {port}; \
                 give each listener its own port"
            ),
            (true, true) => format!(
                "server.admin_listen {addr} is also a proxy listener: give it its own address"
            ),
            (true, false) => format!("address {addr} is listed twice"),
        };
        ctx.err(w.span(), why);
    }
}

/// `tls_cert` and `tls_key` come with `tls_listen`, both of them, and never without it.
fn tls_files(ctx: &mut Ctx<'_, '_>, s: &ServerFile, wanted: bool, tspan: Range<usize>) {
    let tls_listen = span_of(&s.tls_listen).unwrap_or(tspan);
    for (key, value) in [("tls_cert", &s.tls_cert), ("tls_key", &s.tls_key)] {
        if wanted && value.is_none() && ctx.valid(&format!("server.{key}")) {
            let need = "TLS listeners need both tls_cert and tls_key";
            let why = format!("server.tls_listen is set but server.{key} is missing: {need}");
            ctx.err(tls_listen.clone(), why);
        } else if !wanted {
            let fix = "set tls_listen, tls_cert and tls_key together, or none of them";
            let unused = format!("server.{key} is set but server.tls_listen is empty: {fix}");
            ctx.if_set(value, unused);
        }
    }
}

/// `landing`: the name of an upstream (default: the first).
fn landing(ctx: &mut Ctx<'_, '_>, s: &ServerFile, names: &[Option<String>]) -> Option<usize> {
    let Some(l) = &s.landing else { return Some(0) };
    let found = names.iter().position(|n| n.as_ref() == Some(l.get_ref()));
    if found.is_none() {
        let known: Vec<String> = names.iter().flatten().map(|n| quote(n)).collect();
        let allowed = match known.is_empty() {
            true => "expected the name of an [[upstream]]".to_owned(),
            false => format!("expected one of {}", known.join(", ")),
        };
        let shown = quote(l.get_ref());
        let why = format!("server.landing {shown} names no upstream: {allowed}");
        ctx.err(l.span(), why);
    }
    found
}

/// `pid_file` and `upgrade_sock`; by default named after `first_addr` (the first listener;
/// `None` when the listeners are invalid, which is already reported) in the run directory.
fn run_files(
    ctx: &mut Ctx<'_, '_>,
    s: &ServerFile,
    first_addr: Option<SocketAddr>,
    tspan: Range<usize>,
) -> (Option<PathBuf>, Option<PathBuf>) {
    // `0.0.0.0_8080`, `--1_8443` (for `[::1]:8443`): a listener as a file name.
    let stem = first_addr.map(|a| format!("{}_{}", a.ip().to_string().replace(':', "-"), a.port()));
    let path = |key: &str, v: &Option<Leaf<RunPath>>, ext: &str| match v {
        Some(v) => Some(v.value.0.clone()),
        None if !ctx.valid(key) => None,
        None => (stem.as_ref()).map(|s| ServerConfig::default_run_dir().join(format!("{s}.{ext}"))),
    };
    let pid_file = path("server.pid_file", &s.pid_file, "pid");
    let upgrade_sock = path("server.upgrade_sock", &s.upgrade_sock, "sock");
    let sock_span = span_of(&s.upgrade_sock).unwrap_or(tspan);
    let sock = upgrade_sock.clone().unwrap_or_default();
    let len = sock.as_os_str().len();
    if len > MAX_SOCK_PATH {
        let shown = quote(&sock.to_string_lossy());
        let what = match &s.upgrade_sock {
            Some(_) => "server.upgrade_sock".to_owned(),
            None => format!("the default server.upgrade_sock {shown}"),
        };
        let why = format!("a unix socket path holds at most {MAX_SOCK_PATH} bytes");
        let fix = "set server.upgrade_sock to a shorter absolute path";
        let too_long = format!("{what} is {len} bytes long: {why}: {fix}");
        ctx.err(sock_span.clone(), too_long);
    }
    if pid_file.is_some() && pid_file == upgrade_sock {
        let same =
            "server.pid_file and server.upgrade_sock are the same path: give each its own file";
        ctx.err(sock_span, same);
    }
    (pid_file, upgrade_sock)
}

/// Whether two listen addresses cannot both be bound: the same address (listed twice), or the
/// same port where one of them is an unspecified address (`0.0.0.0` takes every IPv4 address;
/// `[::]`, bound dual-stack, every address). Port 0 (any free port) clashes only with itself.
pub(crate) fn listeners_clash(a: SocketAddr, b: SocketAddr) -> bool {
    if a == b {
        return true;
    }
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    let covers = |wide: SocketAddr, other: SocketAddr| match wide.ip() {
        IpAddr::V6(ip) if ip.is_unspecified() => true,
        IpAddr::V4(ip) if ip.is_unspecified() => other.is_ipv4(),
        _ => false,
    };
    a.ip() == b.ip() || covers(a, b) || covers(b, a)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::config::SecretSource;
    use std::time::Duration;

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

    const TLS: &str =
        "tls_listen = [\"0.0.0.0:8443\"]\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"";

    #[test]
    fn server_redirect_to_https_defaults_to_false() {
        assert!(!ok(&doc(TLS, "", "", "")).server.redirect_to_https);
    }

    #[test]
    fn server_redirect_to_https_with_tls_listen_is_kept() {
        let c = ok(&doc(
            &format!("{TLS}\nredirect_to_https = true"),
            "",
            "",
            "",
        ));
        assert!(c.server.redirect_to_https);
    }

    #[test]
    fn server_redirect_to_https_without_tls_listen_is_error_at_value() {
        let src = doc("redirect_to_https = true", "", "", "");
        let p = one(
            &src,
            &[
                "server.redirect_to_https",
                "tls_listen is empty",
                "set tls_listen",
            ],
        );
        assert_eq!(p.line, line_of(&src, "redirect_to_https"));
        assert_eq!(p.col, "redirect_to_https = ".len() + 1);
        // false needs nothing.
        ok(&doc("redirect_to_https = false", "", "", ""));
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
    fn server_process_keys_absent_get_defaults() {
        let c = ok(&format!("{CLEVER}{UPSTREAM}")).server;
        assert_eq!(c.grace_period, Duration::from_secs(10));
        assert_eq!(c.log_format, LogFormat::Human);
        let dir = ServerConfig::default_run_dir();
        assert_eq!(c.pid_file, dir.join("0.0.0.0_8080.pid"));
        assert_eq!(c.upgrade_sock, dir.join("0.0.0.0_8080.sock"));
        assert!(c.pid_file.is_absolute());
    }

    #[test]
    fn server_default_run_files_are_named_after_first_listener() {
        let c = ok(&doc(
            r#"listen = ["[::1]:8443", "127.0.0.1:80"]"#,
            "",
            "",
            "",
        ))
        .server;
        assert!(c.pid_file.ends_with("--1_8443.pid"), "{:?}", c.pid_file);
        let tls_only = ok(&doc(
            "listen = []\ntls_listen = [\"127.0.0.2:8443\"]\ntls_cert = \"/c\"\ntls_key = \"/k\"",
            "",
            "",
            "",
        ))
        .server;
        assert!(tls_only.upgrade_sock.ends_with("127.0.0.2_8443.sock"));
    }

    #[test]
    fn server_default_run_dir_is_per_user_under_temp_dir() {
        let dir = ServerConfig::default_run_dir();
        assert!(dir.starts_with(std::env::temp_dir()));
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(name, format!("clever-gateway-{}", nix::unistd::getuid()));
    }

    #[test]
    fn server_grace_period_is_parsed() {
        let grace = |v: &str| {
            ok(&doc(&format!("grace_period = \"{v}\""), "", "", ""))
                .server
                .grace_period
        };
        assert_eq!(grace("0s"), Duration::ZERO);
        assert_eq!(grace("300s"), Duration::from_secs(300));
        assert_eq!(grace("1500ms"), Duration::from_millis(1500));
        assert_eq!(grace("2m"), Duration::from_secs(120));
    }

    #[test]
    fn server_grace_period_out_of_range_is_error_at_value() {
        let src = doc(r#"grace_period = "301s""#, "", "", "");
        let p = one(&src, &["server.grace_period \"301s\"", "from 0s to 300s"]);
        assert_eq!((p.line, p.col), (2, 16));
        one(
            &doc(r#"grace_period = "6m""#, "", "", ""),
            &["from 0s to 300s"],
        );
    }

    #[test]
    fn server_header_timeout_defaults_to_10s_and_is_bounded() {
        assert_eq!(
            ok(&doc("", "", "", "")).server.header_timeout,
            Duration::from_secs(10)
        );
        assert_eq!(
            ok(&doc(r#"header_timeout = "2s""#, "", "", ""))
                .server
                .header_timeout,
            Duration::from_secs(2)
        );
        for bad in ["0s", "500ms", "121s"] {
            one(
                &doc(&format!("header_timeout = \"{bad}\""), "", "", ""),
                &["server.header_timeout", "from 1s to 120s"],
            );
        }
    }

    #[test]
    fn server_forward_auth_secret_from_env_or_file_never_both() {
        assert_eq!(ok(&doc("", "", "", "")).server.forward_auth_secret, None);
        assert_eq!(
            ok(&doc(r#"forward_auth_secret_env = "FA_SECRET""#, "", "", ""))
                .server
                .forward_auth_secret,
            Some(SecretSource::Env("FA_SECRET".into()))
        );
        assert_eq!(
            ok(&doc(
                r#"forward_auth_secret_file = "/run/secrets/fa""#,
                "",
                "",
                ""
            ))
            .server
            .forward_auth_secret,
            Some(SecretSource::File("/run/secrets/fa".into()))
        );
        one(
            &doc(
                "forward_auth_secret_env = \"A\"\nforward_auth_secret_file = \"/x\"",
                "",
                "",
                "",
            ),
            &["forward_auth_secret_env and server.forward_auth_secret_file are both set"],
        );
    }

    #[test]
    fn server_grace_period_not_a_duration_or_integer_is_error() {
        one(
            &doc(r#"grace_period = "soon""#, "", "", ""),
            &["expected a duration like \"90s\""],
        );
        one(
            &doc("grace_period = 10", "", "", ""),
            &["wrong type for server.grace_period", "expected a string"],
        );
    }

    #[test]
    fn server_log_format_json_is_parsed() {
        let c = ok(&doc(r#"log_format = "json""#, "", "", "")).server;
        assert_eq!(c.log_format, LogFormat::Json);
        let c = ok(&doc(r#"log_format = "human""#, "", "", "")).server;
        assert_eq!(c.log_format, LogFormat::Human);
    }

    #[test]
    fn server_log_format_unknown_is_error() {
        let p = one(
            &doc(r#"log_format = "JSON""#, "", "", ""),
            &[
                "server.log_format \"JSON\"",
                "expected \"human\" or \"json\"",
            ],
        );
        assert_eq!((p.line, p.col), (2, 14));
    }

    #[test]
    fn server_pid_file_and_upgrade_sock_absolute_are_kept() {
        let c = ok(&doc(
            "pid_file = \"/run/cg/gw.pid\"\nupgrade_sock = \"/run/cg/gw.sock\"",
            "",
            "",
            "",
        ))
        .server;
        assert_eq!(c.pid_file, PathBuf::from("/run/cg/gw.pid"));
        assert_eq!(c.upgrade_sock, PathBuf::from("/run/cg/gw.sock"));
    }

    #[test]
    fn server_pid_file_relative_empty_or_directory_is_error() {
        let src = doc(r#"pid_file = "run/gw.pid""#, "", "", "");
        let p = one(
            &src,
            &["server.pid_file \"run/gw.pid\" is relative", "absolute"],
        );
        assert_eq!((p.line, p.col), (2, 12));
        one(&doc(r#"pid_file = " ""#, "", "", ""), &["is empty"]);
        one(
            &doc(r#"upgrade_sock = "/run/cg/""#, "", "", ""),
            &["server.upgrade_sock", "names a directory", "gateway.sock"],
        );
    }

    #[test]
    fn server_upgrade_sock_too_long_for_a_unix_socket_is_error() {
        let long = format!("/{}.sock", "s".repeat(110));
        one(
            &doc(&format!("upgrade_sock = \"{long}\""), "", "", ""),
            &["server.upgrade_sock is 116 bytes long", "at most 107 bytes"],
        );
        let just = format!("/{}", "s".repeat(106));
        ok(&doc(&format!("upgrade_sock = \"{just}\""), "", "", ""));
    }

    #[test]
    fn server_pid_file_same_as_upgrade_sock_is_error() {
        one(
            &doc(
                "pid_file = \"/run/gw\"\nupgrade_sock = \"/run/gw\"",
                "",
                "",
                "",
            ),
            &["same path"],
        );
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
    fn server_admin_on_the_port_of_a_wildcard_listener_is_error() {
        // The default listen address is 0.0.0.0:8080.
        let p = one(
            &doc(r#"admin_listen = "127.0.0.1:8080""#, "", "", ""),
            &["overlaps 0.0.0.0:8080", "own port"],
        );
        assert_eq!(p.line, 2);
        ok(&doc(r#"admin_listen = "127.0.0.1:9090""#, "", "", ""));
    }

    #[test]
    fn server_listeners_overlapping_on_one_port_is_error() {
        one(
            &doc(r#"listen = ["[::]:8080", "127.0.0.1:8080"]"#, "", "", ""),
            &["127.0.0.1:8080 overlaps [::]:8080"],
        );
        ok(&doc(
            r#"listen = ["127.0.0.1:8080", "127.0.0.2:8080"]"#,
            "",
            "",
            "",
        ));
    }

    #[test]
    fn listeners_clash_when_one_takes_every_address_of_the_port() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        for (x, y) in [
            ("127.0.0.1:80", "127.0.0.1:80"),
            ("127.0.0.1:0", "127.0.0.1:0"),
            ("0.0.0.0:80", "127.0.0.1:80"),
            ("[::]:80", "127.0.0.1:80"),
            ("[::]:80", "[::1]:80"),
            ("[::]:80", "0.0.0.0:80"),
        ] {
            assert!(listeners_clash(a(x), a(y)), "{x} {y}");
            assert!(listeners_clash(a(y), a(x)), "{y} {x}");
        }
        for (x, y) in [
            ("127.0.0.1:80", "127.0.0.1:81"),
            ("127.0.0.1:80", "127.0.0.2:80"),
            ("0.0.0.0:80", "[::1]:80"),
            ("0.0.0.0:0", "127.0.0.1:0"),
        ] {
            assert!(!listeners_clash(a(x), a(y)), "{x} {y}");
            assert!(!listeners_clash(a(y), a(x)), "{y} {x}");
        }
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
}
