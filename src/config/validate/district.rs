//! `[[district]]`: district-app token credentials (district id, name, optional description, and
//! the token from `token_env` or `token_file`, never inline), ids unique.

use super::{secret_source, Ctx};
use crate::config::file::{quote, DistrictFile, Tables};
use crate::config::model::DistrictConfig;

/// The `[[district]]` tables; `None` when any is invalid (reported).
pub(super) fn districts(
    ctx: &mut Ctx<'_, '_>,
    list: Option<&Tables<DistrictFile>>,
) -> Option<Vec<DistrictConfig>> {
    let (mut out, mut seen) = (Vec::new(), Vec::new());
    // An entry that is not a table was reported; the others are still checked.
    let mut ok = ctx.valid("district");
    for (i, table) in list.map_or(&[][..], |l| l.get_ref()).iter().enumerate() {
        let (d, tspan) = (table.get_ref(), table.span());
        let key = |k: &str| format!("district[{i}].{k}");
        let why = "expected a Clever district id such as \"5d0a9e5d0958b300014e49d2\"";
        let id = ctx.required(&key("id"), &d.id, tspan.clone(), why);
        if let Some(v) = d.id.as_ref().filter(|v| seen.contains(&v.text)) {
            let why = "is already used by an earlier [[district]]: list each district once";
            ctx.err(v.span(), format!("district.id {} {why}", quote(&v.text)));
        }
        seen.extend(d.id.as_ref().map(|v| v.text.clone()));
        let why = "expected the district's name, shown by `check --online` and in logs";
        let name = ctx.required(&key("name"), &d.name, tspan.clone(), why);
        let token = secret_source(ctx, "district.token", &d.token_env, &d.token_file);
        let token = ctx.required_secret(
            token,
            &["token_env", "token_file", "token", "access_token"].map(key),
            tspan,
            "[[district]] has no token: set token_env (an environment variable) or token_file \
             (a file path) holding the district-app token",
        );
        match (id, name, token) {
            (Some(id), Some(name), Some(token)) => out.push(DistrictConfig {
                id: id.0,
                name: name.0,
                description: d.description.as_ref().map(|v| v.get_ref().clone()),
                token,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::config::model::SecretSource;

    const D1: &str = "5d0a9e5d0958b300014e49d2";
    const D2: &str = "53ee4b8a44abc88c1c00119b";

    fn district(id: &str, rest: &str) -> String {
        format!("\n[[district]]\nid = \"{id}\"\nname = \"Demo USD\"\n{rest}\n")
    }

    #[test]
    fn district_tables_are_read_in_order() {
        let src = doc("", "", "", "")
            + &district(D1, "description = \"main\"\ntoken_env = \"TOKEN_A\"")
            + &district(D2, "token_file = \"/run/credentials/gw/d2\"");
        let c = ok(&src);
        assert_eq!(c.districts.len(), 2);
        assert_eq!(c.districts[0].id, D1);
        assert_eq!(c.districts[0].name, "Demo USD");
        assert_eq!(c.districts[0].description.as_deref(), Some("main"));
        assert_eq!(c.districts[0].token, SecretSource::Env("TOKEN_A".into()));
        assert_eq!(
            c.districts[1].token,
            SecretSource::File("/run/credentials/gw/d2".into())
        );
        assert!(ok(&doc("", "", "", "")).districts.is_empty());
    }

    #[test]
    fn district_inline_token_is_rejected_without_echoing_it() {
        let src = doc("", "", "", "") + &district(D1, "token = \"0123456789abcdef\"");
        let p = one(
            &src,
            &["a district-app token is never inline: use token_env or token_file"],
        );
        assert!(!p.message.contains("0123456789abcdef"));
        assert_eq!(p.line, line_of(&src, "token = "));
    }

    #[test]
    fn district_without_token_or_with_both_is_error() {
        one(
            &(doc("", "", "", "") + &district(D1, "")),
            &["has no token", "token_env", "token_file"],
        );
        let src = doc("", "", "", "") + &district(D1, "token_env = \"A\"\ntoken_file = \"/f\"");
        let p = one(&src, &["exactly one"]);
        assert_eq!(p.line, line_of(&src, "token_file"));
    }

    #[test]
    fn district_duplicate_id_is_error_at_the_second() {
        let src = doc("", "", "", "")
            + &district(D1, "token_env = \"A\"")
            + &district(D1, "token_env = \"B\"");
        let p = one(&src, &["already used by an earlier [[district]]"]);
        let second = src.match_indices("\nid = ").nth(1).unwrap().0 + 1;
        assert_eq!(p.line, src[..second].matches('\n').count() + 1);
    }

    #[test]
    fn district_missing_id_and_name_and_bad_id_are_errors() {
        let src = doc("", "", "", "") + "\n[[district]]\ntoken_env = \"A\"\n";
        let p = problems(&src);
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(p.iter().any(|p| p.message.contains("has no id")));
        assert!(p.iter().any(|p| p.message.contains("has no name")));
        one(
            &(doc("", "", "", "") + &district("a b/c", "token_env = \"A\"")),
            &["is not a district id"],
        );
    }

    #[test]
    fn district_unknown_key_is_rejected_listing_keys() {
        let src = doc("", "", "", "") + &district(D1, "token_env = \"A\"\nscopes = []");
        one(
            &src,
            &[
                "unknown key \"scopes\" in [[district]]",
                "id, name, description, token_env, token_file",
            ],
        );
    }

    #[test]
    fn district_bad_env_name_is_error() {
        one(
            &(doc("", "", "", "") + &district(D1, "token_env = \"A B\"")),
            &["district.token_env", "not an environment variable name"],
        );
    }

    #[test]
    fn section_ids_without_any_token_source_is_error() {
        let src = doc(
            "",
            "",
            "",
            "[upstream.headers]\nsection_ids = \"X-Clever-Section-Ids\"",
        );
        let p = one(&src, &["needs a district-app token", "[[district]]"]);
        assert_eq!(p.line, line_of(&src, "section_ids"));
        ok(&doc(
            "",
            "discover_district_tokens = true",
            "",
            "[upstream.headers]\nsection_ids = \"X-Clever-Section-Ids\"",
        ));
        ok(&(doc(
            "",
            "",
            "",
            "[upstream.headers]\nsection_ids = \"X-Clever-Section-Ids\"",
        ) + &district(D1, "token_env = \"A\"")));
    }

    #[test]
    fn enrichment_headers_need_v3() {
        one(
            &doc(
                "",
                "api_version = \"v2.1\"",
                "",
                "[upstream.headers]\nschool_ids = \"X-Clever-School-Ids\"",
            ),
            &["upstream.headers.school_ids needs Clever's v3 API"],
        );
    }

    #[test]
    fn set_headers_fields_from_the_record_need_v3_and_sections_a_token() {
        let src = doc(
            "",
            "api_version = \"v2.1\"",
            "",
            "[upstream.set_headers]\n\"X-A\" = \"{id}\"\n\"X-B\" = { student = [\"{id}\", \"{grade}\"] }",
        );
        let p = one(
            &src,
            &["upstream.set_headers \"X-B\" uses {grade}, which needs Clever's v3 API"],
        );
        assert_eq!((p.line, p.col), (line_of(&src, "X-B"), 30));
        one(
            &doc(
                "",
                "",
                "",
                "[upstream.set_headers]\n\"X-S\" = \"{section_ids}\"",
            ),
            &["uses {section_ids}, which needs a district-app token"],
        );
        ok(&doc(
            "",
            "discover_district_tokens = true",
            "",
            "[upstream.set_headers]\n\"X-S\" = \"{section_ids}\"",
        ));
    }
}
