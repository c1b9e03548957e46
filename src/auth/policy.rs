//! Per-upstream access policy: allowed user types and districts.

use crate::config::Upstream;
use crate::identity::Identity;

/// Why a signed-in user is refused by an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    UserType,
    District,
}

impl Denial {
    pub fn message(&self) -> &'static str {
        match self {
            Denial::UserType => {
                "You are signed in, but this app is not open to your role. If you think this is wrong, contact your district's technology team."
            }
            Denial::District => {
                "You are signed in, but this app is not open to your district. If you think this is wrong, contact your district's technology team."
            }
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Denial::UserType => "user_type_not_allowed",
            Denial::District => "district_not_allowed",
        }
    }
}

/// A multi-role user passes if any of their roles is allowed (`school_admin` = `staff`).
pub fn check(upstream: &Upstream, identity: &Identity) -> Result<(), Denial> {
    if let Some(types) = &upstream.allow_user_types {
        if !identity.user_types.iter().any(|t| types.contains(t)) {
            return Err(Denial::UserType);
        }
    }
    if let Some(districts) = &upstream.allow_districts {
        match &identity.district_id {
            Some(d) if districts.iter().any(|a| a == d) => {}
            _ => return Err(Denial::District),
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{HeaderNames, UpstreamUrl};
    use crate::identity::UserType;

    pub(crate) fn upstream(types: Option<Vec<UserType>>, districts: Option<Vec<&str>>) -> Upstream {
        Upstream {
            name: "app".into(),
            url: UpstreamUrl {
                original: "http://127.0.0.1:9000".parse().unwrap(),
                tls: false,
                host: "127.0.0.1".into(),
                port: 9000,
                addr: "127.0.0.1:9000".parse().unwrap(),
                base_path: String::new(),
            },
            tls_verify: true,
            tls_ca: None,
            timeout: std::time::Duration::from_secs(60),
            host: None,
            path_prefix: "/".into(),
            allow_user_types: types,
            allow_districts: districts.map(|d| d.into_iter().map(String::from).collect()),
            login_district_id: None,
            public_paths: vec![],
            strip_path_prefix: false,
            forward_access_token: false,
            assertion: None,
            confirm_students: false,
            headers: HeaderNames::default(),
        }
    }

    fn who(types: Vec<UserType>, district: Option<&str>) -> Identity {
        Identity {
            user_id: "u".into(),
            district_id: district.map(String::from),
            user_types: types,
            name: None,
            email: None,
            authorized_by: None,
            school_ids: Vec::new(),
            section_ids: Vec::new(),
        }
        .normalize()
    }

    #[test]
    fn check_student_on_teacher_only_upstream_denied() {
        let u = upstream(Some(vec![UserType::Teacher]), None);
        assert_eq!(
            check(&u, &who(vec![UserType::Student], Some("d"))),
            Err(Denial::UserType)
        );
    }

    #[test]
    fn check_multi_role_passes_if_any_role_allowed() {
        let u = upstream(Some(vec![UserType::DistrictAdmin]), None);
        assert_eq!(
            check(
                &u,
                &who(vec![UserType::Teacher, UserType::DistrictAdmin], None)
            ),
            Ok(())
        );
    }

    #[test]
    fn check_v2_school_admin_matches_staff_policy() {
        let u = upstream(Some(vec![UserType::parse("school_admin").unwrap()]), None);
        assert_eq!(check(&u, &who(vec![UserType::Staff], None)), Ok(()));
    }

    #[test]
    fn check_district_allow_list() {
        let u = upstream(None, Some(vec!["d1"]));
        assert_eq!(check(&u, &who(vec![UserType::Teacher], Some("d1"))), Ok(()));
        assert_eq!(
            check(&u, &who(vec![UserType::Teacher], Some("d2"))),
            Err(Denial::District)
        );
        assert_eq!(
            check(&u, &who(vec![UserType::Teacher], None)),
            Err(Denial::District)
        );
    }

    #[test]
    fn check_no_policy_everyone_passes() {
        let u = upstream(None, None);
        assert_eq!(check(&u, &who(vec![UserType::Contact], None)), Ok(()));
    }
}
