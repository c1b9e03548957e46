//! The identity field table: every field the gateway knows about a signed-in user, with its
//! name in templates, its key in `/_gateway/me` and the session store, where Clever's answers
//! carry it, how its value is kept and rendered, and (for the identity headers of section 4)
//! its `[upstream.headers]` key and default header. Parsing, templates, the default headers,
//! `/_gateway/me`, `check` and scrubbing all iterate [`FIELDS`]: a new field is one entry here
//! (plus a parser when its [`Source`] is not a plain path).

use super::UserType;

/// A field of the identity. The order is the order of [`FIELDS`] (and of the identity headers
/// in `check` and in the requests sent upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    Id,
    UserType,
    DistrictId,
    Email,
    Name,
    AccessToken,
    SchoolIds,
    SectionIds,
    AuthorizedBy,
    FirstName,
    MiddleName,
    LastName,
    SisId,
    StudentNumber,
    TeacherNumber,
    StaffId,
    StateId,
    DistrictUsername,
    LegacyId,
    Grade,
    GraduationYear,
    Title,
    Department,
    SchoolId,
}

/// Where Clever's answers carry a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `/me`'s `data.id`, an id.
    MeId,
    /// `/me`'s `data.district`, else `/users/{id}`'s `data.district`, an id.
    District,
    /// `/me`'s `data.authorized_by`.
    MeAuthorizedBy,
    /// The keys of `/users/{id}`'s `data.roles` (v2: `/me`'s `type`).
    Roles,
    /// A path under `/users/{id}`'s `data`.
    User(&'static [&'static str]),
    /// A path under `data`, else under the user's roles (see [`Source::Role`]).
    UserThenRole(&'static [&'static str]),
    /// A path under each of the user's roles in [`ROLE_ORDER`]; the first present wins.
    Role(&'static [&'static str]),
    /// First, middle and last name, joined by spaces.
    FullName,
    /// Every role's `school` and `schools`, sorted, without duplicates.
    Schools,
    /// `/users/{id}/sections`, read with the district's district-app token.
    Sections,
    /// The SSO access token of the token exchange (never in the record).
    Token,
}

/// How a field's value is kept and what it may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Clever id: checked when parsed, so always a plain header value.
    Id,
    /// Free text (names, numbers, usernames): printable ASCII is sent as it is, anything else
    /// in the RFC 8187 form.
    Text,
    /// A list of ids, kept and sent comma-separated (`a,b`), stored as a JSON array.
    IdList,
    /// The user's roles: kept as a set, sent comma-separated in the stable order.
    Roles,
    /// Free text kept for `/_gateway/me` and logs, never usable in a template.
    Internal,
    /// A secret: never in the record, a template, `/_gateway/me` or a log.
    Secret,
}

/// When an identity header is sent by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Unless `[upstream.headers]` renames it.
    Always,
    /// Only when `[upstream.headers]` names it.
    Named,
    /// Only with `forward_access_token = true`.
    ForwardAccessToken,
}

/// An identity header of section 4: the field's `[upstream.headers]` key and default name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultHeader {
    pub key: &'static str,
    /// As sent on the wire.
    pub name: &'static str,
    pub when: When,
}

/// One entry of the table.
#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    pub field: Field,
    /// `{name}` in a template.
    pub name: &'static str,
    /// The key in `/_gateway/me` and in the session store.
    pub stored: &'static str,
    /// What the 403 page calls it: "Your Clever account has no {label}".
    pub label: &'static str,
    pub source: Source,
    pub kind: Kind,
    pub header: Option<DefaultHeader>,
}

const fn header(key: &'static str, name: &'static str, when: When) -> Option<DefaultHeader> {
    Some(DefaultHeader { key, name, when })
}

const fn def(
    field: Field,
    name: &'static str,
    label: &'static str,
    source: Source,
    kind: Kind,
) -> FieldDef {
    FieldDef {
        field,
        name,
        stored: name,
        label,
        source,
        kind,
        header: None,
    }
}

/// The table, indexed by [`Field`].
pub const FIELDS: [FieldDef; Field::COUNT] = {
    use Field as F;
    use Kind::*;
    use Source::*;
    [
        FieldDef {
            stored: "user_id",
            header: header("user_id", "X-Clever-User-Id", When::Always),
            ..def(F::Id, "id", "Clever id", MeId, Id)
        },
        FieldDef {
            stored: "user_types",
            header: header("user_type", "X-Clever-User-Type", When::Always),
            ..def(F::UserType, "user_type", "role", Source::Roles, Kind::Roles)
        },
        FieldDef {
            header: header("district_id", "X-Clever-District-Id", When::Always),
            ..def(F::DistrictId, "district_id", "district", District, Id)
        },
        FieldDef {
            header: header("email", "X-Clever-Email", When::Named),
            ..def(
                F::Email,
                "email",
                "email address",
                UserThenRole(&["email"]),
                Text,
            )
        },
        FieldDef {
            header: header("name", "X-Clever-Name", When::Named),
            ..def(F::Name, "name", "name", FullName, Text)
        },
        FieldDef {
            header: header(
                "access_token",
                "X-Clever-Access-Token",
                When::ForwardAccessToken,
            ),
            ..def(
                F::AccessToken,
                "access_token",
                "access token",
                Token,
                Secret,
            )
        },
        FieldDef {
            header: header("school_ids", "X-Clever-School-Ids", When::Named),
            ..def(F::SchoolIds, "school_ids", "schools", Schools, IdList)
        },
        FieldDef {
            header: header("section_ids", "X-Clever-Section-Ids", When::Named),
            ..def(F::SectionIds, "section_ids", "sections", Sections, IdList)
        },
        def(
            F::AuthorizedBy,
            "authorized_by",
            "authorization",
            MeAuthorizedBy,
            Internal,
        ),
        def(
            F::FirstName,
            "first_name",
            "first name",
            User(&["name", "first"]),
            Text,
        ),
        def(
            F::MiddleName,
            "middle_name",
            "middle name",
            User(&["name", "middle"]),
            Text,
        ),
        def(
            F::LastName,
            "last_name",
            "last name",
            User(&["name", "last"]),
            Text,
        ),
        def(F::SisId, "sis_id", "SIS id", Role(&["sis_id"]), Text),
        def(
            F::StudentNumber,
            "student_number",
            "student number",
            Role(&["student_number"]),
            Text,
        ),
        def(
            F::TeacherNumber,
            "teacher_number",
            "teacher number",
            Role(&["teacher_number"]),
            Text,
        ),
        def(
            F::StaffId,
            "staff_id",
            "staff id",
            Role(&["staff_id"]),
            Text,
        ),
        def(
            F::StateId,
            "state_id",
            "state id",
            Role(&["state_id"]),
            Text,
        ),
        def(
            F::DistrictUsername,
            "district_username",
            "district username",
            Role(&["credentials", "district_username"]),
            Text,
        ),
        def(
            F::LegacyId,
            "legacy_id",
            "legacy id",
            Role(&["legacy_id"]),
            Text,
        ),
        def(F::Grade, "grade", "grade", Role(&["grade"]), Text),
        def(
            F::GraduationYear,
            "graduation_year",
            "graduation year",
            Role(&["graduation_year"]),
            Text,
        ),
        def(F::Title, "title", "title", Role(&["title"]), Text),
        def(
            F::Department,
            "department",
            "department",
            Role(&["department"]),
            Text,
        ),
        def(F::SchoolId, "school_id", "school", Role(&["school"]), Text),
    ]
};

/// The order role-level fields are read in, and a role table's entries are chosen in.
pub const ROLE_ORDER: [UserType; 5] = [
    UserType::DistrictAdmin,
    UserType::Staff,
    UserType::Teacher,
    UserType::Student,
    UserType::Contact,
];

impl Field {
    pub const COUNT: usize = 24;

    /// Every field, in table order.
    pub fn all() -> impl Iterator<Item = Field> {
        FIELDS.iter().map(|d| d.field)
    }

    /// Its entry in [`FIELDS`].
    pub fn def(self) -> &'static FieldDef {
        &FIELDS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// The field a template names `{name}`, if templates may use it.
    pub fn by_template_name(name: &str) -> Option<Field> {
        FIELDS
            .iter()
            .find(|d| d.name == name && d.kind.in_templates())
            .map(|d| d.field)
    }

    /// The identity header whose `[upstream.headers]` key is `key`.
    pub fn by_header_key(key: &str) -> Option<(Field, DefaultHeader)> {
        FIELDS
            .iter()
            .find_map(|d| d.header.filter(|h| h.key == key).map(|h| (d.field, h)))
    }

    /// The field stored under `key` (`/_gateway/me`, the session store).
    pub fn by_stored_key(key: &str) -> Option<Field> {
        FIELDS
            .iter()
            .find(|d| d.stored == key && d.kind != Kind::Secret)
            .map(|d| d.field)
    }
}

impl Source {
    /// Whether the field comes from a v3 read (`/users/{id}`, sections): a v2.x login never
    /// has it.
    pub fn needs_v3(self) -> bool {
        matches!(
            self,
            Source::User(_)
                | Source::UserThenRole(_)
                | Source::Role(_)
                | Source::FullName
                | Source::Schools
                | Source::Sections
        )
    }

    /// Whether `/users/{id}` carries the field: reading it again with a district-app token
    /// may find it when the sign-in token's answer lacked it.
    pub fn in_users_answer(self) -> bool {
        matches!(
            self,
            Source::User(_)
                | Source::UserThenRole(_)
                | Source::Role(_)
                | Source::FullName
                | Source::Schools
                | Source::Roles
                | Source::District
        )
    }
}

impl Kind {
    /// Whether `{field}` may name a field of this kind.
    pub fn in_templates(self) -> bool {
        !matches!(self, Kind::Internal | Kind::Secret)
    }
}

/// Every name a template may use, in table order (for messages).
pub fn template_names() -> impl Iterator<Item = &'static str> {
    FIELDS
        .iter()
        .filter(|d| d.kind.in_templates())
        .map(|d| d.name)
}

/// Every `[upstream.headers]` key, in table order (for messages).
pub fn header_keys() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().filter_map(|d| d.header.map(|h| h.key))
}

/// A set of fields (bit `f` for field `f`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FieldSet(u32);

const _: () = assert!(Field::COUNT <= 32, "FieldSet has a bit per field");

impl FieldSet {
    pub const EMPTY: FieldSet = FieldSet(0);

    /// Every field of the table.
    pub const ALL: FieldSet = FieldSet(((1u64 << Field::COUNT) - 1) as u32);

    pub const fn of(fields: &[Field]) -> FieldSet {
        let mut bits = 0u32;
        let mut i = 0;
        while i < fields.len() {
            bits |= 1 << fields[i] as u32;
            i += 1;
        }
        FieldSet(bits)
    }

    pub fn contains(self, f: Field) -> bool {
        self.0 & (1 << f as u32) != 0
    }

    pub fn insert(&mut self, f: Field) {
        self.0 |= 1 << f as u32;
    }

    pub const fn union(self, other: FieldSet) -> FieldSet {
        FieldSet(self.0 | other.0)
    }

    pub const fn minus(self, other: FieldSet) -> FieldSet {
        FieldSet(self.0 & !other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The fields of the set, in table order.
    pub fn iter(self) -> impl Iterator<Item = Field> {
        Field::all().filter(move |f| self.contains(*f))
    }
}

impl FromIterator<Field> for FieldSet {
    fn from_iter<I: IntoIterator<Item = Field>>(iter: I) -> Self {
        let mut s = FieldSet::EMPTY;
        for f in iter {
            s.insert(f);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_field_with_unique_names() {
        for (i, d) in FIELDS.iter().enumerate() {
            assert_eq!(d.field as usize, i, "{}", d.name);
        }
        let mut names: Vec<&str> = FIELDS.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Field::COUNT);
        let mut stored: Vec<&str> = FIELDS.iter().map(|d| d.stored).collect();
        stored.sort_unstable();
        stored.dedup();
        assert_eq!(stored.len(), Field::COUNT);
    }

    #[test]
    fn header_keys_are_the_section_4_headers_in_order() {
        assert_eq!(
            header_keys().collect::<Vec<_>>(),
            [
                "user_id",
                "user_type",
                "district_id",
                "email",
                "name",
                "access_token",
                "school_ids",
                "section_ids"
            ]
        );
        for d in FIELDS.iter() {
            if let Some(h) = d.header {
                assert!(h.name.starts_with("X-Clever-"), "{}", h.name);
                assert!(http::HeaderName::from_bytes(h.name.as_bytes()).is_ok());
            }
        }
    }

    #[test]
    fn template_names_are_the_contract_fields() {
        // gateway.md section 4b, in its order.
        let mut want = vec![
            "id",
            "district_id",
            "user_type",
            "email",
            "first_name",
            "middle_name",
            "last_name",
            "name",
            "sis_id",
            "student_number",
            "teacher_number",
            "staff_id",
            "state_id",
            "district_username",
            "legacy_id",
            "grade",
            "graduation_year",
            "title",
            "department",
            "school_id",
            "school_ids",
            "section_ids",
        ];
        let mut got: Vec<&str> = template_names().collect();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(Field::by_template_name("access_token"), None);
        assert_eq!(Field::by_template_name("authorized_by"), None);
        assert_eq!(
            Field::by_template_name("student_number"),
            Some(Field::StudentNumber)
        );
    }

    #[test]
    fn field_set_iterates_in_table_order() {
        let s = FieldSet::of(&[Field::Grade, Field::Id, Field::Email]);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [Field::Id, Field::Email, Field::Grade]
        );
        assert_eq!(FieldSet::ALL.iter().count(), Field::COUNT);
        assert!(s.minus(FieldSet::of(&[Field::Id])).contains(Field::Grade));
        assert!(!s.minus(FieldSet::of(&[Field::Id])).contains(Field::Id));
    }
}
