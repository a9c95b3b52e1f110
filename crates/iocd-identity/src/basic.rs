//! HTTP Basic credentials (an app's client id and secret) as a [`Caller`], for the feed routes:
//! firewalls (Palo Alto, FortiGate) fetching a list can send only Basic credentials.

use iocd_store::StoreError;

use crate::provider::IdentityProvider;
use crate::roles::{Caller, Role};

/// The caller whose client id and secret these are; `None` when the app is unknown or the
/// secret wrong (the two are not told apart). Client ids are unique across tenants, so the
/// app's tenant is found from its id.
pub async fn authenticate_basic(
    provider: &IdentityProvider,
    client_id: &str,
    client_secret: &str,
) -> Result<Option<Caller>, StoreError> {
    let apps = provider.store().list_apps(None).await?;
    let Some(app) = apps.into_iter().find(|a| a.client_id == client_id) else {
        return Ok(None);
    };
    let Ok(app) = provider
        .authenticate_client(&app.tenant_id, client_id, client_secret, None)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Caller {
        roles: app.roles.iter().filter_map(|r| Role::parse(r)).collect(),
        display_name: app.display_name,
        tenant_id: app.tenant_id,
        client_id: app.client_id,
        user: None,
    }))
}
