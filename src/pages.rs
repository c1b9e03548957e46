//! What the gateway answers itself: redirects, JSON, and its own HTML pages (errors, 403,
//! 404), always with the request id and never with a token. Also `Reply`, the value the
//! decision code returns and the pingora glue writes out.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::HeaderName;

/// A complete response decided by the gateway (the proxy layer writes it out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Bytes,
}

const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    ),
];

impl Reply {
    fn new(status: u16, content_type: Option<&str>, body: Bytes) -> Self {
        let mut headers = vec![(CACHE_CONTROL, "no-store".to_string())];
        if let Some(ct) = content_type {
            headers.push((CONTENT_TYPE, ct.to_string()));
        }
        for (k, v) in SECURITY_HEADERS {
            headers.push((HeaderName::from_static(k), v.to_string()));
        }
        Reply {
            status,
            headers,
            body,
        }
    }

    /// 302 to `location` (already validated by the caller).
    pub fn redirect(location: &str) -> Self {
        let mut r = Reply::new(302, None, Bytes::new());
        r.headers.push((LOCATION, location.to_string()));
        r
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Reply::new(
            status,
            Some("application/json"),
            Bytes::from(value.to_string()),
        )
    }

    pub fn html(status: u16, body: String) -> Self {
        Reply::new(status, Some("text/html; charset=utf-8"), Bytes::from(body))
    }

    pub fn text(status: u16, body: &'static str) -> Self {
        Reply::new(status, Some("text/plain; charset=utf-8"), Bytes::from(body))
    }

    /// A body of any `content_type` (e.g. the Prometheus text format).
    pub fn typed(status: u16, content_type: &str, body: impl Into<Bytes>) -> Self {
        Reply::new(status, Some(content_type), body.into())
    }

    pub fn with_cookie(mut self, set_cookie: String) -> Self {
        self.headers.push((SET_COOKIE, set_cookie));
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Lets the forms of this page lead to `origin` too (the gateway's own pages allow only
    /// their own origin): CSP's `form-action` is checked on every redirect after a form is
    /// sent, and signing out may end at a `logout_redirect` on another site.
    pub fn with_form_target(mut self, origin: Option<&str>) -> Self {
        if let Some(origin) = origin {
            for (k, v) in &mut self.headers {
                if k == "content-security-policy" {
                    *v = v.replace(
                        "form-action 'self'",
                        &format!("form-action 'self' {origin}"),
                    );
                }
            }
        }
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A page the gateway shows when it cannot let the request through.
#[derive(Debug, Clone)]
pub struct ErrorPage<'a> {
    pub status: u16,
    /// Machine-readable reason for JSON clients and logs, e.g. `invalid_state`.
    pub reason: &'a str,
    pub title: &'a str,
    pub message: &'a str,
    /// Link target for "Try again" (a same-site path), if any.
    pub retry: Option<&'a str>,
    /// Offer "Sign out" (403 pages).
    pub sign_out: bool,
    pub request_id: &'a str,
}

impl ErrorPage<'_> {
    /// HTML for browsers, JSON for everything else.
    pub fn reply(&self, wants_html: bool) -> Reply {
        if wants_html {
            Reply::html(self.status, self.html())
        } else {
            let mut v = serde_json::json!({
                "error": self.reason,
                "message": self.message,
                "request_id": self.request_id,
            });
            if let Some(r) = self.retry {
                v["retry"] = serde_json::Value::String(r.to_string());
            }
            Reply::json(self.status, &v)
        }
    }

    fn html(&self) -> String {
        use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};
        let mut actions = String::new();
        if let Some(r) = self.retry {
            actions.push_str(&format!(
                r#"<a class="button" href="{}">Try again</a>"#,
                attr(r)
            ));
        }
        if self.sign_out {
            actions.push_str(SIGN_OUT_FORM);
        }
        page(
            self.title,
            &format!(
                "<p>{message}</p>\n<div>{actions}</div>\n<p class=\"code\">Error {status} &middot; request id <code>{rid}</code> &middot; clever-gateway</p>",
                message = text(self.message),
                status = self.status,
                rid = text(self.request_id),
            ),
        )
    }
}

/// The sign-out button: a form that POSTs to `/_gateway/logout` (a link would be a GET, which
/// another site could trigger).
const SIGN_OUT_FORM: &str = r#"<form method="post" action="/_gateway/logout"><button class="button secondary" type="submit">Sign out</button></form>"#;

/// `GET /_gateway/logout`: asks before signing out, with a button that POSTs the sign-out.
pub fn sign_out_page(request_id: &str) -> Reply {
    use html_escape::encode_text as text;
    Reply::html(
        200,
        page(
            "Sign out?",
            &format!(
                r#"<p>This signs you out of every school app that this sign-in opened, on this browser.</p>
<div><form method="post" action="/_gateway/logout"><button class="button" type="submit">Sign out</button> <a class="button secondary" href="/">Cancel</a></form></div>
<p class="code">request id <code>{}</code> &middot; clever-gateway</p>"#,
                text(request_id)
            ),
        ),
    )
}

/// One of the gateway's pages: `title` as the heading, `body` (HTML, already escaped) below it.
fn page(title: &str, body: &str) -> String {
    use html_escape::encode_text as text;
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f4f6fb;color:#1d2433;margin:0}}
main{{max-width:34rem;margin:12vh auto;background:#fff;border-radius:12px;padding:2rem 2.25rem;box-shadow:0 2px 14px rgba(0,0,0,.08)}}
h1{{font-size:1.35rem;margin:0 0 .75rem}} p{{line-height:1.5}} form{{display:inline}}
.code{{color:#5b6577;font-size:.85rem}} .button{{display:inline-block;margin:1rem .75rem 0 0;padding:.55rem 1.1rem;border:0;border-radius:8px;background:#2e64e6;color:#fff;font:inherit;text-decoration:none;cursor:pointer}}
.secondary{{background:#e7ebf3;color:#1d2433}}
</style></head>
<body><main>
<h1>{title}</h1>
{body}
</main></body></html>
"#,
        title = text(title),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page<'a>(retry: Option<&'a str>) -> ErrorPage<'a> {
        ErrorPage {
            status: 400,
            reason: "invalid_state",
            title: "Sign-in could not be completed",
            message: "<script>alert(1)</script>",
            retry,
            sign_out: false,
            request_id: "rid-1",
        }
    }

    #[test]
    fn error_page_html_escapes_and_shows_request_id() {
        let r = page(Some("/_gateway/login?rd=/\"x")).reply(true);
        let body = std::str::from_utf8(&r.body).unwrap();
        assert!(!body.contains("<script>"));
        assert!(body.contains("rid-1"));
        assert!(body.contains("Try again"));
        assert!(!body.contains("/\"x"));
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }

    #[test]
    fn error_page_json_for_non_browsers() {
        let r = page(None).reply(false);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["error"], "invalid_state");
        assert_eq!(v["request_id"], "rid-1");
        assert_eq!(r.status, 400);
    }

    #[test]
    fn sign_out_is_a_post_form_never_a_link() {
        let mut p = page(None);
        p.sign_out = true;
        let html = String::from_utf8(p.reply(true).body.to_vec()).unwrap();
        assert!(html.contains(r#"<form method="post" action="/_gateway/logout">"#));
        assert!(!html.contains(r#"href="/_gateway/logout""#));
        let html = String::from_utf8(sign_out_page("rid-2").body.to_vec()).unwrap();
        assert!(html.contains(r#"<form method="post" action="/_gateway/logout">"#));
        assert!(html.contains("rid-2"));
    }

    #[test]
    fn with_form_target_extends_form_action_only() {
        let r = sign_out_page("r").with_form_target(Some("https://clever.com"));
        let csp = r.header("content-security-policy").unwrap();
        assert!(
            csp.contains("form-action 'self' https://clever.com"),
            "{csp}"
        );
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        let r = sign_out_page("r").with_form_target(None);
        assert!(r
            .header("content-security-policy")
            .unwrap()
            .ends_with("form-action 'self'"));
    }

    #[test]
    fn redirect_sets_location_and_no_store() {
        let r = Reply::redirect("/x").with_cookie("a=b".into());
        assert_eq!(r.status, 302);
        assert_eq!(r.header("location"), Some("/x"));
        assert_eq!(r.header("set-cookie"), Some("a=b"));
    }
}
