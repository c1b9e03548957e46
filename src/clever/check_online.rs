//! `clever-gateway check --online`: what an offline check cannot know, asked of Clever (or the
//! simulator): whether Clever accepts the client id and secret, whether each district-app token
//! works and names its district, whether each district has Secure Sync access, and whether the
//! redirect URI is one Clever will take (https unless the host is loopback).
//!
//! The result is a report of plain values ([`OnlineReport`]) rendered as a table; every failure
//! is one line that says what is wrong and what to do. Tokens and secrets never appear in it.

use std::net::IpAddr;
use std::sync::Arc;

use url::{Host, Url};

use crate::clever::district::{DistrictInfo, TokenSource};
use crate::clever::{CleverClient, CleverError};
use crate::config::{read_secret, Config, SecretSource};
use crate::process::metrics::Metrics;
use crate::secret::Secret;

/// One district's line in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistrictRow {
    pub id: String,
    /// The name Clever gives, else the configured one.
    pub name: Option<String>,
    pub source: TokenSource,
    /// `ok`, `revoked`, `not authorized`, `unreadable`, `error`.
    pub token: &'static str,
    /// `Some(true|false)` once known.
    pub secure_sync: Option<bool>,
}

/// Everything `check --online` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnlineReport {
    /// Checks that passed, one line each.
    pub passed: Vec<String>,
    /// Worth knowing, not failures.
    pub notes: Vec<String>,
    pub districts: Vec<DistrictRow>,
    /// Failures, one line each; empty means success.
    pub problems: Vec<String>,
}

impl OnlineReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The report as printed: passed checks, the district table, the problems, a summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for p in &self.passed {
            out.push_str(&format!("ok    {p}\n"));
        }
        if !self.districts.is_empty() {
            let header = ["DISTRICT", "NAME", "SOURCE", "TOKEN", "SECURE SYNC"].map(String::from);
            let mut rows = vec![header];
            for d in &self.districts {
                rows.push([
                    d.id.clone(),
                    d.name.clone().unwrap_or_else(|| "-".into()),
                    d.source.as_str().to_string(),
                    d.token.to_string(),
                    match d.secure_sync {
                        Some(true) => "yes".into(),
                        Some(false) => "no".into(),
                        None => "-".into(),
                    },
                ]);
            }
            out.push_str(&table(&rows));
        }
        for n in &self.notes {
            out.push_str(&format!("note  {n}\n"));
        }
        for p in &self.problems {
            out.push_str(&format!("FAIL  {p}\n"));
        }
        if self.ok() {
            out.push_str("online check: everything passed\n");
        } else {
            let n = self.problems.len();
            out.push_str(&format!(
                "online check: {n} problem{} found\n",
                if n == 1 { "" } else { "s" }
            ));
        }
        out
    }
}

fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            line.push_str(&format!("{cell:<w$}  "));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Whether `host` is a loopback address or `localhost`.
pub fn is_loopback(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        None => false,
    }
}

/// What is wrong with the redirect URI for Clever, if anything: it must be https, except on a
/// loopback host (development).
pub fn redirect_uri_problem(uri: &Url) -> Option<String> {
    if uri.scheme() == "https" || is_loopback(uri.host()) {
        return None;
    }
    Some(format!(
        "clever.redirect_uri {uri} is {}:// on a host that is not loopback: Clever accepts only \
         https redirect URIs (http only for localhost/127.0.0.1 development); serve the gateway \
         over https and register the https URI",
        uri.scheme()
    ))
}

/// The one line for a failed client-credentials check.
pub fn client_problem(e: &CleverError, cfg: &Config) -> String {
    let source = describe_source(&cfg.clever.client_secret, "client_secret");
    match e {
        CleverError::InvalidClient => format!(
            "wrong client secret: Clever refused the client credentials (401 invalid_client) for \
             client_id {}: the secret in {source} does not belong to it; copy the client id and \
             secret again from the application's settings in Clever's dashboard",
            cfg.clever.client_id
        ),
        other => network_problem(other, cfg.clever.token_url.as_str(), cfg),
    }
}

/// The one line for a failed district-token check.
pub fn district_problem(e: &CleverError, id: &str, name: Option<&str>, cfg: &Config) -> String {
    let who = match name {
        Some(n) => format!("district {id} ({n})"),
        None => format!("district {id}"),
    };
    match e {
        CleverError::TokenRejected(_) => format!(
            "{who}: token revoked: Clever rejected its district-app token (401): the district \
             disconnected the application or the token was replaced; copy the current token \
             from Clever's dashboard (or use discover_district_tokens)"
        ),
        CleverError::Status(_, 404) => format!(
            "{who}: district not authorized: Clever answered 404 for this district with this \
             token: the district has not authorized the application (or the token belongs to \
             another district); ask the district to connect the application in Clever, then \
             use the token created for it"
        ),
        other => format!(
            "{who}: {}",
            network_problem(other, cfg.clever.api_base.as_str(), cfg)
        ),
    }
}

fn network_problem(e: &CleverError, url: &str, cfg: &Config) -> String {
    match e {
        CleverError::Connect(_, msg) => format!(
            "network unreachable: cannot reach Clever at {url} ({msg}): check DNS, the \
             firewall or an outbound proxy"
        ),
        CleverError::Timeout(_) => format!(
            "network unreachable: Clever did not answer {url} within clever.timeout ({}): check \
             the firewall or an outbound proxy",
            humantime::format_duration(cfg.clever.timeout)
        ),
        CleverError::RateLimited(_) => {
            "Clever is rate limiting this application (429): try again in a minute".to_string()
        }
        other => format!("{other}"),
    }
}

/// How a secret is configured, for messages: `environment variable X` or `file F`.
fn describe_source(src: &SecretSource, what: &str) -> String {
    match src {
        SecretSource::Env(v) => format!("{what}_env (environment variable {v})"),
        SecretSource::File(p) => format!("{what}_file ({})", p.display()),
    }
}

/// A district token to check: from the file (its name; the token, or why it is unreadable) or
/// discovered.
struct TokenCheck {
    id: String,
    name: Option<String>,
    source: TokenSource,
    token: Result<Secret, String>,
}

/// Runs every online check against the endpoints of `cfg`.
pub async fn check_online(cfg: &Config) -> OnlineReport {
    let mut report = OnlineReport::default();
    match redirect_uri_problem(&cfg.clever.redirect_uri) {
        None => report
            .passed
            .push(format!("redirect_uri {}", cfg.clever.redirect_uri)),
        Some(p) => report.problems.push(p),
    }

    let metrics = match Metrics::new() {
        Ok(m) => Arc::new(m),
        Err(e) => {
            report.problems.push(format!("cannot set up metrics: {e}"));
            return report;
        }
    };
    let secret = match read_secret(&cfg.clever.client_secret) {
        Ok(s) => Some(Secret::new(s)),
        Err(e) => {
            report
                .problems
                .push(format!("cannot read the client secret: {e}"));
            None
        }
    };
    // Without a secret the district tokens can still be checked (the client sends none).
    let client = match CleverClient::new(
        cfg.clever.clone(),
        secret.clone().unwrap_or_else(|| Secret::new("")),
        metrics,
    ) {
        Ok(c) => c,
        Err(e) => {
            report
                .problems
                .push(format!("cannot build the HTTP client for Clever: {e}"));
            return report;
        }
    };

    let mut listed = Vec::new();
    if secret.is_some() {
        match client.list_district_tokens().await {
            Ok(tokens) => {
                report.passed.push(format!(
                    "client credentials accepted by Clever (client_id {}); {} district-app \
                     token{} listed",
                    cfg.clever.client_id,
                    tokens.len(),
                    if tokens.len() == 1 { "" } else { "s" }
                ));
                listed = tokens;
            }
            Err(e) => report.problems.push(client_problem(&e, cfg)),
        }
    }

    // The file's districts, then (with discovery) the listed ones not in the file.
    let mut checks: Vec<TokenCheck> = cfg
        .districts
        .iter()
        .map(|d| {
            let token = read_secret(&d.token).map(Secret::new).map_err(|e| {
                format!(
                    "district {} ({}): cannot read its token from {}: {e}",
                    d.id,
                    d.name,
                    describe_source(&d.token, "token")
                )
            });
            TokenCheck {
                id: d.id.clone(),
                name: Some(d.name.clone()),
                source: TokenSource::Config,
                token,
            }
        })
        .collect();
    if cfg.clever.discover_district_tokens {
        for t in listed {
            if !checks.iter().any(|c| c.id == t.district_id) {
                checks.push(TokenCheck {
                    id: t.district_id,
                    name: None,
                    source: TokenSource::Discovered,
                    token: Ok(t.token),
                });
            }
        }
    }

    if checks.is_empty() {
        report.notes.push(if cfg.clever.discover_district_tokens {
            "no district-app tokens to check: no [[district]] tables, and Clever listed none \
             (no district has authorized the application)"
                .to_string()
        } else {
            "no district-app tokens to check: no [[district]] tables and \
             discover_district_tokens is off"
                .to_string()
        });
    }

    for TokenCheck {
        id,
        name,
        source,
        token,
    } in checks
    {
        let mut row = DistrictRow {
            id: id.clone(),
            name: name.clone(),
            source,
            token: "error",
            secure_sync: None,
        };
        match token {
            Err(msg) => {
                row.token = "unreadable";
                report.problems.push(msg);
            }
            Ok(token) => match client.district(&id, &token).await {
                Ok(DistrictInfo {
                    name: clever_name, ..
                }) => {
                    row.token = "ok";
                    row.name = clever_name.or(name);
                    match client.secure_sync_access(&token).await {
                        Ok(yes) => row.secure_sync = Some(yes),
                        Err(e) => report.problems.push(district_problem(
                            &e,
                            &id,
                            row.name.as_deref(),
                            cfg,
                        )),
                    }
                }
                Err(e) => {
                    row.token = match e {
                        CleverError::TokenRejected(_) => "revoked",
                        CleverError::Status(_, 404) => "not authorized",
                        _ => "error",
                    };
                    report
                        .problems
                        .push(district_problem(&e, &id, name.as_deref(), cfg));
                }
            },
        }
        report.districts.push(row);
    }
    if cfg.wants_section_ids() && !report.districts.iter().any(|d| d.secure_sync == Some(true)) {
        report.notes.push(
            "an upstream sends section_ids, but no district checked here has Secure Sync \
             access: no user will receive section ids"
                .to_string(),
        );
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn redirect_uri_https_or_loopback_only() {
        for good in [
            "https://apps.example-district.org/oauth/clever/callback",
            "http://127.0.0.1:8080/cb",
            "http://127.9.0.1/cb",
            "http://[::1]:8080/cb",
            "http://localhost:8080/cb",
            "http://gw.localhost/cb",
        ] {
            assert_eq!(redirect_uri_problem(&url(good)), None, "{good}");
        }
        for bad in [
            "http://apps.example-district.org/cb",
            "http://10.0.0.5/cb",
            "http://localhost.example.org/cb",
        ] {
            let p = redirect_uri_problem(&url(bad)).unwrap();
            assert!(p.contains("only https"), "{p}");
        }
    }

    fn cfg() -> Config {
        crate::config::parse_str(
            "[clever]\nclient_id = \"4c63c1cf623dce82caac\"\nclient_secret_env = \"CG_SECRET\"\nredirect_uri = \"https://gw.example.org/cb\"\n[[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9000\"\n",
            "t.toml",
        )
        .unwrap()
    }

    #[test]
    fn messages_name_the_common_mistakes() {
        use crate::clever::Endpoint;
        let c = cfg();
        let m = client_problem(&CleverError::InvalidClient, &c);
        assert!(m.starts_with("wrong client secret"), "{m}");
        assert!(m.contains("environment variable CG_SECRET") && m.contains("4c63c1cf623dce82caac"));
        let m = district_problem(
            &CleverError::TokenRejected(Endpoint::Districts),
            "d1",
            Some("Demo"),
            &c,
        );
        assert!(m.starts_with("district d1 (Demo): token revoked"), "{m}");
        let m = district_problem(
            &CleverError::Status(Endpoint::Districts, 404),
            "d1",
            None,
            &c,
        );
        assert!(m.starts_with("district d1: district not authorized"), "{m}");
        let m = client_problem(
            &CleverError::Connect(Endpoint::DistrictTokens, "connection refused".into()),
            &c,
        );
        assert!(
            m.starts_with("network unreachable") && m.contains("connection refused"),
            "{m}"
        );
    }

    #[test]
    fn render_table_and_summary() {
        let r = OnlineReport {
            passed: vec!["redirect_uri https://x/cb".into()],
            notes: vec![],
            districts: vec![
                DistrictRow {
                    id: "d1".into(),
                    name: Some("Demo USD".into()),
                    source: TokenSource::Config,
                    token: "ok",
                    secure_sync: Some(true),
                },
                DistrictRow {
                    id: "d2".into(),
                    name: None,
                    source: TokenSource::Discovered,
                    token: "revoked",
                    secure_sync: None,
                },
            ],
            problems: vec!["district d2: token revoked".into()],
        };
        let text = r.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ok    redirect_uri https://x/cb");
        assert!(lines[1].starts_with("DISTRICT") && lines[1].ends_with("SECURE SYNC"));
        assert!(
            lines[2].starts_with("d1") && lines[2].ends_with("yes"),
            "{text}"
        );
        assert!(lines[3].contains("discovered") && lines[3].contains("revoked"));
        assert_eq!(lines[4], "FAIL  district d2: token revoked");
        assert_eq!(lines[5], "online check: 1 problem found");
        assert!(!r.ok());
        assert!(OnlineReport::default()
            .render()
            .ends_with("everything passed\n"));
    }
}
