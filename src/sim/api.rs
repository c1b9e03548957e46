//! Clever's identity API for SSO bearer tokens: `/v{2.0,2.1,3.0,3.1}/me`,
//! `/v{3.0,3.1}/users/{id}` (only the token's own user) and `/userinfo`.

use http::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};

use super::state::Shared;
use super::users::SimUser;
use super::web::{bearer_token, is_object_id, Reply};
use crate::identity::UserType;

/// An API version the simulator answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V2_0,
    V2_1,
    V3_0,
    V3_1,
}

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        Some(match s {
            "v2.0" => Version::V2_0,
            "v2.1" => Version::V2_1,
            "v3.0" => Version::V3_0,
            "v3.1" => Version::V3_1,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Version::V2_0 => "v2.0",
            Version::V2_1 => "v2.1",
            Version::V3_0 => "v3.0",
            Version::V3_1 => "v3.1",
        }
    }

    pub fn is_v3(self) -> bool {
        matches!(self, Version::V3_0 | Version::V3_1)
    }
}

fn unauthorized() -> Reply {
    Reply::oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "missing, invalid or expired token",
    )
    .header(http::header::WWW_AUTHENTICATE, "Bearer realm=\"clever\"")
}

fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<SimUser, Reply> {
    bearer_token(headers)
        .and_then(|t| shared.token_user(&t))
        .ok_or_else(unauthorized)
}

/// A stable school id for a district (the simulator has one school per district).
fn school_of(district: &str) -> String {
    if is_object_id(district) {
        format!("{}5c4e0001", &district[..16])
    } else {
        "5c4e00015c4e00015c4e0001".to_string()
    }
}

/// A second school of a district, where its staff also work.
fn second_school_of(district: &str) -> String {
    let first = school_of(district);
    format!("{}0002", &first[..first.len() - 4])
}

/// The first six characters of an id, for made-up SIS ids.
fn short_id(id: &str) -> String {
    id.chars().take(6).collect()
}

/// `GET /{version}/me`.
pub(crate) fn me(shared: &Shared, headers: &HeaderMap, version: Version) -> Reply {
    let user = match authenticate(shared, headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let v = version.as_str();
    let type_ = if version.is_v3() {
        "user"
    } else {
        user.v2_type.as_str()
    };
    let mut data = Map::new();
    data.insert("id".into(), user.id.clone().into());
    if let Some(d) = &user.district {
        data.insert("district".into(), d.clone().into());
    }
    data.insert("type".into(), type_.into());
    data.insert("authorized_by".into(), user.authorized_by.clone().into());
    let canonical = if version.is_v3() {
        format!("/{v}/users/{}", user.id)
    } else {
        format!("/{v}/{}s/{}", user.v2_type, user.id)
    };
    let mut links = vec![
        json!({"rel": "self", "uri": "/me"}),
        json!({"rel": "canonical", "uri": canonical}),
    ];
    if let Some(d) = &user.district {
        links.push(json!({"rel": "district", "uri": format!("/{v}/districts/{d}")}));
    }
    Reply::json(
        StatusCode::OK,
        &json!({"type": type_, "data": data, "links": links}),
    )
}

/// `GET /{version}/users/{id}`: only the token's own user; anything else is 404 with no body.
pub(crate) fn user(shared: &Shared, headers: &HeaderMap, version: Version, id: &str) -> Reply {
    let user = match authenticate(shared, headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if user.id != id {
        return Reply::new(StatusCode::NOT_FOUND);
    }
    let mut data = Map::new();
    data.insert("id".into(), user.id.clone().into());
    if let Some(d) = &user.district {
        data.insert("district".into(), d.clone().into());
    }
    data.insert("email".into(), user.email.clone().into());
    let mut name = Map::new();
    name.insert("first".into(), user.first.clone().into());
    if let Some(m) = &user.middle {
        name.insert("middle".into(), m.clone().into());
    }
    name.insert("last".into(), user.last.clone().into());
    data.insert("name".into(), name.into());
    data.insert("roles".into(), roles(shared, &user));
    data.insert("created".into(), "2021-08-02T15:04:05.000Z".into());
    data.insert("last_modified".into(), "2024-01-15T09:30:00.000Z".into());
    Reply::json(
        StatusCode::OK,
        &json!({
            "data": data,
            "links": [{"rel": "self", "uri": format!("/{}/users/{}", version.as_str(), user.id)}],
        }),
    )
}

/// The `roles` object: one key per role, each with a small, plausible value.
fn roles(shared: &Shared, user: &SimUser) -> Value {
    let credentials = json!({"district_username": user.username()});
    let school = user.district.as_deref().map(school_of);
    let mut roles = Map::new();
    for role in &user.roles {
        let value = match role {
            UserType::Student => {
                let mut v = json!({
                    "credentials": credentials,
                    "grade": "5",
                    "sis_id": format!("S{}", short_id(&user.id)),
                });
                if let Some(s) = &school {
                    v["school"] = s.clone().into();
                    v["schools"] = json!([s]);
                }
                v
            }
            UserType::Teacher => {
                let mut v = json!({
                    "credentials": credentials,
                    "sis_id": format!("T{}", short_id(&user.id)),
                });
                if let Some(s) = &school {
                    v["school"] = s.clone().into();
                    v["schools"] = json!([s]);
                }
                v
            }
            UserType::Staff => json!({
                "credentials": credentials,
                // Staff work at two schools, listed second one first (Clever's order is not
                // sorted).
                "schools": user.district.as_deref().map(|d| vec![second_school_of(d), school_of(d)]).unwrap_or_default(),
                "title": "Principal",
            }),
            UserType::DistrictAdmin => json!({
                "credentials": credentials,
                "title": "District administrator",
            }),
            UserType::Contact => {
                let students: Vec<Value> = shared
                    .users
                    .iter()
                    .filter(|s| s.roles.contains(&UserType::Student) && s.district == user.district)
                    .take(1)
                    .map(|s| json!({"student": s.id, "relationship": "Parent", "type": "family"}))
                    .collect();
                json!({"student_relationships": students})
            }
        };
        roles.insert(role.as_str().into(), value);
    }
    Value::Object(roles)
}

/// `GET /userinfo` (OIDC-style). `user_type` is the user's first role in v3 naming.
pub(crate) fn userinfo(shared: &Shared, headers: &HeaderMap) -> Reply {
    let user = match authenticate(shared, headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let mut info = Map::new();
    info.insert("sub".into(), user.id.clone().into());
    info.insert("user_id".into(), user.id.clone().into());
    info.insert(
        "user_type".into(),
        user.roles
            .first()
            .map(|r| r.as_str())
            .unwrap_or("user")
            .into(),
    );
    if let Some(d) = &user.district {
        info.insert("district_id".into(), d.clone().into());
    }
    info.insert("email".into(), user.email.clone().into());
    info.insert("name".into(), user.full_name().into());
    info.insert("given_name".into(), user.first.clone().into());
    info.insert("family_name".into(), user.last.clone().into());
    let schools: Vec<String> = user
        .district
        .as_deref()
        .map(school_of)
        .into_iter()
        .collect();
    info.insert("schools".into(), schools.into());
    Reply::json(StatusCode::OK, &Value::Object(info))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{json, Value};

    use crate::sim::testutil::*;
    use crate::sim::DEMO_DISTRICT;

    async fn get_json(sim: &crate::sim::SimHandle, path: &str, token: &str) -> Value {
        let resp = api_get(sim, path, token).await;
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.unwrap()
    }

    #[tokio::test]
    async fn me_v3_has_clever_shape() {
        let sim = start().await;
        let token = token_for(&sim, TEACHER).await;
        let body = get_json(&sim, "/v3.0/me", &token).await;
        assert_eq!(
            body,
            json!({
                "type": "user",
                "data": {"id": TEACHER, "district": DEMO_DISTRICT, "type": "user", "authorized_by": "district"},
                "links": [
                    {"rel": "self", "uri": "/me"},
                    {"rel": "canonical", "uri": format!("/v3.0/users/{TEACHER}")},
                    {"rel": "district", "uri": format!("/v3.0/districts/{DEMO_DISTRICT}")},
                ],
            })
        );
        let v31 = get_json(&sim, "/v3.1/me", &token).await;
        assert_eq!(v31["links"][1]["uri"], format!("/v3.1/users/{TEACHER}"));
    }

    #[tokio::test]
    async fn me_teacher_authorized_omits_district() {
        let sim = start().await;
        let token = token_for(&sim, LIBRARY).await;
        let body = get_json(&sim, "/v3.0/me", &token).await;
        assert_eq!(body["data"]["authorized_by"], "teacher");
        assert!(body["data"].get("district").is_none());
        assert_eq!(body["links"].as_array().unwrap().len(), 2);
        let user = get_json(&sim, &format!("/v3.0/users/{LIBRARY}"), &token).await;
        assert!(user["data"].get("district").is_none());
    }

    #[tokio::test]
    async fn me_v2_staff_type_school_admin() {
        let sim = start().await;
        let token = token_for(&sim, STAFF).await;
        for v in ["v2.0", "v2.1"] {
            let body = get_json(&sim, &format!("/{v}/me"), &token).await;
            assert_eq!(body["type"], "school_admin");
            assert_eq!(body["data"]["type"], "school_admin");
            assert_eq!(body["data"]["id"], STAFF);
        }
    }

    #[tokio::test]
    async fn users_multi_role_has_each_role_key() {
        let sim = start().await;
        let token = token_for(&sim, MULTI).await;
        let body = get_json(&sim, &format!("/v3.0/users/{MULTI}"), &token).await;
        let roles = body["data"]["roles"].as_object().unwrap();
        let mut keys: Vec<&str> = roles.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["district_admin", "teacher"]);
        assert!(roles["teacher"]["credentials"]["district_username"].is_string());
        assert_eq!(body["data"]["district"], DEMO_DISTRICT);
        // v3.1 answers the same.
        let v31 = get_json(&sim, &format!("/v3.1/users/{MULTI}"), &token).await;
        assert_eq!(v31["data"]["roles"], body["data"]["roles"]);
    }

    #[tokio::test]
    async fn users_name_utf8_and_null_email() {
        let sim = start().await;
        let token = token_for(&sim, STUDENT).await;
        let body = get_json(&sim, &format!("/v3.0/users/{STUDENT}"), &token).await;
        assert_eq!(
            body["data"]["name"],
            json!({"first": "José", "middle": "Luis", "last": "Ñúñez"})
        );
        assert_eq!(body["data"]["roles"]["student"]["grade"], "5");
        let token = token_for(&sim, CONTACT).await;
        let body = get_json(&sim, &format!("/v3.0/users/{CONTACT}"), &token).await;
        assert!(body["data"]["email"].is_null());
        assert!(body["data"]["roles"]["contact"].is_object());
    }

    #[tokio::test]
    async fn users_other_user_404_empty() {
        let sim = start().await;
        let token = token_for(&sim, TEACHER).await;
        for id in [STUDENT, "nope"] {
            let resp = api_get(&sim, &format!("/v3.0/users/{id}"), &token).await;
            assert_eq!(resp.status(), 404);
            assert!(resp.bytes().await.unwrap().is_empty());
        }
    }

    #[tokio::test]
    async fn userinfo_has_oidc_fields() {
        let sim = start().await;
        let token = token_for(&sim, STUDENT).await;
        let body = get_json(&sim, "/userinfo", &token).await;
        assert_eq!(body["sub"], STUDENT);
        assert_eq!(body["user_id"], STUDENT);
        assert_eq!(body["user_type"], "student");
        assert_eq!(body["district_id"], DEMO_DISTRICT);
        assert_eq!(body["email"], "jose.nunez@students.example-district.org");
        assert_eq!(body["name"], "José Ñúñez");
        assert_eq!(body["given_name"], "José");
        assert_eq!(body["family_name"], "Ñúñez");
        assert!(body["schools"].is_array());
    }

    #[tokio::test]
    async fn api_bad_or_missing_token_401() {
        let sim = start().await;
        for path in [
            "/v3.0/me",
            "/v2.1/me",
            &format!("/v3.0/users/{TEACHER}"),
            "/userinfo",
        ] {
            let resp = api_get(&sim, path, "ilnotatoken").await;
            assert_eq!(resp.status(), 401, "{path}");
            let body: Value = resp.json().await.unwrap();
            assert!(body["error"].is_string());
            let resp = client()
                .get(format!("{}{path}", sim.api_base()))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 401, "{path}");
        }
    }

    #[tokio::test]
    async fn api_token_expires_after_24h() {
        let sim = start().await;
        let token = token_for(&sim, TEACHER).await;
        sim.advance_clock(Duration::from_secs(23 * 3600));
        assert_eq!(api_get(&sim, "/v3.0/me", &token).await.status(), 200);
        sim.advance_clock(Duration::from_secs(3600));
        assert_eq!(api_get(&sim, "/v3.0/me", &token).await.status(), 401);
    }

    #[tokio::test]
    async fn api_unknown_path_404() {
        let sim = start().await;
        let token = token_for(&sim, TEACHER).await;
        for path in ["/v3.0/districts/x", "/v2.1/users/x", "/v9/me", "/nope"] {
            assert_eq!(api_get(&sim, path, &token).await.status(), 404, "{path}");
        }
    }
}
