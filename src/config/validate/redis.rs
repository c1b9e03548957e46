//! `[session]`'s Redis keys: where the primary is (`redis_url`, or `redis_sentinels` with
//! `redis_master_name` and `redis_db`) and where the passwords come from. Each key is refused
//! with `store = "memory"`, and `redis_url` and `redis_sentinels` exclude each other.

use std::ops::Range;

use super::{secret_source, Ctx};
use crate::config::file::{quote, span_of, SessionFile, Sp};
use crate::config::leaf::{Leaf, SentinelAddr};
use crate::config::model::{RedisTarget, SecretSource, SentinelTarget, StoreKind};

/// What the Redis keys resolve to: the target (`None` without Redis), the data nodes'
/// password source. `None` when a problem was reported.
pub(super) type RedisKeys = (Option<RedisTarget>, Option<SecretSource>);

pub(super) fn redis(
    ctx: &mut Ctx<'_, '_>,
    s: &SessionFile,
    store: Option<StoreKind>,
) -> Option<RedisKeys> {
    if store == Some(StoreKind::Memory) {
        // Every Redis key would silently do nothing.
        for (key, span) in written(s) {
            let why = "is set but session.store is not \"redis\": set store = \"redis\" or remove";
            ctx.err(span, format!("session.{key} {why} {key}"));
        }
        return Some((None, None));
    }
    let target = match (&s.redis_url, &s.redis_sentinels) {
        (Some(_), Some(list)) => {
            ctx.err(
                list.span(),
                "session.redis_url and session.redis_sentinels are both set: use redis_url for \
                 one Redis address, or redis_sentinels with redis_master_name for Sentinel",
            );
            None
        }
        (Some(u), None) => {
            sentinel_only_keys(ctx, s);
            Some(RedisTarget::Url(u.value.0.clone()))
        }
        (None, Some(list)) => sentinel(ctx, s, list).map(RedisTarget::Sentinel),
        (None, None) if store.is_some() => {
            ctx.missing(
                "session.redis_url",
                span_of(&s.store).unwrap_or(0..0),
                "session.store is \"redis\" but redis_url is missing: expected a redis:// or \
                 rediss:// URL, or redis_sentinels with redis_master_name",
            );
            None
        }
        // `store` itself was invalid (already reported): nothing more to say.
        (None, None) => None,
    };
    let key = "session.redis_password";
    let password = secret_source(ctx, key, &s.redis_password_env, &s.redis_password_file);
    Some((target, password?))
}

/// The Redis keys that are written, with their spans.
fn written(s: &SessionFile) -> impl Iterator<Item = (&'static str, Range<usize>)> {
    let sentinel_env = &s.redis_sentinel_password_env;
    let sentinel_file = &s.redis_sentinel_password_file;
    [
        ("redis_url", span_of(&s.redis_url)),
        ("redis_sentinels", span_of(&s.redis_sentinels)),
        ("redis_master_name", span_of(&s.redis_master_name)),
        ("redis_db", span_of(&s.redis_db)),
        ("redis_password_env", span_of(&s.redis_password_env)),
        ("redis_password_file", span_of(&s.redis_password_file)),
        ("redis_sentinel_password_env", span_of(sentinel_env)),
        ("redis_sentinel_password_file", span_of(sentinel_file)),
    ]
    .into_iter()
    .filter_map(|(key, span)| Some((key, span?)))
}

/// The keys that only mean something with `redis_sentinels`, refused next to `redis_url`.
fn sentinel_only_keys(ctx: &mut Ctx<'_, '_>, s: &SessionFile) {
    ctx.if_set(
        &s.redis_master_name,
        "session.redis_master_name is set with redis_url: it is for redis_sentinels; remove it",
    );
    ctx.if_set(
        &s.redis_db,
        "session.redis_db is set with redis_url: the database is the URL's path \
         (redis://host:6379/2); remove redis_db",
    );
    const SENTINEL_PASSWORD: &str = "a Sentinel password is set with redis_url: it is for \
        redis_sentinels; remove it (the data node's is redis_password_env or _file)";
    ctx.if_set(&s.redis_sentinel_password_env, SENTINEL_PASSWORD);
    ctx.if_set(&s.redis_sentinel_password_file, SENTINEL_PASSWORD);
}

/// `redis_sentinels` with `redis_master_name`, `redis_db` and the Sentinels' password.
fn sentinel(
    ctx: &mut Ctx<'_, '_>,
    s: &SessionFile,
    list: &Sp<Vec<Leaf<SentinelAddr>>>,
) -> Option<SentinelTarget> {
    if list.get_ref().is_empty() && ctx.valid("session.redis_sentinels") {
        ctx.err(
            list.span(),
            "session.redis_sentinels is empty: expected the Sentinels' addresses, like \
             [\"10.0.0.5:26379\", \"10.0.0.6:26379\"]",
        );
    }
    let mut sentinels: Vec<&SentinelAddr> = Vec::new();
    for entry in list.get_ref() {
        let (this, text) = (&entry.value, quote(&entry.text));
        let why = if sentinels.first().is_some_and(|first| first.tls != this.tls) {
            "mixes rediss:// (TLS) and plain entries: use rediss:// for every entry or none"
                .to_owned()
        } else if sentinels.contains(&this) {
            // Every entry so far has the first's TLS, so host and port decide.
            format!("lists {text} twice: list each Sentinel once")
        } else {
            sentinels.push(this);
            continue;
        };
        ctx.err(entry.span(), format!("session.redis_sentinels {why}"));
    }
    if s.redis_master_name.is_none() {
        ctx.missing(
            "session.redis_master_name",
            list.span(),
            "session.redis_sentinels is set but redis_master_name is missing: expected the name \
             the Sentinels monitor the primary under (sentinel monitor <name> ...)",
        );
    }
    let env = &s.redis_sentinel_password_env;
    let file = &s.redis_sentinel_password_file;
    let password = secret_source(ctx, "session.redis_sentinel_password", env, file);
    Some(SentinelTarget {
        sentinels: sentinels.iter().map(|s| (s.host.clone(), s.port)).collect(),
        master_name: s.redis_master_name.as_ref()?.value.0.clone(),
        db: s.redis_db.as_ref().map_or(0, |db| db.get_ref().0),
        tls: sentinels.first().is_some_and(|s| s.tls),
        password: password?,
    })
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
