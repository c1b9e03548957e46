//! Acknowledged writes to one Redis primary: the writes the browser is answered for go through
//! a connection of their own, and a write waits until a replica has it (`WAIT 1`).
//!
//! `WAIT` blocks the connection it is sent on, and applies to every write sent on that
//! connection before it. So the writes have their own connection (reads on the shared one are
//! never queued behind a `WAIT`), and their `WAIT`s are shared (group commit): a write answered
//! before a `WAIT` was sent is covered by it, one `WAIT` in flight at a time, each covering every
//! write answered while the previous one was out. With a replica that stalls, each write waits
//! at most [`ACK_TIMEOUT`] for its `WAIT` plus one already under way, however many there are.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisResult, Value};
use tokio::sync::{watch, Notify};

/// How long a write waits for a replica's acknowledgement before it is answered anyway. On a
/// healthy network a replica answers in about a round trip.
pub const ACK_TIMEOUT: Duration = Duration::from_millis(250);

/// The outcome of one `WAIT`: on which connection, its number, and whether a replica
/// acknowledged everything sent before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Waited {
    conn: u64,
    wait: u64,
    acked: bool,
}

#[derive(Debug)]
struct State {
    conn: Option<MultiplexedConnection>,
    /// Bumped with every new connection: a `WAIT` covers writes on its own connection only.
    generation: u64,
    /// The number the next `WAIT` will carry.
    next_wait: u64,
    /// A write is waiting for a `WAIT` not sent yet.
    wanted: bool,
}

/// The write connection to one primary and its shared `WAIT`s. See the module docs.
pub struct Acks {
    client: redis::Client,
    op_timeout: Duration,
    state: Mutex<State>,
    /// Serializes connecting (the state lock is not held across an await).
    connecting: tokio::sync::Mutex<()>,
    /// Wakes the task that sends the `WAIT`s.
    wake: Notify,
    waited: watch::Sender<Waited>,
}

impl std::fmt::Debug for Acks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acks").finish_non_exhaustive()
    }
}

/// Whether an error is Redis's answer to the command (the connection is fine) rather than the
/// connection's failure.
fn server_reply(e: &redis::RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
}

impl Acks {
    /// The write side of the primary `client` points at; the task that sends the `WAIT`s runs
    /// on the current runtime until the returned handle is dropped.
    pub fn start(client: redis::Client, op_timeout: Duration) -> (Arc<Acks>, AbortOnDrop) {
        let acks = Arc::new(Acks {
            client,
            op_timeout,
            state: Mutex::new(State {
                conn: None,
                generation: 0,
                next_wait: 1,
                wanted: false,
            }),
            connecting: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            waited: watch::Sender::new(Waited {
                conn: 0,
                wait: 0,
                acked: false,
            }),
        });
        let task = tokio::spawn(send_waits(acks.clone()));
        (acks, AbortOnDrop(task.abort_handle()))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The write connection and its generation, connecting if there is none.
    async fn connection(&self) -> RedisResult<(MultiplexedConnection, u64)> {
        let current = |st: &State| st.conn.clone().map(|c| (c, st.generation));
        if let Some(c) = current(&self.state()) {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = current(&self.state()) {
            return Ok(c);
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.op_timeout))
            .set_response_timeout(Some(self.op_timeout));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let mut st = self.state();
        st.generation += 1;
        st.conn = Some(conn.clone());
        Ok((conn, st.generation))
    }

    /// Drops connection `generation` after it failed; writes waiting on it are not covered.
    fn discard(&self, generation: u64) {
        let mut st = self.state();
        if st.generation == generation {
            st.conn = None;
            drop(st);
            self.waited.send_replace(Waited {
                conn: generation,
                wait: u64::MAX,
                acked: false,
            });
        }
    }

    /// Sends `cmd` on the write connection and, with `wait`, waits until a `WAIT` sent after its
    /// answer has come back. Returns the answer and `None` (not waited), `Some(true)` (a
    /// replica has the write) or `Some(false)` (none acknowledged in time, or the connection
    /// failed meanwhile: the write stands on the primary but may not be replicated).
    pub async fn write(&self, cmd: redis::Cmd, wait: bool) -> RedisResult<(Value, Option<bool>)> {
        let (mut conn, generation) = self.connection().await?;
        let reply = match cmd.query_async::<Value>(&mut conn).await {
            Ok(v) => v,
            Err(e) => {
                if !server_reply(&e) {
                    self.discard(generation);
                }
                return Err(e);
            }
        };
        if !wait {
            return Ok((reply, None));
        }
        Ok((reply, Some(self.acknowledged(generation).await)))
    }

    /// Waits for a `WAIT` on connection `generation` sent from now on.
    async fn acknowledged(&self, generation: u64) -> bool {
        let mut waited = self.waited.subscribe();
        let ticket = {
            let mut st = self.state();
            if st.generation != generation || st.conn.is_none() {
                return false;
            }
            st.wanted = true;
            st.next_wait
        };
        self.wake.notify_one();
        // The `WAIT` under way, then ours: each bounded by the op timeout in `send_waits`.
        let done = tokio::time::timeout(
            2 * self.op_timeout,
            waited.wait_for(|w| w.conn > generation || (w.conn == generation && w.wait >= ticket)),
        )
        .await;
        matches!(done, Ok(Ok(w)) if w.conn == generation && w.acked)
    }
}

/// Sends one `WAIT 1 <ACK_TIMEOUT>` at a time on the write connection whenever a write waits
/// for one, and publishes its outcome.
async fn send_waits(acks: Arc<Acks>) {
    loop {
        acks.wake.notified().await;
        let job = {
            let mut st = acks.state();
            if !st.wanted {
                continue;
            }
            st.wanted = false;
            let wait = st.next_wait;
            st.next_wait += 1;
            st.conn.clone().map(|c| (c, st.generation, wait))
        };
        // No connection: `discard` has already told the waiters.
        let Some((mut conn, generation, wait)) = job else {
            continue;
        };
        let asked = tokio::time::timeout(acks.op_timeout, async {
            redis::cmd("WAIT")
                .arg(1)
                .arg(ACK_TIMEOUT.as_millis() as u64)
                .query_async::<i64>(&mut conn)
                .await
        })
        .await;
        let acked = match asked {
            Ok(Ok(replicas)) => replicas >= 1,
            Ok(Err(e)) if server_reply(&e) => false,
            _ => {
                acks.discard(generation);
                false
            }
        };
        acks.waited.send_replace(Waited {
            conn: generation,
            wait,
            acked,
        });
    }
}

/// Aborts a task when dropped (the `WAIT` sender of a primary no longer in use).
#[derive(Debug)]
pub struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
