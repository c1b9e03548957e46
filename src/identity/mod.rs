//! The signed-in user's identity: user types and role sets, the field table
//! ([`fields`]), the record a session keeps ([`record`]), the templates that build header values
//! from it ([`template`]), the header values rendered once per session ([`render`]), and which
//! request headers could carry identity and are scrubbed.

pub mod fields;
pub(crate) mod record;
pub(crate) mod render;
pub(crate) mod template;

use serde::{Deserialize, Serialize};

pub use fields::{Field, FieldSet, FIELDS};
pub use record::{valid_id, Identity, IdentityBuilder, CORE_FIELDS};
pub use render::Rendered;
pub use template::{Outcome, Template, ValueSpec};

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

    /// Every type, in the stable order.
    pub const ALL: [UserType; 5] = [
        UserType::Student,
        UserType::Teacher,
        UserType::Staff,
        UserType::DistrictAdmin,
        UserType::Contact,
    ];
}

/// A set of roles (bit `t` for `UserType` `t`): a user's roles, always in the stable order.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RoleSet(u8);

impl RoleSet {
    pub fn insert(&mut self, t: UserType) {
        self.0 |= 1 << t as u8;
    }

    pub fn contains(self, t: UserType) -> bool {
        self.0 & (1 << t as u8) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether any role of the set is in `types`.
    pub fn any_of(self, types: &[UserType]) -> bool {
        types.iter().any(|t| self.contains(*t))
    }

    /// The roles, in the stable order.
    pub fn iter(self) -> impl Iterator<Item = UserType> {
        UserType::ALL.into_iter().filter(move |t| self.contains(*t))
    }

    /// The `X-Clever-User-Type` value: every role, comma-separated, in the stable order.
    pub fn header(self) -> String {
        self.iter()
            .map(UserType::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl std::fmt::Debug for RoleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl FromIterator<UserType> for RoleSet {
    fn from_iter<I: IntoIterator<Item = UserType>>(iter: I) -> Self {
        let mut s = RoleSet::default();
        for t in iter {
            s.insert(t);
        }
        s
    }
}

/// At most this many school or section ids are kept per user (about 5 KB of header); Clever
/// lists beyond it are cut after sorting.
pub const MAX_IDS: usize = 200;

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

/// Every request header under this prefix (canonical form) is removed before anything else.
pub const SPOOFABLE_PREFIX: &str = "x-clever-";

/// Whether a request header name could carry identity and must be removed before anything
/// else: the whole `X-Clever-` prefix and every configured identity header name, compared
/// case-insensitively with `_` and `-` equal (`X_Clever_User_Id` is the same to a CGI app).
/// Runs on every request header: compares in place, without building the canonical name.
pub fn is_spoofable_identity_header(name: &str, configured: &[String]) -> bool {
    let name = name.as_bytes();
    const PREFIX: &[u8] = SPOOFABLE_PREFIX.as_bytes();
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
    fn role_set_header_is_every_role_in_stable_order() {
        let set: RoleSet = [
            UserType::DistrictAdmin,
            UserType::Teacher,
            UserType::Teacher,
        ]
        .into_iter()
        .collect();
        assert_eq!(set.header(), "teacher,district_admin");
        assert_eq!(RoleSet::default().header(), "");
    }

    /// `X-Clever-User-Type` for every set of roles, indexed by the set (bit `t` for `UserType`
    /// `t`), each in the stable order.
    const USER_TYPE_VALUES: [&str; 32] = [
        "",
        "student",
        "teacher",
        "student,teacher",
        "staff",
        "student,staff",
        "teacher,staff",
        "student,teacher,staff",
        "district_admin",
        "student,district_admin",
        "teacher,district_admin",
        "student,teacher,district_admin",
        "staff,district_admin",
        "student,staff,district_admin",
        "teacher,staff,district_admin",
        "student,teacher,staff,district_admin",
        "contact",
        "student,contact",
        "teacher,contact",
        "student,teacher,contact",
        "staff,contact",
        "student,staff,contact",
        "teacher,staff,contact",
        "student,teacher,staff,contact",
        "district_admin,contact",
        "student,district_admin,contact",
        "teacher,district_admin,contact",
        "student,teacher,district_admin,contact",
        "staff,district_admin,contact",
        "student,staff,district_admin,contact",
        "teacher,staff,district_admin,contact",
        "student,teacher,staff,district_admin,contact",
    ];

    #[test]
    fn user_type_values_table_is_every_role_set_in_stable_order() {
        for (bits, value) in USER_TYPE_VALUES.iter().enumerate() {
            let set: RoleSet = UserType::ALL
                .into_iter()
                .filter(|&t| bits & (1 << t as u8) != 0)
                .collect();
            let joined: Vec<&str> = set.iter().map(UserType::as_str).collect();
            assert_eq!(*value, joined.join(","));
            assert_eq!(set.header(), *value);
        }
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
