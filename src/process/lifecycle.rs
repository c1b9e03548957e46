//! The process around the proxy, without pingora: how many requests are in flight, draining
//! them within the grace period on shutdown, the pid file `reload` reads, the directory it and
//! the upgrade socket live in, and looking at other processes by pid.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::ServerConfig;

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Counts one request in flight from its creation to its drop. Lives in the proxy's per-request
/// context, which pingora drops after the response is written and the access line logged.
#[derive(Debug)]
pub struct InFlight(());

impl Default for InFlight {
    fn default() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Requests being handled right now by this process.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::SeqCst)
}

static DRAINING: AtomicBool = AtomicBool::new(false);

/// From now on every response closes its connection (`Connection: close`): called when the
/// sockets are being handed to a new process, so that keep-alive clients move over while this
/// process still answers, instead of finding an idle connection closed under them later.
pub fn start_draining() {
    DRAINING.store(true, Ordering::SeqCst);
}

/// Whether responses should close their connections.
pub fn draining() -> bool {
    DRAINING.load(Ordering::SeqCst)
}

/// After the listeners close, a request whose bytes were already buffered is still read and
/// counted: wait this long before trusting a count of zero.
const SETTLE: Duration = Duration::from_millis(100);
const POLL: Duration = Duration::from_millis(25);

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Requests still in flight when it ended (0 = everything finished).
    pub left: usize,
    pub elapsed: Duration,
}

/// Waits, once the listeners are closed, until no request is in flight or `grace` is over.
pub async fn drain(grace: Duration, in_flight: impl Fn() -> usize) -> Drained {
    let start = Instant::now();
    if !grace.is_zero() {
        tokio::time::sleep(SETTLE.min(grace)).await;
        loop {
            let elapsed = start.elapsed();
            if in_flight() == 0 || elapsed >= grace {
                break;
            }
            tokio::time::sleep(POLL.min(grace - elapsed)).await;
        }
    }
    Drained {
        left: in_flight(),
        elapsed: start.elapsed(),
    }
}

/// Why the pid file or its directory cannot be used, or a pid cannot be read from it.
#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    #[error("cannot create {}: {source}", .path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "refusing to use {}: {why}; set server.pid_file and server.upgrade_sock to files in a \
         directory of your own",
        .path.display()
    )]
    UnsafeDir { path: PathBuf, why: String },
    #[error("directory {} (for {key}) does not exist: create it or change {key}", .path.display())]
    MissingDir { path: PathBuf, key: &'static str },
    #[error("cannot write the pid file {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the pid file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the pid file {} does not hold a process id", .path.display())]
    Garbled { path: PathBuf },
}

/// Makes sure the directories of the pid file and the upgrade socket exist: the default
/// per-user directory is created (mode 0700) and must be this user's and not writable by
/// others; a configured directory must already exist.
pub fn prepare_run_dirs(server: &ServerConfig) -> Result<(), PidFileError> {
    let default_dir = ServerConfig::default_run_dir();
    for (key, file) in [
        ("server.pid_file", &server.pid_file),
        ("server.upgrade_sock", &server.upgrade_sock),
    ] {
        let Some(dir) = file.parent() else {
            continue;
        };
        if dir == default_dir {
            own_private_dir(dir)?;
        } else if !dir.is_dir() {
            return Err(PidFileError::MissingDir {
                path: dir.to_path_buf(),
                key,
            });
        }
    }
    Ok(())
}

fn own_private_dir(dir: &Path) -> Result<(), PidFileError> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(PidFileError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })
        }
    }
    let unsafe_dir = |why: String| PidFileError::UnsafeDir {
        path: dir.to_path_buf(),
        why,
    };
    // symlink_metadata: a symlink planted in the temp directory is not followed.
    let meta = std::fs::symlink_metadata(dir).map_err(|e| unsafe_dir(e.to_string()))?;
    if !meta.is_dir() {
        return Err(unsafe_dir("it is not a directory".to_owned()));
    }
    let me = nix::unistd::getuid().as_raw();
    if meta.uid() != me {
        return Err(unsafe_dir(format!(
            "it belongs to uid {}, not to this user (uid {me})",
            meta.uid()
        )));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(unsafe_dir("others can write to it".to_owned()));
    }
    Ok(())
}

/// Writes this process's id to `path` (through a temporary file, so a reader never sees half).
pub fn write_pid_file(path: &Path) -> Result<(), PidFileError> {
    write_pid(path, std::process::id() as i32)
}

/// Writes `pid` to `path` through a temporary file.
pub fn write_pid(path: &Path, pid: i32) -> Result<(), PidFileError> {
    let write_err = |source| PidFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(write_err)?;
    f.write_all(format!("{pid}\n").as_bytes())
        .map_err(write_err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_err(e)
    })
}

/// The process id in a pid file.
pub fn read_pid_file(path: &Path) -> Result<i32, PidFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| PidFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    match text.trim().parse::<i32>() {
        Ok(pid) if pid > 1 => Ok(pid),
        _ => Err(PidFileError::Garbled {
            path: path.to_path_buf(),
        }),
    }
}

/// Removes the pid file (and the `.old` copy pingora leaves when a daemon takes over) if it
/// still names this process: after a reload it names the new process and must stay.
pub fn remove_pid_file_if_ours(path: &Path) {
    let me = std::process::id() as i32;
    let old = PathBuf::from(format!("{}.old", path.display()));
    for p in [path, old.as_path()] {
        if read_pid_file(p).ok() == Some(me) {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// What a pid names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessState {
    /// Running (not a zombie).
    Running,
    /// No such process, or one that has exited and waits to be reaped.
    Gone,
    /// It exists but belongs to another user.
    NotPermitted,
}

/// Whether `pid` is a live process this user may signal.
pub fn process_state(pid: i32) -> ProcessState {
    match kill(Pid::from_raw(pid), None) {
        Ok(()) => {}
        Err(Errno::EPERM) => return ProcessState::NotPermitted,
        Err(_) => return ProcessState::Gone,
    }
    // kill(0) succeeds on a zombie; /proc tells them apart where it exists.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match stat.rsplit_once(')').map(|(_, rest)| rest.trim_start()) {
            Some(rest) if rest.starts_with('Z') || rest.starts_with('X') => ProcessState::Gone,
            _ => ProcessState::Running,
        },
        Err(_) => ProcessState::Running,
    }
}

/// The command name of `pid` (`/proc/<pid>/comm`), where the system has `/proc`.
pub fn process_name(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_owned())
}

/// Sends `signal` to `pid`.
pub fn signal(pid: i32, signal: Signal) -> Result<(), Errno> {
    kill(Pid::from_raw(pid), signal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn in_flight_guard_counts_while_alive() {
        // Other tests in this binary may hold guards: compare differences only.
        let before = in_flight();
        let a = InFlight::default();
        let b = InFlight::default();
        assert!(in_flight() >= before + 2);
        drop(a);
        drop(b);
        assert!(in_flight() <= before + 2);
    }

    #[tokio::test]
    async fn drain_idle_returns_after_settle() {
        let d = drain(Duration::from_secs(5), || 0).await;
        assert_eq!(d.left, 0);
        assert!(
            d.elapsed >= SETTLE && d.elapsed < Duration::from_secs(1),
            "{d:?}"
        );
    }

    #[tokio::test]
    async fn drain_waits_for_last_request() {
        let n = Arc::new(AtomicUsize::new(2));
        let m = n.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            m.store(0, Ordering::SeqCst);
        });
        let d = drain(Duration::from_secs(5), move || n.load(Ordering::SeqCst)).await;
        assert_eq!(d.left, 0);
        assert!(
            d.elapsed >= Duration::from_millis(300) && d.elapsed < Duration::from_secs(2),
            "{d:?}"
        );
    }

    #[tokio::test]
    async fn drain_stops_at_grace_with_requests_left() {
        let d = drain(Duration::from_millis(400), || 3).await;
        assert_eq!(d.left, 3);
        assert!(
            d.elapsed >= Duration::from_millis(400) && d.elapsed < Duration::from_secs(2),
            "{d:?}"
        );
    }

    #[tokio::test]
    async fn drain_zero_grace_returns_at_once() {
        let d = drain(Duration::ZERO, || 1).await;
        assert_eq!(d.left, 1);
        assert!(d.elapsed < Duration::from_millis(50));
    }

    #[test]
    fn pid_file_round_trip_and_removed_only_when_ours() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gw.pid");
        write_pid_file(&p).unwrap();
        assert_eq!(read_pid_file(&p).unwrap(), std::process::id() as i32);
        remove_pid_file_if_ours(&p);
        assert!(!p.exists());

        std::fs::write(&p, "4242\n").unwrap();
        remove_pid_file_if_ours(&p);
        assert!(p.exists(), "another process's pid file stays");
    }

    #[test]
    fn read_pid_file_rejects_garbage_and_names_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gw.pid");
        for bad in ["", "abc", "-5", "1", "99999999999"] {
            std::fs::write(&p, bad).unwrap();
            assert!(
                matches!(read_pid_file(&p), Err(PidFileError::Garbled { .. })),
                "{bad:?}"
            );
        }
        let e = read_pid_file(&dir.path().join("none.pid")).unwrap_err();
        assert!(e.to_string().contains("none.pid"), "{e}");
    }

    #[test]
    fn process_state_of_self_and_of_a_reaped_child() {
        assert_eq!(
            process_state(std::process::id() as i32),
            ProcessState::Running
        );
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        assert_eq!(process_state(pid), ProcessState::Gone);
    }

    #[test]
    fn process_state_of_an_unreaped_child_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // Give it time to exit without reaping it: a zombie is not a running gateway.
        let deadline = Instant::now() + Duration::from_secs(5);
        while process_state(pid) != ProcessState::Gone && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(process_state(pid), ProcessState::Gone);
        child.wait().unwrap();
    }

    #[test]
    fn own_private_dir_is_created_0700_and_refuses_open_dirs() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("run");
        own_private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        own_private_dir(&dir).unwrap();

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = own_private_dir(&dir).unwrap_err();
        assert!(e.to_string().contains("others can write"), "{e}");

        let link = base.path().join("link");
        std::os::unix::fs::symlink(base.path(), &link).unwrap();
        let e = own_private_dir(&link).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }
}
