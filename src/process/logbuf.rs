//! The log writer: lines go to stderr in batches rather than with one `write` system call each.
//!
//! Each thread appends its lines to a buffer of its own. A thread's buffer goes out, in one
//! `write`, when it holds [`BATCH`] bytes, when the thread logs anything other than an access
//! line (a warning is written at once, after the access lines its thread logged before it),
//! every [`FLUSH_EVERY`] from a background thread, when the thread ends, and when the process
//! exits (`exit`, which every way out of the gateway goes through). Lines of one thread keep
//! their order; lines of different threads may be up to [`FLUSH_EVERY`] apart from the order of
//! their timestamps. A process killed by a signal it does not handle (SIGKILL, a crash) loses
//! at most the access lines of the last [`FLUSH_EVERY`].
//!
//! The write system call was about a tenth of a proxied request's CPU time (README,
//! "Performance"); batched, it is a few hundredths of a microsecond per line.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::Duration;

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

use crate::process::logfmt::ACCESS_TARGET;

/// A thread's buffer is written out when it holds this much.
pub const BATCH: usize = 16 * 1024;
/// The longest an access line waits in a buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// One thread's pending lines.
type Buffer = Mutex<Vec<u8>>;

/// Every live thread's buffer (threads that ended have flushed theirs).
static BUFFERS: Mutex<Vec<Weak<Buffer>>> = Mutex::new(Vec::new());
static HOOKS: Once = Once::new();

/// A thread's own buffer; written out when the thread ends.
struct Own(Arc<Buffer>);

impl Drop for Own {
    fn drop(&mut self) {
        if let Ok(mut b) = self.0.lock() {
            write_out(&mut b);
        }
    }
}

thread_local! {
    static OWN: Own = Own(register());
}

fn register() -> Arc<Buffer> {
    let b = Arc::new(Mutex::new(Vec::with_capacity(BATCH + 1024)));
    if let Ok(mut all) = BUFFERS.lock() {
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&b));
    }
    b
}

/// Writes the buffer to stderr and empties it (a failed write loses the lines, as an
/// unbuffered write to a closed stderr would).
fn write_out(b: &mut Vec<u8>) {
    if !b.is_empty() {
        let _ = io::stderr().lock().write_all(b);
        b.clear();
    }
}

/// Writes out every thread's buffer. `wait`: take each lock even if busy (the flusher);
/// otherwise skip a buffer another thread holds (at exit, where that thread may never let go).
pub fn flush_all(wait: bool) {
    let live: Vec<Arc<Buffer>> = match BUFFERS.try_lock() {
        Ok(all) => all.iter().filter_map(Weak::upgrade).collect(),
        Err(_) if wait => match BUFFERS.lock() {
            Ok(all) => all.iter().filter_map(Weak::upgrade).collect(),
            Err(_) => return,
        },
        Err(_) => return,
    };
    for b in live {
        let guard = if wait {
            b.lock().ok()
        } else {
            b.try_lock().ok()
        };
        if let Some(mut g) = guard {
            write_out(&mut g);
        }
    }
}

extern "C" fn flush_at_exit() {
    flush_all(false);
}

/// Before a fork (`run --daemon`): the lines so far go out once, from the parent, rather than
/// from both processes.
extern "C" fn flush_before_fork() {
    flush_all(false);
}

/// In the child of a fork: the flusher thread did not survive it, so the next line starts one.
extern "C" fn after_fork_in_child() {
    FLUSHER.store(false, Ordering::Relaxed);
}

/// Whether this process has its flusher thread.
static FLUSHER: AtomicBool = AtomicBool::new(false);

/// Registers the flush at exit and around forks, once per program.
fn register_hooks() {
    HOOKS.call_once(|| {
        // SAFETY: plain functions without arguments that cannot unwind (busy or poisoned locks
        // are skipped, write errors ignored); the child handler only stores an atomic.
        unsafe {
            libc::atexit(flush_at_exit);
            libc::pthread_atfork(Some(flush_before_fork), None, Some(after_fork_in_child));
        }
    });
}

/// Starts this process's flusher thread unless it runs.
fn ensure_flusher() {
    if FLUSHER.load(Ordering::Relaxed) || FLUSHER.swap(true, Ordering::AcqRel) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("log flush".into())
        .spawn(|| loop {
            std::thread::sleep(FLUSH_EVERY);
            flush_all(true);
        });
    if spawned.is_err() {
        FLUSHER.store(false, Ordering::Relaxed);
    }
}

/// `MakeWriter` for tracing-subscriber: batched stderr (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchedStderr;

impl BatchedStderr {
    /// The writer, with its flusher thread started.
    pub fn new() -> Self {
        register_hooks();
        ensure_flusher();
        BatchedStderr
    }
}

/// Appends one event's text to the thread's buffer; on drop, writes the buffer out when it is
/// full or the event is not an access line.
pub struct LineWriter {
    now: bool,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        ensure_flusher();
        let appended = OWN.try_with(|own| {
            if let Ok(mut b) = own.0.lock() {
                b.extend_from_slice(bytes);
                if b.len() >= BATCH {
                    write_out(&mut b);
                }
                true
            } else {
                false
            }
        });
        if appended != Ok(true) {
            // The thread is ending (its buffer is gone) or a panic poisoned it: unbuffered.
            io::stderr().lock().write_all(bytes)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.now {
            let _ = OWN.try_with(|own| {
                if let Ok(mut b) = own.0.lock() {
                    write_out(&mut b);
                }
            });
        }
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter { now: true }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineWriter {
        LineWriter {
            now: !batched(meta.target()),
        }
    }
}

/// Whether lines of this target wait in the buffer (access lines only).
pub fn batched(target: &str) -> bool {
    target == ACCESS_TARGET
}
