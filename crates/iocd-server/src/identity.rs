//! Who is calling. Handlers take a [`Caller`] and never look at headers themselves, so the
//! way identity is established (a development identity, OAuth2 bearer tokens) plugs in behind
//! the [`Authenticator`] trait without touching them.

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use iocd_domain::Actor;
use iocd_store::Scope;

use crate::error::ApiError;
use crate::AppState;

/// Application roles of the Defender API's permission catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads all of the tenant's indicators.
    ReadAll,
    /// Creates indicators; reads, updates and deletes only the ones it created.
    ReadWrite,
    /// Manages all of the tenant's indicators.
    ReadWriteAll,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadAll => "Ti.Read.All",
            Role::ReadWrite => "Ti.ReadWrite",
            Role::ReadWriteAll => "Ti.ReadWrite.All",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::ReadAll, Role::ReadWrite, Role::ReadWriteAll]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// Roles that may write (submit, import, delete).
pub const WRITE_ROLES: &[Role] = &[Role::ReadWriteAll, Role::ReadWrite];
/// Roles that may read.
pub const READ_ROLES: &[Role] = &[Role::ReadWriteAll, Role::ReadWrite, Role::ReadAll];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant_id: String,
    /// The application's client id (`createdBy`).
    pub client_id: String,
    /// The application's display name (`createdByDisplayName`).
    pub display_name: String,
    pub roles: Vec<Role>,
}

impl Caller {
    /// Refuses with 403 unless the caller holds one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.iter().any(|r| self.roles.contains(r)) {
            return Ok(());
        }
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::forbidden(format!(
            "Missing application roles. API required roles: {}",
            names.join(", ")
        )))
    }

    /// The indicators this caller may see and change: all of the tenant's with
    /// `Ti.ReadWrite.All` (or, for reading, `Ti.Read.All`), otherwise only its own.
    pub fn scope(&self, writing: bool) -> Scope {
        let all = self.roles.contains(&Role::ReadWriteAll)
            || (!writing && self.roles.contains(&Role::ReadAll));
        Scope {
            tenant_id: self.tenant_id.clone(),
            owner: if all {
                None
            } else {
                Some(self.client_id.clone())
            },
        }
    }

    pub fn actor(&self) -> Actor {
        Actor {
            id: self.client_id.clone(),
            display_name: self.display_name.clone(),
        }
    }
}

#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    async fn authenticate(&self, parts: &Parts) -> Result<Caller, ApiError>;
}

/// Every request runs as one fixed caller: the development mode used until tokens are set up.
pub struct FixedIdentity(pub Caller);

impl FixedIdentity {
    pub fn development() -> Self {
        FixedIdentity(Caller {
            tenant_id: "00000000-0000-0000-0000-000000000001".to_string(),
            client_id: "00000000-0000-0000-0000-0000000000de".to_string(),
            display_name: "iocd development app".to_string(),
            roles: vec![Role::ReadWriteAll],
        })
    }
}

#[async_trait]
impl Authenticator for FixedIdentity {
    async fn authenticate(&self, _parts: &Parts) -> Result<Caller, ApiError> {
        Ok(self.0.clone())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The rate-limit middleware authenticates first and leaves the caller here.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let auth: Arc<dyn Authenticator> = state.authenticator.clone();
        auth.authenticate(parts).await
    }
}
