//! iocd's identity rules, shared by the HTTP server and the `iocd` command: which roles exist and
//! what they allow, how apps and tenants are registered, how the token endpoint decides whether
//! to issue a token, and how a bearer token becomes a [`Caller`].
//!
//! Cryptography (keys, signing, JWT validation, secrets) is [`iocd_auth`]'s; storage is behind
//! [`iocd_store::IdentityStore`]. Nothing here speaks HTTP: the server maps these rules' answers
//! onto status codes and response bodies.

mod authenticate;
mod config;
mod grant;
mod provider;
mod registration;
mod roles;

pub use authenticate::{AuthenticationError, TokenAuthenticator};
pub use config::{ExternalIssuer, IdentityConfig, DEFAULT_AUDIENCES};
pub use grant::{GrantError, GrantedToken, TokenRequest};
pub use provider::{ClientAuthError, IdentityProvider};
pub use registration::{
    bootstrap_development_app, register_app, validate_tenant_id, NewAppCredentials, RegisterError,
    DEVELOPMENT_APP_NAME,
};
pub use roles::{Caller, MissingRoles, Role, READ_ROLES, WRITE_ROLES};
