//! Certificate credentials: registering an app's certificates, and authenticating a client at
//! the token endpoint by a client assertion signed with one of them (the rules Entra applies;
//! the signature and claim checks themselves are [`iocd_auth::validate_assertion`]'s).

use iocd_auth::{AssertionError, ClientCertificate};
use iocd_domain::time::{self, Timestamp};
use iocd_store::{AppRegistration, CertificateAdded, IdentityStore, StoredAppCertificate};

use crate::grant::GrantError;
use crate::provider::IdentityProvider;

/// A certificate as registered on an app, as `iocd apps` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredCertificate {
    /// SHA-1, upper-case hex: what the Azure portal shows and `x5t` carries.
    pub thumbprint: String,
    /// SHA-256, upper-case hex: what `x5t#S256` carries.
    pub thumbprint_sha256: String,
    pub subject: String,
    /// When the certificate expires (the wire's timestamp format).
    pub not_after: String,
}

/// Why a certificate could not be added to an app.
#[derive(Debug, thiserror::Error)]
pub enum CertificateRegistrationError {
    #[error(transparent)]
    Certificate(#[from] iocd_auth::CertificateError),
    #[error("no app with client id '{client_id}' in tenant '{tenant_id}'")]
    NoSuchApp {
        tenant_id: String,
        client_id: String,
    },
    #[error("the app already has the certificate with thumbprint {0}")]
    AlreadyThere(String),
    #[error(transparent)]
    Store(#[from] iocd_store::StoreError),
}

/// Reads a certificate (the first `CERTIFICATE` block of a PEM text) for registration.
pub fn read_certificate(pem: &str) -> Result<ClientCertificate, iocd_auth::CertificateError> {
    ClientCertificate::from_pem(pem)
}

fn unix_to_timestamp(secs: i64) -> Timestamp {
    Timestamp::from_timestamp(secs, 0).unwrap_or(Timestamp::MAX_UTC)
}

/// Describes a certificate for `iocd apps`.
pub fn describe_certificate(certificate: &ClientCertificate) -> RegisteredCertificate {
    RegisteredCertificate {
        thumbprint: certificate.thumbprint(),
        thumbprint_sha256: certificate.thumbprint_sha256(),
        subject: certificate.subject().to_string(),
        not_after: time::format_wire(unix_to_timestamp(certificate.not_after())),
    }
}

/// Registers `certificate` on an app of `tenant_id`.
pub async fn add_app_certificate(
    store: &dyn IdentityStore,
    tenant_id: &str,
    client_id: &str,
    certificate: &ClientCertificate,
) -> Result<RegisteredCertificate, CertificateRegistrationError> {
    let stored = StoredAppCertificate {
        client_id: client_id.to_string(),
        thumbprint: certificate.thumbprint(),
        thumbprint_sha256: certificate.thumbprint_sha256(),
        certificate_pem: certificate.to_pem(),
        not_after: unix_to_timestamp(certificate.not_after()),
        created_at: time::now(),
    };
    match store.add_app_certificate(tenant_id, &stored).await? {
        CertificateAdded::Added => Ok(describe_certificate(certificate)),
        CertificateAdded::AlreadyThere => Err(CertificateRegistrationError::AlreadyThere(
            certificate.thumbprint(),
        )),
        CertificateAdded::NoSuchApp => Err(CertificateRegistrationError::NoSuchApp {
            tenant_id: tenant_id.to_string(),
            client_id: client_id.to_string(),
        }),
    }
}

/// The certificates registered on an app.
pub async fn app_certificates(
    store: &dyn IdentityStore,
    client_id: &str,
) -> Result<Vec<ClientCertificate>, iocd_store::StoreError> {
    let stored = store.app_certificates(client_id).await?;
    Ok(stored
        .iter()
        .filter_map(|row| match ClientCertificate::from_pem(&row.certificate_pem) {
            Ok(certificate) => Some(certificate),
            Err(e) => {
                tracing::error!(client_id, thumbprint = %row.thumbprint, error = %e, "a stored app certificate does not parse; it is ignored");
                None
            }
        })
        .collect())
}

/// Whether `aud` names this token endpoint: `/{tenant}/oauth2/v2.0/token` or
/// `/{tenant}/oauth2/token` on an Entra login host, on the host the client called, or under
/// iocd's issuer URL; `tenants` are the names the tenant goes by (its id, the name in the URL).
pub fn is_token_endpoint(
    aud: &str,
    tenants: &[&str],
    called_origin: &str,
    issuer_base: &str,
) -> bool {
    let Some((scheme, rest)) = aud.split_once("://") else {
        return false;
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let origin_matches = |base: &str| {
        base.split_once("://").is_some_and(|(s, a)| {
            s.eq_ignore_ascii_case(scheme)
                && a.trim_end_matches('/').eq_ignore_ascii_case(authority)
        })
    };
    let host_ok = (scheme.eq_ignore_ascii_case("https")
        && iocd_auth::entra::is_login_host(authority))
        || origin_matches(called_origin)
        || origin_matches(issuer_base);
    if !host_ok {
        return false;
    }
    let path = path.trim_end_matches('/');
    let Some((tenant, endpoint)) = path.split_once('/') else {
        return false;
    };
    let endpoint_ok = endpoint.eq_ignore_ascii_case("oauth2/v2.0/token")
        || endpoint.eq_ignore_ascii_case("oauth2/token");
    endpoint_ok && tenants.iter().any(|t| t.eq_ignore_ascii_case(tenant))
}

fn assertion_refusal(client_id: &str, error: AssertionError) -> GrantError {
    let text = error.to_string();
    match error {
        AssertionError::UnknownKey { thumbprint } => GrantError::new(
            "invalid_client",
            700027,
            format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{}', See the keys registered for app Id '{client_id}' with 'iocd apps list'; register one with 'iocd apps add-certificate'.]",
                thumbprint.unwrap_or_default()
            ),
        ),
        AssertionError::BadSignature { thumbprint } => GrantError::new(
            "invalid_client",
            700027,
            format!("Client assertion contains an invalid signature. [Reason - The signature does not verify with the key of the certificate with thumbprint '{thumbprint}'.]"),
        ),
        AssertionError::CertificateExpired { thumbprint } => GrantError::new(
            "invalid_client",
            700027,
            format!("Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '{thumbprint}']"),
        ),
        AssertionError::WrongClient { .. } => GrantError::new(
            "invalid_client",
            700021,
            format!("Client assertion application identifier doesn't match 'client_id' parameter: {text}."),
        ),
        AssertionError::WrongAudience(_) => GrantError::new(
            "invalid_client",
            700023,
            format!("Client assertion audience claim does not match Realm issuer: {text}."),
        ),
        AssertionError::Expired | AssertionError::NotYetValid => GrantError::new(
            "invalid_client",
            700024,
            format!("Client assertion is not within its valid time range: {text}."),
        ),
        AssertionError::Malformed(_)
        | AssertionError::UnsupportedAlgorithm(_)
        | AssertionError::MissingClaim(_) => GrantError::new(
            "invalid_client",
            50027,
            format!("JWT token is invalid or malformed: {text}."),
        ),
    }
}

impl IdentityProvider {
    /// Authenticates a client by its assertion: the app must exist in the tenant, the assertion
    /// must validate against one of its certificates, and its `jti` must be new.
    /// `tenants` are the names the tenant goes by (its id, the name in the URL called).
    pub(crate) async fn authenticate_assertion(
        &self,
        tenant_id: &str,
        tenants: &[&str],
        client_id: &str,
        assertion: &str,
        called_origin: &str,
    ) -> Result<AppRegistration, GrantError> {
        let storage = |e: iocd_store::StoreError| {
            tracing::error!(error = %e, "storage failure authenticating a client assertion");
            GrantError::temporarily_unavailable()
        };
        let Some(app) = self
            .store()
            .find_app(tenant_id, client_id)
            .await
            .map_err(storage)?
        else {
            return Err(crate::grant::unknown_app(client_id, tenant_id));
        };
        let certificates = app_certificates(self.store().as_ref(), client_id)
            .await
            .map_err(storage)?;
        let now = time::now();
        let accepts =
            |aud: &str| is_token_endpoint(aud, tenants, called_origin, self.issuer_base());
        let validated = iocd_auth::validate_assertion(
            assertion,
            client_id,
            &certificates,
            &accepts,
            self.leeway_secs(),
            now.timestamp(),
        )
        .map_err(|e| assertion_refusal(client_id, e))?;
        let fresh = self
            .store()
            .record_assertion_id(
                client_id,
                &validated.jti,
                unix_to_timestamp(validated.expires_at),
                now,
            )
            .await
            .map_err(storage)?;
        if !fresh {
            return Err(GrantError::new(
                "invalid_client",
                50013,
                format!("Assertion is invalid: the client assertion with jti '{}' was already used. Sign a new assertion, with a new jti, for every token request.", validated.jti),
            ));
        }
        tracing::debug!(client_id, thumbprint = %validated.thumbprint, "client authenticated by a certificate");
        Ok(app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_endpoint_is_recognised_on_every_host_it_is_reached_on() {
        let tenants = ["t1", "contoso.example"];
        let called = "https://localhost:8443";
        let issuer = "http://127.0.0.1:8080";
        for aud in [
            "https://login.microsoftonline.com/t1/oauth2/v2.0/token",
            "https://login.windows.net/T1/oauth2/token",
            "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/token/",
            "https://localhost:8443/t1/oauth2/v2.0/token",
            "http://127.0.0.1:8080/t1/oauth2/token",
        ] {
            assert!(is_token_endpoint(aud, &tenants, called, issuer), "{aud}");
        }
        for aud in [
            "https://login.microsoftonline.com/t2/oauth2/v2.0/token",
            "https://login.microsoftonline.com/t1/oauth2/v2.0/authorize",
            "https://evil.example/t1/oauth2/v2.0/token",
            "http://login.microsoftonline.com/t1/oauth2/v2.0/token",
            "https://localhost:9999/t1/oauth2/v2.0/token",
            "t1",
            "",
        ] {
            assert!(!is_token_endpoint(aud, &tenants, called, issuer), "{aud}");
        }
    }
}
