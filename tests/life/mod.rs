//! Process helpers for the logging, shutdown and reload tests: a gateway config with its own
//! pid file and upgrade socket in a temp dir, the real binary started with extra arguments and
//! its stderr in a file, and bounded waits.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clever_gateway::sim::SimHandle;

#[path = "../common/mod.rs"]
pub mod common;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clever-gateway"))
}

/// A gateway.toml on `port` in front of `app` (`url`), public below `/pub/`, with `server`
/// lines added to `[server]` (pid_file and upgrade_sock in `dir`) and `tail` appended.
pub fn config(
    port: u16,
    sim: &SimHandle,
    dir: &Path,
    server: &str,
    app: &str,
    tail: &str,
) -> String {
    let base = common::base_config(port, sim, "").replacen(
        "threads = 2\n",
        &format!(
            "threads = 2\npid_file = \"{}\"\nupgrade_sock = \"{}\"\n{server}\n",
            dir.join("gw.pid").display(),
            dir.join("gw.sock").display()
        ),
        1,
    );
    format!(
        "{base}\n[[upstream]]\nname = \"app\"\nurl = \"http://{app}\"\npublic_paths = [\"/pub/\"]\n{tail}\n"
    )
}

/// `clever-gateway <args…> --config <cfg>` with the client secret set, stdin closed, stdout
/// discarded and stderr appended to `log` (a file, never a pipe: a daemon started from here
/// would keep a pipe open long after this process is gone).
pub fn spawn(args: &[&str], cfg: &Path, log: &Path, secret: &str) -> Child {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    bin()
        .args(args)
        .arg("--config")
        .arg(cfg)
        .env(common::SECRET_ENV, secret)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(file))
        .spawn()
        .expect("spawn clever-gateway")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Starts `clever-gateway run <args…>` with the config `cfg(port, &sim)` written to `f.cfg`, a
/// simulator for `port` and stderr in `f.log`, and waits until it answers; starts again on
/// another port when the one it was given was taken before it bound it (free-port race).
pub async fn run_on_a_free_port(
    f: &Files,
    args: &[&str],
    cfg: impl Fn(u16, &SimHandle) -> String,
) -> (Reaper, u16, SimHandle) {
    common::on_a_free_port(async |port| {
        let sim = common::sim_for(port, None).await;
        f.write_config(&cfg(port, &sim));
        // A fresh log per try: the port check below reads it.
        let _ = std::fs::remove_file(&f.log);
        let run: Vec<&str> = std::iter::once("run").chain(args.iter().copied()).collect();
        let mut gw = Reaper(spawn(&run, &f.cfg, &f.log, sim.client_secret()));
        wait_healthy(port, &mut gw.0, &f.log).await?;
        Ok((gw, port, sim))
    })
    .await
}

/// Waits (at most 20 s) until `/_gateway/healthz` answers 200 on `port`; `Err` when the gateway
/// exited because the port was taken.
async fn wait_healthy(port: u16, child: &mut Child, log: &Path) -> Result<(), common::PortTaken> {
    // A timeout per probe: a process that took the port may accept and never answer.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/_gateway/healthz"))
            .send()
            .await
        {
            if r.status() == 200 {
                return Ok(());
            }
        }
        if !matches!(child.try_wait(), Ok(None)) {
            let logs = read(log);
            if common::port_taken(&logs) {
                return Err(common::PortTaken(logs));
            }
            panic!("gateway exited early:\n{logs}");
        }
        assert!(
            Instant::now() < deadline,
            "gateway did not start:\n{}",
            read(log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits at most `limit` for `child` to exit; its exit status and how long it took.
pub async fn wait_exit(
    child: &mut Child,
    limit: Duration,
) -> Option<(std::process::ExitStatus, Duration)> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some((status, start.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Kills `child` when dropped (a failed assertion must not leave a gateway running).
pub struct Reaper(pub Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Paths of one test's files.
pub struct Files {
    pub dir: tempfile::TempDir,
    pub cfg: PathBuf,
    pub log: PathBuf,
}

impl Files {
    pub fn new() -> Files {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("gateway.toml");
        let log = dir.path().join("gateway.log");
        Files { dir, cfg, log }
    }

    pub fn write_config(&self, text: &str) {
        // Write then rename, as an editor or a config manager would: never a half file.
        let tmp = self.dir.path().join("gateway.toml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.cfg).unwrap();
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.path().join("gw.pid")
    }
}

/// A test app that answers `"<name> <path>"`; `/pub/slow/<ms>` answers after `<ms>`
/// milliseconds (at most 10 s).
pub async fn start_app(name: &'static str) -> std::net::SocketAddr {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| async move {
                        let path = req.uri().path().to_owned();
                        if let Some(ms) = path.strip_prefix("/pub/slow/") {
                            let ms = ms.parse::<u64>().unwrap_or(0).min(10_000);
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                        }
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            bytes::Bytes::from(format!("{name} {path}")),
                        )))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

/// Kills, when dropped, every process whose command line names this config file (the
/// daemons a test started through `run --daemon` or `reload`, which are not its children), so
/// a failed assertion never leaves a gateway running.
pub struct KillOnDrop(pub PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let me = std::process::id();
        let needle = self.0.to_string_lossy().into_owned();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in procs.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if pid != me && cmdline.contains("clever-gateway") && cmdline.contains(&needle) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// Whether `pid` is a live process (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    clever_gateway::process::lifecycle::process_state(pid as i32)
        == clever_gateway::process::lifecycle::ProcessState::Running
}

/// Waits at most `limit` for `pid` (not a child) to be gone; how long it took.
pub async fn wait_gone(pid: u32, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if !alive(pid) {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Runs `clever-gateway <args> --config <cfg>` to completion with stdout in a file and stderr
/// in `err` (never pipes: a daemon it starts keeps them open and logs to `err` from then on).
/// Exit code, stdout, and what `err` held when it exited.
pub async fn run_cmd(
    args: &[&str],
    cfg: &Path,
    secret: &str,
    err: &Path,
) -> (Option<i32>, String, String) {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out");
    let mut cmd = bin();
    cmd.args(args)
        .arg("--config")
        .arg(cfg)
        .env(common::SECRET_ENV, secret)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(err).unwrap());
    let status = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    (status.code(), read(&out), read(err))
}
