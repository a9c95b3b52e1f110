//! Certificate credentials: an app's public certificate, and the client assertion (RFC 7523
//! §2.2, `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`) a client
//! signs with the certificate's private key instead of sending a secret.
//!
//! The assertion is checked the way Entra ID checks it: the certificate is found by the
//! thumbprint in the header (`x5t`, SHA-1, as MSAL Python and azure-identity send with RS256;
//! `x5t#S256`, SHA-256, as newer MSALs send with PS256), the signature is verified with its key,
//! and then `iss` = `sub` = the client id, `aud` = the token endpoint, `exp`/`nbf` within the
//! leeway and a `jti`. Whether the `jti` was seen before is the caller's question (it needs
//! storage shared by every replica).

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

/// The `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Entra refuses RSA keys below 2048 bits for certificate credentials.
const MIN_RSA_BITS: usize = 2048;

/// Signature algorithms accepted on an assertion: RSA only, as Entra.
const ACCEPTED_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Why a certificate cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("no certificate found: give a PEM file with a '-----BEGIN CERTIFICATE-----' block")]
    NoCertificate,
    #[error("the certificate could not be read: {0}")]
    Malformed(String),
    #[error("the certificate's key is not RSA ({0}); Entra and iocd accept RSA keys only")]
    NotRsa(String),
    #[error("the certificate's RSA key has {0} bits; at least {MIN_RSA_BITS} are required")]
    KeyTooSmall(usize),
}

/// An app's public certificate, as registered: what an assertion's header names it by and the
/// key its signature is checked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    der: Vec<u8>,
    thumbprint_sha1: [u8; 20],
    thumbprint_sha256: [u8; 32],
    modulus: Vec<u8>,
    exponent: Vec<u8>,
    /// Unix seconds.
    not_before: i64,
    /// Unix seconds.
    not_after: i64,
    subject: String,
}

impl ClientCertificate {
    /// The first `CERTIFICATE` block of a PEM text (other blocks, such as a private key kept
    /// in the same file, are skipped and never read).
    pub fn from_pem(text: &str) -> Result<Self, CertificateError> {
        for block in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
            let block = block.map_err(|e| CertificateError::Malformed(e.to_string()))?;
            if block.label == "CERTIFICATE" {
                return Self::from_der(&block.contents);
            }
        }
        Err(CertificateError::NoCertificate)
    }

    /// A DER-encoded X.509 certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertificateError> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| CertificateError::Malformed(e.to_string()))?;
        let (modulus, exponent) = match cert.public_key().parsed() {
            Ok(PublicKey::RSA(rsa)) => (
                strip_leading_zeros(rsa.modulus),
                strip_leading_zeros(rsa.exponent),
            ),
            Ok(other) => return Err(CertificateError::NotRsa(key_kind(&other).to_string())),
            Err(e) => return Err(CertificateError::Malformed(e.to_string())),
        };
        let bits = modulus.len() * 8;
        if bits < MIN_RSA_BITS {
            return Err(CertificateError::KeyTooSmall(bits));
        }
        Ok(ClientCertificate {
            der: der.to_vec(),
            thumbprint_sha1: Sha1::digest(der).into(),
            thumbprint_sha256: Sha256::digest(der).into(),
            modulus,
            exponent,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            subject: cert.subject().to_string(),
        })
    }

    /// The certificate as PEM, for storage.
    pub fn to_pem(&self) -> String {
        let encoded = STANDARD.encode(&self.der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }

    /// The SHA-1 thumbprint in upper-case hex, as the Azure portal and Entra's errors show it.
    pub fn thumbprint(&self) -> String {
        hex_upper(&self.thumbprint_sha1)
    }

    /// The SHA-256 thumbprint in upper-case hex.
    pub fn thumbprint_sha256(&self) -> String {
        hex_upper(&self.thumbprint_sha256)
    }

    /// Unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }
}

fn key_kind(key: &PublicKey) -> &'static str {
    match key {
        PublicKey::RSA(_) => "RSA",
        PublicKey::EC(_) => "EC",
        PublicKey::DSA(_) => "DSA",
        PublicKey::GostR3410(_) | PublicKey::GostR3410_2012(_) => "GOST",
        PublicKey::Unknown(_) => "unknown",
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A thumbprint as a header carries it: base64url (with or without padding, as MSAL Python
/// pads it) or, as some clients put it in `kid`, hex.
fn decode_thumbprint(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.len() == 40 || text.len() == 64 {
        if let Some(bytes) = decode_hex(text) {
            return Some(bytes);
        }
    }
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .or_else(|_| URL_SAFE.decode(text))
        .or_else(|_| STANDARD.decode(text))
        .ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Why an assertion is refused. Each maps to one of Entra's AADSTS errors (see iocd-identity).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// Not a JWT, or a claim of the wrong type.
    #[error("the client assertion is not a valid JWT: {0}")]
    Malformed(String),
    #[error("the client assertion is signed with {0}; use RS256 or PS256 with the certificate's RSA key")]
    UnsupportedAlgorithm(String),
    /// No registered certificate has the thumbprint in the header (`None`: none was sent).
    #[error("the key was not found")]
    UnknownKey { thumbprint: Option<String> },
    #[error("the signature does not verify with the certificate's key")]
    BadSignature { thumbprint: String },
    #[error("the certificate with thumbprint {thumbprint} expired")]
    CertificateExpired { thumbprint: String },
    #[error("`{claim}` is '{found}' but must be the client id")]
    WrongClient { claim: &'static str, found: String },
    #[error("`aud` is {0}; it must be the token endpoint")]
    WrongAudience(String),
    #[error("the client assertion expired")]
    Expired,
    #[error("the client assertion is not valid yet (`nbf` is in the future)")]
    NotYetValid,
    #[error("the client assertion has no `{0}` claim")]
    MissingClaim(&'static str),
}

/// What a valid assertion tells the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedAssertion {
    /// The `jti`, which must not be seen again before `expires_at`.
    pub jti: String,
    /// Unix seconds: the assertion's `exp`.
    pub expires_at: i64,
    /// SHA-1 thumbprint (upper-case hex) of the certificate that signed it.
    pub thumbprint: String,
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<serde_json::Value>,
    exp: Option<f64>,
    nbf: Option<f64>,
    jti: Option<String>,
}

/// The `iss` of an assertion, read without checking anything: the client id a request that
/// sends no `client_id` field claims to be (Entra allows leaving it out).
pub fn unverified_assertion_issuer(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_string)
}

/// Checks a client assertion against the app's certificates.
///
/// `accepts_audience` says whether one `aud` value names this token endpoint; `now` is Unix
/// seconds.
pub fn validate_assertion(
    assertion: &str,
    client_id: &str,
    certificates: &[ClientCertificate],
    accepts_audience: &dyn Fn(&str) -> bool,
    leeway_secs: u64,
    now: i64,
) -> Result<ValidatedAssertion, AssertionError> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|e| AssertionError::Malformed(e.to_string()))?;
    if !ACCEPTED_ALGORITHMS.contains(&header.alg) {
        return Err(AssertionError::UnsupportedAlgorithm(format!(
            "{:?}",
            header.alg
        )));
    }
    let presented = header
        .x5t_s256
        .as_deref()
        .or(header.x5t.as_deref())
        .or(header.kid.as_deref());
    let wanted = presented.and_then(decode_thumbprint);
    let certificate = wanted.as_deref().and_then(|wanted| {
        certificates.iter().find(|c| {
            c.thumbprint_sha1.as_slice() == wanted || c.thumbprint_sha256.as_slice() == wanted
        })
    });
    let Some(certificate) = certificate else {
        return Err(AssertionError::UnknownKey {
            thumbprint: wanted
                .as_deref()
                .map(hex_upper)
                .or(presented.map(str::to_string)),
        });
    };
    let leeway = leeway_secs as i64;
    if certificate.not_after + leeway < now {
        return Err(AssertionError::CertificateExpired {
            thumbprint: certificate.thumbprint(),
        });
    }
    let key = DecodingKey::from_rsa_raw_components(&certificate.modulus, &certificate.exponent);
    let mut validation = Validation::new(header.alg);
    // Every claim is checked below, against the time given rather than the system clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = match jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return Err(match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => AssertionError::BadSignature {
                    thumbprint: certificate.thumbprint(),
                },
                _ => AssertionError::Malformed(e.to_string()),
            })
        }
    };
    for (claim, value) in [("iss", &claims.iss), ("sub", &claims.sub)] {
        match value {
            None => return Err(AssertionError::MissingClaim(claim)),
            Some(found) if found != client_id => {
                return Err(AssertionError::WrongClient {
                    claim,
                    found: found.clone(),
                })
            }
            Some(_) => {}
        }
    }
    let audiences: Vec<&str> = match &claims.aud {
        None => return Err(AssertionError::MissingClaim("aud")),
        Some(serde_json::Value::String(one)) => vec![one.as_str()],
        Some(serde_json::Value::Array(many)) => many.iter().filter_map(|a| a.as_str()).collect(),
        Some(other) => return Err(AssertionError::WrongAudience(other.to_string())),
    };
    if !audiences.iter().any(|aud| accepts_audience(aud)) {
        return Err(AssertionError::WrongAudience(format!(
            "'{}'",
            audiences.join("', '")
        )));
    }
    let exp = claims.exp.ok_or(AssertionError::MissingClaim("exp"))? as i64;
    if exp + leeway < now {
        return Err(AssertionError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf as i64 > now + leeway) {
        return Err(AssertionError::NotYetValid);
    }
    let jti = claims
        .jti
        .filter(|jti| !jti.is_empty())
        .ok_or(AssertionError::MissingClaim("jti"))?;
    Ok(ValidatedAssertion {
        jti,
        expires_at: exp + leeway,
        thumbprint: certificate.thumbprint(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_decode_in_every_form_clients_send() {
        let bytes: Vec<u8> = (0u8..20).collect();
        assert_eq!(
            decode_thumbprint(&URL_SAFE.encode(&bytes)),
            Some(bytes.clone())
        );
        assert_eq!(
            decode_thumbprint(&URL_SAFE_NO_PAD.encode(&bytes)),
            Some(bytes.clone())
        );
        assert_eq!(decode_thumbprint(&hex_upper(&bytes)), Some(bytes.clone()));
        assert_eq!(
            decode_thumbprint(&hex_upper(&bytes).to_lowercase()),
            Some(bytes)
        );
    }

    #[test]
    fn the_issuer_is_read_without_verifying() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"c1","sub":"c1"}"#);
        assert_eq!(
            unverified_assertion_issuer(&format!("e30.{payload}.sig")).as_deref(),
            Some("c1")
        );
        assert_eq!(unverified_assertion_issuer("garbage"), None);
    }

    #[test]
    fn text_without_a_certificate_is_refused() {
        assert_eq!(
            ClientCertificate::from_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            ),
            Err(CertificateError::NoCertificate)
        );
        assert_eq!(
            ClientCertificate::from_pem(""),
            Err(CertificateError::NoCertificate)
        );
    }
}
