//! What the gateway answers itself: redirects, JSON, and the frame of its own HTML pages
//! (the error pages themselves are rendered by `refusal`), always with the request id and
//! never with a token. Also `Reply`, the value the
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

/// The sign-out button: a form that POSTs to `/_gateway/logout` (a link would be a GET, which
/// another site could trigger).
pub(crate) const SIGN_OUT_FORM: &str = r#"<form method="post" action="/_gateway/logout"><button class="button secondary" type="submit">Sign out</button></form>"#;

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
pub(crate) fn page(title: &str, body: &str) -> String {
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

    #[test]
    fn sign_out_page_is_a_post_form_never_a_link() {
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
