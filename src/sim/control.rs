//! The simulator's HTTP control surface under `/_sim/`, for the demo and out-of-process tests:
//!
//! | request | effect |
//! | --- | --- |
//! | `POST /_sim/fault?endpoint=tokens&fault=500` | set a fault (`none` clears); see [`Fault`]'s syntax |
//! | `POST /_sim/reset` | clear faults and counters, restore the configured auto-login user |
//! | `GET /_sim/calls` | `{"authorize":n,"tokens":n,"me":n,"users":n,"userinfo":n,"total":n}` |
//! | `POST /_sim/auto-login?user=ID` | set the auto-login user (`user=none` clears) |
//! | `POST /_sim/advance?by=61s` | advance the simulator's clock |
//!
//! Control requests are not counted.

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

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
        "/_sim/fault" | "/_sim/reset" | "/_sim/auto-login" | "/_sim/advance" => Method::POST,
        "/_sim/calls" => Method::GET,
        _ => {
            return Reply::json(
                StatusCode::NOT_FOUND,
                &json!({"error": "unknown control path", "paths":
                    ["/_sim/fault", "/_sim/reset", "/_sim/calls", "/_sim/auto-login", "/_sim/advance"]}),
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
        "/_sim/auto-login" => set_auto_login(shared, &q),
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

fn advance(shared: &Shared, q: &Params) -> Result<Value, Reply> {
    let raw = param(q, "by")?;
    let by = humantime::parse_duration(raw.trim())
        .map_err(|e| bad(format!("bad duration {raw:?}: {e}")))?;
    shared.advance_clock(by);
    Ok(json!({"advanced_ms": u64::try_from(by.as_millis()).unwrap_or(u64::MAX)}))
}
