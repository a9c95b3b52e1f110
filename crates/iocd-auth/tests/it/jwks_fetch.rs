//! Fetching keys over HTTP from a real local server, and picking up an upstream key rotation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use iocd_auth::{
    fetch_jwks, JwksCache, JwksError, SigningKey, TokenClaimsInput, TokenError, TokenValidator,
    ValidatorConfig,
};
use serde_json::Value;

const ISSUER_TEMPLATE: &str = "https://login.test/{tenantid}/v2.0";
const AUDIENCE: &str = "https://api.security.microsoft.com";
const ONE_HOUR: Duration = Duration::from_secs(3600);

fn key_before_rotation() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().expect("key generation"))
}

fn key_after_rotation() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().expect("key generation"))
}

/// What the fake issuer serves at /keys, switchable during a test.
#[derive(Clone)]
enum Published {
    Jwks(Value),
    Failing,
    NotJson,
}

#[derive(Clone)]
struct FakeIssuer {
    published: Arc<Mutex<Published>>,
    requests: Arc<AtomicU64>,
    base_url: String,
}

impl FakeIssuer {
    fn publish(&self, published: Published) {
        *self.published.lock().unwrap() = published;
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    fn keys_url(&self) -> String {
        format!("{}/keys", self.base_url)
    }
}

async fn serve_keys(State(issuer): State<FakeIssuer>) -> Response {
    issuer.requests.fetch_add(1, Ordering::SeqCst);
    let published = issuer.published.lock().unwrap().clone();
    match published {
        Published::Jwks(jwks) => axum::Json(jwks).into_response(),
        Published::Failing => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Published::NotJson => "<html>sign in</html>".into_response(),
    }
}

async fn start_fake_issuer(initial: Published) -> FakeIssuer {
    let mut issuer = FakeIssuer {
        published: Arc::new(Mutex::new(initial)),
        requests: Arc::new(AtomicU64::new(0)),
        base_url: String::new(),
    };
    let app = Router::new()
        .route("/keys", get(serve_keys))
        .with_state(issuer.clone());
    issuer.base_url = format!("http://{}", iocd_testkit::serve_router(app).await);
    issuer
}

fn token_signed_by(key: &SigningKey) -> String {
    key.issue(&TokenClaimsInput {
        tenant_id: "tenant-1".to_owned(),
        client_id: "client-1".to_owned(),
        app_object_id: "object-1".to_owned(),
        audience: AUDIENCE.to_owned(),
        issuer: ISSUER_TEMPLATE.to_owned(),
        roles: vec!["Ti.ReadWrite.All".to_owned()],
        ..TokenClaimsInput::default()
    })
    .unwrap()
    .access_token
}

fn validator_over(cache: &Arc<JwksCache>) -> TokenValidator {
    TokenValidator::new(ValidatorConfig {
        accepted_audiences: vec![AUDIENCE.to_owned()],
        ..ValidatorConfig::default()
    })
    .with_remote_issuer(ISSUER_TEMPLATE, Arc::clone(cache))
}

#[tokio::test]
async fn fetch_jwks_reads_a_served_key_set() {
    let issuer = start_fake_issuer(Published::Jwks(key_before_rotation().jwks())).await;
    let keys = fetch_jwks(&issuer.keys_url()).await.unwrap();
    assert_eq!(keys, key_before_rotation().jwk_set());
    assert_eq!(issuer.requests(), 1);
}

#[tokio::test]
async fn fetch_jwks_reports_http_and_content_errors() {
    let issuer = start_fake_issuer(Published::Failing).await;
    assert!(matches!(
        fetch_jwks(&issuer.keys_url()).await,
        Err(JwksError::Status { status: 500, .. })
    ));
    issuer.publish(Published::NotJson);
    assert!(matches!(
        fetch_jwks(&issuer.keys_url()).await,
        Err(JwksError::NotJwks { .. })
    ));
    assert!(matches!(
        fetch_jwks(&format!("{}/missing", issuer.base_url)).await,
        Err(JwksError::Status { status: 404, .. })
    ));
    // Nothing listens on port 1 of the loopback address.
    assert!(matches!(
        fetch_jwks("http://127.0.0.1:1/keys").await,
        Err(JwksError::Http { .. })
    ));
}

#[tokio::test]
async fn remote_keys_are_fetched_once_then_served_from_the_cache() {
    let issuer = start_fake_issuer(Published::Jwks(key_before_rotation().jwks())).await;
    let cache = Arc::new(JwksCache::new(issuer.keys_url()).with_intervals(ONE_HOUR, ONE_HOUR));
    let validator = validator_over(&cache);
    let token = token_signed_by(key_before_rotation());

    // The offline check has no keys until something fetched them.
    assert!(matches!(
        validator.validate(&token),
        Err(TokenError::KeysUnavailable(_))
    ));

    let validated = validator.validate_refreshing(&token).await.unwrap();
    assert_eq!(validated.tenant_id, "tenant-1");
    assert_eq!(validated.roles, vec!["Ti.ReadWrite.All"]);
    assert!(validator.validate_refreshing(&token).await.is_ok());
    assert!(validator.validate(&token).is_ok());
    assert_eq!(issuer.requests(), 1);
    assert_eq!(cache.successful_fetches(), 1);
}

#[tokio::test]
async fn concurrent_first_requests_share_one_fetch() {
    let issuer = start_fake_issuer(Published::Jwks(key_before_rotation().jwks())).await;
    let cache = Arc::new(JwksCache::new(issuer.keys_url()).with_intervals(ONE_HOUR, ONE_HOUR));
    let validator = Arc::new(validator_over(&cache));
    let token = token_signed_by(key_before_rotation());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let validator = Arc::clone(&validator);
            let token = token.clone();
            tokio::spawn(async move { validator.validate_refreshing(&token).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(issuer.requests(), 1);
}

#[tokio::test]
async fn unknown_kid_triggers_a_refresh_that_picks_up_a_rotation() {
    let issuer = start_fake_issuer(Published::Jwks(key_before_rotation().jwks())).await;
    let cache =
        Arc::new(JwksCache::new(issuer.keys_url()).with_intervals(ONE_HOUR, Duration::ZERO));
    let validator = validator_over(&cache);
    assert!(validator
        .validate_refreshing(&token_signed_by(key_before_rotation()))
        .await
        .is_ok());
    assert_eq!(issuer.requests(), 1);

    // Upstream rotates to a new key; the cached keys are an hour from their scheduled refresh.
    issuer.publish(Published::Jwks(key_after_rotation().jwks()));
    let rotated_token = token_signed_by(key_after_rotation());
    assert!(matches!(
        validator.validate(&rotated_token),
        Err(TokenError::UnknownKey { .. })
    ));
    assert!(validator.validate_refreshing(&rotated_token).await.is_ok());
    assert_eq!(issuer.requests(), 2);
    // The old key left the set, so its tokens now fail (after one more refresh attempt).
    assert!(matches!(
        validator
            .validate_refreshing(&token_signed_by(key_before_rotation()))
            .await,
        Err(TokenError::UnknownKey { .. })
    ));
}

#[tokio::test]
async fn unknown_kid_refreshes_are_rate_limited() {
    let issuer = start_fake_issuer(Published::Jwks(key_before_rotation().jwks())).await;
    let cache = Arc::new(JwksCache::new(issuer.keys_url()).with_intervals(ONE_HOUR, ONE_HOUR));
    let validator = validator_over(&cache);
    assert!(validator
        .validate_refreshing(&token_signed_by(key_before_rotation()))
        .await
        .is_ok());

    issuer.publish(Published::Jwks(key_after_rotation().jwks()));
    for _ in 0..5 {
        assert!(matches!(
            validator
                .validate_refreshing(&token_signed_by(key_after_rotation()))
                .await,
            Err(TokenError::UnknownKey { .. })
        ));
    }
    // A burst of unknown kids within the minimum interval costs no extra round trip.
    assert_eq!(issuer.requests(), 1);
    assert!(!cache.refresh_for_unknown_kid().await.unwrap());
    // An explicit refresh ignores the interval.
    cache.refresh().await.unwrap();
    assert!(validator
        .validate_refreshing(&token_signed_by(key_after_rotation()))
        .await
        .is_ok());
    assert_eq!(issuer.requests(), 2);
}

#[tokio::test]
async fn keys_are_refetched_once_due_and_kept_when_upstream_fails() {
    let issuer = start_fake_issuer(Published::Jwks(key_before_rotation().jwks())).await;
    let refresh_every = Duration::from_millis(200);
    let cache =
        Arc::new(JwksCache::new(issuer.keys_url()).with_intervals(refresh_every, Duration::ZERO));
    let validator = validator_over(&cache);
    let token = token_signed_by(key_before_rotation());

    assert!(validator.validate_refreshing(&token).await.is_ok());
    assert!(validator.validate_refreshing(&token).await.is_ok());
    assert_eq!(issuer.requests(), 1);

    tokio::time::sleep(refresh_every + Duration::from_millis(50)).await;
    assert!(validator.validate_refreshing(&token).await.is_ok());
    assert_eq!(issuer.requests(), 2);

    // Upstream breaks: the due refresh fails, and the keys already held keep working.
    issuer.publish(Published::Failing);
    tokio::time::sleep(refresh_every + Duration::from_millis(50)).await;
    assert!(validator.validate_refreshing(&token).await.is_ok());
    assert_eq!(issuer.requests(), 3);
    assert!(cache.refresh().await.is_err());
    assert!(cache.snapshot().is_some());
}

#[tokio::test]
async fn no_keys_at_all_is_reported_as_unavailable() {
    let issuer = start_fake_issuer(Published::Failing).await;
    let cache = Arc::new(JwksCache::new(issuer.keys_url()));
    let validator = validator_over(&cache);
    let error = validator
        .validate_refreshing(&token_signed_by(key_before_rotation()))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, TokenError::KeysUnavailable(message) if message.contains("500")),
        "{error:?}"
    );
}
