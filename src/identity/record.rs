//! The signed-in user's record as a session keeps it: the value of each kept field of the
//! [`FIELDS`](super::fields::FIELDS) table in one buffer (`user_type` as the header value of
//! the roles), the roles as a set, and which fields were asked of Clever at sign-in. Built
//! with [`IdentityBuilder`]; stored (Redis) as a flat JSON object keyed by each field's
//! `stored` name, readable by older gateways and reading their records.

use std::fmt;

use bytes::Bytes;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::fields::{Field, FieldSet, Kind};
use super::{RoleSet, UserType, MAX_IDS};

/// Longest text value kept (bytes). Clever's values are far shorter; a longer one is dropped
/// rather than cut, so a cut identifier never names another user.
pub const MAX_TEXT: usize = 512;

/// Whether `s` has the shape of a Clever id: short, letters, digits, `-` and `_` only, so it is
/// safe in a header and a log line as it is.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What the gateway knows about a signed-in user, as Clever told it at sign-in.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// The values of the present fields, in table order.
    buf: Bytes,
    /// Where each field's value ends in `buf`; it starts where the previous field's ends, so
    /// an absent field has an empty range.
    ends: [u16; Field::COUNT],
    roles: RoleSet,
    /// The fields asked of Clever at sign-in: a field outside it is not known, not absent.
    kept: FieldSet,
}

/// The fields every session keeps (section 3): who, where, which roles, name and email.
pub const CORE_FIELDS: FieldSet = FieldSet::of(&[
    Field::Id,
    Field::UserType,
    Field::DistrictId,
    Field::Email,
    Field::Name,
    Field::AuthorizedBy,
]);

/// What a record written before the kept set existed holds.
const LEGACY_KEPT: FieldSet =
    CORE_FIELDS.union(FieldSet::of(&[Field::SchoolIds, Field::SectionIds]));

impl Identity {
    /// A builder for the user `user_id`.
    pub fn builder(user_id: &str) -> IdentityBuilder {
        IdentityBuilder::default().with(Field::Id, user_id)
    }

    /// The value of `field`, when the record has one (never empty). `user_type` is the
    /// comma-separated roles of section 4; lists are comma-separated.
    pub fn get(&self, field: Field) -> Option<&str> {
        let range = self.range(field);
        // Only `&str` values are written into the buffer.
        (!range.is_empty()).then(|| std::str::from_utf8(&self.buf[range]).unwrap_or_default())
    }

    /// The value of `field` as a slice of the record's buffer (no copy).
    pub fn bytes(&self, field: Field) -> Option<Bytes> {
        let range = self.range(field);
        (!range.is_empty()).then(|| self.buf.slice(range))
    }

    fn range(&self, field: Field) -> std::ops::Range<usize> {
        let i = field as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        usize::from(start)..usize::from(self.ends[i])
    }

    /// The Clever user id.
    pub fn user_id(&self) -> &str {
        self.get(Field::Id).unwrap_or_default()
    }

    /// Absent for teacher-authorized (Library) logins.
    pub fn district_id(&self) -> Option<&str> {
        self.get(Field::DistrictId)
    }

    pub fn roles(&self) -> RoleSet {
        self.roles
    }

    /// Every role, in the stable order of [`UserType`].
    pub fn user_types(&self) -> impl Iterator<Item = UserType> {
        self.roles.iter()
    }

    /// The `X-Clever-User-Type` value: every role, comma-separated, stable order.
    pub fn user_type_header(&self) -> &str {
        self.get(Field::UserType).unwrap_or_default()
    }

    /// The ids of a list field (`school_ids`, `section_ids`), sorted.
    pub fn ids(&self, field: Field) -> impl Iterator<Item = &str> {
        self.get(field)
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
    }

    /// The fields that have a value (`user_type` when there is a role).
    pub fn present(&self) -> FieldSet {
        Field::all().filter(|f| self.get(*f).is_some()).collect()
    }

    /// The fields asked of Clever at sign-in: absent ones among them are absent at Clever.
    pub fn kept(&self) -> FieldSet {
        self.kept
    }

    /// The record with only the fields of `keep` (and the roles), remembering that only
    /// those were kept.
    pub fn retain(&self, keep: FieldSet) -> Identity {
        let mut b = self.to_builder();
        for f in Field::all().filter(|f| !keep.contains(*f)) {
            b.values[f as usize] = None;
        }
        b.kept = keep;
        b.build()
    }

    /// The record with the fields it lacks taken from `other` (a second read of the same
    /// user): this record's values and roles win; roles come from `other` only when this
    /// record has none.
    pub fn fill_absent(&self, other: &Identity) -> Identity {
        let mut b = self.to_builder();
        for f in Field::all() {
            if b.values[f as usize].is_none() {
                b.values[f as usize] = other.value(f).map(str::to_string);
            }
        }
        if b.roles.is_empty() {
            b.roles = other.roles;
        }
        b.build()
    }

    /// The record with `field` set to `value` (or cleared by an empty or invalid one).
    pub fn with(&self, field: Field, value: &str) -> Identity {
        self.to_builder().with(field, value).build()
    }

    /// The record with the ids of list `field` replaced.
    pub fn with_ids<I, S>(&self, field: Field, ids: I) -> Identity
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.to_builder().ids(field, ids).build()
    }

    /// The record for `/_gateway/me`: every kept field by its `stored` key (`null` when
    /// absent), the lists and roles as arrays (`school_ids` and `section_ids` always). Never
    /// the token.
    pub fn fields_json(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value;
        let mut out = serde_json::Map::new();
        for d in super::FIELDS.iter() {
            let value = match d.kind {
                Kind::Secret => continue,
                Kind::Roles => {
                    Value::from(self.roles.iter().map(UserType::as_str).collect::<Vec<_>>())
                }
                Kind::IdList => Value::from(self.ids(d.field).collect::<Vec<_>>()),
                _ if !self.kept.contains(d.field) => continue,
                _ => self.get(d.field).map_or(Value::Null, Value::from),
            };
            out.insert(d.stored.to_string(), value);
        }
        out
    }

    /// A builder holding this record.
    pub fn to_builder(&self) -> IdentityBuilder {
        let mut b = IdentityBuilder {
            roles: self.roles,
            kept: self.kept,
            ..IdentityBuilder::default()
        };
        for f in Field::all() {
            b.values[f as usize] = self.value(f).map(str::to_string);
        }
        b
    }

    /// The value a builder holds for a field (`user_type` is rebuilt from the roles).
    fn value(&self, field: Field) -> Option<&str> {
        (field != Field::UserType)
            .then(|| self.get(field))
            .flatten()
    }
}

/// Builds an [`Identity`]: every value is checked as its field's kind requires (ids id-like,
/// text trimmed and bounded, lists sorted and de-duplicated), and a value that fails is left
/// out rather than kept.
#[derive(Debug, Clone)]
pub struct IdentityBuilder {
    values: [Option<String>; Field::COUNT],
    roles: RoleSet,
    kept: FieldSet,
}

impl Default for IdentityBuilder {
    fn default() -> Self {
        IdentityBuilder {
            values: Default::default(),
            roles: RoleSet::default(),
            kept: FieldSet::ALL,
        }
    }
}

impl IdentityBuilder {
    /// Sets `field` to `value` as its kind allows (an empty or unusable value clears it).
    pub fn set(&mut self, field: Field, value: &str) {
        let value = value.trim();
        let kept = match field.def().kind {
            Kind::Id => valid_id(value).then(|| value.to_string()),
            Kind::Text | Kind::Internal => {
                (!value.is_empty() && value.len() <= MAX_TEXT).then(|| value.to_string())
            }
            Kind::IdList => {
                self.set_ids(field, value.split(','));
                return;
            }
            // Roles are a set of their own; secrets never enter the record.
            Kind::Roles | Kind::Secret => return,
        };
        self.values[field as usize] = kept;
    }

    pub fn with(mut self, field: Field, value: &str) -> Self {
        self.set(field, value);
        self
    }

    /// Sets the `district_id`.
    pub fn district(self, id: &str) -> Self {
        self.with(Field::DistrictId, id)
    }

    pub fn role(mut self, t: UserType) -> Self {
        self.roles.insert(t);
        self
    }

    pub fn roles<I: IntoIterator<Item = UserType>>(mut self, types: I) -> Self {
        for t in types {
            self.roles.insert(t);
        }
        self
    }

    pub fn add_role(&mut self, t: UserType) {
        self.roles.insert(t);
    }

    /// Sets a list field: id-like entries only, sorted, without duplicates, at most
    /// [`MAX_IDS`]; empty clears it.
    pub fn set_ids<I, S>(&mut self, field: Field, ids: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        if field.def().kind != Kind::IdList {
            return;
        }
        let mut list: Vec<&str> = Vec::new();
        let owned: Vec<S> = ids.into_iter().collect();
        for id in &owned {
            let id = id.as_ref().trim();
            if valid_id(id) {
                list.push(id);
            }
        }
        list.sort_unstable();
        list.dedup();
        list.truncate(MAX_IDS);
        self.values[field as usize] = (!list.is_empty()).then(|| list.join(","));
    }

    pub fn ids<I, S>(mut self, field: Field, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.set_ids(field, ids);
        self
    }

    /// Whether `field` has a value so far.
    pub fn has(&self, field: Field) -> bool {
        if field == Field::UserType {
            return !self.roles.is_empty();
        }
        self.values[field as usize].is_some()
    }

    pub fn build(self) -> Identity {
        // `user_type` is kept as the header value of the roles, beside the other fields.
        let roles = self.roles.header();
        let total: usize =
            self.values.iter().flatten().map(String::len).sum::<usize>() + roles.len();
        let mut buf = Vec::with_capacity(total.min(usize::from(u16::MAX)));
        let mut ends = [0u16; Field::COUNT];
        for (i, value) in self.values.iter().enumerate() {
            let value = match i == Field::UserType as usize {
                true => Some(roles.as_str()),
                false => value.as_deref(),
            };
            if let Some(v) = value {
                // Not reachable with the bounds above (23 values of at most 13 KB); a value
                // that would not fit is left out rather than wrapped.
                if buf.len() + v.len() <= usize::from(u16::MAX) {
                    buf.extend_from_slice(v.as_bytes());
                }
            }
            ends[i] = buf.len() as u16;
        }
        Identity {
            buf: Bytes::from(buf),
            ends,
            roles: self.roles,
            kept: self.kept,
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for field in Field::all() {
            if let Some(v) = self.get(field) {
                m.entry(&field.def().stored, &v);
            }
        }
        m.finish()
    }
}

impl Serialize for Identity {
    /// `{"user_id":…,"user_types":[…],"district_id":…,…,"kept":[…]}`: the keys older gateways
    /// read (`user_id` and `user_types` always), then every other present field, then the
    /// fields kept beyond [`CORE_FIELDS`].
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry(Field::Id.def().stored, self.user_id())?;
        let types: Vec<&str> = self.roles.iter().map(UserType::as_str).collect();
        m.serialize_entry(Field::UserType.def().stored, &types)?;
        for field in Field::all().filter(|f| !matches!(f, Field::Id | Field::UserType)) {
            let Some(v) = self.get(field) else { continue };
            let key = field.def().stored;
            match field.def().kind {
                Kind::IdList => {
                    m.serialize_entry(key, &v.split(',').collect::<Vec<_>>())?;
                }
                _ => m.serialize_entry(key, v)?,
            }
        }
        // The core is always kept: only the fields beyond it are listed (a few bytes in Redis).
        let kept: Vec<&str> = self
            .kept
            .minus(CORE_FIELDS)
            .iter()
            .map(|f| f.def().stored)
            .collect();
        m.serialize_entry("kept", &kept)?;
        m.end()
    }
}

/// A stored value: a string, a list of strings, or anything else (ignored).
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredValue {
    One(String),
    Many(Vec<String>),
    Other(IgnoredAny),
}

impl<'de> Deserialize<'de> for Identity {
    /// Reads what [`Serialize`] writes and what gateways before the field table wrote
    /// (`name`, `email` and `district_id` possibly `null`, no `kept`); unknown keys are
    /// ignored, so a newer gateway's record reads too.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Identity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an identity record")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Identity, A::Error> {
                let mut b = IdentityBuilder::default();
                let mut kept: Option<FieldSet> = None;
                let mut has_id = false;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "kept" {
                        let names: Vec<String> = map.next_value()?;
                        let listed: FieldSet = names
                            .iter()
                            .filter_map(|n| super::FIELDS.iter().find(|d| d.stored == *n))
                            .map(|d| d.field)
                            .collect();
                        kept = Some(CORE_FIELDS.union(listed));
                        continue;
                    }
                    if key == Field::UserType.def().stored {
                        let types: Vec<String> = map.next_value()?;
                        b = b.roles(types.iter().filter_map(|t| UserType::parse(t)));
                        continue;
                    }
                    let Some(field) = Field::by_stored_key(&key) else {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    match map.next_value::<Option<StoredValue>>()? {
                        Some(StoredValue::One(v)) => b.set(field, &v),
                        Some(StoredValue::Many(list)) => b.set_ids(field, list),
                        Some(StoredValue::Other(_)) | None => {}
                    }
                    has_id |= field == Field::Id;
                }
                if !has_id || !b.has(Field::Id) {
                    return Err(de::Error::custom("the record has no usable user_id"));
                }
                b.kept = kept.unwrap_or(LEGACY_KEPT);
                Ok(b.build())
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn teacher() -> Identity {
        Identity::builder("5fc43758db087d0be186c2a1")
            .district("5d0a9e5d0958b300014e49d2")
            .role(UserType::DistrictAdmin)
            .role(UserType::Teacher)
            .with(Field::Name, "  Maria Lopez ")
            .with(Field::Email, "maria.lopez@example-district.org")
            .with(Field::TeacherNumber, "T-1042")
            .ids(Field::SchoolIds, ["s2", "s1", "s2", "a b"])
            .build()
    }

    #[test]
    fn builder_checks_each_value_by_kind() {
        let id = teacher();
        assert_eq!(id.user_id(), "5fc43758db087d0be186c2a1");
        assert_eq!(id.get(Field::Name), Some("Maria Lopez"), "trimmed");
        assert_eq!(
            id.get(Field::SchoolIds),
            Some("s1,s2"),
            "sorted, de-duplicated"
        );
        assert_eq!(id.ids(Field::SchoolIds).collect::<Vec<_>>(), ["s1", "s2"]);
        assert_eq!(id.get(Field::UserType), Some("teacher,district_admin"));
        assert_eq!(id.get(Field::StudentNumber), None);
        let bad = Identity::builder("x y")
            .district("a\r\nb")
            .with(Field::Grade, "   ")
            .with(Field::Title, &"t".repeat(MAX_TEXT + 1))
            .with(Field::AccessToken, "ilSECRET")
            .build();
        assert_eq!(bad.get(Field::Id), None);
        assert_eq!(bad.district_id(), None);
        assert_eq!(bad.get(Field::Grade), None);
        assert_eq!(bad.get(Field::Title), None);
        assert_eq!(bad.get(Field::AccessToken), None, "never in the record");
        assert_eq!(bad.present(), FieldSet::EMPTY);
    }

    #[test]
    fn retain_keeps_only_the_asked_fields_and_remembers_them() {
        let kept = teacher().retain(CORE_FIELDS);
        assert_eq!(kept.get(Field::TeacherNumber), None);
        assert_eq!(kept.get(Field::SchoolIds), None);
        assert_eq!(kept.get(Field::Email), teacher().get(Field::Email));
        assert_eq!(kept.kept(), CORE_FIELDS);
        assert_eq!(kept.roles(), teacher().roles());
    }

    #[test]
    fn fill_absent_takes_only_what_is_missing() {
        let sso = Identity::builder("u")
            .with(Field::Email, "a@x.org")
            .with(Field::FirstName, "Ada")
            .build();
        let full = Identity::builder("u")
            .role(UserType::Student)
            .with(Field::Email, "other@x.org")
            .with(Field::StudentNumber, "1234")
            .build();
        let merged = sso.fill_absent(&full);
        assert_eq!(merged.get(Field::Email), Some("a@x.org"));
        assert_eq!(merged.get(Field::StudentNumber), Some("1234"));
        assert_eq!(merged.get(Field::FirstName), Some("Ada"));
        assert_eq!(merged.get(Field::UserType), Some("student"));
    }

    #[test]
    fn serialized_record_round_trips_and_reads_the_old_form() {
        let id = teacher().retain(CORE_FIELDS.union(FieldSet::of(&[Field::TeacherNumber])));
        let json = serde_json::to_string(&id).unwrap();
        assert!(
            json.starts_with(
                r#"{"user_id":"5fc43758db087d0be186c2a1","user_types":["teacher","district_admin"]"#
            ),
            "{json}"
        );
        assert!(json.contains(r#""teacher_number":"T-1042""#), "{json}");
        assert!(json.ends_with(r#","kept":["teacher_number"]}"#), "{json}");
        let back: Identity = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);

        // A record written before the field table (a rolling upgrade with Redis).
        let old = r#"{"user_id":"u","district_id":"d","user_types":["teacher"],"name":null,"email":"a@b.org","authorized_by":"district","school_ids":["s1"]}"#;
        let id: Identity = serde_json::from_str(old).unwrap();
        assert_eq!(id.user_id(), "u");
        assert_eq!(id.get(Field::Email), Some("a@b.org"));
        assert_eq!(id.get(Field::Name), None);
        assert_eq!(id.get(Field::SchoolIds), Some("s1"));
        assert_eq!(id.get(Field::AuthorizedBy), Some("district"));
        assert!(id.kept().contains(Field::SectionIds) && !id.kept().contains(Field::Grade));

        // Unknown keys (a newer gateway's fields) are ignored; a record without an id is not one.
        let newer = r#"{"user_id":"u","user_types":[],"future_field":{"a":1},"grade":7}"#;
        let id: Identity = serde_json::from_str(newer).unwrap();
        assert_eq!(id.get(Field::Grade), None);
        assert!(serde_json::from_str::<Identity>(r#"{"user_types":[]}"#).is_err());
    }

    #[test]
    fn old_gateways_read_the_new_form() {
        /// The record as gateways before the field table declared it.
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Old {
            user_id: String,
            district_id: Option<String>,
            user_types: Vec<UserType>,
            name: Option<String>,
            email: Option<String>,
            authorized_by: Option<String>,
            #[serde(default)]
            school_ids: Vec<String>,
        }
        let json = serde_json::to_string(&teacher()).unwrap();
        let old: Old = serde_json::from_str(&json).unwrap();
        assert_eq!(old.user_id, "5fc43758db087d0be186c2a1");
        assert_eq!(old.user_types, [UserType::Teacher, UserType::DistrictAdmin]);
        assert_eq!(old.school_ids, ["s1", "s2"]);
        let bare = serde_json::to_string(&Identity::builder("u").build()).unwrap();
        let old: Old = serde_json::from_str(&bare).unwrap();
        assert_eq!(old.district_id, None);
    }

    #[test]
    fn debug_lists_present_fields() {
        let text = format!("{:?}", teacher());
        assert!(text.contains("\"teacher_number\": \"T-1042\""), "{text}");
        assert!(!text.contains("student_number"), "{text}");
    }
}
