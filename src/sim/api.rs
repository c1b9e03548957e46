//! Clever's identity API for SSO bearer tokens: `/v{2.0,2.1,3.0,3.1}/me`,
//! `/v{3.0,3.1}/users/{id}` (the token's own user; any user of a Secure Sync district for its
//! district-app token) and `/userinfo`.

use http::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};

use super::districts::{caller, Caller, UserView};
use super::state::Shared;
use super::users::{RoleRecord, SimUser};
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

/// `GET /{version}/users/{id}`. A sign-in token reads its own user only: the whole record, or
/// in a district on Clever's District SSO tier ([`UserView::NamesOnly`]) the names, email and
/// id, with each role's key kept but empty (so the user's type is still known; Clever's pages
/// do not say, this is the simulator's choice). A district-app token reads any user of its
/// district in full when the district has Secure Sync. Anything else is 404 with no body
/// (Clever's "unshared resource or wrong token type").
pub(crate) fn user(shared: &Shared, headers: &HeaderMap, version: Version, id: &str) -> Reply {
    let (user, full) = match caller(shared, headers) {
        None => return unauthorized(),
        Some(Caller::User(u)) if u.id == id => {
            let view = u
                .district
                .as_deref()
                .and_then(|d| shared.with_district(d, |d| d.sso_view))
                .unwrap_or(UserView::Full);
            (u, view == UserView::Full)
        }
        Some(Caller::District(d)) if d.secure_sync => {
            match shared.user(id).filter(|u| u.in_district(&d.id)) {
                Some(u) => (u.clone(), true),
                None => return Reply::new(StatusCode::NOT_FOUND),
            }
        }
        Some(_) => return Reply::new(StatusCode::NOT_FOUND),
    };
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
    let roles = if full {
        roles(shared, &user, version)
    } else {
        let keys = user.role_types().into_iter();
        Value::Object(keys.map(|k| (k.as_str().into(), json!({}))).collect())
    };
    data.insert("roles".into(), roles);
    if full {
        data.insert("created".into(), "2021-08-02T15:04:05.000Z".into());
        data.insert("last_modified".into(), "2024-01-15T09:30:00.000Z".into());
    }
    Reply::json(
        StatusCode::OK,
        &json!({
            "data": data,
            "links": [{"rel": "self", "uri": format!("/{}/users/{}", version.as_str(), user.id)}],
        }),
    )
}

/// The `roles` object: one key per role, each with the fields Clever's schema gives that role
/// (a null role stays `null`).
fn roles(shared: &Shared, user: &SimUser, version: Version) -> Value {
    let roles = user.roles.iter().map(|role| {
        let value = match &role.record {
            Some(record) => role_json(shared, user, role.kind, record, version),
            None => Value::Null,
        };
        (role.kind.as_str().to_string(), value)
    });
    Value::Object(roles.collect())
}

/// One role's record. Schools: students and teachers have their district's school as `school`
/// and `schools`; staff work at two schools, listed second one first (Clever's order is not
/// sorted).
fn role_json(
    shared: &Shared,
    user: &SimUser,
    kind: UserType,
    r: &RoleRecord,
    version: Version,
) -> Value {
    let mut v = Map::new();
    let mut put = |key: &str, value: &Option<String>| {
        if let Some(value) = value {
            v.insert(key.into(), value.clone().into());
        }
    };
    put("sis_id", &r.sis_id);
    put("state_id", &r.state_id);
    put("legacy_id", &r.legacy_id);
    put("title", &r.title);
    match kind {
        UserType::Student => {
            put("student_number", &r.student_number);
            put("grade", &r.grade);
            put("graduation_year", &r.graduation_year);
            put("email", &user.email);
        }
        UserType::Teacher => put("teacher_number", &r.teacher_number),
        UserType::Staff => {
            put("staff_id", &r.staff_id);
            put("department", &r.department);
        }
        UserType::DistrictAdmin => {}
        UserType::Contact => put("phone", &r.phone),
    }
    if kind == UserType::Staff {
        v.insert("roles".into(), json!(r.job_roles));
    }
    if kind == UserType::Student && version == Version::V3_1 {
        // v3.1 adds fields to the student record; one of them, nullable.
        v.insert("preferred_name".into(), Value::Null);
    }
    if !matches!(kind, UserType::DistrictAdmin | UserType::Contact) {
        let mut credentials = Map::new();
        if let Some(u) = &r.district_username {
            credentials.insert("district_username".into(), u.clone().into());
        }
        v.insert("credentials".into(), credentials.into());
    }
    let district = user.district.as_deref();
    match kind {
        UserType::Student | UserType::Teacher => {
            if let Some(s) = district.map(school_of) {
                v.insert("school".into(), s.clone().into());
                v.insert("schools".into(), json!([s]));
            }
        }
        UserType::Staff => {
            let schools = district.map(|d| vec![second_school_of(d), school_of(d)]);
            v.insert("schools".into(), json!(schools.unwrap_or_default()));
        }
        UserType::Contact => {
            let students: Vec<Value> = shared
                .users
                .iter()
                .filter(|s| s.role(UserType::Student).is_some() && s.district == user.district)
                .take(1)
                .map(|s| json!({"student": s.id, "relationship": "Parent", "type": "family"}))
                .collect();
            v.insert("student_relationships".into(), students.into());
        }
        UserType::DistrictAdmin => {}
    }
    Value::Object(v)
}

/// `GET /userinfo` (OIDC-style, Clever's shape): `sub` is the multi-role user id, `user_id`
/// the id of this login's account, `user_type` its role (the first, in v3 naming), `name` an
/// object, `email_verified` always false.
pub(crate) fn userinfo(shared: &Shared, headers: &HeaderMap) -> Reply {
    let user = match authenticate(shared, headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let mut info = Map::new();
    info.insert("sub".into(), user.multi_role_user_id.clone().into());
    info.insert("user_id".into(), user.id.clone().into());
    info.insert(
        "user_type".into(),
        user.role_types()
            .first()
            .map(|r| r.as_str())
            .unwrap_or("user")
            .into(),
    );
    if let Some(d) = &user.district {
        info.insert("district".into(), d.clone().into());
        info.insert("district_id".into(), d.clone().into());
    }
    info.insert("authorized_by".into(), user.authorized_by.clone().into());
    info.insert("email".into(), user.email.clone().into());
    info.insert("email_verified".into(), false.into());
    info.insert(
        "name".into(),
        json!({"first": user.first, "middle": user.middle, "last": user.last}),
    );
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
    async fn userinfo_has_clevers_shape() {
        let sim = start().await;
        let token = token_for(&sim, STUDENT).await;
        let body = get_json(&sim, "/userinfo", &token).await;
        let multi = sim.users().iter().find(|u| u.id == STUDENT).unwrap();
        // `sub` is the multi-role user id, not the id of this login's account.
        assert_eq!(body["sub"], multi.multi_role_user_id.as_str());
        assert_ne!(body["sub"], STUDENT);
        assert_eq!(body["user_id"], STUDENT);
        assert_eq!(body["user_type"], "student");
        assert_eq!(body["district_id"], DEMO_DISTRICT);
        assert_eq!(body["district"], DEMO_DISTRICT);
        assert_eq!(body["authorized_by"], "district");
        assert_eq!(body["email"], "jose.nunez@students.example-district.org");
        assert_eq!(body["email_verified"], false);
        assert_eq!(
            body["name"],
            json!({"first": "José", "middle": "Luis", "last": "Ñúñez"})
        );
        assert_eq!(body["given_name"], "José");
        assert_eq!(body["family_name"], "Ñúñez");
        assert!(body["schools"].is_array());
        // A contact with only a last name: the missing parts are null.
        let token = token_for(&sim, CONTACT).await;
        let body = get_json(&sim, "/userinfo", &token).await;
        assert_eq!(
            body["name"],
            json!({"first": null, "middle": null, "last": "Casey Brooks"})
        );
        assert!(body["given_name"].is_null());
    }

    #[tokio::test]
    async fn users_carry_each_roles_record() {
        let sim = start().await;
        let read = |id: &'static str| {
            let sim = &sim;
            async move {
                let token = token_for(sim, id).await;
                get_json(sim, &format!("/v3.0/users/{id}"), &token).await["data"].clone()
            }
        };
        let student = read(STUDENT).await;
        let s = &student["roles"]["student"];
        assert_eq!(s["student_number"], "100234");
        assert_eq!(s["sis_id"], "S100234");
        assert_eq!(s["state_id"], "CA5510023");
        assert_eq!(s["graduation_year"], "2033");
        assert_eq!(s["credentials"]["district_username"], "jnunez");
        assert_eq!(s["email"], student["email"]);
        assert!(s["legacy_id"].is_string() && s["school"].is_string());
        // A kindergartner without an email.
        let young = read(STUDENT_NO_EMAIL).await;
        assert!(young["email"].is_null());
        assert_eq!(young["roles"]["student"]["grade"], "K");
        // A teacher whose credentials carry no district username.
        let teacher = read(TEACHER).await;
        let t = &teacher["roles"]["teacher"];
        assert_eq!(t["teacher_number"], "2001");
        assert_eq!(t["credentials"], json!({}));
        assert!(t.get("student_number").is_none());
        // Staff: staff_id, department, job roles, two schools.
        let staff = read(STAFF).await;
        let st = &staff["roles"]["staff"];
        assert_eq!(st["staff_id"], "ST3001");
        assert_eq!(st["department"], "Administration");
        assert_eq!(st["roles"], json!(["Principal", "Counselor"]));
        assert_eq!(st["schools"].as_array().unwrap().len(), 2);
        // A contact: the whole name in `last`, a student relationship, no credentials.
        let contact = read(CONTACT).await;
        assert_eq!(
            contact["name"],
            json!({"first": null, "last": "Casey Brooks"})
        );
        let c = &contact["roles"]["contact"];
        assert_eq!(c["student_relationships"][0]["student"], STUDENT);
        assert_eq!(c["phone"], "555-0100");
        assert!(c.get("credentials").is_none());
        // A null role is answered as null.
        let nulled = read(NULL_ROLE).await;
        assert!(nulled["roles"]["staff"].is_null());
        assert!(nulled["roles"]["teacher"].is_object());
    }

    #[tokio::test]
    async fn users_v31_adds_fields() {
        let sim = start().await;
        let token = token_for(&sim, STUDENT).await;
        let v30 = get_json(&sim, &format!("/v3.0/users/{STUDENT}"), &token).await;
        let v31 = get_json(&sim, &format!("/v3.1/users/{STUDENT}"), &token).await;
        assert!(v30["data"]["roles"]["student"]
            .get("preferred_name")
            .is_none());
        assert!(v31["data"]["roles"]["student"]["preferred_name"].is_null());
    }

    #[tokio::test]
    async fn users_sso_tier_shows_names_only_district_token_reads_whole_record() {
        use crate::sim::{UserView, DEMO_DISTRICT_2};
        let sim = start().await;
        // District SSO tier (the second demo district): names, email, id, empty role keys.
        let token = token_for(&sim, TEACHER_B).await;
        let body = get_json(&sim, &format!("/v3.0/users/{TEACHER_B}"), &token).await;
        assert_eq!(body["data"]["roles"], json!({"teacher": {}}));
        assert_eq!(body["data"]["name"]["last"], "Okonkwo");
        assert!(body["data"]["email"].is_string());
        // Its district-app token cannot read users (no Secure Sync).
        let d2 = sim.district_token(DEMO_DISTRICT_2).unwrap();
        let resp = api_get(&sim, &format!("/v3.0/users/{TEACHER_B}"), &d2).await;
        assert_eq!(resp.status(), 404);
        // A Secure Sync district whose sign-in tokens see names only: its district-app token
        // reads the whole record of its own users, and of no one else.
        sim.set_sso_view(DEMO_DISTRICT, UserView::NamesOnly);
        let token = token_for(&sim, STUDENT).await;
        let limited = get_json(&sim, &format!("/v3.0/users/{STUDENT}"), &token).await;
        assert_eq!(limited["data"]["roles"], json!({"student": {}}));
        let d1 = sim.district_token(DEMO_DISTRICT).unwrap();
        let full = get_json(&sim, &format!("/v3.0/users/{STUDENT}"), &d1).await;
        assert_eq!(full["data"]["roles"]["student"]["student_number"], "100234");
        let resp = api_get(&sim, &format!("/v3.0/users/{TEACHER_B}"), &d1).await;
        assert_eq!(resp.status(), 404);
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
