//! Login-time enrichment of the identity for the upstreams that ask for it: school ids (already
//! in `/users/{id}`, kept only when an upstream sends them) and section ids (read once, at
//! login, with the user's district's district-app token, when an upstream sends them). The
//! result is stored with the identity in the session; no request after login calls Clever.
//!
//! Enrichment never fails a login: when sections cannot be read the user simply gets no
//! section header, and the reason is logged once per district and reason.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::clever::district::{DistrictTokens, TokenSource};
use crate::clever::roster::SectionsError;
use crate::clever::CleverClient;
use crate::config::Config;
use crate::identity::Identity;
use crate::secret::Secret;

/// At most this many (district, reason) pairs are remembered as logged.
const MAX_LOGGED: usize = 10_000;

/// Whether and how to read a user's sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionPlan {
    /// Read them with this token.
    Fetch(Secret, TokenSource),
    /// No upstream sends section ids.
    NotWanted,
    /// The login has no district (a teacher-authorized, Clever Library login).
    NoDistrict,
    /// No district-app token is known for the user's district.
    NoToken,
}

/// Decides whether the sections of `identity` are read, and with which token.
pub fn plan_sections(wanted: bool, identity: &Identity, tokens: &DistrictTokens) -> SectionPlan {
    if !wanted {
        return SectionPlan::NotWanted;
    }
    let Some(district) = identity.district_id.as_deref().filter(|d| !d.is_empty()) else {
        return SectionPlan::NoDistrict;
    };
    match tokens.get(district) {
        Some((token, source)) => SectionPlan::Fetch(token, source),
        None => SectionPlan::NoToken,
    }
}

/// Enriches identities at login; shared by every login.
#[derive(Debug)]
pub struct Enricher {
    wants_schools: bool,
    wants_sections: bool,
    tokens: Arc<DistrictTokens>,
    /// (district id, reason) pairs already logged.
    logged: Mutex<HashSet<(String, &'static str)>>,
}

impl Enricher {
    pub fn new(cfg: &Config, tokens: Arc<DistrictTokens>) -> Self {
        Enricher {
            wants_schools: cfg.wants_school_ids(),
            wants_sections: cfg.wants_section_ids(),
            tokens,
            logged: Mutex::default(),
        }
    }

    /// The district-app tokens enrichment reads with (discovery refreshes them in place).
    pub fn tokens(&self) -> &Arc<DistrictTokens> {
        &self.tokens
    }

    /// Adds what the upstreams ask for to a fresh identity; never fails.
    pub async fn enrich(&self, clever: &CleverClient, identity: &mut Identity, request_id: &str) {
        if !self.wants_schools {
            identity.school_ids = Vec::new();
        }
        let district = identity.district_id.clone().unwrap_or_default();
        match plan_sections(self.wants_sections, identity, &self.tokens) {
            SectionPlan::NotWanted | SectionPlan::NoDistrict => {}
            SectionPlan::NoToken => {
                if self.first_time(&district, "no_token") {
                    tracing::info!(
                        request_id,
                        district_id = %district,
                        "no district-app token for this district: its users get no section ids \
                         (add a [[district]] table or discover_district_tokens; logged once per \
                         district)"
                    );
                }
            }
            SectionPlan::Fetch(token, source) => {
                match clever.user_sections(&identity.user_id, &token).await {
                    Ok(ids) => identity.section_ids = ids,
                    Err(e) => self.sections_failed(&district, source, &e, request_id),
                }
            }
        }
    }

    fn sections_failed(
        &self,
        district: &str,
        source: TokenSource,
        e: &SectionsError,
        request_id: &str,
    ) {
        if !self.first_time(district, e.reason()) {
            return;
        }
        match e {
            SectionsError::NoAccess(status) => tracing::warn!(
                request_id,
                district_id = %district,
                status,
                token_source = source.as_str(),
                "district has no Secure Sync access to sections (or its token was revoked): its \
                 users get no section ids; `clever-gateway check --online` tells which (logged \
                 once per district)"
            ),
            _ => tracing::warn!(
                request_id,
                district_id = %district,
                reason = e.reason(),
                error = %e,
                "could not read the user's sections; the login goes on without section ids \
                 (logged once per district and reason)"
            ),
        }
    }

    /// Whether (district, reason) is logged for the first time (and remembers it).
    fn first_time(&self, district: &str, reason: &'static str) -> bool {
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.len() >= MAX_LOGGED {
            return false;
        }
        logged.insert((district.to_string(), reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::UserType;

    fn who(district: Option<&str>) -> Identity {
        Identity {
            user_id: "u".into(),
            district_id: district.map(String::from),
            user_types: vec![UserType::Teacher],
            name: None,
            email: None,
            authorized_by: None,
            school_ids: vec![],
            section_ids: vec![],
        }
    }

    #[test]
    fn plan_fetches_only_when_wanted_with_a_district_and_a_token() {
        let tokens = DistrictTokens::new([("d1".to_string(), Secret::new("t"))]);
        assert_eq!(
            plan_sections(true, &who(Some("d1")), &tokens),
            SectionPlan::Fetch(Secret::new("t"), TokenSource::Config)
        );
        assert_eq!(
            plan_sections(false, &who(Some("d1")), &tokens),
            SectionPlan::NotWanted
        );
        assert_eq!(
            plan_sections(true, &who(None), &tokens),
            SectionPlan::NoDistrict
        );
        assert_eq!(
            plan_sections(true, &who(Some("")), &tokens),
            SectionPlan::NoDistrict
        );
        assert_eq!(
            plan_sections(true, &who(Some("d2")), &tokens),
            SectionPlan::NoToken
        );
    }

    #[test]
    fn first_time_is_once_per_district_and_reason() {
        let cfg = crate::config::parse_str(
            "[clever]\nclient_id = \"id\"\nclient_secret_env = \"S\"\nredirect_uri = \"https://gw.example.org/cb\"\n[[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9000\"\n",
            "t.toml",
        )
        .unwrap();
        let e = Enricher::new(&cfg, Arc::default());
        assert!(e.first_time("d1", "no_secure_sync"));
        assert!(!e.first_time("d1", "no_secure_sync"));
        assert!(e.first_time("d1", "clever_timeout"));
        assert!(e.first_time("d2", "no_secure_sync"));
    }
}
