//! Test support: a throwaway `redis-server` on a free loopback port (no persistence), for the
//! store conformance suite and the two-replica integration tests. Not used by the gateway.

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

    fn start_with(password: Option<&str>, tls: Option<(PathBuf, PathBuf)>) -> Option<RedisServer> {
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
            child: None,
            dir,
        };
        server.restart();
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
            // DEBUG SLEEP makes a slow Redis in tests.
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(pw) = &self.password {
            cmd.args(["--requirepass", pw]);
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
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One inline command to a plain server on loopback `port`; the raw reply.
fn send(port: u16, password: Option<&str>, line: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut req = String::new();
    if let Some(pw) = password {
        req.push_str(&format!("AUTH {pw}\r\n"));
    }
    req.push_str(line);
    req.push_str("\r\nQUIT\r\n");
    s.write_all(req.as_bytes())?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    Ok(out)
}
