//! Storage for people and their sign-ins: users, the public-client settings of apps, and the
//! one-time artefacts of the delegated flows (refresh tokens, authorization codes, device codes).
//!
//! As with [`IdentityStore`](crate::IdentityStore), the SQL is the same on both databases, so one
//! macro implements [`UserStore`] for both stores over their reader pools: sign-ins are rare next
//! to indicator writes and do not go through the indicator writer.

use async_trait::async_trait;
use iocd_domain::time::Timestamp;

use crate::StoreError;

/// A person who signs in. The password is kept only as an argon2id hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub tenant_id: String,
    /// The user's object id: the delegated token's `oid` and `sub`.
    pub object_id: String,
    /// The sign-in name as given (`alice@contoso.example`); compared case-insensitively.
    pub upn: String,
    pub display_name: String,
    /// argon2id PHC string of the password.
    pub password_hash: String,
    /// User roles such as `Iocd.Indicators.Manage`.
    pub roles: Vec<String>,
    pub created_at: Timestamp,
}

/// How an app signs people in: whether it is a public client (no secret) and where the
/// authorization-code flow may send the browser back to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppSignIn {
    pub client_id: String,
    pub public_client: bool,
    pub redirect_uris: Vec<String>,
}

/// A one-time artefact of a delegated flow, stored under the SHA-256 of its value.
#[derive(Debug, Clone, PartialEq)]
pub struct SignInGrant {
    pub value_hash: String,
    /// `refresh_token`, `authorization_code` or `device_code`.
    pub kind: String,
    pub tenant_id: String,
    pub client_id: String,
    /// The signed-in user; empty while a device code waits for approval.
    pub user_object_id: String,
    pub scope: String,
    /// What the kind needs (PKCE challenge, redirect URI, nonce, device-code state).
    pub details: serde_json::Value,
    /// Refresh tokens rotated from one sign-in share a family; reusing a spent one revokes it.
    pub family: String,
    /// What a person types to find the grant (a device code's user code).
    pub lookup: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub consumed_at: Option<Timestamp>,
}

/// Why a user could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum UserInsertError {
    #[error("tenant {tenant_id} already has a user {upn}")]
    DuplicateUpn { tenant_id: String, upn: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), UserInsertError>;

    /// The user of this tenant with this UPN, in any case.
    async fn find_user_by_upn(
        &self,
        tenant_id: &str,
        upn: &str,
    ) -> Result<Option<UserRecord>, StoreError>;

    async fn find_user(
        &self,
        tenant_id: &str,
        object_id: &str,
    ) -> Result<Option<UserRecord>, StoreError>;

    /// Users of one tenant, or of every tenant, ordered by tenant then UPN.
    async fn list_users(&self, tenant_id: Option<&str>) -> Result<Vec<UserRecord>, StoreError>;

    /// Deletes the user and every sign-in artefact issued to them; false when there was none.
    async fn delete_user(&self, tenant_id: &str, upn: &str) -> Result<bool, StoreError>;

    /// Replaces the user's roles; false when no such user. Tokens already issued keep the roles
    /// they carry until they expire.
    async fn set_user_roles(
        &self,
        tenant_id: &str,
        upn: &str,
        roles: &[String],
    ) -> Result<bool, StoreError>;

    /// Replaces the password hash and revokes the user's refresh tokens; false when no such user.
    async fn set_user_password(
        &self,
        tenant_id: &str,
        upn: &str,
        password_hash: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// The app's sign-in settings; `None` for an app that never had any (a confidential client
    /// with no redirect URI).
    async fn app_sign_in(&self, client_id: &str) -> Result<Option<AppSignIn>, StoreError>;

    async fn set_app_sign_in(&self, settings: &AppSignIn) -> Result<(), StoreError>;

    async fn insert_grant(&self, grant: &SignInGrant) -> Result<(), StoreError>;

    async fn find_grant(&self, value_hash: &str) -> Result<Option<SignInGrant>, StoreError>;

    /// The unconsumed grant of `kind` a person named by `lookup` (a user code).
    async fn find_grant_by_lookup(
        &self,
        kind: &str,
        lookup: &str,
    ) -> Result<Option<SignInGrant>, StoreError>;

    /// Marks the grant consumed; true for exactly one caller, however many race.
    async fn consume_grant(&self, value_hash: &str, now: Timestamp) -> Result<bool, StoreError>;

    /// Sets the user and details of a grant not yet consumed (a device code being approved or
    /// polled); false when it is gone or consumed.
    async fn update_grant(
        &self,
        value_hash: &str,
        user_object_id: &str,
        details: &serde_json::Value,
    ) -> Result<bool, StoreError>;

    /// Consumes every grant of a family (a refresh token replayed after rotation).
    async fn revoke_family(&self, family: &str, now: Timestamp) -> Result<u64, StoreError>;

    /// Deletes grants that expired before `now`.
    async fn purge_expired_grants(&self, now: Timestamp) -> Result<u64, StoreError>;
}

pub(crate) const USER_COLUMNS: &str =
    "tenant_id, object_id, upn, display_name, password_hash, roles, created_at";

pub(crate) const GRANT_COLUMNS: &str = "value_hash, kind, tenant_id, client_id, user_object_id, \
     scope, details, family, lookup, created_at, expires_at, consumed_at";

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub tenant_id: String,
    pub object_id: String,
    pub upn: String,
    pub display_name: String,
    pub password_hash: String,
    pub roles: String,
    pub created_at: i64,
}

impl TryFrom<UserRow> for UserRecord {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        let roles: Vec<String> = serde_json::from_str(&row.roles)
            .map_err(|e| StoreError::Corrupt(format!("roles of user {}: {e}", row.upn)))?;
        Ok(UserRecord {
            tenant_id: row.tenant_id,
            object_id: row.object_id,
            upn: row.upn,
            display_name: row.display_name,
            password_hash: row.password_hash,
            roles,
            created_at: iocd_domain::time::from_ticks(row.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AppSignInRow {
    pub client_id: String,
    pub public_client: i64,
    pub redirect_uris: String,
}

impl TryFrom<AppSignInRow> for AppSignIn {
    type Error = StoreError;

    fn try_from(row: AppSignInRow) -> Result<Self, StoreError> {
        let redirect_uris = serde_json::from_str(&row.redirect_uris).map_err(|e| {
            StoreError::Corrupt(format!("redirect URIs of app {}: {e}", row.client_id))
        })?;
        Ok(AppSignIn {
            client_id: row.client_id,
            public_client: row.public_client != 0,
            redirect_uris,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct GrantRow {
    pub value_hash: String,
    pub kind: String,
    pub tenant_id: String,
    pub client_id: String,
    pub user_object_id: String,
    pub scope: String,
    pub details: String,
    pub family: String,
    pub lookup: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub consumed_at: Option<i64>,
}

impl TryFrom<GrantRow> for SignInGrant {
    type Error = StoreError;

    fn try_from(row: GrantRow) -> Result<Self, StoreError> {
        let details = serde_json::from_str(&row.details)
            .map_err(|e| StoreError::Corrupt(format!("details of a {} grant: {e}", row.kind)))?;
        Ok(SignInGrant {
            value_hash: row.value_hash,
            kind: row.kind,
            tenant_id: row.tenant_id,
            client_id: row.client_id,
            user_object_id: row.user_object_id,
            scope: row.scope,
            details,
            family: row.family,
            lookup: row.lookup,
            created_at: iocd_domain::time::from_ticks(row.created_at),
            expires_at: iocd_domain::time::from_ticks(row.expires_at),
            consumed_at: row.consumed_at.map(iocd_domain::time::from_ticks),
        })
    }
}

pub(crate) fn strings_json(values: &[String]) -> String {
    serde_json::to_string(values).expect("a list of strings serialises")
}

/// The case-insensitive form a UPN is looked up by.
pub(crate) fn upn_key(upn: &str) -> String {
    upn.trim().to_lowercase()
}

/// Implements [`UserStore`] for a store type whose `readers` field is a sqlx pool.
macro_rules! impl_user_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::users::UserStore for $store {
            async fn insert_user(
                &self,
                user: &$crate::users::UserRecord,
            ) -> Result<(), $crate::users::UserInsertError> {
                let sql = format!(
                    "INSERT INTO users ({}, upn_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    $crate::users::USER_COLUMNS
                );
                sqlx::query(&sql)
                    .bind(&user.tenant_id)
                    .bind(&user.object_id)
                    .bind(&user.upn)
                    .bind(&user.display_name)
                    .bind(&user.password_hash)
                    .bind($crate::users::strings_json(&user.roles))
                    .bind(iocd_domain::time::to_ticks(user.created_at))
                    .bind($crate::users::upn_key(&user.upn))
                    .execute(&self.readers)
                    .await
                    .map_err(|err| {
                        if $crate::identity::is_unique_violation(&err) {
                            $crate::users::UserInsertError::DuplicateUpn {
                                tenant_id: user.tenant_id.clone(),
                                upn: user.upn.clone(),
                            }
                        } else {
                            $crate::StoreError::from(err).into()
                        }
                    })?;
                Ok(())
            }

            async fn find_user_by_upn(
                &self,
                tenant_id: &str,
                upn: &str,
            ) -> Result<Option<$crate::users::UserRecord>, $crate::StoreError> {
                let sql = format!(
                    "SELECT {} FROM users WHERE tenant_id = $1 AND upn_key = $2",
                    $crate::users::USER_COLUMNS
                );
                let row: Option<$crate::users::UserRow> = sqlx::query_as(&sql)
                    .bind(tenant_id)
                    .bind($crate::users::upn_key(upn))
                    .fetch_optional(&self.readers)
                    .await?;
                row.map(TryFrom::try_from).transpose()
            }

            async fn find_user(
                &self,
                tenant_id: &str,
                object_id: &str,
            ) -> Result<Option<$crate::users::UserRecord>, $crate::StoreError> {
                let sql = format!(
                    "SELECT {} FROM users WHERE tenant_id = $1 AND object_id = $2",
                    $crate::users::USER_COLUMNS
                );
                let row: Option<$crate::users::UserRow> = sqlx::query_as(&sql)
                    .bind(tenant_id)
                    .bind(object_id)
                    .fetch_optional(&self.readers)
                    .await?;
                row.map(TryFrom::try_from).transpose()
            }

            async fn list_users(
                &self,
                tenant_id: Option<&str>,
            ) -> Result<Vec<$crate::users::UserRecord>, $crate::StoreError> {
                let sql = format!(
                    "SELECT {} FROM users WHERE (CAST($1 AS TEXT) IS NULL OR tenant_id = $1) \
                     ORDER BY tenant_id, upn_key",
                    $crate::users::USER_COLUMNS
                );
                let rows: Vec<$crate::users::UserRow> = sqlx::query_as(&sql)
                    .bind(tenant_id)
                    .fetch_all(&self.readers)
                    .await?;
                rows.into_iter().map(TryFrom::try_from).collect()
            }

            async fn delete_user(
                &self,
                tenant_id: &str,
                upn: &str,
            ) -> Result<bool, $crate::StoreError> {
                let mut tx = self.readers.begin().await?;
                let object_id: Option<String> = sqlx::query_scalar(
                    "DELETE FROM users WHERE tenant_id = $1 AND upn_key = $2 RETURNING object_id",
                )
                .bind(tenant_id)
                .bind($crate::users::upn_key(upn))
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(object_id) = &object_id {
                    sqlx::query(
                        "DELETE FROM sign_in_grants WHERE tenant_id = $1 AND user_object_id = $2",
                    )
                    .bind(tenant_id)
                    .bind(object_id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(object_id.is_some())
            }

            async fn set_user_roles(
                &self,
                tenant_id: &str,
                upn: &str,
                roles: &[String],
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query(
                    "UPDATE users SET roles = $3 WHERE tenant_id = $1 AND upn_key = $2",
                )
                .bind(tenant_id)
                .bind($crate::users::upn_key(upn))
                .bind($crate::users::strings_json(roles))
                .execute(&self.readers)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_user_password(
                &self,
                tenant_id: &str,
                upn: &str,
                password_hash: &str,
                now: iocd_domain::time::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                let mut tx = self.readers.begin().await?;
                let object_id: Option<String> = sqlx::query_scalar(
                    "UPDATE users SET password_hash = $3 WHERE tenant_id = $1 AND upn_key = $2 \
                     RETURNING object_id",
                )
                .bind(tenant_id)
                .bind($crate::users::upn_key(upn))
                .bind(password_hash)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(object_id) = &object_id {
                    // A new password ends every session the old one started.
                    sqlx::query(
                        "UPDATE sign_in_grants SET consumed_at = $3 \
                         WHERE tenant_id = $1 AND user_object_id = $2 AND consumed_at IS NULL",
                    )
                    .bind(tenant_id)
                    .bind(object_id)
                    .bind(iocd_domain::time::to_ticks(now))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(object_id.is_some())
            }

            async fn app_sign_in(
                &self,
                client_id: &str,
            ) -> Result<Option<$crate::users::AppSignIn>, $crate::StoreError> {
                let row: Option<$crate::users::AppSignInRow> = sqlx::query_as(
                    "SELECT client_id, public_client, redirect_uris FROM app_sign_in \
                     WHERE client_id = $1",
                )
                .bind(client_id)
                .fetch_optional(&self.readers)
                .await?;
                row.map(TryFrom::try_from).transpose()
            }

            async fn set_app_sign_in(
                &self,
                settings: &$crate::users::AppSignIn,
            ) -> Result<(), $crate::StoreError> {
                sqlx::query(
                    "INSERT INTO app_sign_in (client_id, public_client, redirect_uris) \
                     VALUES ($1, $2, $3) ON CONFLICT (client_id) DO UPDATE SET \
                     public_client = excluded.public_client, redirect_uris = excluded.redirect_uris",
                )
                .bind(&settings.client_id)
                .bind(i64::from(settings.public_client))
                .bind($crate::users::strings_json(&settings.redirect_uris))
                .execute(&self.readers)
                .await?;
                Ok(())
            }

            async fn insert_grant(
                &self,
                grant: &$crate::users::SignInGrant,
            ) -> Result<(), $crate::StoreError> {
                let sql = format!(
                    "INSERT INTO sign_in_grants ({}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    $crate::users::GRANT_COLUMNS
                );
                sqlx::query(&sql)
                    .bind(&grant.value_hash)
                    .bind(&grant.kind)
                    .bind(&grant.tenant_id)
                    .bind(&grant.client_id)
                    .bind(&grant.user_object_id)
                    .bind(&grant.scope)
                    .bind(grant.details.to_string())
                    .bind(&grant.family)
                    .bind(&grant.lookup)
                    .bind(iocd_domain::time::to_ticks(grant.created_at))
                    .bind(iocd_domain::time::to_ticks(grant.expires_at))
                    .bind(grant.consumed_at.map(iocd_domain::time::to_ticks))
                    .execute(&self.readers)
                    .await?;
                Ok(())
            }

            async fn find_grant(
                &self,
                value_hash: &str,
            ) -> Result<Option<$crate::users::SignInGrant>, $crate::StoreError> {
                let sql = format!(
                    "SELECT {} FROM sign_in_grants WHERE value_hash = $1",
                    $crate::users::GRANT_COLUMNS
                );
                let row: Option<$crate::users::GrantRow> = sqlx::query_as(&sql)
                    .bind(value_hash)
                    .fetch_optional(&self.readers)
                    .await?;
                row.map(TryFrom::try_from).transpose()
            }

            async fn find_grant_by_lookup(
                &self,
                kind: &str,
                lookup: &str,
            ) -> Result<Option<$crate::users::SignInGrant>, $crate::StoreError> {
                let sql = format!(
                    "SELECT {} FROM sign_in_grants \
                     WHERE kind = $1 AND lookup = $2 AND consumed_at IS NULL \
                     ORDER BY created_at DESC LIMIT 1",
                    $crate::users::GRANT_COLUMNS
                );
                let row: Option<$crate::users::GrantRow> = sqlx::query_as(&sql)
                    .bind(kind)
                    .bind(lookup)
                    .fetch_optional(&self.readers)
                    .await?;
                row.map(TryFrom::try_from).transpose()
            }

            async fn consume_grant(
                &self,
                value_hash: &str,
                now: iocd_domain::time::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query(
                    "UPDATE sign_in_grants SET consumed_at = $2 \
                     WHERE value_hash = $1 AND consumed_at IS NULL",
                )
                .bind(value_hash)
                .bind(iocd_domain::time::to_ticks(now))
                .execute(&self.readers)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn update_grant(
                &self,
                value_hash: &str,
                user_object_id: &str,
                details: &serde_json::Value,
            ) -> Result<bool, $crate::StoreError> {
                let done = sqlx::query(
                    "UPDATE sign_in_grants SET user_object_id = $2, details = $3 \
                     WHERE value_hash = $1 AND consumed_at IS NULL",
                )
                .bind(value_hash)
                .bind(user_object_id)
                .bind(details.to_string())
                .execute(&self.readers)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn revoke_family(
                &self,
                family: &str,
                now: iocd_domain::time::Timestamp,
            ) -> Result<u64, $crate::StoreError> {
                let done = sqlx::query(
                    "UPDATE sign_in_grants SET consumed_at = $2 \
                     WHERE family = $1 AND consumed_at IS NULL",
                )
                .bind(family)
                .bind(iocd_domain::time::to_ticks(now))
                .execute(&self.readers)
                .await?;
                Ok(done.rows_affected())
            }

            async fn purge_expired_grants(
                &self,
                now: iocd_domain::time::Timestamp,
            ) -> Result<u64, $crate::StoreError> {
                let done = sqlx::query("DELETE FROM sign_in_grants WHERE expires_at < $1")
                    .bind(iocd_domain::time::to_ticks(now))
                    .execute(&self.readers)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use impl_user_store;
