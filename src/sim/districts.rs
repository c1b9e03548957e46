//! Districts and district-app tokens: which districts authorized the application (each with a
//! 40-hex token, listed by `GET /oauth/tokens?owner_type=district` for the client's
//! credentials), which are Secure Sync customers (their token may read rosters), and the API
//! they answer: `/{v}/districts/{id}`, `/v3.x/users/{id}/sections` and `/v3.x/sections`, paged
//! with `limit` / `starting_after` and `rel: next` links.
//!
//! Choices where Clever's documentation is silent: a roster call without Secure Sync, for a
//! user outside the token's district, or with an SSO token answers 404 with no body (Clever's
//! "unshared resource or wrong token type"); an unknown or revoked token answers 401.

use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::api::Version;
use super::state::Shared;
use super::users::{SimUser, DEMO_DISTRICT, DEMO_DISTRICT_2};
use super::web::{bearer_token, Params, Reply};
use crate::identity::UserType;

/// A district the simulated Clever knows.
#[derive(Clone, PartialEq, Eq)]
pub struct SimDistrict {
    /// 24 hex characters.
    pub id: String,
    pub name: String,
    /// A Secure Sync customer: its district-app token may read rosters (sections).
    pub secure_sync: bool,
    /// The district-app token (40 hex characters) created when the district authorized the
    /// application; `None`: it has not (or has disconnected it).
    pub token: Option<String>,
    /// What a user's own sign-in token reads of `/v3.x/users/{id}` in this district.
    pub sso_view: UserView,
}

/// How much of a user's record the user's own sign-in token may read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserView {
    /// The whole record.
    Full,
    /// Clever's District SSO tier: first, middle and last name, email and id; each role's key
    /// stays (empty), so the user's type is still known.
    NamesOnly,
}

impl std::fmt::Debug for SimDistrict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDistrict")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("secure_sync", &self.secure_sync)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("sso_view", &self.sso_view)
            .finish()
    }
}

/// The demo districts, both authorized with fresh random tokens: [`DEMO_DISTRICT`] is a
/// Secure Sync customer whose sign-in tokens read the whole user record; [`DEMO_DISTRICT_2`]
/// is on the District SSO tier (no Secure Sync; sign-in tokens read names and email only).
pub fn demo_districts() -> Vec<SimDistrict> {
    vec![
        SimDistrict {
            id: DEMO_DISTRICT.to_string(),
            name: "Demo Unified School District".to_string(),
            secure_sync: true,
            token: Some(super::state::hex_id(40)),
            sso_view: UserView::Full,
        },
        SimDistrict {
            id: DEMO_DISTRICT_2.to_string(),
            name: "Sandbox District".to_string(),
            secure_sync: false,
            token: Some(super::state::hex_id(40)),
            sso_view: UserView::NamesOnly,
        },
    ]
}

/// A user's section ids (24 hex, derived from the user id): 5 for a teacher, 3 for a student,
/// none for anyone else or without a district.
pub(crate) fn sections_of(user: &SimUser) -> Vec<String> {
    if user.district.is_none() {
        return Vec::new();
    }
    let n = if user.role(UserType::Teacher).is_some() {
        5
    } else if user.role(UserType::Student).is_some() {
        3
    } else {
        0
    };
    let prefix: String = user.id.chars().take(16).collect();
    (0..n).map(|i| format!("{prefix}5ec7{i:04x}")).collect()
}

/// `GET /oauth/tokens?owner_type=district` with HTTP Basic client credentials.
pub(crate) fn token_list(shared: &Shared, headers: &HeaderMap, q: &Params) -> Reply {
    if let Some(refused) = super::oauth::client_refused(shared, headers) {
        return refused;
    }
    match q.single("owner_type") {
        Ok(Some("district")) => {}
        _ => {
            return Reply::oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "owner_type must be district",
            )
        }
    }
    let data: Vec<Value> = shared
        .districts()
        .into_iter()
        .filter_map(|d| {
            let token = d.token?;
            Some(json!({
                "id": format!("{}70c0", &token[..20.min(token.len())]),
                "created": "2024-08-01T12:00:00.000Z",
                "owner": {"type": "district", "id": d.id},
                "access_token": token,
                "scopes": ["read:district_admins", "read:school_admins", "read:students",
                           "read:teachers", "read:sections"],
            }))
        })
        .collect();
    Reply::json(StatusCode::OK, &json!({ "data": data }))
        .header(http::header::CACHE_CONTROL, "no-store")
}

fn unauthorized() -> Reply {
    Reply::oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "missing, invalid or expired token",
    )
}

/// Who a bearer token speaks for.
pub(crate) enum Caller {
    District(SimDistrict),
    User(SimUser),
}

pub(crate) fn caller(shared: &Shared, headers: &HeaderMap) -> Option<Caller> {
    let token = bearer_token(headers)?;
    if let Some(d) = shared.district_by_token(&token) {
        return Some(Caller::District(d));
    }
    shared.token_user(&token).map(Caller::User)
}

/// `GET /{v}/districts/{id}`: the token's own district (a district-app token, or an SSO token
/// of a user in it); any other district is 404 with no body.
pub(crate) fn district(shared: &Shared, headers: &HeaderMap, version: Version, id: &str) -> Reply {
    let allowed = match caller(shared, headers) {
        None => return unauthorized(),
        Some(Caller::District(d)) => d.id == id,
        Some(Caller::User(u)) => u.in_district(id),
    };
    let Some(d) = shared.districts().into_iter().find(|d| d.id == id) else {
        return Reply::new(StatusCode::NOT_FOUND);
    };
    if !allowed {
        return Reply::new(StatusCode::NOT_FOUND);
    }
    let v = version.as_str();
    Reply::json(
        StatusCode::OK,
        &json!({
            "data": {
                "id": d.id,
                "name": d.name,
                "mdr_number": "0000000",
                "nces_id": null,
                "state": "CA",
                "login_methods": ["clever", "google"],
                "created": "2019-06-19T17:46:37.171Z",
                "last_modified": "2024-08-01T12:00:00.000Z",
            },
            "links": [{"rel": "self", "uri": format!("/{v}/districts/{}", d.id)}],
        }),
    )
}

/// The district whose token may read rosters, or the refusal.
fn roster_district(shared: &Shared, headers: &HeaderMap) -> Result<SimDistrict, Reply> {
    match caller(shared, headers) {
        None => Err(unauthorized()),
        Some(Caller::District(d)) if d.secure_sync => Ok(d),
        // Not Secure Sync, or an SSO token: unshared.
        Some(_) => Err(Reply::new(StatusCode::NOT_FOUND)),
    }
}

/// `GET /v3.x/users/{id}/sections`: the user's sections, for a Secure Sync district's token.
pub(crate) fn user_sections(
    shared: &Shared,
    headers: &HeaderMap,
    q: &Params,
    version: Version,
    user_id: &str,
) -> Reply {
    let district = match roster_district(shared, headers) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let Some(user) = shared.user(user_id).filter(|u| u.in_district(&district.id)) else {
        return Reply::new(StatusCode::NOT_FOUND);
    };
    let ids = sections_of(user);
    let path = format!("/{}/users/{}/sections", version.as_str(), user.id);
    page(shared, q, &path, &district.id, ids)
}

/// `GET /v3.x/sections`: every section of the token's (Secure Sync) district.
pub(crate) fn sections(
    shared: &Shared,
    headers: &HeaderMap,
    q: &Params,
    version: Version,
) -> Reply {
    let district = match roster_district(shared, headers) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let mut ids: Vec<String> = shared
        .users
        .iter()
        .filter(|u| u.in_district(&district.id))
        .flat_map(sections_of)
        .collect();
    ids.sort();
    ids.dedup();
    let path = format!("/{}/sections", version.as_str());
    page(shared, q, &path, &district.id, ids)
}

/// One page of `ids` (sorted): `limit` (default: the simulator's page limit, at most 10000)
/// after `starting_after`, with a `rel: next` link while more remain.
fn page(shared: &Shared, q: &Params, path: &str, district: &str, mut ids: Vec<String>) -> Reply {
    ids.sort();
    let limit = match q.single("limit") {
        Ok(None) => shared.page_limit(),
        Ok(Some(l)) => match l.parse::<usize>() {
            Ok(n) if (1..=10_000).contains(&n) => n,
            _ => {
                return Reply::json(
                    StatusCode::BAD_REQUEST,
                    &json!({"error": "limit must be between 1 and 10000"}),
                )
            }
        },
        Err(_) => return Reply::json(StatusCode::BAD_REQUEST, &json!({"error": "repeated limit"})),
    };
    let start = match q.single("starting_after") {
        Ok(None) => 0,
        Ok(Some(after)) => ids
            .iter()
            .position(|i| i == after)
            .map_or(ids.len(), |p| p + 1),
        Err(_) => {
            return Reply::json(
                StatusCode::BAD_REQUEST,
                &json!({"error": "repeated starting_after"}),
            )
        }
    };
    let chunk: Vec<&String> = ids.iter().skip(start).take(limit).collect();
    let data: Vec<Value> = chunk
        .iter()
        .map(|id| {
            json!({
                "data": {
                    "id": id,
                    "district": district,
                    "name": format!("Section {}", &id[id.len().saturating_sub(4)..]),
                    "subject": "math",
                },
                "uri": format!("/v3.0/sections/{id}"),
            })
        })
        .collect();
    let mut links = vec![json!({"rel": "self", "uri": path})];
    if start + chunk.len() < ids.len() {
        if let Some(last) = chunk.last() {
            links.push(json!({
                "rel": "next",
                "uri": format!("{path}?limit={limit}&starting_after={last}"),
            }));
        }
    }
    Reply::json(StatusCode::OK, &json!({ "data": data, "links": links }))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::sim::testutil::*;
    use crate::sim::Endpoint;

    async fn get(sim: &crate::sim::SimHandle, path: &str, token: &str) -> (u16, Value) {
        let resp = api_get(sim, path, token).await;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn token_list_needs_client_credentials_and_lists_authorized_districts() {
        let sim = start().await;
        let url = format!("{}?owner_type=district", sim.token_url());
        let resp = client()
            .get(&url)
            .basic_auth(sim.client_id(), Some(sim.client_secret()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data[0]["owner"]["type"], "district");
        assert_eq!(data[0]["owner"]["id"], DEMO_DISTRICT);
        assert_eq!(
            data[0]["access_token"],
            sim.district_token(DEMO_DISTRICT).unwrap()
        );
        assert_eq!(data[0]["access_token"].as_str().unwrap().len(), 40);
        let bad = client()
            .get(&url)
            .basic_auth(sim.client_id(), Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 401);
        let v: Value = bad.json().await.unwrap();
        assert_eq!(v["error"], "invalid_client");
        sim.revoke_district_token(DEMO_DISTRICT_2);
        let body: Value = client()
            .get(&url)
            .basic_auth(sim.client_id(), Some(sim.client_secret()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["data"].as_array().unwrap().len(), 1);
        assert_eq!(sim.calls(Endpoint::DistrictTokens), 3);
        // A token POST is still the code exchange.
        assert_eq!(sim.calls(Endpoint::Tokens), 0);
    }

    #[tokio::test]
    async fn district_answers_its_own_token_404_for_another_401_when_revoked() {
        let sim = start().await;
        let t1 = sim.district_token(DEMO_DISTRICT).unwrap();
        let (s, v) = get(&sim, &format!("/v3.0/districts/{DEMO_DISTRICT}"), &t1).await;
        assert_eq!(s, 200);
        assert_eq!(v["data"]["name"], "Demo Unified School District");
        let (s, v) = get(&sim, &format!("/v3.0/districts/{DEMO_DISTRICT_2}"), &t1).await;
        assert_eq!((s, v), (404, Value::Null));
        sim.revoke_district_token(DEMO_DISTRICT);
        let (s, _) = get(&sim, &format!("/v3.0/districts/{DEMO_DISTRICT}"), &t1).await;
        assert_eq!(s, 401);
        let fresh = sim.authorize_district(DEMO_DISTRICT).unwrap();
        assert_ne!(fresh, t1);
        let (s, _) = get(&sim, &format!("/v3.1/districts/{DEMO_DISTRICT}"), &fresh).await;
        assert_eq!(s, 200);
        // An SSO token reads its user's district.
        let sso = token_for(&sim, TEACHER).await;
        assert_eq!(
            get(&sim, &format!("/v3.0/districts/{DEMO_DISTRICT}"), &sso)
                .await
                .0,
            200
        );
    }

    #[tokio::test]
    async fn user_sections_page_by_next_links_for_secure_sync_only() {
        let sim = start().await;
        sim.set_page_limit(2);
        let token = sim.district_token(DEMO_DISTRICT).unwrap();
        let mut path = format!("/v3.0/users/{TEACHER}/sections");
        let mut ids = Vec::new();
        let mut pages = 0;
        loop {
            let (s, v) = get(&sim, &path, &token).await;
            assert_eq!(s, 200, "{path}");
            pages += 1;
            for item in v["data"].as_array().unwrap() {
                ids.push(item["data"]["id"].as_str().unwrap().to_string());
            }
            let next = v["links"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["rel"] == "next")
                .map(|l| l["uri"].as_str().unwrap().to_string());
            match next {
                Some(n) => path = n,
                None => break,
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(ids.len(), 5);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        // Another district's user, a non-Secure-Sync district, an SSO token: 404, no body.
        assert_eq!(
            get(&sim, &format!("/v3.0/users/{TEACHER_B}/sections"), &token).await,
            (404, Value::Null)
        );
        let t2 = sim.district_token(DEMO_DISTRICT_2).unwrap();
        assert_eq!(
            get(&sim, &format!("/v3.0/users/{TEACHER_B}/sections"), &t2)
                .await
                .0,
            404
        );
        let sso = token_for(&sim, TEACHER).await;
        assert_eq!(
            get(&sim, &format!("/v3.0/users/{TEACHER}/sections"), &sso)
                .await
                .0,
            404
        );
        assert_eq!(
            get(&sim, &format!("/v3.0/users/{TEACHER}/sections"), "nope")
                .await
                .0,
            401
        );
        sim.set_secure_sync(DEMO_DISTRICT_2, true);
        let (s, v) = get(&sim, "/v3.0/sections?limit=1", &t2).await;
        assert_eq!(s, 200);
        assert_eq!(v["data"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn api_answers_carry_rate_limit_headers_and_429_past_the_limit() {
        let sim = start().await;
        sim.set_rate_limit(3);
        let token = sim.district_token(DEMO_DISTRICT).unwrap();
        let path = format!("/v3.0/districts/{DEMO_DISTRICT}");
        for remaining in ["2", "1", "0"] {
            let r = api_get(&sim, &path, &token).await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["x-ratelimit-limit"], "3");
            assert_eq!(r.headers()["x-ratelimit-remaining"], remaining);
            assert_eq!(
                r.headers()["x-ratelimit-bucket"],
                format!("district:{DEMO_DISTRICT}").as_str()
            );
        }
        let r = api_get(&sim, &path, &token).await;
        assert_eq!(r.status(), 429);
        assert!(r.headers().contains_key("x-ratelimit-reset"));
        // The window resets after a minute on the simulator's clock.
        sim.advance_clock(std::time::Duration::from_secs(61));
        assert_eq!(api_get(&sim, &path, &token).await.status(), 200);
    }

    #[tokio::test]
    async fn rate_limited_times_fault_clears_itself() {
        let sim = start().await;
        let token = sim.district_token(DEMO_DISTRICT).unwrap();
        sim.set_fault(
            Endpoint::Sections,
            Some(crate::sim::Fault::RateLimitedTimes(2)),
        );
        let path = format!("/v3.0/users/{TEACHER}/sections");
        for _ in 0..2 {
            let r = api_get(&sim, &path, &token).await;
            assert_eq!(r.status(), 429);
            assert!(r.headers().contains_key("x-ratelimit-reset"));
        }
        assert_eq!(api_get(&sim, &path, &token).await.status(), 200);
        assert_eq!(sim.calls(Endpoint::Sections), 3);
    }

    #[test]
    fn sections_of_teachers_and_students_only() {
        let users = crate::sim::demo_users();
        let count = |id: &str| sections_of(users.iter().find(|u| u.id == id).unwrap()).len();
        assert_eq!(count(TEACHER), 5);
        assert_eq!(count(STUDENT), 3);
        assert_eq!(count(STAFF), 0);
        assert_eq!(count(LIBRARY), 0, "no district");
        let ids = sections_of(users.iter().find(|u| u.id == TEACHER).unwrap());
        assert!(ids.iter().all(|i| crate::sim::web::is_object_id(i)));
    }

    #[test]
    fn sim_district_debug_hides_the_token() {
        let d = &demo_districts()[0];
        assert!(!format!("{d:?}").contains(d.token.as_deref().unwrap()));
    }
}
