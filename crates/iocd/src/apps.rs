//! `iocd apps`: registering, listing and deleting the apps that may get tokens.

use anyhow::{bail, Context};
use iocd_identity::{register_app, RegisterError, Role};
use iocd_store::AppRegistration;
use serde_json::{json, Value};

fn parse_roles(names: &[String]) -> anyhow::Result<Vec<Role>> {
    if names.is_empty() {
        bail!("give at least one --role: Ti.Read.All, Ti.ReadWrite or Ti.ReadWrite.All");
    }
    names
        .iter()
        .map(|name| {
            Role::parse(name).with_context(|| {
                format!("unknown role '{name}': use Ti.Read.All, Ti.ReadWrite or Ti.ReadWrite.All (case-sensitive)")
            })
        })
        .collect()
}

/// Registers an app and returns `{"tenantId","clientId","clientSecret"}`.
pub async fn create(
    database: &str,
    tenant: &str,
    name: &str,
    role_names: &[String],
) -> anyhow::Result<Value> {
    let roles = parse_roles(role_names)?;
    let stores = open(database).await?;
    match register_app(stores.identity.as_ref(), tenant, name, &roles).await {
        Ok(credentials) => Ok(serde_json::to_value(credentials)?),
        Err(error @ (RegisterError::Invalid(_) | RegisterError::Internal(_))) => bail!(error),
        Err(RegisterError::Store(e)) => Err(e).context("storing the app"),
    }
}

fn describe(app: &AppRegistration) -> Value {
    json!({
        "tenantId": app.tenant_id,
        "clientId": app.client_id,
        "displayName": app.display_name,
        "roles": app.roles,
        "createdDateTime": iocd_domain::time::format_wire(app.created_at),
    })
}

/// The apps (of one tenant or of all), without their secrets.
pub async fn list(database: &str, tenant: Option<&str>) -> anyhow::Result<Value> {
    let stores = open(database).await?;
    let apps = stores.identity.list_apps(tenant).await?;
    Ok(Value::Array(apps.iter().map(describe).collect()))
}

/// Deletes an app. Tokens it already holds stay valid until they expire, as with Entra.
pub async fn delete(database: &str, tenant: &str, client_id: &str) -> anyhow::Result<Value> {
    let stores = open(database).await?;
    if !stores.identity.delete_app(tenant, client_id).await? {
        bail!("no app with client id '{client_id}' in tenant '{tenant}'");
    }
    Ok(json!({"tenantId": tenant, "clientId": client_id, "deleted": true}))
}

async fn open(database: &str) -> anyhow::Result<iocd_store::Stores> {
    iocd_store::open_stores(database)
        .await
        .with_context(|| format!("opening the database {database}"))
}
