//! `[clever]`: client id, where the client secret comes from, the exact redirect_uri, the API
//! version, Clever's endpoints, and the request timeout.

use url::Url;

use super::{secret_source, val, Ctx};
use crate::config::file::{quote, CleverFile, Table};
use crate::config::leaf::{HttpUrl, Leaf};
use crate::config::model::{ApiVersion, CleverConfig};

pub(super) fn clever(
    ctx: &mut Ctx<'_, '_>,
    table: Option<&Table<CleverFile>>,
) -> Option<CleverConfig> {
    let Some(table) = table else {
        let why = "it needs client_id, redirect_uri, and client_secret_env or client_secret_file";
        ctx.missing("clever", 0..0, format!("missing [clever] table: {why}"));
        return None;
    };
    let (c, tspan) = (table.get_ref(), table.span());
    let why = "expected the client id of the app registered at Clever";
    let client_id = ctx.required("clever.client_id", &c.client_id, tspan.clone(), why);
    let key = "clever.client_secret";
    let secret = secret_source(ctx, key, &c.client_secret_env, &c.client_secret_file);
    let client_secret = ctx.required_secret(
        secret,
        &["_env", "_file", ""].map(|k| format!("{key}{k}")),
        tspan.clone(),
        "[clever] has no client secret: set client_secret_env (an environment variable) or \
         client_secret_file (a file path)",
    );
    let why = "expected the absolute URL registered at Clever, whose path is the callback";
    let redirect_uri = ctx.required("clever.redirect_uri", &c.redirect_uri, tspan, why);
    let redirect_uri =
        redirect_uri.and_then(|u| exact_redirect_uri(ctx, c.redirect_uri.as_ref()?, u.0));
    let discover = c.discover_district_tokens == Some(true);
    if !discover {
        let why = "clever.district_tokens_refresh is set but discover_district_tokens is not \
                   true: add discover_district_tokens = true, or remove district_tokens_refresh";
        ctx.if_set(&c.district_tokens_refresh, why);
    }
    let url = |v: &Option<Leaf<HttpUrl>>, default: &str| {
        val(v).map_or_else(|| Url::parse(default).expect("a valid default"), |u| u.0)
    };
    let api_version = c.api_version.as_ref();
    Some(CleverConfig {
        client_id: client_id?.0,
        client_secret: client_secret?,
        redirect_uri: redirect_uri?,
        api_version: api_version.map_or("v3.0".to_owned(), |v| v.text.clone()),
        api_kind: api_version.map_or(ApiVersion::V3, |v| v.value),
        authorize_url: url(&c.authorize_url, "https://clever.com/oauth/authorize"),
        token_url: url(&c.token_url, "https://clever.com/oauth/tokens"),
        api_base: url(&c.api_base, "https://api.clever.com"),
        timeout: val(&c.timeout).unwrap_or_default().0,
        discover_district_tokens: discover,
        district_tokens_refresh: val(&c.district_tokens_refresh).unwrap_or_default().0,
    })
}

/// The callback URL, which must stay byte for byte what was written: Clever compares the
/// `redirect_uri` sent at authorize and at token exchange with the registered URI exactly, and
/// the gateway sends `Url::as_str`, so a URL that parsing would normalise is refused.
fn exact_redirect_uri(ctx: &mut Ctx<'_, '_>, v: &Leaf<HttpUrl>, url: Url) -> Option<Url> {
    let sent = quote(url.as_str());
    let why = if url.query().is_some() {
        "has a query (?…): remove it (Clever adds its own code and state parameters)".to_owned()
    } else if url.as_str() != v.text {
        format!(
            "would be sent as {sent}: redirect_uri must be written exactly as it will be sent to \
             Clever: {sent} (register that exact URI at Clever)"
        )
    } else {
        return Some(url);
    };
    let text = quote(&v.text);
    ctx.err(v.span(), format!("clever.redirect_uri {text} {why}"));
    None
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::config::model::SecretSource;
    use std::time::Duration;

    #[test]
    fn clever_missing_table_is_error_at_start() {
        let p = one(UPSTREAM, &["missing [clever]"]);
        assert_eq!((p.line, p.col), (1, 1));
    }

    #[test]
    fn clever_defaults_are_applied() {
        let c = ok(&doc("", "", "", "")).clever;
        assert_eq!(c.client_id, "id");
        assert_eq!(c.client_secret, SecretSource::Env("CLEVER_SECRET".into()));
        assert_eq!(c.api_version, "v3.0");
        assert_eq!(c.api_kind, ApiVersion::V3);
        assert_eq!(
            c.authorize_url.as_str(),
            "https://clever.com/oauth/authorize"
        );
        assert_eq!(c.token_url.as_str(), "https://clever.com/oauth/tokens");
        assert_eq!(c.api_base.as_str(), "https://api.clever.com/");
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.redirect_uri.path(), "/oauth/callback");
    }

    #[test]
    fn clever_missing_required_keys_are_all_reported() {
        let src = format!("[clever]\n{UPSTREAM}");
        let p = problems(&src);
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(p.iter().all(|p| (p.line, p.col) == (1, 1)));
        assert!(p.iter().any(|p| p.message.contains("client_id")));
        assert!(p.iter().any(|p| p.message.contains("client secret")));
        assert!(p.iter().any(|p| p.message.contains("redirect_uri")));
    }

    #[test]
    fn clever_empty_client_id_is_error() {
        let src = CLEVER.replace("client_id = \"id\"", "client_id = \"\"") + UPSTREAM;
        one(&src, &["client_id is empty"]);
    }

    #[test]
    fn clever_inline_client_secret_is_rejected() {
        let src = doc("", "client_secret = \"hunter2\"", "", "");
        let p = one(
            &src,
            &["the client secret is never inline: use client_secret_env or client_secret_file"],
        );
        assert!(!p.message.contains("hunter2"));
        assert_eq!(p.line, line_of(&src, "client_secret ="));
    }

    #[test]
    fn clever_both_secret_sources_is_error() {
        one(
            &doc("", "client_secret_file = \"/s\"", "", ""),
            &["exactly one"],
        );
    }

    #[test]
    fn clever_no_secret_source_is_error() {
        let src = CLEVER.replace("client_secret_env = \"CLEVER_SECRET\"\n", "") + UPSTREAM;
        one(&src, &["client_secret_env", "client_secret_file"]);
    }

    #[test]
    fn clever_secret_file_is_source() {
        let src = CLEVER.replace(
            "client_secret_env = \"CLEVER_SECRET\"",
            "client_secret_file = \"/run/s\"",
        ) + UPSTREAM;
        assert_eq!(
            ok(&src).clever.client_secret,
            SecretSource::File("/run/s".into())
        );
    }

    #[test]
    fn clever_secret_env_bad_name_is_error() {
        let src = CLEVER.replace("\"CLEVER_SECRET\"", "\"A=B\"") + UPSTREAM;
        one(&src, &["environment variable name"]);
    }

    fn with_redirect(uri: &str) -> String {
        CLEVER.replace("https://gw.example.org/oauth/callback", uri) + UPSTREAM
    }

    #[test]
    fn clever_redirect_uri_relative_is_error() {
        one(
            &with_redirect("/oauth/callback"),
            &["clever.redirect_uri", "not a valid URL"],
        );
    }

    #[test]
    fn clever_redirect_uri_fragment_is_error() {
        one(&with_redirect("https://gw.example.org/cb#x"), &["fragment"]);
    }

    #[test]
    fn clever_redirect_uri_other_scheme_is_error() {
        one(
            &with_redirect("ftp://gw.example.org/cb"),
            &["scheme \"ftp\"", "http://"],
        );
    }

    #[test]
    fn clever_redirect_uri_http_is_accepted() {
        ok(&with_redirect("http://localhost:8080/cb"));
    }

    #[test]
    fn clever_redirect_uri_is_kept_exactly_as_written() {
        for exact in [
            "https://gw.example.org/oauth/callback/",
            "https://gw.example.org/",
            "http://127.0.0.1:8080/cb",
            "https://gw.example.org/a%20b",
        ] {
            assert_eq!(
                ok(&with_redirect(exact)).clever.redirect_uri.as_str(),
                exact
            );
        }
    }

    #[test]
    fn clever_redirect_uri_normalised_by_parsing_is_error_at_value() {
        for (written, sent) in [
            ("https://gw.example.org", "https://gw.example.org/"),
            ("https://GW.Example.org/cb", "https://gw.example.org/cb"),
            ("https://gw.example.org:443/cb", "https://gw.example.org/cb"),
            ("http://gw.example.org:80/cb", "http://gw.example.org/cb"),
            ("HTTPS://gw.example.org/cb", "https://gw.example.org/cb"),
            ("https://gw.example.org/a b", "https://gw.example.org/a%20b"),
            (
                "https://gw.example.org/a/../cb",
                "https://gw.example.org/cb",
            ),
            // TOML `\\` is one backslash, which parsing turns into "/".
            ("https://gw.example.org\\\\cb", "https://gw.example.org/cb"),
        ] {
            let src = with_redirect(written);
            let p = one(
                &src,
                &[
                    "clever.redirect_uri",
                    &format!("redirect_uri must be written exactly as it will be sent to Clever: {sent:?} (register that exact URI at Clever)"),
                ],
            );
            assert_eq!(
                (p.line, p.col),
                (line_of(&src, "redirect_uri ="), 16),
                "{written}"
            );
        }
    }

    #[test]
    fn clever_redirect_uri_query_is_error_at_value() {
        for written in [
            "https://gw.example.org/cb?app=1",
            "https://gw.example.org/cb?",
        ] {
            let src = with_redirect(written);
            let p = one(&src, &["clever.redirect_uri", "has a query"]);
            assert_eq!(
                (p.line, p.col),
                (line_of(&src, "redirect_uri ="), 16),
                "{written}"
            );
        }
    }

    #[test]
    fn clever_redirect_uri_empty_fragment_is_error() {
        one(&with_redirect("https://gw.example.org/cb#"), &["fragment"]);
    }

    #[test]
    fn clever_api_version_v2_maps_to_v2() {
        let c = ok(&doc("", "api_version = \"v2.1\"", "", "")).clever;
        assert_eq!(
            (c.api_version.as_str(), c.api_kind),
            ("v2.1", ApiVersion::V2)
        );
        let c = ok(&doc("", "api_version = \"v3.1\"", "", "")).clever;
        assert_eq!(c.api_kind, ApiVersion::V3);
    }

    #[test]
    fn clever_api_version_unknown_is_error() {
        for bad in ["v4.0", "3.0", "v3", "v3.x", "V3.0", ""] {
            one(
                &doc("", &format!("api_version = {bad:?}"), "", ""),
                &["v2.x or v3.x (v2.0, v2.1, v3.0, v3.1)"],
            );
        }
    }

    #[test]
    fn clever_endpoint_urls_are_overridable() {
        let c = ok(&doc(
            "",
            "authorize_url = \"http://127.0.0.1:7000/oauth/authorize\"\ntoken_url = \"http://127.0.0.1:7000/oauth/tokens\"\napi_base = \"http://127.0.0.1:7000\"",
            "",
            "",
        ))
        .clever;
        assert_eq!(c.authorize_url.port(), Some(7000));
        assert_eq!(c.api_base.host_str(), Some("127.0.0.1"));
    }

    #[test]
    fn clever_endpoint_url_bad_is_error() {
        one(
            &doc("", "token_url = \"clever.com/oauth/tokens\"", "", ""),
            &["clever.token_url"],
        );
        one(
            &doc("", "api_base = \"mailto:x@y\"", "", ""),
            &["clever.api_base"],
        );
    }

    #[test]
    fn clever_timeout_is_parsed() {
        let c = ok(&doc("", "timeout = \"1500ms\"", "", "")).clever;
        assert_eq!(c.timeout, Duration::from_millis(1500));
        ok(&doc("", "timeout = \"60s\"", "", ""));
    }

    #[test]
    fn clever_timeout_out_of_range_is_error() {
        one(&doc("", "timeout = \"0s\"", "", ""), &["at most 60s"]);
        one(&doc("", "timeout = \"61s\"", "", ""), &["at most 60s"]);
    }

    #[test]
    fn clever_timeout_not_a_duration_is_error() {
        one(
            &doc("", "timeout = \"soon\"", "", ""),
            &["expected a duration like \"90s\" or \"2h\""],
        );
    }

    #[test]
    fn clever_district_token_discovery_defaults_off_and_hourly() {
        let c = ok(&doc("", "", "", "")).clever;
        assert!(!c.discover_district_tokens);
        assert_eq!(c.district_tokens_refresh, Duration::from_secs(3600));
        let c = ok(&doc(
            "",
            "discover_district_tokens = true\ndistrict_tokens_refresh = \"15m\"",
            "",
            "",
        ))
        .clever;
        assert!(c.discover_district_tokens);
        assert_eq!(c.district_tokens_refresh, Duration::from_secs(900));
    }

    #[test]
    fn clever_district_tokens_refresh_without_discovery_is_error() {
        let src = doc("", "district_tokens_refresh = \"1h\"", "", "");
        let p = one(&src, &["discover_district_tokens is not true"]);
        assert_eq!(p.line, line_of(&src, "district_tokens_refresh"));
    }

    #[test]
    fn clever_district_tokens_refresh_out_of_range_is_error() {
        for bad in ["0s", "25h"] {
            one(
                &doc(
                    "",
                    &format!("discover_district_tokens = true\ndistrict_tokens_refresh = {bad:?}"),
                    "",
                    "",
                ),
                &["at least 1s and at most 24h"],
            );
        }
    }
}
