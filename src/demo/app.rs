//! The sample upstream app for `clever-gateway demo`: a page (or JSON) showing the identity
//! headers and every other header the gateway sent it.

use std::net::SocketAddr;

use http::{header, HeaderMap, Request, StatusCode};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use serde_json::{json, Map, Value};

use crate::sim::server::{self, Server};
use crate::sim::web::{page, Reply};

/// The identity headers shown in the table, in order, with their labels. The first three are
/// always shown ("not sent" when absent); the others only when present.
const IDENTITY_HEADERS: &[(&str, &str)] = &[
    ("x-clever-user-id", "User id"),
    ("x-clever-user-type", "User type(s)"),
    ("x-clever-district-id", "District"),
    ("x-clever-email", "Email"),
    ("x-clever-name", "Name"),
    ("x-clever-access-token", "Access token"),
    ("x-clever-school-ids", "Schools"),
    ("x-clever-section-ids", "Sections"),
];

const TOKEN_HEADER: &str = "x-clever-access-token";

/// The header that names the app's own user (`[upstream.set_headers]` in the demo config).
const REMOTE_USER_HEADER: &str = "x-remote-user";

/// A running sample app. Dropping it (or [`SampleApp::shutdown`]) stops it.
#[derive(Debug)]
pub struct SampleApp {
    pub addr: SocketAddr,
    _server: Server,
}

impl SampleApp {
    /// Binds `addr` (port 0 is fine) and serves on the current tokio runtime.
    pub async fn start(addr: SocketAddr) -> std::io::Result<SampleApp> {
        let server = server::spawn(addr, |req: Request<Incoming>| async move {
            respond(&req).into_response()
        })
        .await?;
        Ok(SampleApp {
            addr: server.addr,
            _server: server,
        })
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the app (same as dropping it).
    pub fn shutdown(self) {
        drop(self);
    }
}

/// Decodes an RFC 8187 extended value (`UTF-8''%C3%A9`, `ISO-8859-1'en'%E9`); `None` if `raw`
/// is not one.
pub fn decode_ext_value(raw: &str) -> Option<String> {
    let mut parts = raw.splitn(3, '\'');
    let (charset, _lang, encoded) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes: Vec<u8> = percent_decode_str(encoded).collect();
    if charset.eq_ignore_ascii_case("utf-8") {
        Some(String::from_utf8_lossy(&bytes).into_owned())
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.iter().map(|&b| char::from(b)).collect())
    } else {
        None
    }
}

/// A header value as text (invalid UTF-8 replaced).
fn text_of(value: &header::HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

/// The value shown for an identity header: decoded, and the token shortened.
fn display_value(name: &str, raw: &str) -> String {
    if name == TOKEN_HEADER {
        let head: String = raw.chars().take(4).collect();
        return format!("{head}… ({} characters)", raw.chars().count());
    }
    decode_ext_value(raw).unwrap_or_else(|| raw.to_string())
}

/// All values of one header joined with ", ".
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<String> = headers.get_all(name).iter().map(text_of).collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn wants_json(headers: &HeaderMap) -> bool {
    let accept = joined(headers, "accept")
        .unwrap_or_default()
        .to_ascii_lowercase();
    accept.contains("application/json") && !accept.contains("text/html")
}

fn respond(req: &Request<Incoming>) -> Reply {
    let headers = req.headers();
    if wants_json(headers) {
        json_reply(req)
    } else {
        html_reply(req)
    }
}

/// Header names in arrival order, each once.
fn header_names(headers: &HeaderMap) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for name in headers.keys() {
        if !names.contains(&name.as_str()) {
            names.push(name.as_str());
        }
    }
    names
}

/// The JSON echo: every header raw (an upstream test can compare what arrived, the access
/// token included), plus the `X-Clever-*` values decoded (the token left out).
fn json_reply(req: &Request<Incoming>) -> Reply {
    let headers = req.headers();
    let mut all = Map::new();
    for name in header_names(headers) {
        all.insert(
            name.into(),
            joined(headers, name).unwrap_or_default().into(),
        );
    }
    let mut identity = Map::new();
    for name in header_names(headers) {
        if name.starts_with("x-clever-") && name != TOKEN_HEADER {
            let raw = joined(headers, name).unwrap_or_default();
            identity.insert(name.into(), display_value(name, &raw).into());
        }
    }
    let remote_user = joined(headers, REMOTE_USER_HEADER).map(|raw| display_value("", &raw));
    Reply::json(
        StatusCode::OK,
        &json!({
            "method": req.method().as_str(),
            "path": req.uri().path(),
            "query": req.uri().query(),
            "headers": all,
            "identity": Value::Object(identity),
            "remote_user": remote_user,
        }),
    )
    .header(header::CACHE_CONTROL, "no-store")
}

fn html_reply(req: &Request<Incoming>) -> Reply {
    use html_escape::encode_text as text;
    let headers = req.headers();

    let mut identity = String::new();
    let mut row = |name: &str, label: &str| {
        let cell = match joined(headers, name) {
            Some(raw) => {
                let shown_value = display_value(name, &raw);
                if shown_value != raw && name != TOKEN_HEADER {
                    format!(
                        "{}<br><span class=\"muted\">sent as <code>{}</code></span>",
                        text(&shown_value),
                        text(&raw)
                    )
                } else {
                    text(&shown_value).into_owned()
                }
            }
            None => "<span class=\"muted\">not sent</span>".to_string(),
        };
        identity.push_str(&format!(
            "<tr><th>{}</th><td>{}</td><td class=\"muted\"><code>{}</code></td></tr>",
            text(label),
            cell,
            text(name)
        ));
    };
    for (i, (name, label)) in IDENTITY_HEADERS.iter().enumerate() {
        if i < 3 || headers.contains_key(*name) {
            row(name, label);
        }
    }
    for name in header_names(headers) {
        if name.starts_with("x-clever-") && !IDENTITY_HEADERS.iter().any(|(n, _)| *n == name) {
            row(name, name);
        }
    }

    let mut all = String::new();
    let names = header_names(headers);
    for name in &names {
        for value in headers.get_all(*name) {
            let mut value = text_of(value);
            if *name == TOKEN_HEADER {
                value = display_value(name, &value);
            }
            all.push_str(&format!(
                "<tr><th>{}</th><td><code>{}</code></td></tr>",
                text(name),
                text(&value)
            ));
        }
    }
    let app_user = match joined(headers, REMOTE_USER_HEADER) {
        Some(raw) => format!(
            "<p>This app knows you as <strong class=\"remote-user\">{}</strong> \
             (<code>X-Remote-User</code>, which the gateway builds from your Clever record).</p>",
            text(&display_value("", &raw))
        ),
        None => "<p class=\"muted\">No <code>X-Remote-User</code> was sent: the gateway \
                 could not build it from your Clever record.</p>"
            .to_string(),
    };
    let target = req.uri().path_and_query().map_or_else(
        || req.uri().path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    let body = format!(
        "<h1>Sample school app</h1>\
         <p>This is what the gateway told me about you.</p>\
         {app_user}\
         <table>{identity}</table>\
         <p><strong>{method}</strong> <code>{target}</code></p>\
         <details><summary>All request headers ({count})</summary><table>{all}</table></details>\
         <p><a href=\"/_gateway/me\">/_gateway/me</a> (your identity as JSON)</p>\
         <form method=\"post\" action=\"/_gateway/logout\">\
         <button type=\"submit\" style=\"width:auto\">Sign out</button></form>",
        method = text(req.method().as_str()),
        target = text(&target),
        count = names.len(),
    );
    Reply::html(
        StatusCode::OK,
        page(
            "Sample school app — this is what the gateway told me",
            &body,
        ),
    )
    .header(header::CACHE_CONTROL, "no-store")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn start() -> SampleApp {
        SampleApp::start("127.0.0.1:0".parse().unwrap())
            .await
            .expect("start sample app")
    }

    #[test]
    fn decode_ext_value_handles_rfc8187() {
        assert_eq!(
            decode_ext_value("UTF-8''Jos%C3%A9%20%C3%91%C3%BA%C3%B1ez").as_deref(),
            Some("José Ñúñez")
        );
        assert_eq!(decode_ext_value("utf-8'es'%C3%B1").as_deref(), Some("ñ"));
        assert_eq!(decode_ext_value("ISO-8859-1''%E9").as_deref(), Some("é"));
        assert_eq!(
            decode_ext_value("UTF-8''%FF%ZZ").as_deref(),
            Some("\u{FFFD}%ZZ")
        );
        assert_eq!(decode_ext_value("Maria Lopez"), None);
        assert_eq!(decode_ext_value("koi8-r''%E9"), None);
    }

    #[tokio::test]
    async fn sample_app_html_shows_identity_and_decodes_utf8() {
        let app = start().await;
        let html = reqwest::Client::new()
            .get(format!("{}/grades/5?term=fall", app.url()))
            .header("accept", "text/html")
            .header("x-clever-user-id", "5fc43758db087d0be186c29d")
            .header("x-clever-user-type", "teacher,district_admin")
            .header("x-clever-name", "UTF-8''Jos%C3%A9%20%C3%91%C3%BA%C3%B1ez")
            .header("x-clever-access-token", "ilsecretsecretsecret")
            .header("x-custom", "<b>hi</b>")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("Sample school app"));
        assert!(html.contains("5fc43758db087d0be186c29d"));
        assert!(html.contains("teacher,district_admin"));
        assert!(html.contains("José Ñúñez"));
        assert!(html.contains("/grades/5?term=fall"));
        assert!(html.contains("href=\"/_gateway/me\""));
        assert!(html.contains("<form method=\"post\" action=\"/_gateway/logout\">"));
        assert!(html.contains("<details>"));
        assert!(html.contains("No <code>X-Remote-User</code> was sent"));
        // The access token is never shown whole on the page.
        assert!(!html.contains("ilsecretsecretsecret"));
        // District was not sent: shown as such, not invented.
        assert!(html.contains("not sent"));
        // Everything from the request is escaped.
        assert!(!html.contains("<b>hi</b>"));
        assert!(html.contains("&lt;b&gt;hi&lt;/b&gt;"));
    }

    #[tokio::test]
    async fn sample_app_json_echoes_headers() {
        let app = start().await;
        let body: Value = reqwest::Client::new()
            .post(format!("{}/api/x?y=1", app.url()))
            .header("accept", "application/json")
            .header("x-clever-user-id", "abc")
            .header("x-clever-name", "UTF-8''Jos%C3%A9")
            .header("x-clever-access-token", "iltoken")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["path"], "/api/x");
        assert_eq!(body["query"], "y=1");
        assert_eq!(body["method"], "POST");
        assert_eq!(body["headers"]["x-clever-user-id"], "abc");
        assert_eq!(body["headers"]["x-clever-name"], "UTF-8''Jos%C3%A9");
        assert_eq!(body["identity"]["x-clever-name"], "José");
        assert_eq!(body["remote_user"], Value::Null);
        assert!(body["identity"].get("x-clever-access-token").is_none());
    }

    #[tokio::test]
    async fn sample_app_shutdown_stops_it() {
        let app = start().await;
        let url = app.url();
        app.shutdown();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(reqwest::Client::new().get(url).send().await.is_err());
    }
}
