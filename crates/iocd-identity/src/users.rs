//! People: the users of a tenant, their roles, and how `iocd users` creates them.
//!
//! Users hold roles that mirror the Defender portal's permissions (see docs/compatibility.md):
//! one to view indicators, one to manage them, and iocd's administrator role. A delegated call
//! is allowed only when the app's delegated scope allows it *and* the user's role does.

use iocd_domain::time;
use iocd_store::{AppSignIn, IdentityStore, UserInsertError, UserRecord};

use crate::registration::{hash_on_blocking_thread, validate_tenant_id, RegisterError};
use crate::roles::Role;

const MAX_UPN_CHARS: usize = 256;
const MAX_NAME_CHARS: usize = 256;
/// Generated passwords: 24 characters of URL-safe base64 (144 bits).
const GENERATED_PASSWORD_BYTES: usize = 18;
/// Shorter passwords are refused when a person chooses one.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// A user's role, mirroring the Defender portal's permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRole {
    /// May view indicators (the portal's "View data" permission).
    IndicatorsRead,
    /// May create, edit and delete indicators (the portal's "Manage security settings").
    IndicatorsManage,
    /// iocd's administrator: apps, users and tenant settings; also manages indicators.
    Admin,
}

impl UserRole {
    pub const ALL: [UserRole; 3] = [
        UserRole::IndicatorsRead,
        UserRole::IndicatorsManage,
        UserRole::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::IndicatorsRead => "Iocd.Indicators.Read",
            UserRole::IndicatorsManage => "Iocd.Indicators.Manage",
            UserRole::Admin => "Iocd.Admin",
        }
    }

    pub fn parse(s: &str) -> Option<UserRole> {
        UserRole::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// What this role lets a delegated call do, expressed as the application roles that grant
    /// the same: viewers read every indicator of the tenant, managers and administrators manage
    /// them all, as they do in the portal, and administrators also hold `Iocd.Admin`.
    pub fn app_roles(self) -> &'static [Role] {
        match self {
            UserRole::IndicatorsRead => &[Role::ReadAll],
            UserRole::IndicatorsManage => &[Role::ReadWriteAll],
            UserRole::Admin => &[Role::ReadWriteAll, Role::IocdAdmin],
        }
    }

    /// The names, for error messages.
    pub fn names() -> String {
        UserRole::ALL.map(UserRole::as_str).join(", ")
    }
}

/// A new user and, when iocd generated it, the password (shown only this once).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewUser {
    pub tenant_id: String,
    pub object_id: String,
    pub upn: String,
    pub display_name: String,
    pub roles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// Checks a user principal name: `name@domain`, no spaces or control characters.
pub fn validate_upn(upn: &str) -> Result<(), String> {
    let well_formed = upn.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    });
    if !well_formed
        || upn.chars().count() > MAX_UPN_CHARS
        || upn.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "upn '{upn}' is invalid: use name@domain (up to {MAX_UPN_CHARS} characters, no spaces), like alice@contoso.example"
        ));
    }
    Ok(())
}

fn validate_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "password is too short: use at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.chars().any(char::is_control) {
        return Err("password must not contain control characters".to_string());
    }
    Ok(())
}

/// A random password for a new user.
pub fn generate_password() -> String {
    use base64::Engine as _;
    use rand_core::RngCore as _;
    let mut bytes = [0u8; GENERATED_PASSWORD_BYTES];
    rand_core::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Creates a user of `tenant_id` with `roles`, with the given password or a generated one.
pub async fn create_user(
    store: &dyn IdentityStore,
    tenant_id: &str,
    display_name: &str,
    upn: &str,
    roles: &[UserRole],
    password: Option<&str>,
) -> Result<NewUser, RegisterError> {
    validate_tenant_id(tenant_id).map_err(RegisterError::Invalid)?;
    let upn = upn.trim();
    validate_upn(upn).map_err(RegisterError::Invalid)?;
    let display_name = display_name.trim();
    if display_name.is_empty()
        || display_name.chars().count() > MAX_NAME_CHARS
        || display_name.chars().any(char::is_control)
    {
        return Err(RegisterError::Invalid(format!(
            "name '{display_name}' is invalid: use 1 to {MAX_NAME_CHARS} characters without control characters"
        )));
    }
    if roles.is_empty() {
        return Err(RegisterError::Invalid(format!(
            "give the user at least one role: {}",
            UserRole::names()
        )));
    }
    if let Some(password) = password {
        validate_password(password).map_err(RegisterError::Invalid)?;
    }
    let generated = password.is_none().then(generate_password);
    let password_hash =
        hash_on_blocking_thread(password.or(generated.as_deref()).unwrap_or_default()).await?;
    let mut role_names: Vec<String> = Vec::new();
    for role in roles {
        if !role_names.iter().any(|r| r == role.as_str()) {
            role_names.push(role.as_str().to_string());
        }
    }
    let user = UserRecord {
        tenant_id: tenant_id.to_string(),
        object_id: uuid::Uuid::new_v4().to_string(),
        upn: upn.to_string(),
        display_name: display_name.to_string(),
        password_hash,
        roles: role_names,
        created_at: time::now(),
    };
    match store.insert_user(&user).await {
        Ok(()) => {}
        Err(UserInsertError::DuplicateUpn { tenant_id, upn }) => {
            return Err(RegisterError::Invalid(format!(
                "tenant {tenant_id} already has a user {upn}"
            )))
        }
        Err(UserInsertError::Store(e)) => return Err(e.into()),
    }
    Ok(NewUser {
        tenant_id: user.tenant_id,
        object_id: user.object_id,
        upn: user.upn,
        display_name: user.display_name,
        roles: user.roles,
        password: generated,
    })
}

/// Replaces a user's roles (at least one); false when the user does not exist. Tokens already
/// issued keep their roles until they expire.
pub async fn set_user_roles(
    store: &dyn IdentityStore,
    tenant_id: &str,
    upn: &str,
    roles: &[UserRole],
) -> Result<bool, RegisterError> {
    if roles.is_empty() {
        return Err(RegisterError::Invalid(format!(
            "give the user at least one role: {}",
            UserRole::names()
        )));
    }
    let mut names: Vec<String> = Vec::new();
    for role in roles {
        if !names.iter().any(|r| r == role.as_str()) {
            names.push(role.as_str().to_string());
        }
    }
    Ok(store.set_user_roles(tenant_id, upn, &names).await?)
}

/// Replaces a user's password (ending their sessions); false when the user does not exist.
pub async fn set_password(
    store: &dyn IdentityStore,
    tenant_id: &str,
    upn: &str,
    password: &str,
) -> Result<bool, RegisterError> {
    validate_password(password).map_err(RegisterError::Invalid)?;
    let hash = hash_on_blocking_thread(password).await?;
    Ok(store
        .set_user_password(tenant_id, upn, &hash, time::now())
        .await?)
}

/// Checks a redirect URI an app registers: absolute `https`, or `http` on a loopback host (as
/// Entra allows for native apps), without a fragment.
pub fn validate_redirect_uri(uri: &str) -> Result<(), String> {
    let parsed = url::Url::parse(uri)
        .map_err(|e| format!("redirect URI '{uri}' is not an absolute URL: {e}"))?;
    let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    let scheme_ok = parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback);
    if !scheme_ok || parsed.fragment().is_some() {
        return Err(format!(
            "redirect URI '{uri}' is not allowed: use https, or http on localhost, without a #fragment"
        ));
    }
    Ok(())
}

/// Records how an app signs people in (`iocd apps create --public-client --redirect-uri …`).
pub async fn set_app_sign_in(
    store: &dyn IdentityStore,
    client_id: &str,
    public_client: bool,
    redirect_uris: &[String],
) -> Result<(), RegisterError> {
    for uri in redirect_uris {
        validate_redirect_uri(uri).map_err(RegisterError::Invalid)?;
    }
    store
        .set_app_sign_in(&AppSignIn {
            client_id: client_id.to_string(),
            public_client,
            redirect_uris: redirect_uris.to_vec(),
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_roles_round_trip_and_map_to_indicator_rights() {
        for role in UserRole::ALL {
            assert_eq!(UserRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(UserRole::parse("iocd.admin"), None);
        assert_eq!(UserRole::IndicatorsRead.app_roles(), [Role::ReadAll]);
        assert_eq!(UserRole::IndicatorsManage.app_roles(), [Role::ReadWriteAll]);
        assert!(UserRole::Admin.app_roles().contains(&Role::IocdAdmin));
    }

    #[test]
    fn upns_and_redirect_uris_are_checked() {
        assert!(validate_upn("alice@contoso.example").is_ok());
        for bad in ["alice", "@contoso", "alice@", "a b@c.d", "a@b@c"] {
            assert!(validate_upn(bad).is_err(), "{bad}");
        }
        assert!(validate_redirect_uri("http://localhost:8400/callback").is_ok());
        assert!(validate_redirect_uri("https://app.example/cb").is_ok());
        assert!(validate_redirect_uri("http://app.example/cb").is_err());
        assert!(validate_redirect_uri("https://app.example/cb#x").is_err());
        assert!(validate_redirect_uri("/relative").is_err());
    }

    #[test]
    fn generated_passwords_are_long_enough_and_differ() {
        let (a, b) = (generate_password(), generate_password());
        assert!(a.len() >= MIN_PASSWORD_CHARS);
        assert_ne!(a, b);
    }
}
