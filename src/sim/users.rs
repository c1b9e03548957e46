//! Simulated Clever users: the `SimUser` record and the built-in demo roster.

use crate::identity::UserType;

/// The main demo district (the id used in Clever's own API examples).
pub const DEMO_DISTRICT: &str = "5d0a9e5d0958b300014e49d2";
/// A second district (Clever's sandbox district id), for district-policy tests.
pub const DEMO_DISTRICT_2: &str = "53ee4b8a44abc88c1c00119b";

/// A user the simulator can sign in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimUser {
    /// Clever user id, 24 hex characters.
    pub id: String,
    /// District id; `None` for teacher-authorized (Clever Library) logins.
    pub district: Option<String>,
    /// v3 roles (the keys of `data.roles` in `/v3.0/users/{id}`), in a stable order.
    pub roles: Vec<UserType>,
    /// The v2 `type` of this user (`school_admin` for staff).
    pub v2_type: String,
    pub first: String,
    pub middle: Option<String>,
    pub last: String,
    pub email: Option<String>,
    /// `"district"` or `"teacher"`.
    pub authorized_by: String,
}

impl SimUser {
    /// "First Last" (the middle name is left out, as Clever's OIDC `name` does).
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first, self.last)
    }

    /// Whether this user can sign in at `district_id` (teacher-authorized users never can).
    pub fn in_district(&self, district_id: &str) -> bool {
        self.district.as_deref() == Some(district_id)
    }

    /// A plausible `district_username` derived from the email or the name.
    pub(crate) fn username(&self) -> String {
        match self.email.as_deref().and_then(|e| e.split('@').next()) {
            Some(local) if !local.is_empty() => local.to_string(),
            _ => format!("{}.{}", self.first, self.last).to_lowercase(),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn user(
    id: &str,
    district: Option<&str>,
    roles: &[UserType],
    v2_type: &str,
    first: &str,
    middle: Option<&str>,
    last: &str,
    email: Option<&str>,
) -> SimUser {
    SimUser {
        id: id.to_string(),
        district: district.map(str::to_string),
        roles: roles.to_vec(),
        v2_type: v2_type.to_string(),
        first: first.to_string(),
        middle: middle.map(str::to_string),
        last: last.to_string(),
        email: email.map(str::to_string),
        authorized_by: if district.is_some() {
            "district"
        } else {
            "teacher"
        }
        .to_string(),
    }
}

/// The demo roster. Ids are stable so tests and docs can name them:
///
/// | id | who | roles | district |
/// | --- | --- | --- | --- |
/// | `5fc43758db087d0be186c29d` | José Ñúñez (non-ASCII name) | student | [`DEMO_DISTRICT`] |
/// | `5fc43758db087d0be186c2a1` | Maria Lopez | teacher | [`DEMO_DISTRICT`] |
/// | `5fc43758db087d0be186c2b2` | Pat Okafor | staff (v2 `school_admin`) | [`DEMO_DISTRICT`] |
/// | `5fc43758db087d0be186c2c3` | Dana Whitfield | district_admin | [`DEMO_DISTRICT`] |
/// | `5fc43758db087d0be186c2d4` | Terry Nakamura | teacher + district_admin | [`DEMO_DISTRICT`] |
/// | `5fc43758db087d0be186c2e5` | Casey Brooks (no email) | contact | [`DEMO_DISTRICT`] |
/// | `60a1f0c2e4b0a1b2c3d4e5f6` | Sam Okonkwo | teacher | [`DEMO_DISTRICT_2`] |
/// | `61b2c3d4e5f60718293a4b5c` | Lee Park | student, teacher-authorized (no district) | none |
pub fn demo_users() -> Vec<SimUser> {
    use UserType::*;
    let a = Some(DEMO_DISTRICT);
    vec![
        user(
            "5fc43758db087d0be186c29d",
            a,
            &[Student],
            "student",
            "José",
            Some("Luis"),
            "Ñúñez",
            Some("jose.nunez@students.example-district.org"),
        ),
        user(
            "5fc43758db087d0be186c2a1",
            a,
            &[Teacher],
            "teacher",
            "Maria",
            None,
            "Lopez",
            Some("maria.lopez@example-district.org"),
        ),
        user(
            "5fc43758db087d0be186c2b2",
            a,
            &[Staff],
            "school_admin",
            "Pat",
            None,
            "Okafor",
            Some("pat.okafor@example-district.org"),
        ),
        user(
            "5fc43758db087d0be186c2c3",
            a,
            &[DistrictAdmin],
            "district_admin",
            "Dana",
            Some("K."),
            "Whitfield",
            Some("dana.whitfield@example-district.org"),
        ),
        user(
            "5fc43758db087d0be186c2d4",
            a,
            &[Teacher, DistrictAdmin],
            "teacher",
            "Terry",
            None,
            "Nakamura",
            Some("terry.nakamura@example-district.org"),
        ),
        user(
            "5fc43758db087d0be186c2e5",
            a,
            &[Contact],
            "contact",
            "Casey",
            None,
            "Brooks",
            None,
        ),
        user(
            "60a1f0c2e4b0a1b2c3d4e5f6",
            Some(DEMO_DISTRICT_2),
            &[Teacher],
            "teacher",
            "Sam",
            None,
            "Okonkwo",
            Some("sam.okonkwo@other-district.example.org"),
        ),
        user(
            "61b2c3d4e5f60718293a4b5c",
            None,
            &[Student],
            "student",
            "Lee",
            None,
            "Park",
            None,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_users_cover_the_roster() {
        let users = demo_users();
        assert!(users
            .iter()
            .all(|u| u.id.len() == 24 && u.id.bytes().all(|b| b.is_ascii_hexdigit())));
        let has = |roles: &[UserType]| users.iter().any(|u| u.roles == roles);
        assert!(has(&[UserType::Student]));
        assert!(has(&[UserType::Teacher]));
        assert!(has(&[UserType::Staff]));
        assert!(has(&[UserType::DistrictAdmin]));
        assert!(has(&[UserType::Teacher, UserType::DistrictAdmin]));
        assert!(has(&[UserType::Contact]));
        assert!(users.iter().any(|u| !u.full_name().is_ascii()));
        assert!(users
            .iter()
            .any(|u| u.roles == [UserType::Teacher] && u.in_district(DEMO_DISTRICT_2)));
        assert!(users
            .iter()
            .filter(|u| u.roles.contains(&UserType::Staff))
            .all(|u| u.v2_type == "school_admin"));
        let mut ids: Vec<_> = users.iter().map(|u| &u.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), users.len());
    }
}
