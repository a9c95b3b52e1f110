//! The web portal's own OAuth client: every tenant gets one built-in public client, created the
//! first time someone signs in to the portal for that tenant, through which the portal signs
//! people in with the authorization-code flow and PKCE like any other app.
//!
//! Its redirect URI is registered as a path, [`PORTAL_CALLBACK_PATH`], not a URL: a path-only
//! redirect URI means "this path on the server the browser signed in at" (the authorization
//! request's own origin), so the portal works under whatever name iocd is reached by, and a code
//! is never sent to another host (the origin is the one the person's browser called, not a
//! parameter anyone can choose). Only iocd registers such URIs; `iocd apps` accepts absolute ones.

use iocd_domain::time;
use iocd_store::{AppInsertError, AppRegistration, AppSignIn, IdentityStore};

use crate::registration::{validate_tenant_id, RegisterError, NO_SECRET};

/// The display name of every tenant's portal client (the sign-in page shows it).
pub const PORTAL_APP_NAME: &str = "iocd portal";
/// Where the authorization endpoint sends the portal's codes, on the server's own origin.
pub const PORTAL_CALLBACK_PATH: &str = "/portal/callback";

/// The UUID v5 namespace of portal client ids (a fixed, random UUID).
const PORTAL_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x10cd_9a7e_6d1b_4c0e_9f3a_5b2e_7c11_d0a1);

/// The portal's client id in `tenant_id`: the same on every server and replica of a database.
pub fn portal_client_id(tenant_id: &str) -> String {
    uuid::Uuid::new_v5(&PORTAL_NAMESPACE, tenant_id.as_bytes()).to_string()
}

/// Whether `redirect_uri` is the path-only registration `registered` on the server at `origin`
/// (`http://127.0.0.1:8080`, no trailing slash).
pub(crate) fn same_origin_redirect(redirect_uri: &str, registered: &str, origin: &str) -> bool {
    registered.starts_with('/')
        && !origin.is_empty()
        && redirect_uri
            .strip_prefix(origin)
            .is_some_and(|path| path == registered)
}

/// Makes sure `tenant_id` (an existing tenant: one with apps) has its portal client, and returns
/// its client id. Safe to call on every sign-in and from several servers at once.
pub async fn ensure_portal_client(
    store: &dyn IdentityStore,
    tenant_id: &str,
) -> Result<String, RegisterError> {
    validate_tenant_id(tenant_id).map_err(RegisterError::Invalid)?;
    let client_id = portal_client_id(tenant_id);
    let settings = AppSignIn {
        client_id: client_id.clone(),
        public_client: true,
        redirect_uris: vec![PORTAL_CALLBACK_PATH.to_string()],
    };
    if store.find_app(tenant_id, &client_id).await?.is_some() {
        if store.app_sign_in(&client_id).await?.as_ref() != Some(&settings) {
            store.set_app_sign_in(&settings).await?;
        }
        return Ok(client_id);
    }
    if !store.tenant_exists(tenant_id).await? {
        return Err(RegisterError::Invalid(format!(
            "tenant '{tenant_id}' has no apps; create one first with 'iocd apps create --tenant {tenant_id}'"
        )));
    }
    let app = AppRegistration {
        tenant_id: tenant_id.to_string(),
        client_id: client_id.clone(),
        object_id: uuid::Uuid::new_v5(&PORTAL_NAMESPACE, client_id.as_bytes()).to_string(),
        display_name: PORTAL_APP_NAME.to_string(),
        // A public client: no secret ever verifies.
        secret_hash: NO_SECRET.to_string(),
        // The portal acts only for its users: what they may do is their user role.
        roles: Vec::new(),
        created_at: time::now(),
    };
    match store.insert_app(&app).await {
        // Another server created it at the same moment.
        Ok(()) | Err(AppInsertError::DuplicateClientId(_)) => {}
        Err(AppInsertError::Store(e)) => return Err(e.into()),
    }
    store.set_app_sign_in(&settings).await?;
    Ok(client_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_client_ids_are_stable_and_per_tenant() {
        assert_eq!(portal_client_id("a"), portal_client_id("a"));
        assert_ne!(portal_client_id("a"), portal_client_id("b"));
    }

    #[test]
    fn path_only_redirects_match_only_the_requests_own_origin() {
        let origin = "https://iocd.example";
        assert!(same_origin_redirect(
            "https://iocd.example/portal/callback",
            PORTAL_CALLBACK_PATH,
            origin
        ));
        assert!(!same_origin_redirect(
            "https://evil.example/portal/callback",
            PORTAL_CALLBACK_PATH,
            origin
        ));
        assert!(!same_origin_redirect(
            "https://iocd.example/portal/callback?x=1",
            PORTAL_CALLBACK_PATH,
            origin
        ));
        assert!(!same_origin_redirect(
            "https://iocd.example.evil/portal/callback",
            PORTAL_CALLBACK_PATH,
            origin
        ));
        assert!(!same_origin_redirect(
            "/portal/callback",
            PORTAL_CALLBACK_PATH,
            ""
        ));
        assert!(!same_origin_redirect(
            "https://iocd.example/portal/callback",
            "https://iocd.example/portal/callback",
            origin
        ));
    }
}
