//! Header values built from the record (gateway.md section 4b): a [`Template`] is literal text
//! with `{field}` or `{field|filter|filter}` inside (`{{` and `}}` are literal braces); a
//! [`ValueSpec`] is a list of templates tried in order, or a table of such lists by role. The
//! identity headers of section 4 are specs too (`{id}`, `{email}`, …), so every header the
//! gateway builds from a record is rendered here, once per session.
//!
//! A rendered value is always a valid header value: printable ASCII as it is, anything else
//! (non-ASCII, control characters) in the RFC 8187 form of [`header_safe_value`].

use std::fmt;

use super::fields::{template_names, Field, FieldSet, ROLE_ORDER};
use super::{header_safe_value, Identity, RoleSet, UserType};

/// A transformation of a field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filter {
    Lower,
    Upper,
    /// The part before the last `@` (the whole value without one).
    Local,
    /// The part after the last `@` (empty without one).
    Domain,
}

impl Filter {
    pub const ALL: [(&'static str, Filter); 4] = [
        ("lower", Filter::Lower),
        ("upper", Filter::Upper),
        ("local", Filter::Local),
        ("domain", Filter::Domain),
    ];

    pub fn parse(name: &str) -> Option<Filter> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .unwrap_or_default()
    }

    fn apply(self, v: &str) -> String {
        match self {
            Filter::Lower => v.to_lowercase(),
            Filter::Upper => v.to_uppercase(),
            Filter::Local => v.rsplit_once('@').map_or(v, |(l, _)| l).to_string(),
            Filter::Domain => v.rsplit_once('@').map_or("", |(_, d)| d).to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Part {
    Literal(String),
    Field(Field, Vec<Filter>),
}

/// One template, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Template {
    parts: Vec<Part>,
}

/// What is wrong with a template, and where (a byte offset into its text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Template {
    /// Parses `text`; every problem names what is allowed.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let err = |offset: usize, message: String| Err(TemplateError { offset, message });
        if text.is_empty() {
            return err(
                0,
                "the template is empty: write a field such as \"{email}\" or literal text".into(),
            );
        }
        let mut parts: Vec<Part> = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut at = 0;
        while let Some(c) = rest.chars().next() {
            match c {
                '{' if rest.starts_with("{{") => {
                    literal.push('{');
                    rest = &rest[2..];
                    at += 2;
                }
                '}' if rest.starts_with("}}") => {
                    literal.push('}');
                    rest = &rest[2..];
                    at += 2;
                }
                '}' => {
                    return err(
                        at,
                        "a \"}\" without its \"{\": write \"}}\" for a literal brace".into(),
                    )
                }
                '{' => {
                    let Some(close) = rest.find('}') else {
                        return err(
                            at,
                            "a \"{\" is not closed: write {field} or \"{{\" for a literal brace"
                                .into(),
                        );
                    };
                    let inner = &rest[1..close];
                    if let Some(open) = inner.find('{') {
                        return err(
                            at + 1 + open,
                            "a \"{\" inside {…}: write {field|filter}".into(),
                        );
                    }
                    let (field, filters) = parse_placeholder(inner, at + 1)?;
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Field(field, filters));
                    rest = &rest[close + 1..];
                    at += close + 1;
                }
                c => {
                    literal.push(c);
                    rest = &rest[c.len_utf8()..];
                    at += c.len_utf8();
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// `{field}`.
    pub fn field(field: Field) -> Template {
        Template {
            parts: vec![Part::Field(field, Vec::new())],
        }
    }

    /// Every field the template names.
    pub fn fields(&self) -> FieldSet {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Field(f, _) => Some(*f),
                Part::Literal(_) => None,
            })
            .collect()
    }

    /// The template's value for `rec` (not yet made header-safe), or the fields that stopped
    /// it: those absent, or every field it names when its result is empty.
    fn render(&self, rec: &Identity) -> Result<String, FieldSet> {
        let mut out = String::new();
        let mut missing = FieldSet::EMPTY;
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Field(f, filters) => match rec.get(*f) {
                    None => missing.insert(*f),
                    Some(v) if filters.is_empty() => out.push_str(v),
                    Some(v) => {
                        let mut v = v.to_string();
                        for filter in filters {
                            v = filter.apply(&v);
                        }
                        out.push_str(&v);
                    }
                },
            }
        }
        if !missing.is_empty() {
            Err(missing)
        } else if out.is_empty() {
            Err(self.fields())
        } else {
            Ok(out)
        }
    }

    /// The single field this template is, without filters or text (`{email}`).
    fn bare_field(&self) -> Option<Field> {
        match self.parts.as_slice() {
            [Part::Field(f, filters)] if filters.is_empty() => Some(*f),
            _ => None,
        }
    }
}

impl fmt::Display for Template {
    /// The template as it could be written again.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(text) => f.write_str(&text.replace('{', "{{").replace('}', "}}"))?,
                Part::Field(field, filters) => {
                    write!(f, "{{{}", field.name())?;
                    for filter in filters {
                        write!(f, "|{}", filter.name())?;
                    }
                    f.write_str("}")?;
                }
            }
        }
        Ok(())
    }
}

/// `field|filter|filter` (spaces around each name allowed); `offset` is where `inner` starts.
fn parse_placeholder(inner: &str, offset: usize) -> Result<(Field, Vec<Filter>), TemplateError> {
    let mut names = inner.split('|');
    let mut at = offset;
    let raw = names.next().unwrap_or_default();
    let name = raw.trim();
    let field = match Field::by_template_name(name) {
        Some(f) => f,
        None if name.is_empty() => {
            return Err(TemplateError {
                offset: offset.saturating_sub(1),
                message: "an empty {}: name a field such as {email}, or write \"{{}}\" for \
                          literal braces"
                    .into(),
            })
        }
        None => {
            let names: Vec<&str> = template_names().collect();
            return Err(TemplateError {
                offset: at + (raw.len() - raw.trim_start().len()),
                message: format!(
                    "unknown field {name:?} in a template{}: fields are {}",
                    did_you_mean(name, &names),
                    names.join(", ")
                ),
            });
        }
    };
    at += raw.len() + 1;
    let mut filters = Vec::new();
    for raw in names {
        let name = raw.trim();
        match Filter::parse(name) {
            Some(filter) => filters.push(filter),
            None => {
                let names: Vec<&str> = Filter::ALL.iter().map(|(n, _)| *n).collect();
                return Err(TemplateError {
                    offset: at + (raw.len() - raw.trim_start().len()),
                    message: format!(
                        "unknown filter {name:?}{}: filters are {}",
                        did_you_mean(name, &names),
                        names.join(", ")
                    ),
                });
            }
        }
        at += raw.len() + 1;
    }
    Ok((field, filters))
}

/// ` (did you mean "x"?)` for a name within two edits of an allowed one.
pub(crate) fn did_you_mean(name: &str, allowed: &[&str]) -> String {
    allowed
        .iter()
        .map(|a| (edit_distance(a, name), a))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| format!(" (did you mean {a:?}?)"))
        .unwrap_or_default()
}

/// Levenshtein distance over characters, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

/// A header's value as configured: templates tried in order, or a table of them by role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ValueSpec {
    /// The first template that can be built wins.
    List(Vec<Template>),
    /// The entry of the user's first role in [`ROLE_ORDER`] that has one, else `default`; the
    /// chosen entry is final.
    ByRole {
        /// By position in [`ROLE_ORDER`].
        roles: [Option<Vec<Template>>; 5],
        default: Option<Vec<Template>>,
    },
}

/// What a spec gives for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A valid header value.
    Value(String),
    /// No template of the chosen entry could be built; these fields stopped them.
    Missing(FieldSet),
    /// A table with no entry for the user's roles and no `default`: not sent.
    NoEntry,
}

impl ValueSpec {
    /// `{field}`: an identity header of section 4.
    pub fn field(field: Field) -> ValueSpec {
        ValueSpec::List(vec![Template::field(field)])
    }

    /// The role-table key for a role (`district_admin`, …) and `default`.
    pub fn role_keys() -> impl Iterator<Item = &'static str> {
        ROLE_ORDER
            .iter()
            .map(|t| t.as_str())
            .chain(std::iter::once("default"))
    }

    /// The templates that apply to a user with `roles`.
    pub fn applicable(&self, roles: RoleSet) -> Option<&[Template]> {
        match self {
            ValueSpec::List(list) => Some(list),
            ValueSpec::ByRole { roles: by, default } => ROLE_ORDER
                .iter()
                .zip(by)
                .find_map(|(t, entry)| entry.as_deref().filter(|_| roles.contains(*t)))
                .or(default.as_deref()),
        }
    }

    /// The value for `rec`, header-safe.
    pub fn render(&self, rec: &Identity) -> Outcome {
        let Some(list) = self.applicable(rec.roles()) else {
            return Outcome::NoEntry;
        };
        let mut missing = FieldSet::EMPTY;
        for t in list {
            match t.render(rec) {
                Ok(v) => return Outcome::Value(header_safe_value(&v)),
                Err(m) => missing = missing.union(m),
            }
        }
        Outcome::Missing(missing)
    }

    /// The fields whose values decide this user's value: those named by the applicable
    /// templates up to the first that can be built. One of them absent means a fuller record
    /// could change the value.
    pub fn needs(&self, rec: &Identity) -> FieldSet {
        let mut needs = FieldSet::EMPTY;
        for t in self.applicable(rec.roles()).unwrap_or_default() {
            needs = needs.union(t.fields());
            if t.render(rec).is_ok() {
                break;
            }
        }
        needs
    }

    /// Every field any entry names.
    pub fn fields(&self) -> FieldSet {
        let list = |l: &[Template]| l.iter().fold(FieldSet::EMPTY, |s, t| s.union(t.fields()));
        match self {
            ValueSpec::List(l) => list(l),
            ValueSpec::ByRole { roles, default } => roles
                .iter()
                .chain(std::iter::once(default))
                .flatten()
                .fold(FieldSet::EMPTY, |s, l| s.union(list(l))),
        }
    }

    /// The single field this spec is, unfiltered (`{email}`), whatever the user's role.
    pub fn bare_field(&self) -> Option<Field> {
        match self {
            ValueSpec::List(l) if l.len() == 1 => l[0].bare_field(),
            _ => None,
        }
    }
}

/// A key of a role table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleKey {
    Role(UserType),
    Default,
}

/// What a role-table key means; `None` for a key no table may hold.
pub fn role_key(key: &str) -> Option<RoleKey> {
    if key == "default" {
        return Some(RoleKey::Default);
    }
    ROLE_ORDER
        .iter()
        .find(|t| t.as_str() == key)
        .map(|t| RoleKey::Role(*t))
}

/// The sentence of a 403 page for a header that could not be built from `missing`.
pub fn missing_sentence(missing: FieldSet) -> String {
    let labels: Vec<&str> = missing.iter().map(|f| f.def().label).collect();
    match labels.as_slice() {
        [] => "The gateway has no value for your role that this app needs".to_string(),
        [one] => format!("Your Clever account has no {one}"),
        [init @ .., last] => format!("Your Clever account has no {} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Template {
        Template::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn student() -> Identity {
        Identity::builder("5fc43758db087d0be186c29d")
            .role(UserType::Student)
            .with(Field::StudentNumber, "100234")
            .with(Field::Email, "Jose.Nunez@Students.Example.org")
            .with(Field::FirstName, "José")
            .with(Field::LastName, "Núñez")
            .with(Field::Grade, "5")
            .build()
    }

    fn teacher(username: Option<&str>) -> Identity {
        let b = Identity::builder("5fc43758db087d0be186c2a1")
            .role(UserType::Teacher)
            .with(Field::Email, "Maria.Lopez@example-district.org");
        match username {
            Some(u) => b.with(Field::DistrictUsername, u),
            None => b,
        }
        .build()
    }

    fn value(spec: &ValueSpec, rec: &Identity) -> Option<String> {
        match spec.render(rec) {
            Outcome::Value(v) => Some(v),
            _ => None,
        }
    }

    #[test]
    fn template_literal_braces_filters_and_spaces() {
        let s = ValueSpec::List(vec![t("{{{student_number}}} { email | lower|local }")]);
        assert_eq!(
            value(&s, &student()).as_deref(),
            Some("{100234} jose.nunez")
        );
        let s = ValueSpec::List(vec![t("{email|domain|upper}")]);
        assert_eq!(
            value(&s, &student()).as_deref(),
            Some("STUDENTS.EXAMPLE.ORG")
        );
        assert_eq!(t("{{}}").to_string(), "{{}}");
        assert_eq!(
            t("x{email|lower}y").to_string(),
            "x{email|lower}y",
            "displays as written"
        );
    }

    #[test]
    fn local_and_domain_without_at() {
        let rec = Identity::builder("u")
            .with(Field::Email, "not-an-address")
            .build();
        let s = ValueSpec::List(vec![t("{email|local}")]);
        assert_eq!(value(&s, &rec).as_deref(), Some("not-an-address"));
        let s = ValueSpec::List(vec![t("{email|domain}")]);
        assert_eq!(
            s.render(&rec),
            Outcome::Missing(FieldSet::of(&[Field::Email])),
            "an empty result counts as missing"
        );
        let rec = Identity::builder("u")
            .with(Field::Email, "a@b@c.org")
            .build();
        let s = ValueSpec::List(vec![t("{email|local}/{email|domain}")]);
        assert_eq!(value(&s, &rec).as_deref(), Some("a@b/c.org"), "the last @");
    }

    #[test]
    fn list_first_buildable_wins_and_missing_names_every_field() {
        let s = ValueSpec::List(vec![t("{district_username}"), t("{email|local|lower}")]);
        assert_eq!(
            value(&s, &teacher(Some("mlopez"))).as_deref(),
            Some("mlopez")
        );
        assert_eq!(
            value(&s, &teacher(None)).as_deref(),
            Some("maria.lopez"),
            "falls back to the email's local part"
        );
        let nobody = Identity::builder("u").role(UserType::Teacher).build();
        assert_eq!(
            s.render(&nobody),
            Outcome::Missing(FieldSet::of(&[Field::Email, Field::DistrictUsername]))
        );
        assert_eq!(
            missing_sentence(FieldSet::of(&[Field::Email, Field::DistrictUsername])),
            "Your Clever account has no email address or district username"
        );
        assert_eq!(
            missing_sentence(FieldSet::of(&[Field::StudentNumber])),
            "Your Clever account has no student number"
        );
    }

    fn by_role(entries: &[(&str, &[&str])]) -> ValueSpec {
        let mut roles: [Option<Vec<Template>>; 5] = Default::default();
        let mut default = None;
        for (key, list) in entries {
            let list: Vec<Template> = list.iter().map(|s| t(s)).collect();
            match role_key(key).unwrap() {
                RoleKey::Role(r) => {
                    roles[ROLE_ORDER.iter().position(|x| *x == r).unwrap()] = Some(list)
                }
                RoleKey::Default => default = Some(list),
            }
        }
        ValueSpec::ByRole { roles, default }
    }

    #[test]
    fn role_table_picks_first_role_in_contract_order_and_is_final() {
        let s = by_role(&[
            ("student", &["{student_number}"]),
            ("teacher", &["{district_username}", "{email|local|lower}"]),
            ("default", &["{email|lower}"]),
        ]);
        assert_eq!(value(&s, &student()).as_deref(), Some("100234"));
        assert_eq!(value(&s, &teacher(None)).as_deref(), Some("maria.lopez"));
        // A student without a number: the student entry is final, no fall-through to default.
        let no_number = Identity::builder("u")
            .role(UserType::Student)
            .with(Field::Email, "x@y.org")
            .build();
        assert_eq!(
            s.render(&no_number),
            Outcome::Missing(FieldSet::of(&[Field::StudentNumber]))
        );
        // Staff has no entry: default.
        let staff = Identity::builder("u")
            .role(UserType::Staff)
            .with(Field::Email, "Pat@X.org")
            .build();
        assert_eq!(value(&s, &staff).as_deref(), Some("pat@x.org"));
        // Teacher + district_admin: district_admin comes first but has no entry, so teacher.
        let both = Identity::builder("u")
            .role(UserType::Teacher)
            .role(UserType::DistrictAdmin)
            .with(Field::DistrictUsername, "tn")
            .build();
        assert_eq!(value(&s, &both).as_deref(), Some("tn"));
        let app_role = by_role(&[("district_admin", &["admin"]), ("teacher", &["instructor"])]);
        assert_eq!(value(&app_role, &both).as_deref(), Some("admin"));
        assert_eq!(app_role.render(&student()), Outcome::NoEntry);
    }

    #[test]
    fn values_a_header_cannot_carry_are_rfc8187() {
        let s = ValueSpec::List(vec![t("{last_name}, {first_name}")]);
        assert_eq!(
            value(&s, &student()).as_deref(),
            Some("UTF-8''N%C3%BA%C3%B1ez%2C%20Jos%C3%A9")
        );
        let evil = Identity::builder("u")
            .with(Field::Title, "Eve\r\nX-Clever-User-Id: 1")
            .build();
        let v = value(&ValueSpec::field(Field::Title), &evil).unwrap();
        assert!(!v.contains(['\r', '\n']), "{v}");
        assert!(http::HeaderValue::from_str(&v).is_ok());
    }

    #[test]
    fn needs_are_the_fields_up_to_the_first_buildable_template() {
        let s = by_role(&[
            (
                "teacher",
                &["{district_username}", "{email|local}", "{sis_id}"],
            ),
            ("student", &["{student_number}"]),
        ]);
        assert_eq!(
            s.needs(&teacher(None)),
            FieldSet::of(&[Field::DistrictUsername, Field::Email])
        );
        assert_eq!(
            s.needs(&teacher(Some("u"))),
            FieldSet::of(&[Field::DistrictUsername])
        );
        assert_eq!(s.needs(&student()), FieldSet::of(&[Field::StudentNumber]));
        assert_eq!(
            s.fields(),
            FieldSet::of(&[
                Field::DistrictUsername,
                Field::Email,
                Field::SisId,
                Field::StudentNumber
            ])
        );
    }

    #[test]
    fn parse_errors_point_at_the_problem() {
        let e = |text: &str| Template::parse(text).unwrap_err();
        let x = e("{student_numbr}");
        assert_eq!(x.offset, 1);
        assert!(x.message.contains("did you mean \"student_number\""), "{x}");
        assert!(x.message.contains("fields are id, user_type"), "{x}");
        let x = e("{email|lowr}");
        assert_eq!(x.offset, 7);
        assert!(x.message.contains("did you mean \"lower\""), "{x}");
        assert!(x
            .message
            .contains("filters are lower, upper, local, domain"));
        assert_eq!(e("ab{email").offset, 2);
        assert_eq!(e("a}b").offset, 1);
        assert_eq!(e("{}").offset, 0);
        assert_eq!(e("{ema{il}").offset, 4);
        assert_eq!(e("x { access_token }").offset, 4, "secrets are not fields");
        assert!(e("").message.contains("empty"));
    }

    #[test]
    fn edit_distance_typo_is_small() {
        assert_eq!(edit_distance("public_path", "public_paths"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(
            did_you_mean("studnet", &["student", "staff"]),
            " (did you mean \"student\"?)"
        );
    }

    #[test]
    fn bare_field_only_for_a_single_unfiltered_field() {
        assert_eq!(
            ValueSpec::field(Field::Email).bare_field(),
            Some(Field::Email)
        );
        assert_eq!(ValueSpec::List(vec![t("{email|lower}")]).bare_field(), None);
        assert_eq!(ValueSpec::List(vec![t("x{email}")]).bare_field(), None);
    }
}
