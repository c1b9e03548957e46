//! Simulated Clever users: the `SimUser` record (with each role's record as Clever's
//! `/v3.x/users/{id}` carries it) and the built-in demo roster.

use crate::identity::UserType;

/// The main demo district (the id used in Clever's own API examples).
pub const DEMO_DISTRICT: &str = "5d0a9e5d0958b300014e49d2";
/// A second district (Clever's sandbox district id), for district-policy tests.
pub const DEMO_DISTRICT_2: &str = "53ee4b8a44abc88c1c00119b";

/// One role of a user: `data.roles.<kind>` of `/v3.x/users/{id}`. `record: None` is a role
/// whose value is `null` (allowed by Clever's v3.0 schema; a reader treats it as absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRole {
    pub kind: UserType,
    pub record: Option<RoleRecord>,
}

/// The fields of one role's record. Which of them a role's JSON carries follows Clever's
/// schema for that role (see `api::role_json`); a `None` field is left out of the answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleRecord {
    pub sis_id: Option<String>,
    /// Students only.
    pub student_number: Option<String>,
    /// Teachers only.
    pub teacher_number: Option<String>,
    /// Staff only.
    pub staff_id: Option<String>,
    pub state_id: Option<String>,
    /// Students: `"K"`, `"1"` … `"12"`.
    pub grade: Option<String>,
    pub graduation_year: Option<String>,
    pub title: Option<String>,
    /// Staff only.
    pub department: Option<String>,
    /// Staff job roles (`roles[]` inside the staff record).
    pub job_roles: Vec<String>,
    /// `credentials.district_username`; `None` leaves `credentials` empty.
    pub district_username: Option<String>,
    /// The user's id before Clever's v3 migration.
    pub legacy_id: Option<String>,
    /// Contacts only.
    pub phone: Option<String>,
}

/// A user the simulator can sign in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimUser {
    /// Clever user id, 24 hex characters.
    pub id: String,
    /// The id shared by every role-account of one person; `/userinfo` answers it as `sub`.
    pub multi_role_user_id: String,
    /// District id; `None` for teacher-authorized (Clever Library) logins.
    pub district: Option<String>,
    /// v3 roles (the keys of `data.roles` in `/v3.0/users/{id}`), in a stable order, with
    /// their records.
    pub roles: Vec<SimRole>,
    /// The v2 `type` of this user (`school_admin` for staff).
    pub v2_type: String,
    /// `data.name.first`, `middle`, `last`: each may be null (contacts often have only `last`).
    pub first: Option<String>,
    pub middle: Option<String>,
    pub last: Option<String>,
    pub email: Option<String>,
    /// `"district"` or `"teacher"`.
    pub authorized_by: String,
}

impl SimUser {
    /// The roles a reader sees (null roles left out), in the stable order.
    pub fn role_types(&self) -> Vec<UserType> {
        self.roles
            .iter()
            .filter(|r| r.record.is_some())
            .map(|r| r.kind)
            .collect()
    }

    /// The record of role `kind`, when the user has it and it is not null.
    pub fn role(&self, kind: UserType) -> Option<&RoleRecord> {
        self.roles
            .iter()
            .find(|r| r.kind == kind)
            .and_then(|r| r.record.as_ref())
    }

    /// "First Last" (the middle name is left out, as Clever's OIDC `name` does); whichever
    /// parts exist.
    pub fn full_name(&self) -> String {
        [self.first.as_deref(), self.last.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether this user can sign in at `district_id` (teacher-authorized users never can).
    pub fn in_district(&self, district_id: &str) -> bool {
        self.district.as_deref() == Some(district_id)
    }
}

/// A user of the roster, before its roles are added.
fn user(
    id: &str,
    district: Option<&str>,
    v2_type: &str,
    name: [Option<&str>; 3],
    email: Option<&str>,
) -> SimUser {
    let owned = |s: Option<&str>| s.map(str::to_string);
    SimUser {
        id: id.to_string(),
        // Clever's multi-role ids are ids of their own; derived here so they stay stable.
        multi_role_user_id: format!("{}{}", &id[..16], "3a11d0e5"),
        district: owned(district),
        roles: Vec::new(),
        v2_type: v2_type.to_string(),
        first: owned(name[0]),
        middle: owned(name[1]),
        last: owned(name[2]),
        email: owned(email),
        authorized_by: if district.is_some() {
            "district"
        } else {
            "teacher"
        }
        .to_string(),
    }
}

impl SimUser {
    fn with(mut self, kind: UserType, record: RoleRecord) -> Self {
        self.roles.push(SimRole {
            kind,
            record: Some(record),
        });
        self
    }

    fn with_null(mut self, kind: UserType) -> Self {
        self.roles.push(SimRole { kind, record: None });
        self
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

/// The demo roster. Ids are stable so tests and docs can name them:
///
/// | id | who | roles | district | what it shows |
/// | --- | --- | --- | --- | --- |
/// | `5fc43758db087d0be186c29d` | José Ñúñez | student | [`DEMO_DISTRICT`] | non-ASCII name; student number 100234, username `jnunez` |
/// | `5fc43758db087d0be186c2a1` | Maria Lopez | teacher | [`DEMO_DISTRICT`] | no district username (fall back to the email) |
/// | `5fc43758db087d0be186c2b2` | Pat Okafor | staff (v2 `school_admin`) | [`DEMO_DISTRICT`] | staff_id, department, job roles |
/// | `5fc43758db087d0be186c2c3` | Dana Whitfield | district_admin | [`DEMO_DISTRICT`] | title only, no credentials |
/// | `5fc43758db087d0be186c2d4` | Terry Nakamura | teacher + district_admin | [`DEMO_DISTRICT`] | two roles |
/// | `5fc43758db087d0be186c2e5` | Casey Brooks | contact | [`DEMO_DISTRICT`] | no email; the whole name in `last`; a student relationship |
/// | `5fc43758db087d0be186c2f6` | Ava Chen | student | [`DEMO_DISTRICT`] | no email (kindergarten) |
/// | `5fc43758db087d0be186c307` | Jordan Reyes | teacher (and `staff: null`) | [`DEMO_DISTRICT`] | a null role |
/// | `60a1f0c2e4b0a1b2c3d4e5f6` | Sam Okonkwo | teacher | [`DEMO_DISTRICT_2`] | District SSO tier: the sign-in token sees names and email only |
/// | `61b2c3d4e5f60718293a4b5c` | Lee Park | student, teacher-authorized (no district) | none | no email |
pub fn demo_users() -> Vec<SimUser> {
    use UserType::*;
    let a = Some(DEMO_DISTRICT);
    vec![
        user(
            "5fc43758db087d0be186c29d",
            a,
            "student",
            [Some("José"), Some("Luis"), Some("Ñúñez")],
            Some("jose.nunez@students.example-district.org"),
        )
        .with(
            Student,
            RoleRecord {
                sis_id: s("S100234"),
                student_number: s("100234"),
                state_id: s("CA5510023"),
                grade: s("5"),
                graduation_year: s("2033"),
                district_username: s("jnunez"),
                legacy_id: s("5a1b2c3d4e5f60718293a4b5"),
                ..RoleRecord::default()
            },
        ),
        user(
            "5fc43758db087d0be186c2a1",
            a,
            "teacher",
            [Some("Maria"), None, Some("Lopez")],
            Some("maria.lopez@example-district.org"),
        )
        .with(
            Teacher,
            RoleRecord {
                sis_id: s("T2001"),
                teacher_number: s("2001"),
                state_id: s("CAT772001"),
                title: s("Grade 5 teacher"),
                ..RoleRecord::default()
            },
        ),
        user(
            "5fc43758db087d0be186c2b2",
            a,
            "school_admin",
            [Some("Pat"), None, Some("Okafor")],
            Some("pat.okafor@example-district.org"),
        )
        .with(
            Staff,
            RoleRecord {
                staff_id: s("ST3001"),
                title: s("Principal"),
                department: s("Administration"),
                job_roles: vec!["Principal".to_string(), "Counselor".to_string()],
                district_username: s("pokafor"),
                legacy_id: s("5a1b2c3d4e5f60718293a4c6"),
                ..RoleRecord::default()
            },
        ),
        user(
            "5fc43758db087d0be186c2c3",
            a,
            "district_admin",
            [Some("Dana"), Some("K."), Some("Whitfield")],
            Some("dana.whitfield@example-district.org"),
        )
        .with(
            DistrictAdmin,
            RoleRecord {
                title: s("District administrator"),
                legacy_id: s("5a1b2c3d4e5f60718293a4d7"),
                ..RoleRecord::default()
            },
        ),
        user(
            "5fc43758db087d0be186c2d4",
            a,
            "teacher",
            [Some("Terry"), None, Some("Nakamura")],
            Some("terry.nakamura@example-district.org"),
        )
        .with(
            Teacher,
            RoleRecord {
                sis_id: s("T2002"),
                teacher_number: s("2002"),
                title: s("Math teacher"),
                district_username: s("tnakamura"),
                ..RoleRecord::default()
            },
        )
        .with(
            DistrictAdmin,
            RoleRecord {
                title: s("Technology coordinator"),
                ..RoleRecord::default()
            },
        ),
        user(
            "5fc43758db087d0be186c2e5",
            a,
            "contact",
            [None, None, Some("Casey Brooks")],
            None,
        )
        .with(
            Contact,
            RoleRecord {
                sis_id: s("C5001"),
                phone: s("555-0100"),
                ..RoleRecord::default()
            },
        ),
        user(
            "5fc43758db087d0be186c2f6",
            a,
            "student",
            [Some("Ava"), None, Some("Chen")],
            None,
        )
        .with(
            Student,
            RoleRecord {
                sis_id: s("S100235"),
                student_number: s("100235"),
                grade: s("K"),
                graduation_year: s("2039"),
                district_username: s("achen"),
                ..RoleRecord::default()
            },
        ),
        user(
            "5fc43758db087d0be186c307",
            a,
            "teacher",
            [Some("Jordan"), None, Some("Reyes")],
            Some("jordan.reyes@example-district.org"),
        )
        .with(
            Teacher,
            RoleRecord {
                sis_id: s("T2003"),
                teacher_number: s("2003"),
                district_username: s("jreyes"),
                ..RoleRecord::default()
            },
        )
        .with_null(Staff),
        user(
            "60a1f0c2e4b0a1b2c3d4e5f6",
            Some(DEMO_DISTRICT_2),
            "teacher",
            [Some("Sam"), None, Some("Okonkwo")],
            Some("sam.okonkwo@other-district.example.org"),
        )
        .with(
            Teacher,
            RoleRecord {
                sis_id: s("T9001"),
                teacher_number: s("9001"),
                district_username: s("sokonkwo"),
                ..RoleRecord::default()
            },
        ),
        user(
            "61b2c3d4e5f60718293a4b5c",
            None,
            "student",
            [Some("Lee"), None, Some("Park")],
            None,
        )
        .with(
            Student,
            RoleRecord {
                grade: s("3"),
                ..RoleRecord::default()
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_users_cover_the_roster() {
        let users = demo_users();
        assert!(users.iter().all(|u| [&u.id, &u.multi_role_user_id]
            .iter()
            .all(|id| id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()))));
        let has = |roles: &[UserType]| users.iter().any(|u| u.role_types() == roles);
        assert!(has(&[UserType::Student]));
        assert!(has(&[UserType::Teacher]));
        assert!(has(&[UserType::Staff]));
        assert!(has(&[UserType::DistrictAdmin]));
        assert!(has(&[UserType::Teacher, UserType::DistrictAdmin]));
        assert!(has(&[UserType::Contact]));
        assert!(users.iter().any(|u| !u.full_name().is_ascii()));
        assert!(users
            .iter()
            .any(|u| u.role_types() == [UserType::Teacher] && u.in_district(DEMO_DISTRICT_2)));
        assert!(users
            .iter()
            .filter(|u| u.role_types().contains(&UserType::Staff))
            .all(|u| u.v2_type == "school_admin"));
        let mut ids: Vec<_> = users.iter().map(|u| &u.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), users.len());
    }

    #[test]
    fn demo_users_cover_the_record_shapes_apps_key_on() {
        use UserType::*;
        let users = demo_users();
        let in_d1 = |u: &&SimUser| u.in_district(DEMO_DISTRICT);
        let students = || {
            users
                .iter()
                .filter(in_d1)
                .filter(|u| u.role(Student).is_some())
        };
        assert!(students().any(|u| u.email.is_some()));
        assert!(students().any(|u| u.email.is_none()));
        assert!(students().all(|u| u.role(Student).unwrap().student_number.is_some()));
        let teachers = || {
            users
                .iter()
                .filter(in_d1)
                .filter(|u| u.role(Teacher).is_some())
        };
        assert!(teachers().any(|u| u.role(Teacher).unwrap().district_username.is_some()));
        assert!(teachers()
            .any(|u| u.role(Teacher).unwrap().district_username.is_none() && u.email.is_some()));
        let staff = users.iter().find_map(|u| u.role(Staff)).unwrap();
        assert!(staff.staff_id.is_some() && !staff.job_roles.is_empty());
        let contact = users.iter().find(|u| u.role(Contact).is_some()).unwrap();
        assert!(contact.first.is_none() && contact.last.is_some());
        // A null role is listed but not read as a role.
        let nulled = users
            .iter()
            .find(|u| u.roles.iter().any(|r| r.record.is_none()))
            .unwrap();
        assert_eq!(nulled.role_types(), [Teacher]);
        assert_eq!(nulled.roles.len(), 2);
    }
}
