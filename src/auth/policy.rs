//! Per-upstream access policy: allowed user types and districts, and the `required_headers`
//! that must be buildable from the user's record.

use crate::config::{SendValue, Upstream};
use crate::identity::template::missing_sentence;
use crate::identity::{FieldSet, Identity, Outcome, ValueSpec};
use crate::session::SessionRecord;

/// Why a signed-in user is refused by an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    UserType,
    District,
    /// A `required_headers` header cannot be built from the user's record: `missing` are the
    /// fields that stopped it (none: the header's role table has no entry for the user).
    /// `stale`: some of them were not asked of Clever when the session began (a configuration
    /// changed since), so they may well exist.
    MissingField {
        header: String,
        missing: FieldSet,
        stale: bool,
    },
}

impl Denial {
    pub fn message(&self) -> String {
        match self {
            Denial::UserType => {
                "You are signed in, but this app is not open to your role. If you think this is wrong, contact your district's technology team.".to_string()
            }
            Denial::District => {
                "You are signed in, but this app is not open to your district. If you think this is wrong, contact your district's technology team.".to_string()
            }
            Denial::MissingField { stale: true, .. } => {
                "You signed in before this app's settings changed, so the gateway does not yet have everything it needs to open it for you. Sign out and sign in again.".to_string()
            }
            Denial::MissingField { missing, .. } if missing.is_empty() => {
                format!("{}. Contact your district's technology team.", missing_sentence(*missing))
            }
            Denial::MissingField { missing, .. } => format!(
                "{}; ask your district's Clever administrator.",
                missing_sentence(*missing)
            ),
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Denial::UserType => "user_type_not_allowed",
            Denial::District => "district_not_allowed",
            Denial::MissingField { .. } => "missing_field",
        }
    }
}

/// A multi-role user passes if any of their roles is allowed (`school_admin` = `staff`).
pub fn check(upstream: &Upstream, identity: &Identity) -> Result<(), Denial> {
    if let Some(types) = &upstream.allow_user_types {
        if !identity.roles().any_of(types) {
            return Err(Denial::UserType);
        }
    }
    if let Some(districts) = &upstream.allow_districts {
        match identity.district_id() {
            Some(d) if districts.iter().any(|a| a == d) => {}
            _ => return Err(Denial::District),
        }
    }
    Ok(())
}

/// Every `required_headers` header of `upstream` has a value for this session (`specs`: the
/// configuration's, as the session renders them).
pub fn required(
    upstream: &Upstream,
    rec: &SessionRecord,
    specs: &[ValueSpec],
) -> Result<(), Denial> {
    for h in upstream.headers.iter().filter(|h| h.required) {
        let SendValue::Spec(i) = h.value else {
            continue;
        };
        if rec.rendered(specs).has(i) {
            continue;
        }
        let missing = match specs.get(i).map(|s| s.render(&rec.identity)) {
            Some(Outcome::Missing(m)) => m,
            _ => FieldSet::EMPTY,
        };
        return Err(Denial::MissingField {
            header: String::from_utf8_lossy(&h.wire).into_owned(),
            stale: !missing.minus(rec.identity.kept()).is_empty(),
            missing,
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::UpstreamUrl;
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
            app_cookies: Vec::new(),
            logout_paths: Vec::new(),
            headers: Vec::new(),
            scrubbed: Vec::new(),
        }
    }

    fn who(types: Vec<UserType>, district: Option<&str>) -> Identity {
        let b = Identity::builder("u").roles(types);
        match district {
            Some(d) => b.district(d),
            None => b,
        }
        .build()
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
