//! `[upstream.headers]`: the identity header names sent upstream: valid, not ones the gateway or
//! HTTP itself uses, and distinct from each other.

use http::HeaderName;

use super::Ctx;
use crate::config::file::{quote, HeadersFile, Sp};
use crate::config::model::HeaderNames;

/// Headers the gateway itself sets or that carry the request's framing: never identity headers.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "cookie",
    "set-cookie",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

/// One identity header as it will be sent: its `[upstream.headers]` key, its name, and where it
/// was written (absent for a default).
struct ChosenHeader<'f> {
    field: &'static str,
    header: HeaderName,
    written: Option<&'f Sp<String>>,
}

pub(super) fn headers(
    ctx: &mut Ctx<'_, '_>,
    table: Option<&Sp<HeadersFile>>,
) -> Option<HeaderNames> {
    let defaults = HeaderNames::default();
    let Some(table) = table else {
        return Some(defaults);
    };
    let h = table.get_ref();
    let mut ok = true;
    let fields = [
        ("user_id", &h.user_id, Some(&defaults.user_id)),
        ("user_type", &h.user_type, Some(&defaults.user_type)),
        ("district_id", &h.district_id, Some(&defaults.district_id)),
        ("email", &h.email, None),
        ("name", &h.name, None),
        (
            "access_token",
            &h.access_token,
            Some(&defaults.access_token),
        ),
        ("school_ids", &h.school_ids, None),
        ("section_ids", &h.section_ids, None),
    ];
    let mut chosen: Vec<ChosenHeader<'_>> = Vec::new();
    for (field, value, default) in fields {
        let header = match value {
            None => default.cloned(),
            Some(v) => match HeaderName::from_bytes(v.get_ref().as_bytes()) {
                Ok(n) if RESERVED_HEADERS.contains(&n.as_str()) => {
                    ok = false;
                    ctx.err(
                        v.span(),
                        format!(
                            "upstream.headers.{field} {} is a header the gateway or HTTP itself \
                             uses: choose another name, such as \"X-Clever-User-Id\"",
                            quote(v.get_ref())
                        ),
                    );
                    None
                }
                Ok(n) => Some(n),
                Err(_) => {
                    ok = false;
                    ctx.err(
                        v.span(),
                        format!(
                            "upstream.headers.{field} {} is not a valid header name: expected \
                             letters, digits and - such as \"X-Clever-User-Id\"",
                            quote(v.get_ref())
                        ),
                    );
                    None
                }
            },
        };
        if let Some(header) = header {
            chosen.push(ChosenHeader {
                field,
                header,
                written: value.as_ref(),
            });
        }
    }

    // `_` and `-` are the same header to CGI and PHP apps.
    let norm = |h: &HeaderName| h.as_str().replace('_', "-");
    for (j, later) in chosen.iter().enumerate() {
        for earlier in &chosen[..j] {
            if norm(&later.header) != norm(&earlier.header) {
                continue;
            }
            // Point at a name the user wrote (two defaults never clash).
            let (this, other) = if later.written.is_some() {
                (later, earlier)
            } else {
                (earlier, later)
            };
            if let Some(v) = this.written {
                ok = false;
                ctx.err(
                    v.span(),
                    format!(
                        "upstream.headers.{} {} is the same header as {} (\"_\" and \"-\" count \
                         as equal): give each identity header its own name",
                        this.field,
                        quote(v.get_ref()),
                        other.field
                    ),
                );
            }
        }
    }

    if !ok {
        return None;
    }
    let mut names = defaults.clone();
    for c in chosen {
        match c.field {
            "user_id" => names.user_id = c.header,
            "user_type" => names.user_type = c.header,
            "district_id" => names.district_id = c.header,
            "email" => names.email = Some(c.header),
            "name" => names.name = Some(c.header),
            "school_ids" => names.school_ids = Some(c.header),
            "section_ids" => names.section_ids = Some(c.header),
            _ => names.access_token = c.header,
        }
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;

    #[test]
    fn upstream_headers_are_lowercased_and_optional_ones_set() {
        let c = ok(&doc(
            "",
            "",
            "",
            "[upstream.headers]\nuser_id = \"Remote-User\"\nemail = \"X-Email\"\naccess_token = \"X-Token\"",
        ));
        let h = &c.upstreams[0].headers;
        assert_eq!(h.user_id.as_str(), "remote-user");
        assert_eq!(h.user_type.as_str(), "x-clever-user-type");
        assert_eq!(h.email.as_ref().map(|h| h.as_str()), Some("x-email"));
        assert_eq!(h.name, None);
        assert_eq!(h.access_token.as_str(), "x-token");
    }

    #[test]
    fn upstream_headers_invalid_name_is_error() {
        one(
            &doc("", "", "", "[upstream.headers]\nname = \"X Name\""),
            &["upstream.headers.name", "not a valid header name"],
        );
    }

    #[test]
    fn upstream_headers_reserved_name_is_error() {
        one(
            &doc("", "", "", "[upstream.headers]\nuser_id = \"Cookie\""),
            &["choose another"],
        );
    }

    #[test]
    fn upstream_headers_same_name_modulo_underscore_is_error() {
        let src = doc(
            "",
            "",
            "",
            "[upstream.headers]\nuser_id = \"X-User\"\nemail = \"x_user\"",
        );
        let p = one(&src, &["upstream.headers.email", "same header as user_id"]);
        assert_eq!(p.line, line_of(&src, "email = "));
    }

    #[test]
    fn upstream_headers_clash_with_default_is_error() {
        one(
            &doc(
                "",
                "",
                "",
                "[upstream.headers]\nname = \"X-Clever-User-Type\"",
            ),
            &["same header as user_type"],
        );
    }

    #[test]
    fn upstream_headers_school_and_section_ids_off_unless_named() {
        let c = ok(&doc("", "", "", ""));
        assert_eq!(c.upstreams[0].headers.school_ids, None);
        assert_eq!(c.upstreams[0].headers.section_ids, None);
        let c = ok(&doc(
            "",
            "discover_district_tokens = true",
            "",
            "[upstream.headers]\nschool_ids = \"X-Clever-School-Ids\"\nsection_ids = \"X-Sections\"",
        ));
        let h = &c.upstreams[0].headers;
        assert_eq!(
            h.school_ids.as_ref().map(|h| h.as_str()),
            Some("x-clever-school-ids")
        );
        assert_eq!(
            h.section_ids.as_ref().map(|h| h.as_str()),
            Some("x-sections")
        );
        assert!(
            h.all().any(|n| n == "x-sections"),
            "scrubbed like the others"
        );
        one(
            &doc(
                "",
                "",
                "",
                "[upstream.headers]\nschool_ids = \"X_Clever_User_Id\"",
            ),
            &["same header as user_id"],
        );
    }

    #[test]
    fn upstream_headers_inline_table_is_accepted() {
        let c = ok(&doc("", "", "", "headers = { email = \"X-Mail\" }"));
        assert!(c.upstreams[0].headers.email.is_some());
    }
}
