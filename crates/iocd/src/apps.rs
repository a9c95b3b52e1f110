//! `iocd apps`: registering, listing and deleting the apps that may get tokens.

use std::path::Path;

use anyhow::{bail, Context};
use iocd_identity::{
    register_app, register_certificate_app, ClientCertificate, RegisterError, Role, NO_SECRET,
};
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
                format!("unknown role '{name}': use Ti.Read.All, Ti.ReadWrite, Ti.ReadWrite.All or Iocd.Admin (case-sensitive)")
            })
        })
        .collect()
}

/// How an app signs people in: `--public-client` and `--redirect-uri`.
#[derive(Debug, Default, Clone)]
pub struct SignInSettings {
    pub public_client: bool,
    pub redirect_uris: Vec<String>,
}

/// Registers an app and returns `{"tenantId","clientId","clientSecret"}`, or, given a
/// certificate, `{"tenantId","clientId","certificates":[…]}` (such an app has no secret). A
/// public client has no usable secret either, so it gets none printed.
pub async fn create(
    database: &str,
    tenant: &str,
    name: &str,
    role_names: &[String],
    certificate: Option<&Path>,
    sign_in: &SignInSettings,
) -> anyhow::Result<Value> {
    // A public client signs people in; it needs no application role of its own.
    let roles = if sign_in.public_client && role_names.is_empty() {
        Vec::new()
    } else {
        parse_roles(role_names)?
    };
    for uri in &sign_in.redirect_uris {
        iocd_identity::validate_redirect_uri(uri).map_err(|e| anyhow::anyhow!(e))?;
    }
    let certificate = certificate.map(read_certificate).transpose()?;
    let stores = open(database).await?;
    let created = match &certificate {
        None => register_app(stores.identity.as_ref(), tenant, name, &roles)
            .await
            .map(serde_json::to_value),
        Some(certificate) => {
            register_certificate_app(stores.identity.as_ref(), tenant, name, &roles, certificate)
                .await
                .map(serde_json::to_value)
        }
    };
    let mut result = match created {
        Ok(value) => value?,
        Err(error @ (RegisterError::Invalid(_) | RegisterError::Internal(_))) => bail!(error),
        Err(RegisterError::Store(e)) => return Err(e).context("storing the app"),
    };
    if sign_in.public_client || !sign_in.redirect_uris.is_empty() {
        let client_id = result["clientId"].as_str().unwrap_or_default().to_string();
        iocd_identity::set_app_sign_in(
            stores.identity.as_ref(),
            &client_id,
            sign_in.public_client,
            &sign_in.redirect_uris,
        )
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
        result["publicClient"] = json!(sign_in.public_client);
        result["redirectUris"] = json!(sign_in.redirect_uris);
    }
    if sign_in.public_client {
        if let Some(fields) = result.as_object_mut() {
            fields.remove("clientSecret");
        }
    }
    Ok(result)
}

fn read_certificate(path: &Path) -> anyhow::Result<ClientCertificate> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the certificate {}", path.display()))?;
    iocd_identity::read_certificate(&text)
        .with_context(|| format!("reading the certificate {}", path.display()))
}

/// Registers one more certificate on an app (its secret and other certificates stay valid).
pub async fn add_certificate(
    database: &str,
    tenant: &str,
    client_id: &str,
    certificate: &Path,
) -> anyhow::Result<Value> {
    let certificate = read_certificate(certificate)?;
    let stores = open(database).await?;
    let added = iocd_identity::add_app_certificate(
        stores.identity.as_ref(),
        tenant,
        client_id,
        &certificate,
    )
    .await?;
    Ok(json!({"tenantId": tenant, "clientId": client_id, "certificate": added}))
}

/// Removes a certificate from an app by its SHA-1 thumbprint (hex, any case, `:` allowed).
pub async fn remove_certificate(
    database: &str,
    tenant: &str,
    client_id: &str,
    thumbprint: &str,
) -> anyhow::Result<Value> {
    let thumbprint: String = thumbprint
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let stores = open(database).await?;
    if !stores
        .identity
        .remove_app_certificate(tenant, client_id, &thumbprint)
        .await?
    {
        bail!("app '{client_id}' of tenant '{tenant}' has no certificate with thumbprint {thumbprint}");
    }
    Ok(
        json!({"tenantId": tenant, "clientId": client_id, "thumbprint": thumbprint, "removed": true}),
    )
}

fn describe(app: &AppRegistration, certificates: &[ClientCertificate]) -> Value {
    json!({
        "tenantId": app.tenant_id,
        "clientId": app.client_id,
        "displayName": app.display_name,
        "roles": app.roles,
        "hasSecret": app.secret_hash != NO_SECRET,
        "certificates": certificates.iter().map(iocd_identity::describe_certificate).collect::<Vec<_>>(),
        "createdDateTime": iocd_domain::time::format_wire(app.created_at),
    })
}

/// The apps (of one tenant or of all), without their secrets, with their certificates.
pub async fn list(database: &str, tenant: Option<&str>) -> anyhow::Result<Value> {
    let stores = open(database).await?;
    let apps = stores.identity.list_apps(tenant).await?;
    let mut described = Vec::with_capacity(apps.len());
    for app in &apps {
        let certificates =
            iocd_identity::app_certificates(stores.identity.as_ref(), &app.client_id).await?;
        described.push(describe(app, &certificates));
    }
    Ok(Value::Array(described))
}

/// Deletes an app. Tokens it already holds stay valid until they expire, as with Entra.
pub async fn delete(database: &str, tenant: &str, client_id: &str) -> anyhow::Result<Value> {
    let stores = open(database).await?;
    if !stores.identity.delete_app(tenant, client_id).await? {
        bail!("no app with client id '{client_id}' in tenant '{tenant}'");
    }
    Ok(json!({"tenantId": tenant, "clientId": client_id, "deleted": true}))
}

/// `iocd tenants alias`: the tenant may be named by `domain` in authority URLs.
pub async fn alias_tenant(database: &str, tenant: &str, domain: &str) -> anyhow::Result<Value> {
    let stores = open(database).await?;
    match iocd_identity::add_tenant_alias(stores.identity.as_ref(), tenant, domain).await {
        Ok(domain) => Ok(json!({"tenantId": tenant, "domain": domain})),
        Err(error @ (RegisterError::Invalid(_) | RegisterError::Internal(_))) => bail!(error),
        Err(RegisterError::Store(e)) => Err(e).context("storing the alias"),
    }
}

/// `iocd tenants list`: every tenant (a tenant exists while it has apps) with its app count and
/// domain aliases.
pub async fn list_tenants(database: &str) -> anyhow::Result<Value> {
    let stores = open(database).await?;
    let apps = stores.identity.list_apps(None).await?;
    let aliases = stores.identity.tenant_aliases(None).await?;
    let mut tenants: Vec<Value> = Vec::new();
    for app in &apps {
        if tenants
            .last()
            .is_some_and(|t| t["tenantId"] == app.tenant_id.as_str())
        {
            continue;
        }
        let count = apps.iter().filter(|a| a.tenant_id == app.tenant_id).count();
        let domains: Vec<&str> = aliases
            .iter()
            .filter(|(_, tenant)| *tenant == app.tenant_id)
            .map(|(domain, _)| domain.as_str())
            .collect();
        tenants.push(json!({"tenantId": app.tenant_id, "apps": count, "domains": domains}));
    }
    Ok(Value::Array(tenants))
}

pub(crate) async fn open(database: &str) -> anyhow::Result<iocd_store::Stores> {
    iocd_store::open_stores(database)
        .await
        .with_context(|| format!("opening the database {database}"))
}
