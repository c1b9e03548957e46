//! Test support: throwaway `redis-server`s on free loopback ports (no persistence), replicas of
//! them, and `redis-sentinel`s watching them, for the store conformance suite, the two-replica
//! integration tests and the failover test. Not used by the gateway.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process; killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    password: Option<String>,
    /// Certificate and key files: TLS only (`rediss://`), no plain port.
    tls: Option<(PathBuf, PathBuf)>,
    /// The port of the primary this server replicates.
    replica_of: Option<u16>,
    child: Option<Child>,
    dir: PathBuf,
}

/// Whether `redis-server` can be started here (it is on `PATH`).
pub fn redis_server_available() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The message a test prints when it cannot run for lack of `redis-server`.
pub const SKIPPED: &str =
    "SKIPPED: redis-server is not on PATH (install Debian's redis-server package; .ci/run does)";

impl RedisServer {
    /// Starts a server on a free loopback port, or `None` when `redis-server` is not installed.
    pub fn start() -> Option<RedisServer> {
        Self::start_with_password(None)
    }

    /// As [`RedisServer::start`], requiring `password` (`requirepass`).
    pub fn start_with_password(password: Option<&str>) -> Option<RedisServer> {
        Self::start_with(password, None)
    }

    /// A TLS-only server (`rediss://`) with this PEM certificate and key; no client certificates.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Option<RedisServer> {
        Self::start_with(None, Some((cert.to_path_buf(), key.to_path_buf())))
    }

    /// A replica of `primary` (with its password), started and in sync with it.
    pub fn start_replica_of(primary: &RedisServer) -> Option<RedisServer> {
        Self::start_as(primary.password.as_deref(), None, Some(primary.port))
    }

    fn start_with(password: Option<&str>, tls: Option<(PathBuf, PathBuf)>) -> Option<RedisServer> {
        Self::start_as(password, tls, None)
    }

    fn start_as(
        password: Option<&str>,
        tls: Option<(PathBuf, PathBuf)>,
        replica_of: Option<u16>,
    ) -> Option<RedisServer> {
        if !redis_server_available() {
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let dir = std::env::temp_dir().join(format!(
            "clever-gateway-redis-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("redis test dir");
        let mut server = RedisServer {
            port,
            password: password.map(str::to_string),
            tls,
            replica_of,
            child: None,
            dir,
        };
        server.restart();
        if let Some(primary) = replica_of {
            // In sync on both sides, and acknowledging: after a sync the primary streams writes
            // to a replica only from its first acknowledgement on (up to a second later), and
            // until then a WAIT times out.
            let probe = [
                "SET clever-gateway-test:probe 1",
                "WAIT 1 100",
                "DEL clever-gateway-test:probe",
            ];
            let deadline = Instant::now() + Duration::from_secs(10);
            while !server
                .command("INFO replication")
                .is_ok_and(|i| i.contains("master_link_status:up"))
                || !send_all(primary, password, &probe)
                    .is_ok_and(|r| r.ends_with("+OK\r\n:1\r\n:1\r\n"))
            {
                assert!(Instant::now() < deadline, "replica did not sync");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Some(server)
    }

    /// `redis://127.0.0.1:PORT/0`, `rediss://` with TLS (never with the password: the gateway
    /// refuses that).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (Redis "down"); its data is gone (no persistence).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// (Re)starts the server on the same port and waits until it answers PING.
    pub fn restart(&mut self) {
        self.stop();
        let mut cmd = Command::new("redis-server");
        match &self.tls {
            None => cmd.args(["--port", &self.port.to_string()]),
            Some((cert, key)) => cmd
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .args(["--tls-auth-clients", "no"]),
        };
        cmd.args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            // A replica syncs at once (the default waits 5 s for more replicas to join).
            .args(["--repl-diskless-sync-delay", "0"])
            // DEBUG SLEEP makes a slow Redis in tests.
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(pw) = &self.password {
            cmd.args(["--requirepass", pw, "--masterauth", pw]);
        }
        if let Some(port) = self.replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &port.to_string()]);
        }
        self.child = Some(cmd.spawn().expect("spawn redis-server"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers_ping() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one inline command and returns the raw reply (for tests: `INFO memory`, `DBSIZE`).
    /// Plain servers only.
    pub fn command(&self, line: &str) -> std::io::Result<String> {
        send(self.port, self.password.as_deref(), line)
    }

    /// A `command` sender for this server, to use from another thread.
    pub fn command_on(&self) -> impl Fn(&str) -> std::io::Result<String> + Send {
        let (port, password) = (self.port, self.password.clone());
        move |line| send(port, password.as_deref(), line)
    }

    /// Freezes the process (SIGSTOP): it holds its connections and answers nothing, like a
    /// stalled host. [`RedisServer::resume`] thaws it.
    pub fn pause(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
        // The signal is delivered asynchronously: wait until the process is stopped (state T).
        let Some(pid) = self.child.as_ref().map(Child::id) else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T'))
        }) {
            assert!(Instant::now() < deadline, "redis-server did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills the process with SIGKILL, as a crashed host, without needing `&mut` (the child is
    /// reaped by [`RedisServer::stop`] or on drop).
    pub fn kill(&self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
    }

    pub fn resume(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(c) = &self.child {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            nix::sys::signal::kill(pid, sig).expect("signal redis-server");
        }
    }

    fn answers_ping(&self) -> bool {
        if self.tls.is_some() {
            // No TLS client here: a listening port is enough.
            return TcpStream::connect(("127.0.0.1", self.port)).is_ok();
        }
        // Before AUTH a protected server answers -NOAUTH: it is up all the same.
        self.command("PING")
            .is_ok_and(|r| r.contains("+PONG") || r.contains("NOAUTH"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A paused server must run again to die of anything but SIGKILL; stop() sends that.
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The name the test Sentinels monitor their primary under.
pub const MASTER_NAME: &str = "gateway";

/// Whether `redis-sentinel` can be started here (Debian's redis-sentinel package).
pub fn redis_sentinel_available() -> bool {
    Command::new("redis-sentinel")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The message a test prints when it cannot run for lack of `redis-sentinel`.
pub const SKIPPED_SENTINEL: &str = "SKIPPED: redis-server or redis-sentinel is not on PATH \
     (install Debian's redis-server and redis-sentinel packages; .ci/run does)";

/// `redis-sentinel` processes on free loopback ports watching one primary as [`MASTER_NAME`];
/// killed on drop.
#[derive(Debug)]
pub struct Sentinels {
    ports: Vec<u16>,
    children: Vec<Child>,
    dir: PathBuf,
}

impl Sentinels {
    /// `n` Sentinels watching `primary` with quorum `n / 2 + 1`, declaring it down after
    /// `down_after_ms` without an answer. They know its password; `password` is their own
    /// (`requirepass`). With a TLS primary they speak TLS only, to it and to clients, with its
    /// certificate. `None` without `redis-sentinel`.
    pub fn start(
        n: usize,
        primary: &RedisServer,
        down_after_ms: u64,
        password: Option<&str>,
    ) -> Option<Sentinels> {
        if !redis_sentinel_available() {
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "clever-gateway-sentinel-{}-{}",
            std::process::id(),
            primary.port
        ));
        std::fs::create_dir_all(&dir).expect("sentinel test dir");
        let mut s = Sentinels {
            ports: Vec::new(),
            children: Vec::new(),
            dir,
        };
        for _ in 0..n {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free loopback port");
            let listen = match &primary.tls {
                None => format!("port {port}"),
                Some((cert, key)) => format!(
                    "port 0\ntls-port {port}\ntls-cert-file {cert}\ntls-key-file {key}\n\
                     tls-ca-cert-file {cert}\ntls-auth-clients no\ntls-replication yes",
                    cert = cert.display(),
                    key = key.display()
                ),
            };
            let mut conf = format!(
                "{listen}\nbind 127.0.0.1\ndir {dir}\nlogfile {dir}/sentinel-{port}.log\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {primary} {quorum}\n\
                 sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}\n\
                 sentinel failover-timeout {MASTER_NAME} 10000\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir = s.dir.display(),
                primary = primary.port,
                quorum = n / 2 + 1,
            );
            if let Some(pw) = &primary.password {
                conf.push_str(&format!("sentinel auth-pass {MASTER_NAME} {pw}\n"));
            }
            if let Some(pw) = password {
                conf.push_str(&format!("requirepass {pw}\n"));
            }
            let file = s.dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(&file, conf).expect("sentinel config");
            let child = Command::new("redis-sentinel")
                .arg(&file)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-sentinel");
            s.ports.push(port);
            s.children.push(child);
            let deadline = Instant::now() + Duration::from_secs(10);
            let up = || match primary.tls {
                // No TLS client here: a listening port is enough.
                Some(_) => TcpStream::connect(("127.0.0.1", port)).is_ok(),
                None => send(port, password, "PING")
                    .is_ok_and(|r| r.contains("+PONG") || r.contains("NOAUTH")),
            };
            while !up() {
                assert!(Instant::now() < deadline, "redis-sentinel did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Some(s)
    }

    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// `redis_sentinels = [...]` and `redis_master_name` lines for `[session]`.
    pub fn toml(&self) -> String {
        let list: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect();
        format!(
            "redis_sentinels = [{}]\nredis_master_name = \"{MASTER_NAME}\"\n",
            list.join(", ")
        )
    }

    /// One inline command to Sentinel `i` (with its password); the raw reply.
    pub fn command(&self, i: usize, password: Option<&str>, line: &str) -> std::io::Result<String> {
        send(self.ports[i], password, line)
    }

    /// Waits until every Sentinel sees `replicas` healthy replicas (linked, their INFO read)
    /// and all the other Sentinels: only then can they agree on a failover and find a replica
    /// to promote.
    pub fn wait_ready(&self, replicas: usize, password: Option<&str>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for i in 0..self.ports.len() {
            loop {
                let master = self
                    .command(i, password, &format!("SENTINEL MASTER {MASTER_NAME}"))
                    .unwrap_or_default();
                let known = self
                    .command(i, password, &format!("SENTINEL REPLICAS {MASTER_NAME}"))
                    .unwrap_or_default();
                // Values follow their field's name, after the bulk length line.
                let values = |reply: &str, name: &str| -> Vec<String> {
                    let lines: Vec<&str> = reply.lines().collect();
                    lines
                        .iter()
                        .enumerate()
                        .filter(|(_, l)| **l == name)
                        .filter_map(|(at, _)| lines.get(at + 2).map(|v| v.to_string()))
                        .collect()
                };
                // Linked, and its INFO read (a replica without one is never promoted).
                let healthy = values(&known, "flags")
                    .iter()
                    .zip(values(&known, "info-refresh"))
                    .filter(|(flags, refresh)| *flags == "slave" && refresh != "0")
                    .count();
                let others = values(&master, "num-other-sentinels");
                if healthy == replicas && others == [(self.ports.len() - 1).to_string()] {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "Sentinel {i} does not see the topology yet:\n{master}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The port of the primary as Sentinel `i` names it now.
    pub fn primary_port(&self, i: usize, password: Option<&str>) -> Option<u16> {
        let r = self
            .command(
                i,
                password,
                &format!("SENTINEL GET-MASTER-ADDR-BY-NAME {MASTER_NAME}"),
            )
            .ok()?;
        let lines: Vec<&str> = r.lines().collect();
        // *2, $9, 127.0.0.1, $N, <port>
        lines.get(4)?.parse().ok()
    }

    /// What the Sentinels logged (for failure messages).
    pub fn logs(&self) -> String {
        self.ports
            .iter()
            .map(|p| {
                let log = std::fs::read_to_string(self.dir.join(format!("sentinel-{p}.log")))
                    .unwrap_or_default();
                format!("--- sentinel {p}\n{log}")
            })
            .collect()
    }
}

impl Drop for Sentinels {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A primary, one replica of it, and Sentinels watching them: the smallest topology that can
/// fail over. Drop order: Sentinels first (they would otherwise start a failover).
#[derive(Debug)]
pub struct RedisHa {
    pub sentinels: Sentinels,
    pub primary: RedisServer,
    pub replica: RedisServer,
}

impl RedisHa {
    /// `n` Sentinels (see [`Sentinels::start`]); waits until they see the replica and each
    /// other. `None` without `redis-server` or `redis-sentinel`.
    pub fn start(n: usize, down_after_ms: u64) -> Option<RedisHa> {
        let primary = RedisServer::start()?;
        let replica = RedisServer::start_replica_of(&primary)?;
        let sentinels = Sentinels::start(n, &primary, down_after_ms, None)?;
        sentinels.wait_ready(1, None);
        Some(RedisHa {
            sentinels,
            primary,
            replica,
        })
    }
}

/// One inline command to a plain server (or Sentinel) on loopback `port`; the raw reply
/// (after the `+OK` of `AUTH` when there is a password). Reads until the replies are complete:
/// Sentinel does not know `QUIT`, so the connection cannot be left to close.
fn send(port: u16, password: Option<&str>, line: &str) -> std::io::Result<String> {
    send_all(port, password, &[line])
}

/// Several inline commands on one connection; the raw replies.
fn send_all(port: u16, password: Option<&str>, lines: &[&str]) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut req = String::new();
    let mut replies = lines.len();
    if let Some(pw) = password {
        req.push_str(&format!("AUTH {pw}\r\n"));
        replies += 1;
    }
    for line in lines {
        req.push_str(line);
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes())?;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if resp_values_end(&out, replies).is_some() {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if out.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Where `n` complete RESP2 values starting at the beginning of `buf` end, if they are all
/// there.
fn resp_values_end(buf: &[u8], n: usize) -> Option<usize> {
    let mut at = 0;
    for _ in 0..n {
        at = resp_value_end(buf, at)?;
    }
    Some(at)
}

fn resp_value_end(buf: &[u8], at: usize) -> Option<usize> {
    let line_end = at + buf.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
    let next = line_end + 2;
    let len = || -> Option<i64> {
        std::str::from_utf8(&buf[at + 1..line_end])
            .ok()?
            .parse()
            .ok()
    };
    match buf.get(at)? {
        b'+' | b'-' | b':' => Some(next),
        b'$' => match len()? {
            n if n < 0 => Some(next),
            n => {
                let end = next + n as usize + 2;
                (buf.len() >= end).then_some(end)
            }
        },
        b'*' => match len()? {
            n if n < 0 => Some(next),
            n => resp_values_end(&buf[next..], n as usize).map(|e| next + e),
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::resp_values_end;

    #[test]
    fn resp_reader_waits_for_whole_values() {
        assert_eq!(resp_values_end(b"+OK\r\n", 1), Some(5));
        assert_eq!(resp_values_end(b"+OK\r\n", 2), None);
        assert_eq!(resp_values_end(b"$3\r\nab", 1), None);
        assert_eq!(resp_values_end(b"$3\r\nabc\r\n", 1), Some(9));
        let nested = b"*2\r\n$1\r\na\r\n*1\r\n:5\r\n";
        assert_eq!(resp_values_end(nested, 1), Some(nested.len()));
        assert_eq!(resp_values_end(&nested[..nested.len() - 1], 1), None);
        assert_eq!(resp_values_end(b"$-1\r\n*-1\r\n", 2), Some(10));
    }
}
