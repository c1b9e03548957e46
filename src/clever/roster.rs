//! A user's sections, read at login with the district's district-app token
//! (`GET /{v}/users/{id}/sections`): pages followed through `rel: next` links on Clever's API
//! host only, a hard page cap, and Clever's rate limits honoured (a 429, or an exhausted
//! `X-RateLimit-Remaining` before the next page, waits for `X-RateLimit-Reset`) within the
//! call's budget, `clever.timeout`. Decisions are plain functions tested without a server.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

use super::parse::valid_id;
use super::{CleverClient, CleverError, Endpoint, MAX_TRIES};
use crate::secret::Secret;

/// At most this many pages are read for one user; more is an error (never a partial list).
pub const MAX_PAGES: usize = 20;
/// At most this many section ids are kept (about 5 KB of header); the rest are dropped.
pub const MAX_SECTIONS: usize = crate::identity::MAX_IDS;

/// Why a user's sections could not be read. `Display` never contains a token.
#[derive(Debug, thiserror::Error)]
pub enum SectionsError {
    /// 401, 403 or 404 from the roster endpoint: the district's token may not read rosters
    /// (not a Secure Sync district), or was revoked.
    #[error("the district's token has no Secure Sync access to sections (HTTP {0})")]
    NoAccess(u16),
    #[error("more than {MAX_PAGES} pages of sections")]
    TooManyPages,
    #[error("the next-page link leaves Clever's API host")]
    ForeignLink,
    #[error(transparent)]
    Clever(#[from] CleverError),
}

impl SectionsError {
    /// A short machine-readable reason (logs).
    pub fn reason(&self) -> &'static str {
        match self {
            SectionsError::NoAccess(_) => "no_secure_sync",
            SectionsError::TooManyPages => "too_many_pages",
            SectionsError::ForeignLink => "foreign_link",
            SectionsError::Clever(e) => e.reason(),
        }
    }
}

/// One page of `/users/{id}/sections`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SectionsPage {
    pub ids: Vec<String>,
    /// The `uri` of the `rel: next` link, as written.
    pub next: Option<String>,
}

/// Parses a page: `{"data":[{"data":{"id":…},"uri":…}],"links":[{"rel":"next","uri":…}]}`.
/// Elements may also be unwrapped (`{"id":…}`); elements without a usable id are skipped.
pub fn parse_sections_page(body: &[u8]) -> Result<SectionsPage, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| "the sections page is not JSON".to_string())?;
    let Some(Value::Array(items)) = v.get("data") else {
        return Err("the sections page has no data array".into());
    };
    let ids = items
        .iter()
        .filter_map(|item| {
            let inner = match item.get("data") {
                Some(d @ Value::Object(_)) => d,
                _ => item,
            };
            inner.get("id").and_then(Value::as_str)
        })
        .filter(|id| valid_id(id))
        .map(str::to_string)
        .collect();
    Ok(SectionsPage {
        ids,
        next: next_link(&v),
    })
}

/// The `uri` of the first `rel: next` link, if any.
fn next_link(v: &Value) -> Option<String> {
    v.get("links")?
        .as_array()?
        .iter()
        .find(|l| l.get("rel").and_then(Value::as_str) == Some("next"))?
        .get("uri")?
        .as_str()
        .filter(|u| !u.is_empty())
        .map(str::to_string)
}

/// The URL of a next-page link, resolved against `api_base`; `None` when it would leave the API
/// host (scheme, host and port must stay those of `api_base`): the district's token is never
/// sent anywhere else.
pub fn next_page_url(api_base: &Url, link: &str) -> Option<Url> {
    let url = api_base.join(link).ok()?;
    (url.scheme() == api_base.scheme()
        && url.host_str() == api_base.host_str()
        && url.port_or_known_default() == api_base.port_or_known_default())
    .then_some(url)
}

/// Clever's rate-limit headers as read from an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimit {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// `X-RateLimit-Reset`: when the window resets, unix seconds.
    pub reset: Option<u64>,
    /// `Retry-After`, in seconds (a date is ignored).
    pub retry_after: Option<u64>,
}

impl RateLimit {
    pub fn from_headers(h: &HeaderMap) -> RateLimit {
        let num = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        RateLimit {
            limit: num("x-ratelimit-limit"),
            remaining: num("x-ratelimit-remaining"),
            reset: num("x-ratelimit-reset"),
            retry_after: num("retry-after"),
        }
    }

    /// How long to wait before asking again after a 429: until `Retry-After`, else until
    /// `X-RateLimit-Reset`, else `fallback` (the doubling backoff). At least 50 ms.
    pub fn wait(&self, now: SystemTime, fallback: Duration) -> Duration {
        let wait = if let Some(s) = self.retry_after {
            Duration::from_secs(s)
        } else if let Some(reset) = self.reset {
            let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
            Duration::from_secs(reset).saturating_sub(now)
        } else {
            fallback
        };
        wait.max(Duration::from_millis(50))
    }

    /// Before the next page of a 2xx answer: wait for the reset when the window is used up.
    pub fn wait_before_next(&self, now: SystemTime) -> Option<Duration> {
        (self.remaining == Some(0) && self.reset.is_some()).then(|| self.wait(now, Duration::ZERO))
    }
}

/// Whether to wait `wait` with `left` of the budget: only if a try still fits after it.
pub fn fits(wait: Duration, left: Duration) -> bool {
    wait + Duration::from_millis(100) < left
}

impl CleverClient {
    /// The user's section ids (sorted, de-duplicated, at most [`MAX_SECTIONS`]), read with
    /// `token` page by page. 5xx and unreachable are retried with doubling backoff, 429 waits
    /// for the reset; everything, every page and every wait, within `clever.timeout`.
    pub async fn user_sections(
        &self,
        user_id: &str,
        token: &Secret,
    ) -> Result<Vec<String>, SectionsError> {
        let result = self.user_sections_inner(user_id, token).await;
        // Every failure is counted, "no_secure_sync" included (bounded, fixed reasons).
        if let Err(e) = &result {
            self.metrics()
                .clever_error(Endpoint::Sections.as_str(), e.reason());
        }
        result
    }

    async fn user_sections_inner(
        &self,
        user_id: &str,
        token: &Secret,
    ) -> Result<Vec<String>, SectionsError> {
        let ep = Endpoint::Sections;
        let started = Instant::now();
        let budget = self.cfg.timeout;
        let api_base = self.cfg.api_base.clone();
        let mut url = self.district_api_url(&["users", user_id, "sections"]);
        let mut ids: Vec<String> = Vec::new();
        let mut pages = 0;
        let mut backoff = self.backoff;
        let mut tries = 1;
        loop {
            let left = budget.saturating_sub(started.elapsed());
            let raw = match self.get_raw(ep, url.clone(), token, left).await {
                Ok(raw) => raw,
                Err(e @ CleverError::Connect(..)) => {
                    if tries >= MAX_TRIES || !fits(backoff, left) {
                        return Err(e.into());
                    }
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    tries += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let rate = RateLimit::from_headers(&raw.headers);
            let left = budget.saturating_sub(started.elapsed());
            match raw.status {
                200..=299 => {}
                401 | 403 | 404 => return Err(SectionsError::NoAccess(raw.status)),
                429 => {
                    let wait = rate.wait(SystemTime::now(), backoff);
                    if !fits(wait, left) {
                        return Err(CleverError::RateLimited(ep).into());
                    }
                    tracing::info!(
                        endpoint = ep.as_str(),
                        wait_ms = wait.as_millis() as u64,
                        "Clever is rate limiting; waiting for the reset"
                    );
                    tokio::time::sleep(wait).await;
                    backoff *= 2;
                    continue;
                }
                s if s >= 500 && tries < MAX_TRIES && fits(backoff, left) => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    tries += 1;
                    continue;
                }
                s => return Err(CleverError::Status(ep, s).into()),
            }
            let page =
                parse_sections_page(&raw.body).map_err(|e| CleverError::BadResponse(ep, e))?;
            ids.extend(page.ids);
            pages += 1;
            let Some(next) = page.next else { break };
            if pages >= MAX_PAGES {
                return Err(SectionsError::TooManyPages);
            }
            url = next_page_url(&api_base, &next).ok_or(SectionsError::ForeignLink)?;
            tries = 1;
            backoff = self.backoff;
            if let Some(wait) = rate.wait_before_next(SystemTime::now()) {
                if !fits(wait, left) {
                    return Err(CleverError::RateLimited(ep).into());
                }
                tokio::time::sleep(wait).await;
            }
        }
        ids.sort();
        ids.dedup();
        ids.truncate(MAX_SECTIONS);
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn sections_page_parses_wrapped_and_plain_elements_and_next() {
        let body = br#"{"data":[{"data":{"id":"sec1","name":"Math"},"uri":"/v3.0/sections/sec1"},{"id":"sec2"},{"data":{"id":"bad id"}},{"data":{}},3],
            "links":[{"rel":"self","uri":"/v3.0/users/u/sections"},{"rel":"next","uri":"/v3.0/users/u/sections?starting_after=sec2"}]}"#;
        let p = parse_sections_page(body).unwrap();
        assert_eq!(p.ids, vec!["sec1", "sec2"]);
        assert_eq!(
            p.next.as_deref(),
            Some("/v3.0/users/u/sections?starting_after=sec2")
        );
        let last =
            parse_sections_page(br#"{"data":[],"links":[{"rel":"self","uri":"/x"}]}"#).unwrap();
        assert_eq!(last, SectionsPage::default());
        assert!(parse_sections_page(br#"{"data":[]}"#)
            .unwrap()
            .next
            .is_none());
        assert!(parse_sections_page(b"<html>").is_err());
        assert!(parse_sections_page(br#"{"links":[]}"#).is_err());
    }

    #[test]
    fn next_page_url_stays_on_the_api_host() {
        let base = Url::parse("https://api.clever.com").unwrap();
        let u = next_page_url(&base, "/v3.0/users/u/sections?starting_after=s").unwrap();
        assert_eq!(
            u.as_str(),
            "https://api.clever.com/v3.0/users/u/sections?starting_after=s"
        );
        for foreign in [
            "https://evil.example/v3.0/users/u/sections",
            "//evil.example/x",
            "http://api.clever.com/v3.0/x",
            "https://api.clever.com:8443/v3.0/x",
        ] {
            assert!(next_page_url(&base, foreign).is_none(), "{foreign}");
        }
        let sim = Url::parse("http://127.0.0.1:4000").unwrap();
        assert!(next_page_url(&sim, "/v3.0/x?starting_after=1").is_some());
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn rate_limit_wait_prefers_retry_after_then_reset_then_backoff() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let r = RateLimit::from_headers(&headers(&[
            ("x-ratelimit-limit", "1200"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1003"),
            ("x-ratelimit-bucket", "b"),
        ]));
        assert_eq!(r.limit, Some(1200));
        assert_eq!(r.wait(now, Duration::from_secs(9)), Duration::from_secs(3));
        let r = RateLimit::from_headers(&headers(&[
            ("x-ratelimit-reset", "1003"),
            ("retry-after", "1"),
        ]));
        assert_eq!(r.wait(now, Duration::from_secs(9)), Duration::from_secs(1));
        let r = RateLimit::from_headers(&headers(&[("x-ratelimit-reset", "garbage")]));
        assert_eq!(r.wait(now, Duration::from_secs(2)), Duration::from_secs(2));
        // A reset in the past: retry almost at once.
        let r = RateLimit::from_headers(&headers(&[("x-ratelimit-reset", "10")]));
        assert_eq!(
            r.wait(now, Duration::from_secs(2)),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn rate_limit_waits_before_next_page_only_when_exhausted() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let exhausted = RateLimit {
            remaining: Some(0),
            reset: Some(1_002),
            ..RateLimit::default()
        };
        assert_eq!(
            exhausted.wait_before_next(now),
            Some(Duration::from_secs(2))
        );
        let fine = RateLimit {
            remaining: Some(5),
            reset: Some(1_002),
            ..RateLimit::default()
        };
        assert_eq!(fine.wait_before_next(now), None);
        assert_eq!(RateLimit::default().wait_before_next(now), None);
    }

    #[test]
    fn fits_leaves_room_for_a_try() {
        assert!(fits(Duration::from_secs(1), Duration::from_secs(2)));
        assert!(!fits(Duration::from_secs(2), Duration::from_secs(2)));
        assert!(!fits(Duration::from_secs(60), Duration::from_secs(4)));
    }
}
