//! Newtypes for values that must never be logged or rendered: their `Debug` prints `<redacted>`.

use std::fmt;

/// A secret string (client secret, access token). Read it only where it is sent on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place it goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `len` random bytes from the OS CSPRNG, base64url-encoded without padding.
pub fn random_token(len: usize) -> String {
    use base64::Engine;
    use rand::TryRngCore;
    let mut bytes = vec![0u8; len];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random number generator failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_redacted() {
        let s = Secret::new("il3jsfUI2131da2f");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(s.expose(), "il3jsfUI2131da2f");
    }

    #[test]
    fn random_token_length_and_uniqueness() {
        let a = random_token(32);
        let b = random_token(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }
}
