//! Small HTTP helpers shared by the simulator and the sample app: replies, pages, query and
//! body parsing, and the callback-URL encoder. Nothing here panics on network input.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Largest request body the simulator reads; bigger ones get 413.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// Everything but RFC 3986 unreserved characters is percent-encoded in query values.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) const JSON: &str = "application/json; charset=utf-8";
pub(crate) const HTML: &str = "text/html; charset=utf-8";

/// A response under construction; turned into a hyper response at the edge so that faults can
/// rewrite it (e.g. truncate its body).
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(header::HeaderName, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
        Reply::new(status)
            .header(header::CONTENT_TYPE, JSON)
            .body(value.to_string().into_bytes())
    }

    /// `{"error": error, "error_description": description}` with the given status.
    pub fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
        Reply::json(
            status,
            &serde_json::json!({ "error": error, "error_description": description }),
        )
    }

    pub fn html(status: StatusCode, html: String) -> Reply {
        Reply::new(status)
            .header(header::CONTENT_TYPE, HTML)
            .body(html.into_bytes())
    }

    pub fn redirect(location: String) -> Reply {
        Reply::new(StatusCode::FOUND)
            .header(header::LOCATION, location)
            .header(header::CACHE_CONTROL, "no-store")
    }

    pub fn header(mut self, name: header::HeaderName, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Reply {
        self.body = body;
        self
    }

    /// Builds the hyper response. A header value that is not a valid header (e.g. a `Location`
    /// built from a badly registered redirect URI) turns the reply into a 500 page instead.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut headers = HeaderMap::new();
        for (name, value) in self.headers {
            match HeaderValue::from_str(&value) {
                Ok(v) => {
                    headers.append(name, v);
                }
                Err(_) => {
                    return error_page(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Bad header",
                        &format!("The simulator could not send a valid {name} header."),
                    )
                    .into_response()
                }
            }
        }
        let mut resp = Response::new(Full::new(Bytes::from(self.body)));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = headers;
        resp
    }
}

/// A complete, small HTML page. `title` is escaped here; `body_html` must already be escaped.
pub(crate) fn page(title: &str, body_html: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><style>{STYLE}</style></head>\
<body><main>{body_html}</main></body></html>\n",
        title = html_escape::encode_text(title),
    )
}

const STYLE: &str =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;background:#f4f6fa;\
color:#1d2433;margin:0;padding:2rem 1rem}main{max-width:44rem;margin:0 auto;background:#fff;\
border-radius:10px;padding:1.5rem 2rem;box-shadow:0 1px 4px rgba(0,0,0,.08)}h1{font-size:1.4rem;\
margin-top:0}table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}th,td{text-align:left;\
padding:.35rem .5rem;border-bottom:1px solid #e3e7ef;vertical-align:top;word-break:break-all}\
th{font-weight:600;white-space:nowrap;word-break:normal}code{background:#eef1f6;padding:0 .25rem;\
border-radius:3px}.muted{color:#5b6474;font-size:.9rem}.notice{background:#fff6dd;\
border:1px solid #f0d68a;border-radius:6px;padding:.5rem .75rem}.users{list-style:none;padding:0}\
.users li{margin:.4rem 0}button{font:inherit;cursor:pointer;width:100%;text-align:left;\
background:#fff;border:1px solid #c9d1e0;border-radius:6px;padding:.6rem .8rem}\
button:hover{border-color:#436cd3;background:#f3f6ff}button.deny{width:auto;color:#a33}\
a{color:#2f57c1}";

/// An HTML error page (Clever's authorize endpoint answers bad requests with a page, not a
/// redirect).
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Reply {
    let body = format!(
        "<h1>{}</h1><p>{}</p><p class=\"muted\">Clever simulator &middot; {}</p>",
        html_escape::encode_text(title),
        html_escape::encode_text(message),
        status,
    );
    Reply::html(status, page(title, &body))
}

/// Decoded query or form parameters, in order, repeats kept. Invalid percent-encoding is kept
/// literally and invalid UTF-8 is replaced, so parsing never fails.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params(pub Vec<(String, String)>);

/// A parameter that must appear at most once appeared several times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Repeated(pub String);

impl Params {
    pub fn parse(raw: &[u8]) -> Params {
        Params(
            url::form_urlencoded::parse(raw)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn from_query(query: Option<&str>) -> Params {
        Params::parse(query.unwrap_or("").as_bytes())
    }

    /// The single value of `name`: `Ok(None)` if absent, `Err` if repeated.
    pub fn single(&self, name: &str) -> Result<Option<&str>, Repeated> {
        let mut found = None;
        for (k, v) in &self.0 {
            if k == name {
                if found.is_some() {
                    return Err(Repeated(name.to_string()));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found)
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

/// Why a request body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    TooLarge,
    Broken,
}

/// Reads at most [`MAX_BODY`] bytes of body, refusing early on a large `Content-Length`.
pub(crate) async fn read_body(headers: &HeaderMap, body: Incoming) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(BodyError::TooLarge);
    }
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Broken),
    }
}

/// `base` with `params` appended as a query string (`?` or `&`), values percent-encoded.
pub(crate) fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let mut out = base.to_string();
    let mut sep = if base.contains('?') { '&' } else { '?' };
    if base.ends_with('?') || base.ends_with('&') {
        sep = '\0';
    }
    for (name, value) in params {
        if sep != '\0' {
            out.push(sep);
        }
        sep = '&';
        out.push_str(&utf8_percent_encode(name, QUERY_VALUE).to_string());
        out.push('=');
        out.push_str(&utf8_percent_encode(value, QUERY_VALUE).to_string());
    }
    out
}

/// The credentials of an `Authorization: Basic …` header, if well formed.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// The token of an `Authorization: Bearer …` header, if present.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// The media type of `Content-Type`, lower-cased, parameters dropped.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or("").trim();
    (!essence.is_empty()).then(|| essence.to_ascii_lowercase())
}

/// Whether `s` is a Clever object id (24 hex characters).
pub(crate) fn is_object_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_query_encodes_values_and_picks_separator() {
        assert_eq!(
            with_query("http://a/cb", &[("code", "x y"), ("scope", "read:sis")]),
            "http://a/cb?code=x%20y&scope=read%3Asis"
        );
        assert_eq!(
            with_query("http://a/cb?x=1", &[("a", "&")]),
            "http://a/cb?x=1&a=%26"
        );
    }

    #[test]
    fn params_single_rejects_repeats_and_survives_bad_encoding() {
        let p = Params::parse(b"a=1&a=2&b=%zz&c=%FF");
        assert!(p.single("a").is_err());
        assert_eq!(p.single("b"), Ok(Some("%zz")));
        assert_eq!(p.single("c"), Ok(Some("\u{FFFD}")));
        assert_eq!(p.single("d"), Ok(None));
    }

    #[test]
    fn basic_credentials_parse_and_reject() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Basic YWJjOmRlZjpn".parse().unwrap());
        assert_eq!(basic_credentials(&h), Some(("abc".into(), "def:g".into())));
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(basic_credentials(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(basic_credentials(&h), None);
        assert_eq!(bearer_token(&h), Some("abc".into()));
    }
}
