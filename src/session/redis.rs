//! The Redis session store (`store = "redis"`): Redis is authoritative for sessions and
//! exchanged codes, so any replica can finish any login and a restart signs no one out. (Sign-ins
//! in progress live in the browser's login cookie, which every replica can open.) Each replica keeps a short-lived moka L1 in front of it, invalidated through Redis
//! pub/sub so that a logout holds on every replica within 1 s.
//!
//! Keys (all under `clever-gateway:`):
//! - `session:<sha256(session id)>`: the session as JSON, TTL = its remaining life. The
//!   cookie value itself is never a key, so `KEYS`/`MONITOR` do not hand out live cookies.
//!   With `idle_timeout`, the TTL is the idle deadline instead (never past the session's
//!   end): the key's TTL is where replicas read when the session was last used.
//! - `sessions`: sorted set of session key hashes by expiry (ms), for the sessions gauge.
//! - no `pending:` keys any more: a gateway before stateless sign-ins wrote them; they expire
//!   on their own (10 min), and such a sign-in ends on "sign-in expired, try again".
//! - `code:<sha256(code)>`: an exchanged-code claim (TTL 5 min), taken with `SET NX`.
//! - channel `clever-gateway:revoke`: session key hashes whose L1 entries must go.
//!
//! Where the primary is (one URL, or Sentinel and its failovers) is `primary.rs`'s concern;
//! every call goes to the primary as last found, and a failed call makes it look again.
//!
//! Acknowledged writes: a write the browser is answered for (a session, a logout, a used
//! code) is one command on the primary's write connection, followed, whenever the
//! primary has a replica, by a `WAIT 1` [`ACK_TIMEOUT`] shared with the writes around it
//! (`acks.rs`), so the answer leaves only once a replica holds the write too and a failover
//! right after it loses nothing. When no replica acknowledges in time the write stands (it is
//! on the primary), one log line marks the change and
//! `clever_gateway_redis_writes_total{ack="timeout"}` counts it.
//!
//! Idle sessions (`idle_timeout`): each replica marks a session used in its L1 record on every
//! request, and moves the key's deadline (`PEXPIREAT`, unacknowledged: a lost extension only
//! ends a session a little early) at most once per [`super::idle_save_interval`] per session,
//! so a session in use costs no write per request. A replica that loads a session reads the
//! deadline back (`PTTL`); one that finds its own copy idle asks Redis before ending it.
//!
//! Bounds: every Redis call is cut at [`OP_TIMEOUT`]. The L1 is trusted only while this
//! replica's pub/sub subscription is live (or Redis is unreachable); while the subscription is
//! down and Redis is up, reads go to Redis, and on (re)subscribing the whole L1 is dropped
//! (messages may have been missed). So a logout is seen by every replica as soon as the
//! message arrives (milliseconds), and never later than [`L1_TTL`] even if the pub/sub
//! connection silently stalls. While Redis is down, signed-in users with an L1 entry keep
//! working until it expires; everything else answers `StoreError::Unavailable` (503).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use moka::future::Cache;
use redis::aio::ConnectionManager;
use redis::{RedisResult, Value};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::acks::Ack;
use super::primary::{Check, Node, Primary, PrimaryAt};
use super::store::{CodeClaim, LoginTimes, SessionStore, StoreError};
use super::{Clock, SessionId, SessionRecord};
use crate::identity::Identity;
use crate::process::metrics::{Metrics, WriteAck};
use crate::secret::Secret;

/// Every key and the pub/sub channel start with this.
pub const KEY_PREFIX: &str = "clever-gateway:";
/// How long a replica serves a session from its L1 without asking Redis.
pub const L1_TTL: Duration = Duration::from_secs(5);
/// Upper bound of every Redis call (connect included).
pub const OP_TIMEOUT: Duration = Duration::from_millis(500);
pub use super::acks::ACK_TIMEOUT;
/// How often the background task checks Redis (readiness and the up/down log line).
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// Pause between pub/sub reconnection attempts.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(200);
/// Sessions kept in one replica's L1 at most.
const L1_CAPACITY: u64 = 500_000;

/// A session: its key with the TTL, its place in the index, and the index pruned of expired
/// entries (so it stays to live sessions even when nothing scrapes the gauge).
const INSERT_SESSION: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
return 1
";

/// A logout: the session key, its index entry, and the revocation message to every replica.
const REMOVE_SESSION: &str = r"
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 1
";

/// A session in use (`session.idle_timeout`): its key and its index entry live until the new
/// idle deadline (never past its `ttl`: the caller caps it). A session already gone (a logout,
/// its deadline passed) is left gone.
const EXTEND_SESSION: &str = r"
if redis.call('PEXPIREAT', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[2], 'XX', ARGV[1], ARGV[2])
end
return 1
";

/// `SET NX`; when the code was claimed before, the earlier claim.
const CLAIM_CODE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
";

/// Where Redis is and how to sign in to it.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// A `redis://` or `rediss://` URL without a password, or the Sentinels.
    pub at: PrimaryAt,
    /// The data nodes' password.
    pub password: Option<Secret>,
    /// How long exchanged codes are kept (from `session.login_timeout`).
    pub login: LoginTimes,
    /// `session.idle_timeout`: a session unused this long ends.
    pub idle: Option<Duration>,
}

/// Redis health as last seen, for readiness and the one log line per change.
#[derive(Debug, Default)]
struct Health(AtomicU8);

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

impl Health {
    fn up(&self) {
        match self.0.swap(UP, Ordering::SeqCst) {
            DOWN => tracing::info!("session store: Redis is reachable again"),
            UNKNOWN => tracing::info!("session store: connected to Redis"),
            _ => {}
        }
    }

    fn down(&self, why: &str) {
        if self.0.swap(DOWN, Ordering::SeqCst) != DOWN {
            tracing::error!(
                error = why,
                "session store: Redis is unreachable; signed-in users are served from this \
                 replica's cache for up to {}s, new sign-ins get 503 until it returns",
                L1_TTL.as_secs()
            );
        }
    }

    fn is_down(&self) -> bool {
        self.0.load(Ordering::SeqCst) == DOWN
    }

    fn is_up(&self) -> bool {
        self.0.load(Ordering::SeqCst) == UP
    }
}

/// A tokio runtime of its own for Redis I/O: pingora runs several runtimes and the store is
/// built before any of them; connections and background tasks live here. Shut down without
/// blocking when the store is dropped (which may happen inside another runtime).
#[derive(Debug)]
struct StoreRuntime(Option<tokio::runtime::Runtime>);

impl StoreRuntime {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("runtime lives as long as the store")
            .handle()
    }
}

impl Drop for StoreRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// State shared with the background tasks (not the runtime: dropping the store stops them).
#[derive(Debug)]
struct Shared {
    l1: Cache<String, Arc<SessionRecord>>,
    health: Health,
    /// The revocation subscription is live: L1 entries may be trusted.
    subscribed: AtomicBool,
    /// Bumped by every invalidation; a read that raced one does not fill the L1.
    invalidations: AtomicU64,
    /// The last acknowledged write timed out waiting for a replica (one log line per change).
    acks_failing: AtomicBool,
}

/// Sessions in Redis, with a per-replica L1. See the module docs for keys and bounds.
pub struct RedisStore {
    primary: Arc<Primary>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    times: LoginTimes,
    /// `session.idle_timeout`.
    idle: Option<Duration>,
    rt: StoreRuntime,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("l1_sessions", &self.shared.l1.entry_count())
            .finish()
    }
}

/// The session as stored in Redis (the access token included: Redis must be private).
#[derive(Serialize, Deserialize)]
struct StoredSession {
    identity: Identity,
    access_token: String,
    created_ns: u64,
    expires_ns: u64,
    /// Written for replicas that read it; this one renders its header values from `identity`.
    #[serde(default)]
    user_type_header: String,
}

#[derive(Serialize, Deserialize)]
struct StoredClaim {
    binding: String,
    return_to: String,
    session: Option<String>,
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Nanoseconds: records come back exactly as they went in.
fn ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn from_ns(v: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(v)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn session_key(hash: &str) -> String {
    format!("{KEY_PREFIX}session:{hash}")
}

fn sessions_index() -> String {
    format!("{KEY_PREFIX}sessions")
}

fn revoke_channel() -> String {
    format!("{KEY_PREFIX}revoke")
}

fn code_key(key: &str) -> String {
    format!("{KEY_PREFIX}code:{key}")
}

/// `EVAL` of a script with `keys`; the caller adds the arguments. The script's text rather
/// than its hash (`EVALSHA`): a new primary after a failover does not know the hash, and a
/// `NOSCRIPT` answer would cost a second round trip (and a second `WAIT`) on the write that
/// meets it; the text is a few hundred bytes, its hash Redis computes in microseconds.
fn eval(script: &str, keys: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys);
    cmd
}

/// A script's reply as the type the store expects.
fn reply<T: redis::FromRedisValue>(v: Value) -> Result<T, StoreError> {
    redis::from_redis_value(v)
        .map_err(|e| StoreError::Unavailable(format!("unexpected reply from Redis: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Unavailable(format!("cannot encode: {e}")))
}

fn decode<T: for<'de> Deserialize<'de>>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| {
        StoreError::Unavailable(format!("unreadable record in Redis: {}", json_category(&e)))
    })
}

/// The kind of a JSON error only: never a piece of the record.
fn json_category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "io",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data",
        serde_json::error::Category::Eof => "eof",
    }
}

impl RedisStore {
    /// Builds the store without waiting for Redis: a gateway may start while Redis is down
    /// (it is then not ready) and connects as soon as Redis answers (with Sentinel: as soon
    /// as a Sentinel names the primary).
    pub fn new(
        settings: &RedisSettings,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("redis-store")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot start the Redis runtime: {e}")))?;
        let rt = StoreRuntime(Some(rt));
        let primary = Primary::start(
            &settings.at,
            settings.password.as_ref(),
            OP_TIMEOUT,
            metrics.clone(),
            rt.handle(),
        )?;
        let shared = Arc::new(Shared {
            l1: Cache::builder()
                .max_capacity(L1_CAPACITY)
                .time_to_live(L1_TTL)
                .build(),
            health: Health::default(),
            subscribed: AtomicBool::new(false),
            invalidations: AtomicU64::new(0),
            acks_failing: AtomicBool::new(false),
        });
        rt.handle()
            .spawn(subscribe_revocations(primary.clone(), shared.clone()));
        rt.handle()
            .spawn(watch_health(primary.clone(), shared.clone()));
        Ok(RedisStore {
            primary,
            shared,
            metrics,
            clock,
            times: settings.login,
            idle: settings.idle,
            rt,
        })
    }

    /// Runs one Redis exchange with the primary on the store's runtime, bounded by
    /// [`OP_TIMEOUT`], and records Redis health from its outcome. A failure also makes the
    /// primary be looked up again (Sentinel).
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.run_on(OP_TIMEOUT, |node| f(node.conn.clone())).await
    }

    /// [`RedisStore::run`] with the whole primary at hand and its own bound.
    async fn run_on<T, F, Fut>(&self, limit: Duration, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<Node>) -> Fut,
        Fut: Future<Output = RedisResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let Some(node) = self.primary.node() else {
            // Only at start, until the Sentinels first answer: the lookup task logs why.
            return Err(StoreError::Unavailable(
                "no Redis primary known yet (asking the Sentinels)".into(),
            ));
        };
        let fut = f(node);
        let joined = self
            .rt
            .handle()
            .spawn(async move { tokio::time::timeout(limit, fut).await })
            .await;
        let why = match joined {
            Ok(Ok(Ok(v))) => {
                self.shared.health.up();
                return Ok(v);
            }
            Ok(Ok(Err(e))) => format!("redis: {e}"),
            Ok(Err(_)) => format!("redis did not answer within {limit:?}"),
            Err(e) => format!("redis task: {e}"),
        };
        self.primary.trouble();
        self.shared.health.down(&why);
        Err(StoreError::Unavailable(why))
    }

    /// A write the browser will be answered for: `cmd` (a script or a `SET`) on the primary's
    /// write connection, then, when the primary has a replica, a `WAIT` sent after its answer
    /// (`acks.rs`), so the browser's answer leaves once a replica has the write. Returns
    /// `cmd`'s reply. Bounded by [`OP_TIMEOUT`] for the write (connect included) and two more
    /// for the acknowledgement. A replica that does not acknowledge in time does not fail the
    /// write (the primary has it); a connection that fails before the `WAIT` is answered does
    /// (the primary may have died with the write: the browser must not be told it is done).
    async fn write(&self, cmd: redis::Cmd) -> Result<Value, StoreError> {
        let wait = self
            .primary
            .node()
            .is_some_and(|n| self.primary.wants_ack(&n));
        let (reply, acked) = self
            .run_on(4 * OP_TIMEOUT, move |node| async move {
                node.acks.write(cmd, wait).await
            })
            .await?;
        self.count_ack(acked);
        Ok(reply)
    }

    /// Counts how a write was acknowledged, with one log line when replicas stop (or start
    /// again) acknowledging in time.
    fn count_ack(&self, acked: Option<Ack>) {
        let ack = match acked {
            None => WriteAck::NoReplica,
            Some(Ack::Replicated) => WriteAck::Replica,
            // `Failed` is an error, never counted as an answered write.
            Some(Ack::TimedOut | Ack::Failed) => WriteAck::Timeout,
        };
        self.metrics.redis_write(ack);
        match ack {
            WriteAck::Timeout => {
                if !self.shared.acks_failing.swap(true, Ordering::SeqCst) {
                    tracing::warn!(
                        "session store: no Redis replica acknowledged a write within {}ms; \
                         answered anyway (the write is on the primary, and lost if the primary \
                         fails before it replicates)",
                        ACK_TIMEOUT.as_millis()
                    );
                }
            }
            WriteAck::Replica => {
                if self.shared.acks_failing.swap(false, Ordering::SeqCst) {
                    tracing::info!("session store: a Redis replica acknowledges writes again");
                }
            }
            WriteAck::NoReplica => {}
        }
    }

    fn now_ms(&self) -> u64 {
        ms(self.clock.now())
    }

    /// A signed-in request used the session at `now`: marks its record, and when the last
    /// save is [`super::idle_save_interval`] old, moves its Redis deadline to `now + idle`
    /// (capped at its end) in the background: the request does not wait for it.
    fn used(&self, hash: &str, rec: &SessionRecord, now: SystemTime, idle: Duration) {
        rec.touch(now);
        if !rec.save_due(now, super::idle_save_interval(idle)) {
            return;
        }
        let Some(node) = self.primary.node() else {
            return;
        };
        let deadline = ms(rec.expires_at).min(ms(now) + idle.as_millis() as u64);
        let mut cmd = eval(EXTEND_SESSION, &[&session_key(hash), &sessions_index()]);
        cmd.arg(deadline).arg(hash);
        let mut conn = node.conn.clone();
        self.rt.handle().spawn(async move {
            let done = tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<Value>(&mut conn)).await;
            if !matches!(done, Ok(Ok(_))) {
                // The session may end up to one save interval early; Redis health is
                // watched (and logged) by `watch_health`.
                tracing::debug!("session store: a session's idle deadline was not moved in Redis");
            }
        });
    }
}

/// Keeps this replica subscribed to revocations on the current primary (moving with it on a
/// failover); drops the whole L1 whenever it (re)subscribes (messages sent meanwhile are lost)
/// and marks the L1 untrusted while it is not subscribed.
async fn subscribe_revocations(primary: Arc<Primary>, shared: Arc<Shared>) {
    use futures_util::StreamExt;
    let mut changes = primary.changes();
    loop {
        let node = changes.borrow_and_update().clone();
        if let Some(node) = node {
            let subscribed = tokio::time::timeout(OP_TIMEOUT, async {
                let mut pubsub = node.client.get_async_pubsub().await?;
                pubsub.subscribe(revoke_channel()).await?;
                RedisResult::Ok(pubsub)
            })
            .await;
            if let Ok(Ok(mut pubsub)) = subscribed {
                shared.l1.invalidate_all();
                shared.invalidations.fetch_add(1, Ordering::SeqCst);
                shared.subscribed.store(true, Ordering::SeqCst);
                let mut messages = pubsub.on_message();
                loop {
                    tokio::select! {
                        msg = messages.next() => {
                            let Some(msg) = msg else { break };
                            if let Ok(hash) = msg.get_payload::<String>() {
                                shared.invalidations.fetch_add(1, Ordering::SeqCst);
                                shared.l1.invalidate(&hash).await;
                            }
                        }
                        // A new primary: revocations are published there now.
                        _ = changes.changed() => break,
                    }
                }
                shared.subscribed.store(false, Ordering::SeqCst);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RESUBSCRIBE_DELAY) => {}
            _ = changes.changed() => {}
        }
    }
}

/// Checks the primary every [`HEALTH_INTERVAL`] (and at once when it changes), so readiness,
/// the up/down log line and the replica count follow Redis even without traffic, and the
/// connection manager reconnects by itself.
async fn watch_health(primary: Arc<Primary>, shared: Arc<Shared>) {
    let mut changes = primary.changes();
    loop {
        match primary.check().await {
            Check::Primary => shared.health.up(),
            Check::Down(why) => shared.health.down(&why),
            Check::NotFound => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(HEALTH_INTERVAL) => {}
            _ = changes.changed() => {}
        }
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn get(&self, id: &SessionId) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        let hash = sha256_hex(id.expose());
        let now = self.clock.now();
        let cached = self.shared.l1.get(&hash).await;
        if let Some(rec) = &cached {
            let down = self.shared.health.is_down();
            if self.shared.subscribed.load(Ordering::SeqCst) || down {
                if down {
                    self.metrics.redis_cache_fallback();
                }
                if !rec.is_live(now) {
                    return Ok(None);
                }
                match self.idle {
                    None => return Ok(Some(rec.clone())),
                    Some(idle) if !rec.idle_expired(now, idle) => {
                        self.used(&hash, rec, now, idle);
                        return Ok(Some(rec.clone()));
                    }
                    // Idle as far as this replica knows; another may have used it since, which
                    // Redis knows (when it answers).
                    Some(_) if down => return Ok(None),
                    Some(_) => {}
                }
            }
        }
        let generation = self.shared.invalidations.load(Ordering::SeqCst);
        let key = session_key(&hash);
        let with_deadline = self.idle.is_some();
        let found = self
            .run(move |mut c| async move {
                if with_deadline {
                    redis::pipe()
                        .atomic()
                        .cmd("GET")
                        .arg(&key)
                        .cmd("PTTL")
                        .arg(&key)
                        .query_async::<(Option<String>, i64)>(&mut c)
                        .await
                } else {
                    let json = redis::cmd("GET")
                        .arg(key)
                        .query_async::<Option<String>>(&mut c)
                        .await?;
                    Ok((json, -1))
                }
            })
            .await;
        let (json, pttl) = match found {
            Ok(j) => j,
            // Redis trouble: a session this replica saw in the last few seconds still works.
            Err(e) => {
                return match cached {
                    Some(rec) => {
                        self.metrics.redis_cache_fallback();
                        let idle = self.idle.is_some_and(|i| rec.idle_expired(now, i));
                        Ok((rec.is_live(now) && !idle).then_some(rec))
                    }
                    None => Err(e),
                }
            }
        };
        let Some(json) = json else {
            self.shared.l1.invalidate(&hash).await;
            return Ok(None);
        };
        let s: StoredSession = decode(&json)?;
        let rec = Arc::new(SessionRecord::loaded(
            s.identity,
            Secret::new(s.access_token),
            from_ns(s.created_ns),
            from_ns(s.expires_ns),
        ));
        if !rec.is_live(now) {
            return Ok(None);
        }
        if let Some(idle) = self.idle {
            // The key lives until the idle deadline: the session was last used (saved) `idle`
            // before it. A key with a longer life (written without an idle timeout) counts as
            // used now.
            let left = Duration::from_millis(pttl.max(0) as u64).min(idle);
            rec.set_last_used(now.checked_sub(idle - left).unwrap_or(now));
            if rec.idle_expired(now, idle) {
                return Ok(None);
            }
            self.used(&hash, &rec, now, idle);
        }
        if self.shared.invalidations.load(Ordering::SeqCst) == generation {
            self.shared.l1.insert(hash, rec.clone()).await;
        }
        Ok(Some(rec))
    }

    async fn insert(&self, id: &SessionId, record: SessionRecord) -> Result<(), StoreError> {
        let hash = sha256_hex(id.expose());
        let now_ms = self.now_ms();
        // With an idle timeout the key (and its index entry) lives until the idle deadline.
        let expires_ms = match self.idle {
            Some(idle) => ms(record.expires_at).min(now_ms + idle.as_millis() as u64),
            None => ms(record.expires_at),
        };
        let ttl_ms = expires_ms.saturating_sub(now_ms).max(1);
        let json = encode(&StoredSession {
            identity: record.identity.clone(),
            access_token: record.access_token().to_string(),
            created_ns: ns(record.created_at),
            expires_ns: ns(record.expires_at),
            user_type_header: record.identity.user_type_header().to_string(),
        })?;
        let mut cmd = eval(INSERT_SESSION, &[&session_key(&hash), &sessions_index()]);
        cmd.arg(json)
            .arg(ttl_ms)
            .arg(expires_ms)
            .arg(&hash)
            .arg(now_ms);
        self.write(cmd).await?;
        self.shared.l1.insert(hash, Arc::new(record)).await;
        Ok(())
    }

    async fn remove(&self, id: &SessionId) -> Result<(), StoreError> {
        let hash = sha256_hex(id.expose());
        self.shared.invalidations.fetch_add(1, Ordering::SeqCst);
        self.shared.l1.invalidate(&hash).await;
        let mut cmd = eval(REMOVE_SESSION, &[&session_key(&hash), &sessions_index()]);
        cmd.arg(&hash).arg(revoke_channel());
        self.write(cmd).await.map(drop)
    }

    async fn claim_code(
        &self,
        code_key_: &str,
        claim: CodeClaim,
    ) -> Result<Option<CodeClaim>, StoreError> {
        let json = encode(&stored_claim(&claim))?;
        let key = code_key(code_key_);
        let ttl_ms = self.times.codes.as_millis() as u64;
        let mut cmd = eval(CLAIM_CODE, &[&key]);
        cmd.arg(json).arg(ttl_ms);
        let earlier: Option<String> = reply(self.write(cmd).await?)?;
        earlier.map(|j| decode(&j).map(claim_from)).transpose()
    }

    async fn code(&self, code_key_: &str) -> Result<Option<CodeClaim>, StoreError> {
        let key = code_key(code_key_);
        let found: Option<String> = self
            .run(move |mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await?;
        found.map(|j| decode(&j).map(claim_from)).transpose()
    }

    async fn complete_code(&self, code_key_: &str, claim: CodeClaim) -> Result<(), StoreError> {
        let json = encode(&stored_claim(&claim))?;
        let key = code_key(code_key_);
        let ttl_ms = self.times.codes.as_millis() as u64;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(json).arg("PX").arg(ttl_ms);
        self.write(cmd).await.map(drop)
    }

    /// A PING answered within [`OP_TIMEOUT`].
    async fn ready(&self) -> bool {
        self.run(move |mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .is_ok()
    }

    /// Drops expired entries of the index, then counts it: two commands, no scan.
    async fn session_count(&self) -> Result<u64, StoreError> {
        let now = self.now_ms();
        self.run(move |mut c| async move {
            let (count,): (u64,) = redis::pipe()
                .atomic()
                .cmd("ZREMRANGEBYSCORE")
                .arg(sessions_index())
                .arg("-inf")
                .arg(now)
                .ignore()
                .cmd("ZCARD")
                .arg(sessions_index())
                .query_async(&mut c)
                .await?;
            Ok(count)
        })
        .await
    }
}

fn stored_claim(c: &CodeClaim) -> StoredClaim {
    StoredClaim {
        binding: c.binding.clone(),
        return_to: c.return_to.clone(),
        session: c.session.as_ref().map(|s| s.expose().to_string()),
    }
}

fn claim_from(c: StoredClaim) -> CodeClaim {
    CodeClaim {
        binding: c.binding,
        return_to: c.return_to,
        session: c.session.as_deref().and_then(SessionId::from_cookie),
    }
}

impl RedisStore {
    /// Whether Redis answered the last exchange (for tests and logs; readiness PINGs).
    pub fn is_up(&self) -> bool {
        self.shared.health.is_up()
    }
}

#[cfg(test)]
mod tests {
    //! The store conformance suite against a real `redis-server` (one per test, on a free
    //! loopback port), then what only a shared store has: replicas, revocation, outages.
    use super::*;
    use crate::process::metrics::{names, parse_text};
    use crate::session::conformance::{store_conformance, Fixture};
    use crate::session::primary::SentinelSettings;
    use crate::session::ManualClock;
    use crate::testing::redis::{
        RedisHa, RedisServer, Sentinels, MASTER_NAME, SKIPPED, SKIPPED_SENTINEL,
    };

    /// A redis-server and two gateway replicas on it, on the system clock; `None` without
    /// redis-server. Keep the server alive as long as the stores.
    fn two_replicas() -> Option<(RedisServer, Arc<dyn Clock>, RedisStore, RedisStore)> {
        let server = RedisServer::start()?;
        let clock: Arc<dyn Clock> = Arc::new(crate::session::SystemClock);
        let (a, b) = (
            store_on(&server, clock.clone()),
            store_on(&server, clock.clone()),
        );
        Some((server, clock, a, b))
    }

    fn store_on(server: &RedisServer, clock: Arc<dyn Clock>) -> RedisStore {
        store_at(PrimaryAt::Url(server.url()), None, clock)
    }

    fn store_at(at: PrimaryAt, password: Option<&str>, clock: Arc<dyn Clock>) -> RedisStore {
        let settings = RedisSettings {
            at,
            password: password.map(Secret::new),
            login: LoginTimes::default(),
            idle: None,
        };
        RedisStore::new(&settings, clock, Arc::new(Metrics::new().unwrap())).unwrap()
    }

    /// The Sentinels of `sentinels` as the store's settings, with their own `password`.
    fn sentinel_at(sentinels: &Sentinels, password: Option<&str>) -> PrimaryAt {
        PrimaryAt::Sentinel(SentinelSettings {
            sentinels: sentinels
                .ports()
                .iter()
                .map(|p| ("127.0.0.1".to_string(), *p))
                .collect(),
            master_name: MASTER_NAME.into(),
            db: 0,
            tls: false,
            password: password.map(Secret::new),
        })
    }

    /// A counter of the store's metrics, by name and labels.
    fn counter(s: &RedisStore, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = s.metrics.render().unwrap();
        parse_text(&text)
            .into_iter()
            .find(|x| {
                x.name == name
                    && x.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| x.labels.iter().any(|(a, b)| a == k && b == v))
            })
            .map_or(0.0, |x| x.value)
    }

    fn acks(s: &RedisStore, ack: WriteAck) -> f64 {
        counter(s, names::REDIS_WRITES, &[("ack", ack.as_str())])
    }

    /// Waits until the store's health check has seen the primary with `replicas` replicas.
    async fn checked(s: &RedisStore, replicas: usize) {
        let ok = within(Duration::from_secs(10), async || {
            s.is_up()
                && s.primary
                    .node()
                    .is_some_and(|n| n.replicas() == Some(replicas))
        })
        .await;
        assert!(
            ok.is_some(),
            "the store saw its primary and {replicas} replica(s)"
        );
    }

    store_conformance!(|clock: Arc<ManualClock>| {
        let server = RedisServer::start()?;
        let store: Arc<dyn SessionStore> = Arc::new(store_on(&server, clock));
        Some(Fixture {
            store,
            _keep: Some(Box::new(server)),
        })
    });

    fn record(clock: &dyn Clock) -> SessionRecord {
        let identity = Identity::builder("u1")
            .role(crate::identity::UserType::Student)
            .build();
        SessionRecord::new(
            identity,
            Secret::new("tok"),
            clock.now(),
            Duration::from_secs(3600),
        )
    }

    /// Waits until `f` holds, at most `within`; returns how long it took.
    async fn within<F: AsyncFnMut() -> bool>(within: Duration, mut f: F) -> Option<Duration> {
        let start = std::time::Instant::now();
        while start.elapsed() < within {
            if f().await {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    async fn subscribed(s: &RedisStore) {
        let ok = within(Duration::from_secs(5), async || {
            s.shared.subscribed.load(Ordering::SeqCst)
        })
        .await;
        assert!(ok.is_some(), "subscribed to revocations");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn school_and_section_ids_reach_another_replica_through_redis() {
        let Some((_server, clock, a, b)) = two_replicas() else {
            return eprintln!("{SKIPPED}");
        };
        let base = record(&*clock);
        let identity = base
            .identity
            .to_builder()
            .ids(
                crate::identity::Field::SchoolIds,
                ["5d0a9e5d0958b3005c4e0001"],
            )
            .ids(crate::identity::Field::SectionIds, ["s1", "s2"])
            .build();
        let rec = SessionRecord::loaded(
            identity,
            Secret::new(base.access_token()),
            base.created_at,
            base.expires_at,
        );
        let id = SessionId::generate();
        a.insert(&id, rec.clone()).await.unwrap();
        // B has never seen it: read from Redis, decoded from JSON.
        let got = b.get(&id).await.unwrap().expect("session on B");
        assert_eq!(got.identity, rec.identity);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn remove_on_one_replica_seen_by_other_within_1s() {
        let Some((_server, clock, a, b)) = two_replicas() else {
            return eprintln!("{SKIPPED}");
        };
        subscribed(&a).await;
        subscribed(&b).await;
        let id = SessionId::generate();
        a.insert(&id, record(&*clock)).await.unwrap();
        // B reads it once: now it is in B's L1.
        assert!(b.get(&id).await.unwrap().is_some());
        assert!(b.shared.l1.get(&sha256_hex(id.expose())).await.is_some());
        a.remove(&id).await.unwrap();
        let took = within(Duration::from_secs(1), async || {
            b.get(&id).await.unwrap().is_none()
        })
        .await;
        assert!(took.is_some(), "revoked on B within 1 s");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_down_l1_serves_new_logins_unavailable_then_recovers() {
        let Some(mut server) = RedisServer::start() else {
            return eprintln!("{SKIPPED}");
        };
        let clock: Arc<dyn Clock> = Arc::new(crate::session::SystemClock);
        let s = store_on(&server, clock.clone());
        subscribed(&s).await;
        let id = SessionId::generate();
        s.insert(&id, record(&*clock)).await.unwrap();
        assert!(s.ready().await);
        server.stop();
        // Readiness follows at once; the L1 keeps the signed-in user working.
        assert!(!s.ready().await);
        assert!(s.get(&id).await.unwrap().is_some(), "served from L1");
        let claim = CodeClaim {
            binding: "b".into(),
            return_to: "/".into(),
            session: None,
        };
        let t = std::time::Instant::now();
        assert!(matches!(
            s.claim_code("k", claim.clone()).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "bounded by the op timeout"
        );
        assert!(matches!(
            s.get(&SessionId::generate()).await,
            Err(StoreError::Unavailable(_))
        ));
        server.restart();
        let back = within(Duration::from_secs(10), async || s.ready().await).await;
        assert!(back.is_some(), "reconnected by itself");
        s.claim_code("k", claim).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn session_survives_a_new_store_instance() {
        let Some(server) = RedisServer::start() else {
            return eprintln!("{SKIPPED}");
        };
        let clock: Arc<dyn Clock> = Arc::new(crate::session::SystemClock);
        let id = SessionId::generate();
        {
            let first = store_on(&server, clock.clone());
            first.insert(&id, record(&*clock)).await.unwrap();
        }
        let second = store_on(&server, clock.clone());
        let got = second
            .get(&id)
            .await
            .unwrap()
            .expect("session kept in Redis");
        assert_eq!(got.access_token(), "tok");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_are_prefixed_and_never_the_cookie_value() {
        let Some(server) = RedisServer::start() else {
            return eprintln!("{SKIPPED}");
        };
        let clock: Arc<dyn Clock> = Arc::new(crate::session::SystemClock);
        let s = store_on(&server, clock.clone());
        let id = SessionId::generate();
        s.insert(&id, record(&*clock)).await.unwrap();
        let keys = server.command("KEYS *").unwrap();
        assert!(keys.contains("clever-gateway:session:"), "{keys}");
        assert!(!keys.contains(id.expose()), "the session id is not a key");
        let ttl = server
            .command(&format!("PTTL {}", session_key(&sha256_hex(id.expose()))))
            .unwrap();
        let ms: i64 = ttl
            .lines()
            .find_map(|l| l.strip_prefix(':'))
            .and_then(|v| v.parse().ok())
            .expect("PTTL answer");
        assert!(
            ms > 3_590_000 && ms <= 3_600_000,
            "TTL = remaining life: {ms}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn revocation_lost_with_the_subscription_still_holds_within_1s() {
        let Some((server, clock, a, b)) = two_replicas() else {
            return eprintln!("{SKIPPED}");
        };
        subscribed(&b).await;
        let id = SessionId::generate();
        a.insert(&id, record(&*clock)).await.unwrap();
        assert!(b.get(&id).await.unwrap().is_some());
        // B's subscription drops; the revocation message is published while it is gone.
        server.command("CLIENT KILL TYPE pubsub").unwrap();
        a.remove(&id).await.unwrap();
        let took = within(Duration::from_secs(1), async || {
            b.get(&id).await.unwrap().is_none()
        })
        .await;
        assert!(
            took.is_some(),
            "untrusted L1 while unsubscribed, cleared on resubscribe"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_redis_bounded_by_op_timeout() {
        let Some(server) = RedisServer::start() else {
            return eprintln!("{SKIPPED}");
        };
        let clock: Arc<dyn Clock> = Arc::new(crate::session::SystemClock);
        let s = store_on(&server, clock.clone());
        assert!(s.ready().await);
        let probe = server.command_on();
        let sleeper = std::thread::spawn(move || probe("DEBUG SLEEP 2"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = std::time::Instant::now();
        let r = s.claim_code(
            "k",
            CodeClaim {
                binding: "b".into(),
                return_to: "/".into(),
                session: None,
            },
        );
        assert!(matches!(r.await, Err(StoreError::Unavailable(_))));
        let took = t.elapsed();
        assert!(took < OP_TIMEOUT + Duration::from_millis(300), "{took:?}");
        assert!(!s.ready().await, "not ready while Redis does not answer");
        let _ = sleeper.join().unwrap();
        let back = within(Duration::from_secs(5), async || s.ready().await).await;
        assert!(back.is_some(), "ready once Redis answers again");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expired_sessions_leave_the_index_on_insert() {
        let Some(server) = RedisServer::start() else {
            return eprintln!("{SKIPPED}");
        };
        let clock = Arc::new(ManualClock::new());
        let s = store_on(&server, clock.clone());
        let old = SessionId::generate();
        s.insert(&old, record(&*clock)).await.unwrap();
        clock.advance(Duration::from_secs(3600));
        s.insert(&SessionId::generate(), record(&*clock))
            .await
            .unwrap();
        let card = server.command("ZCARD clever-gateway:sessions").unwrap();
        assert!(card.contains(":1\r\n"), "{card}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn password_from_settings_is_used() {
        let Some(server) = RedisServer::start_with_password(Some("s3cret-pw")) else {
            return eprintln!("{SKIPPED}");
        };
        let clock: Arc<dyn Clock> = Arc::new(crate::session::SystemClock);
        let without = store_on(&server, clock.clone());
        assert!(!without.ready().await, "NOAUTH without the password");
        let with = store_at(PrimaryAt::Url(server.url()), Some("s3cret-pw"), clock);
        assert!(with.ready().await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn write_with_a_replica_is_answered_once_the_replica_has_it() {
        let Some(primary) = RedisServer::start() else {
            return eprintln!("{SKIPPED}");
        };
        let replica = RedisServer::start_replica_of(&primary).unwrap();
        let clock: Arc<dyn Clock> = Arc::new(crate::session::SystemClock);
        let s = store_on(&primary, clock.clone());
        checked(&s, 1).await;
        let id = SessionId::generate();
        s.insert(&id, record(&*clock)).await.unwrap();
        assert_eq!(acks(&s, WriteAck::Replica), 1.0, "WAIT counted the replica");
        let key = session_key(&sha256_hex(id.expose()));
        let on_replica = replica.command(&format!("EXISTS {key}")).unwrap();
        assert!(
            on_replica.contains(":1"),
            "on the replica when answered: {on_replica}"
        );
        // Every kind of acknowledged write waits: code claim, code, logout.
        let claim = CodeClaim {
            binding: "b".into(),
            return_to: "/".into(),
            session: None,
        };
        s.claim_code("k", claim.clone()).await.unwrap();
        s.complete_code("k", claim).await.unwrap();
        s.remove(&id).await.unwrap();
        assert_eq!(acks(&s, WriteAck::Replica), 4.0);
        assert_eq!(acks(&s, WriteAck::Timeout), 0.0);
        assert_eq!(acks(&s, WriteAck::NoReplica), 0.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn write_with_a_stalled_replica_answers_after_the_ack_timeout_and_counts_it() {
        let Some(primary) = RedisServer::start() else {
            return eprintln!("{SKIPPED}");
        };
        let replica = RedisServer::start_replica_of(&primary).unwrap();
        let clock: Arc<dyn Clock> = Arc::new(crate::session::SystemClock);
        let s = store_on(&primary, clock.clone());
        checked(&s, 1).await;
        replica.pause();
        let id = SessionId::generate();
        let t = std::time::Instant::now();
        s.insert(&id, record(&*clock)).await.unwrap();
        // WAIT blocks for its whole timeout when no replica answers: a lower bound, not a goal.
        assert!(t.elapsed() >= ACK_TIMEOUT, "{:?}", t.elapsed());
        assert_eq!(acks(&s, WriteAck::Timeout), 1.0);
        assert!(s.shared.acks_failing.load(Ordering::SeqCst));
        assert!(s.get(&id).await.unwrap().is_some(), "the write stands");
        replica.resume();
        s.insert(&SessionId::generate(), record(&*clock))
            .await
            .unwrap();
        assert_eq!(acks(&s, WriteAck::Replica), 1.0);
        assert!(
            !s.shared.acks_failing.load(Ordering::SeqCst),
            "back to normal"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn write_without_a_replica_does_not_wait() {
        let Some(server) = RedisServer::start() else {
            return eprintln!("{SKIPPED}");
        };
        let clock: Arc<dyn Clock> = Arc::new(crate::session::SystemClock);
        let s = store_on(&server, clock.clone());
        checked(&s, 0).await;
        s.insert(&SessionId::generate(), record(&*clock))
            .await
            .unwrap();
        assert_eq!(acks(&s, WriteAck::NoReplica), 1.0);
        assert_eq!(acks(&s, WriteAck::Timeout), 0.0);
    }

    mod sentinel_conformance {
        //! The same conformance suite, the store finding its primary through a Sentinel (the
        //! primary has a replica, so every write also waits for it).
        use super::*;

        store_conformance!(|clock: Arc<ManualClock>| {
            let ha = RedisHa::start(1, 5000)?;
            let store = store_at(sentinel_at(&ha.sentinels, None), None, clock);
            // The suite starts at once: wait (on this thread) for the first lookup.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while store.primary.node().is_none() {
                assert!(std::time::Instant::now() < deadline, "no primary named");
                std::thread::sleep(Duration::from_millis(10));
            }
            let store: Arc<dyn SessionStore> = Arc::new(store);
            Some(Fixture {
                store,
                _keep: Some(Box::new(ha)),
            })
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sentinel_store_follows_a_failover_keeping_sessions_and_revocations() {
        let Some(ha) = RedisHa::start(1, 5000) else {
            return eprintln!("{SKIPPED_SENTINEL}");
        };
        let clock: Arc<dyn Clock> = Arc::new(crate::session::SystemClock);
        let a = store_at(sentinel_at(&ha.sentinels, None), None, clock.clone());
        let b = store_at(sentinel_at(&ha.sentinels, None), None, clock.clone());
        checked(&a, 1).await;
        checked(&b, 1).await;
        let primary_addr = format!("127.0.0.1:{}", ha.primary.port());
        assert_eq!(a.primary.node().unwrap().addr, primary_addr);
        let kept = SessionId::generate();
        a.insert(&kept, record(&*clock)).await.unwrap();
        assert_eq!(
            acks(&a, WriteAck::Replica),
            1.0,
            "timeouts {}, without replica {}",
            acks(&a, WriteAck::Timeout),
            acks(&a, WriteAck::NoReplica)
        );
        // A failover the Sentinel runs on its own: the replica becomes the primary, the old
        // primary a replica of it; both stores move without a restart.
        let r = ha
            .sentinels
            .command(0, None, &format!("SENTINEL FAILOVER {MASTER_NAME}"))
            .unwrap();
        assert!(r.contains("+OK"), "{r}");
        let new_addr = format!("127.0.0.1:{}", ha.replica.port());
        for s in [&a, &b] {
            let moved = within(Duration::from_secs(20), async || {
                s.primary.node().is_some_and(|n| n.addr == new_addr) && s.ready().await
            })
            .await;
            assert!(
                moved.is_some(),
                "followed the failover:\n{}",
                ha.sentinels.logs()
            );
            assert_eq!(
                counter(s, names::REDIS_PRIMARY_CHANGES, &[]),
                1.0,
                "counted once"
            );
        }
        assert!(
            b.get(&kept).await.unwrap().is_some(),
            "the session survived"
        );
        // Writes land on the new primary.
        let fresh = SessionId::generate();
        a.insert(&fresh, record(&*clock)).await.unwrap();
        let key = session_key(&sha256_hex(fresh.expose()));
        assert!(ha
            .replica
            .command(&format!("EXISTS {key}"))
            .unwrap()
            .contains(":1"));
        // Revocations are published and heard on the new primary.
        subscribed(&a).await;
        subscribed(&b).await;
        assert!(b.get(&fresh).await.unwrap().is_some());
        a.remove(&fresh).await.unwrap();
        let took = within(Duration::from_secs(1), async || {
            b.get(&fresh).await.unwrap().is_none()
        })
        .await;
        assert!(took.is_some(), "revoked on B within 1 s after the failover");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sentinel_with_its_own_password_and_a_protected_primary() {
        let Some(primary) = RedisServer::start_with_password(Some("data-pw")) else {
            return eprintln!("{SKIPPED}");
        };
        let Some(sentinels) = Sentinels::start(1, &primary, 5000, Some("sentinel-pw")) else {
            return eprintln!("{SKIPPED_SENTINEL}");
        };
        let clock: Arc<dyn Clock> = Arc::new(crate::session::SystemClock);
        let ok = store_at(
            sentinel_at(&sentinels, Some("sentinel-pw")),
            Some("data-pw"),
            clock.clone(),
        );
        checked(&ok, 0).await;
        assert_eq!(
            ok.primary.node().unwrap().addr,
            format!("127.0.0.1:{}", primary.port())
        );
        ok.insert(&SessionId::generate(), record(&*clock))
            .await
            .unwrap();
        // Without the Sentinels' password no primary is ever named: not ready, never a panic.
        let refused = store_at(sentinel_at(&sentinels, None), Some("data-pw"), clock);
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(refused.primary.node().is_none());
        assert!(!refused.ready().await);
        assert!(matches!(
            refused.get(&SessionId::generate()).await,
            Err(StoreError::Unavailable(_))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sentinel_store_writes_to_redis_db() {
        let Some(ha) = RedisHa::start(1, 5000) else {
            return eprintln!("{SKIPPED_SENTINEL}");
        };
        let clock: Arc<dyn Clock> = Arc::new(crate::session::SystemClock);
        let PrimaryAt::Sentinel(mut settings) = sentinel_at(&ha.sentinels, None) else {
            unreachable!()
        };
        settings.db = 3;
        let s = store_at(PrimaryAt::Sentinel(settings), None, clock.clone());
        checked(&s, 1).await;
        s.insert(&SessionId::generate(), record(&*clock))
            .await
            .unwrap();
        let keyspace = ha.primary.command("INFO keyspace").unwrap();
        assert!(keyspace.contains("db3:keys=2"), "{keyspace}");
        assert!(!keyspace.contains("db0:"), "{keyspace}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stalled_replica_holds_up_neither_reads_nor_other_writes() {
        let Some(primary) = RedisServer::start() else {
            return eprintln!("{SKIPPED}");
        };
        let replica = RedisServer::start_replica_of(&primary).unwrap();
        let clock: Arc<dyn Clock> = Arc::new(crate::session::SystemClock);
        let s = Arc::new(store_on(&primary, clock.clone()));
        checked(&s, 1).await;
        let known = SessionId::generate();
        s.insert(&known, record(&*clock)).await.unwrap();
        s.shared.l1.invalidate_all();
        primary.command("CONFIG RESETSTAT").unwrap();
        replica.pause();
        // 16 writes at once: each WAIT blocks its connection for the whole timeout, so one WAIT
        // per write on one connection would take 16 x 250 ms and fail them all.
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (s, clock) = (s.clone(), clock.clone());
            tasks.push(tokio::spawn(async move {
                s.insert(&SessionId::generate(), record(&*clock)).await
            }));
        }
        // A read meanwhile (not cached) is not queued behind their WAITs (it would time out).
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(s.get(&known).await.unwrap().is_some());
        for t in tasks {
            t.await.unwrap().expect("answered, not failed");
        }
        replica.resume();
        assert_eq!(acks(&s, WriteAck::Timeout), 16.0);
        let stats = primary.command("INFO commandstats").unwrap();
        let waits: u64 = stats
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_wait:calls="))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
            .expect("WAIT calls");
        assert!(waits <= 4, "WAITs shared by the writes: {waits}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn primary_dying_before_the_replica_acknowledges_fails_the_write() {
        let Some(mut primary) = RedisServer::start() else {
            return eprintln!("{SKIPPED}");
        };
        let replica = RedisServer::start_replica_of(&primary).unwrap();
        let clock: Arc<dyn Clock> = Arc::new(crate::session::SystemClock);
        let s = Arc::new(store_on(&primary, clock.clone()));
        checked(&s, 1).await;
        replica.pause();
        let writing = {
            let (s, clock) = (s.clone(), clock.clone());
            tokio::spawn(async move { s.insert(&SessionId::generate(), record(&*clock)).await })
        };
        // The write is on the primary, its WAIT pending; then the primary dies.
        tokio::time::sleep(Duration::from_millis(100)).await;
        primary.stop();
        let r = writing.await.unwrap();
        replica.resume();
        assert!(
            matches!(r, Err(StoreError::Unavailable(_))),
            "not reported as done: {r:?}"
        );
        assert_eq!(acks(&s, WriteAck::Timeout), 0.0);
    }
}
