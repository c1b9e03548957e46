//! `[session]`'s Redis keys: where the primary is (`redis_url`, or `redis_sentinels` with
//! `redis_master_name` and `redis_db`) and where the passwords come from. Each key is refused
//! with `store = "memory"`, and `redis_url` and `redis_sentinels` exclude each other.

use std::ops::Range;

use url::{Host, Url};

use super::{secret_source, Ctx};
use crate::config::file::{quote, SessionFile, Sp};
use crate::config::leaf::Leaf;
use crate::config::model::{RedisTarget, SecretSource, SentinelTarget, StoreKind};

/// Sentinel's own default port, for an entry written without one.
const SENTINEL_PORT: u16 = 26379;

/// What the Redis keys resolve to: the target (`None` without Redis), the data nodes'
/// password source. `None` when a problem was reported.
pub(super) type RedisKeys = (Option<RedisTarget>, Option<SecretSource>);

pub(super) fn redis(
    ctx: &mut Ctx<'_, '_>,
    s: &SessionFile,
    store: Option<StoreKind>,
) -> Option<RedisKeys> {
    if store == Some(StoreKind::Memory) {
        return only_with_redis_store(ctx, s);
    }
    let store_span = s.store.as_ref().map(|v| v.span()).unwrap_or(0..0);
    let target = match (&s.redis_url, &s.redis_sentinels) {
        (Some(_), Some(list)) => {
            ctx.err(
                list.span(),
                "session.redis_url and session.redis_sentinels are both set: use redis_url for \
                 one Redis address, or redis_sentinels with redis_master_name to find the \
                 primary through Sentinel",
            );
            None
        }
        (Some(u), None) => {
            let url = redis_url(ctx, u);
            let unused = sentinel_only_keys(ctx, s);
            url.zip(unused).map(|(u, ())| Some(RedisTarget::Url(u)))
        }
        (None, Some(list)) => sentinel(ctx, s, list).map(|t| Some(RedisTarget::Sentinel(t))),
        (None, None) if store.is_some() => {
            ctx.missing(
                "session.redis_url",
                store_span,
                "session.store is \"redis\" but redis_url is missing: expected a URL starting \
                 with redis:// or rediss://, or redis_sentinels = [\"host:26379\", ...] with \
                 redis_master_name to find the primary through Sentinel",
            );
            None
        }
        // `store` itself was invalid (already reported): nothing more to say.
        (None, None) => None,
    };
    let password = secret_source(
        ctx,
        s.redis_password_env.as_ref(),
        s.redis_password_file.as_ref(),
        ("session.redis_password_env", "session.redis_password_file"),
        "REDIS_PASSWORD",
    );
    Some((target?, password?))
}

/// With `store = "memory"`, every Redis key is an error (it would silently do nothing).
fn only_with_redis_store(ctx: &mut Ctx<'_, '_>, s: &SessionFile) -> Option<RedisKeys> {
    let set: Vec<(&str, Range<usize>)> = [
        ("redis_url", s.redis_url.as_ref().map(Sp::span)),
        ("redis_sentinels", s.redis_sentinels.as_ref().map(Sp::span)),
        (
            "redis_master_name",
            s.redis_master_name.as_ref().map(Sp::span),
        ),
        ("redis_db", s.redis_db.as_ref().map(Sp::span)),
        (
            "redis_password_env",
            s.redis_password_env.as_ref().map(Sp::span),
        ),
        (
            "redis_password_file",
            s.redis_password_file.as_ref().map(Leaf::span),
        ),
        (
            "redis_sentinel_password_env",
            s.redis_sentinel_password_env.as_ref().map(Sp::span),
        ),
        (
            "redis_sentinel_password_file",
            s.redis_sentinel_password_file.as_ref().map(Leaf::span),
        ),
    ]
    .into_iter()
    .filter_map(|(k, span)| span.map(|sp| (k, sp)))
    .collect();
    for (key, span) in &set {
        ctx.err(
            span.clone(),
            format!(
                "session.{key} is set but session.store is not \"redis\": set store = \"redis\" \
                 or remove {key}"
            ),
        );
    }
    set.is_empty().then_some((None, None))
}

/// The keys that only mean something with `redis_sentinels`, refused next to `redis_url`.
fn sentinel_only_keys(ctx: &mut Ctx<'_, '_>, s: &SessionFile) -> Option<()> {
    let mut ok = true;
    if let Some(n) = &s.redis_master_name {
        ctx.err(
            n.span(),
            "session.redis_master_name is set with redis_url: it names the primary for \
             redis_sentinels; remove it, or use redis_sentinels instead of redis_url",
        );
        ok = false;
    }
    if let Some(db) = &s.redis_db {
        ctx.err(
            db.span(),
            "session.redis_db is set with redis_url: with redis_url the database is the URL's \
             path (redis://host:6379/2); remove redis_db",
        );
        ok = false;
    }
    let sentinel_password = [
        s.redis_sentinel_password_env.as_ref().map(Sp::span),
        s.redis_sentinel_password_file.as_ref().map(Leaf::span),
    ];
    for span in sentinel_password.into_iter().flatten() {
        ctx.err(
            span,
            "a Sentinel password is set with redis_url: it is for redis_sentinels; remove it \
             (the data node's password is redis_password_env or redis_password_file)",
        );
        ok = false;
    }
    ok.then_some(())
}

/// `redis_url`: `redis://` or `rediss://` with a host and no password. The URL may hold a
/// password: it is never quoted in messages.
fn redis_url(ctx: &mut Ctx<'_, '_>, u: &Sp<String>) -> Option<String> {
    let text = u.get_ref();
    let scheme_ok = text.starts_with("redis://") || text.starts_with("rediss://");
    let parsed = Url::parse(text).ok().filter(|p| p.host_str().is_some());
    if scheme_ok && parsed.as_ref().is_some_and(|p| p.password().is_some()) {
        // A password in the URL would sit in a file that is shown, copied and committed: it
        // comes from redis_password_env or redis_password_file instead.
        ctx.err(
            u.span(),
            "session.redis_url holds a password: the Redis password is never inline; remove it \
             from the URL and set redis_password_env or redis_password_file",
        );
        None
    } else if scheme_ok && parsed.is_some() {
        Some(text.clone())
    } else {
        ctx.err(
            u.span(),
            "session.redis_url is not a Redis URL: expected redis://host:port/db or \
             rediss://host:port/db",
        );
        None
    }
}

/// `redis_sentinels` with `redis_master_name`, `redis_db` and the Sentinels' password.
fn sentinel(
    ctx: &mut Ctx<'_, '_>,
    s: &SessionFile,
    list: &Sp<Vec<Sp<String>>>,
) -> Option<SentinelTarget> {
    let mut ok = true;
    if list.get_ref().is_empty() {
        ctx.err(
            list.span(),
            "session.redis_sentinels is empty: expected the Sentinels' addresses, like \
             [\"10.0.0.5:26379\", \"10.0.0.6:26379\", \"10.0.0.7:26379\"]",
        );
        ok = false;
    }
    let mut sentinels: Vec<(String, u16)> = Vec::new();
    let mut tls: Option<bool> = None;
    for entry in list.get_ref() {
        let Some((host, port, entry_tls)) = sentinel_address(ctx, entry) else {
            ok = false;
            continue;
        };
        if *tls.get_or_insert(entry_tls) != entry_tls {
            ctx.err(
                entry.span(),
                "session.redis_sentinels mixes rediss:// (TLS) and plain entries: write every \
                 entry rediss://host:port for TLS, or none of them",
            );
            ok = false;
        } else if sentinels.contains(&(host.clone(), port)) {
            ctx.err(
                entry.span(),
                format!(
                    "session.redis_sentinels lists {} twice: list each Sentinel once",
                    quote(entry.get_ref())
                ),
            );
            ok = false;
        } else {
            sentinels.push((host, port));
        }
    }
    let master_name = match &s.redis_master_name {
        None => {
            ctx.missing(
                "session.redis_master_name",
                list.span(),
                "session.redis_sentinels is set but redis_master_name is missing: expected the \
                 name the Sentinels monitor the primary under (sentinel monitor <name> ...)",
            );
            None
        }
        Some(n) => {
            let name = n.get_ref();
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                ctx.err(
                    n.span(),
                    format!(
                        "session.redis_master_name {} is not a Sentinel master name: expected \
                         a non-empty name without spaces, like \"gateway\"",
                        quote(name)
                    ),
                );
                None
            } else {
                Some(name.clone())
            }
        }
    };
    let db = match &s.redis_db {
        None => Some(0),
        Some(v) if *v.get_ref() >= 0 => Some(*v.get_ref()),
        Some(v) => {
            ctx.err(
                v.span(),
                format!(
                    "session.redis_db is {}: expected a database number, 0 or more (default 0)",
                    v.get_ref()
                ),
            );
            None
        }
    };
    let password = secret_source(
        ctx,
        s.redis_sentinel_password_env.as_ref(),
        s.redis_sentinel_password_file.as_ref(),
        (
            "session.redis_sentinel_password_env",
            "session.redis_sentinel_password_file",
        ),
        "REDIS_SENTINEL_PASSWORD",
    );
    let (master_name, db, password) = (master_name?, db?, password?);
    ok.then_some(SentinelTarget {
        sentinels,
        master_name,
        db,
        tls: tls.unwrap_or(false),
        password,
    })
}

/// One `redis_sentinels` entry: `host:port`, `redis://host:port` or `rediss://host:port`
/// (TLS); the port defaults to 26379. Returns the host (IPv6 without brackets), port and TLS.
fn sentinel_address(ctx: &mut Ctx<'_, '_>, entry: &Sp<String>) -> Option<(String, u16, bool)> {
    let text = entry.get_ref();
    let (tls, url) = if let Some(rest) = text.strip_prefix("rediss://") {
        (true, Url::parse(&format!("redis://{rest}")))
    } else if text.starts_with("redis://") {
        (false, Url::parse(text))
    } else if text.contains("://") {
        (false, Err(url::ParseError::InvalidDomainCharacter))
    } else {
        (false, Url::parse(&format!("redis://{text}")))
    };
    let bad = |ctx: &mut Ctx<'_, '_>, why: &str| {
        ctx.err(
            entry.span(),
            format!(
                "session.redis_sentinels entry {why}: expected host:port like \
                 \"10.0.0.5:26379\" (rediss://host:port for TLS)"
            ),
        );
        None
    };
    let Ok(url) = url else {
        return bad(ctx, "is not a Sentinel address");
    };
    if url.password().is_some() || !url.username().is_empty() {
        // Never echoed: it may hold a password.
        return bad(
            ctx,
            "holds a user or password (set redis_sentinel_password_env or \
             redis_sentinel_password_file instead)",
        );
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return bad(ctx, &format!("{} has a path or query", quote(text)));
    }
    let host = match url.host() {
        Some(Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(Host::Ipv4(a)) => a.to_string(),
        Some(Host::Ipv6(a)) => a.to_string(),
        _ => return bad(ctx, &format!("{} has no host", quote(text))),
    };
    Some((host, url.port().unwrap_or(SENTINEL_PORT), tls))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    const SENTINELS: &str = "store = \"redis\"\nredis_sentinels = [\"10.0.0.5:26379\", \
                             \"sentinel-b.internal\", \"[fd00::7]:26380\"]\n\
                             redis_master_name = \"gateway\"\n";

    fn sentinel_target(extra: &str) -> SentinelTarget {
        match ok(&doc("", "", &format!("{SENTINELS}{extra}"), ""))
            .session
            .redis
        {
            Some(RedisTarget::Sentinel(t)) => t,
            other => panic!("expected a Sentinel target, got {other:?}"),
        }
    }

    #[test]
    fn redis_sentinels_with_master_name_are_resolved_in_order_with_default_port() {
        let t = sentinel_target("");
        assert_eq!(
            t.sentinels,
            vec![
                ("10.0.0.5".to_string(), 26379),
                ("sentinel-b.internal".to_string(), 26379),
                ("fd00::7".to_string(), 26380),
            ]
        );
        assert_eq!(t.master_name, "gateway");
        assert_eq!((t.db, t.tls, t.password), (0, false, None));
    }

    #[test]
    fn redis_sentinels_db_and_both_passwords_are_kept() {
        let t = sentinel_target(
            "redis_db = 3\nredis_password_env = \"REDIS_PW\"\n\
             redis_sentinel_password_file = \"/run/secrets/sentinel\"\n",
        );
        assert_eq!(t.db, 3);
        assert_eq!(
            t.password,
            Some(SecretSource::File("/run/secrets/sentinel".into()))
        );
        let s = ok(&doc(
            "",
            "",
            &format!("{SENTINELS}redis_password_env = \"REDIS_PW\"\n"),
            "",
        ))
        .session;
        assert_eq!(s.redis_password, Some(SecretSource::Env("REDIS_PW".into())));
    }

    #[test]
    fn redis_sentinels_rediss_entries_mean_tls() {
        let s = ok(&doc(
            "",
            "",
            "store = \"redis\"\nredis_sentinels = [\"rediss://10.0.0.5:26379\", \
             \"rediss://10.0.0.6\"]\nredis_master_name = \"gateway\"\n",
            "",
        ))
        .session;
        let Some(RedisTarget::Sentinel(t)) = s.redis else {
            panic!("Sentinel target")
        };
        assert!(t.tls);
        assert_eq!(t.sentinels[1], ("10.0.0.6".to_string(), 26379));
    }

    #[test]
    fn redis_sentinels_mixing_tls_and_plain_is_error_at_the_odd_entry() {
        let src = doc(
            "",
            "",
            "store = \"redis\"\nredis_master_name = \"gateway\"\nredis_sentinels = [\n\
             \"rediss://10.0.0.5:26379\",\n\"10.0.0.6:26379\",\n]\n",
            "",
        );
        let p = one(&src, &["mixes rediss://"]);
        assert_eq!(p.line, line_of(&src, "\"10.0.0.6:26379\""));
    }

    #[test]
    fn redis_sentinels_and_redis_url_together_is_error() {
        one(
            &doc(
                "",
                "",
                &format!("{SENTINELS}redis_url = \"redis://r:6379/0\"\n"),
                "",
            ),
            &["redis_url and session.redis_sentinels are both set"],
        );
    }

    #[test]
    fn redis_sentinels_without_master_name_is_error() {
        one(
            &doc(
                "",
                "",
                "store = \"redis\"\nredis_sentinels = [\"10.0.0.5:26379\"]\n",
                "",
            ),
            &["redis_master_name is missing", "sentinel monitor"],
        );
    }

    #[test]
    fn redis_sentinels_empty_or_bad_entries_are_errors_with_place() {
        one(
            &doc(
                "",
                "",
                "store = \"redis\"\nredis_sentinels = []\nredis_master_name = \"g\"\n",
                "",
            ),
            &["redis_sentinels is empty"],
        );
        for bad in [
            "http://10.0.0.5:26379",
            "10.0.0.5:99999",
            "10.0.0.5:26379/0",
            "",
            "a b:1",
        ] {
            let src = doc(
                "",
                "",
                &format!(
                    "store = \"redis\"\nredis_master_name = \"g\"\nredis_sentinels = [\n{bad:?},\n]\n"
                ),
                "",
            );
            let p = one(&src, &["session.redis_sentinels entry", "host:port"]);
            assert_eq!(p.line, line_of(&src, &format!("{bad:?},")), "{bad}");
        }
    }

    #[test]
    fn redis_sentinels_entry_with_password_is_error_without_echoing_it() {
        let p = one(
            &doc(
                "",
                "",
                "store = \"redis\"\nredis_master_name = \"g\"\n\
                 redis_sentinels = [\"redis://:hunter2@10.0.0.5:26379\"]\n",
                "",
            ),
            &["redis_sentinel_password_env"],
        );
        assert!(!p.message.contains("hunter2"));
    }

    #[test]
    fn redis_sentinels_listed_twice_is_error() {
        one(
            &doc(
                "",
                "",
                "store = \"redis\"\nredis_master_name = \"g\"\n\
                 redis_sentinels = [\"10.0.0.5:26379\", \"10.0.0.5\"]\n",
                "",
            ),
            &["twice"],
        );
    }

    #[test]
    fn redis_master_name_with_space_or_empty_is_error() {
        for bad in ["", "my master"] {
            one(
                &doc(
                    "",
                    "",
                    &format!(
                        "store = \"redis\"\nredis_sentinels = [\"s:26379\"]\nredis_master_name = {bad:?}\n"
                    ),
                    "",
                ),
                &["not a Sentinel master name"],
            );
        }
    }

    #[test]
    fn redis_db_negative_is_error() {
        one(
            &doc("", "", &format!("{SENTINELS}redis_db = -1\n"), ""),
            &["redis_db is -1", "0 or more"],
        );
    }

    #[test]
    fn redis_sentinel_keys_with_redis_url_are_errors() {
        let url = "store = \"redis\"\nredis_url = \"redis://r:6379/0\"\n";
        one(
            &doc("", "", &format!("{url}redis_master_name = \"g\"\n"), ""),
            &["redis_master_name is set with redis_url"],
        );
        one(
            &doc("", "", &format!("{url}redis_db = 2\n"), ""),
            &["redis_db is set with redis_url", "URL's path"],
        );
        one(
            &doc(
                "",
                "",
                &format!("{url}redis_sentinel_password_env = \"S\"\n"),
                "",
            ),
            &["Sentinel password is set with redis_url"],
        );
    }

    #[test]
    fn redis_keys_with_memory_store_are_each_an_error() {
        let p = problems(&doc(
            "",
            "",
            "redis_sentinels = [\"s:26379\"]\nredis_master_name = \"g\"\nredis_db = 1\n\
             redis_sentinel_password_env = \"S\"\n",
            "",
        ));
        assert_eq!(p.len(), 4, "{p:#?}");
        assert!(p
            .iter()
            .all(|p| p.message.contains("session.store is not \"redis\"")));
    }

    #[test]
    fn redis_sentinel_password_both_sources_is_error() {
        one(
            &doc(
                "",
                "",
                &format!(
                    "{SENTINELS}redis_sentinel_password_env = \"A\"\n\
                     redis_sentinel_password_file = \"/b\"\n"
                ),
                "",
            ),
            &["both set"],
        );
    }
}
