//! The local certificate authority: created once per database, then used to sign leaf
//! certificates for the names iocd answers to.

use std::sync::Arc;

use iocd_store::{CertificateAuthorityStore, StoredCertificateAuthority};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::TlsError;

/// The CA's subject; clients show it when asked who issued a certificate.
const AUTHORITY_NAME: &str = "iocd local certificate authority";
/// Long enough that nobody re-trusts it by surprise; the key never leaves the database.
const AUTHORITY_LIFETIME: Duration = Duration::days(3650);
/// Within the 398 days that Apple's and Chrome's policies accept for a server certificate.
const LEAF_LIFETIME: Duration = Duration::days(397);
/// Certificates start a day in the past so a client whose clock is behind still accepts them.
const CLOCK_SKEW: Duration = Duration::days(1);

/// A certificate authority that can sign leaf certificates.
pub struct CertificateAuthority {
    certificate_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// The database's CA, created on first use. Servers racing on one database all end up with
    /// the CA stored first.
    pub async fn open(store: &dyn CertificateAuthorityStore) -> Result<Self, TlsError> {
        let stored = match store.certificate_authority().await? {
            Some(stored) => stored,
            None => {
                let candidate = Self::generate()?;
                let stored = store.certificate_authority_or_insert(&candidate).await?;
                if stored == candidate {
                    tracing::info!(
                        "created the local certificate authority (print it with `iocd ca`)"
                    );
                }
                stored
            }
        };
        Self::from_stored(&stored)
    }

    /// A new self-signed CA (not yet stored).
    pub fn generate() -> Result<StoredCertificateAuthority, TlsError> {
        let key = KeyPair::generate()?;
        let now = now();
        let mut params = CertificateParams::default();
        params.distinguished_name = authority_name();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + AUTHORITY_LIFETIME;
        let certificate = params.self_signed(&key)?;
        Ok(StoredCertificateAuthority {
            certificate_pem: certificate.pem(),
            private_key_pem: key.serialize_pem(),
            created_at: iocd_domain::time::now(),
        })
    }

    /// The CA a stored row describes.
    pub fn from_stored(stored: &StoredCertificateAuthority) -> Result<Self, TlsError> {
        let key = KeyPair::from_pem(&stored.private_key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&stored.certificate_pem, key)?;
        Ok(CertificateAuthority {
            certificate_pem: stored.certificate_pem.clone(),
            issuer,
        })
    }

    /// The CA certificate as PEM: what clients are told to trust.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// A new server certificate for `names` (DNS names or IP addresses; the first is its
    /// common name), with a fresh key, ready for rustls.
    pub fn issue(&self, names: &[String]) -> Result<Arc<CertifiedKey>, TlsError> {
        let key = KeyPair::generate()?;
        let now = now();
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut subject = DistinguishedName::new();
        if let Some(first) = names.first() {
            subject.push(DnType::CommonName, first.as_str());
        }
        params.distinguished_name = subject;
        params.is_ca = IsCa::ExplicitNoCa;
        // ECDSA keys only sign (no key encipherment, which is RSA's key exchange).
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + LEAF_LIFETIME;
        let certificate = params.signed_by(&key, &self.issuer)?;
        let private_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing_key = rustls::crypto::ring::sign::any_supported_type(&private_key)?;
        Ok(Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(certificate.der().to_vec())],
            signing_key,
        )))
    }
}

/// The current time, read through the domain's clock like every other "now" in iocd.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(iocd_domain::time::now().timestamp())
        .expect("the clock is within the years time can represent")
}

fn authority_name() -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, AUTHORITY_NAME);
    name.push(DnType::OrganizationName, "iocd");
    name
}
