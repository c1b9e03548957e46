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

/// The outcome of one `WAIT`: on which connection, its number, and what it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Waited {
    conn: u64,
    wait: u64,
    outcome: Ack,
}

/// What became of a write's wait for a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// A replica has the write (and everything before it on the connection).
    Replicated,
    /// The primary answered that no replica acknowledged in time: the write stands on the
    /// primary, not yet (known to be) on a replica.
    TimedOut,
    /// The connection failed (or the primary went silent) before the `WAIT` was answered: the
    /// primary may be gone, and the write with it.
    Failed,
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
                outcome: Ack::Failed,
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

    /// Drops connection `generation` after it failed; writes waiting on it have failed.
    fn discard(&self, generation: u64) {
        let mut st = self.state();
        if st.generation == generation {
            st.conn = None;
            drop(st);
            self.waited.send_replace(Waited {
                conn: generation,
                wait: u64::MAX,
                outcome: Ack::Failed,
            });
        }
    }

    /// Sends `cmd` on the write connection and, with `wait`, waits until a `WAIT` sent after its
    /// answer has come back. Returns the answer and `None` (not waited) or how the replica
    /// acknowledged it; an error when the connection failed before the `WAIT` was answered (the
    /// write must not be reported as done: the primary may have died with it).
    pub async fn write(&self, cmd: redis::Cmd, wait: bool) -> RedisResult<(Value, Option<Ack>)> {
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
        match self.acknowledged(generation).await {
            Ack::Failed => Err(redis::RedisError::from((
                ErrorKind::Io,
                "the connection failed before a replica acknowledged the write",
            ))),
            ack => Ok((reply, Some(ack))),
        }
    }

    /// Waits for a `WAIT` on connection `generation` sent from now on.
    async fn acknowledged(&self, generation: u64) -> Ack {
        let mut waited = self.waited.subscribe();
        let ticket = {
            let mut st = self.state();
            if st.generation != generation || st.conn.is_none() {
                return Ack::Failed;
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
        match done {
            Ok(Ok(w)) if w.conn == generation => w.outcome,
            _ => Ack::Failed,
        }
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
        let outcome = match asked {
            Ok(Ok(replicas)) if replicas >= 1 => Ack::Replicated,
            Ok(Ok(_)) => Ack::TimedOut,
            // Refused (an ACL without WAIT): the write stands, unconfirmed.
            Ok(Err(e)) if server_reply(&e) => Ack::TimedOut,
            _ => {
                acks.discard(generation);
                continue;
            }
        };
        acks.waited.send_replace(Waited {
            conn: generation,
            wait,
            outcome,
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
