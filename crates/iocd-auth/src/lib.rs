//! iocd's identity-provider core. iocd imitates Entra ID so that Defender for Endpoint clients
//! only change a host name: apps get client ids and secrets, obtain RS256 access tokens shaped
//! like Entra's, and the API validates bearer tokens from iocd itself or from external issuers
//! such as a real Entra tenant. No HTTP routing and no SQL live here.

mod assertion;
mod credentials;
mod discovery;
pub mod entra;
mod jwks;
mod signing;
mod validation;

pub use assertion::{
    unverified_assertion_issuer, validate_assertion, AssertionError, CertificateError,
    ClientCertificate, ValidatedAssertion, JWT_BEARER_ASSERTION_TYPE,
};
pub use credentials::{generate_client_id, generate_client_secret, hash_secret, verify_secret};
pub use discovery::openid_configuration;
pub use jwks::{
    fetch_jwks, fetch_jwks_with, JwksCache, JwksError, DEFAULT_MIN_FETCH_INTERVAL,
    DEFAULT_REFRESH_EVERY,
};
pub use signing::{
    rsa_jwk_thumbprint, DelegatedUserClaims, IssueError, IssuedToken, KeyError, SigningKey,
    TokenClaimsInput, TokenVersion, DEFAULT_TOKEN_LIFETIME, TENANT_ID_PLACEHOLDER,
};
pub use validation::{
    TokenError, TokenValidator, TrustedIssuer, ValidatedToken, ValidatorConfig,
    DEFAULT_LEEWAY_SECS, MAX_LEEWAY_SECS,
};

/// jsonwebtoken's key types, re-exported so callers build [`TrustedIssuer`]s without depending on
/// the same jsonwebtoken version themselves.
pub use jsonwebtoken::jwk::{Jwk, JwkSet};
