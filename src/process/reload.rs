//! `clever-gateway reload`: replaces the running gateway with a new process that reads the
//! (changed) config, without closing the listening sockets, using pingora's upgrade:
//!
//! 1. the running gateway is found through `server.pid_file` (and must be a live process of
//!    this program, so a stale file never gets a random process signalled);
//! 2. `clever-gateway run --upgrade --daemon --config F` is started; it validates, forks and
//!    returns; its daemon rewrites the pid file and binds `server.upgrade_sock`;
//! 3. once the upgrade socket exists, the old process is sent SIGQUIT: it hands its listening
//!    sockets over, keeps serving 5 s alongside the new one (pingora's close timeout), then
//!    drains like on SIGTERM;
//! 4. the new process is alive after taking the sockets (it removes the upgrade socket then)
//!    and `/_gateway/healthz` answers;
//! 5. success is the old process gone: until then both configs answer (pingora keeps the old
//!    one accepting for 5 s), so when `reload` returns only the new config is in effect;
//! 6. and every listener of the new config answers: one the old process still held without
//!    handing it over is the new one's once the old one is gone, and one another program
//!    holds makes the new process exit (`listeners::RELEASE_WAIT`).
//!
//! Before step 3 every failure leaves the old process untouched (and the pid file naming it).
//! No pingora here: only files, processes and signals.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::config::ServerConfig;
use crate::process::lifecycle::{
    process_name, process_state, read_pid_file, signal, write_pid, PidFileError, ProcessState,
};

/// How long pingora keeps a process accepting after it sent its sockets to a new one.
const PINGORA_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long each step may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For `run --daemon --upgrade` to come back (it reads the config, builds, forks).
    pub start: Duration,
    /// For the daemon to write the pid file and bind the upgrade socket after that.
    pub socket_ready: Duration,
    /// For the socket handover after SIGQUIT (pingora polls for it once a second).
    pub takeover: Duration,
    /// For `/_gateway/healthz` to answer afterwards.
    pub serving: Duration,
    /// For the old process to exit, beyond pingora's 5 s and the grace period.
    pub old_exit_margin: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            start: Duration::from_secs(60),
            socket_ready: Duration::from_secs(10),
            takeover: Duration::from_secs(10),
            serving: Duration::from_secs(5),
            old_exit_margin: Duration::from_secs(5),
        }
    }
}

/// What to reload.
#[derive(Debug, Clone)]
pub struct Plan {
    /// This program, to start the new process with.
    pub exe: PathBuf,
    /// The config file, passed on as given.
    pub config_path: PathBuf,
    /// `[server]` of that (already validated) file.
    pub server: ServerConfig,
    /// More arguments for `run` (e.g. `--log-format json`).
    pub extra_args: Vec<OsString>,
    pub limits: Limits,
}

/// A finished reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reloaded {
    pub old_pid: i32,
    pub new_pid: i32,
    pub took: Duration,
}

/// Why a reload did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(
        "no running gateway found: {} does not exist. Start it with `clever-gateway run`; if \
         server.pid_file or (with the default pid_file) the first listen address changed, \
         restart the gateway instead of reloading",
        .0.display()
    )]
    NoPidFile(PathBuf),
    #[error(transparent)]
    PidFile(#[from] PidFileError),
    #[error("no running gateway found: {} names process {pid}, which is not running", .path.display())]
    Stale { path: PathBuf, pid: i32 },
    #[error(
        "{} names process {pid} ({name:?}), which is not {me:?}: the pid file is stale, not \
         signalling it",
        .path.display()
    )]
    NotOurs {
        path: PathBuf,
        pid: i32,
        name: String,
        me: String,
    },
    #[error("process {pid} belongs to another user: run reload as the gateway's user")]
    NotPermitted { pid: i32 },
    #[error("cannot start {}: {source}", .exe.display())]
    Spawn {
        exe: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the new gateway process did not start ({status}; its messages are above); the running \
         gateway (pid {old_pid}) was not touched"
    )]
    NewFailed { status: String, old_pid: i32 },
    #[error(
        "the new gateway process {step}; it was stopped and the running gateway (pid {old_pid}) \
         was not touched"
    )]
    NewNotReady { step: String, old_pid: i32 },
    #[error(
        "cannot send SIGQUIT to the running gateway (pid {old_pid}): {errno}; the new process \
         was stopped"
    )]
    Signal {
        old_pid: i32,
        errno: nix::errno::Errno,
    },
    #[error(
        "the new gateway process (pid {new_pid}) serves, but the old one (pid {old_pid}) did \
         not exit within {waited:?}: both are answering; check the old process's logs"
    )]
    OldStays {
        old_pid: i32,
        new_pid: i32,
        waited: Duration,
    },
    #[error(
        "the new gateway process (pid {new_pid}) {step} after the old one (pid {old_pid}) was \
         told to hand over; check the logs and restart the gateway"
    )]
    Takeover {
        step: String,
        old_pid: i32,
        new_pid: i32,
    },
}

/// Runs the reload; `progress` gets one line per step.
pub fn reload(plan: &Plan, mut progress: impl FnMut(&str)) -> Result<Reloaded, ReloadError> {
    let started = Instant::now();
    let pid_file = &plan.server.pid_file;
    let sock = &plan.server.upgrade_sock;
    let old_pid = running_gateway(pid_file)?;
    progress(&format!("running gateway: pid {old_pid}"));

    // A socket file left by an earlier, interrupted upgrade: nobody waits on it now.
    if is_socket(sock) {
        let _ = std::fs::remove_file(sock);
    }

    let mut cmd = Command::new(&plan.exe);
    cmd.arg("run")
        .arg("--upgrade")
        .arg("--daemon")
        .arg("--config")
        .arg(&plan.config_path)
        .args(&plan.extra_args)
        .stdin(Stdio::null());
    let mut child = cmd.spawn().map_err(|source| ReloadError::Spawn {
        exe: plan.exe.clone(),
        source,
    })?;
    // Undoes what the new process may have done before the old one is signalled: stops it
    // (`new_pid`, or whichever other process of ours its daemon wrote into the pid file) and
    // gives the pid file back to the old one.
    let abandon = |new_pid: Option<i32>| {
        let written = read_pid_file(pid_file).ok();
        for pid in [new_pid, written].into_iter().flatten() {
            if pid != old_pid && process_state(pid) == ProcessState::Running {
                let _ = signal(pid, Signal::SIGKILL);
            }
        }
        if written != Some(old_pid) {
            let _ = write_pid(pid_file, old_pid);
        }
    };
    let status = match wait_child(&mut child, plan.limits.start) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            abandon(None);
            return Err(ReloadError::NewNotReady {
                step: format!("did not come up within {:?}", plan.limits.start),
                old_pid,
            });
        }
    };
    if !status.success() {
        abandon(None);
        return Err(ReloadError::NewFailed {
            status: describe(status),
            old_pid,
        });
    }
    // The daemon writes the pid file after the fork (pingora renamed the old one to
    // `<pid_file>.old` before it), then binds the upgrade socket.
    let mut new_pid = None;
    let ready = wait_until(plan.limits.socket_ready, || {
        if new_pid.is_none() {
            new_pid = read_pid_file(pid_file).ok().filter(|pid| *pid != old_pid);
        }
        new_pid.is_some_and(|pid| is_socket(sock) || process_state(pid) != ProcessState::Running)
    });
    let Some(new_pid) = new_pid else {
        abandon(None);
        return Err(ReloadError::NewNotReady {
            step: format!(
                "did not write its pid file within {:?}",
                plan.limits.socket_ready
            ),
            old_pid,
        });
    };
    let running = process_state(new_pid) == ProcessState::Running;
    if !ready || !running {
        // Which of the two tells an operator where to look: its log, or the machine's load.
        let step = match running {
            true => format!(
                "(pid {new_pid}) did not open {} within {:?}",
                sock.display(),
                plan.limits.socket_ready
            ),
            false => format!("(pid {new_pid}) exited before opening {}", sock.display()),
        };
        abandon(Some(new_pid));
        return Err(ReloadError::NewNotReady { step, old_pid });
    }
    progress(&format!(
        "new gateway: pid {new_pid}, waiting for the sockets on {}",
        sock.display()
    ));

    if let Err(errno) = signal(old_pid, Signal::SIGQUIT) {
        abandon(Some(new_pid));
        return Err(ReloadError::Signal { old_pid, errno });
    }
    progress(&format!(
        "sent SIGQUIT to pid {old_pid}: it hands its sockets over"
    ));

    let takeover_failed = |step: String| ReloadError::Takeover {
        step,
        old_pid,
        new_pid,
    };
    // Pingora removes the socket file once the sockets arrived (or when it gives up, and then
    // exits).
    let handed = wait_until(plan.limits.takeover, || {
        !sock.exists() || process_state(new_pid) != ProcessState::Running
    });
    if !handed {
        return Err(takeover_failed(format!(
            "did not receive the sockets within {:?}",
            plan.limits.takeover
        )));
    }
    std::thread::sleep(Duration::from_millis(200));
    if process_state(new_pid) != ProcessState::Running {
        return Err(takeover_failed("exited".to_owned()));
    }
    if !wait_until(plan.limits.serving, || serving(&plan.server)) {
        return Err(takeover_failed(format!(
            "took the sockets but /_gateway/healthz did not answer within {:?}",
            plan.limits.serving
        )));
    }
    progress(&format!(
        "pid {new_pid} serves; pid {old_pid} finishes its requests in flight and exits"
    ));
    // Pingora keeps the old process accepting for 5 s after the handover, then it drains.
    let waited = PINGORA_CLOSE_TIMEOUT + plan.server.grace_period + plan.limits.old_exit_margin;
    if !wait_until(waited, || process_state(old_pid) != ProcessState::Running) {
        return Err(ReloadError::OldStays {
            old_pid,
            new_pid,
            waited,
        });
    }
    let mut silent = None;
    let everywhere = wait_until(plan.limits.serving, || {
        silent = not_serving(&plan.server);
        silent.is_none() && process_state(new_pid) == ProcessState::Running
    });
    if !everywhere {
        return Err(takeover_failed(match silent {
            Some(addr) => format!("does not answer on {addr}"),
            None => "exited".to_owned(),
        }));
    }
    Ok(Reloaded {
        old_pid,
        new_pid,
        took: started.elapsed(),
    })
}

/// The pid of the gateway the pid file names, if it is a live process of this program.
fn running_gateway(pid_file: &Path) -> Result<i32, ReloadError> {
    let pid = match read_pid_file(pid_file) {
        Ok(pid) => pid,
        Err(PidFileError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(ReloadError::NoPidFile(pid_file.to_path_buf()))
        }
        Err(e) => return Err(e.into()),
    };
    match process_state(pid) {
        ProcessState::Running => {}
        ProcessState::Gone => {
            return Err(ReloadError::Stale {
                path: pid_file.to_path_buf(),
                pid,
            })
        }
        ProcessState::NotPermitted => return Err(ReloadError::NotPermitted { pid }),
    }
    // A recycled pid must not get SIGQUIT (its default action kills most programs).
    if let (Some(name), Some(me)) = (process_name(pid), process_name(std::process::id() as i32)) {
        if name != me {
            return Err(ReloadError::NotOurs {
                path: pid_file.to_path_buf(),
                pid,
                name,
                me,
            });
        }
    }
    Ok(pid)
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => format!("{status}"),
    }
}

fn wait_child(child: &mut std::process::Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => return None,
        }
    }
}

/// Polls `done` every 20 ms for at most `limit`.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Where to reach a listener from this host (an unspecified address through loopback).
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// `/_gateway/healthz` answers 200 on the first plain listener (a TLS-only gateway: its first
/// TLS listener accepts connections).
fn serving(server: &ServerConfig) -> bool {
    match (server.listen.first(), server.tls_listen.first()) {
        (Some(addr), _) => healthz_ok(*addr),
        (None, Some(addr)) => accepts(*addr),
        (None, None) => false,
    }
}

/// The first listener that does not answer: `/_gateway/healthz` with 200 on the plain and
/// admin listeners, a connection on the TLS ones.
fn not_serving(server: &ServerConfig) -> Option<SocketAddr> {
    let mut plain = server.listen.iter().chain(&server.admin_listen).copied();
    plain.find(|addr| !healthz_ok(*addr)).or_else(|| {
        server
            .tls_listen
            .iter()
            .copied()
            .find(|addr| !accepts(*addr))
    })
}

const PROBE_LIMIT: Duration = Duration::from_secs(2);

/// A plain-HTTP `GET /_gateway/healthz` on `addr` answers 200.
fn healthz_ok(addr: SocketAddr) -> bool {
    let addr = reachable(addr);
    let Ok(mut s) = TcpStream::connect_timeout(&addr, PROBE_LIMIT) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(PROBE_LIMIT));
    let _ = s.set_write_timeout(Some(PROBE_LIMIT));
    let req =
        format!("GET /_gateway/healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Something accepts connections on `addr`.
fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&reachable(addr), PROBE_LIMIT).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_with(dir: &Path) -> ServerConfig {
        let src = format!(
            "[server]\nlisten = [\"127.0.0.1:1\"]\npid_file = \"{}/gw.pid\"\n\
             upgrade_sock = \"{}/gw.sock\"\n\
             [clever]\nclient_id = \"id\"\nclient_secret_env = \"S\"\n\
             redirect_uri = \"https://gw.example.org/cb\"\n\
             [[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9000\"\n",
            dir.display(),
            dir.display()
        );
        crate::config::parse_str(&src, "t.toml").unwrap().server
    }

    fn plan(dir: &Path) -> Plan {
        Plan {
            exe: PathBuf::from("/nonexistent/clever-gateway"),
            config_path: dir.join("gateway.toml"),
            server: server_with(dir),
            extra_args: Vec::new(),
            limits: Limits::default(),
        }
    }

    #[test]
    fn reload_without_pid_file_says_none_is_running() {
        let dir = tempfile::tempdir().unwrap();
        let e = reload(&plan(dir.path()), |_| {}).unwrap_err();
        assert!(matches!(e, ReloadError::NoPidFile(_)), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("no running gateway found"), "{text}");
        assert!(text.contains("gw.pid does not exist"), "{text}");
    }

    #[test]
    fn reload_with_stale_pid_file_names_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        write_pid(&dir.path().join("gw.pid"), pid).unwrap();
        let e = reload(&plan(dir.path()), |_| {}).unwrap_err();
        assert!(
            matches!(e, ReloadError::Stale { pid: p, .. } if p == pid),
            "{e:?}"
        );
    }

    #[test]
    fn reload_never_signals_a_process_of_another_program() {
        let dir = tempfile::tempdir().unwrap();
        let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
        write_pid(&dir.path().join("gw.pid"), sleeper.id() as i32).unwrap();
        let e = reload(&plan(dir.path()), |_| {}).unwrap_err();
        let alive = process_state(sleeper.id() as i32) == ProcessState::Running;
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        assert!(
            matches!(&e, ReloadError::NotOurs { name, .. } if name == "sleep"),
            "{e:?}"
        );
        assert!(alive, "the other program was not signalled");
    }

    #[test]
    fn reload_spawn_failure_leaves_pid_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        let pid_file = dir.path().join("gw.pid");
        write_pid(&pid_file, me).unwrap();
        let e = reload(&plan(dir.path()), |_| {}).unwrap_err();
        assert!(matches!(e, ReloadError::Spawn { .. }), "{e:?}");
        assert_eq!(read_pid_file(&pid_file).unwrap(), me);
    }

    /// A stand-in for `run --upgrade --daemon`: returns at once, its "daemon" (`daemon`, a
    /// shell command run in the background) written into the pid file, and no upgrade socket.
    fn fake_new_process(dir: &Path, daemon: &str) -> Plan {
        let exe = dir.join("fake-gateway");
        let pid_file = dir.join("gw.pid");
        let script = format!(
            "#!/bin/sh\n{daemon} &\necho $! > '{}'\n",
            pid_file.display()
        );
        std::fs::write(&exe, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut plan = plan(dir);
        plan.exe = exe;
        plan.limits.socket_ready = Duration::from_millis(500);
        plan
    }

    /// A new process that never opens the upgrade socket is told apart from one that exited,
    /// and either way the old one keeps its pid file and is not signalled.
    #[test]
    fn reload_says_whether_the_new_process_hung_or_exited_before_its_socket() {
        let me = std::process::id() as i32;
        for (daemon, expected) in [
            ("sleep 30", "did not open"),
            ("exit 0", "exited before opening"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let pid_file = dir.path().join("gw.pid");
            write_pid(&pid_file, me).unwrap();
            let e = reload(&fake_new_process(dir.path(), daemon), |_| {}).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, ReloadError::NewNotReady { .. }), "{e:?}");
            assert!(
                text.contains(expected) && text.contains("gw.sock"),
                "{text}"
            );
            assert_eq!(read_pid_file(&pid_file).unwrap(), me, "{text}");
        }
    }

    #[test]
    fn reachable_maps_unspecified_to_loopback() {
        assert_eq!(
            reachable("0.0.0.0:8080".parse().unwrap()),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            reachable("[::]:8443".parse().unwrap()),
            "[::1]:8443".parse().unwrap()
        );
        assert_eq!(
            reachable("10.1.2.3:80".parse().unwrap()),
            "10.1.2.3:80".parse().unwrap()
        );
    }

    /// A listener on loopback that answers every connection with `status` (read first).
    fn answering(status: &'static str) -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut s in l.incoming().flatten() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                );
            }
        });
        addr
    }

    fn closed() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[test]
    fn not_serving_none_when_plain_admin_and_tls_listeners_answer() {
        let dir = tempfile::tempdir().unwrap();
        let mut server = server_with(dir.path());
        server.listen = vec![answering("200 OK"), answering("200 OK")];
        server.admin_listen = Some(answering("200 OK"));
        server.tls_listen = vec![answering("400 Bad Request")];
        assert_eq!(not_serving(&server), None);
    }

    #[test]
    fn not_serving_names_the_first_listener_that_does_not_answer() {
        let dir = tempfile::tempdir().unwrap();
        let mut server = server_with(dir.path());
        let (ok, other) = (answering("200 OK"), answering("404 Not Found"));
        server.listen = vec![ok];
        server.admin_listen = Some(other);
        assert_eq!(not_serving(&server), Some(other), "admin answers 404");
        let gone = closed();
        server.admin_listen = None;
        server.tls_listen = vec![gone];
        assert_eq!(not_serving(&server), Some(gone), "nothing on the TLS port");
    }

    #[test]
    fn wait_until_is_bounded() {
        let start = Instant::now();
        assert!(!wait_until(Duration::from_millis(100), || false));
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(wait_until(Duration::from_secs(5), || true));
    }
}
