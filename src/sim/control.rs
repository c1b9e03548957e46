//! The simulator's HTTP control surface under `/_sim/`, for the demo and out-of-process tests:
//!
//! | request | effect |
//! | --- | --- |
//! | `POST /_sim/fault?endpoint=tokens&fault=500` | set a fault (`none` clears); see [`Fault`]'s syntax |
//! | `POST /_sim/reset` | clear faults and counters, restore the configured auto-login user |
//! | `GET /_sim/calls` | `{"authorize":n,"tokens":n,"me":n,"users":n,"userinfo":n,"district_tokens":n,"districts":n,"sections":n,"total":n}` |
//! | `POST /_sim/auto-login?user=ID` | set the auto-login user (`user=none` clears) |
//! | `POST /_sim/advance?by=61s` | advance the simulator's clock |
//! | `GET /_sim/stats` | `{"listeners":[{"port":p,"connections":n,"tls_handshakes":n},…],"peak_in_flight":n,"delays_us":{"CODE":us,…}}`: per listener, connections accepted and TLS handshakes completed; the most requests to Clever's endpoints answered at once, and Clever's time in each sign-in (by its code: how long its calls were held, injected latency as slept and answer built), and in `browser_delays_us` the part of it the browser waited on (authorize), since start or reset |
//! | `POST /_sim/sso-view?district=ID&view=names` | what sign-in tokens read of `/users/{id}` in a district: `full` or `names` (Clever's District SSO tier) |
//!
//! Control requests are not counted.

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::districts::UserView;
use super::faults::{Endpoint, Fault};
use super::state::Shared;
use super::web::{Params, Reply};

fn bad(msg: impl Into<String>) -> Reply {
    Reply::json(StatusCode::BAD_REQUEST, &json!({"error": msg.into()}))
}

fn param<'a>(q: &'a Params, name: &str) -> Result<&'a str, Reply> {
    match q.single(name) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(bad(format!("missing {name}"))),
        Err(_) => Err(bad(format!("{name} given more than once"))),
    }
}

/// The counters as JSON.
pub(crate) fn calls_json(shared: &Shared) -> Value {
    let mut counts = Map::new();
    for e in Endpoint::ALL {
        counts.insert(e.as_str().into(), shared.calls(e).into());
    }
    counts.insert("total".into(), shared.total_calls().into());
    Value::Object(counts)
}

pub(crate) fn handle(shared: &Shared, method: &Method, path: &str, query: Option<&str>) -> Reply {
    let q = Params::from_query(query);
    let wants = match path {
        "/_sim/fault" | "/_sim/reset" | "/_sim/auto-login" | "/_sim/advance" | "/_sim/sso-view" => {
            Method::POST
        }
        "/_sim/calls" | "/_sim/stats" => Method::GET,
        _ => {
            return Reply::json(
                StatusCode::NOT_FOUND,
                &json!({"error": "unknown control path", "paths":
                    ["/_sim/fault", "/_sim/reset", "/_sim/calls", "/_sim/auto-login", "/_sim/advance",
                     "/_sim/sso-view", "/_sim/stats"]}),
            )
        }
    };
    if *method != wants {
        return Reply::json(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": format!("use {wants}")}),
        )
        .header(http::header::ALLOW, wants.as_str());
    }
    let result = match path {
        "/_sim/fault" => set_fault(shared, &q),
        "/_sim/reset" => {
            shared.reset();
            Ok(json!({"reset": true}))
        }
        "/_sim/calls" => Ok(calls_json(shared)),
        "/_sim/stats" => Ok(json!({
            "listeners": shared.listeners().iter().map(|l| json!({
                "port": l.port,
                "connections": l.connections.load(std::sync::atomic::Ordering::SeqCst),
                "tls_handshakes": l.tls_handshakes.load(std::sync::atomic::Ordering::SeqCst),
            })).collect::<Vec<_>>(),
            "peak_in_flight": shared.peak_in_flight.load(std::sync::atomic::Ordering::SeqCst),
            "delays_us": shared.delays(),
            "browser_delays_us": shared.browser_delays(),
        })),
        "/_sim/auto-login" => set_auto_login(shared, &q),
        "/_sim/sso-view" => set_sso_view(shared, &q),
        _ => advance(shared, &q),
    };
    match result {
        Ok(v) => Reply::json(StatusCode::OK, &v),
        Err(r) => r,
    }
}

fn set_fault(shared: &Shared, q: &Params) -> Result<Value, Reply> {
    let endpoint: Endpoint = param(q, "endpoint")?.parse().map_err(bad)?;
    let raw = param(q, "fault")?;
    let fault = if raw.trim().eq_ignore_ascii_case("none") {
        None
    } else {
        Some(raw.parse::<Fault>().map_err(bad)?)
    };
    if fault == Some(Fault::AccessDenied) && endpoint != Endpoint::Authorize {
        return Err(bad("access_denied applies to endpoint=authorize only"));
    }
    shared.set_fault(endpoint, fault);
    Ok(json!({
        "endpoint": endpoint.as_str(),
        "fault": fault.map_or_else(|| "none".to_string(), |f| f.to_string()),
    }))
}

fn set_auto_login(shared: &Shared, q: &Params) -> Result<Value, Reply> {
    let user = param(q, "user")?;
    if user.eq_ignore_ascii_case("none") {
        shared.set_auto_login(None);
        return Ok(json!({"auto_login": null}));
    }
    if shared.user(user).is_none() {
        return Err(bad(format!("no such user {user:?}")));
    }
    shared.set_auto_login(Some(user));
    Ok(json!({"auto_login": user}))
}

fn set_sso_view(shared: &Shared, q: &Params) -> Result<Value, Reply> {
    let district = param(q, "district")?;
    let view = match param(q, "view")? {
        "full" => UserView::Full,
        "names" => UserView::NamesOnly,
        other => return Err(bad(format!("view must be full or names, not {other:?}"))),
    };
    shared
        .with_district(district, |d| d.sso_view = view)
        .ok_or_else(|| bad(format!("no such district {district:?}")))?;
    Ok(json!({"district": district, "view": q.single("view").ok().flatten()}))
}

fn advance(shared: &Shared, q: &Params) -> Result<Value, Reply> {
    let raw = param(q, "by")?;
    let by = humantime::parse_duration(raw.trim())
        .map_err(|e| bad(format!("bad duration {raw:?}: {e}")))?;
    shared.advance_clock(by);
    Ok(json!({"advanced_ms": u64::try_from(by.as_millis()).unwrap_or(u64::MAX)}))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::Value;

    use crate::sim::testutil::*;
    use crate::sim::{Endpoint, Fault, SimHandle};

    async fn post(sim: &SimHandle, path_and_query: &str) -> reqwest::Response {
        client()
            .post(format!("{}{path_and_query}", sim.base_url()))
            .send()
            .await
            .unwrap()
    }

    async fn calls(sim: &SimHandle) -> Value {
        let resp = client()
            .get(format!("{}/_sim/calls", sim.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    #[tokio::test]
    async fn control_fault_sets_and_clears() {
        let sim = start().await;
        let cases = [
            ("tokens", "500", Some(Fault::Status(500))),
            ("me", "502", Some(Fault::Status(502))),
            (
                "users",
                "delay:2s",
                Some(Fault::Delay(Duration::from_secs(2))),
            ),
            (
                "userinfo",
                "delay:2000ms",
                Some(Fault::Delay(Duration::from_secs(2))),
            ),
            ("tokens", "429", Some(Fault::RateLimited)),
            ("me", "html", Some(Fault::Html)),
            ("users", "truncated", Some(Fault::Truncated)),
            ("authorize", "access_denied", Some(Fault::AccessDenied)),
            ("authorize", "none", None),
        ];
        for (endpoint, fault, expected) in cases {
            let resp = post(
                &sim,
                &format!("/_sim/fault?endpoint={endpoint}&fault={fault}"),
            )
            .await;
            assert_eq!(resp.status(), 200, "{endpoint} {fault}");
            let e: Endpoint = endpoint.parse().unwrap();
            assert_eq!(sim.shared.fault(e), expected, "{endpoint} {fault}");
        }
    }

    #[tokio::test]
    async fn control_fault_takes_effect_over_http() {
        let sim = start().await;
        post(&sim, "/_sim/fault?endpoint=tokens&fault=503").await;
        assert_eq!(exchange(&sim, "x", REDIRECT).await.status(), 503);
        post(&sim, "/_sim/fault?endpoint=tokens&fault=none").await;
        assert_eq!(exchange(&sim, "x", REDIRECT).await.status(), 400);
    }

    #[tokio::test]
    async fn control_bad_requests_rejected() {
        let sim = start().await;
        for q in [
            "/_sim/fault?endpoint=nope&fault=500",
            "/_sim/fault?endpoint=tokens&fault=200",
            "/_sim/fault?endpoint=tokens&fault=delay:soon",
            "/_sim/fault?endpoint=tokens&fault=access_denied",
            "/_sim/fault?endpoint=tokens",
            "/_sim/fault?endpoint=%FF&fault=%ZZ",
            "/_sim/auto-login?user=nobody",
            "/_sim/advance?by=later",
            "/_sim/sso-view?district=nope&view=full",
            "/_sim/sso-view?district=5d0a9e5d0958b300014e49d2&view=some",
        ] {
            assert_eq!(post(&sim, q).await.status(), 400, "{q}");
        }
        let get = client()
            .get(format!(
                "{}/_sim/fault?endpoint=tokens&fault=500",
                sim.base_url()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 405);
        assert_eq!(post(&sim, "/_sim/nope").await.status(), 404);
    }

    #[tokio::test]
    async fn control_calls_reports_counts_and_is_not_counted() {
        let sim = start().await;
        let token = token_for(&sim, TEACHER).await;
        api_get(&sim, "/v3.0/me", &token).await;
        api_get(&sim, "/v3.0/me", &token).await;
        let counts = calls(&sim).await;
        assert_eq!(counts["tokens"], 1);
        assert_eq!(counts["me"], 2);
        assert_eq!(counts["authorize"], 0);
        assert_eq!(counts["users"], 0);
        assert_eq!(counts["userinfo"], 0);
        assert_eq!(counts["total"], 3);
        assert_eq!(sim.total_calls(), 3);
    }

    #[tokio::test]
    async fn control_reset_clears_faults_and_counters() {
        let sim = start_with(|c| c.auto_login = Some(TEACHER.into())).await;
        sim.set_fault(Endpoint::Me, Some(Fault::Html));
        sim.set_auto_login(None);
        exchange(&sim, "x", REDIRECT).await;
        assert_eq!(post(&sim, "/_sim/reset").await.status(), 200);
        assert_eq!(sim.shared.fault(Endpoint::Me), None);
        assert_eq!(sim.total_calls(), 0);
        assert_eq!(sim.calls(Endpoint::Tokens), 0);
        assert_eq!(sim.shared.auto_login().as_deref(), Some(TEACHER));
    }

    #[tokio::test]
    async fn control_auto_login_and_advance() {
        let sim = start().await;
        assert_eq!(
            post(&sim, &format!("/_sim/auto-login?user={STAFF}"))
                .await
                .status(),
            200
        );
        let resp = client()
            .get(authorize_url(&sim, REDIRECT, &[]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        let (_, q) = location(&resp);
        assert_eq!(post(&sim, "/_sim/advance?by=61s").await.status(), 200);
        assert_eq!(exchange(&sim, &q["code"], REDIRECT).await.status(), 400);
        assert_eq!(post(&sim, "/_sim/auto-login?user=none").await.status(), 200);
        let resp = client()
            .get(authorize_url(&sim, REDIRECT, &[]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }

    #[tokio::test]
    async fn control_sso_view_limits_what_sign_in_tokens_read() {
        let sim = start().await;
        let district = crate::sim::DEMO_DISTRICT;
        async fn roles(sim: &SimHandle) -> Value {
            let token = token_for(sim, STUDENT).await;
            let body: Value = api_get(sim, &format!("/v3.0/users/{STUDENT}"), &token)
                .await
                .json()
                .await
                .unwrap();
            body["data"]["roles"]["student"].clone()
        }
        assert!(roles(&sim).await.get("student_number").is_some());
        let q = format!("/_sim/sso-view?district={district}&view=names");
        assert_eq!(post(&sim, &q).await.status(), 200);
        assert_eq!(roles(&sim).await, serde_json::json!({}));
        let q = format!("/_sim/sso-view?district={district}&view=full");
        assert_eq!(post(&sim, &q).await.status(), 200);
        assert!(roles(&sim).await.get("student_number").is_some());
    }
}
