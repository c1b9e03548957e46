//! What an upstream receives from the session: the identity headers of `[upstream.headers]`
//! (the `header` entries of the field table, each under its default or configured name),
//! `[upstream.set_headers]` (templates, lists and role tables of section 4b) and
//! `required_headers`. Names must be valid, not ones the gateway or HTTP itself uses, and
//! distinct from each other (`_` and `-` count as equal); every template must parse,
//! and use only fields the API version and the district-app tokens can give.

use std::ops::Range;

use bytes::Bytes;
use http::HeaderName;

use super::Ctx;
use crate::config::file::{quote, SetValueFile, Sp, UpstreamFile};
use crate::config::leaf::Leaf;
use crate::config::model::{ApiVersion, HeaderOrigin, SendHeader, SendValue};
use crate::identity::fields::{When, ROLE_ORDER};
use crate::identity::template::{role_key, RoleKey, Template};
use crate::identity::{canonical_header_name, Field, ValueSpec, FIELDS};

/// Headers the gateway itself sets or that carry the request's framing: never identity
/// headers. Every `X-Forwarded-` name is refused too.
const RESERVED_HEADERS: &str = "host cookie set-cookie content-length transfer-encoding \
    connection upgrade te trailer keep-alive forwarded x-request-id x-clever-assertion";

/// What the enrichment fields can come from: `school_ids`, `section_ids` and the fields of
/// `/users/{id}` need the v3 API, and section ids a district-app token to read them with.
#[derive(Clone, Copy)]
pub(super) struct Sources {
    pub api: ApiVersion,
    pub no_tokens: bool,
}

impl Sources {
    /// Why `field` cannot be had, if it cannot.
    fn lack(self, field: Field) -> Option<&'static str> {
        if self.api == ApiVersion::V2 && field.def().source.needs_v3() {
            return Some("Clever's v3 API: set clever.api_version to v3.0 or v3.1, or remove it");
        }
        (field == Field::SectionIds && self.no_tokens).then_some(
            "a district-app token: add a [[district]] or turn on clever.discover_district_tokens",
        )
    }
}

/// Why the header `name` cannot be used: the gateway sets or forbids it, or one of `claims`
/// (a name, and why it is taken) is the same header.
fn taken<'c>(name: &str, mut claims: impl Iterator<Item = (&'c str, String)>) -> Option<String> {
    let canonical = canonical_header_name(name);
    let reserved = RESERVED_HEADERS.split(' ').any(|h| h == canonical);
    if reserved || canonical.starts_with("x-forwarded-") {
        return Some("a header the gateway sets or forbids".to_owned());
    }
    let (_, why) = claims.find(|(other, _)| canonical_header_name(other) == canonical)?;
    Some(why)
}

/// The clash with `who`'s header.
fn same_as(who: &str) -> String {
    format!("the same header as {who} (\"_\" and \"-\" count as equal)")
}

/// The distinct value specs of every upstream, in the order first seen; a header's value is
/// an index into it.
#[derive(Default)]
pub(super) struct Specs(pub Vec<ValueSpec>);

impl Specs {
    fn index(&mut self, spec: ValueSpec) -> usize {
        self.0.iter().position(|s| *s == spec).unwrap_or_else(|| {
            self.0.push(spec);
            self.0.len() - 1
        })
    }
}

/// One identity header as it will be sent, its key in `[upstream.headers]`, and where its
/// name was written (absent for a default).
struct Chosen<'f> {
    key: &'static str,
    written: Option<&'f Leaf<HeaderName>>,
    send: SendHeader,
}

/// What one upstream receives and which names it claims.
pub(super) struct UpstreamHeaders {
    pub headers: Vec<SendHeader>,
    pub scrubbed: Vec<HeaderName>,
}

pub(super) fn headers(
    ctx: &mut Ctx<'_, '_>,
    u: &UpstreamFile,
    specs: &mut Specs,
) -> Option<UpstreamHeaders> {
    let chosen = identity_headers(ctx, u, specs)?;
    let mut headers: Vec<SendHeader> = chosen.iter().map(|c| c.send.clone()).collect();
    headers.extend(set_headers(ctx, u, &chosen, specs)?);
    // Every name claimed is scrubbed from requests; the token is sent only when forwarded.
    let scrubbed = headers.iter().map(|h| h.name.clone()).collect();
    headers.retain(|h| u.forward_access_token == Some(true) || h.value != SendValue::Token);
    required(ctx, u, &mut headers).then_some(UpstreamHeaders { headers, scrubbed })
}

/// The identity headers of `[upstream.headers]`: the defaults, renamed or turned on.
fn identity_headers<'f>(
    ctx: &mut Ctx<'_, '_>,
    u: &'f UpstreamFile,
    specs: &mut Specs,
) -> Option<Vec<Chosen<'f>>> {
    let entries = u.headers.iter().flat_map(|h| &h.get_ref().0);
    let mut chosen: Vec<Chosen<'_>> = Vec::new();
    for (field, h) in FIELDS.iter().filter_map(|d| Some((d.field, d.header?))) {
        let written = entries.clone().find(|(k, _)| k.get_ref() == h.key);
        let enrichment = written.filter(|_| matches!(field, Field::SchoolIds | Field::SectionIds));
        if let (Some((_, v)), Some(why)) = (enrichment, ctx.sources.and_then(|s| s.lack(field))) {
            ctx.err(v.span(), format!("upstream.headers.{} needs {why}", h.key));
        }
        let (name, wire) = match written {
            Some((_, v)) => (v.value.clone(), v.text.as_str()),
            None if h.when == When::Named => continue,
            None => (h.name.parse().expect("a valid default name"), h.name),
        };
        chosen.push(Chosen {
            key: h.key,
            written: written.map(|(_, v)| v),
            send: SendHeader {
                name,
                wire: Bytes::copy_from_slice(wire.as_bytes()),
                value: match field {
                    Field::AccessToken => SendValue::Token,
                    f => SendValue::Spec(specs.index(ValueSpec::field(f))),
                },
                origin: HeaderOrigin::Identity(field),
                required: false,
            },
        });
    }
    // `_` and `-` are the same header to CGI and PHP apps. Each clash is reported once, at a
    // name the user wrote (two defaults never clash): the later one when both are written.
    let mut ok = true;
    for (j, this) in chosen.iter().enumerate() {
        let Some(v) = this.written else { continue };
        let defaults = chosen[j + 1..].iter().filter(|o| o.written.is_none());
        let others = chosen[..j].iter().chain(defaults);
        let claims = others.map(|o| (o.send.name.as_str(), same_as(o.key)));
        if let Some(why) = taken(this.send.name.as_str(), claims) {
            ok = false;
            let shown = format!("upstream.headers.{} {}", this.key, quote(&v.text));
            ctx.err(v.span(), format!("{shown} is {why}: choose another name"));
        }
    }
    ok.then_some(chosen)
}

/// `[upstream.set_headers]`, in file order.
fn set_headers(
    ctx: &mut Ctx<'_, '_>,
    u: &UpstreamFile,
    identity: &[Chosen<'_>],
    specs: &mut Specs,
) -> Option<Vec<SendHeader>> {
    // Who holds a name: the identity headers, every default name, then the names above.
    let by = |key| same_as(&format!("upstream.headers.{key}"));
    let default = |key| format!("the default name of the identity header upstream.headers.{key}");
    let identity = identity.iter().map(|c| (c.send.name.as_str(), by(c.key)));
    let mut claims: Vec<(&str, String)> = identity.collect();
    let defaults = FIELDS.iter().filter_map(|d| d.header);
    claims.extend(defaults.map(|h| (h.name, default(h.key))));
    let entries = u.set_headers.iter().flat_map(|t| &t.get_ref().0);
    every(entries.map(|(key, value)| {
        let text = key.get_ref();
        let shown = format!("upstream.set_headers {}", quote(text));
        let spec = value_spec(ctx, &shown, value);
        let name: HeaderName = ctx.read(key, "upstream.set_headers")?;
        if let Some(why) = taken(name.as_str(), claims.iter().cloned()) {
            ctx.err(key.span(), format!("{shown} is {why}: choose another name"));
            return None;
        }
        claims.push((text, same_as(&format!("{} above", quote(text)))));
        Some(SendHeader {
            name,
            wire: Bytes::from(text.clone()),
            value: SendValue::Spec(specs.index(spec?)),
            origin: HeaderOrigin::Set,
            required: false,
        })
    }))
}

/// One `set_headers` value as a spec; every template problem is reported.
fn value_spec(ctx: &mut Ctx<'_, '_>, shown: &str, value: &Sp<SetValueFile>) -> Option<ValueSpec> {
    let entries = match value.get_ref() {
        SetValueFile::Templates(t) => {
            let list = t.templates(value.span());
            return templates(ctx, (shown, shown), &list, value.span()).map(ValueSpec::List);
        }
        SetValueFile::ByRole(entries) => entries,
    };
    let mut roles: [Option<Vec<Template>>; 5] = Default::default();
    let mut default = None;
    let mut ok = true;
    for (key, entry) in entries {
        let list = entry.get_ref().templates(entry.span());
        let role = format!("{shown}.{}", key.get_ref());
        let list = templates(ctx, (shown, &role), &list, entry.span());
        ok &= list.is_some();
        // The file layer refused every other key.
        match role_key(key.get_ref()) {
            Some(RoleKey::Role(r)) => roles[ROLE_ORDER.iter().position(|o| *o == r)?] = list,
            Some(RoleKey::Default) => default = list,
            None => ok = false,
        }
    }
    ok.then_some(ValueSpec::ByRole { roles, default })
}

/// Templates written at the given spans (a list at `whole`) for the header `owner` (`shown`:
/// with its role); `None` if any is wrong (each reported). A field the API version or the
/// token sources cannot give is reported too.
fn templates(
    ctx: &mut Ctx<'_, '_>,
    (owner, shown): (&str, &str),
    list: &[(&str, Range<usize>)],
    whole: Range<usize>,
) -> Option<Vec<Template>> {
    if list.is_empty() {
        ctx.err(whole, format!("{shown} is an empty list: add a template"));
        return None;
    }
    every(list.iter().map(|(text, span)| {
        let read = Template::parse(text).map_err(|e| {
            let at = ctx.sink.inside(span.clone(), text, e.offset);
            ctx.err(at, format!("{shown}: {}", e.message));
        });
        let t = read.ok()?;
        let lack = |f: Field| Some((f, ctx.sources?.lack(f)?));
        if let Some((f, why)) = t.fields().iter().find_map(lack) {
            let why = format!("{owner} uses {{{}}}, which needs {why}", f.name());
            ctx.err(span.clone(), why);
        }
        Some(t)
    }))
}

/// Every item read, or `None` if one was not; all are read first, so every problem is reported.
fn every<T>(items: impl Iterator<Item = Option<T>>) -> Option<Vec<T>> {
    let items: Vec<Option<T>> = items.collect();
    items.into_iter().collect()
}

/// `required_headers`: each must be a `set_headers` name of the same upstream.
fn required(ctx: &mut Ctx<'_, '_>, u: &UpstreamFile, headers: &mut [SendHeader]) -> bool {
    let mut ok = true;
    for entry in u.required_headers.iter().flat_map(|l| l.get_ref()) {
        let canonical = canonical_header_name(entry.get_ref());
        let mut set = headers.iter_mut().filter(|h| h.origin == HeaderOrigin::Set);
        if let Some(h) = set.find(|h| canonical_header_name(h.name.as_str()) == canonical) {
            h.required = true;
        } else {
            ok = false;
            let name = format!("upstream.required_headers {}", quote(entry.get_ref()));
            let why = format!("{name} is not a header of this upstream's [upstream.set_headers]");
            ctx.err(entry.span(), format!("{why}: name a header built there"));
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::config::model::{HeaderOrigin, SendValue};
    use crate::identity::{Field, Identity, Outcome, UserType};

    fn names(c: &crate::config::Config) -> Vec<&str> {
        c.upstreams[0]
            .headers
            .iter()
            .map(|h| h.name.as_str())
            .collect()
    }

    fn named<'a>(c: &'a crate::config::Config, name: &str) -> &'a crate::config::SendHeader {
        c.upstreams[0]
            .headers
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("{name} in {:?}", names(c)))
    }

    #[test]
    fn upstream_headers_are_lowercased_and_optional_ones_set() {
        let c = ok(&doc(
            "",
            "",
            "",
            "[upstream.headers]\nuser_id = \"Remote-User\"\nemail = \"X-Email\"\naccess_token = \"X-Token\"",
        ));
        assert_eq!(
            names(&c),
            [
                "remote-user",
                "x-clever-user-type",
                "x-clever-district-id",
                "x-email"
            ]
        );
        let h = named(&c, "remote-user");
        assert_eq!(&h.wire[..], b"Remote-User", "sent as written");
        assert_eq!(h.origin, HeaderOrigin::Identity(Field::Id));
        assert_eq!(
            &named(&c, "x-clever-user-type").wire[..],
            b"X-Clever-User-Type"
        );
        // Not forwarded without forward_access_token, but never accepted from a client.
        assert!(c.upstreams[0].scrubbed.iter().any(|n| n == "x-token"));
    }

    #[test]
    fn upstream_headers_access_token_only_with_forward_access_token() {
        let c = ok(&doc("", "", "", "forward_access_token = true"));
        let h = named(&c, "x-clever-access-token");
        assert_eq!(h.value, SendValue::Token);
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
        assert_eq!(
            names(&c),
            [
                "x-clever-user-id",
                "x-clever-user-type",
                "x-clever-district-id"
            ]
        );
        let c = ok(&doc(
            "",
            "discover_district_tokens = true",
            "",
            "[upstream.headers]\nschool_ids = \"X-Clever-School-Ids\"\nsection_ids = \"X-Sections\"",
        ));
        assert!(names(&c).contains(&"x-clever-school-ids"));
        assert!(names(&c).contains(&"x-sections"));
        assert!(
            c.upstreams[0].scrubbed.iter().any(|n| n == "x-sections"),
            "scrubbed like the others"
        );
        assert!(c.kept_fields.contains(Field::SectionIds));
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
        assert!(names(&c).contains(&"x-mail"));
    }

    const SET: &str = "required_headers = [\"x_remote_user\"]\n[upstream.set_headers]\n\
        \"X-Remote-User\" = { student = \"{student_number}\", teacher = [\"{district_username}\", \"{email|local|lower}\"], default = \"{email|lower}\" }\n\
        \"X-Grade\" = \"{grade}\"\n\
        \"X-Display-Name\" = \"{last_name}, {first_name}\"\n\
        \"X-App-Role\" = { district_admin = \"admin\", teacher = \"instructor\", staff = \"instructor\", student = \"learner\" }\n";

    #[test]
    fn set_headers_in_file_order_after_identity_headers_and_required_marked() {
        let c = ok(&doc("", "", "", SET));
        assert_eq!(
            names(&c),
            [
                "x-clever-user-id",
                "x-clever-user-type",
                "x-clever-district-id",
                "x-remote-user",
                "x-grade",
                "x-display-name",
                "x-app-role"
            ]
        );
        let remote = named(&c, "x-remote-user");
        assert!(remote.required && remote.origin == HeaderOrigin::Set);
        assert_eq!(&remote.wire[..], b"X-Remote-User");
        assert!(!named(&c, "x-grade").required);
        for n in ["x-remote-user", "x-grade", "x-display-name", "x-app-role"] {
            assert!(c.upstreams[0].scrubbed.iter().any(|s| s == n), "{n}");
        }
        for f in [
            Field::StudentNumber,
            Field::DistrictUsername,
            Field::Grade,
            Field::LastName,
            Field::FirstName,
        ] {
            assert!(c.kept_fields.contains(f), "{f:?}");
        }
        assert!(!c.kept_fields.contains(Field::StateId));
        // The specs render as the contract says.
        let SendValue::Spec(i) = remote.value else {
            panic!("a spec")
        };
        let teacher = Identity::builder("u")
            .role(UserType::Teacher)
            .with(Field::Email, "Maria.Lopez@x.org")
            .build();
        assert_eq!(
            c.header_specs[i].render(&teacher),
            Outcome::Value("maria.lopez".into())
        );
    }

    #[test]
    fn set_headers_same_spec_twice_is_rendered_once() {
        let two = "[upstream.set_headers]\nA = \"{grade}\"\nB = \"{grade}\"\n[[upstream]]\nname = \"b\"\nurl = \"http://127.0.0.1:9001\"\npath_prefix = \"/b\"\n[upstream.set_headers]\nC = \"{grade}\"";
        let c = ok(&doc("", "", "", two));
        let grade: Vec<_> = c
            .upstreams
            .iter()
            .flat_map(|u| &u.headers)
            .filter(|h| h.origin == HeaderOrigin::Set)
            .map(|h| h.value)
            .collect();
        assert_eq!(grade.len(), 3);
        assert!(grade.iter().all(|v| *v == grade[0]));
    }

    #[test]
    fn set_headers_unknown_field_or_filter_points_into_the_template() {
        let src = doc(
            "",
            "",
            "",
            "[upstream.set_headers]\n\"X-A\" = \"id:{studnet_number}\"\n\"X-B\" = [\"{email}\", \"{email|lowr}\"]",
        );
        // X-A: the name after "id:{"; X-B: the filter's name in the second template.
        let p = problems(&src);
        assert_eq!(p.len(), 2, "{p:#?}");
        let a = line_of(&src, "X-A");
        assert_eq!((p[0].line, p[0].col), (a, 14), "{}", p[0].message);
        assert!(p[0].message.contains("upstream.set_headers \"X-A\": unknown field \"studnet_number\" in a template (did you mean \"student_number\"?)"), "{}", p[0].message);
        assert_eq!((p[1].line, p[1].col), (a + 1, 29), "{}", p[1].message);
        assert!(p[1].message.contains("unknown filter \"lowr\""));
    }

    #[test]
    fn set_headers_unknown_role_key_and_wrong_types() {
        let src = doc(
            "",
            "",
            "",
            "[upstream.set_headers]\n\"X-A\" = { teachr = \"x\" }\n\"X-B\" = 5\n\"X-C\" = [\"a\", 1]\n\"X-D\" = { student = { a = 1 } }",
        );
        let p = problems(&src);
        assert_eq!(p.len(), 4, "{p:#?}");
        assert!(p[0].message.contains("unknown key \"teachr\" in a role table of [upstream.set_headers] (did you mean \"teacher\"?): allowed keys are district_admin, staff, teacher, student, contact, default"), "{}", p[0].message);
        assert!(
            p[1].message
                .contains("wrong type for upstream.set_headers.X-B: expected a template"),
            "{}",
            p[1].message
        );
        assert!(
            p[2].message
                .contains("expected a template (a string), found an integer"),
            "{}",
            p[2].message
        );
        assert!(
            p[3].message
                .contains("expected a template or a list of templates, found a table"),
            "{}",
            p[3].message
        );
    }

    #[test]
    fn set_headers_bad_or_clashing_names_are_errors() {
        for (name, needle) in [
            ("X Remote", "not a valid header name"),
            ("Host", "the gateway sets or forbids"),
            ("X-Forwarded-User", "the gateway sets or forbids"),
            ("x_request_id", "the gateway sets or forbids"),
            ("Content-Length", "the gateway sets or forbids"),
            ("X-Clever-Assertion", "the gateway sets or forbids"),
            (
                "X_Clever_User_Id",
                "same header as upstream.headers.user_id",
            ),
            (
                "X-Clever-Email",
                "default name of the identity header upstream.headers.email",
            ),
        ] {
            let src = doc(
                "",
                "",
                "",
                &format!("[upstream.set_headers]\n\"{name}\" = \"{{grade}}\""),
            );
            let p = one(&src, &[needle]);
            assert_eq!((p.line, p.col), (line_of(&src, name), 1), "{name}");
        }
        one(
            &doc("", "", "", "[upstream.headers]\nuser_id = \"Remote-User\"\n[upstream.set_headers]\nremote_user = \"{grade}\""),
            &["same header as upstream.headers.user_id"],
        );
        let src = doc(
            "",
            "",
            "",
            "[upstream.set_headers]\n\"X-A\" = \"{grade}\"\n\"x_a\" = \"{title}\"",
        );
        let p = one(&src, &["same header as \"X-A\" above"]);
        assert_eq!(p.line, line_of(&src, "x_a"));
    }

    #[test]
    fn set_headers_bad_name_and_its_templates_are_reported_together() {
        let src = doc(
            "",
            "api_version = \"v2.1\"",
            "",
            "[upstream.set_headers]\n\"X Remote\" = [\"{studnet}\", \"{grade}\"]",
        );
        let p = problems(&src);
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(p[0].message.contains("not a valid header name"), "{p:#?}");
        assert!(p[1].message.contains("unknown field \"studnet\""), "{p:#?}");
        assert!(p[2]
            .message
            .contains("uses {grade}, which needs Clever's v3 API"));
    }

    #[test]
    fn set_headers_empty_values_are_errors() {
        let p = problems(&doc(
            "",
            "",
            "",
            "[upstream.set_headers]\n\"X-A\" = \"\"\n\"X-B\" = []\n\"X-C\" = {}",
        ));
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(p[0].message.contains("the template is empty"));
        assert!(
            p[1].message.contains("is an empty list"),
            "{}",
            p[1].message
        );
        assert!(p[2].message.contains("upstream.set_headers.X-C is an empty role table: give at least one of district_admin"), "{}", p[2].message);
    }

    #[test]
    fn required_headers_must_be_set_headers() {
        let src = doc(
            "",
            "",
            "",
            "required_headers = [\"X-Clever-User-Id\"]\n[upstream.set_headers]\n\"X-A\" = \"{grade}\"",
        );
        let p = one(
            &src,
            &[
                "upstream.required_headers \"X-Clever-User-Id\"",
                "not a header of this upstream's [upstream.set_headers]",
            ],
        );
        assert_eq!(p.line, line_of(&src, "required_headers"));
        assert_eq!(p.col, 21);
    }
}
