//! Sign-ins in progress, kept by the browser instead of the server: each sign-in's return
//! address and start time are sealed (AES-256-GCM-SIV) into a short-lived cookie of its own,
//! named after its `state`, under a key every replica derives from the Clever client secret
//! (HKDF-SHA256 with a fixed label). An abandoned sign-in costs the server no memory, so no
//! flood of anonymous navigations can push a real user's sign-in out.
//!
//! The binding (what stops login CSRF): the callback's `state` must open the cookie named for
//! it, in this browser. The cookie cannot be forged (it is sealed with the state and its own
//! name as associated data), it is `HttpOnly`, `__Host-` when the session cookie is Secure and
//! has no Domain (`__Secure-` with a Domain), and the gateway strips every `Set-Cookie` of its
//! names from the apps' responses: so neither another host, nor a plain-HTTP attacker, nor an
//! app behind the gateway can plant one in a victim's browser.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM_SIV, NONCE_LEN};
use aws_lc_rs::hkdf;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Longest return address kept in a login cookie, in bytes. Longer ones lose their query
/// (and, if still too long, fall back to the site's root): see [`cap_return_to`].
pub const MAX_RETURN_TO: usize = 1024;

/// At most this many sign-ins in progress per browser (one cookie each)...
pub const MAX_LOGIN_COOKIES: usize = 16;
/// ...and at most this many bytes of them in its `Cookie` header (names and values): the
/// gateway refuses requests whose headers pass 32 KiB, and the apps' cookies need room too.
pub const LOGIN_COOKIE_BUDGET: usize = 12 * 1024;

/// HKDF salt and info: a key for this purpose only, whatever else the client secret keys.
const HKDF_SALT: &[u8] = b"clever-gateway login-state";
const HKDF_INFO: &[u8] = b"v1 AES-256-GCM-SIV";
/// First byte of every sealed value: the format.
const VERSION: u8 = 1;
/// Bytes of the state's SHA-256 that name its cookie (72 bits, as 12 base64url characters).
const TAG_BYTES: usize = 9;
/// A login cookie started this far in the future (another replica's clock) still counts.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// What a login cookie holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginState {
    /// Same-site path, or the configured host's absolute URL, to return to.
    pub return_to: String,
    /// When the sign-in started (whole seconds).
    pub started: SystemTime,
}

/// Why a login cookie could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Not sealed by this key for this state and name: forged, damaged, or from before a
    /// client-secret change.
    Invalid,
    /// Sealed here, but older than the login timeout.
    Expired,
}

/// Seals and opens login cookies. `Debug` shows no key material.
pub struct LoginSealer {
    key: RandomizedNonceKey,
}

impl std::fmt::Debug for LoginSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginSealer(<redacted>)")
    }
}

/// The 32-byte key HKDF derives (aws-lc-rs asks for the output length as a type).
struct KeyLen;

impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        32
    }
}

impl LoginSealer {
    /// The key every replica with this client secret derives alike.
    pub fn derive(client_secret: &[u8]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(client_secret);
        let mut key = [0u8; 32];
        prk.expand(&[HKDF_INFO], KeyLen)
            .and_then(|okm| okm.fill(&mut key))
            .expect("HKDF-SHA256 yields 32 bytes");
        let key = RandomizedNonceKey::new(&AES_256_GCM_SIV, &key)
            .expect("AES-256-GCM-SIV takes a 32-byte key");
        LoginSealer { key }
    }

    /// The cookie value for `login`, bound to `state` and to the cookie's `name`.
    pub fn seal(&self, name: &str, state: &str, login: &LoginState) -> String {
        let started = login
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut data = Vec::with_capacity(9 + login.return_to.len() + 16);
        data.extend_from_slice(&started.to_be_bytes());
        data.extend_from_slice(login.return_to.as_bytes());
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(aad(name, state)), &mut data)
            .expect("AES-256-GCM-SIV seals any input this size");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + data.len());
        out.push(VERSION);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&data);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out)
    }

    /// The sign-in sealed in cookie `name` for `state`, if it is ours, for this state, and
    /// started less than `timeout` before `now`.
    pub fn open(
        &self,
        name: &str,
        state: &str,
        value: &str,
        timeout: Duration,
        now: SystemTime,
    ) -> Result<LoginState, OpenError> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| OpenError::Invalid)?;
        let (&version, rest) = raw.split_first().ok_or(OpenError::Invalid)?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return Err(OpenError::Invalid);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Invalid)?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad(name, state)), &mut sealed)
            .map_err(|_| OpenError::Invalid)?;
        if plain.len() < 8 {
            return Err(OpenError::Invalid);
        }
        let (secs, return_to) = plain.split_at(8);
        let secs = u64::from_be_bytes(secs.try_into().map_err(|_| OpenError::Invalid)?);
        let return_to = std::str::from_utf8(return_to).map_err(|_| OpenError::Invalid)?;
        let started = UNIX_EPOCH + Duration::from_secs(secs);
        let fresh = match now.duration_since(started) {
            Ok(age) => age < timeout,
            Err(ahead) => ahead.duration() <= CLOCK_SKEW,
        };
        if !fresh {
            return Err(OpenError::Expired);
        }
        Ok(LoginState {
            return_to: return_to.to_string(),
            started,
        })
    }
}

/// The associated data: the cookie's name and the state, so a value opens only under the
/// name it was set with and for the state it was made for.
fn aad(name: &str, state: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(name.len() + 1 + state.len());
    a.extend_from_slice(name.as_bytes());
    a.push(0);
    a.extend_from_slice(state.as_bytes());
    a
}

/// What a sign-in's cookie is named after: 72 bits of the state's SHA-256, base64url. Tabs
/// signing in at once each get their own cookie.
pub fn state_tag(state: &str) -> String {
    let digest = Sha256::digest(state.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..TAG_BYTES])
}

/// A return address that fits a login cookie: as it is up to [`MAX_RETURN_TO`] bytes; longer,
/// without its query; still longer, the root of its site (`/`, or `https://host/` for an
/// absolute URL).
pub fn cap_return_to(return_to: &str) -> Cow<'_, str> {
    if return_to.len() <= MAX_RETURN_TO {
        return Cow::Borrowed(return_to);
    }
    let without_query = return_to.split('?').next().unwrap_or("/");
    if without_query.len() <= MAX_RETURN_TO {
        return Cow::Borrowed(without_query);
    }
    // `scheme://host/…` keeps `scheme://host/`; a path becomes `/`.
    match return_to.find("://") {
        Some(i) => {
            let after = i + 3;
            let end = return_to[after..]
                .find('/')
                .map_or(return_to.len(), |j| after + j);
            let root = &return_to[..end];
            if root.len() < MAX_RETURN_TO {
                Cow::Owned(format!("{root}/"))
            } else {
                Cow::Borrowed("/")
            }
        }
        None => Cow::Borrowed("/"),
    }
}

/// Which of a browser's login cookies (`(name, value)`, in the order the browser sent them:
/// oldest first) to expire before adding one of `new_len` bytes, so that at most
/// [`MAX_LOGIN_COOKIES`] remain and they fit [`LOGIN_COOKIE_BUDGET`]. The oldest go first.
pub fn to_evict(existing: &[(String, String)], new_len: usize) -> &[(String, String)] {
    let size = |c: &(String, String)| c.0.len() + c.1.len() + 3;
    let mut total: usize = existing.iter().map(size).sum::<usize>() + new_len;
    let mut first_kept = 0;
    while first_kept < existing.len()
        && (existing.len() - first_kept >= MAX_LOGIN_COOKIES || total > LOGIN_COOKIE_BUDGET)
    {
        total -= size(&existing[first_kept]);
        first_kept += 1;
    }
    &existing[..first_kept]
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "__Host-clever_gateway_login_abcdefghijkl";
    const TIMEOUT: Duration = Duration::from_secs(600);

    fn sealer() -> LoginSealer {
        LoginSealer::derive(b"0123456789abcdef0123456789abcdef01234567")
    }

    fn login(return_to: &str, started: SystemTime) -> LoginState {
        LoginState {
            return_to: return_to.into(),
            started,
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_900_000_000)
    }

    #[test]
    fn seal_then_open_gives_the_login_back() {
        let s = sealer();
        let l = login("/grades?term=2", now());
        let v = s.seal(NAME, "state-1", &l);
        assert_eq!(s.open(NAME, "state-1", &v, TIMEOUT, now()), Ok(l));
    }

    #[test]
    fn sealed_value_hides_the_return_path_and_differs_each_time() {
        let s = sealer();
        let l = login("/secret/path", now());
        let (a, b) = (s.seal(NAME, "st", &l), s.seal(NAME, "st", &l));
        assert_ne!(a, b, "a fresh nonce per cookie");
        for v in [&a, &b] {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(v)
                .unwrap();
            assert!(!raw.windows(6).any(|w| w == b"secret"), "{v}");
        }
    }

    #[test]
    fn open_refuses_another_state_name_key_or_a_changed_byte() {
        let s = sealer();
        let v = s.seal(NAME, "state-1", &login("/", now()));
        let other_key = LoginSealer::derive(b"another client secret");
        assert_eq!(
            s.open(NAME, "state-2", &v, TIMEOUT, now()),
            Err(OpenError::Invalid)
        );
        assert_eq!(
            s.open("clever_gateway_login_x", "state-1", &v, TIMEOUT, now()),
            Err(OpenError::Invalid)
        );
        assert_eq!(
            other_key.open(NAME, "state-1", &v, TIMEOUT, now()),
            Err(OpenError::Invalid)
        );
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&v)
            .unwrap();
        for i in 0..raw.len() {
            raw[i] ^= 1;
            let bad = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
            assert_eq!(
                s.open(NAME, "state-1", &bad, TIMEOUT, now()),
                Err(OpenError::Invalid),
                "byte {i}"
            );
            raw[i] ^= 1;
        }
        for junk in ["", "x", "AQ", "%%%", &"A".repeat(200)] {
            assert_eq!(
                s.open(NAME, "state-1", junk, TIMEOUT, now()),
                Err(OpenError::Invalid)
            );
        }
    }

    #[test]
    fn open_expires_at_the_timeout_and_allows_small_skew() {
        let s = sealer();
        let started = now();
        let v = s.seal(NAME, "st", &login("/", started));
        let at = |secs: i64| {
            if secs >= 0 {
                started + Duration::from_secs(secs as u64)
            } else {
                started - Duration::from_secs(secs.unsigned_abs())
            }
        };
        assert!(s.open(NAME, "st", &v, TIMEOUT, at(599)).is_ok());
        assert_eq!(
            s.open(NAME, "st", &v, TIMEOUT, at(600)),
            Err(OpenError::Expired)
        );
        assert!(s.open(NAME, "st", &v, TIMEOUT, at(-60)).is_ok());
        assert_eq!(
            s.open(NAME, "st", &v, TIMEOUT, at(-61)),
            Err(OpenError::Expired)
        );
    }

    #[test]
    fn derive_is_deterministic_so_replicas_share_it() {
        let v = sealer().seal(NAME, "st", &login("/x", now()));
        assert!(sealer().open(NAME, "st", &v, TIMEOUT, now()).is_ok());
    }

    #[test]
    fn state_tag_is_12_base64url_characters() {
        let t = state_tag("some-state");
        assert_eq!(t.len(), 12);
        assert!(t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(t, state_tag("other-state"));
        assert_eq!(t, state_tag("some-state"));
    }

    #[test]
    fn cap_return_to_drops_the_query_then_falls_back_to_the_root() {
        assert_eq!(cap_return_to("/a?b=1"), "/a?b=1");
        let long_query = format!("/report?q={}", "x".repeat(MAX_RETURN_TO));
        assert_eq!(cap_return_to(&long_query), "/report");
        let long_path = format!("/{}", "p".repeat(MAX_RETURN_TO));
        assert_eq!(cap_return_to(&long_path), "/");
        let abs = format!(
            "https://gradebook.example.org/{}",
            "p".repeat(MAX_RETURN_TO)
        );
        assert_eq!(cap_return_to(&abs), "https://gradebook.example.org/");
        let exact = format!("/{}", "p".repeat(MAX_RETURN_TO - 1));
        assert_eq!(cap_return_to(&exact), exact.as_str());
    }

    #[test]
    fn worst_case_login_cookie_fits_a_browser_cookie() {
        let s = sealer();
        let rt = format!("/{}", "p".repeat(MAX_RETURN_TO - 1));
        let v = s.seal(NAME, &"s".repeat(43), &login(&rt, now()));
        assert!(
            NAME.len() + 1 + v.len() < 4096,
            "{} bytes",
            NAME.len() + 1 + v.len()
        );
    }

    fn cookies(n: usize, value_len: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| {
                (
                    format!("clever_gateway_login_{i:012}"),
                    "v".repeat(value_len),
                )
            })
            .collect()
    }

    #[test]
    fn to_evict_keeps_up_to_the_cap_and_drops_the_oldest() {
        assert!(to_evict(&cookies(MAX_LOGIN_COOKIES - 1, 100), 150).is_empty());
        let full = cookies(MAX_LOGIN_COOKIES, 100);
        let gone = to_evict(&full, 150);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, full[0].0, "the oldest first");
        assert_eq!(
            to_evict(&cookies(40, 100), 150).len(),
            40 - MAX_LOGIN_COOKIES + 1
        );
    }

    #[test]
    fn to_evict_keeps_the_header_budget() {
        let big = cookies(10, 1500);
        let gone = to_evict(&big, 1550);
        let kept: usize = big[gone.len()..]
            .iter()
            .map(|(n, v)| n.len() + v.len() + 3)
            .sum();
        assert!(kept + 1550 <= LOGIN_COOKIE_BUDGET, "{kept}");
        assert!(
            kept + 1550 + 1500 + 24 > LOGIN_COOKIE_BUDGET,
            "no more than needed"
        );
    }
}
