//! Choosing the certificate for each TLS handshake: the listener's own names get one
//! certificate, each intercepted Microsoft host one of its own, all minted from the local CA on
//! first use and kept in memory.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::authority::CertificateAuthority;
use crate::hosts::is_intercepted_host;
use crate::TlsError;

/// A minted certificate is replaced after this long, well before its 397 days run out, so a
/// server that runs for years never serves an expired one.
const REMINT_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);

/// Names every iocd certificate for its own listener covers.
pub const LOOPBACK_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Mints certificates from the local CA by server name (SNI) and caches them.
///
/// A handshake naming an intercepted Microsoft host gets a certificate for that host; any other
/// handshake (another name, an IP address, no SNI at all) gets the listener's certificate, which
/// covers [`LOOPBACK_NAMES`] and the names given to [`LeafCertificates::new`]. The cache is
/// bounded by the fixed list of intercepted hosts plus one.
#[derive(Debug)]
pub struct LeafCertificates {
    authority: Arc<CertificateAuthority>,
    listener_names: Vec<String>,
    cache: Mutex<HashMap<String, (Instant, Arc<CertifiedKey>)>>,
}

impl LeafCertificates {
    /// Certificates for a listener also known as `extra_names` (the host of the public URL, the
    /// `--tls-name`s); the listener's certificate is minted now, so a bad name fails at start.
    pub fn new(
        authority: Arc<CertificateAuthority>,
        extra_names: &[String],
    ) -> Result<Self, TlsError> {
        let mut listener_names: Vec<String> =
            LOOPBACK_NAMES.iter().map(|n| n.to_string()).collect();
        for name in extra_names {
            let name = normalise(name);
            if !name.is_empty() && !listener_names.contains(&name) {
                listener_names.push(name);
            }
        }
        let leaves = LeafCertificates {
            authority,
            listener_names,
            cache: Mutex::new(HashMap::new()),
        };
        leaves.listener_certificate()?;
        Ok(leaves)
    }

    /// The names the listener's certificate covers.
    pub fn listener_names(&self) -> &[String] {
        &self.listener_names
    }

    /// The certificate for an intercepted Microsoft host (minted on first use).
    pub fn host_certificate(&self, host: &str) -> Result<Arc<CertifiedKey>, TlsError> {
        let host = normalise(host);
        self.cached(&host.clone(), || vec![host])
    }

    /// The certificate of the listener's own names.
    pub fn listener_certificate(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        // The empty key cannot clash with a host name.
        self.cached("", || self.listener_names.clone())
    }

    fn cached(
        &self,
        key: &str,
        names: impl FnOnce() -> Vec<String>,
    ) -> Result<Arc<CertifiedKey>, TlsError> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((minted, certificate)) = cache.get(key) {
            if minted.elapsed() < REMINT_AFTER {
                return Ok(certificate.clone());
            }
        }
        // Minting (a P-256 key and one signature) takes well under a millisecond, so holding
        // the lock spares a burst of first handshakes from minting the same host many times.
        let certificate = self.authority.issue(&names())?;
        cache.insert(key.to_string(), (Instant::now(), certificate.clone()));
        Ok(certificate)
    }
}

impl ResolvesServerCert for LeafCertificates {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let result = match client_hello.server_name() {
            Some(name) if is_intercepted_host(name) => self.host_certificate(name),
            _ => self.listener_certificate(),
        };
        result
            .inspect_err(|e| tracing::error!(error = %e, "minting a TLS certificate failed"))
            .ok()
    }
}

/// A certificate chain and key the operator brings (`--tls-cert`, `--tls-key`), both PEM.
pub fn load_certificate(
    certificate_path: &Path,
    key_path: &Path,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let unreadable = |path: &Path, e: rustls_pki_types::pem::Error| {
        TlsError::File(format!("{}: {e}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(certificate_path)
        .map_err(|e| unreadable(certificate_path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(certificate_path, e))?;
    if chain.is_empty() {
        return Err(TlsError::File(format!(
            "{}: no CERTIFICATE section",
            certificate_path.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| unreadable(key_path, e))?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key)?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|e| {
        TlsError::File(format!(
            "{} does not hold the key of {}: {e}",
            key_path.display(),
            certificate_path.display()
        ))
    })?;
    Ok(Arc::new(certified))
}

fn normalise(name: &str) -> String {
    let name = name.trim();
    let name = name.strip_suffix('.').unwrap_or(name);
    // An IPv6 literal from a URL comes bracketed.
    let name = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    name.to_ascii_lowercase()
}
