//! The command line: `check` and `run` on good and bad configurations.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clever-gateway"))
}

fn write(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let p = dir.path().join("gateway.toml");
    std::fs::write(&p, text).unwrap();
    p
}

const GOOD: &str = r#"
[server]
listen = ["127.0.0.1:18080"]

[clever]
client_id = "4c63c1cf623dce82caac"
client_secret_env = "CLEVER_GATEWAY_CLI_TEST_SECRET_UNSET"
redirect_uri = "http://127.0.0.1:18080/oauth/clever/callback"

[[upstream]]
name = "gradebook"
url = "http://127.0.0.1:9000"
"#;

#[test]
fn check_good_config_prints_routes_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, GOOD);
    let out = bin().args(["check", "--config"]).arg(&p).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("gradebook"), "{stdout}");
    assert!(
        stderr.contains("CLEVER_GATEWAY_CLI_TEST_SECRET_UNSET"),
        "check warns: {stderr}"
    );
}

/// Under each route row, `check` shows what that upstream receives and how its logins behave,
/// so an operator can verify them: identity header names, the access token's header only with
/// `forward_access_token`, the assertion's audience, and the login and path options.
#[test]
fn check_shows_what_each_upstream_receives_and_its_login_options() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{GOOD}\n[[upstream]]\nname = \"hr\"\nurl = \"http://127.0.0.1:9001\"\n\
         path_prefix = \"/staff\"\nstrip_path_prefix = true\nforward_access_token = true\n\
         assertion = true\nassertion_audience = \"urn:example:hr\"\nconfirm_students = true\n\
         login_district_id = \"5d0a9e5d0958b300014e49d2\"\n\
         [upstream.headers]\nuser_id = \"Remote-User\"\nemail = \"X-Mail\"\n"
    );
    let p = write(&dir, &cfg);
    let secret = "cli-test-secret-must-not-be-printed";
    let out = bin()
        .args(["check", "--config"])
        .arg(&p)
        .env("CLEVER_GATEWAY_CLI_TEST_SECRET_UNSET", secret)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let row = |name: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{stdout}"))
    };
    // The lines under a row (up to the next row), as one list of words.
    let under = |at: usize| -> Vec<&str> {
        lines[at + 1..]
            .iter()
            .take_while(|l| l.starts_with("  "))
            .flat_map(|l| l.split_whitespace())
            .collect()
    };
    assert_eq!(
        under(row("gradebook")),
        [
            "sends:",
            "user_id=x-clever-user-id",
            "user_type=x-clever-user-type",
            "district_id=x-clever-district-id",
            "options:",
            "-",
        ],
        "{stdout}"
    );
    assert_eq!(
        under(row("hr ")),
        [
            "sends:",
            "user_id=remote-user",
            "user_type=x-clever-user-type",
            "district_id=x-clever-district-id",
            "email=x-mail",
            "access_token=x-clever-access-token",
            "assertion(aud=urn:example:hr)",
            "options:",
            "strip_path_prefix",
            "login_district_id=5d0a9e5d0958b300014e49d2",
            "confirm_students",
        ],
        "{stdout}"
    );
    assert!(
        lines.iter().all(|l| !l.starts_with("  ") || l.len() <= 100),
        "{stdout}"
    );
    assert!(!stdout.contains(secret) && !stderr.contains(secret));
}

#[test]
fn run_missing_secret_exit_2_names_variable() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, GOOD);
    let out = bin().args(["run", "--config"]).arg(&p).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CLEVER_GATEWAY_CLI_TEST_SECRET_UNSET"),
        "{stderr}"
    );
}

#[test]
fn bad_config_every_problem_with_file_line_col_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = GOOD
        .replace(
            "name = \"gradebook\"",
            "name = \"gradebook\"\npublic_path = [\"/x\"]",
        )
        .replace("[clever]", "[clever]\nclient_secret = \"inline\"");
    let p = write(&dir, &bad);
    for cmd in ["check", "run"] {
        let out = bin().args([cmd, "--config"]).arg(&p).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let file = p.display().to_string();
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&file) && l.contains("public_path")),
            "{cmd}: unknown key with location: {stderr}"
        );
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&file) && l.contains("client_secret")),
            "{cmd}: inline secret refused: {stderr}"
        );
        let line_col = stderr
            .lines()
            .find(|l| l.contains("public_path"))
            .unwrap()
            .trim_start_matches(&file)
            .split(':')
            .skip(1)
            .take(2)
            .map(|s| s.parse::<usize>().is_ok())
            .collect::<Vec<_>>();
        assert_eq!(line_col, vec![true, true], "file:line:col: {stderr}");
    }
}

#[test]
fn shipped_example_config_checks() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = bin()
        .args(["check", "--config"])
        .arg(format!("{root}/gateway.toml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `run` (with `args` before `--config`) of the good config on a port another socket holds:
/// the port and the stderr of a start that must exit 2.
fn run_on_a_taken_port(args: &[&str]) -> (u16, String) {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, &GOOD.replace("18080", &port.to_string()));
    let out = bin()
        .arg("run")
        .args(args)
        .arg("--config")
        .arg(&p)
        .env("CLEVER_GATEWAY_CLI_TEST_SECRET_UNSET", "x")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    (port, stderr)
}

#[test]
fn busy_listen_port_fails_clearly() {
    let (_, stderr) = run_on_a_taken_port(&[]);
    assert!(stderr.contains("cannot listen"), "{stderr}");
}

/// The stderr lines of a JSON-logging gateway that did not start: each must be a JSON object.
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n{stderr}"))
        })
        .collect()
}

/// With `--log-format json`, a taken listen address is reported as one JSON log line (level
/// ERROR, the plain line's text in `message`), not a plain line that breaks JSON log shipping.
#[test]
fn busy_listen_port_with_json_log_format_is_one_json_error_line() {
    let (port, stderr) = run_on_a_taken_port(&["--log-format", "json"]);
    let errors: Vec<_> = json_lines(&stderr)
        .into_iter()
        .filter(|v| v["level"] == "ERROR")
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    let message = errors[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "clever-gateway: cannot listen on 127.0.0.1:{port}: "
        )),
        "{stderr}"
    );
    assert!(errors[0]["timestamp"].is_string(), "{stderr}");
}

/// `log_format = "json"` in the file (no flag) is enough once the file is read: an unreadable
/// client secret is a JSON line naming the variable.
#[test]
fn run_missing_secret_with_json_log_format_in_file_is_a_json_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        &GOOD.replace("[server]\n", "[server]\nlog_format = \"json\"\n"),
    );
    let out = bin().args(["run", "--config"]).arg(&p).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines = json_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert_eq!(lines[0]["level"], "ERROR", "{stderr}");
    assert_eq!(
        lines[0]["message"],
        "clever-gateway: environment variable CLEVER_GATEWAY_CLI_TEST_SECRET_UNSET is not set",
        "{stderr}"
    );
}

/// `listen = ["0.0.0.0:P"]` with `admin_listen = "127.0.0.1:P"`: each address is free on its
/// own, but both cannot be bound. Pingora, binding in its service thread, retried 30 s,
/// panicked there and left the process running without the proxy listener (the admin one
/// answered). Now the file is refused as a config error naming both addresses: `check` exits 2,
/// and `run` exits 2 at once, before binding anything or writing a pid file.
#[test]
fn listeners_clashing_on_one_port_exit_2_at_once_naming_the_address() {
    let port = std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let secret = "cli-test-secret-must-not-be-printed";
    let cfg = GOOD
        .replace(
            "listen = [\"127.0.0.1:18080\"]",
            &format!(
                "listen = [\"0.0.0.0:{port}\"]\nadmin_listen = \"127.0.0.1:{port}\"\n\
                 pid_file = \"{pid}\"\nupgrade_sock = \"{sock}\"",
                pid = dir.path().join("gw.pid").display(),
                sock = dir.path().join("gw.sock").display(),
            ),
        )
        .replace("18080", &port.to_string());
    let p = write(&dir, &cfg);
    let mut child = bin()
        .args(["run", "--config"])
        .arg(&p)
        .env("CLEVER_GATEWAY_CLI_TEST_SECRET_UNSET", secret)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("err")).unwrap())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > std::time::Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(dir.path().join("err")).unwrap();
    let status = status.unwrap_or_else(|| panic!("still running after 10 s:\n{stderr}"));
    assert_eq!(status.code(), Some(2), "{stderr}");
    let clash = format!("address 127.0.0.1:{port} overlaps 0.0.0.0:{port}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(&clash)).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let check = bin().args(["check", "--config"]).arg(&p).output().unwrap();
    assert_eq!(check.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&check.stdout).contains(&clash)
            || String::from_utf8_lossy(&check.stderr).contains(&clash),
        "{check:?}"
    );
    assert!(!stderr.contains(secret), "{stderr}");
    assert!(
        !dir.path().join("gw.pid").exists(),
        "no pid file: it never ran"
    );
}

#[test]
fn assertion_key_file_unreadable_check_warns_run_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("missing-assertion-key.pem");
    let cfg = format!(
        "{GOOD}assertion = true\n\n[assertion]\nkey_file = \"{}\"\n",
        key.display()
    );
    let p = write(&dir, &cfg);
    let out = bin().args(["check", "--config"]).arg(&p).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("missing-assertion-key.pem"),
        "check warns: {stderr}"
    );
    let out = bin()
        .args(["run", "--config"])
        .arg(&p)
        .env("CLEVER_GATEWAY_CLI_TEST_SECRET_UNSET", "s")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("missing-assertion-key.pem"), "{stderr}");
}

const REDIS_PASSWORD_UNSET: &str = "\n[session]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:1/0\"\nredis_password_env = \"CLEVER_GATEWAY_CLI_TEST_REDIS_PW_UNSET\"\n";

/// Also: secrets are read before the listeners are bound, so the error names the variable even
/// when the listen port is taken (here, held by the test).
#[test]
fn run_redis_password_unset_exit_2_names_variable() {
    let dir = tempfile::tempdir().unwrap();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let p = write(
        &dir,
        &format!("{GOOD}{REDIS_PASSWORD_UNSET}").replace("18080", &port),
    );
    let out = bin()
        .args(["run", "--config"])
        .arg(&p)
        .env("CLEVER_GATEWAY_CLI_TEST_SECRET_UNSET", "set-for-this-test")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("Redis password")
            && stderr.contains("CLEVER_GATEWAY_CLI_TEST_REDIS_PW_UNSET"),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot listen"), "{stderr}");
    drop(held);
}

#[test]
fn check_redis_password_unset_warns_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, &format!("{GOOD}{REDIS_PASSWORD_UNSET}"));
    let out = bin().args(["check", "--config"]).arg(&p).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("CLEVER_GATEWAY_CLI_TEST_REDIS_PW_UNSET"),
        "{stderr}"
    );
}
