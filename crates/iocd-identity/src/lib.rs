//! iocd's identity rules, shared by the HTTP server and the `iocd` command: which roles exist and
//! what they allow, how apps and tenants are registered, how the token endpoint decides whether
//! to issue a token, and how a bearer token becomes a [`Caller`].
//!
//! Cryptography (keys, signing, JWT validation, secrets) is [`iocd_auth`]'s; storage is behind
//! [`iocd_store::IdentityStore`]. Nothing here speaks HTTP: the server maps these rules' answers
//! onto status codes and response bodies.

mod argon2_threads;
mod authenticate;
mod basic;
mod certificates;
mod config;
mod delegated;
mod grant;
mod keys;
mod lockout;
mod portal;
mod provider;
mod registration;
mod roles;
mod sign_in_lockout;
mod users;

pub use authenticate::{AuthenticationError, TokenAuthenticator};
pub use basic::authenticate_basic;
pub use certificates::{
    add_app_certificate, app_certificates, describe_certificate, is_token_endpoint,
    read_certificate, CertificateRegistrationError, RegisteredCertificate,
};
pub use config::{
    ExternalIssuer, IdentityConfig, DEFAULT_AUDIENCES, DEFAULT_REFRESH_TOKEN_LIFETIME,
};
pub use delegated::{
    normalise_user_code, AuthorizationRequest, AuthorizeError, DeviceAuthorization, TokenResponse,
    DELEGATED_PERMISSION, DEVICE_CODE_GRANT_TYPE,
};
pub use grant::{GrantError, GrantedToken, TokenRequest};
/// An app's certificate, read by [`read_certificate`].
pub use iocd_auth::ClientCertificate;
pub use keys::{
    describe_signing_keys, rotate_signing_key, rotation_overlap, KeyRing, KeyRotation,
    DEFAULT_KEY_RELOAD_INTERVAL,
};
pub use lockout::{FailedAuthLimits, Lockout, Lockouts, FAILURE_METER_SLOT};
pub use portal::{ensure_portal_client, portal_client_id, PORTAL_APP_NAME, PORTAL_CALLBACK_PATH};
pub use provider::{ClientAuthError, IdentityProvider};
pub use registration::{
    add_tenant_alias, admin_app_exists, bootstrap_development_app, ensure_well_known_app,
    register_app, register_certificate_app, set_app_roles, validate_domain, validate_tenant_id,
    NewAppCredentials, NewCertificateApp, RegisterError, DEVELOPMENT_APP_NAME, EMULATOR_CLIENT_ID,
    EMULATOR_CLIENT_SECRET, EMULATOR_TENANT_ID, NO_SECRET,
};
pub use roles::{Caller, MissingRoles, Role, SignedInUser, ADMIN_ROLES, READ_ROLES, WRITE_ROLES};
pub use users::{
    create_user, generate_password, set_app_sign_in, set_password, set_user_roles,
    validate_redirect_uri, validate_upn, NewUser, UserRole, MIN_PASSWORD_CHARS,
};
