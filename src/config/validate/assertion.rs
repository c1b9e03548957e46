//! `[assertion]`: the issuer of signed identity assertions, the signing key file, previous keys
//! kept published during a rotation, and for how long.

use super::{val, vals, Ctx};
use crate::config::file::{AssertionFile, Table};
use crate::config::model::{AssertionConfig, CleverConfig};

/// `Some(None)`: assertions are off (no table, no upstream asks); `None`: invalid (reported).
/// `wanted`: some upstream sets `assertion = true`.
pub(super) fn assertion(
    ctx: &mut Ctx<'_, '_>,
    table: Option<&Table<AssertionFile>>,
    clever: Option<&CleverConfig>,
    wanted: bool,
) -> Option<Option<AssertionConfig>> {
    if table.is_none() && !wanted && ctx.valid("assertion") {
        return Some(None);
    }
    let default = AssertionFile::default();
    let a = table.map_or(&default, |t| &t.get_ref().0);
    Some(Some(AssertionConfig {
        issuer: match &a.issuer {
            Some(v) => v.text.clone(),
            // Invalid [clever] is reported there.
            None => clever?.redirect_uri.origin().ascii_serialization(),
        },
        key_file: val(&a.key_file),
        previous_key_files: vals(&a.previous_key_files),
        overlap: val(&a.overlap).unwrap_or_default().0,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use std::time::Duration;

    fn with(table: &str, upstream: &str) -> String {
        format!("{}\n[assertion]\n{table}\n", doc("", "", "", upstream))
    }

    #[test]
    fn assertion_off_without_table_or_upstream() {
        assert!(ok(&doc("", "", "", "")).assertion.is_none());
        assert!(ok(&doc("", "", "", "")).upstreams[0].assertion.is_none());
    }

    #[test]
    fn assertion_upstream_on_defaults_issuer_audience_overlap() {
        let c = ok(&doc("", "", "", "assertion = true"));
        let a = c.assertion.expect("on");
        assert_eq!(a.issuer, "https://gw.example.org");
        assert_eq!(a.key_file, None);
        assert_eq!(a.overlap, Duration::from_secs(3600));
        assert_eq!(c.upstreams[0].assertion.as_deref(), Some("app"));
    }

    #[test]
    fn assertion_table_keys_read() {
        let c = ok(&with(
            "issuer = \"https://sso.example.org\"\nkey_file = \"/k.pem\"\n\
             previous_key_files = [\"/old.pem\"]\noverlap = \"2h\"",
            "assertion = true\nassertion_audience = \"urn:gradebook\"",
        ));
        let a = c.assertion.unwrap();
        assert_eq!(a.issuer, "https://sso.example.org");
        assert_eq!(a.key_file.unwrap().to_str(), Some("/k.pem"));
        assert_eq!(a.previous_key_files.len(), 1);
        assert_eq!(a.overlap, Duration::from_secs(7200));
        assert_eq!(c.upstreams[0].assertion.as_deref(), Some("urn:gradebook"));
    }

    #[test]
    fn assertion_audience_without_assertion_is_error() {
        let src = doc("", "", "", "assertion_audience = \"x\"");
        let p = one(&src, &["assertion_audience", "assertion = true"]);
        assert_eq!(p.line, line_of(&src, "assertion_audience"));
    }

    #[test]
    fn assertion_short_overlap_bad_issuer_unknown_key_are_errors() {
        one(&with("overlap = \"1m\"", ""), &["assertion.overlap", "5m"]);
        one(&with("issuer = \"ftp://x\"", ""), &["assertion.issuer"]);
        one(&with("key = \"/k.pem\"", ""), &["unknown key", "key_file"]);
        one(
            &with("previous_key_files = [\"\"]", ""),
            &["previous_key_files"],
        );
    }
}
