//! Validating bearer tokens: iocd's own and those of external issuers such as a real Entra tenant.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::jwks::JwksCache;
use crate::signing::TENANT_ID_PLACEHOLDER;

/// Clock skew tolerated on `exp` and `nbf` unless configured otherwise (Entra's libraries use 5
/// minutes; one minute is plenty between machines that run NTP).
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// Upper bound on the configured leeway: a larger one would keep expired tokens alive for long.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// Entra access tokens are a few kilobytes; anything far larger is not a token and is refused
/// before any decoding work is spent on it.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Longest stretch of a token's own text quoted back in an error message.
const MAX_QUOTED_CHARS: usize = 100;

/// Signature algorithms accepted. Asymmetric only: `none` would mean no signature, and any HS*
/// would let whoever knows the (public) verification key sign tokens.
const ACCEPTED_ALGORITHMS: [(&str, Algorithm); 8] = [
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
];

/// An issuer whose tokens are accepted, with the public keys that may sign them.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    /// The exact `iss` value, or a template with `{tenantid}` standing for the token's `tid`,
    /// like Entra's multi-tenant `https://login.microsoftonline.com/{tenantid}/v2.0`.
    pub issuer: String,
    pub keys: JwkSet,
}

impl TrustedIssuer {
    pub fn new(issuer: impl Into<String>, keys: JwkSet) -> Self {
        TrustedIssuer {
            issuer: issuer.into(),
            keys,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// `aud` values accepted, compared exactly. With none, every token is refused.
    pub accepted_audiences: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`, capped at [`MAX_LEEWAY_SECS`].
    pub leeway_secs: u64,
}

impl Default for ValidatorConfig {
    fn default() -> Self {
        ValidatorConfig {
            trusted_issuers: Vec::new(),
            accepted_audiences: Vec::new(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
        }
    }
}

/// Who a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedToken {
    /// `iss`, exactly as the token states it (one of the trusted issuers).
    pub issuer: String,
    /// `tid`.
    pub tenant_id: String,
    /// The calling app's client id: `appid` (v1 tokens) or `azp` (v2 tokens).
    pub app_id: String,
    /// `oid`: the app's service principal, or the user in a delegated token.
    pub object_id: String,
    /// `roles`: application permissions; empty when the claim is absent.
    pub roles: Vec<String>,
    /// `scp` split on spaces: delegated permissions; empty when the claim is absent.
    pub scopes: Vec<String>,
    /// `app_displayname`, when the token carries it.
    pub display_name: Option<String>,
    /// The signed-in user's name of a delegated token: `upn`, else `unique_name`, else
    /// `preferred_username` (Entra writes some of these depending on the account and version).
    pub upn: Option<String>,
    /// `name`: the signed-in user's display name.
    pub user_display_name: Option<String>,
}

/// Why a token was refused. The `Display` text says what is wrong in words meant for the client
/// (it quotes the token's own values only after making them safe for an HTTP header), so the
/// server can put it in the 401 body and in [`TokenError::www_authenticate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the bearer token is malformed: {0}")]
    Malformed(String),
    #[error("{0}")]
    UnsupportedAlgorithm(String),
    #[error("{}", describe_unknown_key(.kid.as_deref()))]
    UnknownKey { kid: Option<String> },
    #[error("the token's signature does not verify with the issuer's key")]
    BadSignature,
    #[error("the token expired at {expired_at} (Unix time), {} s ago; the allowed clock skew is {leeway_secs} s", .now - .expired_at)]
    Expired {
        expired_at: i64,
        now: i64,
        leeway_secs: u64,
    },
    #[error("the token is not valid before {not_before} (Unix time), {} s from now; the allowed clock skew is {leeway_secs} s", .not_before - .now)]
    NotYetValid {
        not_before: i64,
        now: i64,
        leeway_secs: u64,
    },
    #[error("the token's audience {} is not accepted here; accepted: {}", quote_list(.found), quote_list(.accepted))]
    WrongAudience {
        found: Vec<String>,
        accepted: Vec<String>,
    },
    #[error("{0}")]
    WrongIssuer(String),
    #[error("the token has no `{0}` claim")]
    MissingClaim(&'static str),
    /// The issuer's keys could not be fetched, so the token could not be checked at all. The
    /// server may prefer a 503 over a 401 for this one.
    #[error("the signing keys of the token's issuer are unavailable: {0}")]
    KeysUnavailable(String),
}

impl TokenError {
    /// The `WWW-Authenticate` value for a 401 (RFC 6750 §3):
    /// `Bearer error="invalid_token", error_description="…"`.
    pub fn www_authenticate(&self) -> String {
        format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            header_safe(&self.to_string())
        )
    }
}

fn describe_unknown_key(kid: Option<&str>) -> String {
    match kid {
        None => "the token header has no `kid`, so no signing key can be chosen".to_owned(),
        Some(kid) => format!(
            "no trusted signing key has kid {} (the issuer may have rotated its keys)",
            quote(kid)
        ),
    }
}

/// Makes text safe inside a quoted HTTP header parameter: printable ASCII only, no `"` or `\`.
fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

/// Quotes a value taken from the token, shortened and stripped of anything that could break a
/// header or a log line, since the token's author chose it.
fn quote(untrusted: &str) -> String {
    let mut shown: String = untrusted.chars().take(MAX_QUOTED_CHARS).collect();
    if shown.len() < untrusted.len() {
        shown.push_str("...");
    }
    format!("'{}'", header_safe(&shown).replace('\'', "?"))
}

fn quote_list(values: &[String]) -> String {
    if values.is_empty() {
        return "(none)".to_owned();
    }
    values
        .iter()
        .map(|value| quote(value))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    /// RFC 7515 §4.1.11: a token naming critical extensions we do not implement must be refused.
    crit: Option<serde_json::Value>,
}

/// `aud` may be one string or an array of them (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum AudienceClaim {
    One(String),
    Many(Vec<String>),
}

impl AudienceClaim {
    fn into_vec(self) -> Vec<String> {
        match self {
            AudienceClaim::One(audience) => vec![audience],
            AudienceClaim::Many(audiences) => audiences,
        }
    }
}

/// The claims read from a token; all optional here so a missing one gets its own error.
#[derive(Deserialize)]
struct RawClaims {
    iss: Option<String>,
    aud: Option<AudienceClaim>,
    // NumericDate may legally carry a fraction (RFC 7519 §2), so it is read as a JSON number.
    exp: Option<serde_json::Number>,
    nbf: Option<serde_json::Number>,
    tid: Option<String>,
    appid: Option<String>,
    azp: Option<String>,
    oid: Option<String>,
    roles: Option<Vec<String>>,
    scp: Option<String>,
    app_displayname: Option<String>,
    upn: Option<String>,
    unique_name: Option<String>,
    preferred_username: Option<String>,
    name: Option<String>,
}

fn numeric_date(claim: &'static str, value: &serde_json::Number) -> Result<i64, TokenError> {
    if let Some(whole) = value.as_i64() {
        return Ok(whole);
    }
    match value.as_f64() {
        Some(seconds) if seconds.is_finite() => Ok(seconds.floor() as i64),
        _ => Err(TokenError::Malformed(format!(
            "`{claim}` is not a time in seconds"
        ))),
    }
}

/// Where a token's keys come from.
#[derive(Debug)]
enum KeySource {
    Static(Arc<JwkSet>),
    Remote(Arc<JwksCache>),
}

#[derive(Debug)]
struct IssuerEntry {
    template: String,
    keys: KeySource,
}

impl IssuerEntry {
    /// The `iss` this issuer would write for tenant `tenant_id`.
    fn expected_issuer(&self, tenant_id: &str) -> String {
        self.template.replace(TENANT_ID_PLACEHOLDER, tenant_id)
    }

    /// For a `{tenantid}` template, the tenant an `iss` value names, when it fits the template.
    fn tenant_named_by(&self, issuer: &str) -> Option<String> {
        let (prefix, suffix) = self.template.split_once(TENANT_ID_PLACEHOLDER)?;
        let middle = issuer.strip_prefix(prefix)?.strip_suffix(suffix)?;
        Some(middle.to_owned())
    }
}

/// What is learnt from a token before its signature is checked: enough to pick the key.
struct Unverified {
    algorithm: Algorithm,
    algorithm_name: String,
    kid: Option<String>,
    issuer_index: usize,
    expected_issuer: String,
}

/// Checks bearer tokens against trusted issuers, their keys, accepted audiences and the clock.
/// Share one behind an `Arc`: it is `Send + Sync` and validation takes `&self`.
#[derive(Debug)]
pub struct TokenValidator {
    issuers: Vec<IssuerEntry>,
    accepted_audiences: Vec<String>,
    leeway_secs: u64,
    verified: VerifiedTokens,
}

impl TokenValidator {
    pub fn new(config: ValidatorConfig) -> Self {
        TokenValidator {
            issuers: config
                .trusted_issuers
                .into_iter()
                .map(|trusted| IssuerEntry {
                    template: trusted.issuer,
                    keys: KeySource::Static(Arc::new(trusted.keys)),
                })
                .collect(),
            accepted_audiences: config.accepted_audiences,
            leeway_secs: config.leeway_secs.min(MAX_LEEWAY_SECS),
            verified: VerifiedTokens::default(),
        }
    }

    /// Also trusts `issuer` (which may contain `{tenantid}`), with keys fetched and refreshed by
    /// `cache`. Such issuers are best checked with [`Self::validate_refreshing`].
    pub fn with_remote_issuer(mut self, issuer: impl Into<String>, cache: Arc<JwksCache>) -> Self {
        self.issuers.push(IssuerEntry {
            template: issuer.into(),
            keys: KeySource::Remote(cache),
        });
        self
    }

    /// Validates against the keys at hand, without network access: remote issuers use the keys
    /// their cache last fetched.
    pub fn validate(&self, token: &str) -> Result<ValidatedToken, TokenError> {
        self.validate_at(token, iocd_domain::time::system_now())
    }

    /// As [`Self::validate`], judging `exp` and `nbf` against `now` instead of the clock.
    pub fn validate_at(&self, token: &str, now: SystemTime) -> Result<ValidatedToken, TokenError> {
        if let Some(known) = self.verified.lookup(token) {
            let keys = self.current_keys(known.issuer_index);
            if let Some(answer) = self.remembered_answer(known, keys, unix_seconds(now)) {
                return answer.map(Arc::unwrap_or_clone);
            }
        }
        let unverified = self.inspect(token)?;
        let keys = match &self.issuers[unverified.issuer_index].keys {
            KeySource::Static(keys) => Arc::clone(keys),
            KeySource::Remote(cache) => cache.snapshot().ok_or_else(|| {
                TokenError::KeysUnavailable(format!("not fetched yet from {}", cache.url()))
            })?,
        };
        self.verify(token, &unverified, &keys, unix_seconds(now))
            .map(Arc::unwrap_or_clone)
    }

    /// Validates, first fetching a remote issuer's keys when they are missing or due for a
    /// refresh, and fetching again (rate-limited by the cache) when the token names a `kid` the
    /// keys lack, so that an upstream key rotation is picked up.
    ///
    /// The answer is shared with the table of verified tokens: a request that presents a token
    /// verified before copies nothing out of it.
    pub async fn validate_refreshing(
        &self,
        token: &str,
    ) -> Result<Arc<ValidatedToken>, TokenError> {
        if let Some(known) = self.verified.lookup(token) {
            // A remote issuer's keys are asked for as a full check would (which refreshes them
            // when due), so a key rotation is seen as soon as without remembering.
            let keys = match &self.issuers[known.issuer_index].keys {
                KeySource::Static(keys) => Some(Arc::clone(keys)),
                KeySource::Remote(cache) => cache.keys().await.ok(),
            };
            let now = unix_seconds(iocd_domain::time::system_now());
            if let Some(answer) = self.remembered_answer(known, keys, now) {
                return answer;
            }
        }
        let unverified = self.inspect(token)?;
        let cache = match &self.issuers[unverified.issuer_index].keys {
            KeySource::Static(keys) => {
                return self.verify(
                    token,
                    &unverified,
                    keys,
                    unix_seconds(iocd_domain::time::system_now()),
                )
            }
            KeySource::Remote(cache) => cache,
        };
        let keys = cache
            .keys()
            .await
            .map_err(|err| TokenError::KeysUnavailable(err.to_string()))?;
        let first_try = self.verify(
            token,
            &unverified,
            &keys,
            unix_seconds(iocd_domain::time::system_now()),
        );
        if !matches!(first_try, Err(TokenError::UnknownKey { kid: Some(_) })) {
            return first_try;
        }
        // A failed or rate-limited refresh leaves the unknown-key error as the answer; another
        // request may still have refreshed meanwhile, which the snapshot comparison catches.
        let _ = cache.refresh_for_unknown_kid().await;
        match cache.snapshot() {
            Some(refreshed) if !Arc::ptr_eq(&refreshed, &keys) => self.verify(
                token,
                &unverified,
                &refreshed,
                unix_seconds(iocd_domain::time::system_now()),
            ),
            _ => first_try,
        }
    }

    /// Reads the header and the claims that pick a key, trusting nothing yet: the choices made
    /// here only narrow which key must then verify the signature.
    fn inspect(&self, token: &str) -> Result<Unverified, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed(format!(
                "it is longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let segments: Vec<&str> = token.split('.').collect();
        match segments.len() {
            3 => {}
            5 => {
                return Err(TokenError::Malformed(
                    "encrypted tokens (JWE) are not supported".to_owned(),
                ))
            }
            _ => {
                return Err(TokenError::Malformed(
                    "a JWT has three dot-separated parts".to_owned(),
                ))
            }
        }
        let header: RawHeader = decode_segment("header", segments[0])?;
        let algorithm_name = header
            .alg
            .ok_or_else(|| TokenError::Malformed("the header has no `alg`".to_owned()))?;
        let algorithm = accepted_algorithm(&algorithm_name)?;
        if header.crit.is_some() {
            return Err(TokenError::Malformed(
                "critical header extensions (`crit`) are not supported".to_owned(),
            ));
        }
        let claims: RawClaims = decode_segment("payload", segments[1])?;
        let issuer = claims.iss.ok_or(TokenError::MissingClaim("iss"))?;
        let tenant_id = claims.tid.ok_or(TokenError::MissingClaim("tid"))?;
        let issuer_index = self.find_issuer(&issuer, &tenant_id)?;
        Ok(Unverified {
            algorithm,
            algorithm_name,
            kid: header.kid,
            issuer_index,
            expected_issuer: issuer,
        })
    }

    fn find_issuer(&self, issuer: &str, tenant_id: &str) -> Result<usize, TokenError> {
        if let Some(index) = self
            .issuers
            .iter()
            .position(|entry| entry.expected_issuer(tenant_id) == issuer)
        {
            return Ok(index);
        }
        // Say why, most usefully: a multi-tenant issuer that fits except for the tenant means
        // `iss` and `tid` disagree, which a genuine issuer never writes.
        let named_tenant = self
            .issuers
            .iter()
            .find_map(|entry| entry.tenant_named_by(issuer));
        let message = match named_tenant {
            Some(named) => format!(
                "the token's issuer {} names tenant {} but its `tid` is {}",
                quote(issuer),
                quote(&named),
                quote(tenant_id)
            ),
            None => format!(
                "the token's issuer {} is not trusted here; trusted: {}",
                quote(issuer),
                quote_list(
                    &self
                        .issuers
                        .iter()
                        .map(|entry| entry.template.clone())
                        .collect::<Vec<_>>()
                )
            ),
        };
        Err(TokenError::WrongIssuer(message))
    }

    /// Checks the signature with the issuer's key named by `kid`, then the claims.
    fn verify(
        &self,
        token: &str,
        unverified: &Unverified,
        keys: &Arc<JwkSet>,
        now: i64,
    ) -> Result<Arc<ValidatedToken>, TokenError> {
        let kid = unverified
            .kid
            .as_deref()
            .ok_or(TokenError::UnknownKey { kid: None })?;
        let jwk = find_signing_key(keys, kid).ok_or_else(|| TokenError::UnknownKey {
            kid: Some(kid.to_owned()),
        })?;
        if let Some(key_algorithm) = jwk.common.key_algorithm {
            // A key published for one algorithm must not verify another (RFC 7517 §4.4).
            if key_algorithm.to_string() != unverified.algorithm_name {
                return Err(TokenError::UnsupportedAlgorithm(format!(
                    "the token is signed with {} but key {} is for {key_algorithm}",
                    quote(&unverified.algorithm_name),
                    quote(kid)
                )));
            }
        }
        let decoding_key = DecodingKey::from_jwk(jwk).map_err(|_| TokenError::UnknownKey {
            kid: Some(kid.to_owned()),
        })?;

        // jsonwebtoken checks the algorithm against the key type and verifies the signature;
        // the time, audience and issuer checks follow below with messages of our own.
        let mut signature_only = Validation::new(unverified.algorithm);
        signature_only.validate_exp = false;
        signature_only.validate_nbf = false;
        signature_only.validate_aud = false;
        signature_only.required_spec_claims.clear();
        let verified = jsonwebtoken::decode::<RawClaims>(token, &decoding_key, &signature_only)
            .map_err(|err| match err.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm => TokenError::UnsupportedAlgorithm(format!(
                    "the token is signed with {} but key {} is of another type",
                    quote(&unverified.algorithm_name),
                    quote(kid)
                )),
                ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                    TokenError::Malformed(err.to_string())
                }
                _ => TokenError::BadSignature,
            })?;
        let (validated, window) =
            self.check_claims(verified.claims, &unverified.expected_issuer, now)?;
        let validated = Arc::new(validated);
        self.verified.remember(
            token,
            RememberedToken {
                validated: Arc::clone(&validated),
                window,
                issuer_index: unverified.issuer_index,
                keys: Arc::clone(keys),
                verified_at: Instant::now(),
            },
        );
        Ok(validated)
    }

    /// The issuer's keys at hand, without fetching.
    fn current_keys(&self, issuer_index: usize) -> Option<Arc<JwkSet>> {
        match &self.issuers[issuer_index].keys {
            KeySource::Static(keys) => Some(Arc::clone(keys)),
            KeySource::Remote(cache) => cache.snapshot(),
        }
    }

    /// The answer for a remembered token, if its verification still stands: its issuer's key
    /// set (`keys`, as the issuer has it now) is the one it was verified with. Then only the
    /// clock needs checking again, since the signature, issuer and audience of the same bytes
    /// cannot have changed. Clients send one token for its whole life (about an hour), so this
    /// spares nearly every request an RSA signature check.
    fn remembered_answer(
        &self,
        known: RememberedToken,
        keys: Option<Arc<JwkSet>>,
        now: i64,
    ) -> Option<Result<Arc<ValidatedToken>, TokenError>> {
        keys.is_some_and(|keys| Arc::ptr_eq(&keys, &known.keys))
            .then(|| self.check_time(known.window, now).map(|()| known.validated))
    }

    fn check_time(&self, window: ValidityWindow, now: i64) -> Result<(), TokenError> {
        let leeway = self.leeway_secs as i64;
        if now >= window.expires_at.saturating_add(leeway) {
            return Err(TokenError::Expired {
                expired_at: window.expires_at,
                now,
                leeway_secs: self.leeway_secs,
            });
        }
        if let Some(not_before) = window.not_before {
            if now.saturating_add(leeway) < not_before {
                return Err(TokenError::NotYetValid {
                    not_before,
                    now,
                    leeway_secs: self.leeway_secs,
                });
            }
        }
        Ok(())
    }

    fn check_claims(
        &self,
        claims: RawClaims,
        expected_issuer: &str,
        now: i64,
    ) -> Result<(ValidatedToken, ValidityWindow), TokenError> {
        let expires_at = numeric_date(
            "exp",
            claims.exp.as_ref().ok_or(TokenError::MissingClaim("exp"))?,
        )?;
        let not_before = claims
            .nbf
            .as_ref()
            .map(|nbf| numeric_date("nbf", nbf))
            .transpose()?;
        let window = ValidityWindow {
            expires_at,
            not_before,
        };
        self.check_time(window, now)?;
        let audiences = claims
            .aud
            .ok_or(TokenError::MissingClaim("aud"))?
            .into_vec();
        if !audiences
            .iter()
            .any(|audience| self.accepted_audiences.contains(audience))
        {
            return Err(TokenError::WrongAudience {
                found: audiences,
                accepted: self.accepted_audiences.clone(),
            });
        }
        // The issuer was matched on these same bytes before the signature check; checking the
        // verified copy again keeps this function correct on its own.
        if claims.iss.as_deref() != Some(expected_issuer) {
            return Err(TokenError::WrongIssuer(
                "the token's issuer changed between reads".to_owned(),
            ));
        }
        let tenant_id = claims.tid.ok_or(TokenError::MissingClaim("tid"))?;
        let object_id = claims.oid.ok_or(TokenError::MissingClaim("oid"))?;
        let app_id = match (claims.appid, claims.azp) {
            (Some(appid), Some(azp)) if appid != azp => {
                return Err(TokenError::Malformed(format!(
                    "`appid` {} and `azp` {} name different apps",
                    quote(&appid),
                    quote(&azp)
                )))
            }
            (Some(app_id), _) | (None, Some(app_id)) => app_id,
            (None, None) => return Err(TokenError::MissingClaim("appid")),
        };
        let validated = ValidatedToken {
            issuer: expected_issuer.to_owned(),
            tenant_id,
            app_id,
            object_id,
            roles: claims.roles.unwrap_or_default(),
            scopes: claims
                .scp
                .as_deref()
                .unwrap_or_default()
                .split(' ')
                .filter(|scope| !scope.is_empty())
                .map(str::to_owned)
                .collect(),
            display_name: claims.app_displayname,
            upn: claims
                .upn
                .or(claims.unique_name)
                .or(claims.preferred_username),
            user_display_name: claims.name,
        };
        Ok((validated, window))
    }
}

/// When a token is valid: `exp` and, if present, `nbf` (Unix seconds).
#[derive(Debug, Clone, Copy)]
struct ValidityWindow {
    expires_at: i64,
    not_before: Option<i64>,
}

/// How long a verified token is answered from memory before it is verified again in full. A
/// changed key set already ends it sooner; this bounds the table's staleness otherwise.
const REVERIFY_AFTER: Duration = Duration::from_secs(300);
/// Tokens remembered at most. Each is a few kilobytes; when full, the table starts over.
const MAX_REMEMBERED_TOKENS: usize = 4096;

/// Tokens that passed every check, by their exact text.
#[derive(Debug, Default)]
struct VerifiedTokens {
    /// hashbrown's hasher rather than std's SipHash: the key is the whole token, a kilobyte or
    /// more, hashed on every request. Only verified tokens are inserted, so the keys are not
    /// the sender's to choose freely.
    entries: Mutex<hashbrown::HashMap<Box<str>, RememberedToken>>,
}

#[derive(Debug, Clone)]
struct RememberedToken {
    validated: Arc<ValidatedToken>,
    window: ValidityWindow,
    issuer_index: usize,
    /// The key set that verified it.
    keys: Arc<JwkSet>,
    verified_at: Instant,
}

impl VerifiedTokens {
    fn lookup(&self, token: &str) -> Option<RememberedToken> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(token)?;
        (entry.verified_at.elapsed() < REVERIFY_AFTER).then(|| entry.clone())
    }

    fn remember(&self, token: &str, remembered: RememberedToken) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_REMEMBERED_TOKENS && !entries.contains_key(token) {
            entries.retain(|_, entry| entry.verified_at.elapsed() < REVERIFY_AFTER);
            if entries.len() >= MAX_REMEMBERED_TOKENS {
                entries.clear();
            }
        }
        entries.insert(token.into(), remembered);
    }
}

fn accepted_algorithm(name: &str) -> Result<Algorithm, TokenError> {
    if let Some((_, algorithm)) = ACCEPTED_ALGORITHMS
        .iter()
        .find(|(accepted, _)| *accepted == name)
    {
        return Ok(*algorithm);
    }
    let accepted = ACCEPTED_ALGORITHMS
        .iter()
        .map(|(accepted, _)| *accepted)
        .collect::<Vec<_>>()
        .join(", ");
    let reason = if name.eq_ignore_ascii_case("none") {
        "unsigned tokens (alg 'none') are not accepted".to_owned()
    } else if name.starts_with("HS") {
        format!("HMAC-signed tokens (alg {}) are not accepted", quote(name))
    } else {
        format!("the signature algorithm {} is not accepted", quote(name))
    };
    Err(TokenError::UnsupportedAlgorithm(format!(
        "{reason}; accepted: {accepted}"
    )))
}

/// The key with this `kid` that may sign: keys published for encryption only are skipped.
fn find_signing_key<'a>(keys: &'a JwkSet, kid: &str) -> Option<&'a Jwk> {
    keys.keys.iter().find(|jwk| {
        jwk.common.key_id.as_deref() == Some(kid)
            && !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption))
    })
}

fn decode_segment<T: serde::de::DeserializeOwned>(
    part: &str,
    segment: &str,
) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed(format!("the {part} is not base64url")))?;
    serde_json::from_slice(&bytes).map_err(|err| {
        TokenError::Malformed(format!("the {part} is not a valid JSON object: {err}"))
    })
}

fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_made_safe() {
        let error = TokenError::UnknownKey {
            kid: Some("evil\"\r\nSet-Cookie: x=\\y".to_owned()),
        };
        let header = error.www_authenticate();
        assert!(header.starts_with("Bearer error=\"invalid_token\", error_description=\""));
        let description = header
            .strip_prefix("Bearer error=\"invalid_token\", error_description=\"")
            .and_then(|rest| rest.strip_suffix('"'))
            .expect("one quoted description");
        assert!(!description.contains('"'));
        assert!(!description.contains('\\'));
        assert!(description.chars().all(|c| (' '..='~').contains(&c)));
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let error = TokenError::UnknownKey {
            kid: Some("k".repeat(5000)),
        };
        assert!(error.to_string().len() < 300);
    }

    #[test]
    fn issuer_templates_name_the_tenant() {
        let entry = IssuerEntry {
            template: "https://login.microsoftonline.com/{tenantid}/v2.0".to_owned(),
            keys: KeySource::Static(Arc::new(JwkSet { keys: vec![] })),
        };
        assert_eq!(
            entry.expected_issuer("t1"),
            "https://login.microsoftonline.com/t1/v2.0"
        );
        assert_eq!(
            entry.tenant_named_by("https://login.microsoftonline.com/t2/v2.0"),
            Some("t2".to_owned())
        );
        assert_eq!(entry.tenant_named_by("https://sts.windows.net/t2/"), None);
    }

    #[test]
    fn fractional_times_are_accepted() {
        let value: serde_json::Number = serde_json::from_str("1700000000.75").unwrap();
        assert_eq!(numeric_date("exp", &value).unwrap(), 1_700_000_000);
    }
}
