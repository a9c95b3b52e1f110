//! Property tests over bearer-token parsing and validation: arbitrary text, tokens shaped like
//! JWTs with arbitrary parts, and real tokens garbled (a character changed, cut short, parts
//! swapped or re-signed under another header) are all refused, never accepted and never a panic.
//! (These stand in for `cargo fuzz` targets, which need a nightly toolchain; see docs/security.md.)

use std::sync::OnceLock;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use iocd_auth::{
    SigningKey, TokenClaimsInput, TokenValidator, TokenVersion, TrustedIssuer, ValidatorConfig,
};
use proptest::prelude::*;
use serde_json::{json, Value};

const AUDIENCE: &str = "https://api.securitycenter.microsoft.com";
const ISSUER_TEMPLATE: &str = "https://iocd.test/{tenantid}/v2.0";
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().expect("key generation"))
}

fn validator() -> &'static TokenValidator {
    static VALIDATOR: OnceLock<TokenValidator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        TokenValidator::new(ValidatorConfig {
            trusted_issuers: vec![TrustedIssuer::new(ISSUER_TEMPLATE, key().jwk_set())],
            accepted_audiences: vec![AUDIENCE.to_owned()],
            ..ValidatorConfig::default()
        })
    })
}

/// A real token the validator accepts, and the time it is valid at.
fn valid_token() -> &'static (String, SystemTime) {
    static TOKEN: OnceLock<(String, SystemTime)> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let issued = key()
            .issue(&TokenClaimsInput {
                tenant_id: "6f1c2b4e-0000-4000-8000-00000000000a".to_owned(),
                client_id: "0b7c5d2a-1111-4111-8111-000000000001".to_owned(),
                app_object_id: "9a8b7c6d-2222-4222-8222-000000000002".to_owned(),
                roles: vec!["Ti.ReadWrite.All".to_owned()],
                audience: AUDIENCE.to_owned(),
                issuer: ISSUER_TEMPLATE.to_owned(),
                version: TokenVersion::V2,
                ..TokenClaimsInput::default()
            })
            .expect("issued");
        let now = iocd_domain::time::system_now();
        validator()
            .validate_at(&issued.access_token, now)
            .expect("the unmodified token is valid");
        (issued.access_token, now)
    })
}

fn refused(token: &str) -> Result<(), TestCaseError> {
    let (_, now) = valid_token();
    let outcome = validator().validate_at(token, *now);
    prop_assert!(outcome.is_err(), "accepted {:?}: {:?}", token, outcome);
    if let Err(error) = outcome {
        // The refusal can be put in a header as it is.
        let header = error.www_authenticate();
        prop_assert!(
            header
                .bytes()
                .all(|b| b == b'\t' || (0x20..0x7f).contains(&b)),
            "{:?}",
            header
        );
    }
    Ok(())
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(BASE64URL), 0..120)
            .prop_map(|b| String::from_utf8(b).unwrap()),
        prop::collection::vec(any::<u8>(), 0..120).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        "[ -~]{0,30}",
    ]
}

fn json_segment() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,20}".prop_map(Value::String),
        prop::sample::select(vec![
            "none", "RS256", "HS256", "ES256", "PS256", "RS512", "JWT", AUDIENCE,
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    let value = leaf.prop_recursive(2, 12, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(Value::Array)
    });
    prop::collection::btree_map(
        prop::sample::select(vec![
            "alg", "typ", "kid", "jku", "x5u", "crit", "aud", "iss", "tid", "exp", "nbf", "iat",
            "appid", "azp", "oid", "roles", "scp", "ver",
        ]),
        value,
        0..8,
    )
    .prop_map(|m| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&m).unwrap()))
}

/// One change to a valid token.
#[derive(Debug, Clone)]
enum Garble {
    Replace(usize, u8),
    Truncate(usize),
    Insert(usize, char),
    SwapParts(usize, usize),
    ReplacePart(usize, String),
}

fn garble() -> impl Strategy<Value = Garble> {
    prop_oneof![
        (any::<usize>(), prop::sample::select(BASE64URL)).prop_map(|(i, c)| Garble::Replace(i, c)),
        any::<usize>().prop_map(Garble::Truncate),
        (any::<usize>(), any::<char>()).prop_map(|(i, c)| Garble::Insert(i, c)),
        (0usize..3, 0usize..3).prop_map(|(a, b)| Garble::SwapParts(a, b)),
        (0usize..3, prop_oneof![segment(), json_segment()])
            .prop_map(|(i, s)| Garble::ReplacePart(i, s)),
    ]
}

fn apply(token: &str, garble: &Garble) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    match garble {
        Garble::Replace(i, c) => {
            let i = i % chars.len();
            chars[i] = char::from(*c);
            chars.into_iter().collect()
        }
        Garble::Truncate(i) => chars[..i % chars.len()].iter().collect(),
        Garble::Insert(i, c) => {
            chars.insert(i % chars.len(), *c);
            chars.into_iter().collect()
        }
        Garble::SwapParts(a, b) => {
            let mut parts: Vec<&str> = token.split('.').collect();
            if *a < parts.len() && *b < parts.len() {
                parts.swap(*a, *b);
            }
            parts.join(".")
        }
        Garble::ReplacePart(i, s) => {
            let mut parts: Vec<&str> = token.split('.').collect();
            if *i < parts.len() {
                parts[*i] = s;
            }
            parts.join(".")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_is_refused(token in any::<String>()) {
        refused(&token)?;
    }

    #[test]
    fn arbitrary_jwt_shaped_tokens_are_refused(
        header in prop_oneof![json_segment(), segment()],
        claims in prop_oneof![json_segment(), segment()],
        signature in segment(),
        extra in prop::option::of(segment()),
    ) {
        let mut token = format!("{header}.{claims}.{signature}");
        if let Some(extra) = extra {
            token = format!("{token}.{extra}");
        }
        refused(&token)?;
    }

    #[test]
    fn garbled_valid_tokens_are_refused(changes in prop::collection::vec(garble(), 1..4)) {
        let (valid, _) = valid_token();
        let mut token = valid.clone();
        for change in &changes {
            if token.is_empty() {
                break;
            }
            token = apply(&token, change);
        }
        if &token != valid {
            refused(&token)?;
        }
    }
}
