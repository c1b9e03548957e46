//! The signed-in user's identity, user types, and the identity headers sent upstream.

use serde::{Deserialize, Serialize};

/// A Clever role. Order of the variants is the stable order used in headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserType {
    Student,
    Teacher,
    /// v3 `staff`; v2 `school_admin` is the same type.
    Staff,
    DistrictAdmin,
    Contact,
}

impl UserType {
    /// Parses a v2 or v3 role name (`school_admin` is `staff`).
    pub fn parse(s: &str) -> Option<UserType> {
        Some(match s {
            "student" => UserType::Student,
            "teacher" => UserType::Teacher,
            "staff" | "school_admin" => UserType::Staff,
            "district_admin" => UserType::DistrictAdmin,
            "contact" => UserType::Contact,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UserType::Student => "student",
            UserType::Teacher => "teacher",
            UserType::Staff => "staff",
            UserType::DistrictAdmin => "district_admin",
            UserType::Contact => "contact",
        }
    }
}

/// Who signed in, as Clever told us at login. Cached for the session's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub user_id: String,
    /// Absent for teacher-authorized (Library) logins.
    pub district_id: Option<String>,
    /// Every role of this login, sorted in the stable `UserType` order, no duplicates.
    pub user_types: Vec<UserType>,
    pub name: Option<String>,
    pub email: Option<String>,
    /// `district` or `teacher`, as Clever reports it.
    pub authorized_by: Option<String>,
    /// The user's schools (from the roles of `/users/{id}`), sorted, no duplicates; kept only
    /// when some upstream sends them. Absent in records written before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub school_ids: Vec<String>,
    /// The user's sections, read at login with the district's district-app token (Secure Sync
    /// districts only), sorted, no duplicates; empty when unknown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub section_ids: Vec<String>,
}

impl Identity {
    /// Sorts and de-duplicates the roles so headers and comparisons are stable.
    pub fn normalize(mut self) -> Self {
        self.user_types.sort();
        self.user_types.dedup();
        self
    }

    /// The `X-Clever-User-Type` value: every role, comma-separated, stable order.
    pub fn user_type_header(&self) -> String {
        let mut out = String::new();
        for (i, t) in self.user_types.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(t.as_str());
        }
        out
    }
}

/// At most this many school or section ids are kept per user (about 5 KB of header); Clever
/// lists beyond it are cut after sorting.
pub const MAX_IDS: usize = 200;

/// A list of ids as one header value: comma-separated, no spaces (`s1,s2`). Ids are checked
/// when parsed, so the value is always a valid header value.
pub fn id_list_header(ids: &[String]) -> String {
    ids.join(",")
}

/// Bytes that RFC 8187's `attr-char` allows unencoded; everything else is percent-encoded.
const RFC8187_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Renders a free-text value (name, email) for an HTTP header: printable ASCII as it is,
/// anything else as RFC 8187 `UTF-8''` followed by the percent-encoded UTF-8 bytes.
pub fn header_safe_value(value: &str) -> String {
    let plain = value.bytes().all(|b| (0x20..0x7f).contains(&b));
    if plain && !value.starts_with("UTF-8''") {
        value.to_string()
    } else {
        format!(
            "UTF-8''{}",
            percent_encoding::utf8_percent_encode(value, RFC8187_ENCODE)
        )
    }
}

/// Whether a request header name could carry identity and must be removed before anything
/// else: the whole `X-Clever-` prefix and every configured identity header name, compared
/// case-insensitively with `_` and `-` equal (`X_Clever_User_Id` is the same to a CGI app).
/// Runs on every request header: compares in place, without building the canonical name.
pub fn is_spoofable_identity_header(name: &str, configured: &[String]) -> bool {
    let name = name.as_bytes();
    const PREFIX: &[u8] = b"x-clever-";
    (name.len() >= PREFIX.len() && canonical_eq(&name[..PREFIX.len()], PREFIX))
        || configured.iter().any(|c| canonical_eq(name, c.as_bytes()))
}

/// Whether `name` equals the canonical name `canon` once lower-cased with `_` as `-`.
fn canonical_eq(name: &[u8], canon: &[u8]) -> bool {
    name.len() == canon.len()
        && name
            .iter()
            .zip(canon)
            .all(|(&n, &c)| canonical_byte(n) == c)
}

fn canonical_byte(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        b => b.to_ascii_lowercase(),
    }
}

/// Lower-cases a header name and maps `_` to `-`, the form CGI/PHP apps effectively see.
pub fn canonical_header_name(name: &str) -> String {
    name.bytes().map(|b| canonical_byte(b) as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_type_parse_school_admin_is_staff() {
        assert_eq!(UserType::parse("school_admin"), Some(UserType::Staff));
        assert_eq!(UserType::parse("staff"), Some(UserType::Staff));
        assert_eq!(UserType::parse("admin"), None);
    }

    #[test]
    fn user_type_header_multi_role_stable_order() {
        let id = Identity {
            user_id: "u".into(),
            district_id: None,
            user_types: vec![
                UserType::DistrictAdmin,
                UserType::Teacher,
                UserType::Teacher,
            ],
            name: None,
            email: None,
            authorized_by: None,
            school_ids: vec![],
            section_ids: vec![],
        }
        .normalize();
        assert_eq!(id.user_type_header(), "teacher,district_admin");
    }

    #[test]
    fn identity_record_without_enrichment_fields_still_reads() {
        // A session written before school_ids/section_ids existed (Redis, rolling upgrade).
        let old = r#"{"user_id":"u","district_id":"d","user_types":["teacher"],"name":null,"email":null,"authorized_by":"district"}"#;
        let id: Identity = serde_json::from_str(old).unwrap();
        assert!(id.school_ids.is_empty() && id.section_ids.is_empty());
        // Empty lists are not written, so older gateways read new records too.
        let back = serde_json::to_string(&id).unwrap();
        assert!(!back.contains("school_ids") && !back.contains("section_ids"));
        let with = Identity {
            school_ids: vec!["s1".into()],
            section_ids: vec!["c1".into(), "c2".into()],
            ..id
        };
        let round: Identity = serde_json::from_str(&serde_json::to_string(&with).unwrap()).unwrap();
        assert_eq!(round, with);
        assert_eq!(id_list_header(&round.section_ids), "c1,c2");
    }

    #[test]
    fn header_safe_value_ascii_unchanged() {
        assert_eq!(header_safe_value("Ada Lovelace"), "Ada Lovelace");
        assert_eq!(header_safe_value("a.b@example.org"), "a.b@example.org");
    }

    #[test]
    fn header_safe_value_non_ascii_rfc8187() {
        assert_eq!(header_safe_value("José"), "UTF-8''Jos%C3%A9");
    }

    #[test]
    fn header_safe_value_control_chars_encoded() {
        let v = header_safe_value("Eve\r\nX-Clever-User-Id: 1");
        assert!(v.starts_with("UTF-8''"));
        assert!(!v.contains('\r') && !v.contains('\n'));
    }

    #[test]
    fn spoofable_header_variants_detected() {
        let configured = vec!["x-school-user".to_string()];
        for name in [
            "X-Clever-User-Id",
            "x-clever-user-id",
            "X_Clever_User_Id",
            "X-CLEVER_district-id",
            "x-clever-anything",
            "X_School_User",
        ] {
            assert!(is_spoofable_identity_header(name, &configured), "{name}");
        }
        assert!(!is_spoofable_identity_header("X-Cleverness", &configured));
        assert!(!is_spoofable_identity_header("Accept", &configured));
    }
}
