//! Fetching an external issuer's signing keys (its `jwks_uri`) and keeping them current.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};

/// How long fetched keys are used before they are fetched again. Entra announces new keys well
/// before signing with them, so an hourly refresh sees them early.
pub const DEFAULT_REFRESH_EVERY: Duration = Duration::from_secs(60 * 60);

/// The least time between two fetches triggered by unknown `kid`s or failures, so tokens with
/// made-up key ids cannot turn the server into a load generator against the issuer.
pub const DEFAULT_MIN_FETCH_INTERVAL: Duration = Duration::from_secs(30);

const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A JWKS document is a few kilobytes; a far larger answer is not one.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("fetching the JWKS from {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the JWKS endpoint {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("the JWKS from {url} is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge { url: String },
    #[error("the JWKS from {url} is not a JSON object with a `keys` array")]
    NotJwks { url: String },
    #[error("the JWKS from {url} holds no signing key this server can use")]
    NoUsableKeys { url: String },
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .build()
        // Like reqwest::Client::new(), which panics the same way: only a broken TLS backend fails.
        .expect("the HTTP client with rustls initialises")
}

/// Fetches and parses a JWKS document, such as Entra's
/// `https://login.microsoftonline.com/common/discovery/v2.0/keys`.
pub async fn fetch_jwks(url: &str) -> Result<JwkSet, JwksError> {
    fetch_jwks_with(&http_client(), url).await
}

/// As [`fetch_jwks`], with the caller's HTTP client (proxy, timeouts, connection reuse).
pub async fn fetch_jwks_with(client: &reqwest::Client, url: &str) -> Result<JwkSet, JwksError> {
    let http_error = |source| JwksError::Http {
        url: url.to_owned(),
        source,
    };
    let mut response = client.get(url).send().await.map_err(http_error)?;
    if !response.status().is_success() {
        return Err(JwksError::Status {
            url: url.to_owned(),
            status: response.status().as_u16(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(http_error)? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge {
                url: url.to_owned(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    parse_jwks(url, &body)
}

/// Parses key by key, keeping those jsonwebtoken understands and that may sign: one exotic key
/// upstream (a new key type, an encryption key) must not make the whole set unusable.
fn parse_jwks(url: &str, body: &[u8]) -> Result<JwkSet, JwksError> {
    let not_jwks = || JwksError::NotJwks {
        url: url.to_owned(),
    };
    let document: serde_json::Value = serde_json::from_slice(body).map_err(|_| not_jwks())?;
    let entries = document
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(not_jwks)?;
    let keys: Vec<Jwk> = entries
        .iter()
        .filter_map(|entry| serde_json::from_value::<Jwk>(entry.clone()).ok())
        .filter(|jwk| !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)))
        .collect();
    if keys.is_empty() {
        return Err(JwksError::NoUsableKeys {
            url: url.to_owned(),
        });
    }
    Ok(JwkSet { keys })
}

#[derive(Debug, Default)]
struct CacheState {
    keys: Option<Arc<JwkSet>>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

/// An external issuer's keys, fetched on first use, refreshed once they are
/// [`DEFAULT_REFRESH_EVERY`] old, and fetched early when a token names an unknown `kid` — at most
/// once per [`DEFAULT_MIN_FETCH_INTERVAL`]. Only one fetch runs at a time; concurrent callers
/// wait for it and share its result. A failed refresh keeps the previous keys.
#[derive(Debug)]
pub struct JwksCache {
    url: String,
    http: reqwest::Client,
    refresh_every: Duration,
    min_fetch_interval: Duration,
    state: RwLock<CacheState>,
    // Serialises fetches so a burst of requests costs one round trip, not one each.
    fetch_gate: tokio::sync::Mutex<()>,
    successful_fetches: AtomicU64,
}

impl JwksCache {
    pub fn new(url: impl Into<String>) -> Self {
        JwksCache {
            url: url.into(),
            http: http_client(),
            refresh_every: DEFAULT_REFRESH_EVERY,
            min_fetch_interval: DEFAULT_MIN_FETCH_INTERVAL,
            state: RwLock::new(CacheState::default()),
            fetch_gate: tokio::sync::Mutex::new(()),
            successful_fetches: AtomicU64::new(0),
        }
    }

    /// Sets how old keys may get before the next use fetches them again, and the least time
    /// between fetches caused by unknown `kid`s or by failed attempts.
    pub fn with_intervals(mut self, refresh_every: Duration, min_fetch_interval: Duration) -> Self {
        self.refresh_every = refresh_every;
        self.min_fetch_interval = min_fetch_interval;
        self
    }

    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.http = client;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The keys last fetched, without any network access.
    pub fn snapshot(&self) -> Option<Arc<JwkSet>> {
        self.read_state().keys.clone()
    }

    /// How many fetches have succeeded, for metrics and tests.
    pub fn successful_fetches(&self) -> u64 {
        self.successful_fetches.load(Ordering::Relaxed)
    }

    /// Current keys, fetched first when there are none yet or they are due for a refresh. When a
    /// refresh fails, or failed within the minimum interval, the previous keys are returned.
    pub async fn keys(&self) -> Result<Arc<JwkSet>, JwksError> {
        if let Some(fresh) = self.fresh_keys() {
            return Ok(fresh);
        }
        let _gate = self.fetch_gate.lock().await;
        // Whoever held the gate before us may have just fetched.
        if let Some(fresh) = self.fresh_keys() {
            return Ok(fresh);
        }
        let (stale, recently_tried) = {
            let state = self.read_state();
            (state.keys.clone(), self.tried_recently(&state))
        };
        match stale {
            Some(stale) if recently_tried => Ok(stale),
            Some(stale) => Ok(self.fetch_now().await.unwrap_or(stale)),
            None => self.fetch_now().await,
        }
    }

    /// Fetches again because a token named a `kid` the keys lack, unless a fetch was attempted
    /// within the minimum interval. Returns whether it fetched new keys.
    pub async fn refresh_for_unknown_kid(&self) -> Result<bool, JwksError> {
        let _gate = self.fetch_gate.lock().await;
        if self.tried_recently(&self.read_state()) {
            return Ok(false);
        }
        self.fetch_now().await.map(|_| true)
    }

    /// Fetches now, whatever the intervals say (for an operator's "reload keys").
    pub async fn refresh(&self) -> Result<Arc<JwkSet>, JwksError> {
        let _gate = self.fetch_gate.lock().await;
        self.fetch_now().await
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, CacheState> {
        // The state is a few plain fields written in one assignment each; a panic elsewhere
        // cannot leave it half-written, so a poisoned lock is still safe to read.
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fresh_keys(&self) -> Option<Arc<JwkSet>> {
        let state = self.read_state();
        let fetched_at = state.fetched_at?;
        if fetched_at.elapsed() < self.refresh_every {
            state.keys.clone()
        } else {
            None
        }
    }

    fn tried_recently(&self, state: &CacheState) -> bool {
        state
            .last_attempt
            .is_some_and(|attempt| attempt.elapsed() < self.min_fetch_interval)
    }

    /// Callers hold the fetch gate.
    async fn fetch_now(&self) -> Result<Arc<JwkSet>, JwksError> {
        let started = Instant::now();
        let result = fetch_jwks_with(&self.http, &self.url).await;
        let mut state = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.last_attempt = Some(started);
        let keys = Arc::new(result?);
        state.keys = Some(Arc::clone(&keys));
        state.fetched_at = Some(started);
        self.successful_fetches.fetch_add(1, Ordering::Relaxed);
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_jsonwebtoken_cannot_use_are_skipped_not_fatal() {
        let body = serde_json::json!({"keys": [
            {"kty": "RSA", "use": "sig", "kid": "good", "n": "AQAB", "e": "AQAB", "x5t": "abc", "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0"},
            {"kty": "RSA", "use": "enc", "kid": "encryption", "n": "AQAB", "e": "AQAB"},
            {"kty": "future-type", "kid": "exotic"},
            "not even an object"
        ]});
        let set = parse_jwks("u", body.to_string().as_bytes()).expect("one usable key");
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.keys[0].common.key_id.as_deref(), Some("good"));
    }

    #[test]
    fn documents_without_usable_keys_are_errors() {
        assert!(matches!(
            parse_jwks("u", b"{\"keys\": []}"),
            Err(JwksError::NoUsableKeys { .. })
        ));
        assert!(matches!(
            parse_jwks("u", b"{\"other\": 1}"),
            Err(JwksError::NotJwks { .. })
        ));
        assert!(matches!(
            parse_jwks("u", b"<html>"),
            Err(JwksError::NotJwks { .. })
        ));
    }
}
