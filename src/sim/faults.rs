//! Endpoints the simulator counts and the faults it can inject into them: their control-surface
//! syntax and the responses they produce.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{header, HeaderName, StatusCode};

use super::web::{Reply, HTML, JSON};

/// A Clever endpoint, for call counts and fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /oauth/authorize` and the sign-in page's `GET /oauth/authorize/pick`.
    Authorize,
    /// `POST /oauth/tokens`.
    Tokens,
    /// `GET /v{2.0,2.1,3.0,3.1}/me`.
    Me,
    /// `GET /v{3.0,3.1}/users/{id}`.
    Users,
    /// `GET /userinfo`.
    UserInfo,
    /// `GET /oauth/tokens?owner_type=district`: the application's district-app tokens.
    DistrictTokens,
    /// `GET /v{2.x,3.x}/districts/{id}`.
    Districts,
    /// `GET /v{3.0,3.1}/users/{id}/sections` and `/v{3.0,3.1}/sections`.
    Sections,
}

impl Endpoint {
    pub const ALL: [Endpoint; 8] = [
        Endpoint::Authorize,
        Endpoint::Tokens,
        Endpoint::Me,
        Endpoint::Users,
        Endpoint::UserInfo,
        Endpoint::DistrictTokens,
        Endpoint::Districts,
        Endpoint::Sections,
    ];

    /// The control-surface name: `authorize`, `tokens`, `me`, `users`, `userinfo`,
    /// `district_tokens`, `districts`, `sections`.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Authorize => "authorize",
            Endpoint::Tokens => "tokens",
            Endpoint::Me => "me",
            Endpoint::Users => "users",
            Endpoint::UserInfo => "userinfo",
            Endpoint::DistrictTokens => "district_tokens",
            Endpoint::Districts => "districts",
            Endpoint::Sections => "sections",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Endpoint, String> {
        Endpoint::ALL
            .into_iter()
            .find(|e| e.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "unknown endpoint {s:?}: use authorize, tokens, me, users, userinfo, \
                     district_tokens, districts or sections"
                )
            })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A misbehaviour injected into one endpoint until cleared. Every request is counted first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status with a JSON error body (e.g. 500, 502, 503).
    Status(u16),
    /// Wait this long, then give the normal answer.
    Delay(Duration),
    /// 429 with an empty body and `X-RateLimit-*` headers (reset in 60 s).
    RateLimited,
    /// The next `n` requests get 429 with `X-RateLimit-Reset` at the next whole second, then
    /// the fault clears itself: a client that waits for the reset succeeds.
    RateLimitedTimes(u32),
    /// 200 `text/html` garbage instead of JSON.
    Html,
    /// 200 with the normal answer's JSON cut off half-way (the request is still processed, so a
    /// code sent to a truncated token exchange is used up).
    Truncated,
    /// Authorize only: redirect back with `error=access_denied` (after the request is validated).
    /// On other endpoints: 403 `{"error":"access_denied"}`.
    AccessDenied,
}

/// Longest delay the control surface accepts.
const MAX_DELAY: Duration = Duration::from_secs(600);

impl FromStr for Fault {
    type Err = String;

    /// Control-surface syntax: `500`/`502`/`503`/… (any 400–599), `429`, `429x3`, `delay:2s` or
    /// `delay:2000ms`, `html`, `truncated`, `access_denied`. (`none` is handled by the caller.)
    fn from_str(s: &str) -> Result<Fault, String> {
        let s = s.trim();
        let lower = s.to_ascii_lowercase();
        if let Some(d) = lower.strip_prefix("delay:") {
            let d = humantime::parse_duration(d.trim())
                .map_err(|e| format!("bad delay {d:?}: {e} (use e.g. delay:2s or delay:2000ms)"))?;
            if d > MAX_DELAY {
                return Err(format!("delay {d:?} is longer than {MAX_DELAY:?}"));
            }
            return Ok(Fault::Delay(d));
        }
        if let Some(n) = lower.strip_prefix("429x") {
            return match n.parse::<u32>() {
                Ok(n) if n > 0 => Ok(Fault::RateLimitedTimes(n)),
                _ => Err(format!("bad 429 count {n:?}: use e.g. 429x2")),
            };
        }
        match lower.as_str() {
            "429" | "rate_limited" => Ok(Fault::RateLimited),
            "html" => Ok(Fault::Html),
            "truncated" => Ok(Fault::Truncated),
            "access_denied" => Ok(Fault::AccessDenied),
            _ => match lower.parse::<u16>() {
                Ok(code) if (400..=599).contains(&code) => Ok(Fault::Status(code)),
                _ => Err(format!(
                    "unknown fault {s:?}: use a status 400-599, 429, 429x2, delay:2s, html, \
                     truncated, access_denied or none"
                )),
            },
        }
    }
}

impl fmt::Display for Fault {
    /// The control-surface syntax, so that `f.to_string().parse() == Ok(f)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Status(code) => write!(f, "{code}"),
            Fault::Delay(d) => write!(f, "delay:{}ms", d.as_millis()),
            Fault::RateLimited => f.write_str("429"),
            Fault::RateLimitedTimes(n) => write!(f, "429x{n}"),
            Fault::Html => f.write_str("html"),
            Fault::Truncated => f.write_str("truncated"),
            Fault::AccessDenied => f.write_str("access_denied"),
        }
    }
}

/// The answer for `Fault::Status(code)`: a JSON error body.
pub(crate) fn status_reply(code: u16) -> Reply {
    let status = StatusCode::from_u16(code)
        .ok()
        .filter(|s| !s.is_informational())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("Error");
    Reply::json(
        status,
        &serde_json::json!({
            "error": reason,
            "error_description": format!("simulated {} {reason}", status.as_u16()),
        }),
    )
}

/// The answer for `Fault::RateLimited`: 429, empty body, Clever's rate-limit headers.
pub(crate) fn rate_limited_reply(now: SystemTime) -> Reply {
    let reset = now
        .checked_add(Duration::from_secs(60))
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    rate_limited_until(reset, 1200, "clever-sim")
}

/// The answer for `Fault::RateLimitedTimes`: 429 whose window resets at the next whole second.
pub(crate) fn rate_limited_briefly(now: SystemTime) -> Reply {
    let reset = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() + 1);
    rate_limited_until(reset, 1200, "clever-sim")
}

/// 429 with an empty body and the rate-limit headers of a window that resets at `reset`.
pub(crate) fn rate_limited_until(reset: u64, limit: u32, bucket: &str) -> Reply {
    with_rate_headers(
        Reply::new(StatusCode::TOO_MANY_REQUESTS),
        limit,
        0,
        reset,
        bucket,
    )
}

/// Adds Clever's `X-RateLimit-*` headers to an answer.
pub(crate) fn with_rate_headers(
    reply: Reply,
    limit: u32,
    remaining: u32,
    reset: u64,
    bucket: &str,
) -> Reply {
    reply
        .header(
            HeaderName::from_static("x-ratelimit-limit"),
            limit.to_string(),
        )
        .header(
            HeaderName::from_static("x-ratelimit-remaining"),
            remaining.to_string(),
        )
        .header(
            HeaderName::from_static("x-ratelimit-reset"),
            reset.to_string(),
        )
        .header(HeaderName::from_static("x-ratelimit-bucket"), bucket)
}

/// The answer for `Fault::Html`: what a misconfigured proxy in front of Clever might send.
pub(crate) fn html_reply() -> Reply {
    Reply::new(StatusCode::OK)
        .header(header::CONTENT_TYPE, HTML)
        .body(
            b"<!DOCTYPE html><html><head><title>Maintenance</title></head>\
<body><h1>We'll be right back</h1><p>Clever is down for maintenance.</p></body></html>\n"
                .to_vec(),
        )
}

/// `Fault::Truncated`: status 200 and the first half of the body (always invalid JSON).
pub(crate) fn truncate(reply: Reply) -> Reply {
    let mut body = if reply.body.is_empty() {
        br#"{"data":{"id":"5fc43758db"#.to_vec()
    } else {
        reply.body
    };
    let mut cut = body.len() / 2;
    // Keep the cut on a UTF-8 boundary so the text is valid UTF-8 but incomplete JSON.
    while cut > 0 && (body[cut] & 0b1100_0000) == 0b1000_0000 {
        cut -= 1;
    }
    body.truncate(cut.max(1));
    Reply::new(StatusCode::OK)
        .header(header::CONTENT_TYPE, JSON)
        .body(body)
}

/// The answer for `Fault::AccessDenied` on an endpoint other than Authorize.
pub(crate) fn access_denied_reply() -> Reply {
    Reply::oauth_error(
        StatusCode::FORBIDDEN,
        "access_denied",
        "access denied (simulated)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_parse_accepts_control_syntax() {
        assert_eq!("500".parse(), Ok(Fault::Status(500)));
        assert_eq!("503".parse(), Ok(Fault::Status(503)));
        assert_eq!("429".parse(), Ok(Fault::RateLimited));
        assert_eq!("429x2".parse(), Ok(Fault::RateLimitedTimes(2)));
        assert!("429x0".parse::<Fault>().is_err());
        assert!("429xmany".parse::<Fault>().is_err());
        assert_eq!("delay:2s".parse(), Ok(Fault::Delay(Duration::from_secs(2))));
        assert_eq!(
            "delay:2000ms".parse(),
            Ok(Fault::Delay(Duration::from_secs(2)))
        );
        assert_eq!("HTML".parse(), Ok(Fault::Html));
        assert_eq!("truncated".parse(), Ok(Fault::Truncated));
        assert_eq!("access_denied".parse(), Ok(Fault::AccessDenied));
        for bad in [
            "",
            "200",
            "999",
            "delay:",
            "delay:forever",
            "delay:1h",
            "nope",
        ] {
            assert!(bad.parse::<Fault>().is_err(), "{bad}");
        }
    }

    #[test]
    fn fault_display_round_trips() {
        for f in [
            Fault::Status(502),
            Fault::Delay(Duration::from_millis(1500)),
            Fault::RateLimited,
            Fault::RateLimitedTimes(3),
            Fault::Html,
            Fault::Truncated,
            Fault::AccessDenied,
        ] {
            assert_eq!(f.to_string().parse(), Ok(f));
        }
    }

    #[test]
    fn truncate_cuts_on_char_boundary_into_invalid_json() {
        let json = serde_json::json!({"name": "José Ñúñez Ñúñez"}).to_string();
        let r = truncate(Reply::new(StatusCode::BAD_REQUEST).body(json.into_bytes()));
        assert_eq!(r.status, StatusCode::OK);
        let text = String::from_utf8(r.body).expect("utf-8");
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
    }
}

#[cfg(test)]
mod server_tests {
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use super::{Endpoint, Fault};
    use crate::sim::testutil::*;

    #[tokio::test]
    async fn fault_status_answers_json_error() {
        let sim = start().await;
        let token = token_for(&sim, TEACHER).await;
        for code in [500u16, 502, 503] {
            sim.set_fault(Endpoint::Me, Some(Fault::Status(code)));
            let resp = api_get(&sim, "/v3.0/me", &token).await;
            assert_eq!(resp.status().as_u16(), code);
            let body: serde_json::Value = resp.json().await.unwrap();
            assert!(body["error"].is_string());
        }
        sim.set_fault(Endpoint::Me, None);
        assert_eq!(api_get(&sim, "/v3.0/me", &token).await.status(), 200);
    }

    #[tokio::test]
    async fn fault_status_on_tokens_keeps_the_code() {
        let sim = start().await;
        let code = sim.issue_code(TEACHER, REDIRECT);
        sim.set_fault(Endpoint::Tokens, Some(Fault::Status(503)));
        assert_eq!(exchange(&sim, &code, REDIRECT).await.status(), 503);
        sim.set_fault(Endpoint::Tokens, None);
        assert_eq!(exchange(&sim, &code, REDIRECT).await.status(), 200);
    }

    #[tokio::test]
    async fn fault_delay_then_normal_answer() {
        let sim = start().await;
        let token = token_for(&sim, TEACHER).await;
        sim.set_fault(
            Endpoint::UserInfo,
            Some(Fault::Delay(Duration::from_millis(300))),
        );
        let started = Instant::now();
        let resp = api_get(&sim, "/userinfo", &token).await;
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(resp.status(), 200);
    }

    #[tokio::test]
    async fn fault_rate_limited_429_with_headers_and_empty_body() {
        let sim = start().await;
        let token = token_for(&sim, TEACHER).await;
        sim.set_fault(Endpoint::Users, Some(Fault::RateLimited));
        let resp = api_get(&sim, &format!("/v3.0/users/{TEACHER}"), &token).await;
        assert_eq!(resp.status(), 429);
        let h = resp.headers();
        assert_eq!(h["x-ratelimit-limit"], "1200");
        assert_eq!(h["x-ratelimit-remaining"], "0");
        assert!(h.contains_key("x-ratelimit-bucket"));
        let reset: u64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(reset > now && reset <= now + 120, "{reset} vs {now}");
        assert!(resp.bytes().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn fault_html_200_not_json() {
        let sim = start().await;
        sim.set_fault(Endpoint::Tokens, Some(Fault::Html));
        let resp = exchange(&sim, "whatever", REDIRECT).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let text = resp.text().await.unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
    }

    #[tokio::test]
    async fn fault_truncated_200_invalid_json() {
        let sim = start().await;
        let token = token_for(&sim, STUDENT).await;
        sim.set_fault(Endpoint::Users, Some(Fault::Truncated));
        let resp = api_get(&sim, &format!("/v3.0/users/{STUDENT}"), &token).await;
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(text.starts_with("{\"data\""));
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
    }

    #[tokio::test]
    async fn fault_access_denied_redirects_with_error_and_state() {
        let sim = start_with(|c| c.auto_login = Some(TEACHER.into())).await;
        sim.set_fault(Endpoint::Authorize, Some(Fault::AccessDenied));
        let resp = client()
            .get(authorize_url(&sim, REDIRECT, &[("state", "st")]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        let (base, q) = location(&resp);
        assert_eq!(base, REDIRECT);
        assert_eq!(q["error"], "access_denied");
        assert!(!q["error_description"].is_empty());
        assert_eq!(q["state"], "st");
        assert!(!q.contains_key("code"));
        // An invalid request still gets the 400 page, not a redirect.
        let resp = client()
            .get(authorize_url(&sim, "http://evil.example/", &[]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
    }

    #[tokio::test]
    async fn fault_requests_counted_before_fault() {
        let sim = start().await;
        sim.set_fault(Endpoint::Tokens, Some(Fault::Status(500)));
        for _ in 0..3 {
            exchange(&sim, "x", REDIRECT).await;
        }
        assert_eq!(sim.calls(Endpoint::Tokens), 3);
    }
}
