//! Lenient parsing of Clever's JSON answers: `/oauth/tokens`, `/me`, and `/users/{id}` into
//! the user's record (every field of the identity field table whose source is in it).

use serde::Deserialize;
use serde_json::Value;

use crate::identity::fields::{Source, ROLE_ORDER};
use crate::identity::{Field, Identity, IdentityBuilder, UserType, FIELDS};
use crate::secret::Secret;

pub(crate) use crate::identity::valid_id;

/// The fields of `/me` the gateway uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeResponse {
    pub id: String,
    pub district: Option<String>,
    /// `data.type` (v2: the role; v3: `user`), falling back to the top-level `type`.
    pub kind: Option<String>,
    pub authorized_by: Option<String>,
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

/// A value as text: a string as it is, a whole number written out (Clever sends some numbers,
/// such as `graduation_year`, either way); anything else is no value.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// The user's roles in `/users/{id}`: `data.roles` keys whose value is an object (a role whose
/// value is `null`, as the v3.0 schema allows, is absent), in [`ROLE_ORDER`].
fn roles(data: &Value) -> Vec<(UserType, &Value)> {
    let Some(Value::Object(map)) = data.get("roles") else {
        return Vec::new();
    };
    let mut out: Vec<(UserType, &Value)> = map
        .iter()
        .filter(|(_, v)| v.is_object())
        .filter_map(|(k, v)| UserType::parse(k).map(|t| (t, v)))
        .collect();
    out.sort_by_key(|(t, _)| ROLE_ORDER.iter().position(|r| r == t));
    out
}

/// Parses `/users/{id}` (v3.0 and v3.1 shapes): the roles and every field of the table it
/// carries. Lenient: missing, `null` and unknown parts are no value; values are checked as
/// their field's kind requires ([`IdentityBuilder`]).
pub fn parse_user(body: &[u8]) -> Result<IdentityBuilder, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| "/users/{id} is not JSON".to_string())?;
    let data = v.get("data").ok_or("/users/{id} has no data")?;
    let roles = roles(data);
    let mut b = IdentityBuilder::default();
    for (t, _) in &roles {
        b.add_role(*t);
    }
    let in_roles = |path: &[&str]| roles.iter().find_map(|(_, r)| at(r, path).and_then(scalar));
    for d in FIELDS.iter() {
        let value = match d.source {
            Source::User(path) => at(data, path).and_then(scalar),
            Source::UserThenRole(path) => at(data, path)
                .and_then(scalar)
                .filter(|s| !s.trim().is_empty())
                .or_else(|| in_roles(path)),
            Source::Role(path) => in_roles(path),
            Source::District => at(data, &["district"]).and_then(scalar),
            Source::FullName => full_name(data.get("name")),
            Source::Schools => {
                b.set_ids(d.field, role_schools(data.get("roles")));
                continue;
            }
            Source::MeId
            | Source::MeAuthorizedBy
            | Source::Roles
            | Source::Sections
            | Source::Token => continue,
        };
        if let Some(value) = value {
            b.set(d.field, &value);
        }
    }
    Ok(b)
}

/// First, middle and last name, trimmed, the empty ones left out, joined by spaces.
fn full_name(name: Option<&Value>) -> Option<String> {
    let name = name?;
    let parts: Vec<&str> = ["first", "middle", "last"]
        .iter()
        .filter_map(|k| str_field(name, k))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The union of the schools of every role: each role's `school` and `schools`, in any role
/// (known or not). The builder sorts, de-duplicates and caps them, and drops ids that are not
/// id-like.
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
        Ok(self.record(IdentityBuilder::default().role(t)))
    }

    /// v3.x: the record from `/users/{id}`, with `/me`'s id, district and authorization; an
    /// old-style `/me` whose type is a role gives the role when `/users` lists none. The
    /// record may have no role (a limited answer): the caller decides.
    pub fn into_v3_identity(self, user: IdentityBuilder) -> Identity {
        let mut user = user;
        if !user.has(Field::UserType) {
            if let Some(t) = self.kind.as_deref().and_then(UserType::parse) {
                user.add_role(t);
            }
        }
        self.record(user)
    }

    /// `user` with `/me`'s id, district (else the record's) and authorization.
    fn record(self, mut user: IdentityBuilder) -> Identity {
        user.set(Field::Id, &self.id);
        if let Some(d) = &self.district {
            user.set(Field::DistrictId, d);
        }
        if let Some(a) = &self.authorized_by {
            user.set(Field::AuthorizedBy, a);
        }
        user.build()
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
        assert_eq!(id.user_types().collect::<Vec<_>>(), vec![UserType::Teacher]);
    }

    #[test]
    fn me_v2_school_admin_is_staff() {
        let body = br#"{"type":"school_admin","data":{"id":"58da8c63d7dc0ca068000478","type":"school_admin"}}"#;
        let id = parse_me(body).unwrap().into_v2_identity().unwrap();
        assert_eq!(id.user_types().collect::<Vec<_>>(), vec![UserType::Staff]);
    }

    #[test]
    fn me_hostile_ids_rejected() {
        assert!(parse_me(br#"{"data":{"id":"a\r\nX-Evil: 1"}}"#).is_err());
        assert!(parse_me(br#"{"data":{"id":""}}"#).is_err());
        assert!(parse_me(br#"{"data":{"id":"abc","district":"x y"}}"#).is_err());
    }

    fn me(id: &str) -> MeResponse {
        MeResponse {
            id: id.into(),
            district: None,
            kind: Some("user".into()),
            authorized_by: None,
        }
    }

    fn record(body: &str) -> Identity {
        me("5fc43758db087d0be186c29d").into_v3_identity(parse_user(body.as_bytes()).unwrap())
    }

    /// A v3.0 student as Clever's Data API shows it to a Secure Sync district's token.
    const STUDENT_V30: &str = r#"{"data":{
        "id":"5fc43758db087d0be186c29d","district":"5d0a9e5d0958b300014e49d2",
        "email":"jose.nunez@students.example-district.org",
        "name":{"first":"José","middle":"Luis","last":"Ñúñez"},
        "roles":{"student":{
            "credentials":{"district_username":"jnunez"},
            "dob":"1/2/2014","ell_status":"N","enrollments":[],"gender":"M","grade":"5",
            "graduation_year":"2032","hispanic_ethnicity":"Y","home_language":"Spanish",
            "legacy_id":"59d7c9c2e3a1b0000105e123","location":{"zip":"94110"},
            "school":"5d0a9e5d0958b3005c4e0001","schools":["5d0a9e5d0958b3005c4e0001"],
            "sis_id":"S-100234","state_id":"CA-881234","student_number":"100234",
            "unweighted_gpa":null,"ext":{"x":1}}},
        "created":"2021-08-02T15:04:05.000Z","last_modified":"2024-01-15T09:30:00.000Z"},
        "links":[{"rel":"self","uri":"/v3.0/users/5fc43758db087d0be186c29d"}]}"#;

    #[test]
    fn user_v30_student_every_field() {
        let id = record(STUDENT_V30);
        let want = [
            (Field::Id, "5fc43758db087d0be186c29d"),
            (Field::UserType, "student"),
            (Field::DistrictId, "5d0a9e5d0958b300014e49d2"),
            (Field::Email, "jose.nunez@students.example-district.org"),
            (Field::Name, "José Luis Ñúñez"),
            (Field::FirstName, "José"),
            (Field::MiddleName, "Luis"),
            (Field::LastName, "Ñúñez"),
            (Field::SisId, "S-100234"),
            (Field::StudentNumber, "100234"),
            (Field::StateId, "CA-881234"),
            (Field::DistrictUsername, "jnunez"),
            (Field::LegacyId, "59d7c9c2e3a1b0000105e123"),
            (Field::Grade, "5"),
            (Field::GraduationYear, "2032"),
            (Field::SchoolId, "5d0a9e5d0958b3005c4e0001"),
            (Field::SchoolIds, "5d0a9e5d0958b3005c4e0001"),
        ];
        for (f, v) in want {
            assert_eq!(id.get(f), Some(v), "{f:?}");
        }
        for f in [
            Field::TeacherNumber,
            Field::StaffId,
            Field::Title,
            Field::Department,
        ] {
            assert_eq!(id.get(f), None, "{f:?}");
        }
    }

    #[test]
    fn user_v31_multi_role_teacher_reads_roles_in_contract_order() {
        // v3.1 adds fields (preferred_name, …); district_admin listed first with a null value
        // (absent), staff present: role fields come from staff before teacher.
        let body = r#"{"data":{"id":"x","district":"5d0a9e5d0958b300014e49d2","email":null,
            "name":{"first":"Terry","middle":null,"last":"Nakamura"},"preferred_name":{"first":"T"},
            "roles":{"district_admin":null,
                "teacher":{"credentials":{"district_username":"tnakamura"},"sis_id":"T-77",
                    "teacher_number":"4410","state_id":"ST-1","title":"Math teacher",
                    "school":"5d0a9e5d0958b3005c4e0001","schools":["5d0a9e5d0958b3005c4e0001"],
                    "legacy_id":"old-t"},
                "staff":{"staff_id":"E-9","title":"Principal","department":"Admin",
                    "roles":["principal"],"schools":["5d0a9e5d0958b3005c4e0002"],
                    "credentials":{"district_username":"terry.n"}},
                "librarian":{"x":1}},
            "created":"2021","unknown":{"deep":[1,2]}}}"#;
        let id = record(body);
        assert_eq!(
            id.get(Field::UserType),
            Some("teacher,staff"),
            "null role absent, unknown ignored"
        );
        assert_eq!(id.get(Field::Email), None);
        assert_eq!(id.get(Field::Name), Some("Terry Nakamura"));
        assert_eq!(id.get(Field::MiddleName), None);
        assert_eq!(
            id.get(Field::Title),
            Some("Principal"),
            "staff before teacher"
        );
        assert_eq!(id.get(Field::DistrictUsername), Some("terry.n"));
        assert_eq!(id.get(Field::StaffId), Some("E-9"));
        assert_eq!(id.get(Field::Department), Some("Admin"));
        assert_eq!(id.get(Field::TeacherNumber), Some("4410"));
        assert_eq!(id.get(Field::SisId), Some("T-77"));
        assert_eq!(
            id.get(Field::SchoolId),
            Some("5d0a9e5d0958b3005c4e0001"),
            "staff has no school"
        );
        assert_eq!(
            id.get(Field::SchoolIds),
            Some("5d0a9e5d0958b3005c4e0001,5d0a9e5d0958b3005c4e0002")
        );
    }

    #[test]
    fn user_contact_with_a_last_only_name_and_no_email() {
        let body = r#"{"data":{"id":"x","name":{"first":null,"middle":"","last":"The Brooks Family"},
            "roles":{"contact":{"sis_id":"C-5","phone":"555-0100","phone_type":"Cell",
                "student_relationships":[{"student":"5fc43758db087d0be186c29d","relationship":"Parent","type":"family"}]}}}}"#;
        let id = record(body);
        assert_eq!(id.get(Field::UserType), Some("contact"));
        assert_eq!(id.get(Field::Name), Some("The Brooks Family"));
        assert_eq!(id.get(Field::FirstName), None);
        assert_eq!(id.get(Field::LastName), Some("The Brooks Family"));
        assert_eq!(id.get(Field::Email), None);
        assert_eq!(id.get(Field::SisId), Some("C-5"));
    }

    #[test]
    fn user_limited_view_has_names_and_email_only() {
        // The District SSO tier: the sign-in token sees the id, names and email.
        let body =
            r#"{"data":{"id":"x","email":"sam@x.org","name":{"first":"Sam","last":"Okonkwo"}}}"#;
        let id = record(body);
        assert_eq!(
            id.get(Field::UserType),
            None,
            "no roles: the caller decides"
        );
        assert_eq!(id.get(Field::FirstName), Some("Sam"));
        assert_eq!(id.get(Field::Email), Some("sam@x.org"));
        assert_eq!(id.get(Field::StudentNumber), None);
    }

    #[test]
    fn user_numbers_role_email_and_odd_values() {
        let body = r#"{"data":{"id":"x","email":"","roles":{"student":{"graduation_year":2031,
            "grade":5.5,"student_number":"  ","sis_id":true,"email":"kid@school.org",
            "credentials":{"district_username":"a\r\nX-Evil: 1"}}}}}"#;
        let id = record(body);
        assert_eq!(id.get(Field::GraduationYear), Some("2031"));
        assert_eq!(id.get(Field::Grade), None, "not a whole number");
        assert_eq!(id.get(Field::StudentNumber), None, "blank");
        assert_eq!(id.get(Field::SisId), None, "not text");
        assert_eq!(
            id.get(Field::Email),
            Some("kid@school.org"),
            "the role's email"
        );
        // Kept as Clever wrote it; rendering makes it header-safe.
        assert_eq!(id.get(Field::DistrictUsername), Some("a\r\nX-Evil: 1"));
    }

    #[test]
    fn user_roles_keys_multi_role_sorted() {
        let body = br#"{"data":{"id":"x","roles":{"district_admin":{},"teacher":{"credentials":{}}},"name":{"first":"Ada","middle":"","last":"Lovelace"},"email":null}}"#;
        let id = me("x").into_v3_identity(parse_user(body).unwrap());
        assert_eq!(
            id.user_types().collect::<Vec<_>>(),
            vec![UserType::Teacher, UserType::DistrictAdmin]
        );
        assert_eq!(id.get(Field::Name), Some("Ada Lovelace"));
        assert_eq!(id.get(Field::Email), None);
    }

    #[test]
    fn user_schools_are_the_union_of_every_role_sorted() {
        let body = br#"{"data":{"id":"x","roles":{"teacher":{"schools":["s2","s1"],"school":"s2"},"student":{"school":"s3","schools":["s3"]},"district_admin":{}}}}"#;
        let id = me("x").into_v3_identity(parse_user(body).unwrap());
        assert_eq!(id.get(Field::SchoolIds), Some("s1,s2,s3"));
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
            let id = me("x").into_v3_identity(parse_user(body).unwrap());
            assert_eq!(id.get(Field::SchoolIds), None);
        }
        let body =
            br#"{"data":{"roles":{"staff":{"schools":["ok1","a\r\nX-Evil: 1","", "b c"]}}}}"#;
        let id = me("x").into_v3_identity(parse_user(body).unwrap());
        assert_eq!(id.get(Field::SchoolIds), Some("ok1"));
    }

    #[test]
    fn user_schools_are_capped() {
        let many: Vec<String> = (0..300).map(|i| format!("\"s{i:03}\"")).collect();
        let body = format!(
            r#"{{"data":{{"roles":{{"staff":{{"schools":[{}]}}}}}}}}"#,
            many.join(",")
        );
        let id = me("x").into_v3_identity(parse_user(body.as_bytes()).unwrap());
        let schools: Vec<&str> = id.ids(Field::SchoolIds).collect();
        assert_eq!(schools.len(), crate::identity::MAX_IDS);
        assert_eq!(schools[0], "s000");
    }

    #[test]
    fn user_without_roles_takes_an_old_style_me_type_or_none() {
        let u = || parse_user(br#"{"data":{"roles":{}}}"#).unwrap();
        assert!(me("x").into_v3_identity(u()).roles().is_empty());
        let old = MeResponse {
            kind: Some("teacher".into()),
            ..me("x")
        };
        assert_eq!(old.into_v3_identity(u()).user_type_header(), "teacher");
    }
}
