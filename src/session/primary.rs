//! Where the Redis primary is, and the connection to it: a fixed `redis_url`, or the node the
//! Sentinels name (`redis_sentinels`), followed across failovers without a restart. Also how
//! many replicas the primary has, which decides whether a write waits for one (`WAIT`).
//!
//! With Sentinel the primary is looked up again (the `redis` crate's Sentinel client: it asks
//! each Sentinel, skips masters flagged down, and checks with `ROLE` that the node it names is
//! really a primary) when a command fails, when a Sentinel publishes `+switch-master`, when the
//! health check finds the node gone or demoted, and every [`RECHECK`] in any case. Lookups are
//! at most one per [`MIN_GAP`], each bounded by [`LOOKUP_TIMEOUT`]. When the answer is a new
//! node, a new connection manager replaces the old one and every watcher of [`Primary::changes`]
//! (the revocation subscription, the health check) moves to it at once.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, TlsMode};
use tokio::sync::{watch, Notify};

use super::acks::{AbortOnDrop, Acks};
use super::store::StoreError;
use crate::process::metrics::Metrics;
use crate::secret::Secret;

/// Upper bound of one lookup through the Sentinels (they are asked three at a time).
pub(crate) const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// Lookups are at least this far apart: a burst of failing commands makes one lookup.
pub(crate) const MIN_GAP: Duration = Duration::from_millis(200);
/// While no primary is known, the Sentinels are asked again this often.
const RETRY: Duration = Duration::from_millis(500);
/// With a primary known and nothing wrong, it is checked with the Sentinels this often anyway
/// (a `+switch-master` message may have been missed).
pub(crate) const RECHECK: Duration = Duration::from_secs(10);
/// Pause before subscribing to a Sentinel's `+switch-master` again (the next Sentinel).
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(200);
/// The channel a Sentinel announces a failover's new primary on.
const SWITCH_MASTER: &str = "+switch-master";
/// The replica count of a node not checked yet.
const UNKNOWN: i64 = -1;

/// Where to find the primary.
#[derive(Debug, Clone)]
pub enum PrimaryAt {
    /// `redis://` or `rediss://` URL, without a password.
    Url(String),
    /// Asked of the Sentinels.
    Sentinel(SentinelSettings),
}

/// The Sentinels and how to talk to them and to the data nodes they name.
#[derive(Debug, Clone)]
pub struct SentinelSettings {
    /// Host and port of each Sentinel.
    pub sentinels: Vec<(String, u16)>,
    /// The name the Sentinels monitor the primary under.
    pub master_name: String,
    /// The database on the data nodes.
    pub db: i64,
    /// TLS (verified against the system's roots) to the Sentinels and the data nodes.
    pub tls: bool,
    /// The Sentinels' own password.
    pub password: Option<Secret>,
}

/// Every connection to a data node: each call is cut at `op_timeout`; one quick retry.
pub(crate) fn manager_config(op_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(op_timeout))
        .set_response_timeout(Some(op_timeout))
        .set_number_of_retries(1)
        .set_max_delay(op_timeout)
}

/// The category of a client error only: a URL parse error must not echo the URL.
pub(crate) fn kind_only(e: &redis::RedisError) -> String {
    format!("{:?}", e.kind())
}

/// One primary as last found: a client (for pub/sub), a connection manager (reads and
/// unacknowledged writes), the acknowledged writes' own connection, its address.
pub(crate) struct Node {
    pub(crate) client: redis::Client,
    pub(crate) conn: ConnectionManager,
    pub(crate) acks: Arc<Acks>,
    _acks_task: AbortOnDrop,
    /// `host:port`, for log lines.
    pub(crate) addr: String,
    /// Replicas connected to it at the last check (`ROLE`); [`UNKNOWN`] before the first.
    replicas: AtomicI64,
}

impl Node {
    /// Replicas connected to this primary at the last check; `None` before the first.
    #[cfg(test)]
    pub(crate) fn replicas(&self) -> Option<usize> {
        usize::try_from(self.replicas.load(Ordering::SeqCst)).ok()
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("addr", &self.addr).finish()
    }
}

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    /// The node answers as the primary.
    Primary,
    /// Not usable now; why (for the log line).
    Down(String),
    /// No primary known yet: the Sentinels have not answered since the start (the lookup
    /// task logs why; the store is neither up nor down yet).
    NotFound,
}

/// The primary and how it is followed. See the module docs.
pub(crate) struct Primary {
    current: watch::Sender<Option<Arc<Node>>>,
    /// Wakes the Sentinel lookup task (a failed command, `+switch-master`, a failed check).
    wake: Notify,
    /// Found through Sentinel (a topology with replicas by design).
    sentinel: bool,
    /// `ROLE` was refused (an ACL without it): health falls back to `PING`.
    role_refused: AtomicBool,
    metrics: Arc<Metrics>,
    op_timeout: Duration,
}

impl std::fmt::Debug for Primary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Primary")
            .field("node", &self.node())
            .field("sentinel", &self.sentinel)
            .finish()
    }
}

impl Primary {
    /// Sets up the primary without waiting for any server: with a URL the node is known at
    /// once (and connects lazily); with Sentinel the lookup and the `+switch-master` watch start
    /// on `rt` and the primary is unknown until the first lookup answers.
    pub(crate) fn start(
        at: &PrimaryAt,
        password: Option<&Secret>,
        op_timeout: Duration,
        metrics: Arc<Metrics>,
        rt: &tokio::runtime::Handle,
    ) -> Result<Arc<Primary>, StoreError> {
        let primary = Arc::new(Primary::unknown(
            matches!(at, PrimaryAt::Sentinel(_)),
            op_timeout,
            metrics,
        ));
        match at {
            PrimaryAt::Url(url) => {
                let mut info = url.as_str().into_connection_info().map_err(|e| {
                    StoreError::Unavailable(format!("bad redis_url: {}", kind_only(&e)))
                })?;
                if let Some(pw) = password {
                    let redis = info.redis_settings().clone().set_password(pw.expose());
                    info = info.set_redis_settings(redis);
                }
                let client = redis::Client::open(info).map_err(|e| {
                    StoreError::Unavailable(format!("bad redis_url: {}", kind_only(&e)))
                })?;
                let _guard = rt.enter();
                let node = primary.node_for(client)?;
                primary.current.send_replace(Some(node));
            }
            PrimaryAt::Sentinel(s) => {
                let lookup = sentinel_client(s, password).map_err(|e| {
                    StoreError::Unavailable(format!("redis_sentinels: {}", kind_only(&e)))
                })?;
                let sentinels = sentinel_infos(s)?;
                rt.spawn(follow(primary.clone(), lookup, s.master_name.clone()));
                rt.spawn(watch_switches(
                    primary.clone(),
                    sentinels,
                    s.master_name.clone(),
                ));
            }
        }
        Ok(primary)
    }

    fn unknown(sentinel: bool, op_timeout: Duration, metrics: Arc<Metrics>) -> Primary {
        Primary {
            current: watch::Sender::new(None),
            wake: Notify::new(),
            sentinel,
            role_refused: AtomicBool::new(false),
            metrics,
            op_timeout,
        }
    }

    /// The primary as last found; `None` while the Sentinels have not named one yet.
    pub(crate) fn node(&self) -> Option<Arc<Node>> {
        self.current.borrow().clone()
    }

    /// Sees every change of primary (the value is the new one).
    pub(crate) fn changes(&self) -> watch::Receiver<Option<Arc<Node>>> {
        self.current.subscribe()
    }

    /// A command failed: with Sentinel, look up where the primary is now (soon, and at most
    /// once per [`MIN_GAP`] however many commands fail). Nothing to do with a fixed URL.
    pub(crate) fn trouble(&self) {
        if self.sentinel {
            self.wake.notify_one();
        }
    }

    /// Whether a write should wait for a replica's acknowledgement: the primary has replicas,
    /// or (not checked yet) it was found through Sentinel, whose topologies have them.
    pub(crate) fn wants_ack(&self, node: &Node) -> bool {
        match node.replicas.load(Ordering::SeqCst) {
            UNKNOWN => self.sentinel,
            n => n > 0,
        }
    }

    /// Checks the current node with `ROLE` (bounded by the op timeout): a primary is up and its
    /// replica count is recorded; a replica (a demoted primary) or no answer is down and, with
    /// Sentinel, starts a lookup. Without permission for `ROLE`, `PING` decides.
    pub(crate) async fn check(&self) -> Check {
        let Some(node) = self.node() else {
            return Check::NotFound;
        };
        let verdict = self.check_node(&node).await;
        if verdict != Check::Primary {
            self.trouble();
        }
        verdict
    }

    /// [`Primary::check`] of one node, current or not.
    async fn check_node(&self, node: &Node) -> Check {
        if self.role_refused.load(Ordering::SeqCst) {
            self.ping(node).await
        } else {
            let mut c = node.conn.clone();
            let role = tokio::time::timeout(self.op_timeout, async move {
                redis::cmd("ROLE").query_async::<redis::Role>(&mut c).await
            })
            .await;
            match role {
                Ok(Ok(redis::Role::Primary { replicas, .. })) => {
                    self.set_replicas(node, replicas.len());
                    Check::Primary
                }
                Ok(Ok(_)) => Check::Down(format!(
                    "the Redis node {} is not a primary (demoted by a failover?)",
                    node.addr
                )),
                Ok(Err(e))
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm) =>
                {
                    tracing::warn!(
                        "session store: Redis refuses ROLE to the gateway's user: health is \
                         checked with PING, and writes wait for a replica only with Sentinel; \
                         grant +role to see the primary's replicas"
                    );
                    self.role_refused.store(true, Ordering::SeqCst);
                    self.ping(node).await
                }
                Ok(Err(e)) => Check::Down(format!("redis: {e}")),
                Err(_) => Check::Down(format!("redis did not answer within {:?}", self.op_timeout)),
            }
        }
    }

    async fn ping(&self, node: &Node) -> Check {
        let mut c = node.conn.clone();
        let ping = tokio::time::timeout(self.op_timeout, async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await;
        match ping {
            Ok(Ok(_)) => Check::Primary,
            Ok(Err(e)) => Check::Down(format!("redis: {e}")),
            Err(_) => Check::Down(format!("redis did not answer within {:?}", self.op_timeout)),
        }
    }

    /// Records the primary's replica count, with a log line when writes start or stop being
    /// replicated before the browser is answered.
    fn set_replicas(&self, node: &Node, n: usize) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let before = node.replicas.swap(n, Ordering::SeqCst);
        if (before > 0) == (n > 0) && before != UNKNOWN {
            return;
        }
        if n > 0 {
            tracing::info!(
                primary = %node.addr,
                replicas = n,
                "session store: the Redis primary has replicas; each write the browser is \
                 answered for waits until one of them has it"
            );
        } else if self.sentinel || before > 0 {
            tracing::warn!(
                primary = %node.addr,
                "session store: the Redis primary has no replica connected; writes are not \
                 replicated before the browser is answered (lost if the primary fails now)"
            );
        } else {
            tracing::info!(
                primary = %node.addr,
                "session store: the Redis server has no replica; writes are not waited for"
            );
        }
    }

    fn node_for(&self, client: redis::Client) -> Result<Arc<Node>, StoreError> {
        let addr = client.get_connection_info().addr().to_string();
        let conn = ConnectionManager::new_lazy_with_config(
            client.clone(),
            manager_config(self.op_timeout),
        )
        .map_err(|e| StoreError::Unavailable(format!("redis: {}", kind_only(&e))))?;
        let (acks, acks_task) = Acks::start(client.clone(), self.op_timeout);
        Ok(Arc::new(Node {
            client,
            conn,
            acks,
            _acks_task: acks_task,
            addr,
            replicas: AtomicI64::new(UNKNOWN),
        }))
    }

    /// Makes `client`'s node the primary if it is not already (a failover, or the first one
    /// found). It is checked first, so the first writes on it know whether to wait for a
    /// replica (after a failover the new primary usually has none yet).
    async fn adopt(&self, client: redis::Client) {
        let addr = client.get_connection_info().addr().to_string();
        if self.node().is_some_and(|n| n.addr == addr) {
            return;
        }
        let node = match self.node_for(client) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "session store: cannot connect to the new Redis primary");
                return;
            }
        };
        if let Check::Down(why) = self.check_node(&node).await {
            // Not adopted: the next lookup asks again.
            tracing::warn!(primary = %addr, why, "session store: the primary the Sentinels name does not answer as one");
            self.trouble();
            return;
        }
        let previous = self.current.send_replace(Some(node));
        match previous {
            None => tracing::info!(
                primary = %addr,
                "session store: the Sentinels name the Redis primary"
            ),
            Some(old) => {
                self.metrics.redis_primary_change();
                tracing::warn!(
                    primary = %addr,
                    previous = %old.addr,
                    "session store: the Redis primary moved (failover); following it"
                );
            }
        }
    }
}

/// The `redis` crate's Sentinel client for the primary: data-node password, db and TLS, and
/// the Sentinels' own password.
fn sentinel_client(
    s: &SentinelSettings,
    password: Option<&Secret>,
) -> redis::RedisResult<SentinelClient> {
    let mut b = SentinelClientBuilder::new(
        s.sentinels.iter().map(|(h, p)| sentinel_addr(h, *p, s.tls)),
        &s.master_name,
        SentinelServerType::Master,
    )?
    .set_client_to_redis_db(s.db);
    if s.tls {
        b = b.set_client_to_redis_tls_mode(TlsMode::Secure);
    }
    if let Some(pw) = password {
        b = b.set_client_to_redis_password(pw.expose());
    }
    if let Some(pw) = &s.password {
        b = b.set_client_to_sentinel_password(pw.expose());
    }
    b.build()
}

fn sentinel_addr(host: &str, port: u16, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.to_string(), port)
    }
}

/// Connection settings for each Sentinel, for the `+switch-master` subscription.
fn sentinel_infos(s: &SentinelSettings) -> Result<Vec<redis::ConnectionInfo>, StoreError> {
    s.sentinels
        .iter()
        .map(|(h, p)| {
            let info = sentinel_addr(h, *p, s.tls)
                .into_connection_info()
                .map_err(|e| {
                    StoreError::Unavailable(format!("redis_sentinels: {}", kind_only(&e)))
                })?;
            let mut redis = RedisConnectionInfo::default();
            if let Some(pw) = &s.password {
                redis = redis.set_password(pw.expose());
            }
            Ok(info.set_redis_settings(redis))
        })
        .collect()
}

/// Whether a `+switch-master` message (`<name> <old ip> <old port> <new ip> <new port>`) is
/// about the primary named `name`.
pub(crate) fn switch_is_for(payload: &str, name: &str) -> bool {
    payload.split(' ').next() == Some(name)
}

/// Looks the primary up through the Sentinels: at once, then whenever woken (at most once per
/// [`MIN_GAP`]), and every [`RECHECK`] (every [`RETRY`] while none is known). One log line per
/// change between "found" and "not found".
async fn follow(primary: Arc<Primary>, mut lookup: SentinelClient, name: String) {
    let mut failing = false;
    loop {
        let found = tokio::time::timeout(LOOKUP_TIMEOUT, lookup.async_get_client()).await;
        match found {
            Ok(Ok(client)) => {
                if failing {
                    tracing::info!(master = %name, "session store: the Sentinels name a primary again");
                    failing = false;
                }
                primary.adopt(client).await;
            }
            Ok(Err(e)) if !failing => {
                failing = true;
                tracing::error!(
                    master = %name,
                    error = %kind_only(&e),
                    "session store: no Sentinel names a reachable primary; retrying"
                );
            }
            Err(_) if !failing => {
                failing = true;
                tracing::error!(
                    master = %name,
                    "session store: the Sentinels did not name a primary within {LOOKUP_TIMEOUT:?}; \
                     retrying"
                );
            }
            _ => {}
        }
        let idle = if primary.node().is_some() {
            RECHECK
        } else {
            RETRY
        };
        tokio::select! {
            _ = primary.wake.notified() => {}
            _ = tokio::time::sleep(idle) => {}
        }
        tokio::time::sleep(MIN_GAP).await;
    }
}

/// Listens for `+switch-master` on one Sentinel at a time (the next one when it goes away) and
/// wakes the lookup when it names our primary; also once after each (re)subscription, since a
/// failover may have happened while no Sentinel was listened to.
async fn watch_switches(
    primary: Arc<Primary>,
    sentinels: Vec<redis::ConnectionInfo>,
    name: String,
) {
    use futures_util::StreamExt;
    for info in sentinels.iter().cycle() {
        let subscribed = tokio::time::timeout(LOOKUP_TIMEOUT, async {
            let client = redis::Client::open(info.clone())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(SWITCH_MASTER).await?;
            redis::RedisResult::Ok(pubsub)
        })
        .await;
        if let Ok(Ok(mut pubsub)) = subscribed {
            primary.wake.notify_one();
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                if msg
                    .get_payload::<String>()
                    .is_ok_and(|p| switch_is_for(&p, &name))
                {
                    primary.wake.notify_one();
                }
            }
        }
        tokio::time::sleep(RESUBSCRIBE_DELAY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_message_matches_only_its_master_name() {
        assert!(switch_is_for(
            "gateway 127.0.0.1 6379 127.0.0.1 6380",
            "gateway"
        ));
        assert!(!switch_is_for(
            "gateway-2 127.0.0.1 6379 127.0.0.1 6380",
            "gateway"
        ));
        assert!(!switch_is_for("", "gateway"));
    }

    #[test]
    fn sentinel_settings_build_without_contacting_anyone() {
        let s = SentinelSettings {
            sentinels: vec![("127.0.0.1".into(), 1), ("fd00::1".into(), 2)],
            master_name: "gateway".into(),
            db: 2,
            tls: true,
            password: Some(Secret::new("pw")),
        };
        assert!(sentinel_client(&s, Some(&Secret::new("data"))).is_ok());
        let infos = sentinel_infos(&s).unwrap();
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[1].addr().to_string(), "fd00::1:2");
        assert_eq!(infos[0].redis_settings().password(), Some("pw"));
    }

    #[tokio::test]
    async fn wants_ack_follows_the_replica_count_and_sentinel_when_unknown() {
        let metrics = Arc::new(Metrics::new().unwrap());
        let rt = tokio::runtime::Handle::current();
        let at = PrimaryAt::Url("redis://127.0.0.1:1/0".into());
        let p = Primary::start(&at, None, Duration::from_millis(100), metrics, &rt).unwrap();
        let node = p.node().expect("a URL's node is known at once");
        assert!(!p.wants_ack(&node), "unknown, no Sentinel: no wait");
        p.set_replicas(&node, 1);
        assert!(p.wants_ack(&node));
        p.set_replicas(&node, 0);
        assert!(!p.wants_ack(&node));
        let sentinel = Primary::unknown(
            true,
            Duration::from_millis(100),
            Arc::new(Metrics::new().unwrap()),
        );
        node.replicas.store(UNKNOWN, Ordering::SeqCst);
        assert!(sentinel.wants_ack(&node), "unknown with Sentinel: wait");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn switch_master_for_our_name_wakes_the_lookup_others_do_not() {
        let Some(server) = crate::testing::redis::RedisServer::start() else {
            return eprintln!("{}", crate::testing::redis::SKIPPED);
        };
        // A plain server stands in for a Sentinel: the channel and messages are the same.
        let p = Arc::new(Primary::unknown(
            true,
            Duration::from_millis(100),
            Arc::new(Metrics::new().unwrap()),
        ));
        let info = ConnectionAddr::Tcp("127.0.0.1".into(), server.port())
            .into_connection_info()
            .unwrap();
        let task = tokio::spawn(watch_switches(p.clone(), vec![info], "gateway".into()));
        let woken = |within: u64| {
            let p = p.clone();
            async move {
                tokio::time::timeout(Duration::from_millis(within), p.wake.notified())
                    .await
                    .is_ok()
            }
        };
        assert!(woken(5000).await, "a look right after subscribing");
        server
            .command("PUBLISH +switch-master \"gateway-2 127.0.0.1 1 127.0.0.1 2\"")
            .unwrap();
        assert!(!woken(300).await, "another master's failover");
        server
            .command("PUBLISH +switch-master \"gateway 127.0.0.1 1 127.0.0.1 2\"")
            .unwrap();
        assert!(woken(5000).await, "our master's failover");
        task.abort();
    }
}
