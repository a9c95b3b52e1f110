//! Issuing and validating access tokens, and every way a token must be refused.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use iocd_auth::{
    SigningKey, TokenClaimsInput, TokenError, TokenValidator, TokenVersion, TrustedIssuer,
    ValidatorConfig,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};

const TENANT: &str = "6f1c2b4e-0000-4000-8000-00000000000a";
const OTHER_TENANT: &str = "6f1c2b4e-0000-4000-8000-00000000000b";
const CLIENT_ID: &str = "0b7c5d2a-1111-4111-8111-000000000001";
const APP_OBJECT_ID: &str = "9a8b7c6d-2222-4222-8222-000000000002";
const AUDIENCE: &str = "https://api.securitycenter.microsoft.com";
const ISSUER_TEMPLATE: &str = "https://iocd.test/{tenantid}/v2.0";

// RSA key generation is slow in a debug build: each test binary makes two keys and shares them.
fn signing_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().expect("key generation"))
}

fn attacker_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().expect("key generation"))
}

fn issuer_for(tenant: &str) -> String {
    ISSUER_TEMPLATE.replace("{tenantid}", tenant)
}

fn input() -> TokenClaimsInput {
    TokenClaimsInput {
        tenant_id: TENANT.to_owned(),
        client_id: CLIENT_ID.to_owned(),
        app_object_id: APP_OBJECT_ID.to_owned(),
        app_display_name: Some("SOAR connector".to_owned()),
        roles: vec!["Ti.ReadWrite.All".to_owned(), "Ti.Read.All".to_owned()],
        audience: AUDIENCE.to_owned(),
        issuer: ISSUER_TEMPLATE.to_owned(),
        version: TokenVersion::V2,
        ..TokenClaimsInput::default()
    }
}

fn validator_with_leeway(leeway_secs: u64) -> TokenValidator {
    TokenValidator::new(ValidatorConfig {
        trusted_issuers: vec![TrustedIssuer::new(ISSUER_TEMPLATE, signing_key().jwk_set())],
        accepted_audiences: vec![
            AUDIENCE.to_owned(),
            "https://api.security.microsoft.com".to_owned(),
        ],
        leeway_secs,
    })
}

fn validator() -> TokenValidator {
    validator_with_leeway(ValidatorConfig::default().leeway_secs)
}

fn unix_now() -> i64 {
    iocd_domain::time::system_now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims like the ones `issue` writes, for tests that need to change or drop one.
fn claims() -> Value {
    let now = unix_now();
    json!({
        "aud": AUDIENCE,
        "iss": issuer_for(TENANT),
        "iat": now,
        "nbf": now,
        "exp": now + 3599,
        "tid": TENANT,
        "appid": CLIENT_ID,
        "azp": CLIENT_ID,
        "oid": APP_OBJECT_ID,
        "sub": APP_OBJECT_ID,
        "roles": ["Ti.ReadWrite.All"],
        "ver": "2.0",
        "idtyp": "app",
    })
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

/// Signs arbitrary claims with `key`'s private key, under any algorithm and `kid`.
fn sign_with(key: &SigningKey, algorithm: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let pem = key.to_pkcs8_pem().unwrap();
    let encoding_key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &encoding_key).unwrap()
}

fn sign(claims: &Value) -> String {
    sign_with(
        signing_key(),
        Algorithm::RS256,
        Some(signing_key().kid()),
        claims,
    )
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn public_key() -> RsaPublicKey {
    let pem = signing_key().to_pkcs8_pem().unwrap();
    RsaPrivateKey::from_pkcs8_pem(&pem).unwrap().to_public_key()
}

#[test]
fn issued_v2_token_validates_and_carries_entra_claims() {
    let issued = signing_key().issue(&input()).unwrap();
    assert_eq!(issued.expires_in, 3599);

    let validated = validator().validate(&issued.access_token).unwrap();
    assert_eq!(validated.tenant_id, TENANT);
    assert_eq!(validated.app_id, CLIENT_ID);
    assert_eq!(validated.object_id, APP_OBJECT_ID);
    assert_eq!(validated.roles, vec!["Ti.ReadWrite.All", "Ti.Read.All"]);
    assert!(validated.scopes.is_empty());
    assert_eq!(validated.display_name.as_deref(), Some("SOAR connector"));

    let header = decode_part(&issued.access_token, 0);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], signing_key().kid());

    let claims = decode_part(&issued.access_token, 1);
    assert_eq!(claims["aud"], AUDIENCE);
    // The `{tenantid}` in the issuer template is filled in from the tenant id.
    assert_eq!(claims["iss"], issuer_for(TENANT));
    assert_eq!(claims["tid"], TENANT);
    assert_eq!(claims["appid"], CLIENT_ID);
    assert_eq!(claims["azp"], CLIENT_ID);
    assert_eq!(claims["oid"], APP_OBJECT_ID);
    assert_eq!(claims["sub"], APP_OBJECT_ID);
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(claims["app_displayname"], "SOAR connector");
    assert_eq!(claims["roles"], json!(["Ti.ReadWrite.All", "Ti.Read.All"]));
    let iat = claims["iat"].as_i64().unwrap();
    assert!((iat - unix_now()).abs() <= 5);
    assert_eq!(claims["nbf"].as_i64().unwrap(), iat);
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 3599);
}

#[test]
fn issued_v1_token_without_roles_or_name_leaves_those_claims_out() {
    let issued = signing_key()
        .issue(&TokenClaimsInput {
            version: TokenVersion::V1,
            roles: vec![],
            app_display_name: None,
            lifetime: Duration::from_secs(600),
            ..input()
        })
        .unwrap();
    assert_eq!(issued.expires_in, 600);

    let claims = decode_part(&issued.access_token, 1);
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["appid"], CLIENT_ID);
    assert_eq!(claims["azp"], CLIENT_ID);
    assert!(claims.get("roles").is_none());
    assert!(claims.get("app_displayname").is_none());
    assert_eq!(
        claims["exp"].as_i64().unwrap(),
        claims["iat"].as_i64().unwrap() + 600
    );

    let validated = validator().validate(&issued.access_token).unwrap();
    assert!(validated.roles.is_empty());
    assert_eq!(validated.display_name, None);
}

#[test]
fn issuing_refuses_empty_identifiers_and_zero_lifetime() {
    let missing_tenant = TokenClaimsInput {
        tenant_id: String::new(),
        ..input()
    };
    assert!(matches!(
        signing_key().issue(&missing_tenant),
        Err(iocd_auth::IssueError::EmptyField("tenant_id"))
    ));
    let zero_lifetime = TokenClaimsInput {
        lifetime: Duration::ZERO,
        ..input()
    };
    assert!(matches!(
        signing_key().issue(&zero_lifetime),
        Err(iocd_auth::IssueError::ZeroLifetime)
    ));
}

#[test]
fn delegated_scopes_are_split_and_azp_alone_names_the_app() {
    let claims = with(
        without(without(claims(), "appid"), "roles"),
        "scp",
        json!("Ti.ReadWrite  Ti.Read.All"),
    );
    let validated = validator().validate(&sign(&claims)).unwrap();
    assert_eq!(validated.app_id, CLIENT_ID);
    assert_eq!(validated.scopes, vec!["Ti.ReadWrite", "Ti.Read.All"]);
    assert!(validated.roles.is_empty());
}

#[test]
fn audience_may_be_an_array_holding_an_accepted_value() {
    let claims = with(
        claims(),
        "aud",
        json!([
            "https://other.example",
            "https://api.security.microsoft.com"
        ]),
    );
    assert!(validator().validate(&sign(&claims)).is_ok());
}

#[test]
fn other_accepted_rsa_algorithms_verify() {
    for algorithm in [Algorithm::PS256, Algorithm::RS512, Algorithm::PS512] {
        // The JWK published by SigningKey says alg RS256, so use a copy of it without `alg`.
        let mut keys = signing_key().jwk_set();
        keys.keys[0].common.key_algorithm = None;
        let validator = TokenValidator::new(ValidatorConfig {
            trusted_issuers: vec![TrustedIssuer::new(ISSUER_TEMPLATE, keys)],
            accepted_audiences: vec![AUDIENCE.to_owned()],
            ..ValidatorConfig::default()
        });
        let token = sign_with(
            signing_key(),
            algorithm,
            Some(signing_key().kid()),
            &claims(),
        );
        assert!(validator.validate(&token).is_ok(), "{algorithm:?}");
    }
}

#[test]
fn a_key_published_for_rs256_does_not_verify_ps256() {
    let token = sign_with(
        signing_key(),
        Algorithm::PS256,
        Some(signing_key().kid()),
        &claims(),
    );
    let error = validator().validate(&token).unwrap_err();
    assert!(
        matches!(error, TokenError::UnsupportedAlgorithm(_)),
        "{error:?}"
    );
}

#[test]
fn forged_signature_from_another_key_with_the_same_kid_is_refused() {
    let forged = sign_with(
        attacker_key(),
        Algorithm::RS256,
        Some(signing_key().kid()),
        &claims(),
    );
    assert_eq!(
        validator().validate(&forged).unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn changed_claims_break_the_signature() {
    let issued = signing_key()
        .issue(&TokenClaimsInput {
            roles: vec!["Ti.Read.All".to_owned()],
            ..input()
        })
        .unwrap();
    let parts: Vec<&str> = issued.access_token.split('.').collect();
    let mut claims = decode_part(&issued.access_token, 1);
    claims["roles"] = json!(["Ti.ReadWrite.All"]);
    let tampered = format!("{}.{}.{}", parts[0], b64_json(&claims), parts[2]);
    assert_eq!(
        validator().validate(&tampered).unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn unsigned_alg_none_tokens_are_refused() {
    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "none", "typ": "JWT", "kid": signing_key().kid()}),
        json!({"alg": "None", "kid": signing_key().kid()}),
    ] {
        for signature in ["", "AAAA"] {
            let token = format!("{}.{}.{signature}", b64_json(&header), b64_json(&claims()));
            let error = validator().validate(&token).unwrap_err();
            assert!(
                matches!(&error, TokenError::UnsupportedAlgorithm(message) if message.contains("none")),
                "{error:?}"
            );
        }
    }
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    // The classic confusion attack: HMAC keyed with the verification key, which is public.
    let public = public_key();
    let spki_pem = public.to_public_key_pem(LineEnding::LF).unwrap();
    let pkcs1_pem = public.to_pkcs1_pem(LineEnding::LF).unwrap();
    let spki_der = public.to_public_key_der().unwrap();
    let pkcs1_der = public.to_pkcs1_der().unwrap();
    let secrets: [&[u8]; 4] = [
        spki_pem.as_bytes(),
        pkcs1_pem.as_bytes(),
        spki_der.as_bytes(),
        pkcs1_der.as_bytes(),
    ];
    for secret in secrets {
        for algorithm in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(algorithm);
            header.kid = Some(signing_key().kid().to_owned());
            let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret))
                .unwrap();
            let error = validator().validate(&token).unwrap_err();
            assert!(
                matches!(&error, TokenError::UnsupportedAlgorithm(message) if message.contains("HMAC")),
                "{error:?}"
            );
        }
    }
}

#[test]
fn expired_tokens_are_refused_beyond_the_leeway_only() {
    let issued = signing_key().issue(&input()).unwrap();
    let expires_at = decode_part(&issued.access_token, 1)["exp"]
        .as_i64()
        .unwrap();
    let at = |unix: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(unix as u64);

    // Default leeway is 60 s.
    assert!(validator()
        .validate_at(&issued.access_token, at(expires_at - 1))
        .is_ok());
    assert!(validator()
        .validate_at(&issued.access_token, at(expires_at + 30))
        .is_ok());
    assert!(validator()
        .validate_at(&issued.access_token, at(expires_at + 59))
        .is_ok());
    let error = validator()
        .validate_at(&issued.access_token, at(expires_at + 61))
        .unwrap_err();
    assert_eq!(
        error,
        TokenError::Expired {
            expired_at: expires_at,
            now: expires_at + 61,
            leeway_secs: 60
        }
    );
    assert!(error.to_string().contains("61 s ago"), "{error}");

    // Without leeway the token is dead the second `exp` arrives.
    assert!(matches!(
        validator_with_leeway(0).validate_at(&issued.access_token, at(expires_at)),
        Err(TokenError::Expired { .. })
    ));
}

#[test]
fn a_token_issued_long_ago_is_expired_now() {
    let issued = signing_key()
        .issue_at(
            &input(),
            iocd_domain::time::system_now() - Duration::from_secs(2 * 3600),
        )
        .unwrap();
    let error = validator().validate(&issued.access_token).unwrap_err();
    assert!(matches!(error, TokenError::Expired { .. }), "{error:?}");
    assert!(error
        .www_authenticate()
        .starts_with("Bearer error=\"invalid_token\", error_description=\"the token expired at "));
}

#[test]
fn not_yet_valid_tokens_are_refused_beyond_the_leeway_only() {
    let future = |secs| {
        signing_key()
            .issue_at(
                &input(),
                iocd_domain::time::system_now() + Duration::from_secs(secs),
            )
            .unwrap()
            .access_token
    };
    assert!(validator().validate(&future(30)).is_ok());
    let error = validator().validate(&future(600)).unwrap_err();
    assert!(matches!(error, TokenError::NotYetValid { .. }), "{error:?}");
    assert!(matches!(
        validator_with_leeway(0).validate(&future(30)),
        Err(TokenError::NotYetValid { .. })
    ));
}

#[test]
fn leeway_is_capped() {
    let issued = signing_key()
        .issue_at(
            &input(),
            iocd_domain::time::system_now() - Duration::from_secs(3599 + 400),
        )
        .unwrap();
    // Asked for an hour of leeway, the validator allows five minutes: 400 s late is too late.
    assert!(matches!(
        validator_with_leeway(3600).validate(&issued.access_token),
        Err(TokenError::Expired {
            leeway_secs: 300,
            ..
        })
    ));
}

#[test]
fn wrong_audience_is_refused() {
    let issued = signing_key()
        .issue(&TokenClaimsInput {
            audience: "https://graph.microsoft.com".to_owned(),
            ..input()
        })
        .unwrap();
    let error = validator().validate(&issued.access_token).unwrap_err();
    assert!(
        matches!(&error, TokenError::WrongAudience { found, .. } if found == &["https://graph.microsoft.com"]),
        "{error:?}"
    );
    assert!(error.to_string().contains("graph.microsoft.com"));
}

#[test]
fn wrong_issuer_is_refused() {
    let issued = signing_key()
        .issue(&TokenClaimsInput {
            issuer: "https://evil.test/{tenantid}/v2.0".to_owned(),
            ..input()
        })
        .unwrap();
    let error = validator().validate(&issued.access_token).unwrap_err();
    assert!(
        matches!(&error, TokenError::WrongIssuer(message) if message.contains("not trusted")),
        "{error:?}"
    );
}

#[test]
fn issuer_naming_another_tenant_than_tid_is_refused() {
    let mismatched = with(claims(), "iss", json!(issuer_for(OTHER_TENANT)));
    let error = validator().validate(&sign(&mismatched)).unwrap_err();
    assert!(
        matches!(&error, TokenError::WrongIssuer(message) if message.contains(OTHER_TENANT) && message.contains(TENANT)),
        "{error:?}"
    );
    // Tokens of any tenant are fine when `iss` and `tid` agree.
    let other_tenant = with(
        with(claims(), "iss", json!(issuer_for(OTHER_TENANT))),
        "tid",
        json!(OTHER_TENANT),
    );
    assert_eq!(
        validator()
            .validate(&sign(&other_tenant))
            .unwrap()
            .tenant_id,
        OTHER_TENANT
    );
}

#[test]
fn fixed_issuer_without_placeholder_accepts_only_its_tenant() {
    let validator = TokenValidator::new(ValidatorConfig {
        trusted_issuers: vec![TrustedIssuer::new(
            issuer_for(TENANT),
            signing_key().jwk_set(),
        )],
        accepted_audiences: vec![AUDIENCE.to_owned()],
        ..ValidatorConfig::default()
    });
    assert!(validator.validate(&sign(&claims())).is_ok());
    let other_tenant = with(
        with(claims(), "iss", json!(issuer_for(OTHER_TENANT))),
        "tid",
        json!(OTHER_TENANT),
    );
    assert!(matches!(
        validator.validate(&sign(&other_tenant)),
        Err(TokenError::WrongIssuer(_))
    ));
}

#[test]
fn a_key_trusted_for_one_issuer_does_not_vouch_for_another() {
    let validator = TokenValidator::new(ValidatorConfig {
        trusted_issuers: vec![
            TrustedIssuer::new(ISSUER_TEMPLATE, signing_key().jwk_set()),
            TrustedIssuer::new("https://partner.test/{tenantid}/", attacker_key().jwk_set()),
        ],
        accepted_audiences: vec![AUDIENCE.to_owned()],
        ..ValidatorConfig::default()
    });
    // The partner's key signs a token claiming to come from iocd's own issuer.
    let token = sign_with(
        attacker_key(),
        Algorithm::RS256,
        Some(attacker_key().kid()),
        &claims(),
    );
    assert_eq!(
        validator.validate(&token).unwrap_err(),
        TokenError::UnknownKey {
            kid: Some(attacker_key().kid().to_owned())
        }
    );
    // Its own tokens still pass.
    let partner = with(
        claims(),
        "iss",
        json!(format!("https://partner.test/{TENANT}/")),
    );
    let token = sign_with(
        attacker_key(),
        Algorithm::RS256,
        Some(attacker_key().kid()),
        &partner,
    );
    assert!(validator.validate(&token).is_ok());
}

#[test]
fn unknown_or_missing_kid_is_refused() {
    let token = sign_with(
        signing_key(),
        Algorithm::RS256,
        Some("rotated-away"),
        &claims(),
    );
    let error = validator().validate(&token).unwrap_err();
    assert_eq!(
        error,
        TokenError::UnknownKey {
            kid: Some("rotated-away".to_owned())
        }
    );
    assert!(error.to_string().contains("rotated-away"));

    let token = sign_with(signing_key(), Algorithm::RS256, None, &claims());
    assert_eq!(
        validator().validate(&token).unwrap_err(),
        TokenError::UnknownKey { kid: None }
    );
}

#[test]
fn missing_required_claims_are_named() {
    for (claim, reported) in [
        ("tid", "tid"),
        ("iss", "iss"),
        ("exp", "exp"),
        ("aud", "aud"),
        ("oid", "oid"),
    ] {
        let error = validator()
            .validate(&sign(&without(claims(), claim)))
            .unwrap_err();
        assert_eq!(error, TokenError::MissingClaim(reported), "{claim}");
        assert!(error.to_string().contains(reported));
    }
    let no_app = without(without(claims(), "appid"), "azp");
    assert_eq!(
        validator().validate(&sign(&no_app)).unwrap_err(),
        TokenError::MissingClaim("appid")
    );
}

#[test]
fn appid_and_azp_must_agree() {
    let disagreeing = with(claims(), "azp", json!("someone-else"));
    assert!(matches!(
        validator().validate(&sign(&disagreeing)),
        Err(TokenError::Malformed(_))
    ));
}

#[test]
fn wrongly_typed_claims_are_malformed() {
    let numeric_tid = with(claims(), "tid", json!(42));
    assert!(matches!(
        validator().validate(&sign(&numeric_tid)),
        Err(TokenError::Malformed(_))
    ));
}

#[test]
fn malformed_tokens_are_refused() {
    let valid = signing_key().issue(&input()).unwrap().access_token;
    let parts: Vec<&str> = valid.split('.').collect();
    let header = parts[0];
    let payload = parts[1];
    let huge = format!("{header}.{}.{}", "A".repeat(20_000), parts[2]);
    let cases = [
        String::new(),
        "not-a-token".to_owned(),
        "a.b".to_owned(),
        "a.b.c".to_owned(),
        format!("{header}.{payload}"),
        format!("{header}.{payload}.sig.extra"),
        format!("{header}.{payload}.a.b"),
        format!(
            "{}.{payload}.{}",
            b64_json(&json!("just a string")),
            parts[2]
        ),
        format!(
            "{}.{payload}.{}",
            URL_SAFE_NO_PAD.encode("{not json"),
            parts[2]
        ),
        format!(
            "{}.{payload}.{}",
            b64_json(&json!({"typ": "JWT"})),
            parts[2]
        ),
        format!("{header}.{}.{}", URL_SAFE_NO_PAD.encode("[1,2]"), parts[2]),
        format!("{header}.{payload}.!!!not-base64!!!"),
        format!(" {valid}"),
        huge,
    ];
    for token in cases {
        let error = validator().validate(&token).unwrap_err();
        assert!(
            matches!(error, TokenError::Malformed(_)),
            "{token:.60}: {error:?}"
        );
    }
}

#[test]
fn critical_header_extensions_are_refused() {
    let header = json!({"alg": "RS256", "kid": signing_key().kid(), "crit": ["exp"], "exp": 1});
    let token = format!("{}.{}.AAAA", b64_json(&header), b64_json(&claims()));
    assert!(matches!(
        validator().validate(&token),
        Err(TokenError::Malformed(message)) if message.contains("crit")
    ));
}

#[test]
fn pem_round_trip_keeps_the_key_and_its_kid() {
    let pem = signing_key().to_pkcs8_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let reloaded = SigningKey::from_pkcs8_pem(&pem).unwrap();
    assert_eq!(reloaded.kid(), signing_key().kid());
    assert_eq!(reloaded.jwks(), signing_key().jwks());
    // A token signed by the reloaded key verifies against the original's published keys.
    let issued = reloaded.issue(&input()).unwrap();
    assert!(validator().validate(&issued.access_token).is_ok());
    assert_ne!(attacker_key().kid(), signing_key().kid());
    assert!(!format!("{:?}", signing_key()).contains("PRIVATE"));
}

#[test]
fn bad_or_small_keys_are_refused_on_load() {
    assert!(SigningKey::from_pkcs8_pem("not a pem").is_err());
    let small = RsaPrivateKey::new(&mut rand_core::OsRng, 1024).unwrap();
    let small_pem = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&small, LineEnding::LF).unwrap();
    assert!(matches!(
        SigningKey::from_pkcs8_pem(&small_pem),
        Err(iocd_auth::KeyError::TooSmall { bits: 1024 })
    ));
}

#[test]
fn jwks_publishes_only_the_public_key_with_its_thumbprint_kid() {
    let key = signing_key();
    let jwks = key.jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let jwk = keys[0].as_object().unwrap();
    let mut fields: Vec<&str> = jwk.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["alg", "e", "kid", "kty", "n", "use"]);
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["alg"], "RS256");
    assert_eq!(jwk["e"], "AQAB");
    assert_eq!(jwk["kid"], key.kid());
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(jwk["n"].as_str().unwrap())
            .unwrap()
            .len(),
        256
    );
    assert_eq!(
        key.kid(),
        iocd_auth::rsa_jwk_thumbprint(jwk["n"].as_str().unwrap(), "AQAB")
    );
    assert_eq!(key.kid().len(), 43);
}

/// A token that verified is answered from memory afterwards, but the clock still applies to
/// it: the same validator refuses it once it expires, with the same error a fresh check gives.
#[test]
fn a_remembered_token_still_expires() {
    let issued = signing_key().issue(&input()).unwrap();
    let expires_at = decode_part(&issued.access_token, 1)["exp"]
        .as_i64()
        .unwrap();
    let at = |unix: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(unix as u64);
    let shared = validator();
    let first = shared
        .validate_at(&issued.access_token, at(expires_at - 10))
        .unwrap();
    let again = shared
        .validate_at(&issued.access_token, at(expires_at + 30))
        .unwrap();
    assert_eq!(first, again);
    let remembered = shared
        .validate_at(&issued.access_token, at(expires_at + 61))
        .unwrap_err();
    let fresh = validator()
        .validate_at(&issued.access_token, at(expires_at + 61))
        .unwrap_err();
    assert_eq!(remembered, fresh);
    assert!(matches!(remembered, TokenError::Expired { .. }));
    // Nor does it vouch for a token that is not yet valid when first seen.
    let early = shared
        .validate_at(&issued.access_token, at(expires_at - 7200))
        .unwrap_err();
    assert!(matches!(early, TokenError::NotYetValid { .. }), "{early:?}");
}

/// Remembering a good token must not let a look-alike through: a token whose signature or
/// claims differ by one character is checked in full.
#[test]
fn a_remembered_token_does_not_vouch_for_altered_copies() {
    let shared = validator();
    let good = sign(&claims());
    shared.validate(&good).unwrap();
    let mut forged_signature = good.clone();
    let last = forged_signature.pop().unwrap();
    forged_signature.push(if last == 'A' { 'B' } else { 'A' });
    assert!(shared.validate(&forged_signature).is_err());
    let other_key = sign_with(
        attacker_key(),
        Algorithm::RS256,
        Some(signing_key().kid()),
        &claims(),
    );
    assert_eq!(shared.validate(&other_key), Err(TokenError::BadSignature));
    assert!(shared.validate(&good).is_ok());
}
