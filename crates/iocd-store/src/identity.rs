//! Storage for identity: app registrations, the token-signing key and one-time set-up steps.
//!
//! The SQL is the same on both databases (`$n` placeholders, `ON CONFLICT … DO NOTHING`), so one
//! macro implements [`IdentityStore`] for [`SqliteStore`](crate::SqliteStore) and
//! [`PostgresStore`](crate::PostgresStore) over their pools. Identity writes are rare (an
//! operator creating an app, a server generating its key once), so they go straight through the
//! pool rather than through the indicator writer.

use async_trait::async_trait;
use iocd_domain::time::Timestamp;

use crate::StoreError;

/// An app registration: what `iocd apps create` made, minus the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRegistration {
    pub tenant_id: String,
    /// The client (application) id, unique across tenants.
    pub client_id: String,
    /// The service-principal object id: the token's `oid` and `sub`.
    pub object_id: String,
    /// Shown as `createdByDisplayName` on the indicators the app writes.
    pub display_name: String,
    /// argon2id PHC string of the client secret.
    pub secret_hash: String,
    /// Application roles, such as `Ti.ReadWrite.All`.
    pub roles: Vec<String>,
    pub created_at: Timestamp,
}

/// A stored token-signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub kid: String,
    /// PKCS#8 PEM of the private key.
    pub private_key_pem: String,
    pub created_at: Timestamp,
    /// `None` for the active key; for a rotated-out key, when the last token it signed expires
    /// (it is published and accepted until then).
    pub retire_at: Option<Timestamp>,
}

impl std::fmt::Debug for StoredSigningKey {
    // Never print the private key, even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retire_at", &self.retire_at)
            .finish_non_exhaustive()
    }
}

/// A certificate registered on an app (certificate credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAppCertificate {
    pub client_id: String,
    /// SHA-1 of the DER certificate, upper-case hex.
    pub thumbprint: String,
    /// SHA-256 of the DER certificate, upper-case hex.
    pub thumbprint_sha256: String,
    pub certificate_pem: String,
    pub not_after: Timestamp,
    pub created_at: Timestamp,
}

/// What adding a certificate to an app did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateAdded {
    Added,
    /// The app already has a certificate with this thumbprint.
    AlreadyThere,
    /// No app with that client id in that tenant.
    NoSuchApp,
}

/// Why an app could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum AppInsertError {
    #[error("an app with client id {0} already exists")]
    DuplicateClientId(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
/// Every identity store also stores users (see [`crate::UserStore`]), so the identity provider
/// reaches both through one handle.
pub trait IdentityStore: crate::users::UserStore + Send + Sync + 'static {
    /// Stores a new app registration.
    async fn insert_app(&self, app: &AppRegistration) -> Result<(), AppInsertError>;

    /// The app with this client id in this tenant (an app of another tenant is not found).
    async fn find_app(
        &self,
        tenant_id: &str,
        client_id: &str,
    ) -> Result<Option<AppRegistration>, StoreError>;

    /// Apps of one tenant, or of every tenant, ordered by tenant then creation.
    async fn list_apps(&self, tenant_id: Option<&str>) -> Result<Vec<AppRegistration>, StoreError>;

    /// Deletes the app; false when there was no such app in that tenant.
    async fn delete_app(&self, tenant_id: &str, client_id: &str) -> Result<bool, StoreError>;

    /// Replaces the app's application roles; false when there was no such app in that tenant.
    /// Tokens already issued keep the roles they carry until they expire.
    async fn set_app_roles(
        &self,
        tenant_id: &str,
        client_id: &str,
        roles: &[String],
    ) -> Result<bool, StoreError>;

    /// Deletes every app of one tenant, or of every tenant; returns how many went. For the
    /// emulator's reset (`POST /_iocd/reset?all=true`).
    async fn delete_apps(&self, tenant_id: Option<&str>) -> Result<u64, StoreError>;

    /// A tenant exists while it has at least one app.
    async fn tenant_exists(&self, tenant_id: &str) -> Result<bool, StoreError>;

    /// The active signing key, if one was stored.
    async fn signing_key(&self) -> Result<Option<StoredSigningKey>, StoreError>;

    /// Stores `candidate` as the active signing key unless one exists, then returns the active
    /// key: `candidate` if it won, otherwise the key stored first. Safe when several servers on
    /// one database race to create the key: they all get the same one back.
    async fn signing_key_or_insert(
        &self,
        candidate: &StoredSigningKey,
    ) -> Result<StoredSigningKey, StoreError>;

    /// Every stored signing key: the active one (`retire_at` `None`) and the rotated-out ones.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError>;

    /// Makes `new` the active key and retires the active one until `retire_at`, in one
    /// transaction; returns the key retired (none when there was no active key).
    async fn rotate_signing_key(
        &self,
        new: &StoredSigningKey,
        retire_at: Timestamp,
    ) -> Result<Option<StoredSigningKey>, StoreError>;

    /// Deletes the rotated-out keys whose `retire_at` has passed; returns how many.
    async fn drop_retired_signing_keys(&self, now: Timestamp) -> Result<u64, StoreError>;

    /// Makes `domain` (lower case) a name of `tenant_id`; false when the domain already names
    /// a tenant (this one or another).
    async fn add_tenant_alias(
        &self,
        domain: &str,
        tenant_id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// The tenant a domain (lower case) names, if any.
    async fn resolve_tenant_alias(&self, domain: &str) -> Result<Option<String>, StoreError>;

    /// `(domain, tenant id)` of every alias, or of one tenant's, ordered by tenant then domain.
    async fn tenant_aliases(
        &self,
        tenant_id: Option<&str>,
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// Registers a certificate on the app `certificate.client_id` of `tenant_id`.
    async fn add_app_certificate(
        &self,
        tenant_id: &str,
        certificate: &StoredAppCertificate,
    ) -> Result<CertificateAdded, StoreError>;

    /// Removes the app's certificate with this SHA-1 thumbprint; false when there was none.
    async fn remove_app_certificate(
        &self,
        tenant_id: &str,
        client_id: &str,
        thumbprint: &str,
    ) -> Result<bool, StoreError>;

    /// The app's certificates, oldest first.
    async fn app_certificates(
        &self,
        client_id: &str,
    ) -> Result<Vec<StoredAppCertificate>, StoreError>;

    /// Records that a client assertion with this `jti` was used; false when it was already
    /// (and has not expired), on any server sharing the database. Prunes expired entries.
    async fn record_assertion_id(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Claims a one-time set-up step; true for exactly one caller per database, ever.
    async fn claim_bootstrap_step(&self, step: &str, now: Timestamp) -> Result<bool, StoreError>;
}

pub(crate) const ACTIVE_KEY_SLOT: &str = "active";

pub(crate) const APP_COLUMNS: &str =
    "tenant_id, client_id, object_id, display_name, secret_hash, roles, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct AppRow {
    pub tenant_id: String,
    pub client_id: String,
    pub object_id: String,
    pub display_name: String,
    pub secret_hash: String,
    pub roles: String,
    pub created_at: i64,
}

impl TryFrom<AppRow> for AppRegistration {
    type Error = StoreError;

    fn try_from(row: AppRow) -> Result<Self, StoreError> {
        let roles: Vec<String> = serde_json::from_str(&row.roles)
            .map_err(|e| StoreError::Corrupt(format!("roles of app {}: {e}", row.client_id)))?;
        Ok(AppRegistration {
            tenant_id: row.tenant_id,
            client_id: row.client_id,
            object_id: row.object_id,
            display_name: row.display_name,
            secret_hash: row.secret_hash,
            roles,
            created_at: iocd_domain::time::from_ticks(row.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    pub kid: String,
    pub private_key_pem: String,
    pub created_at: i64,
    pub retire_at: Option<i64>,
}

pub(crate) const KEY_COLUMNS: &str = "kid, private_key_pem, created_at, retire_at";

impl From<KeyRow> for StoredSigningKey {
    fn from(row: KeyRow) -> Self {
        StoredSigningKey {
            kid: row.kid,
            private_key_pem: row.private_key_pem,
            created_at: iocd_domain::time::from_ticks(row.created_at),
            retire_at: row.retire_at.map(iocd_domain::time::from_ticks),
        }
    }
}

pub(crate) const CERTIFICATE_COLUMNS: &str =
    "client_id, thumbprint, thumbprint_sha256, certificate_pem, not_after, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct CertificateRow {
    pub client_id: String,
    pub thumbprint: String,
    pub thumbprint_sha256: String,
    pub certificate_pem: String,
    pub not_after: i64,
    pub created_at: i64,
}

impl From<CertificateRow> for StoredAppCertificate {
    fn from(row: CertificateRow) -> Self {
        StoredAppCertificate {
            client_id: row.client_id,
            thumbprint: row.thumbprint,
            thumbprint_sha256: row.thumbprint_sha256,
            certificate_pem: row.certificate_pem,
            not_after: iocd_domain::time::from_ticks(row.not_after),
            created_at: iocd_domain::time::from_ticks(row.created_at),
        }
    }
}

pub(crate) fn roles_json(roles: &[String]) -> String {
    serde_json::to_string(roles).expect("a list of strings serialises")
}

/// Whether a database error is a unique-key violation (the same SQLSTATE class on both backends).
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Implements [`IdentityStore`] for a store type whose `readers` field is a sqlx pool.
macro_rules! impl_identity_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::identity::IdentityStore for $store {
            async fn insert_app(
                &self,
                app: &$crate::identity::AppRegistration,
            ) -> Result<(), $crate::identity::AppInsertError> {
                let sql = format!(
                    "INSERT INTO apps ({}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    $crate::identity::APP_COLUMNS
                );
                sqlx::query(&sql)
                    .bind(&app.tenant_id)
                    .bind(&app.client_id)
                    .bind(&app.object_id)
                    .bind(&app.display_name)
                    .bind(&app.secret_hash)
                    .bind($crate::identity::roles_json(&app.roles))
                    .bind(iocd_domain::time::to_ticks(app.created_at))
                    .execute(&self.readers)
                    .await
                    .map_err(|err| {
                        if $crate::identity::is_unique_violation(&err) {
                            $crate::identity::AppInsertError::DuplicateClientId(
                                app.client_id.clone(),
                            )
                        } else {
                            $crate::StoreError::from(err).into()
                        }
                    })?;
                Ok(())
            }

            async fn find_app(
                &self,
                tenant_id: &str,
                client_id: &str,
            ) -> Result<Option<$crate::identity::AppRegistration>, $crate::StoreError> {
                let sql = format!(
                    "SELECT {} FROM apps WHERE tenant_id = $1 AND client_id = $2",
                    $crate::identity::APP_COLUMNS
                );
                let row: Option<$crate::identity::AppRow> = sqlx::query_as(&sql)
                    .bind(tenant_id)
                    .bind(client_id)
                    .fetch_optional(&self.readers)
                    .await?;
                row.map(TryFrom::try_from).transpose()
            }

            async fn list_apps(
                &self,
                tenant_id: Option<&str>,
            ) -> Result<Vec<$crate::identity::AppRegistration>, $crate::StoreError> {
                let sql = format!(
                    "SELECT {} FROM apps WHERE (CAST($1 AS TEXT) IS NULL OR tenant_id = $1) \
                     ORDER BY tenant_id, created_at, client_id",
                    $crate::identity::APP_COLUMNS
                );
                let rows: Vec<$crate::identity::AppRow> = sqlx::query_as(&sql)
                    .bind(tenant_id)
                    .fetch_all(&self.readers)
                    .await?;
                rows.into_iter().map(TryFrom::try_from).collect()
            }

            async fn delete_app(
                &self,
                tenant_id: &str,
                client_id: &str,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query("DELETE FROM apps WHERE tenant_id = $1 AND client_id = $2")
                    .bind(tenant_id)
                    .bind(client_id)
                    .execute(&self.readers)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_app_roles(
                &self,
                tenant_id: &str,
                client_id: &str,
                roles: &[String],
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query(
                    "UPDATE apps SET roles = $3 WHERE tenant_id = $1 AND client_id = $2",
                )
                .bind(tenant_id)
                .bind(client_id)
                .bind($crate::identity::roles_json(roles))
                .execute(&self.readers)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_apps(
                &self,
                tenant_id: Option<&str>,
            ) -> Result<u64, $crate::StoreError> {
                let done = sqlx::query("DELETE FROM apps WHERE $1 IS NULL OR tenant_id = $1")
                    .bind(tenant_id)
                    .execute(&self.readers)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn tenant_exists(&self, tenant_id: &str) -> Result<bool, $crate::StoreError> {
                let found: Option<i32> =
                    sqlx::query_scalar("SELECT 1 FROM apps WHERE tenant_id = $1 LIMIT 1")
                        .bind(tenant_id)
                        .fetch_optional(&self.readers)
                        .await?;
                Ok(found.is_some())
            }

            async fn signing_key(
                &self,
            ) -> Result<Option<$crate::identity::StoredSigningKey>, $crate::StoreError> {
                let sql = format!(
                    "SELECT {} FROM signing_keys WHERE slot = $1",
                    $crate::identity::KEY_COLUMNS
                );
                let row: Option<$crate::identity::KeyRow> = sqlx::query_as(&sql)
                .bind($crate::identity::ACTIVE_KEY_SLOT)
                .fetch_optional(&self.readers)
                .await?;
                Ok(row.map(Into::into))
            }

            async fn signing_key_or_insert(
                &self,
                candidate: &$crate::identity::StoredSigningKey,
            ) -> Result<$crate::identity::StoredSigningKey, $crate::StoreError> {
                sqlx::query(
                    "INSERT INTO signing_keys (slot, kid, private_key_pem, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (slot) DO NOTHING",
                )
                .bind($crate::identity::ACTIVE_KEY_SLOT)
                .bind(&candidate.kid)
                .bind(&candidate.private_key_pem)
                .bind(iocd_domain::time::to_ticks(candidate.created_at))
                .execute(&self.readers)
                .await?;
                $crate::identity::IdentityStore::signing_key(self)
                    .await?
                    .ok_or_else(|| {
                        $crate::StoreError::Corrupt(
                            "the signing key vanished right after it was stored".to_string(),
                        )
                    })
            }

            async fn signing_keys(
                &self,
            ) -> Result<Vec<$crate::identity::StoredSigningKey>, $crate::StoreError> {
                let sql = format!(
                    "SELECT {} FROM signing_keys ORDER BY retire_at IS NOT NULL, created_at DESC",
                    $crate::identity::KEY_COLUMNS
                );
                let rows: Vec<$crate::identity::KeyRow> =
                    sqlx::query_as(&sql).fetch_all(&self.readers).await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn rotate_signing_key(
                &self,
                new: &$crate::identity::StoredSigningKey,
                retire_at: iocd_domain::time::Timestamp,
            ) -> Result<Option<$crate::identity::StoredSigningKey>, $crate::StoreError> {
                let mut tx = self.readers.begin().await?;
                // A write first (no read before it), so SQLite takes its write lock at once.
                let sql = format!(
                    "UPDATE signing_keys SET slot = 'retired:' || kid, retire_at = $2 \
                     WHERE slot = $1 RETURNING {}",
                    $crate::identity::KEY_COLUMNS
                );
                let old: Option<$crate::identity::KeyRow> = sqlx::query_as(&sql)
                    .bind($crate::identity::ACTIVE_KEY_SLOT)
                    .bind(iocd_domain::time::to_ticks(retire_at))
                    .fetch_optional(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO signing_keys (slot, kid, private_key_pem, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind($crate::identity::ACTIVE_KEY_SLOT)
                .bind(&new.kid)
                .bind(&new.private_key_pem)
                .bind(iocd_domain::time::to_ticks(new.created_at))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(old.map(Into::into))
            }

            async fn drop_retired_signing_keys(
                &self,
                now: iocd_domain::time::Timestamp,
            ) -> Result<u64, $crate::StoreError> {
                let done = sqlx::query(
                    "DELETE FROM signing_keys WHERE retire_at IS NOT NULL AND retire_at < $1",
                )
                .bind(iocd_domain::time::to_ticks(now))
                .execute(&self.readers)
                .await?;
                Ok(done.rows_affected())
            }

            async fn add_tenant_alias(
                &self,
                domain: &str,
                tenant_id: &str,
                now: iocd_domain::time::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query(
                    "INSERT INTO tenant_aliases (domain, tenant_id, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (domain) DO NOTHING",
                )
                .bind(domain)
                .bind(tenant_id)
                .bind(iocd_domain::time::to_ticks(now))
                .execute(&self.readers)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn resolve_tenant_alias(
                &self,
                domain: &str,
            ) -> Result<Option<String>, $crate::StoreError> {
                Ok(
                    sqlx::query_scalar("SELECT tenant_id FROM tenant_aliases WHERE domain = $1")
                        .bind(domain)
                        .fetch_optional(&self.readers)
                        .await?,
                )
            }

            async fn tenant_aliases(
                &self,
                tenant_id: Option<&str>,
            ) -> Result<Vec<(String, String)>, $crate::StoreError> {
                Ok(sqlx::query_as(
                    "SELECT domain, tenant_id FROM tenant_aliases \
                     WHERE (CAST($1 AS TEXT) IS NULL OR tenant_id = $1) ORDER BY tenant_id, domain",
                )
                .bind(tenant_id)
                .fetch_all(&self.readers)
                .await?)
            }

            async fn add_app_certificate(
                &self,
                tenant_id: &str,
                certificate: &$crate::identity::StoredAppCertificate,
            ) -> Result<$crate::identity::CertificateAdded, $crate::StoreError> {
                let sql = format!(
                    "INSERT INTO app_certificates ({}) \
                     SELECT client_id, $3, $4, $5, $6, $7 FROM apps \
                     WHERE tenant_id = $1 AND client_id = $2 \
                     ON CONFLICT (client_id, thumbprint) DO NOTHING",
                    $crate::identity::CERTIFICATE_COLUMNS
                );
                let done = sqlx::query(&sql)
                    .bind(tenant_id)
                    .bind(&certificate.client_id)
                    .bind(&certificate.thumbprint)
                    .bind(&certificate.thumbprint_sha256)
                    .bind(&certificate.certificate_pem)
                    .bind(iocd_domain::time::to_ticks(certificate.not_after))
                    .bind(iocd_domain::time::to_ticks(certificate.created_at))
                    .execute(&self.readers)
                    .await?;
                if done.rows_affected() == 1 {
                    return Ok($crate::identity::CertificateAdded::Added);
                }
                let app = $crate::identity::IdentityStore::find_app(
                    self,
                    tenant_id,
                    &certificate.client_id,
                )
                .await?;
                Ok(if app.is_some() {
                    $crate::identity::CertificateAdded::AlreadyThere
                } else {
                    $crate::identity::CertificateAdded::NoSuchApp
                })
            }

            async fn remove_app_certificate(
                &self,
                tenant_id: &str,
                client_id: &str,
                thumbprint: &str,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query(
                    "DELETE FROM app_certificates WHERE client_id = $2 AND thumbprint = $3 \
                     AND client_id IN (SELECT client_id FROM apps WHERE tenant_id = $1)",
                )
                .bind(tenant_id)
                .bind(client_id)
                .bind(thumbprint)
                .execute(&self.readers)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn app_certificates(
                &self,
                client_id: &str,
            ) -> Result<Vec<$crate::identity::StoredAppCertificate>, $crate::StoreError> {
                let sql = format!(
                    "SELECT {} FROM app_certificates WHERE client_id = $1 \
                     ORDER BY created_at, thumbprint",
                    $crate::identity::CERTIFICATE_COLUMNS
                );
                let rows: Vec<$crate::identity::CertificateRow> = sqlx::query_as(&sql)
                    .bind(client_id)
                    .fetch_all(&self.readers)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn record_assertion_id(
                &self,
                client_id: &str,
                jti: &str,
                expires_at: iocd_domain::time::Timestamp,
                now: iocd_domain::time::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                let now = iocd_domain::time::to_ticks(now);
                // An expired entry can be dropped: its assertion is refused as expired anyway.
                sqlx::query("DELETE FROM client_assertion_ids WHERE expires_at < $1")
                    .bind(now)
                    .execute(&self.readers)
                    .await?;
                let done = sqlx::query(
                    "INSERT INTO client_assertion_ids (client_id, jti, expires_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (client_id, jti) DO NOTHING",
                )
                .bind(client_id)
                .bind(jti)
                .bind(iocd_domain::time::to_ticks(expires_at))
                .execute(&self.readers)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn claim_bootstrap_step(
                &self,
                step: &str,
                now: iocd_domain::time::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query(
                    "INSERT INTO identity_bootstrap (step, done_at) VALUES ($1, $2) \
                     ON CONFLICT (step) DO NOTHING",
                )
                .bind(step)
                .bind(iocd_domain::time::to_ticks(now))
                .execute(&self.readers)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_identity_store;
