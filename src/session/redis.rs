//! The Redis session store (`store = "redis"`): Redis is authoritative for sessions and
//! exchanged codes, so any replica can finish any login and a restart signs no one out. (Sign-ins
//! in progress live in the browser's login cookie, which every replica can open.) Each replica keeps a short-lived moka L1 in front of it, invalidated through Redis
//! pub/sub so that a logout holds on every replica within 1 s.
//!
//! Keys (all under `clever-gateway:`):
//! - `session:<sha256(session id)>`: the session as JSON, TTL = its remaining life. The
//!   cookie value itself is never a key, so `KEYS`/`MONITOR` do not hand out live cookies.
//! - `sessions`: sorted set of session key hashes by expiry (ms), for the sessions gauge.
//! - no `pending:` keys any more: a gateway before stateless sign-ins wrote them; they expire
//!   on their own (10 min), and such a sign-in ends on "sign-in expired, try again".
//! - `code:<sha256(code)>`: an exchanged-code claim (TTL 5 min), taken with `SET NX`.
//! - channel `clever-gateway:revoke`: session key hashes whose L1 entries must go.
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
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, RedisResult};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::store::{CodeClaim, LoginTimes, SessionStore, StoreError};
use super::{Clock, SessionId, SessionRecord};
use crate::identity::Identity;
use crate::secret::Secret;

/// Every key and the pub/sub channel start with this.
pub const KEY_PREFIX: &str = "clever-gateway:";
/// How long a replica serves a session from its L1 without asking Redis.
pub const L1_TTL: Duration = Duration::from_secs(5);
/// Upper bound of every Redis call (connect included).
pub const OP_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the background task checks Redis (readiness and the up/down log line).
const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// Pause between pub/sub reconnection attempts.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(200);
/// Sessions kept in one replica's L1 at most.
const L1_CAPACITY: u64 = 500_000;

/// `SET NX`; when the code was claimed before, the earlier claim.
const CLAIM_CODE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
";

/// Where Redis is and how to sign in to it.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` URL, without a password.
    pub url: String,
    pub password: Option<Secret>,
    /// How long exchanged codes are kept (from `session.login_timeout`).
    pub login: LoginTimes,
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
}

/// Sessions in Redis, with a per-replica L1. See the module docs for keys and bounds.
pub struct RedisStore {
    conn: ConnectionManager,
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    times: LoginTimes,
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
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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

/// The category of a client error only: a URL parse error must not echo the URL.
fn kind_only(e: &redis::RedisError) -> String {
    format!("{:?}", e.kind())
}

impl RedisStore {
    /// Builds the store without waiting for Redis: a gateway may start while Redis is down
    /// (it is then not ready) and connects as soon as Redis answers.
    pub fn new(settings: &RedisSettings, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let mut info =
            settings.url.as_str().into_connection_info().map_err(|e| {
                StoreError::Unavailable(format!("bad redis_url: {}", kind_only(&e)))
            })?;
        if let Some(pw) = &settings.password {
            let redis = info.redis_settings().clone().set_password(pw.expose());
            info = info.set_redis_settings(redis);
        }
        let client = redis::Client::open(info)
            .map_err(|e| StoreError::Unavailable(format!("bad redis_url: {}", kind_only(&e))))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("redis-store")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot start the Redis runtime: {e}")))?;
        let rt = StoreRuntime(Some(rt));
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(OP_TIMEOUT);
        let conn = {
            let _guard = rt.handle().enter();
            ConnectionManager::new_lazy_with_config(client.clone(), config)
                .map_err(|e| StoreError::Unavailable(format!("redis: {}", kind_only(&e))))?
        };
        let shared = Arc::new(Shared {
            l1: Cache::builder()
                .max_capacity(L1_CAPACITY)
                .time_to_live(L1_TTL)
                .build(),
            health: Health::default(),
            subscribed: AtomicBool::new(false),
            invalidations: AtomicU64::new(0),
        });
        rt.handle()
            .spawn(subscribe_revocations(client, shared.clone()));
        rt.handle()
            .spawn(watch_health(conn.clone(), shared.clone()));
        Ok(RedisStore {
            conn,
            shared,
            clock,
            times: settings.login,
            rt,
        })
    }

    /// Runs one Redis exchange on the store's runtime, bounded by [`OP_TIMEOUT`], and records
    /// Redis health from its outcome.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let fut = f(self.conn.clone());
        let joined = self
            .rt
            .handle()
            .spawn(async move { tokio::time::timeout(OP_TIMEOUT, fut).await })
            .await;
        let why = match joined {
            Ok(Ok(Ok(v))) => {
                self.shared.health.up();
                return Ok(v);
            }
            Ok(Ok(Err(e))) => format!("redis: {e}"),
            Ok(Err(_)) => format!("redis did not answer within {OP_TIMEOUT:?}"),
            Err(e) => format!("redis task: {e}"),
        };
        self.shared.health.down(&why);
        Err(StoreError::Unavailable(why))
    }

    fn now_ms(&self) -> u64 {
        ms(self.clock.now())
    }
}

/// Keeps this replica subscribed to revocations; drops the whole L1 whenever it (re)subscribes
/// (messages sent meanwhile are lost) and marks the L1 untrusted while it is not subscribed.
async fn subscribe_revocations(client: redis::Client, shared: Arc<Shared>) {
    use futures_util::StreamExt;
    loop {
        let pubsub = tokio::time::timeout(OP_TIMEOUT, client.get_async_pubsub()).await;
        if let Ok(Ok(mut pubsub)) = pubsub {
            let subscribed =
                tokio::time::timeout(OP_TIMEOUT, pubsub.subscribe(revoke_channel())).await;
            if let Ok(Ok(())) = subscribed {
                shared.l1.invalidate_all();
                shared.invalidations.fetch_add(1, Ordering::SeqCst);
                shared.subscribed.store(true, Ordering::SeqCst);
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    if let Ok(hash) = msg.get_payload::<String>() {
                        shared.invalidations.fetch_add(1, Ordering::SeqCst);
                        shared.l1.invalidate(&hash).await;
                    }
                }
                shared.subscribed.store(false, Ordering::SeqCst);
            }
        }
        tokio::time::sleep(RESUBSCRIBE_DELAY).await;
    }
}

/// PINGs Redis every [`HEALTH_INTERVAL`], so readiness and the up/down log line follow Redis
/// even without traffic, and the connection manager reconnects by itself.
async fn watch_health(conn: ConnectionManager, shared: Arc<Shared>) {
    loop {
        let mut c = conn.clone();
        let ping = tokio::time::timeout(OP_TIMEOUT, async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await;
        match ping {
            Ok(Ok(_)) => shared.health.up(),
            Ok(Err(e)) => shared.health.down(&format!("redis: {e}")),
            Err(_) => shared
                .health
                .down(&format!("redis did not answer within {OP_TIMEOUT:?}")),
        }
        tokio::time::sleep(HEALTH_INTERVAL).await;
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn get(&self, id: &SessionId) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        let hash = sha256_hex(id.expose());
        let now = self.clock.now();
        let cached = self.shared.l1.get(&hash).await;
        if let Some(rec) = &cached {
            let trusted =
                self.shared.subscribed.load(Ordering::SeqCst) || self.shared.health.is_down();
            if trusted {
                return Ok(rec.is_live(now).then(|| rec.clone()));
            }
        }
        let generation = self.shared.invalidations.load(Ordering::SeqCst);
        let key = session_key(&hash);
        let found = self
            .run(move |mut c| async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await;
        let json = match found {
            Ok(j) => j,
            // Redis trouble: a session this replica saw in the last few seconds still works.
            Err(e) => {
                return match cached {
                    Some(rec) => Ok(rec.is_live(now).then_some(rec)),
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
        if self.shared.invalidations.load(Ordering::SeqCst) == generation {
            self.shared.l1.insert(hash, rec.clone()).await;
        }
        Ok(Some(rec))
    }

    async fn insert(&self, id: &SessionId, record: SessionRecord) -> Result<(), StoreError> {
        let hash = sha256_hex(id.expose());
        let expires_ms = ms(record.expires_at);
        let now_ms = self.now_ms();
        let ttl_ms = expires_ms.saturating_sub(now_ms).max(1);
        let json = encode(&StoredSession {
            identity: record.identity.clone(),
            access_token: record.access_token().to_string(),
            created_ns: ns(record.created_at),
            expires_ns: ns(record.expires_at),
            user_type_header: record.identity.user_type_header().to_string(),
        })?;
        let key = session_key(&hash);
        let member = hash.clone();
        self.run(move |mut c| async move {
            redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(&key)
                .arg(json)
                .arg("PX")
                .arg(ttl_ms)
                .ignore()
                .cmd("ZADD")
                .arg(sessions_index())
                .arg(expires_ms)
                .arg(member)
                .ignore()
                // Keep the index to live sessions even when nothing scrapes the gauge.
                .cmd("ZREMRANGEBYSCORE")
                .arg(sessions_index())
                .arg("-inf")
                .arg(now_ms)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await?;
        self.shared.l1.insert(hash, Arc::new(record)).await;
        Ok(())
    }

    async fn remove(&self, id: &SessionId) -> Result<(), StoreError> {
        let hash = sha256_hex(id.expose());
        self.shared.invalidations.fetch_add(1, Ordering::SeqCst);
        self.shared.l1.invalidate(&hash).await;
        let key = session_key(&hash);
        self.run(move |mut c| async move {
            redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(&key)
                .ignore()
                .cmd("ZREM")
                .arg(sessions_index())
                .arg(&hash)
                .ignore()
                .cmd("PUBLISH")
                .arg(revoke_channel())
                .arg(&hash)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await
    }

    async fn claim_code(
        &self,
        code_key_: &str,
        claim: CodeClaim,
    ) -> Result<Option<CodeClaim>, StoreError> {
        let json = encode(&stored_claim(&claim))?;
        let key = code_key(code_key_);
        let ttl_ms = self.times.codes.as_millis() as u64;
        let earlier: Option<String> = self
            .run(move |mut c| async move {
                redis::Script::new(CLAIM_CODE)
                    .key(key)
                    .arg(json)
                    .arg(ttl_ms)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
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
        self.run(move |mut c| async move {
            redis::cmd("SET")
                .arg(key)
                .arg(json)
                .arg("PX")
                .arg(ttl_ms)
                .query_async::<()>(&mut c)
                .await
        })
        .await
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
    use crate::session::conformance::{store_conformance, Fixture};
    use crate::session::testing::{RedisServer, SKIPPED};
    use crate::session::ManualClock;

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
        let settings = RedisSettings {
            url: server.url(),
            password: None,
            login: LoginTimes::default(),
        };
        RedisStore::new(&settings, clock).unwrap()
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
        let with = RedisStore::new(
            &RedisSettings {
                url: server.url(),
                password: Some(Secret::new("s3cret-pw")),
                login: LoginTimes::default(),
            },
            clock,
        )
        .unwrap();
        assert!(with.ready().await);
    }
}
