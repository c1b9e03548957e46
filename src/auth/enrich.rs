//! Sign-in-time enrichment of the user's record for the headers the upstreams send, and what
//! the session keeps of it:
//!
//! 1. **The fuller record.** When a header that applies to this user (on any upstream) needs a
//!    field the sign-in token's `/users/{id}` answer lacks (Clever's District SSO tier shows
//!    that token only names and email), `/users/{id}` is read once more with the user's
//!    district's district-app token, which a Secure Sync district lets read the whole record;
//!    what it adds fills the gaps. At most one extra call per sign-in.
//! 2. **Section ids**, read with the same token, when an upstream sends them.
//! 3. **Only what is used is kept**: the fields of section 3 and those some header names
//!    ([`Config::kept_fields`]); the session remembers which fields it asked for.
//!
//! Enrichment never fails a sign-in: without a token, or when Clever refuses or is slow, the
//! user simply lacks those fields, and the reason is logged once per district and reason.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::clever::district::{DistrictTokens, TokenSource};
use crate::clever::roster::SectionsError;
use crate::clever::{CleverClient, CleverError};
use crate::config::Config;
use crate::identity::{Field, FieldSet, Identity, ValueSpec};
use crate::secret::Secret;

/// At most this many (district, read, reason) triples are remembered as logged.
const MAX_LOGGED: usize = 10_000;

/// Whether and how to make a read with the user's district's district-app token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenPlan {
    /// Read with this token.
    Fetch(Secret, TokenSource),
    /// Nothing asks for the read.
    NotWanted,
    /// The login has no district (a teacher-authorized, Clever Library login).
    NoDistrict,
    /// No district-app token is known for the user's district.
    NoToken,
}

/// Decides whether a read for `identity` is made, and with which token.
pub fn plan(wanted: bool, identity: &Identity, tokens: &DistrictTokens) -> TokenPlan {
    if !wanted {
        return TokenPlan::NotWanted;
    }
    let Some(district) = identity.district_id() else {
        return TokenPlan::NoDistrict;
    };
    match tokens.get(district) {
        Some((token, source)) => TokenPlan::Fetch(token, source),
        None => TokenPlan::NoToken,
    }
}

/// The two reads made with a district-app token, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Read {
    Record,
    Sections,
}

/// Enriches records at sign-in; shared by every sign-in.
#[derive(Debug)]
pub struct Enricher {
    /// The configuration's header value specs: what decides which fields a user needs.
    specs: Vec<ValueSpec>,
    kept: FieldSet,
    wants_sections: bool,
    tokens: Arc<DistrictTokens>,
    /// (district id, read, reason) triples already logged.
    logged: Mutex<HashSet<(String, Read, &'static str)>>,
}

impl Enricher {
    pub fn new(cfg: &Config, tokens: Arc<DistrictTokens>) -> Self {
        Enricher {
            specs: cfg.header_specs.clone(),
            kept: cfg.kept_fields,
            wants_sections: cfg.wants_section_ids(),
            tokens,
            logged: Mutex::default(),
        }
    }

    /// The fields `/users/{id}` carries that `identity` lacks although a header that applies
    /// to this user needs them (the roles always: policies need them).
    pub fn lacking(&self, identity: &Identity) -> FieldSet {
        let mut needs = self
            .specs
            .iter()
            .fold(FieldSet::EMPTY, |n, s| n.union(s.needs(identity)));
        needs.insert(Field::UserType);
        needs
            .iter()
            .filter(|f| f.def().source.in_users_answer() && identity.get(*f).is_none())
            .collect()
    }

    /// The record as the session keeps it: enriched with what the upstreams ask for, reduced to
    /// the kept fields. Never fails.
    pub async fn enrich(&self, clever: &CleverClient, identity: Identity) -> Identity {
        let mut identity = identity;
        let lacking = self.lacking(&identity);
        let district = identity.district_id().unwrap_or_default().to_string();
        match plan(!lacking.is_empty(), &identity, &self.tokens) {
            TokenPlan::NotWanted | TokenPlan::NoDistrict => {}
            TokenPlan::NoToken => self.no_token(&district, Read::Record, lacking),
            TokenPlan::Fetch(token, source) => {
                match clever.user_record(identity.user_id(), &token).await {
                    Ok(fuller) => {
                        let before = identity.present();
                        identity = identity.fill_absent(&fuller.build());
                        let found = identity.present().minus(before);
                        tracing::debug!(
                            district_id = %district,
                            token_source = source.as_str(),
                            found = %names(found),
                            still_lacking = %names(lacking.minus(found)),
                            "read the user's record with the district-app token"
                        );
                    }
                    Err(e) => self.record_failed(&district, source, &e, lacking),
                }
            }
        }
        match plan(self.wants_sections, &identity, &self.tokens) {
            TokenPlan::NotWanted | TokenPlan::NoDistrict => {}
            TokenPlan::NoToken => self.no_token(&district, Read::Sections, FieldSet::EMPTY),
            TokenPlan::Fetch(token, source) => {
                match clever.user_sections(identity.user_id(), &token).await {
                    Ok(ids) => identity = identity.with_ids(Field::SectionIds, ids),
                    Err(e) => self.sections_failed(&district, source, &e),
                }
            }
        }
        identity.retain(self.kept)
    }

    fn no_token(&self, district: &str, read: Read, lacking: FieldSet) {
        if !self.first_time(district, read, "no_token") {
            return;
        }
        match read {
            Read::Record => tracing::info!(
                district_id = %district,
                lacking = %names(lacking),
                "no district-app token for this district: its users' headers go without the \
                 fields the sign-in answer lacks (add a [[district]] table or \
                 discover_district_tokens; logged once per district)"
            ),
            Read::Sections => tracing::info!(
                district_id = %district,
                "no district-app token for this district: its users get no section ids \
                 (add a [[district]] table or discover_district_tokens; logged once per \
                 district)"
            ),
        }
    }

    fn record_failed(
        &self,
        district: &str,
        source: TokenSource,
        e: &CleverError,
        lacking: FieldSet,
    ) {
        if !self.first_time(district, Read::Record, e.reason()) {
            tracing::debug!(district_id = %district, reason = e.reason(), "could not read the user's record with the district-app token");
            return;
        }
        let why = match e {
            CleverError::TokenRejected(_) => "the district-app token was refused (revoked?)",
            CleverError::Status(_, 404) => {
                "the district-app token cannot read the user (no Secure Sync, or not shared)"
            }
            CleverError::RateLimited(_) => "Clever is rate limiting the district-app token",
            CleverError::Timeout(_) => "Clever did not answer in time",
            _ => "Clever's answer could not be used",
        };
        tracing::warn!(
            district_id = %district,
            token_source = source.as_str(),
            reason = e.reason(),
            error = %e,
            lacking = %names(lacking),
            "could not read the user's record with the district-app token: {why}; the sign-in \
             goes on without those fields (logged once per district and reason)"
        );
    }

    fn sections_failed(&self, district: &str, source: TokenSource, e: &SectionsError) {
        if !self.first_time(district, Read::Sections, e.reason()) {
            return;
        }
        match e {
            SectionsError::NoAccess(status) => tracing::warn!(
                district_id = %district,
                status,
                token_source = source.as_str(),
                "district has no Secure Sync access to sections (or its token was revoked): its \
                 users get no section ids; `clever-gateway check --online` tells which (logged \
                 once per district)"
            ),
            _ => tracing::warn!(
                district_id = %district,
                reason = e.reason(),
                error = %e,
                "could not read the user's sections; the login goes on without section ids \
                 (logged once per district and reason)"
            ),
        }
    }

    /// Whether (district, read, reason) is logged for the first time (and remembers it).
    fn first_time(&self, district: &str, read: Read, reason: &'static str) -> bool {
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.len() >= MAX_LOGGED {
            return false;
        }
        logged.insert((district.to_string(), read, reason))
    }
}

/// Field names, comma-separated, for logs (names only, never values).
fn names(fields: FieldSet) -> String {
    fields.iter().map(Field::name).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::UserType;

    fn who(district: Option<&str>) -> Identity {
        let b = Identity::builder("u").role(UserType::Teacher);
        match district {
            Some(d) => b.district(d),
            None => b,
        }
        .build()
    }

    fn cfg(upstream: &str) -> Config {
        crate::config::parse_str(
            &format!("[clever]\nclient_id = \"id\"\nclient_secret_env = \"S\"\nredirect_uri = \"https://gw.example.org/cb\"\n[[upstream]]\nname = \"app\"\nurl = \"http://127.0.0.1:9000\"\n{upstream}\n"),
            "t.toml",
        )
        .unwrap()
    }

    #[test]
    fn plan_fetches_only_when_wanted_with_a_district_and_a_token() {
        let tokens = DistrictTokens::new([("d1".to_string(), Secret::new("t"))]);
        assert_eq!(
            plan(true, &who(Some("d1")), &tokens),
            TokenPlan::Fetch(Secret::new("t"), TokenSource::Config)
        );
        assert_eq!(plan(false, &who(Some("d1")), &tokens), TokenPlan::NotWanted);
        assert_eq!(plan(true, &who(None), &tokens), TokenPlan::NoDistrict);
        assert_eq!(plan(true, &who(Some("")), &tokens), TokenPlan::NoDistrict);
        assert_eq!(plan(true, &who(Some("d2")), &tokens), TokenPlan::NoToken);
    }

    #[test]
    fn lacking_is_what_an_applicable_template_needs_and_the_record_lacks() {
        let e = Enricher::new(
            &cfg("[upstream.set_headers]\n\"X-Remote-User\" = { student = \"{student_number}\", teacher = [\"{district_username}\", \"{email|local}\"] }\n\"X-Grade\" = { student = \"{grade}\" }"),
            Arc::default(),
        );
        let teacher = Identity::builder("u")
            .role(UserType::Teacher)
            .with(Field::Email, "a@x.org")
            .build();
        assert_eq!(
            e.lacking(&teacher),
            FieldSet::of(&[Field::DistrictId, Field::DistrictUsername]),
            "the username would win over the email; the district header is sent by default"
        );
        let student = Identity::builder("u")
            .district("d")
            .role(UserType::Student)
            .with(Field::Grade, "5")
            .build();
        assert_eq!(e.lacking(&student), FieldSet::of(&[Field::StudentNumber]));
        let no_roles = Identity::builder("u").district("d").build();
        assert_eq!(e.lacking(&no_roles), FieldSet::of(&[Field::UserType]));
        // The default configuration needs nothing beyond the sign-in answer.
        let plain = Enricher::new(&cfg(""), Arc::default());
        assert!(plain.lacking(&student).is_empty());
    }

    #[test]
    fn first_time_is_once_per_district_read_and_reason() {
        let e = Enricher::new(&cfg(""), Arc::default());
        assert!(e.first_time("d1", Read::Sections, "no_secure_sync"));
        assert!(!e.first_time("d1", Read::Sections, "no_secure_sync"));
        assert!(e.first_time("d1", Read::Record, "no_secure_sync"));
        assert!(e.first_time("d1", Read::Sections, "clever_timeout"));
        assert!(e.first_time("d2", Read::Sections, "no_secure_sync"));
    }
}
