//! Leaves written as strings and read into their real types while the file is deserialized
//! ([`Leaf`]): durations, socket addresses, networks, header names, enums and paths. A leaf that
//! does not read is reported by the file layer at its span, `key "text" why`, and pruned.

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use serde::de::{self, value::StrDeserializer, Deserialize, Deserializer, IntoDeserializer};
use toml::Spanned;

use super::file::quote;
use super::model::{ApiVersion, LogFormat, PublicPath, Readiness, StoreKind};
use crate::identity::UserType;

/// A string leaf read into `T`, with its span and its text as written.
#[derive(Debug, Clone)]
pub(crate) struct Leaf<T> {
    pub value: T,
    pub text: String,
    span: Range<usize>,
}

impl<T> Leaf<T> {
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }
}

/// How a leaf reads its text; `Err` says why not, as it follows the quoted text in a message
/// (`is not a duration: expected …`).
pub(crate) trait FromText: Sized {
    fn from_text(text: &str) -> Result<Self, String>;
}

/// The value and text inside the span (the toml deserializer puts a visitor's error there).
struct Read<T>(T, String);

impl<'de, T: FromText> Deserialize<'de> for Read<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(ReadVisitor(PhantomData))
    }
}

struct ReadVisitor<T>(PhantomData<T>);

impl<T: FromText> de::Visitor<'_> for ReadVisitor<T> {
    type Value = Read<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Read<T>, E> {
        match T::from_text(v) {
            Ok(value) => Ok(Read(value, v.to_owned())),
            Err(why) => Err(E::custom(format!("{} {why}", quote(v)))),
        }
    }
}

impl<'de, T: FromText> Deserialize<'de> for Leaf<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let read = Spanned::<Read<T>>::deserialize(d)?;
        let span = read.span();
        let Read(value, text) = read.into_inner();
        Ok(Leaf { value, text, span })
    }
}

/// An enum named by its serde names (`rename_all`): `is not a {what}: expected "a" or "b"`.
fn named<T: for<'de> Deserialize<'de>>(text: &str, what: &str) -> Result<T, String> {
    let d: StrDeserializer<'_, de::value::Error> = text.into_deserializer();
    T::deserialize(d).map_err(|e| {
        let e = e.to_string();
        let names = e.split_once(", expected ").map_or("", |(_, n)| n);
        format!("is not {what}: expected {}", names.replace('`', "\""))
    })
}

impl FromText for LogFormat {
    fn from_text(text: &str) -> Result<Self, String> {
        named(text, "a log format")
    }
}

impl FromText for StoreKind {
    fn from_text(text: &str) -> Result<Self, String> {
        named(text, "a store")
    }
}

impl FromText for Readiness {
    fn from_text(text: &str) -> Result<Self, String> {
        named(text, "a readiness mode").map_err(|_| {
            "is not a readiness mode: expected \"store\" (readyz is 503 while the session store \
             is unreachable; the default) or \"process\" (readyz is 200 while the process runs)"
                .to_owned()
        })
    }
}

impl FromText for Duration {
    fn from_text(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text.trim())
            .map_err(|_| "is not a duration: expected a duration like \"90s\" or \"2h\"".to_owned())
    }
}

impl FromText for SocketAddr {
    fn from_text(text: &str) -> Result<Self, String> {
        text.trim().parse().map_err(|_| {
            "is not an address: expected \"ip:port\" such as \"0.0.0.0:8080\" or \"[::]:8080\""
                .to_owned()
        })
    }
}

/// A network, or one address (a /32 or /128); host bits are cleared.
impl FromText for IpNet {
    fn from_text(text: &str) -> Result<Self, String> {
        let text = text.trim();
        text.parse::<IpNet>()
            .map(|n| n.trunc())
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| {
                "is not an address: expected a CIDR like \"10.0.0.0/8\" or an IP address like \
                 \"192.0.2.7\""
                    .to_owned()
            })
    }
}

impl FromText for HeaderName {
    fn from_text(text: &str) -> Result<Self, String> {
        HeaderName::from_bytes(text.as_bytes()).map_err(|_| {
            "is not a valid header name: expected letters, digits and - such as \
             \"X-Clever-User-Id\""
                .to_owned()
        })
    }
}

impl FromText for UserType {
    fn from_text(text: &str) -> Result<Self, String> {
        UserType::parse(text).ok_or_else(|| {
            "is not a Clever user type: expected one of student, teacher, staff, school_admin, \
             district_admin, contact"
                .to_owned()
        })
    }
}

/// `v2.<n>` or `v3.<n>`.
impl FromText for ApiVersion {
    fn from_text(text: &str) -> Result<Self, String> {
        let kind = match text.split_once('.') {
            Some(("v2", minor)) => Some((ApiVersion::V2, minor)),
            Some(("v3", minor)) => Some((ApiVersion::V3, minor)),
            _ => None,
        };
        kind.filter(|(_, m)| !m.is_empty() && m.len() <= 3 && m.bytes().all(|b| b.is_ascii_digit()))
            .map(|(kind, _)| kind)
            .ok_or_else(|| {
                "is not a Clever API version: expected v2.x or v3.x (v2.0, v2.1, v3.0, v3.1)"
                    .to_owned()
            })
    }
}

/// An entry of `public_paths`: a prefix when it ends in `/`.
impl FromText for PublicPath {
    fn from_text(p: &str) -> Result<Self, String> {
        let why = if !p.starts_with('/') {
            "does not start with \"/\": expected an absolute path such as \"/static/\" or \
             \"/favicon.ico\""
        } else if p.contains(['?', '#']) {
            "has \"?\" or \"#\": public paths match the path only, never the query"
        } else if p.contains("..") {
            "contains \"..\": expected a normalized path"
        } else if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
            "contains a space or control character: expected a plain path"
        } else if p.ends_with('/') {
            return Ok(PublicPath::Prefix(p.to_owned()));
        } else {
            return Ok(PublicPath::Exact(p.to_owned()));
        };
        Err(why.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_kind(text: &str) -> Option<ApiVersion> {
        ApiVersion::from_text(text).ok()
    }

    #[test]
    fn api_kind_parses_versions() {
        assert_eq!(api_kind("v2.0"), Some(ApiVersion::V2));
        assert_eq!(api_kind("v3.10"), Some(ApiVersion::V3));
        assert_eq!(api_kind("v3."), None);
        assert_eq!(api_kind("v1.0"), None);
    }
}
