//! The token-signing key and the access tokens iocd issues with it.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand_core::OsRng;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Entra signs access tokens with 2048-bit RSA keys; smaller keys are refused on load too.
const RSA_KEY_BITS: usize = 2048;

/// What Entra reports as `expires_in` for a client-credentials token, and so what clients expect.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3599);

/// The placeholder Entra uses in multi-tenant issuer strings.
pub const TENANT_ID_PLACEHOLDER: &str = "{tenantid}";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("RSA key generation failed: {0}")]
    Generate(#[source] rsa::Error),
    #[error("the signing key is not a PKCS#8 PEM RSA private key: {0}")]
    Pem(#[source] rsa::pkcs8::Error),
    #[error("the RSA private key is inconsistent: {0}")]
    Invalid(#[source] rsa::Error),
    #[error("the RSA key has {bits} bits; at least {RSA_KEY_BITS} are required")]
    TooSmall { bits: usize },
    #[error("the RSA key could not be encoded: {0}")]
    Encode(String),
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("cannot issue a token without `{0}`")]
    EmptyField(&'static str),
    #[error("the token lifetime must be at least one second")]
    ZeroLifetime,
    #[error("the system clock is before 1970")]
    ClockBeforeEpoch,
    #[error("signing the token failed: {0}")]
    Signing(#[source] jsonwebtoken::errors::Error),
}

/// Which Entra token endpoint a token imitates. Entra tells them apart by `ver`; a v1 token names
/// the client in `appid` and a v2 token in `azp`, but in practice clients and APIs see both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenVersion {
    /// `/{tenant}/oauth2/token` (the `resource=` form).
    V1,
    /// `/{tenant}/oauth2/v2.0/token` (the `scope=…/.default` form).
    #[default]
    V2,
}

impl TokenVersion {
    /// The `ver` claim: `"1.0"` or `"2.0"`.
    pub fn as_claim(self) -> &'static str {
        match self {
            TokenVersion::V1 => "1.0",
            TokenVersion::V2 => "2.0",
        }
    }
}

/// What goes into an app-only access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaimsInput {
    /// `tid`: the tenant the app belongs to.
    pub tenant_id: String,
    /// `appid` and `azp`: the app registration's client id.
    pub client_id: String,
    /// `oid` and `sub`: the app's service-principal object id.
    pub app_object_id: String,
    /// `app_displayname`, left out when `None`. The API shows it as `createdByDisplayName`.
    pub app_display_name: Option<String>,
    /// `roles`: the application permissions granted, such as `Ti.ReadWrite.All`.
    pub roles: Vec<String>,
    /// `aud`: the resource the client asked for, such as `https://api.securitycenter.microsoft.com`.
    pub audience: String,
    /// `iss`. A `{tenantid}` in it is replaced by `tenant_id`, so the same template can configure
    /// both issuing and [`crate::TrustedIssuer`].
    pub issuer: String,
    pub version: TokenVersion,
    /// From `iat` to `exp`; also the `expires_in` reported to the client.
    pub lifetime: Duration,
}

impl Default for TokenClaimsInput {
    fn default() -> Self {
        TokenClaimsInput {
            tenant_id: String::new(),
            client_id: String::new(),
            app_object_id: String::new(),
            app_display_name: None,
            roles: Vec::new(),
            audience: String::new(),
            issuer: String::new(),
            version: TokenVersion::default(),
            lifetime: DEFAULT_TOKEN_LIFETIME,
        }
    }
}

/// A signed access token and the figure for the token response's `expires_in`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u64,
}

/// The claims of an app-only token, named and shaped as Entra writes them.
#[derive(Serialize)]
struct AppOnlyClaims<'a> {
    aud: &'a str,
    iss: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_displayname: Option<&'a str>,
    appid: &'a str,
    azp: &'a str,
    idtyp: &'static str,
    oid: &'a str,
    // Entra leaves `roles` out entirely when the app holds no application permission.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    roles: &'a [String],
    sub: &'a str,
    tid: &'a str,
    ver: &'static str,
}

/// The RSA key iocd signs its access tokens with (RS256, as Entra does).
pub struct SigningKey {
    private_key: RsaPrivateKey,
    encoding_key: EncodingKey,
    kid: String,
    modulus_b64: String,
    exponent_b64: String,
}

impl fmt::Debug for SigningKey {
    // Never print private key material, even in a debug log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new 2048-bit RSA key from the OS random generator. Takes a noticeable fraction of a
    /// second, so the server should generate once and store it ([`Self::to_pkcs8_pem`]).
    pub fn generate() -> Result<Self, KeyError> {
        let private_key =
            RsaPrivateKey::new(&mut OsRng, RSA_KEY_BITS).map_err(KeyError::Generate)?;
        Self::from_private_key(private_key)
    }

    /// Loads a key stored by [`Self::to_pkcs8_pem`] (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let private_key = RsaPrivateKey::from_pkcs8_pem(pem).map_err(KeyError::Pem)?;
        private_key.validate().map_err(KeyError::Invalid)?;
        Self::from_private_key(private_key)
    }

    /// The private key as PKCS#8 PEM, for the server's database. This is secret material.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        let pem = self
            .private_key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|err| KeyError::Encode(err.to_string()))?;
        Ok(pem.as_str().to_owned())
    }

    fn from_private_key(private_key: RsaPrivateKey) -> Result<Self, KeyError> {
        let bits = private_key.size() * 8;
        if bits < RSA_KEY_BITS {
            return Err(KeyError::TooSmall { bits });
        }
        // jsonwebtoken signs through ring, which takes the key as PKCS#1 DER.
        let pkcs1_der = private_key
            .to_pkcs1_der()
            .map_err(|err| KeyError::Encode(err.to_string()))?;
        let encoding_key = EncodingKey::from_rsa_der(pkcs1_der.as_bytes());
        let modulus_b64 = URL_SAFE_NO_PAD.encode(private_key.n().to_bytes_be());
        let exponent_b64 = URL_SAFE_NO_PAD.encode(private_key.e().to_bytes_be());
        let kid = rsa_jwk_thumbprint(&modulus_b64, &exponent_b64);
        Ok(SigningKey {
            private_key,
            encoding_key,
            kid,
            modulus_b64,
            exponent_b64,
        })
    }

    /// The key id put in token headers and the JWKS: the key's RFC 7638 JWK thumbprint, so it is
    /// stable across restarts and PEM round trips without being stored separately.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK, in the shape Entra's `discovery/keys` document uses.
    pub fn public_jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "alg": "RS256",
            "n": self.modulus_b64,
            "e": self.exponent_b64,
        })
    }

    /// The JWKS document to serve at the `jwks_uri`: `{"keys":[…this key…]}`.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.public_jwk()] })
    }

    /// The same public key as jsonwebtoken's [`JwkSet`], to trust iocd's own tokens in a
    /// [`crate::TrustedIssuer`] without going over HTTP.
    pub fn jwk_set(&self) -> JwkSet {
        serde_json::from_value(self.jwks()).expect("an RSA public JWK parses as a jsonwebtoken Jwk")
    }

    /// Signs an app-only access token valid from now for `input.lifetime`.
    pub fn issue(&self, input: &TokenClaimsInput) -> Result<IssuedToken, IssueError> {
        self.issue_at(input, iocd_domain::time::system_now())
    }

    /// As [`Self::issue`], with the issue time given: for tests and for tools that mint tokens
    /// for a known instant.
    pub fn issue_at(
        &self,
        input: &TokenClaimsInput,
        issued_at: SystemTime,
    ) -> Result<IssuedToken, IssueError> {
        let (iat, lifetime) = checked_times(input, issued_at)?;
        let claims = AppOnlyClaims {
            aud: &input.audience,
            iss: input
                .issuer
                .replace(TENANT_ID_PLACEHOLDER, &input.tenant_id),
            iat,
            nbf: iat,
            exp: iat + lifetime,
            app_displayname: input.app_display_name.as_deref(),
            appid: &input.client_id,
            azp: &input.client_id,
            idtyp: "app",
            oid: &input.app_object_id,
            roles: &input.roles,
            sub: &input.app_object_id,
            tid: &input.tenant_id,
            ver: input.version.as_claim(),
        };
        Ok(IssuedToken {
            access_token: self.sign(&claims)?,
            expires_in: lifetime,
        })
    }
}

/// The signed-in person of a delegated token (and of an ID token).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DelegatedUserClaims {
    /// `oid` and `sub`: the user's object id.
    pub object_id: String,
    /// `upn`, `unique_name` and `preferred_username`.
    pub upn: String,
    /// `name`: the display name.
    pub name: String,
    /// `scp`: the delegated permissions granted, such as `Ti.ReadWrite`.
    pub scopes: Vec<String>,
}

/// The claims of a delegated (user) access token, named and shaped as Entra writes them.
#[derive(Serialize)]
struct DelegatedClaims<'a> {
    aud: &'a str,
    iss: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    app_displayname: Option<&'a str>,
    appid: &'a str,
    azp: &'a str,
    idtyp: &'static str,
    name: &'a str,
    oid: &'a str,
    preferred_username: &'a str,
    // For a delegated token Entra puts the user's app-role assignments in `roles`.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    roles: &'a [String],
    scp: String,
    sub: &'a str,
    tid: &'a str,
    unique_name: &'a str,
    upn: &'a str,
    ver: &'static str,
}

/// The claims of an OpenID Connect ID token (always v2-shaped, as MSAL reads them).
#[derive(Serialize)]
struct IdTokenClaims<'a> {
    aud: &'a str,
    iss: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    oid: &'a str,
    preferred_username: &'a str,
    sub: &'a str,
    tid: &'a str,
    ver: &'static str,
}

impl SigningKey {
    /// Signs a delegated access token: `input` describes the client app, the audience and the
    /// user's roles (`roles`); `user` the signed-in person and the granted scopes.
    pub fn issue_delegated_at(
        &self,
        input: &TokenClaimsInput,
        user: &DelegatedUserClaims,
        issued_at: SystemTime,
    ) -> Result<IssuedToken, IssueError> {
        let (iat, lifetime) = checked_times(input, issued_at)?;
        if user.object_id.trim().is_empty() || user.upn.trim().is_empty() {
            return Err(IssueError::EmptyField("user"));
        }
        let claims = DelegatedClaims {
            aud: &input.audience,
            iss: input
                .issuer
                .replace(TENANT_ID_PLACEHOLDER, &input.tenant_id),
            iat,
            nbf: iat,
            exp: iat + lifetime,
            app_displayname: input.app_display_name.as_deref(),
            appid: &input.client_id,
            azp: &input.client_id,
            idtyp: "user",
            name: &user.name,
            oid: &user.object_id,
            preferred_username: &user.upn,
            roles: &input.roles,
            scp: user.scopes.join(" "),
            sub: &user.object_id,
            tid: &input.tenant_id,
            unique_name: &user.upn,
            upn: &user.upn,
            ver: input.version.as_claim(),
        };
        Ok(IssuedToken {
            access_token: self.sign(&claims)?,
            expires_in: lifetime,
        })
    }

    /// Signs an OpenID Connect ID token for `client_id` about `user`, valid as long as `input`
    /// says; `nonce` is echoed when the authorization request sent one.
    pub fn issue_id_token_at(
        &self,
        input: &TokenClaimsInput,
        user: &DelegatedUserClaims,
        nonce: Option<&str>,
        issued_at: SystemTime,
    ) -> Result<String, IssueError> {
        let (iat, lifetime) = checked_times(input, issued_at)?;
        let claims = IdTokenClaims {
            aud: &input.client_id,
            iss: input
                .issuer
                .replace(TENANT_ID_PLACEHOLDER, &input.tenant_id),
            iat,
            nbf: iat,
            exp: iat + lifetime,
            name: &user.name,
            nonce,
            oid: &user.object_id,
            preferred_username: &user.upn,
            sub: &user.object_id,
            tid: &input.tenant_id,
            ver: "2.0",
        };
        self.sign(&claims)
    }

    fn sign(&self, claims: &impl Serialize) -> Result<String, IssueError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding_key).map_err(IssueError::Signing)
    }
}

/// Checks the fields every token needs and returns its `iat` and lifetime in seconds.
fn checked_times(
    input: &TokenClaimsInput,
    issued_at: SystemTime,
) -> Result<(u64, u64), IssueError> {
    for (name, value) in [
        ("tenant_id", &input.tenant_id),
        ("client_id", &input.client_id),
        ("app_object_id", &input.app_object_id),
        ("audience", &input.audience),
        ("issuer", &input.issuer),
    ] {
        if value.trim().is_empty() {
            return Err(IssueError::EmptyField(name));
        }
    }
    let lifetime = input.lifetime.as_secs();
    if lifetime == 0 {
        return Err(IssueError::ZeroLifetime);
    }
    let iat = issued_at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| IssueError::ClockBeforeEpoch)?
        .as_secs();
    Ok((iat, lifetime))
}

/// RFC 7638 thumbprint of an RSA public key given by its base64url `n` and `e`: SHA-256 over the
/// required members in lexicographic order with no whitespace, then base64url without padding.
pub fn rsa_jwk_thumbprint(modulus_b64: &str, exponent_b64: &str) -> String {
    // Field order is the serialisation order, and serde_json writes no whitespace: exactly the
    // canonical form RFC 7638 §3.3 asks for.
    #[derive(Serialize)]
    struct RequiredRsaMembers<'a> {
        e: &'a str,
        kty: &'static str,
        n: &'a str,
    }
    let canonical = serde_json::to_string(&RequiredRsaMembers {
        e: exponent_b64,
        kty: "RSA",
        n: modulus_b64,
    })
    .expect("three strings serialise");
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_the_rfc_7638_example() {
        let modulus = concat!(
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B",
            "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F",
            "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4",
            "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        );
        assert_eq!(
            rsa_jwk_thumbprint(modulus, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn token_version_claims() {
        assert_eq!(TokenVersion::V1.as_claim(), "1.0");
        assert_eq!(TokenVersion::V2.as_claim(), "2.0");
    }
}
