//! iocd's TLS: a local certificate authority kept in the database, leaf certificates minted
//! from it for each server name, and the Microsoft hosts iocd answers for when a client's HTTPS
//! proxy points at it. No HTTP here: the server crate serves connections with what this builds.

pub mod authority;
pub mod hosts;
pub mod resolver;

use std::sync::Arc;

use rustls::server::ResolvesServerCert;

pub use authority::CertificateAuthority;
pub use resolver::{load_certificate, LeafCertificates, LOOPBACK_NAMES};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate generation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("TLS error: {0}")]
    Rustls(#[from] rustls::Error),
    #[error(transparent)]
    Store(#[from] iocd_store::StoreError),
    #[error("{0}")]
    File(String),
}

/// A rustls server configuration (TLS 1.2 and 1.3; HTTP/2 and HTTP/1.1 by ALPN) that picks
/// certificates with `certificates`.
pub fn server_config(certificates: Arc<dyn ResolvesServerCert>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}
