//! `[session]`: the cookie (name, domain, Secure), session lifetime, the store (its Redis keys
//! in `redis.rs`), readiness, and where logout lands.

use super::{val, Ctx};
use crate::config::file::{quote, SessionFile, Table};
use crate::config::model::{Readiness, SessionConfig, StoreKind};

pub(super) const DEFAULT_COOKIE_NAME: &str = "clever_gateway";

pub(super) fn session(
    ctx: &mut Ctx<'_, '_>,
    table: Option<&Table<SessionFile>>,
) -> Option<SessionConfig> {
    let default = SessionFile::default();
    let s = table.map_or(&default, |t| &t.get_ref().0);
    let cookie_secure = s.cookie_secure.as_ref().is_none_or(|b| *b.get_ref());
    let (name, domain) = (s.cookie_name.as_ref(), s.cookie_domain.is_some());
    let why = match name.map(|n| n.text.as_str()) {
        Some(n) if n.starts_with("__Host-") && (!cookie_secure || domain) => {
            "starts with __Host-, which browsers accept only with cookie_secure = true and no \
             cookie_domain: change the name or those settings"
        }
        Some(n) if n.starts_with("__Secure-") && !cookie_secure => {
            "starts with __Secure-, which browsers accept only with cookie_secure = true"
        }
        _ => "",
    };
    if let Some(n) = name.filter(|_| !why.is_empty()) {
        ctx.err(n.span(), format!("session.cookie_name {why}"));
    }
    // At most `ttl` (when `ttl` could be read), since sessions end at `ttl` anyway.
    let ttl = (ctx.valid("session.ttl")).then(|| val(&s.ttl).unwrap_or_default().0);
    let idle = s.idle_timeout.as_ref();
    if let Some((v, ttl)) = idle.zip(ttl).filter(|(v, ttl)| v.value.0 > *ttl) {
        let (text, ttl) = (quote(&v.text), humantime::format_duration(ttl));
        let why = format!("is longer than session.ttl ({ttl}): expected at most session.ttl");
        ctx.err(v.span(), format!("session.idle_timeout {text} {why}"));
    }
    let store = val(&s.store).unwrap_or(StoreKind::Memory);
    let store = ctx.valid("session.store").then_some(store);
    let (redis, redis_password) = super::redis::redis(ctx, s, store)?;
    Some(SessionConfig {
        cookie_name: val(&s.cookie_name).map_or(DEFAULT_COOKIE_NAME.to_owned(), |n| n.0),
        cookie_domain: val(&s.cookie_domain).map(|d| d.0),
        cookie_secure,
        ttl: ttl?,
        login_timeout: val(&s.login_timeout).unwrap_or_default().0,
        store: store?,
        redis,
        redis_password,
        readiness: val(&s.readiness).unwrap_or(Readiness::Store),
        logout_redirect: val(&s.logout_redirect).map_or("/".to_owned(), |r| r.0),
        idle_timeout: val(&s.idle_timeout).map(|d| d.0),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::config::model::{RedisTarget, SecretSource};
    use std::time::Duration;

    #[test]
    fn session_defaults_are_applied() {
        let s = ok(&doc("", "", "", "")).session;
        assert_eq!(s.cookie_name, "clever_gateway");
        assert_eq!(s.cookie_domain, None);
        assert!(s.cookie_secure);
        assert_eq!(s.ttl, Duration::from_secs(7200));
        assert_eq!(s.login_timeout, Duration::from_secs(600));
        assert_eq!(s.store, StoreKind::Memory);
        assert_eq!(s.redis, None);
        assert_eq!(s.readiness, Readiness::Store);
        assert_eq!(s.logout_redirect, "/");
        assert_eq!(s.idle_timeout, None);
    }

    #[test]
    fn session_idle_timeout_from_1s_to_ttl_is_kept() {
        let s = ok(&doc("", "", "idle_timeout = \"20m\"", "")).session;
        assert_eq!(s.idle_timeout, Some(Duration::from_secs(1200)));
        let s = ok(&doc("", "", "idle_timeout = \"1s\"", "")).session;
        assert_eq!(s.idle_timeout, Some(Duration::from_secs(1)));
        let s = ok(&doc("", "", "ttl = \"1h\"\nidle_timeout = \"1h\"", "")).session;
        assert_eq!(s.idle_timeout, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn session_idle_timeout_out_of_bounds_is_error_with_position() {
        let src = doc("", "", "idle_timeout = \"500ms\"", "");
        let p = one(&src, &["session.idle_timeout", "at least 1s"]);
        assert_eq!(p.line, line_of(&src, "idle_timeout"));
        assert_eq!(p.col, 16);
        let src = doc("", "", "ttl = \"1h\"\nidle_timeout = \"2h\"", "");
        let p = one(&src, &["session.idle_timeout", "at most session.ttl", "1h"]);
        assert_eq!(p.line, line_of(&src, "idle_timeout"));
        // Longer than the default ttl of 2h.
        one(
            &doc("", "", "idle_timeout = \"3h\"", ""),
            &["longer than session.ttl"],
        );
        one(
            &doc("", "", "idle_timeout = \"soon\"", ""),
            &["session.idle_timeout", "not a duration"],
        );
        one(
            &doc("", "", "idle_timeout = 20", ""),
            &["session.idle_timeout", "a string"],
        );
    }

    #[test]
    fn session_login_timeout_within_1m_to_1h() {
        let s = ok(&doc("", "", "login_timeout = \"90s\"", "")).session;
        assert_eq!(s.login_timeout, Duration::from_secs(90));
        let s = ok(&doc("", "", "login_timeout = \"1h\"", "")).session;
        assert_eq!(s.login_timeout, Duration::from_secs(3600));
        for bad in ["59s", "2h", "0s"] {
            one(
                &doc("", "", &format!("login_timeout = \"{bad}\""), ""),
                &["session.login_timeout", "1m to 1h"],
            );
        }
        one(
            &doc("", "", "login_timeout = \"soon\"", ""),
            &["session.login_timeout"],
        );
    }

    #[test]
    fn session_cookie_name_with_separator_is_error() {
        one(
            &doc("", "", "cookie_name = \"my cookie\"", ""),
            &["RFC 6265"],
        );
        one(&doc("", "", "cookie_name = \"a;b\"", ""), &["RFC 6265"]);
        one(&doc("", "", "cookie_name = \"\"", ""), &["RFC 6265"]);
    }

    #[test]
    fn session_cookie_name_token_is_kept() {
        let s = ok(&doc("", "", "cookie_name = \"__Host-gw.1\"", "")).session;
        assert_eq!(s.cookie_name, "__Host-gw.1");
    }

    #[test]
    fn session_host_prefix_cookie_without_secure_is_error() {
        one(
            &doc(
                "",
                "",
                "cookie_name = \"__Host-gw\"\ncookie_secure = false",
                "",
            ),
            &["__Host-"],
        );
    }

    #[test]
    fn session_cookie_domain_with_dot_is_lowercased() {
        let s = ok(&doc(
            "",
            "",
            "cookie_domain = \".Example-District.org\"",
            "",
        ))
        .session;
        assert_eq!(s.cookie_domain.as_deref(), Some(".example-district.org"));
    }

    #[test]
    fn session_cookie_domain_not_a_host_is_error() {
        for bad in [
            "example.org:443",
            "https://example.org",
            "",
            ".",
            "a..b",
            "ex ample.org",
        ] {
            one(
                &doc("", "", &format!("cookie_domain = {bad:?}"), ""),
                &["not a host name"],
            );
        }
    }

    #[test]
    fn session_cookie_secure_false_is_kept() {
        assert!(
            !ok(&doc("", "", "cookie_secure = false", ""))
                .session
                .cookie_secure
        );
    }

    #[test]
    fn session_ttl_at_cap_is_accepted() {
        let s = ok(&doc("", "", "ttl = \"24h\"", "")).session;
        assert_eq!(s.ttl, Duration::from_secs(86400));
    }

    #[test]
    fn session_ttl_over_cap_says_cap_and_why() {
        one(
            &doc("", "", "ttl = \"25h\"", ""),
            &[
                "longer than 24h",
                "cap is 24h",
                "Clever access tokens live 24h",
            ],
        );
    }

    #[test]
    fn session_ttl_zero_is_error() {
        one(&doc("", "", "ttl = \"0s\"", ""), &["zero"]);
    }

    #[test]
    fn session_ttl_bad_duration_says_example() {
        one(
            &doc("", "", "ttl = \"2 hours and a bit\"", ""),
            &["session.ttl", "expected a duration like \"90s\" or \"2h\""],
        );
    }

    #[test]
    fn session_redis_store_with_url_is_accepted() {
        let s = ok(&doc(
            "",
            "",
            "store = \"redis\"\nredis_url = \"rediss://r.internal:6380/0\"",
            "",
        ))
        .session;
        assert_eq!(s.store, StoreKind::Redis);
        assert_eq!(
            s.redis,
            Some(RedisTarget::Url("rediss://r.internal:6380/0".into()))
        );
    }

    #[test]
    fn session_redis_store_without_url_is_error() {
        one(
            &doc("", "", "store = \"redis\"", ""),
            &["redis_url is missing"],
        );
    }

    #[test]
    fn session_redis_url_without_redis_store_is_error() {
        one(
            &doc("", "", "redis_url = \"redis://r:6379\"", ""),
            &["not \"redis\""],
        );
    }

    #[test]
    fn session_redis_url_bad_scheme_is_error_without_echoing_it() {
        let p = one(
            &doc(
                "",
                "",
                "store = \"redis\"\nredis_url = \"http://:pw@r:6379\"",
                "",
            ),
            &["redis://"],
        );
        assert!(!p.message.contains("pw"));
    }

    #[test]
    fn session_redis_url_with_password_is_error_without_echoing_it() {
        let p = one(
            &doc(
                "",
                "",
                "store = \"redis\"\nredis_url = \"redis://:hunter2@r:6379/0\"",
                "",
            ),
            &["holds a password", "redis_password_env"],
        );
        assert!(!p.message.contains("hunter2"));
    }

    #[test]
    fn session_redis_url_with_user_only_is_accepted() {
        let s = ok(&doc(
            "",
            "",
            "store = \"redis\"\nredis_url = \"redis://gateway@r:6379/0\"",
            "",
        ))
        .session;
        assert_eq!(
            s.redis,
            Some(RedisTarget::Url("redis://gateway@r:6379/0".into()))
        );
    }

    #[test]
    fn session_redis_password_env_or_file_is_source() {
        let redis = "store = \"redis\"\nredis_url = \"redis://r:6379\"\n";
        let s = ok(&doc(
            "",
            "",
            &format!("{redis}redis_password_env = \"REDIS_PW\""),
            "",
        ))
        .session;
        assert_eq!(s.redis_password, Some(SecretSource::Env("REDIS_PW".into())));
        let s = ok(&doc(
            "",
            "",
            &format!("{redis}redis_password_file = \"/run/secrets/redis\""),
            "",
        ))
        .session;
        assert_eq!(
            s.redis_password,
            Some(SecretSource::File("/run/secrets/redis".into()))
        );
    }

    #[test]
    fn session_redis_password_both_sources_is_error() {
        one(
            &doc(
                "",
                "",
                "store = \"redis\"\nredis_url = \"redis://r:6379\"\nredis_password_env = \"A\"\nredis_password_file = \"/b\"",
                "",
            ),
            &["both set"],
        );
    }

    #[test]
    fn session_redis_password_without_redis_store_is_error() {
        one(
            &doc("", "", "redis_password_env = \"REDIS_PW\"", ""),
            &["not \"redis\""],
        );
    }

    #[test]
    fn session_unknown_store_is_error() {
        one(
            &doc("", "", "store = \"postgres\"", ""),
            &["\"memory\" or \"redis\""],
        );
    }

    #[test]
    fn session_logout_redirect_path_or_url_is_accepted() {
        ok(&doc("", "", "logout_redirect = \"/bye\"", ""));
        let s = ok(&doc(
            "",
            "",
            "logout_redirect = \"https://www.example.org/\"",
            "",
        ))
        .session;
        assert_eq!(s.logout_redirect, "https://www.example.org/");
    }

    #[test]
    fn session_logout_redirect_protocol_relative_is_error() {
        for bad in [
            "//evil.example",
            "/\\\\evil.example",
            "bye",
            "javascript:alert(1)",
        ] {
            one(
                &doc("", "", &format!("logout_redirect = {bad:?}"), ""),
                &["single \"/\""],
            );
        }
    }

    #[test]
    fn session_readiness_store_or_process_is_kept() {
        let s = ok(&doc("", "", "readiness = \"process\"", "")).session;
        assert_eq!(s.readiness, Readiness::Process);
        let s = ok(&doc("", "", "readiness = \"store\"", "")).session;
        assert_eq!(s.readiness, Readiness::Store);
    }

    #[test]
    fn session_readiness_unknown_is_error_naming_both_modes() {
        one(
            &doc("", "", "readiness = \"always\"", ""),
            &["session.readiness", "\"store\"", "\"process\""],
        );
    }
}
