//! District-app tokens: the registry the gateway reads them from (the `[[district]]` tokens of
//! the file and, with `discover_district_tokens`, the ones Clever lists for the application,
//! kept in memory only), the lenient parsing of Clever's token list and `/districts/{id}`, and
//! the discovery loop that lists the tokens at start and every `district_tokens_refresh`.
//!
//! A token is a [`Secret`]: it is sent only in an `Authorization` header to Clever's API and
//! never logged, counted or shown. Logs name districts by id.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;

use super::parse::valid_id;
use super::{CleverClient, CleverError};
use crate::secret::Secret;

/// One district-app token as Clever lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedToken {
    /// `owner.id`: the district that authorized the application.
    pub district_id: String,
    pub token: Secret,
    /// `created`, as written (ISO 8601), for choosing the newest of several.
    pub created: Option<String>,
}

/// What `/districts/{id}` says about a district.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistrictInfo {
    pub id: String,
    pub name: Option<String>,
}

/// Parses `GET /oauth/tokens?owner_type=district`:
/// `{"data":[{"id":…,"created":…,"owner":{"type":"district","id":…},"access_token":…,"scopes":[…]}]}`.
/// Unknown fields are ignored, as are entries owned by something other than a district or
/// without a usable token or district id; an entry may also come wrapped as `{"data":{…}}`.
/// When a district has several tokens the newest (`created`) wins.
pub fn parse_token_list(body: &[u8]) -> Result<Vec<ListedToken>, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| "the token list is not JSON".to_string())?;
    let Some(Value::Array(items)) = v.get("data") else {
        return Err("the token list has no data array".into());
    };
    let mut out: Vec<ListedToken> = Vec::new();
    for item in items {
        let item = match item.get("data") {
            Some(inner @ Value::Object(_)) => inner,
            _ => item,
        };
        let owner = item.get("owner");
        let owner_type = owner.and_then(|o| o.get("type")).and_then(Value::as_str);
        if owner_type.is_some_and(|t| t != "district") {
            continue;
        }
        let Some(district_id) = owner
            .and_then(|o| o.get("id"))
            .and_then(Value::as_str)
            .filter(|d| valid_id(d))
        else {
            continue;
        };
        let Some(token) = item
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| usable_token(t))
        else {
            continue;
        };
        let listed = ListedToken {
            district_id: district_id.to_string(),
            token: Secret::new(token),
            created: item
                .get("created")
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        match out.iter_mut().find(|t| t.district_id == listed.district_id) {
            Some(existing) if listed.created > existing.created => *existing = listed,
            Some(_) => {}
            None => out.push(listed),
        }
    }
    Ok(out)
}

/// A bearer token we are willing to put in a header: printable ASCII, no spaces, bounded.
fn usable_token(t: &str) -> bool {
    !t.is_empty() && t.len() <= 512 && t.bytes().all(|b| b.is_ascii_graphic())
}

/// Parses `/districts/{id}`: `{"data":{"id":…,"name":…}}`.
pub fn parse_district(body: &[u8]) -> Result<DistrictInfo, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| "/districts/{id} is not JSON".to_string())?;
    let data = v.get("data").ok_or("/districts/{id} has no data")?;
    let id = data
        .get("id")
        .and_then(Value::as_str)
        .filter(|d| valid_id(d))
        .ok_or("/districts/{id} has no data.id")?;
    let name = data
        .get("name")
        .and_then(Value::as_str)
        .map(|n| n.chars().filter(|c| !c.is_control()).take(200).collect())
        .filter(|n: &String| !n.trim().is_empty());
    Ok(DistrictInfo {
        id: id.to_string(),
        name,
    })
}

/// Where a known token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// A `[[district]]` table.
    Config,
    /// Listed by Clever (`discover_district_tokens`).
    Discovered,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Config => "config",
            TokenSource::Discovered => "discovered",
        }
    }
}

/// The district-app tokens the gateway knows, by district id. The file's `[[district]]`
/// tokens are fixed; discovered ones are replaced at each listing. A district with both uses
/// the file's (the operator's choice wins).
#[derive(Debug, Default)]
pub struct DistrictTokens {
    configured: HashMap<String, Secret>,
    discovered: RwLock<HashMap<String, Secret>>,
}

/// What one listing changed, by district id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryChange {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Districts whose token is new (rotated).
    pub replaced: Vec<String>,
    pub total: usize,
}

impl DistrictTokens {
    /// The registry with the file's tokens (district id, token).
    pub fn new(configured: impl IntoIterator<Item = (String, Secret)>) -> Self {
        DistrictTokens {
            configured: configured.into_iter().collect(),
            discovered: RwLock::default(),
        }
    }

    /// The token to read `district_id` with, and where it came from.
    pub fn get(&self, district_id: &str) -> Option<(Secret, TokenSource)> {
        if let Some(t) = self.configured.get(district_id) {
            return Some((t.clone(), TokenSource::Config));
        }
        let discovered = self.discovered.read().unwrap_or_else(|e| e.into_inner());
        discovered
            .get(district_id)
            .map(|t| (t.clone(), TokenSource::Discovered))
    }

    /// Every district a token is known for, sorted.
    pub fn districts(&self) -> Vec<String> {
        let discovered = self.discovered.read().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<String> = self
            .configured
            .keys()
            .chain(discovered.keys())
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Replaces the discovered tokens with a fresh listing.
    pub fn replace_discovered(&self, listed: Vec<ListedToken>) -> DiscoveryChange {
        let fresh: HashMap<String, Secret> = listed
            .into_iter()
            .map(|t| (t.district_id, t.token))
            .collect();
        let mut current = self.discovered.write().unwrap_or_else(|e| e.into_inner());
        let mut change = DiscoveryChange {
            total: fresh.len(),
            ..DiscoveryChange::default()
        };
        for (id, token) in &fresh {
            match current.get(id) {
                None => change.added.push(id.clone()),
                Some(old) if old != token => change.replaced.push(id.clone()),
                Some(_) => {}
            }
        }
        change.removed = current
            .keys()
            .filter(|id| !fresh.contains_key(*id))
            .cloned()
            .collect();
        for list in [&mut change.added, &mut change.removed, &mut change.replaced] {
            list.sort();
        }
        *current = fresh;
        change
    }
}

/// How long to wait before the next listing: `refresh` after a success; after a failure
/// sooner (at most 30 s, so a gateway that started while Clever was unreachable finds its
/// tokens soon), but never sooner than 1 s.
pub fn next_discovery_wait(ok: bool, refresh: Duration) -> Duration {
    if ok {
        refresh
    } else {
        refresh
            .min(Duration::from_secs(30))
            .max(Duration::from_secs(1))
    }
}

/// Lists the application's district-app tokens now and every `refresh`, until `stop`
/// completes. Failures are logged (without the tokens) and retried; the tokens already known
/// are kept until a listing succeeds.
pub async fn discover_forever(
    client: CleverClient,
    tokens: Arc<DistrictTokens>,
    refresh: Duration,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let ok = discover_once(&client, &tokens).await.is_ok();
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(next_discovery_wait(ok, refresh)) => {}
        }
    }
}

/// One listing, logged.
pub async fn discover_once(
    client: &CleverClient,
    tokens: &DistrictTokens,
) -> Result<DiscoveryChange, CleverError> {
    match client.list_district_tokens().await {
        Ok(listed) => {
            let change = tokens.replace_discovered(listed);
            tracing::info!(
                total = change.total,
                added = ?change.added,
                removed = ?change.removed,
                rotated = ?change.replaced,
                "district-app tokens discovered"
            );
            Ok(change)
        }
        Err(e) => {
            tracing::warn!(
                reason = e.reason(),
                error = %e,
                "could not list the district-app tokens; keeping the ones already known"
            );
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "5d0a9e5d0958b300014e49d2";
    const D2: &str = "53ee4b8a44abc88c1c00119b";

    #[test]
    fn token_list_parses_clever_shape_and_ignores_unknown_fields() {
        let body = format!(
            r#"{{"data":[{{"id":"t1","created":"2024-01-02T00:00:00.000Z","owner":{{"type":"district","id":"{D1}"}},"access_token":"0123456789abcdef0123456789abcdef01234567","scopes":["read:district_admins"],"extra":{{"x":1}}}}],"links":[]}}"#
        );
        let list = parse_token_list(body.as_bytes()).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].district_id, D1);
        assert_eq!(
            list[0].token.expose(),
            "0123456789abcdef0123456789abcdef01234567"
        );
        assert!(!format!("{list:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn token_list_skips_unusable_entries_and_keeps_the_newest() {
        let body = format!(
            r#"{{"data":[
              {{"owner":{{"type":"user","id":"u1"}},"access_token":"aaaa"}},
              {{"owner":{{"type":"district","id":"bad id"}},"access_token":"bbbb"}},
              {{"owner":{{"type":"district","id":"{D1}"}},"access_token":"has space"}},
              {{"owner":{{"type":"district","id":"{D1}"}}}},
              {{"created":"2023-01-01","owner":{{"type":"district","id":"{D2}"}},"access_token":"old"}},
              {{"created":"2024-06-01","owner":{{"type":"district","id":"{D2}"}},"access_token":"new"}},
              {{"data":{{"owner":{{"id":"{D1}"}},"access_token":"wrapped"}}}},
              7, null, "x"
            ]}}"#
        );
        let list = parse_token_list(body.as_bytes()).unwrap();
        let got: Vec<(&str, &str)> = list
            .iter()
            .map(|t| (t.district_id.as_str(), t.token.expose()))
            .collect();
        assert_eq!(got, vec![(D2, "new"), (D1, "wrapped")]);
    }

    #[test]
    fn token_list_without_data_or_not_json_is_error() {
        assert!(parse_token_list(b"{}").is_err());
        assert!(parse_token_list(b"<html>").is_err());
        assert!(parse_token_list(br#"{"data":{}}"#).is_err());
        assert!(parse_token_list(br#"{"data":[]}"#).unwrap().is_empty());
    }

    #[test]
    fn district_parses_name_leniently() {
        let d = parse_district(
            format!(r#"{{"data":{{"id":"{D1}","name":"Demo USD","mdr_number":"1"}},"links":[]}}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(d.name.as_deref(), Some("Demo USD"));
        let d = parse_district(format!(r#"{{"data":{{"id":"{D1}"}}}}"#).as_bytes()).unwrap();
        assert_eq!(d.name, None);
        let d = parse_district(format!(r#"{{"data":{{"id":"{D1}","name":"A\r\nB"}}}}"#).as_bytes())
            .unwrap();
        assert_eq!(d.name.as_deref(), Some("AB"));
        assert!(parse_district(b"").is_err());
        assert!(parse_district(br#"{"data":{"id":"a b"}}"#).is_err());
    }

    fn listed(id: &str, token: &str) -> ListedToken {
        ListedToken {
            district_id: id.into(),
            token: Secret::new(token),
            created: None,
        }
    }

    #[test]
    fn registry_configured_token_wins_over_discovered() {
        let reg = DistrictTokens::new([(D1.to_string(), Secret::new("from-file"))]);
        reg.replace_discovered(vec![listed(D1, "listed"), listed(D2, "listed2")]);
        assert_eq!(
            reg.get(D1).map(|(t, s)| (t.expose().to_string(), s)),
            Some(("from-file".into(), TokenSource::Config))
        );
        assert_eq!(
            reg.get(D2).map(|(t, s)| (t.expose().to_string(), s)),
            Some(("listed2".into(), TokenSource::Discovered))
        );
        assert_eq!(reg.districts(), vec![D2.to_string(), D1.to_string()]);
        assert!(reg.get("other").is_none());
    }

    #[test]
    fn registry_replace_reports_added_removed_and_rotated() {
        let reg = DistrictTokens::default();
        let c = reg.replace_discovered(vec![listed(D1, "a")]);
        assert_eq!(c.added, vec![D1.to_string()]);
        let c = reg.replace_discovered(vec![listed(D1, "b"), listed(D2, "c")]);
        assert_eq!(c.added, vec![D2.to_string()]);
        assert_eq!(c.replaced, vec![D1.to_string()]);
        assert_eq!(c.total, 2);
        let c = reg.replace_discovered(vec![listed(D2, "c")]);
        assert_eq!(c.removed, vec![D1.to_string()]);
        assert!(c.added.is_empty() && c.replaced.is_empty());
        assert!(reg.get(D1).is_none());
    }

    #[test]
    fn discovery_wait_is_refresh_after_success_and_shorter_after_failure() {
        let hour = Duration::from_secs(3600);
        assert_eq!(next_discovery_wait(true, hour), hour);
        assert_eq!(next_discovery_wait(false, hour), Duration::from_secs(30));
        assert_eq!(
            next_discovery_wait(false, Duration::from_secs(2)),
            Duration::from_secs(2)
        );
    }
}
