//! Lenient parsing of Clever's JSON answers: `/oauth/tokens`, `/me`, `/users/{id}` (roles,
//! name, email, schools).

use serde::Deserialize;
use serde_json::Value;

use crate::identity::{Identity, UserType};
use crate::secret::Secret;

/// The fields of `/me` the gateway uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeResponse {
    pub id: String,
    pub district: Option<String>,
    /// `data.type` (v2: the role; v3: `user`), falling back to the top-level `type`.
    pub kind: Option<String>,
    pub authorized_by: Option<String>,
}

/// The fields of `/users/{id}` the gateway uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserDetails {
    pub roles: Vec<UserType>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub district: Option<String>,
    /// Every school of every role (`school` and `schools`), sorted, no duplicates.
    pub schools: Vec<String>,
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: Option<String>,
    #[allow(dead_code)]
    token_type: Option<String>,
}

/// `{"access_token": "il…"}`; `token_type` may be absent.
pub fn parse_token_response(body: &[u8]) -> Result<Secret, String> {
    let t: TokenBody =
        serde_json::from_slice(body).map_err(|_| "token response is not JSON".to_string())?;
    match t.access_token {
        Some(tok) if !tok.is_empty() && tok.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Secret::new(tok))
        }
        _ => Err("token response has no usable access_token".into()),
    }
}

/// Clever ids are 24 hex chars; accept any short id-like string, refuse anything that could
/// be unsafe in a header.
pub(crate) fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Parses `/me` (v2 or v3 envelope, with or without `links`).
pub fn parse_me(body: &[u8]) -> Result<MeResponse, String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "/me is not JSON".to_string())?;
    let data = v.get("data").ok_or("/me has no data")?;
    let id = str_field(data, "id").ok_or("/me has no data.id")?;
    if !valid_id(id) {
        return Err("/me data.id is not an id".into());
    }
    let district = match str_field(data, "district") {
        Some(d) if valid_id(d) => Some(d.to_string()),
        Some(_) => return Err("/me data.district is not an id".into()),
        None => None,
    };
    Ok(MeResponse {
        id: id.to_string(),
        district,
        kind: str_field(data, "type")
            .or_else(|| str_field(&v, "type"))
            .map(str::to_string),
        authorized_by: str_field(data, "authorized_by").map(str::to_string),
    })
}

/// Parses `/users/{id}`: `data.roles` is an object whose keys are the roles.
pub fn parse_user(body: &[u8]) -> Result<UserDetails, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| "/users/{id} is not JSON".to_string())?;
    let data = v.get("data").ok_or("/users/{id} has no data")?;
    let roles = match data.get("roles") {
        Some(Value::Object(m)) => m.keys().filter_map(|k| UserType::parse(k)).collect(),
        _ => Vec::new(),
    };
    let name = data.get("name").and_then(|n| {
        let parts: Vec<&str> = ["first", "middle", "last"]
            .iter()
            .filter_map(|k| str_field(n, k))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    let email = str_field(data, "email")
        .filter(|e| !e.is_empty())
        .map(str::to_string);
    let district = str_field(data, "district")
        .filter(|d| valid_id(d))
        .map(str::to_string);
    Ok(UserDetails {
        roles,
        name,
        email,
        district,
        schools: role_schools(data.get("roles")),
    })
}

/// The union of the schools of every role: each role's `school` and `schools`, in any role
/// (known or not). Sorted and de-duplicated so the header is stable whatever order Clever
/// lists them in, at most [`crate::identity::MAX_IDS`]; ids that are not id-like are dropped.
pub fn role_schools(roles: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let Some(Value::Object(roles)) = roles else {
        return out;
    };
    for role in roles.values() {
        if let Some(s) = str_field(role, "school") {
            out.push(s.to_string());
        }
        if let Some(Value::Array(list)) = role.get("schools") {
            out.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
        }
    }
    out.retain(|s| valid_id(s));
    out.sort();
    out.dedup();
    out.truncate(crate::identity::MAX_IDS);
    out
}

impl MeResponse {
    /// v2.x: the role is `/me`'s type.
    pub fn into_v2_identity(self) -> Result<Identity, String> {
        let t = self
            .kind
            .as_deref()
            .and_then(UserType::parse)
            .ok_or("/me has no known user type")?;
        Ok(Identity {
            user_id: self.id,
            district_id: self.district,
            user_types: vec![t],
            name: None,
            email: None,
            authorized_by: self.authorized_by,
            school_ids: Vec::new(),
            section_ids: Vec::new(),
        }
        .normalize())
    }

    /// v3.x: roles, name and email from `/users/{id}`; an old-style `/me` whose type is a
    /// role is accepted when `/users` lists none.
    pub fn into_v3_identity(self, user: UserDetails) -> Result<Identity, String> {
        let mut roles = user.roles;
        if roles.is_empty() {
            if let Some(t) = self.kind.as_deref().and_then(UserType::parse) {
                roles.push(t);
            }
        }
        if roles.is_empty() {
            return Err("the user has no known role".into());
        }
        Ok(Identity {
            user_id: self.id,
            district_id: self.district.or(user.district),
            user_types: roles,
            name: user.name,
            email: user.email,
            authorized_by: self.authorized_by,
            school_ids: user.schools,
            section_ids: Vec::new(),
        }
        .normalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_response_without_token_type_accepted() {
        let t = parse_token_response(br#"{"access_token":"il3jsfUI2131da2f"}"#).unwrap();
        assert_eq!(t.expose(), "il3jsfUI2131da2f");
        let t = parse_token_response(br#"{"access_token":"ilX","token_type":"bearer"}"#).unwrap();
        assert_eq!(t.expose(), "ilX");
    }

    #[test]
    fn token_response_missing_or_garbage_rejected() {
        assert!(parse_token_response(b"{}").is_err());
        assert!(parse_token_response(b"<html>").is_err());
        assert!(parse_token_response(br#"{"access_token":"a b"}"#).is_err());
    }

    #[test]
    fn me_v3_shape_parsed() {
        let body = br#"{"type":"user","data":{"id":"5fc43758db087d0be186c29d","district":"5d0a9e5d0958b300014e49d2","type":"user","authorized_by":"district"},"links":[{"rel":"self","uri":"/me"}]}"#;
        let me = parse_me(body).unwrap();
        assert_eq!(me.id, "5fc43758db087d0be186c29d");
        assert_eq!(me.district.as_deref(), Some("5d0a9e5d0958b300014e49d2"));
        assert_eq!(me.kind.as_deref(), Some("user"));
    }

    #[test]
    fn me_old_shape_without_links_gives_v2_type() {
        let body = br#"{"data":{"id":"58da8c63d7dc0ca068000478","district":"5d0a9e5d0958b300014e49d2","type":"teacher"}}"#;
        let id = parse_me(body).unwrap().into_v2_identity().unwrap();
        assert_eq!(id.user_types, vec![UserType::Teacher]);
    }

    #[test]
    fn me_v2_school_admin_is_staff() {
        let body = br#"{"type":"school_admin","data":{"id":"58da8c63d7dc0ca068000478","type":"school_admin"}}"#;
        let id = parse_me(body).unwrap().into_v2_identity().unwrap();
        assert_eq!(id.user_types, vec![UserType::Staff]);
    }

    #[test]
    fn me_hostile_ids_rejected() {
        assert!(parse_me(br#"{"data":{"id":"a\r\nX-Evil: 1"}}"#).is_err());
        assert!(parse_me(br#"{"data":{"id":""}}"#).is_err());
        assert!(parse_me(br#"{"data":{"id":"abc","district":"x y"}}"#).is_err());
    }

    #[test]
    fn user_roles_keys_multi_role_sorted() {
        let body = br#"{"data":{"id":"x","roles":{"district_admin":{},"teacher":{"credentials":{}}},"name":{"first":"Ada","middle":"","last":"Lovelace"},"email":null}}"#;
        let u = parse_user(body).unwrap();
        let me = MeResponse {
            id: "x".into(),
            district: None,
            kind: Some("user".into()),
            authorized_by: None,
        };
        let id = me.into_v3_identity(u).unwrap();
        assert_eq!(
            id.user_types,
            vec![UserType::Teacher, UserType::DistrictAdmin]
        );
        assert_eq!(id.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(id.email, None);
    }

    #[test]
    fn user_schools_are_the_union_of_every_role_sorted() {
        let body = br#"{"data":{"id":"x","roles":{"teacher":{"schools":["s2","s1"],"school":"s2"},"student":{"school":"s3","schools":["s3"]},"district_admin":{}}}}"#;
        let u = parse_user(body).unwrap();
        assert_eq!(u.schools, vec!["s1", "s2", "s3"]);
        let me = MeResponse {
            id: "x".into(),
            district: None,
            kind: Some("user".into()),
            authorized_by: None,
        };
        assert_eq!(
            me.into_v3_identity(u).unwrap().school_ids,
            vec!["s1", "s2", "s3"]
        );
    }

    #[test]
    fn user_schools_lenient_and_never_unsafe() {
        for body in [
            &br#"{"data":{"roles":{}}}"#[..],
            br#"{"data":{"roles":[]}}"#,
            br#"{"data":{}}"#,
            br#"{"data":{"roles":{"teacher":{"schools":"s1"}}}}"#,
            br#"{"data":{"roles":{"teacher":{"schools":[1,null,{}]}}}}"#,
        ] {
            assert!(parse_user(body).unwrap().schools.is_empty());
        }
        let body =
            br#"{"data":{"roles":{"staff":{"schools":["ok1","a\r\nX-Evil: 1","", "b c"]}}}}"#;
        assert_eq!(parse_user(body).unwrap().schools, vec!["ok1"]);
    }

    #[test]
    fn user_schools_are_capped() {
        let many: Vec<String> = (0..300).map(|i| format!("\"s{i:03}\"")).collect();
        let body = format!(
            r#"{{"data":{{"roles":{{"staff":{{"schools":[{}]}}}}}}}}"#,
            many.join(",")
        );
        let schools = parse_user(body.as_bytes()).unwrap().schools;
        assert_eq!(schools.len(), crate::identity::MAX_IDS);
        assert_eq!(schools[0], "s000");
    }

    #[test]
    fn user_without_roles_and_v3_type_user_is_error() {
        let u = parse_user(br#"{"data":{"roles":{}}}"#).unwrap();
        let me = MeResponse {
            id: "x".into(),
            district: None,
            kind: Some("user".into()),
            authorized_by: None,
        };
        assert!(me.into_v3_identity(u).is_err());
    }
}
