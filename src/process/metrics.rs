//! Prometheus metrics: one `Metrics` value per gateway, with its own registry (never the
//! process-global one, so tests can build several), the recording calls the request path
//! makes, and the text exposition served at `/_gateway/metrics`.
//!
//! Every label value is bounded: upstream names come from the configuration, statuses are
//! folded into classes, endpoints and reasons are fixed `&'static str`s chosen by the code.
//! Nothing from a request (path, user id, query, header) ever becomes a label value.

use std::fmt;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// The `upstream` label of requests the gateway answered itself (login redirects, 401, 403,
/// 404, `/_gateway/` endpoints). Config validation reserves this name.
pub const GATEWAY_UPSTREAM: &str = "_gateway";

/// The `reason` label where there is no reason (a completed login).
pub const NO_REASON: &str = "none";

/// Upstream answers can take up to the upstream read timeout (60 s).
const UPSTREAM_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Clever calls are bounded by `clever.timeout` (at most 60 s, 5 s by default).
const CLEVER_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How a login attempt went, for `clever_gateway_logins_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The browser was sent to Clever's authorize URL.
    Started,
    /// A new session was created.
    Completed,
    /// The attempt ended on an error page.
    Failed,
}

impl LoginOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginOutcome::Started => "started",
            LoginOutcome::Completed => "completed",
            LoginOutcome::Failed => "failed",
        }
    }
}

/// How a Redis write the browser was answered for was acknowledged, for
/// `clever_gateway_redis_writes_total{ack}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteAck {
    /// A replica had it before the answer (`WAIT` counted one).
    Replica,
    /// The primary has replicas but none acknowledged within the timeout; answered anyway.
    Timeout,
    /// The primary has no replica: nothing to wait for.
    NoReplica,
}

impl WriteAck {
    pub const ALL: [WriteAck; 3] = [WriteAck::Replica, WriteAck::Timeout, WriteAck::NoReplica];

    pub fn as_str(self) -> &'static str {
        match self {
            WriteAck::Replica => "replica",
            WriteAck::Timeout => "timeout",
            WriteAck::NoReplica => "no_replica",
        }
    }
}

/// The status class label of a response: `1xx` … `5xx`, or `none` when nothing was written
/// (the client went away first).
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

/// The gateway's metric families, registered in a registry of their own.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    upstream_duration: HistogramVec,
    logins: IntCounterVec,
    clever_duration: HistogramVec,
    clever_errors: IntCounterVec,
    sessions: IntGauge,
    denials: IntCounterVec,
    redis_writes: IntCounterVec,
    redis_cache_fallbacks: IntCounter,
    redis_primary_changes: IntCounter,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The metric names, kept together so tests and docs name the same families.
pub mod names {
    pub const REQUESTS: &str = "clever_gateway_requests_total";
    pub const UPSTREAM_DURATION: &str = "clever_gateway_upstream_duration_seconds";
    pub const LOGINS: &str = "clever_gateway_logins_total";
    pub const CLEVER_DURATION: &str = "clever_gateway_clever_request_duration_seconds";
    pub const CLEVER_ERRORS: &str = "clever_gateway_clever_errors_total";
    pub const SESSIONS: &str = "clever_gateway_sessions";
    pub const DENIALS: &str = "clever_gateway_policy_denials_total";
    pub const BUILD_INFO: &str = "clever_gateway_build_info";
    pub const REDIS_WRITES: &str = "clever_gateway_redis_writes_total";
    pub const REDIS_CACHE_FALLBACKS: &str = "clever_gateway_redis_cache_fallbacks_total";
    pub const REDIS_PRIMARY_CHANGES: &str = "clever_gateway_redis_primary_changes_total";
}

impl Metrics {
    /// Builds every family in a fresh registry. Fails only if a name or label set were
    /// invalid, which the unit tests rule out; callers turn it into a start error.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                names::REQUESTS,
                "Requests answered, by upstream (\"_gateway\": answered by the gateway itself) and status class.",
            ),
            &["upstream", "class"],
        )?;
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                names::UPSTREAM_DURATION,
                "Time from choosing the upstream (connect included) to its response headers.",
            )
            .buckets(UPSTREAM_BUCKETS.to_vec()),
            &["upstream"],
        )?;
        let logins = IntCounterVec::new(
            Opts::new(
                names::LOGINS,
                "Logins started, completed and failed; reason: who started it, or why it failed.",
            ),
            &["outcome", "reason"],
        )?;
        let clever_duration = HistogramVec::new(
            HistogramOpts::new(
                names::CLEVER_DURATION,
                "Duration of calls to Clever by endpoint (tokens, me, users), failed ones included.",
            )
            .buckets(CLEVER_BUCKETS.to_vec()),
            &["endpoint"],
        )?;
        let clever_errors = IntCounterVec::new(
            Opts::new(
                names::CLEVER_ERRORS,
                "Failed calls to Clever by endpoint and reason.",
            ),
            &["endpoint", "reason"],
        )?;
        let sessions = IntGauge::new(
            names::SESSIONS,
            "Live sessions in the session store, counted when metrics are read.",
        )?;
        let denials = IntCounterVec::new(
            Opts::new(
                names::DENIALS,
                "Signed-in requests refused by an upstream's policy, by upstream and reason.",
            ),
            &["upstream", "reason"],
        )?;
        let redis_writes = IntCounterVec::new(
            Opts::new(
                names::REDIS_WRITES,
                "store = \"redis\": writes the browser was answered for (sessions, logouts, \
                 used codes), by whether a replica acknowledged them first \
                 (replica), none did in time (timeout), or the primary has none (no_replica).",
            ),
            &["ack"],
        )?;
        let redis_cache_fallbacks = IntCounter::new(
            names::REDIS_CACHE_FALLBACKS,
            "store = \"redis\": session lookups answered from this replica's cache because \
             Redis could not be asked (down, failing over, or not answering).",
        )?;
        let redis_primary_changes = IntCounter::new(
            names::REDIS_PRIMARY_CHANGES,
            "store = \"redis\" with Sentinel: times this replica followed the primary to \
             another node (failovers).",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(names::BUILD_INFO, "Always 1; the running version."),
            &["version"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(upstream_duration.clone()))?;
        registry.register(Box::new(logins.clone()))?;
        registry.register(Box::new(clever_duration.clone()))?;
        registry.register(Box::new(clever_errors.clone()))?;
        registry.register(Box::new(sessions.clone()))?;
        registry.register(Box::new(denials.clone()))?;
        registry.register(Box::new(build_info.clone()))?;
        registry.register(Box::new(redis_writes.clone()))?;
        registry.register(Box::new(redis_cache_fallbacks.clone()))?;
        registry.register(Box::new(redis_primary_changes.clone()))?;
        for ack in WriteAck::ALL {
            redis_writes.get_metric_with_label_values(&[ack.as_str()])?;
        }
        build_info
            .get_metric_with_label_values(&[env!("CARGO_PKG_VERSION")])?
            .set(1);
        // Series that rate() should see from zero rather than appear on first use.
        for (outcome, reason) in [
            (LoginOutcome::Started, "gateway"),
            (LoginOutcome::Started, "clever_initiated"),
            (LoginOutcome::Completed, NO_REASON),
        ] {
            logins.get_metric_with_label_values(&[outcome.as_str(), reason])?;
        }
        Ok(Metrics {
            registry,
            requests,
            upstream_duration,
            logins,
            clever_duration,
            clever_errors,
            sessions,
            denials,
            redis_writes,
            redis_cache_fallbacks,
            redis_primary_changes,
        })
    }

    /// One answered request: `upstream` is a configured name or [`GATEWAY_UPSTREAM`].
    pub fn request(&self, upstream: &str, status: u16) {
        if let Ok(c) = self
            .requests
            .get_metric_with_label_values(&[upstream, status_class(status)])
        {
            c.inc();
        }
    }

    /// Time until a forwarded request's upstream response headers arrived.
    pub fn upstream_latency(&self, upstream: &str, took: Duration) {
        if let Ok(h) = self
            .upstream_duration
            .get_metric_with_label_values(&[upstream])
        {
            h.observe(took.as_secs_f64());
        }
    }

    /// A login attempt's step; `reason` is a fixed machine-readable word (never free text).
    pub fn login(&self, outcome: LoginOutcome, reason: &'static str) {
        if let Ok(c) = self
            .logins
            .get_metric_with_label_values(&[outcome.as_str(), reason])
        {
            c.inc();
        }
    }

    /// One call to Clever, successful or not.
    pub fn clever_call(&self, endpoint: &'static str, took: Duration) {
        if let Ok(h) = self
            .clever_duration
            .get_metric_with_label_values(&[endpoint])
        {
            h.observe(took.as_secs_f64());
        }
    }

    /// A failed call to Clever, with the error's fixed reason.
    pub fn clever_error(&self, endpoint: &'static str, reason: &'static str) {
        if let Ok(c) = self
            .clever_errors
            .get_metric_with_label_values(&[endpoint, reason])
        {
            c.inc();
        }
    }

    /// A signed-in request refused by `upstream`'s policy.
    pub fn policy_denied(&self, upstream: &str, reason: &'static str) {
        if let Ok(c) = self
            .denials
            .get_metric_with_label_values(&[upstream, reason])
        {
            c.inc();
        }
    }

    /// A Redis write the browser was answered for, by how it was acknowledged.
    pub fn redis_write(&self, ack: WriteAck) {
        if let Ok(c) = self
            .redis_writes
            .get_metric_with_label_values(&[ack.as_str()])
        {
            c.inc();
        }
    }

    /// A session lookup answered from the replica's cache because Redis could not be asked.
    pub fn redis_cache_fallback(&self) {
        self.redis_cache_fallbacks.inc();
    }

    /// The replica followed the Redis primary to another node.
    pub fn redis_primary_change(&self) {
        self.redis_primary_changes.inc();
    }

    /// Sets the live-sessions gauge (read from the store just before rendering).
    pub fn set_sessions(&self, live: u64) {
        self.sessions.set(i64::try_from(live).unwrap_or(i64::MAX));
    }

    /// Every family in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// One sample of a rendered text: the series name, its labels (in rendered order) and value.
/// Used by tests here and mirrored in `tests/metrics.rs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses the Prometheus text format (the subset `render` writes); comment and malformed lines
/// are skipped.
pub fn parse_text(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        None => (series, Vec::new()),
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn parse_labels(mut s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let (k, rest) = s.split_once("=\"")?;
        let mut v = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => v.push('\n'),
                    c => v.push(c),
                },
                (_, c) => v.push(c),
            }
        };
        out.push((k.to_string(), v));
        s = rest[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&rest[end + 1..]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `name` with exactly `labels` (in any order) in a rendered text.
    fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        parse_text(text)
            .into_iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|s| s.value)
    }

    #[test]
    fn new_twice_registries_are_independent() {
        let a = Metrics::new().unwrap();
        let b = Metrics::new().unwrap();
        a.request("app", 200);
        let labels = [("upstream", "app"), ("class", "2xx")];
        assert_eq!(
            value(&a.render().unwrap(), names::REQUESTS, &labels),
            Some(1.0)
        );
        assert_eq!(value(&b.render().unwrap(), names::REQUESTS, &labels), None);
    }

    #[test]
    fn request_counts_by_upstream_and_class() {
        let m = Metrics::new().unwrap();
        m.request("app", 200);
        m.request("app", 204);
        m.request("app", 502);
        m.request(GATEWAY_UPSTREAM, 302);
        m.request(GATEWAY_UPSTREAM, 0);
        let t = m.render().unwrap();
        assert!(t.contains("# TYPE clever_gateway_requests_total counter"));
        for (up, class, n) in [
            ("app", "2xx", 2.0),
            ("app", "5xx", 1.0),
            ("_gateway", "3xx", 1.0),
            ("_gateway", "none", 1.0),
        ] {
            assert_eq!(
                value(&t, names::REQUESTS, &[("upstream", up), ("class", class)]),
                Some(n),
                "{up} {class}\n{t}"
            );
        }
    }

    #[test]
    fn upstream_latency_is_histogram_by_upstream() {
        let m = Metrics::new().unwrap();
        m.upstream_latency("app", Duration::from_millis(30));
        let t = m.render().unwrap();
        assert!(t.contains("# TYPE clever_gateway_upstream_duration_seconds histogram"));
        let bucket = "clever_gateway_upstream_duration_seconds_bucket";
        assert_eq!(
            value(&t, bucket, &[("upstream", "app"), ("le", "0.05")]),
            Some(1.0)
        );
        assert_eq!(
            value(&t, bucket, &[("upstream", "app"), ("le", "0.025")]),
            Some(0.0)
        );
        assert_eq!(
            value(
                &t,
                "clever_gateway_upstream_duration_seconds_count",
                &[("upstream", "app")]
            ),
            Some(1.0)
        );
    }

    #[test]
    fn logins_by_outcome_and_reason_start_at_zero() {
        let m = Metrics::new().unwrap();
        let completed = [("outcome", "completed"), ("reason", NO_REASON)];
        assert_eq!(
            value(&m.render().unwrap(), names::LOGINS, &completed),
            Some(0.0)
        );
        m.login(LoginOutcome::Started, "gateway");
        m.login(LoginOutcome::Completed, NO_REASON);
        m.login(LoginOutcome::Failed, "state_mismatch");
        let t = m.render().unwrap();
        for (outcome, reason, n) in [
            ("started", "gateway", 1.0),
            ("started", "clever_initiated", 0.0),
            ("completed", NO_REASON, 1.0),
            ("failed", "state_mismatch", 1.0),
        ] {
            assert_eq!(
                value(
                    &t,
                    names::LOGINS,
                    &[("outcome", outcome), ("reason", reason)]
                ),
                Some(n),
                "{outcome} {reason}\n{t}"
            );
        }
    }

    #[test]
    fn clever_calls_latency_and_errors_by_endpoint() {
        let m = Metrics::new().unwrap();
        m.clever_call("tokens", Duration::from_millis(40));
        m.clever_call("me", Duration::from_millis(10));
        m.clever_error("tokens", "clever_error");
        let t = m.render().unwrap();
        let count = "clever_gateway_clever_request_duration_seconds_count";
        assert_eq!(value(&t, count, &[("endpoint", "tokens")]), Some(1.0));
        assert_eq!(value(&t, count, &[("endpoint", "me")]), Some(1.0));
        assert_eq!(
            value(
                &t,
                names::CLEVER_ERRORS,
                &[("endpoint", "tokens"), ("reason", "clever_error")]
            ),
            Some(1.0)
        );
    }

    #[test]
    fn sessions_gauge_and_denials() {
        let m = Metrics::new().unwrap();
        m.set_sessions(3);
        m.policy_denied("staff", "user_type_not_allowed");
        let t = m.render().unwrap();
        assert!(t.contains("# TYPE clever_gateway_sessions gauge"));
        assert_eq!(value(&t, names::SESSIONS, &[]), Some(3.0));
        assert_eq!(
            value(
                &t,
                names::DENIALS,
                &[("upstream", "staff"), ("reason", "user_type_not_allowed")]
            ),
            Some(1.0)
        );
    }

    #[test]
    fn build_info_names_the_version() {
        let t = Metrics::new().unwrap().render().unwrap();
        assert_eq!(
            value(
                &t,
                names::BUILD_INFO,
                &[("version", env!("CARGO_PKG_VERSION"))]
            ),
            Some(1.0)
        );
    }

    #[test]
    fn parse_text_reads_labels_with_escapes() {
        let s = parse_text("# HELP x y\nx{a=\"1\",b=\"q\\\"z\"} 2\ny 3.5\n");
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].labels,
            vec![("a".into(), "1".into()), ("b".into(), "q\"z".into())]
        );
        assert_eq!(s[0].value, 2.0);
        assert_eq!((s[1].name.as_str(), s[1].value), ("y", 3.5));
    }

    #[test]
    fn status_class_folds_every_status() {
        assert_eq!(status_class(101), "1xx");
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(399), "3xx");
        assert_eq!(status_class(431), "4xx");
        assert_eq!(status_class(504), "5xx");
        assert_eq!(status_class(0), "none");
        assert_eq!(status_class(999), "none");
    }
}
