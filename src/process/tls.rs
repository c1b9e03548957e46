//! TLS material for pingora, read and checked when the server is built so that a bad file stops
//! the start with a message naming it (pingora itself panics in a service thread on a bad
//! certificate file): the listeners' certificate chain and key, served with HTTP/2 and
//! HTTP/1.1 by ALPN; each upstream's `tls_ca`; and the system roots that pingora's rustls
//! connector verifies HTTPS upstreams with.
//!
//! Upstream verification, as pingora 0.9's rustls connector does it: with `verify_cert` (the
//! default) the certificate must chain to the connector's roots and be valid for the host name
//! of the upstream URL (its SNI); the roots are the system's (`rustls-native-certs`: the
//! OpenSSL-style bundle found by `openssl-probe`, such as `/etc/ssl/certs/ca-certificates.crt`,
//! or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set), not a compiled-in webpki list. A per-peer CA
//! (`tls_ca`) replaces those roots for that upstream. `verify_cert = false` skips every check.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pingora::listeners::tls::TlsSettings;
use pingora::protocols::tls::CaType;
use pingora::tls::sign::{CertifiedKey, SingleCertAndKey};
use pingora::tls::{CertificateDer, CryptoProvider, PrivateKeyDer, RootCertStore, RusTlsError};
use pingora::utils::tls::WrappedX509;
use rustls_pki_types::pem::{self, PemObject};

/// A TLS file that cannot be used. Names the config key and the file; never shows key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    #[error("{key} {}: cannot read it: {source}", .path.display())]
    Unreadable {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key} {}: {why}", .path.display())]
    Invalid {
        key: String,
        path: PathBuf,
        why: String,
    },
}

/// The listeners' certificate chain and private key, loaded and checked against each other.
pub struct ListenerTls {
    key: Arc<CertifiedKey>,
    cert_path: String,
    key_path: String,
}

impl std::fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerTls")
            .field("cert_path", &self.cert_path)
            .field("chain_len", &self.key.cert.len())
            .finish_non_exhaustive()
    }
}

impl ListenerTls {
    /// Reads `tls_cert` (PEM, the server's certificate first, then any intermediates) and
    /// `tls_key` (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC), and checks that the key belongs to the
    /// first certificate.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsFileError> {
        const CERT_KEY: &str = "server.tls_cert";
        const KEY_KEY: &str = "server.tls_key";
        let chain = read_certs(CERT_KEY, cert)?;
        let key_der = read_key(KEY_KEY, key)?;
        let invalid = |k: &str, p: &Path, why: String| TlsFileError::Invalid {
            key: k.to_owned(),
            path: p.to_owned(),
            why,
        };
        let provider = provider().ok_or_else(|| {
            invalid(
                KEY_KEY,
                key,
                "no TLS crypto provider is available".to_owned(),
            )
        })?;
        let certified = CertifiedKey::from_der(chain, key_der, &provider).map_err(|e| match e {
            RusTlsError::InconsistentKeys(_) => invalid(
                KEY_KEY,
                key,
                format!(
                    "this private key does not belong to the first certificate in \
                         server.tls_cert {} (the server's own certificate must come first)",
                    cert.display()
                ),
            ),
            e @ RusTlsError::InvalidCertificate(_) => invalid(
                CERT_KEY,
                cert,
                format!("the first certificate cannot be used ({e})"),
            ),
            other => invalid(
                KEY_KEY,
                key,
                format!("the private key cannot be used ({other})"),
            ),
        })?;
        Ok(ListenerTls {
            key: Arc::new(certified),
            cert_path: cert.to_string_lossy().into_owned(),
            key_path: key.to_string_lossy().into_owned(),
        })
    }

    /// pingora settings for one TLS listener: this certificate, and HTTP/2 offered before
    /// HTTP/1.1 by ALPN (clients without ALPN get HTTP/1.1).
    pub fn settings(&self) -> pingora::Result<TlsSettings> {
        let mut settings = TlsSettings::intermediate(&self.cert_path, &self.key_path)?;
        // With a resolver, pingora never reads the files again (nor panics on them).
        settings.set_cert_resolver(Arc::new(SingleCertAndKey::from(self.key.clone())));
        settings.enable_h2();
        Ok(settings)
    }
}

/// An upstream's `tls_ca` in pingora's per-peer CA form, read once at start. Opaque outside
/// the pingora glue: the gateway's decisions carry it to the proxy without looking inside.
#[derive(Clone)]
pub struct UpstreamCa(pub(crate) Arc<CaType>);

impl std::fmt::Debug for UpstreamCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UpstreamCa({} certificates)", self.0.len())
    }
}

/// Reads an upstream's `tls_ca`: one or more PEM certificates that its certificate must chain
/// to, in pingora's per-peer CA form. `upstream` names it in messages.
pub fn load_upstream_ca(upstream: &str, path: &Path) -> Result<UpstreamCa, TlsFileError> {
    let key = format!("upstream {upstream:?} tls_ca");
    let certs = read_certs(&key, path)?;
    let mut out: Vec<WrappedX509> = Vec::with_capacity(certs.len());
    for (i, der) in certs.into_iter().enumerate() {
        let why = |what: String| TlsFileError::Invalid {
            key: key.clone(),
            path: path.to_owned(),
            why: format!("certificate {} {what}", i + 1),
        };
        // The checks pingora's connector makes on every connection, made once here.
        RootCertStore::empty()
            .add(der.clone())
            .map_err(|e| why(format!("cannot be a trust anchor ({e})")))?;
        let wrapped = WrappedX509::try_new(der.to_vec(), |raw| {
            x509_parser::parse_x509_certificate(raw).map(|(_, c)| c)
        })
        .map_err(|e| why(format!("is not a valid X.509 certificate ({e})")))?;
        out.push(wrapped);
    }
    Ok(UpstreamCa(Arc::from(out.into_boxed_slice())))
}

/// Loads the system roots the way pingora's connector does when the proxy service is built
/// (it panics if that fails, e.g. `SSL_CERT_FILE` names a missing file), and returns how many
/// there are.
pub fn system_roots() -> Result<usize, String> {
    pingora::tls::install_default_crypto_provider();
    let mut store = RootCertStore::empty();
    pingora::tls::load_platform_certs_incl_env_into_store(&mut store)
        .map_err(|e| e.to_string().trim().to_owned())?;
    Ok(store.len())
}

/// The process's rustls provider: the one pingora installs (`ring`) unless one was installed
/// before.
fn provider() -> Option<Arc<CryptoProvider>> {
    pingora::tls::install_default_crypto_provider();
    CryptoProvider::get_default().cloned()
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError::Unreadable {
        key: key.to_owned(),
        path: path.to_owned(),
        source,
    })
}

/// Every `CERTIFICATE` block of a PEM file, in order; other blocks are skipped.
fn read_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let bytes = read(key, path)?;
    let invalid = |why: String| TlsFileError::Invalid {
        key: key.to_owned(),
        path: path.to_owned(),
        why,
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not a valid PEM file ({e})")))?;
    if certs.is_empty() {
        return Err(invalid(
            "no certificate in it: expected PEM \"-----BEGIN CERTIFICATE-----\" blocks".to_owned(),
        ));
    }
    Ok(certs)
}

/// The first private key of a PEM file. The PEM parser's own message is not shown: it could
/// quote a line of the key.
fn read_key(key: &str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let bytes = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsFileError::Invalid {
        key: key.to_owned(),
        path: path.to_owned(),
        why: match e {
            pem::Error::NoItemsFound => "no private key in it: expected a PEM \"BEGIN PRIVATE \
                                         KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE \
                                         KEY\" block"
                .to_owned(),
            _ => "not a valid PEM private key file".to_owned(),
        },
    })
}
