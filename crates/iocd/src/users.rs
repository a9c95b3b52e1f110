//! `iocd users`: the people who sign in through apps (delegated permissions) and their roles.

use std::io::Read as _;

use anyhow::{bail, Context};
use iocd_identity::{create_user, set_password, RegisterError, UserRole};
use iocd_store::UserRecord;
use serde_json::{json, Value};

fn parse_roles(names: &[String]) -> anyhow::Result<Vec<UserRole>> {
    names
        .iter()
        .map(|name| {
            UserRole::parse(name).with_context(|| {
                format!(
                    "unknown user role '{name}': use {} (case-sensitive)",
                    UserRole::names()
                )
            })
        })
        .collect()
}

/// The password from standard input (its first line), for `--password-stdin`.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the password from standard input")?;
    let password = input.lines().next().unwrap_or("").to_string();
    if password.is_empty() {
        bail!("--password-stdin read no password: pipe one in, for example `printf %s \"$PASSWORD\" | iocd users create …`");
    }
    Ok(password)
}

fn refused(error: RegisterError) -> anyhow::Error {
    match error {
        RegisterError::Store(e) => anyhow::Error::new(e).context("storing the user"),
        other => anyhow::anyhow!(other),
    }
}

/// Creates a user; prints it with the generated password unless one came on stdin.
pub async fn create(
    database: &str,
    tenant: &str,
    name: &str,
    upn: &str,
    role_names: &[String],
    password_stdin: bool,
) -> anyhow::Result<Value> {
    let roles = parse_roles(role_names)?;
    let password = password_stdin.then(password_from_stdin).transpose()?;
    let stores = crate::apps::open(database).await?;
    let user = create_user(
        stores.identity.as_ref(),
        tenant,
        name,
        upn,
        &roles,
        password.as_deref(),
    )
    .await
    .map_err(refused)?;
    Ok(serde_json::to_value(user)?)
}

fn describe(user: &UserRecord) -> Value {
    json!({
        "tenantId": user.tenant_id,
        "objectId": user.object_id,
        "upn": user.upn,
        "displayName": user.display_name,
        "roles": user.roles,
        "createdDateTime": iocd_domain::time::format_wire(user.created_at),
    })
}

/// The users (of one tenant or of all), without their password hashes.
pub async fn list(database: &str, tenant: Option<&str>) -> anyhow::Result<Value> {
    let stores = crate::apps::open(database).await?;
    let users = stores.identity.list_users(tenant).await?;
    Ok(Value::Array(users.iter().map(describe).collect()))
}

/// Deletes a user and ends their sessions (refresh tokens); access tokens expire as issued.
pub async fn delete(database: &str, tenant: &str, upn: &str) -> anyhow::Result<Value> {
    let stores = crate::apps::open(database).await?;
    if !stores.identity.delete_user(tenant, upn).await? {
        bail!("no user '{upn}' in tenant '{tenant}'");
    }
    Ok(json!({"tenantId": tenant, "upn": upn, "deleted": true}))
}

/// Sets a new password (from stdin, or generated and printed) and ends the user's sessions.
pub async fn change_password(
    database: &str,
    tenant: &str,
    upn: &str,
    password_stdin: bool,
) -> anyhow::Result<Value> {
    let (password, generated) = if password_stdin {
        (password_from_stdin()?, false)
    } else {
        (iocd_identity::generate_password(), true)
    };
    let stores = crate::apps::open(database).await?;
    if !set_password(stores.identity.as_ref(), tenant, upn, &password)
        .await
        .map_err(refused)?
    {
        bail!("no user '{upn}' in tenant '{tenant}'");
    }
    let mut result = json!({"tenantId": tenant, "upn": upn, "passwordChanged": true});
    if generated {
        result["password"] = json!(password);
    }
    Ok(result)
}
