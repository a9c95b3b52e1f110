//! Storage for iocd's local certificate authority: one CA per database, shared by every replica.
//!
//! Like the token-signing key, the CA is created by whichever server starts first; the others
//! insert-if-absent and read back the winner, so all of them sign with the same CA.

use async_trait::async_trait;
use iocd_domain::time::Timestamp;

use crate::StoreError;

/// A stored certificate authority: its self-signed certificate and its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCertificateAuthority {
    /// PEM of the self-signed CA certificate (what clients trust).
    pub certificate_pem: String,
    /// PKCS#8 PEM of the CA's private key.
    pub private_key_pem: String,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for StoredCertificateAuthority {
    // Never print the private key, even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCertificateAuthority")
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait CertificateAuthorityStore: Send + Sync + 'static {
    /// The stored CA, if one was created.
    async fn certificate_authority(&self)
        -> Result<Option<StoredCertificateAuthority>, StoreError>;

    /// Stores `candidate` as the CA unless one exists, then returns the stored CA: `candidate`
    /// if it won, otherwise the one stored first. Servers racing on one database all get the
    /// same CA back.
    async fn certificate_authority_or_insert(
        &self,
        candidate: &StoredCertificateAuthority,
    ) -> Result<StoredCertificateAuthority, StoreError>;
}

pub(crate) const ACTIVE_AUTHORITY_SLOT: &str = "active";

#[derive(sqlx::FromRow)]
pub(crate) struct AuthorityRow {
    pub certificate_pem: String,
    pub private_key_pem: String,
    pub created_at: i64,
}

impl From<AuthorityRow> for StoredCertificateAuthority {
    fn from(row: AuthorityRow) -> Self {
        StoredCertificateAuthority {
            certificate_pem: row.certificate_pem,
            private_key_pem: row.private_key_pem,
            created_at: iocd_domain::time::from_ticks(row.created_at),
        }
    }
}

/// Implements [`CertificateAuthorityStore`] for a store type whose `readers` field is a sqlx
/// pool (the SQL is the same on both databases).
macro_rules! impl_certificate_authority_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::authority::CertificateAuthorityStore for $store {
            async fn certificate_authority(
                &self,
            ) -> Result<Option<$crate::authority::StoredCertificateAuthority>, $crate::StoreError>
            {
                let row: Option<$crate::authority::AuthorityRow> = sqlx::query_as(
                    "SELECT certificate_pem, private_key_pem, created_at \
                     FROM certificate_authority WHERE slot = $1",
                )
                .bind($crate::authority::ACTIVE_AUTHORITY_SLOT)
                .fetch_optional(&self.readers)
                .await?;
                Ok(row.map(Into::into))
            }

            async fn certificate_authority_or_insert(
                &self,
                candidate: &$crate::authority::StoredCertificateAuthority,
            ) -> Result<$crate::authority::StoredCertificateAuthority, $crate::StoreError> {
                sqlx::query(
                    "INSERT INTO certificate_authority \
                     (slot, certificate_pem, private_key_pem, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (slot) DO NOTHING",
                )
                .bind($crate::authority::ACTIVE_AUTHORITY_SLOT)
                .bind(&candidate.certificate_pem)
                .bind(&candidate.private_key_pem)
                .bind(iocd_domain::time::to_ticks(candidate.created_at))
                .execute(&self.readers)
                .await?;
                $crate::authority::CertificateAuthorityStore::certificate_authority(self)
                    .await?
                    .ok_or_else(|| {
                        $crate::StoreError::Corrupt(
                            "the certificate authority vanished right after it was stored"
                                .to_string(),
                        )
                    })
            }
        }
    };
}

pub(crate) use impl_certificate_authority_store;
