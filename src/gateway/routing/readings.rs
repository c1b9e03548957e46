//! How common app servers read a request path: the model the gateway routes and applies policy
//! by, so that a path an app serves as `/staff/x` never gets a more open route's treatment
//! because its literal form is `/STAFF/x`, `/staff;x/x` or `/staff./x`. Plain functions only.
//!
//! A *reading* starts from the path the gateway decides on (decoded once, dot segments
//! resolved: `NormalizedPath::decoded`) and applies any combination of what app servers do:
//!
//! - **NFKC** (`Reading::nfkc`): Unicode compatibility folding, as stacks that normalise paths
//!   do (and Windows' best-fit conversion to an ANSI code page): full-width `．` `／` `ｓ` become
//!   `.` `/` `s`, so `/public/．．/staff` is `/staff`.
//! - **Path parameters** (`Reading::params`): `;…` dropped from every segment, as Tomcat, Jetty
//!   and Spring do (`/staff;jsessionid=1/x` is `/staff/x`).
//! - **Windows names** (`Reading::windows`): trailing dots and spaces dropped from every segment,
//!   as IIS and any app that maps paths to Windows files do (`/staff./x`, `/staff /x`).
//! - **Case** (`Case::Insensitive`): prefixes compared regardless of case, as IIS, Express and
//!   ASP.NET Core do (`/STAFF/x`); Unicode letters folded too.
//!
//! After each step dot segments are resolved again (NFKC can make `..` and `/`); a segment that
//! only some servers read as `..` (only dots and spaces) refuses the path, as it does before.

use std::borrow::Cow;

use super::PathError;

/// One combination of the transformations an app server applies to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub nfkc: bool,
    pub params: bool,
    pub windows: bool,
}

impl Reading {
    /// The path as it is (the gateway's own reading).
    pub const LITERAL: Reading = Reading {
        nfkc: false,
        params: false,
        windows: false,
    };

    /// Every combination, the literal one first.
    pub const ALL: [Reading; 8] = {
        let mut all = [Reading::LITERAL; 8];
        let mut i = 0;
        while i < 8 {
            all[i] = Reading {
                nfkc: i & 1 != 0,
                params: i & 2 != 0,
                windows: i & 4 != 0,
            };
            i += 1;
        }
        all
    };
}

/// How a reading compares a path with a route prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Sensitive,
    Insensitive,
}

/// Whether every reading of `path` is `path` itself: ASCII (NFKC changes nothing), no `;`
/// (nothing for path parameters to drop) and no segment ending in `.` or a space (nothing for
/// Windows to drop). Most paths are; for them only the case of a prefix can matter.
pub fn reads_as_itself(path: &str) -> bool {
    let b = path.as_bytes();
    // Whole-slice scans first (most paths have no `.` at all): this runs on every request.
    if !path.is_ascii() || b.contains(&b';') || b.contains(&b' ') {
        return false;
    }
    !b.contains(&b'.') || !(b.ends_with(b".") || b.windows(2).any(|w| w == b"./"))
}

/// `path` (decoded, dot segments resolved) as an app server applying `reading` sees it, dot
/// segments resolved again. `Err` when that reading makes a path the gateway refuses: a
/// segment only some servers read as `..`, a `\` or control character, or a still-encoded
/// `.`, `/`, `\` or `%` (NFKC turns `％２ｅ` into `%2e`).
pub fn read(path: &str, reading: Reading) -> Result<Cow<'_, str>, PathError> {
    let mut out: Cow<'_, str> = Cow::Borrowed(path);
    for (on, step) in [
        (reading.nfkc, nfkc as Step),
        (reading.params, drop_params),
        (reading.windows, windows_names),
    ] {
        if on {
            if let Cow::Owned(s) = step(&out)? {
                out = Cow::Owned(s);
            }
        }
    }
    Ok(out)
}

/// Every distinct path among the readings of `path` (`read` under each of `Reading::ALL`),
/// the path itself first. Each step is applied to the readings so far, and only a step that
/// changes something costs more than a scan, so an ASCII path without `;` costs nothing here.
pub fn distinct_readings(path: &str) -> Result<Vec<Cow<'_, str>>, PathError> {
    let mut out: Vec<Cow<'_, str>> = vec![Cow::Borrowed(path)];
    for step in [nfkc as Step, drop_params, windows_names] {
        for i in 0..out.len() {
            let changed = match step(&out[i])? {
                Cow::Owned(s) => Some(s),
                Cow::Borrowed(_) => None,
            };
            if let Some(s) = changed.filter(|s| !out.iter().any(|r| r == s)) {
                out.push(Cow::Owned(s));
            }
        }
    }
    Ok(out)
}

/// One transformation of a reading: `Cow::Borrowed` when it changes nothing.
type Step = fn(&str) -> Result<Cow<'_, str>, PathError>;

/// NFKC, then dot segments resolved again. ASCII is its own NFKC form.
fn nfkc(path: &str) -> Result<Cow<'_, str>, PathError> {
    if path.is_ascii() {
        return Ok(Cow::Borrowed(path));
    }
    match icu_normalizer::ComposingNormalizerBorrowed::new_nfkc().normalize(path) {
        Cow::Borrowed(_) => Ok(Cow::Borrowed(path)),
        Cow::Owned(s) => {
            check_folded(&s)?;
            Ok(Cow::Owned(resolve(&s)?))
        }
    }
}

/// `;params` dropped from every segment, then dot segments resolved again.
fn drop_params(path: &str) -> Result<Cow<'_, str>, PathError> {
    if !path.contains(';') {
        return Ok(Cow::Borrowed(path));
    }
    let s: Vec<&str> = path
        .split('/')
        .map(|seg| seg.split(';').next().unwrap_or(""))
        .collect();
    Ok(Cow::Owned(resolve(&s.join("/"))?))
}

/// Trailing dots and spaces dropped from every segment, then dot segments resolved again.
fn windows_names(path: &str) -> Result<Cow<'_, str>, PathError> {
    let b = path.as_bytes();
    let ends_a_name = |w: &[u8]| w[1] == b'/' && (w[0] == b'.' || w[0] == b' ');
    if !(b.ends_with(b".") || b.ends_with(b" ") || b.windows(2).any(ends_a_name)) {
        return Ok(Cow::Borrowed(path));
    }
    let mut trimmed: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        let name = seg.trim_end_matches(['.', ' ']);
        if name.is_empty() && !seg.is_empty() {
            // Only dots and spaces (` ..`): no name left, as with `...`.
            return Err(PathError::DotLookalike);
        }
        trimmed.push(name);
    }
    Ok(Cow::Owned(resolve(&trimmed.join("/"))?))
}

/// What NFKC may have made that the gateway refuses in any path.
fn check_folded(s: &str) -> Result<(), PathError> {
    if s.chars().any(|c| c.is_control() || c == '\\') {
        return Err(PathError::ForbiddenChar);
    }
    let lower = s.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c", "%25"]
        .iter()
        .any(|e| lower.contains(e))
    {
        return Err(PathError::DoubleEncoded);
    }
    Ok(())
}

/// Dot segments and empty segments of an absolute decoded path resolved, as
/// `routing::normalize_path` does.
fn resolve(path: &str) -> Result<String, PathError> {
    super::resolve_segments(path).map(|(s, _)| s)
}

/// Whether `path` lies under `prefix` on whole segments, comparing as `case` says.
pub fn under(prefix: &str, path: &str, case: Case) -> bool {
    match case {
        Case::Sensitive => super::prefix_matches(prefix, path),
        Case::Insensitive => {
            if prefix == "/" {
                return true;
            }
            if prefix.is_ascii() && path.is_ascii() {
                path.len() >= prefix.len()
                    && path.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
                    && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
            } else {
                super::prefix_matches(&fold_case(prefix), &fold_case(path))
            }
        }
    }
}

/// Whether some reading of `path` (as [`distinct_readings`]) equals one of `paths`, ignoring
/// case: how an app server that matches any of them would see `path`. A path no reading can
/// make (a dot lookalike) matches nothing.
pub fn reads_as_one_of(path: &str, paths: &[String]) -> bool {
    let same = |r: &str| {
        paths.iter().any(|p| {
            p.eq_ignore_ascii_case(r)
                || (!(p.is_ascii() && r.is_ascii()) && fold_case(p) == fold_case(r))
        })
    };
    if reads_as_itself(path) {
        return same(path);
    }
    distinct_readings(path).is_ok_and(|rs| rs.iter().any(|r| same(r)))
}

/// Caseless form of a string: each character upper-cased then lower-cased, so that letters
/// equal under any server's case-insensitive comparison (`ſ` and `s`, `K` and `k`) compare equal.
pub fn fold_case(s: &str) -> String {
    s.chars()
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NFKC: Reading = Reading {
        nfkc: true,
        params: false,
        windows: false,
    };
    const PARAMS: Reading = Reading {
        nfkc: false,
        params: true,
        windows: false,
    };
    const WINDOWS: Reading = Reading {
        nfkc: false,
        params: false,
        windows: true,
    };

    fn read_as(path: &str, reading: Reading) -> String {
        read(path, reading).unwrap().into_owned()
    }

    #[test]
    fn all_readings_are_the_eight_combinations_literal_first() {
        assert_eq!(Reading::ALL[0], Reading::LITERAL);
        for (i, a) in Reading::ALL.iter().enumerate() {
            assert!(!Reading::ALL[..i].contains(a), "{a:?} twice");
        }
    }

    #[test]
    fn reads_as_itself_only_without_non_ascii_params_or_trailing_dots() {
        for p in [
            "/",
            "/a/b",
            "/Grades/Report.aspx",
            "/a.b/c",
            "/.well-known/x",
            "/a/",
        ] {
            assert!(reads_as_itself(p), "{p}");
        }
        for p in [
            "/a;b/c", "/a./c", "/a.", "/a /c", "/a ", "/café", "/a/b;v=1",
        ] {
            assert!(!reads_as_itself(p), "{p}");
        }
    }

    #[test]
    fn nfkc_folds_full_width_and_resolves_what_it_makes() {
        assert_eq!(read_as("/ｓｔａｆｆ/x", NFKC), "/staff/x");
        assert_eq!(read_as("/public/．．/admin", NFKC), "/admin");
        assert_eq!(read_as("/public/．．／admin", NFKC), "/admin");
        assert_eq!(read_as("/public/‥/admin", NFKC), "/admin");
        assert_eq!(read_as("/ſtaff", NFKC), "/staff");
        assert_eq!(read_as("/café", NFKC), "/café");
        assert_eq!(read("/．．．/x", NFKC), Err(PathError::DotLookalike));
        assert_eq!(read("/a＼b", NFKC), Err(PathError::ForbiddenChar));
        assert_eq!(read("/％2e％2e/x", NFKC), Err(PathError::DoubleEncoded));
    }

    #[test]
    fn params_dropped_from_every_segment() {
        assert_eq!(read_as("/staff;jsessionid=1/x;y", PARAMS), "/staff/x");
        assert_eq!(read_as("/;x/staff", PARAMS), "/staff");
        assert_eq!(read_as("/a/.;x/b", PARAMS), "/a/b");
        assert_eq!(read_as("/plain", PARAMS), "/plain");
    }

    #[test]
    fn windows_drops_trailing_dots_and_spaces() {
        assert_eq!(read_as("/staff./x", WINDOWS), "/staff/x");
        assert_eq!(read_as("/staff . ./x. ", WINDOWS), "/staff/x");
        assert_eq!(read_as("/a.b/c", WINDOWS), "/a.b/c");
        assert_eq!(read_as("/.well-known/x", WINDOWS), "/.well-known/x");
        assert_eq!(read("/a/ ../x", WINDOWS), Err(PathError::DotLookalike));
    }

    #[test]
    fn combinations_apply_in_stack_order() {
        let all = Reading {
            nfkc: true,
            params: true,
            windows: true,
        };
        assert_eq!(read_as("/ＳＴＡＦＦ.；x/y", all), "/STAFF/y");
        assert_eq!(read_as("/staff.;x/y", all), "/staff/y");
    }

    #[test]
    fn distinct_readings_are_the_readings_of_all_combinations_once() {
        for path in [
            "/plain/x",
            "/staff;x./y",
            "/ＳＴＡＦＦ.；x/y",
            "/public/．．/a;b/c. /d",
            "/café/x",
        ] {
            let got = distinct_readings(path).unwrap();
            assert_eq!(got[0], path);
            let mut want: Vec<String> = Vec::new();
            for r in Reading::ALL {
                let s = read(path, r).unwrap().into_owned();
                if !want.contains(&s) {
                    want.push(s);
                }
            }
            let mut got: Vec<String> = got.into_iter().map(Cow::into_owned).collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{path}");
        }
        assert_eq!(distinct_readings("/plain/x").unwrap().len(), 1);
        assert_eq!(
            distinct_readings("/a/．．．/b"),
            Err(PathError::DotLookalike)
        );
    }

    #[test]
    fn under_compares_whole_segments_with_or_without_case() {
        assert!(under("/staff", "/STAFF/x", Case::Insensitive));
        assert!(!under("/staff", "/STAFF/x", Case::Sensitive));
        assert!(!under("/staff", "/STAFFING", Case::Insensitive));
        assert!(under("/Staff", "/staff", Case::Insensitive));
        assert!(under("/", "/anything", Case::Insensitive));
        assert!(under("/straße", "/STRASSE/x", Case::Insensitive));
        assert!(under("/staff", "/ſtaff/x", Case::Insensitive));
        assert!(under("/kit", "/\u{212A}IT", Case::Insensitive));
        assert!(!under("/staff", "/sta", Case::Insensitive));
    }
}
