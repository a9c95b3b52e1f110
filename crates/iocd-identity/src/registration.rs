//! App registration, shared by `iocd apps create`, the development app and the test harnesses.

use iocd_domain::time;
use iocd_store::{AppInsertError, AppRegistration, IdentityStore};

use iocd_auth::ClientCertificate;

use crate::certificates::{
    add_app_certificate, CertificateRegistrationError, RegisteredCertificate,
};
use crate::roles::Role;

/// Names that cannot be tenant ids because they are (or shadow) paths of the server, plus
/// Entra's pseudo-tenants, which mean something else to real clients.
const RESERVED_TENANT_IDS: &[&str] = &[
    "api",
    "docs",
    "health",
    "openapi.json",
    "common",
    "organizations",
    "consumers",
];

const MAX_TENANT_ID_CHARS: usize = 64;
const MAX_DISPLAY_NAME_CHARS: usize = 256;

/// A new app's credentials: the only time the secret exists outside the app's owner.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAppCredentials {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

/// Why an app could not be registered; the text names the bad input.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    Invalid(String),
    /// Hashing the secret on a blocking thread failed (the task panicked or was cancelled):
    /// nothing the caller sent was wrong.
    #[error("hashing the client secret failed: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] iocd_store::StoreError),
}

/// Checks a tenant id: 1–64 letters, digits, `-`, `_` or `.`, starting with a letter or digit
/// (GUIDs as Entra uses them, or readable names), and not a reserved path name.
pub fn validate_tenant_id(tenant_id: &str) -> Result<(), String> {
    let valid_chars = tenant_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let starts_well = tenant_id
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !valid_chars || !starts_well || tenant_id.len() > MAX_TENANT_ID_CHARS {
        return Err(format!(
            "tenant id '{tenant_id}' is invalid: use 1 to {MAX_TENANT_ID_CHARS} letters, digits, '-', '_' or '.', starting with a letter or digit (a GUID, like Entra's tenant ids, is best)"
        ));
    }
    if RESERVED_TENANT_IDS
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(tenant_id))
    {
        return Err(format!(
            "tenant id '{tenant_id}' is reserved (it is a path of the server or an Entra pseudo-tenant); choose another"
        ));
    }
    Ok(())
}

/// argon2id of a secret or password, on a blocking thread (it takes tens of milliseconds of
/// CPU); a failure of that thread is an internal error, not the caller's.
pub(crate) async fn hash_on_blocking_thread(secret: &str) -> Result<String, RegisterError> {
    let secret = secret.to_string();
    tokio::task::spawn_blocking(move || iocd_auth::hash_secret(&secret))
        .await
        .map_err(|e| RegisterError::Internal(e.to_string()))
}

/// Registers an app: a new client id and secret, the secret stored only as an argon2id hash.
pub async fn register_app(
    store: &dyn IdentityStore,
    tenant_id: &str,
    display_name: &str,
    roles: &[Role],
) -> Result<NewAppCredentials, RegisterError> {
    check_app(tenant_id, display_name)?;
    let client_secret = iocd_auth::generate_client_secret();
    let secret_hash = hash_on_blocking_thread(&client_secret).await?;
    let app = insert_app(store, tenant_id, display_name, roles, secret_hash).await?;
    Ok(NewAppCredentials {
        tenant_id: app.tenant_id,
        client_id: app.client_id,
        client_secret,
    })
}

/// Replaces an app's application roles (none is allowed: an app that only signs people in);
/// false when the tenant has no such app. Tokens already issued keep their roles until they
/// expire.
pub async fn set_app_roles(
    store: &dyn IdentityStore,
    tenant_id: &str,
    client_id: &str,
    roles: &[Role],
) -> Result<bool, RegisterError> {
    let mut names: Vec<String> = Vec::new();
    for role in roles {
        if !names.iter().any(|r| r == role.as_str()) {
            names.push(role.as_str().to_string());
        }
    }
    Ok(store.set_app_roles(tenant_id, client_id, &names).await?)
}

/// A new app whose credential is a certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewCertificateApp {
    pub tenant_id: String,
    pub client_id: String,
    pub certificates: Vec<RegisteredCertificate>,
}

/// Registers an app whose credential is `certificate` (client assertions signed with its key);
/// it has no secret. More certificates: [`crate::add_app_certificate`].
pub async fn register_certificate_app(
    store: &dyn IdentityStore,
    tenant_id: &str,
    display_name: &str,
    roles: &[Role],
    certificate: &ClientCertificate,
) -> Result<NewCertificateApp, RegisterError> {
    check_app(tenant_id, display_name)?;
    let app = insert_app(store, tenant_id, display_name, roles, NO_SECRET.to_string()).await?;
    let registered = match add_app_certificate(store, tenant_id, &app.client_id, certificate).await
    {
        Ok(registered) => registered,
        Err(CertificateRegistrationError::Store(e)) => return Err(e.into()),
        Err(other) => return Err(RegisterError::Internal(other.to_string())),
    };
    Ok(NewCertificateApp {
        tenant_id: app.tenant_id,
        client_id: app.client_id,
        certificates: vec![registered],
    })
}

/// The stored secret hash of an app without a secret: it parses as no argon2 hash, so no
/// secret ever verifies against it.
pub const NO_SECRET: &str = "";

fn check_app(tenant_id: &str, display_name: &str) -> Result<(), RegisterError> {
    validate_tenant_id(tenant_id).map_err(RegisterError::Invalid)?;
    let display_name = display_name.trim();
    if display_name.is_empty()
        || display_name.chars().count() > MAX_DISPLAY_NAME_CHARS
        || display_name.chars().any(char::is_control)
    {
        return Err(RegisterError::Invalid(format!(
            "display name '{display_name}' is invalid: use 1 to {MAX_DISPLAY_NAME_CHARS} characters without control characters"
        )));
    }
    Ok(())
}

async fn insert_app(
    store: &dyn IdentityStore,
    tenant_id: &str,
    display_name: &str,
    roles: &[Role],
    secret_hash: String,
) -> Result<AppRegistration, RegisterError> {
    let mut role_names: Vec<String> = Vec::new();
    for role in roles {
        if !role_names.iter().any(|r| r == role.as_str()) {
            role_names.push(role.as_str().to_string());
        }
    }
    let app = AppRegistration {
        tenant_id: tenant_id.to_string(),
        client_id: iocd_auth::generate_client_id(),
        object_id: uuid::Uuid::new_v4().to_string(),
        display_name: display_name.trim().to_string(),
        secret_hash,
        roles: role_names,
        created_at: time::now(),
    };
    match store.insert_app(&app).await {
        Ok(()) => Ok(app),
        // A random UUID v4 colliding is not going to happen; report it plainly if it does.
        Err(AppInsertError::DuplicateClientId(id)) => Err(RegisterError::Invalid(format!(
            "client id {id} already exists; run the command again"
        ))),
        Err(AppInsertError::Store(e)) => Err(e.into()),
    }
}

/// Checks a domain alias: a DNS name of at least two labels (letters, digits, `-`), at most
/// 253 characters, such as `contoso.onmicrosoft.com`; returned in lower case.
pub fn validate_domain(domain: &str) -> Result<String, String> {
    let lower = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = lower.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if lower.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(format!(
            "domain '{domain}' is invalid: give a DNS name such as contoso.onmicrosoft.com (letters, digits and '-' in dot-separated labels)"
        ));
    }
    Ok(lower)
}

/// Makes `domain` a name of `tenant_id` in authority URLs (token, discovery and key endpoints),
/// as Entra accepts a tenant's verified domains. Returns the domain as stored (lower case).
pub async fn add_tenant_alias(
    store: &dyn IdentityStore,
    tenant_id: &str,
    domain: &str,
) -> Result<String, RegisterError> {
    let domain = validate_domain(domain).map_err(RegisterError::Invalid)?;
    if !store.tenant_exists(tenant_id).await? {
        return Err(RegisterError::Invalid(format!(
            "tenant '{tenant_id}' has no apps; create one first with 'iocd apps create --tenant {tenant_id}'"
        )));
    }
    if store.tenant_exists(&domain).await? {
        return Err(RegisterError::Invalid(format!(
            "'{domain}' is already a tenant id; it cannot also be an alias"
        )));
    }
    if !store
        .add_tenant_alias(&domain, tenant_id, time::now())
        .await?
    {
        let owner = store
            .resolve_tenant_alias(&domain)
            .await?
            .unwrap_or_default();
        return Err(RegisterError::Invalid(format!(
            "domain '{domain}' is already an alias of tenant '{owner}'"
        )));
    }
    Ok(domain)
}

/// Display name of the app `iocd serve` creates on an empty database.
pub const DEVELOPMENT_APP_NAME: &str = "iocd development app";

/// On a database that has never had an app, creates a development tenant and a
/// `Ti.ReadWrite.All` app in it and returns its credentials (to print once). Exactly one server
/// does this even when several start together on one database; later starts return `None`.
pub async fn bootstrap_development_app(
    store: &dyn IdentityStore,
) -> Result<Option<NewAppCredentials>, RegisterError> {
    if !store.list_apps(None).await?.is_empty() {
        return Ok(None);
    }
    if !store
        .claim_bootstrap_step("development-app", time::now())
        .await?
    {
        return Ok(None);
    }
    let tenant_id = uuid::Uuid::new_v4().to_string();
    register_app(
        store,
        &tenant_id,
        DEVELOPMENT_APP_NAME,
        &[Role::ReadWriteAll],
    )
    .await
    .map(Some)
}

/// Whether any app holds `Iocd.Admin` (then the emulator controls need its token, even from
/// loopback).
pub async fn admin_app_exists(store: &dyn IdentityStore) -> Result<bool, iocd_store::StoreError> {
    Ok(store
        .list_apps(None)
        .await?
        .iter()
        .any(|app| app.roles.iter().any(|r| r == Role::IocdAdmin.as_str())))
}

/// The emulator's well-known development tenant, app and secret, like Azurite's
/// `devstoreaccount1`: documented, fixed values, so tests need not read the server's output.
/// Never use them on a server reachable by anyone else.
pub const EMULATOR_TENANT_ID: &str = "10cd0000-0000-4000-8000-000000000001";
pub const EMULATOR_CLIENT_ID: &str = "10cd0000-0000-4000-8000-0000000000a1";
pub const EMULATOR_CLIENT_SECRET: &str = "iocd-emulator-secret-not-for-production";

/// Makes sure an app with exactly these credentials exists (`Ti.ReadWrite.All`, named
/// [`DEVELOPMENT_APP_NAME`]): the emulator's well-known app. An app of that client id with
/// another tenant, secret or roles is replaced. Returns true when it had to be (re)created.
pub async fn ensure_well_known_app(
    store: &dyn IdentityStore,
    credentials: &NewAppCredentials,
) -> Result<bool, RegisterError> {
    validate_tenant_id(&credentials.tenant_id).map_err(RegisterError::Invalid)?;
    if credentials.client_id.trim().is_empty() || credentials.client_secret.is_empty() {
        return Err(RegisterError::Invalid(
            "the development client id and secret must not be empty".to_string(),
        ));
    }
    let roles = vec![Role::ReadWriteAll.as_str().to_string()];
    let existing = store
        .list_apps(None)
        .await?
        .into_iter()
        .find(|app| app.client_id == credentials.client_id);
    if let Some(app) = existing {
        let secret = credentials.client_secret.clone();
        let hash = app.secret_hash.clone();
        let same_secret =
            tokio::task::spawn_blocking(move || iocd_auth::verify_secret(&secret, &hash))
                .await
                .map_err(|e| RegisterError::Internal(e.to_string()))?;
        if app.tenant_id == credentials.tenant_id && same_secret && app.roles == roles {
            return Ok(false);
        }
        store.delete_app(&app.tenant_id, &app.client_id).await?;
    }
    let secret_hash = hash_on_blocking_thread(&credentials.client_secret).await?;
    let app = AppRegistration {
        tenant_id: credentials.tenant_id.clone(),
        client_id: credentials.client_id.clone(),
        object_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, credentials.client_id.as_bytes())
            .to_string(),
        display_name: DEVELOPMENT_APP_NAME.to_string(),
        secret_hash,
        roles,
        created_at: time::now(),
    };
    match store.insert_app(&app).await {
        // Another server on this database won the race with the same credentials.
        Ok(()) | Err(AppInsertError::DuplicateClientId(_)) => Ok(true),
        Err(AppInsertError::Store(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_checked_and_lower_cased() {
        assert_eq!(
            validate_domain("Contoso.OnMicrosoft.com.").as_deref(),
            Ok("contoso.onmicrosoft.com")
        );
        for bad in [
            "",
            "contoso",
            "a..b",
            "-a.b",
            "a_b.com",
            "a b.com",
            "{tenantid}.x",
        ] {
            assert!(validate_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tenant_ids_are_checked() {
        assert!(validate_tenant_id("6f1c2b4e-0000-4000-8000-00000000000a").is_ok());
        assert!(validate_tenant_id("contoso.example").is_ok());
        for bad in [
            "",
            "a/b",
            "-x",
            "{tenantid}",
            "api",
            "API",
            "common",
            &"x".repeat(65),
        ] {
            assert!(validate_tenant_id(bad).is_err(), "{bad}");
        }
    }
}
