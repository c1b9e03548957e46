//! The signed-in user's identity, user types, and the identity headers sent upstream.

use std::fmt;

use bytes::Bytes;
use http::HeaderValue;
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

/// The headers whose values come from the session. The access token is sent only with
/// `forward_access_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityHeader {
    UserId,
    UserType,
    DistrictId,
    Email,
    Name,
    AccessToken,
    SchoolIds,
    SectionIds,
}

impl IdentityHeader {
    pub const COUNT: usize = 8;
}

// `IdentityHeaders::present` has a bit per header. (Each header also adds 4 bytes to every
// session: at 1M sessions, watch `cargo bench --bench session_memory`.)
const _: () = assert!(IdentityHeader::COUNT <= 16);

/// `X-Clever-User-Type` for every set of roles, indexed by the set (bit `t` for `UserType` `t`),
/// each in the stable order: a normalised identity's value needs no storage of its own.
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

/// `roles` value meaning "the user type value is in the buffer" (roles not in stable order).
const ROLES_IN_BUFFER: u8 = u8::MAX;

/// The identity header values of one session and its access token, rendered once (roles
/// joined, RFC 8187 for free text) when the session is created or loaded, and shared by all of
/// its requests. The values are slices of one buffer: handing one to a request is a reference
/// count increment, not an allocation or a copy. The buffer also holds the access token, so a
/// session costs one allocation less than a separate `Secret` would; `Debug` never shows it.
#[derive(Clone, Default)]
pub struct IdentityHeaders {
    buf: Bytes,
    /// End of each value in `buf`, by `IdentityHeader` index; each starts where the previous ends.
    ends: [u32; IdentityHeader::COUNT],
    /// Bit `i` set: value `i` is in `buf` (the access token always is). Clear: the identity has
    /// no such value (or an empty district id), or it cannot be a header value.
    present: u16,
    /// The roles as a set (index into `USER_TYPE_VALUES`), or `ROLES_IN_BUFFER`.
    roles: u8,
}

impl IdentityHeaders {
    /// Renders every identity header value of `identity`, and keeps `access_token`. The one
    /// place they are rendered: a new identity header is a new `IdentityHeader` and one line
    /// here.
    pub fn render(identity: &Identity, access_token: &str) -> Self {
        let roles = role_set(&identity.user_types);
        let user_type = match roles {
            Some(_) => None,
            None => Some(identity.user_type_header()),
        };
        let email = identity.email.as_deref().map(header_safe_value);
        let name = identity.name.as_deref().map(header_safe_value);
        let ids = |list: &[String]| (!list.is_empty()).then(|| id_list_header(list));
        let school_ids = ids(&identity.school_ids);
        let section_ids = ids(&identity.section_ids);
        let values: [Option<&str>; IdentityHeader::COUNT] = [
            Some(&identity.user_id),
            user_type.as_deref(),
            identity.district_id.as_deref().filter(|d| !d.is_empty()),
            email.as_deref(),
            name.as_deref(),
            Some(access_token),
            school_ids.as_deref(),
            section_ids.as_deref(),
        ];
        let total: usize = values.iter().flatten().map(|v| v.len()).sum();
        if u32::try_from(total).is_err() {
            // Not reachable from Clever's answers (4 GiB of identity).
            return IdentityHeaders::default();
        }
        let mut buf = Vec::with_capacity(total);
        let mut out = IdentityHeaders {
            roles: roles.unwrap_or(ROLES_IN_BUFFER),
            ..IdentityHeaders::default()
        };
        for (i, value) in values.into_iter().enumerate() {
            // The rule `HeaderValue::from_str` applies to what is sent; a value it refuses is
            // not sent. The access token is kept whatever it holds (`get` checks it).
            let keep = i == IdentityHeader::AccessToken as usize;
            if let Some(v) = value.filter(|v| keep || HeaderValue::from_str(v).is_ok()) {
                buf.extend_from_slice(v.as_bytes());
                out.present |= 1 << i;
            }
            out.ends[i] = buf.len() as u32;
        }
        out.buf = Bytes::from(buf);
        out
    }

    fn slice(&self, which: IdentityHeader) -> Option<std::ops::Range<usize>> {
        let i = which as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        (self.present & (1 << i) != 0).then(|| start..self.ends[i] as usize)
    }

    /// The value of header `which`, or `None` when it is not sent.
    pub fn get(&self, which: IdentityHeader) -> Option<HeaderValue> {
        if which == IdentityHeader::UserType && self.roles != ROLES_IN_BUFFER {
            return Some(HeaderValue::from_static(
                USER_TYPE_VALUES[usize::from(self.roles)],
            ));
        }
        let range = self.slice(which)?;
        HeaderValue::from_maybe_shared(self.buf.slice(range)).ok()
    }

    /// The access token the session was created with (a secret: never log it).
    pub fn access_token(&self) -> &str {
        self.slice(IdentityHeader::AccessToken)
            .and_then(|r| std::str::from_utf8(&self.buf[r]).ok())
            .unwrap_or_default()
    }
}

/// The roles as a set (bit `t` for `UserType` `t`), when they are listed in the stable order
/// without repeats (as `Identity::normalize` leaves them), so the set renders them alike.
fn role_set(types: &[UserType]) -> Option<u8> {
    types
        .windows(2)
        .all(|w| w[0] < w[1])
        .then(|| types.iter().fold(0u8, |set, &t| set | 1 << t as u8))
}

impl fmt::Debug for IdentityHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for which in [
            IdentityHeader::UserId,
            IdentityHeader::UserType,
            IdentityHeader::DistrictId,
            IdentityHeader::Email,
            IdentityHeader::Name,
            IdentityHeader::SchoolIds,
            IdentityHeader::SectionIds,
        ] {
            if let Some(v) = self.get(which) {
                m.entry(&which, &v);
            }
        }
        if self.slice(IdentityHeader::AccessToken).is_some() {
            m.entry(&IdentityHeader::AccessToken, &"<redacted>");
        }
        m.finish()
    }
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
    fn user_type_values_table_is_every_role_set_in_stable_order() {
        let all = [
            UserType::Student,
            UserType::Teacher,
            UserType::Staff,
            UserType::DistrictAdmin,
            UserType::Contact,
        ];
        for (set, value) in USER_TYPE_VALUES.iter().enumerate() {
            let types: Vec<UserType> = all
                .iter()
                .copied()
                .filter(|&t| set & (1 << t as u8) != 0)
                .collect();
            assert_eq!(role_set(&types), Some(set as u8));
            let id = Identity {
                user_id: "u".into(),
                district_id: None,
                user_types: types,
                name: None,
                email: None,
                authorized_by: None,
                school_ids: vec![],
                section_ids: vec![],
            };
            assert_eq!(*value, id.user_type_header());
        }
    }

    #[test]
    fn identity_headers_roles_out_of_order_rendered_as_listed() {
        let id = Identity {
            user_id: "u".into(),
            district_id: None,
            user_types: vec![UserType::Teacher, UserType::Student, UserType::Teacher],
            name: None,
            email: None,
            authorized_by: None,
            school_ids: vec![],
            section_ids: vec![],
        };
        assert_eq!(role_set(&id.user_types), None);
        let h = IdentityHeaders::render(&id, "tok");
        assert_eq!(
            h.get(IdentityHeader::UserType).unwrap(),
            "teacher,student,teacher"
        );
    }

    #[test]
    fn identity_headers_keep_access_token_and_never_show_it() {
        let id = Identity {
            user_id: "u".into(),
            district_id: Some(String::new()),
            user_types: vec![],
            name: None,
            email: None,
            authorized_by: None,
            school_ids: vec![],
            section_ids: vec![],
        };
        let h = IdentityHeaders::render(&id, "il SECRET\n");
        assert_eq!(h.access_token(), "il SECRET\n");
        assert!(
            h.get(IdentityHeader::AccessToken).is_none(),
            "not a header value"
        );
        assert!(
            h.get(IdentityHeader::DistrictId).is_none(),
            "empty district"
        );
        assert_eq!(h.get(IdentityHeader::UserType).unwrap(), "");
        assert!(!format!("{h:?}").contains("SECRET"));
        let h = IdentityHeaders::render(&id, "ilTOKEN");
        assert_eq!(h.get(IdentityHeader::AccessToken).unwrap(), "ilTOKEN");
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
