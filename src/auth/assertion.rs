//! Signed identity assertions: the ES256 JWT sent upstream as `X-Clever-Assertion`, the signing
//! key (from `[assertion] key_file`, or generated at start), earlier keys kept published for a
//! rotation overlap, the JWKS at `/_gateway/jwks.json`, and the per-session token cache that
//! re-signs a token only when it nears expiry.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::HeaderName;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::AssertionConfig;
use crate::secret::random_token;
use crate::session::{unix_secs, Clock, SessionId, SessionRecord};

/// The header the assertion travels in (scrubbed from requests with the rest of `X-Clever-*`).
pub const X_CLEVER_ASSERTION: HeaderName = HeaderName::from_static("x-clever-assertion");

/// How long one token is valid.
pub const TOKEN_TTL: Duration = Duration::from_secs(5 * 60);

/// A cached token is re-signed when less than this is left of it.
pub const RESIGN_BEFORE: Duration = Duration::from_secs(60);

/// Most cached tokens (one per session and audience).
const CACHE_CAPACITY: u64 = 200_000;

/// Why the signing keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read assertion key file {}: {source}", .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("assertion key file {} holds no PEM private key (expected \"BEGIN EC PRIVATE KEY\" or \"BEGIN PRIVATE KEY\")", .path.display())]
    NotPem { path: PathBuf },
    #[error("assertion key file {} is not an EC P-256 private key (make one with: openssl ecparam -name prime256v1 -genkey -noout -out key.pem)", .path.display())]
    NotP256 { path: PathBuf },
    #[error("cannot generate an assertion signing key")]
    Generate,
}

/// What is wrong with the key files `cfg` names (for `clever-gateway check`, which warns, while
/// `run` refuses to start); a key that would be generated at start is not checked.
pub fn check_key_files(cfg: &AssertionConfig) -> Vec<KeyError> {
    cfg.key_file
        .iter()
        .chain(&cfg.previous_key_files)
        .filter_map(|p| SigningKey::load(p).err())
        .collect()
}

/// One EC P-256 key: its id, what signs with it, and its public JWK. (The Clever simulator
/// signs its OpenID Connect id_tokens with one too.)
pub(crate) struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: serde_json::Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish()
    }
}

impl SigningKey {
    fn from_pair(pair: &EcdsaKeyPair) -> Result<SigningKey, ()> {
        let pkcs8 = pair.to_pkcs8v1().map_err(|_| ())?;
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err(());
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..]);
        // RFC 7638 thumbprint: replicas sharing a key file publish the same kid.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "use": "sig", "alg": "ES256", "kid": kid,
        });
        Ok(SigningKey {
            kid,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
        })
    }

    /// A PEM file with a SEC1 (`EC PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`) P-256 key.
    fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let pem = std::fs::read(path).map_err(|source| KeyError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
        let der = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| KeyError::NotPem {
            path: path.to_owned(),
        })?;
        let not_p256 = || KeyError::NotP256 {
            path: path.to_owned(),
        };
        let pair =
            EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der.secret_der())
                .map_err(|_| not_p256())?;
        SigningKey::from_pair(&pair).map_err(|_| not_p256())
    }

    pub(crate) fn generate() -> Result<SigningKey, KeyError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| KeyError::Generate)?;
        SigningKey::from_pair(&pair).map_err(|_| KeyError::Generate)
    }

    /// The public key as a JWK (with `kid`, `alg` ES256 and `use` sig); the simulator
    /// publishes its own key with it.
    #[cfg(any(test, feature = "sim"))]
    pub(crate) fn jwk(&self) -> &serde_json::Value {
        &self.jwk
    }

    /// `claims` as an ES256 JWT whose header names this key's `kid`.
    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> jsonwebtoken::errors::Result<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }
}

/// The claims of one assertion.
#[derive(Debug, Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    district: Option<&'a str>,
    user_types: Vec<&'static str>,
    iat: u64,
    exp: u64,
    jti: String,
}

#[derive(Debug, Clone)]
struct Cached {
    token: Arc<str>,
    expires_at: SystemTime,
}

/// Signs assertions and publishes the keys that verify them.
pub struct Assertions {
    issuer: String,
    current: SigningKey,
    previous: Vec<SigningKey>,
    /// Previous keys are published until then.
    previous_until: SystemTime,
    clock: Arc<dyn Clock>,
    /// (hash of the session id, audience) → the token handed out for it.
    cache: moka::sync::Cache<(String, String), Cached>,
}

impl std::fmt::Debug for Assertions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assertions")
            .field("issuer", &self.issuer)
            .field("kid", &self.current.kid)
            .finish_non_exhaustive()
    }
}

impl Assertions {
    /// Loads the signing key and previous keys named by `cfg`, or generates a signing key
    /// (with a warning: replicas then sign with different keys). `issuer` is the `iss` claim.
    pub fn load(cfg: &AssertionConfig, clock: Arc<dyn Clock>) -> Result<Assertions, KeyError> {
        let current = match &cfg.key_file {
            Some(path) => SigningKey::load(path)?,
            None => {
                tracing::warn!(
                    "assertion: no [assertion] key_file, signing with a key generated at start; \
                     it changes on every restart and each replica has its own, so apps must \
                     refetch /_gateway/jwks.json and replicas disagree: set key_file"
                );
                SigningKey::generate()?
            }
        };
        let previous = cfg
            .previous_key_files
            .iter()
            .map(|p| SigningKey::load(p))
            .collect::<Result<Vec<_>, _>>()?;
        let now = clock.now();
        tracing::info!(kid = %current.kid, issuer = %cfg.issuer, previous = previous.len(), "assertion signing key loaded");
        Ok(Assertions {
            issuer: cfg.issuer.clone(),
            current,
            previous,
            previous_until: now + cfg.overlap,
            clock,
            cache: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(TOKEN_TTL)
                .build(),
        })
    }

    /// The `kid` new tokens are signed with.
    pub fn kid(&self) -> &str {
        &self.current.kid
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The assertion for `session` and `audience`: the cached token while more than
    /// `RESIGN_BEFORE` of it is left, else a freshly signed one. `None` if signing failed
    /// (logged; the request goes on without an assertion rather than with a stale one).
    pub fn token(
        &self,
        session: &SessionId,
        rec: &SessionRecord,
        audience: &str,
    ) -> Option<Arc<str>> {
        let now = self.clock.now();
        let key = (session_key(session), audience.to_string());
        if let Some(c) = self.cache.get(&key) {
            if c.expires_at > now + RESIGN_BEFORE {
                return Some(c.token);
            }
        }
        let fresh = self.sign(rec, audience, now)?;
        self.cache.insert(key, fresh.clone());
        Some(fresh.token)
    }

    fn sign(&self, rec: &SessionRecord, audience: &str, now: SystemTime) -> Option<Cached> {
        // Never outlive the session; a session about to end gets a short token.
        let expires_at = (now + TOKEN_TTL).min(rec.expires_at.max(now + Duration::from_secs(1)));
        let id = &rec.identity;
        let claims = Claims {
            iss: &self.issuer,
            aud: audience,
            sub: id.user_id(),
            district: id.district_id(),
            user_types: id.user_types().map(|t| t.as_str()).collect(),
            iat: unix_secs(now),
            exp: unix_secs(expires_at),
            jti: random_token(16),
        };
        match self.current.sign(&claims) {
            Ok(t) => Some(Cached {
                token: Arc::from(t),
                expires_at,
            }),
            Err(e) => {
                tracing::error!(error = %e, "assertion: signing failed");
                None
            }
        }
    }

    /// The JWKS document: the signing key, and previous keys while the overlap lasts.
    pub fn jwks(&self) -> serde_json::Value {
        let mut keys = vec![self.current.jwk.clone()];
        if self.clock.now() < self.previous_until {
            keys.extend(self.previous.iter().map(|k| k.jwk.clone()));
        }
        serde_json::json!({ "keys": keys })
    }
}

/// The cache key for a session: a hash, so the cache never holds a usable session id.
fn session_key(id: &SessionId) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(id.expose().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Identity, UserType};
    use crate::secret::Secret;
    use crate::session::ManualClock;
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation};

    /// A P-256 key in SEC1 PEM (`openssl ecparam -name prime256v1 -genkey -noout`).
    pub(crate) fn write_key(dir: &Path, name: &str) -> PathBuf {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    }

    fn cfg(key_file: Option<PathBuf>, previous: Vec<PathBuf>) -> AssertionConfig {
        AssertionConfig {
            issuer: "https://gw.example.org".into(),
            key_file,
            previous_key_files: previous,
            overlap: Duration::from_secs(3600),
        }
    }

    fn rec(ttl: Duration, clock: &ManualClock) -> SessionRecord {
        SessionRecord::new(
            Identity::builder("5fc43758db087d0be186c29d")
                .district("5d0a9e5d0958b300014e49d2")
                .role(UserType::Teacher)
                .role(UserType::Staff)
                .build(),
            Secret::new("t"),
            clock.now(),
            ttl,
        )
    }

    fn verify(a: &Assertions, token: &str, aud: &str) -> serde_json::Value {
        let jwks: JwkSet = serde_json::from_value(a.jwks()).unwrap();
        let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
        let jwk = jwks.find(&kid).expect("kid published");
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[aud]);
        v.set_issuer(&["https://gw.example.org"]);
        // The manual clock may run ahead of the real one.
        v.validate_exp = false;
        jsonwebtoken::decode::<serde_json::Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
            .unwrap()
            .claims
    }

    #[test]
    fn token_verifies_with_published_jwks_and_has_claims() {
        let clock = Arc::new(ManualClock::new());
        let a = Assertions::load(&cfg(None, vec![]), clock.clone()).unwrap();
        let r = rec(Duration::from_secs(7200), &clock);
        let t = a.token(&SessionId::generate(), &r, "gradebook").unwrap();
        let c = verify(&a, &t, "gradebook");
        assert_eq!(c["sub"], "5fc43758db087d0be186c29d");
        assert_eq!(c["district"], "5d0a9e5d0958b300014e49d2");
        assert_eq!(c["user_types"], serde_json::json!(["teacher", "staff"]));
        assert_eq!(c["aud"], "gradebook");
        let (iat, exp) = (c["iat"].as_u64().unwrap(), c["exp"].as_u64().unwrap());
        assert_eq!(exp - iat, 300);
        assert!(c["jti"].as_str().unwrap().len() >= 16);
        let h = jsonwebtoken::decode_header(t.as_bytes()).unwrap();
        assert_eq!(h.alg, Algorithm::ES256);
    }

    #[test]
    fn token_cached_per_session_and_audience_resigned_near_expiry() {
        let clock = Arc::new(ManualClock::new());
        let a = Assertions::load(&cfg(None, vec![]), clock.clone()).unwrap();
        let r = rec(Duration::from_secs(7200), &clock);
        let (s1, s2) = (SessionId::generate(), SessionId::generate());
        let t1 = a.token(&s1, &r, "app").unwrap();
        assert_eq!(a.token(&s1, &r, "app").unwrap(), t1, "cached");
        assert_ne!(a.token(&s2, &r, "app").unwrap(), t1, "per session");
        assert_ne!(a.token(&s1, &r, "other").unwrap(), t1, "per audience");
        clock.advance(Duration::from_secs(239));
        assert_eq!(
            a.token(&s1, &r, "app").unwrap(),
            t1,
            "61 s left: still cached"
        );
        clock.advance(Duration::from_secs(2));
        let t2 = a.token(&s1, &r, "app").unwrap();
        assert_ne!(t2, t1, "under 60 s left: re-signed");
        assert_eq!(a.token(&s1, &r, "app").unwrap(), t2);
    }

    #[test]
    fn token_never_outlives_session() {
        let clock = Arc::new(ManualClock::new());
        let a = Assertions::load(&cfg(None, vec![]), clock.clone()).unwrap();
        let r = rec(Duration::from_secs(90), &clock);
        let t = a.token(&SessionId::generate(), &r, "app").unwrap();
        let c = verify(&a, &t, "app");
        assert_eq!(c["exp"].as_u64().unwrap(), unix_secs(r.expires_at));
    }

    #[test]
    fn key_file_kid_stable_and_previous_keys_published_for_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let (new, old) = (
            write_key(dir.path(), "new.pem"),
            write_key(dir.path(), "old.pem"),
        );
        let clock = Arc::new(ManualClock::new());
        let a =
            Assertions::load(&cfg(Some(new.clone()), vec![old.clone()]), clock.clone()).unwrap();
        let b = Assertions::load(&cfg(Some(new), vec![]), clock.clone()).unwrap();
        assert_eq!(a.kid(), b.kid(), "same key file, same kid on every replica");
        let old_only = Assertions::load(&cfg(Some(old), vec![]), clock.clone()).unwrap();
        let old_token = old_only
            .token(
                &SessionId::generate(),
                &rec(Duration::from_secs(600), &clock),
                "app",
            )
            .unwrap();
        assert_eq!(a.jwks()["keys"].as_array().unwrap().len(), 2);
        // A token signed by the previous key still verifies with the new gateway's JWKS.
        verify(&a, &old_token, "app");
        clock.advance(Duration::from_secs(3601));
        let keys = a.jwks()["keys"].as_array().unwrap().clone();
        assert_eq!(keys.len(), 1, "overlap over: only the signing key");
        assert_eq!(keys[0]["kid"], a.kid());
    }

    #[test]
    fn load_refuses_missing_non_pem_and_wrong_curve() {
        let dir = tempfile::tempdir().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let missing = dir.path().join("nope.pem");
        let err = Assertions::load(&cfg(Some(missing), vec![]), clock.clone()).unwrap_err();
        assert!(matches!(err, KeyError::Unreadable { .. }), "{err}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        let err = Assertions::load(&cfg(Some(junk), vec![]), clock.clone()).unwrap_err();
        assert!(matches!(err, KeyError::NotPem { .. }), "{err}");
        let p384 = EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING)
            .unwrap()
            .to_pkcs8v1()
            .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(p384.as_ref());
        let path = dir.path().join("p384.pem");
        std::fs::write(
            &path,
            format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n"),
        )
        .unwrap();
        let err = Assertions::load(&cfg(Some(path), vec![]), clock).unwrap_err();
        assert!(matches!(err, KeyError::NotP256 { .. }), "{err}");
    }

    #[test]
    fn sec1_pem_key_accepted() {
        // A test-only key in the shape `openssl ecparam -name prime256v1 -genkey -noout` writes.
        const SEC1: &str = "-----BEGIN EC PRIVATE KEY-----\n\
MHcCAQEEIN+sVTUYPWbqa8qjSLLHpHiEDVN5vXDiZylGKb9MWNVloAoGCCqGSM49\n\
AwEHoUQDQgAEp9UWH92gRP1asIiCI+gAp9VeIEB3ZaUH0FIgy4Uoj3AUAkfbcrq7\n\
DQzWE4gkreKqQ7YsDpUu4TfS/VJN8cDCFQ==\n\
-----END EC PRIVATE KEY-----\n";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sec1.pem");
        std::fs::write(&path, SEC1).unwrap();
        let clock = Arc::new(ManualClock::new());
        let a = Assertions::load(&cfg(Some(path), vec![]), clock.clone()).unwrap();
        assert_eq!(a.jwks()["keys"][0]["crv"], "P-256");
        let t = a
            .token(
                &SessionId::generate(),
                &rec(Duration::from_secs(600), &clock),
                "app",
            )
            .unwrap();
        verify(&a, &t, "app");
    }
}
