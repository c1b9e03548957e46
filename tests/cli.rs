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

#[test]
fn busy_listen_port_fails_clearly() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, &GOOD.replace("18080", &port.to_string()));
    let out = bin()
        .args(["run", "--config"])
        .arg(&p)
        .env("CLEVER_GATEWAY_CLI_TEST_SECRET_UNSET", "x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen"), "{stderr}");
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

#[test]
fn run_redis_password_unset_exit_2_names_variable() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, &format!("{GOOD}{REDIS_PASSWORD_UNSET}"));
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
