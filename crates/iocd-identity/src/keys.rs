//! The token-signing keys: the active key that signs, the rotated-out keys still published and
//! accepted until every token they signed has expired, and rotation (`iocd keys rotate`).
//!
//! Keys live in the database, so every replica sees a rotation: each re-reads the keys when
//! they are older than the reload interval (before signing, serving the JWKS or checking a
//! token) and at once when a token names a key id it does not know.

use std::sync::Arc;
use std::time::Duration;

use iocd_auth::{JwkSet, SigningKey};
use iocd_domain::time::{self, Timestamp};
use iocd_store::{IdentityStore, StoredSigningKey};
use serde_json::{json, Value};

/// How often a server re-reads the signing keys from the database by default.
pub const DEFAULT_KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(30);

/// The keys a server signs and validates with, as last read from the database.
#[derive(Debug)]
pub struct KeyRing {
    /// Changes whenever the set of keys changes, so dependants know to rebuild.
    pub generation: u64,
    active: Arc<SigningKey>,
    /// Every key whose tokens are accepted, the active one first.
    keys: Vec<Arc<SigningKey>>,
    /// When the first rotated-out key of the ring must go.
    next_retirement: Option<Timestamp>,
}

impl KeyRing {
    pub(crate) fn new(generation: u64, usable: UsableKeys) -> Self {
        KeyRing {
            generation,
            active: usable.active,
            keys: usable.keys,
            next_retirement: usable.next_retirement,
        }
    }

    /// Whether a key of the ring is past its retirement at `now` (the ring must be re-read).
    pub fn has_retired_key(&self, now: Timestamp) -> bool {
        self.next_retirement.is_some_and(|at| at <= now)
    }

    /// The key new tokens are signed with.
    pub fn active(&self) -> &Arc<SigningKey> {
        &self.active
    }

    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid()).collect()
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid() == kid)
    }

    pub(crate) fn find(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.keys.iter().find(|k| k.kid() == kid).cloned()
    }

    /// The JWKS document: every key whose tokens are still accepted.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() })
    }

    /// The same keys as jsonwebtoken's set, for the token validator.
    pub fn jwk_set(&self) -> JwkSet {
        serde_json::from_value(self.jwks()).expect("RSA public JWKs parse as jsonwebtoken Jwks")
    }
}

/// The keys of a ring, before it is numbered.
pub(crate) struct UsableKeys {
    pub active: Arc<SigningKey>,
    /// The active key first.
    pub keys: Vec<Arc<SigningKey>>,
    pub next_retirement: Option<Timestamp>,
}

/// The stored keys still in use at `now`, parsed (reusing keys already parsed in `previous`):
/// the active key and the retired ones whose `retire_at` has not passed. `None` without an
/// active key.
pub(crate) fn usable_keys(
    stored: &[StoredSigningKey],
    previous: Option<&KeyRing>,
    now: Timestamp,
) -> anyhow::Result<Option<UsableKeys>> {
    let mut active = None;
    let mut keys = Vec::new();
    let mut next_retirement: Option<Timestamp> = None;
    for row in stored {
        if let Some(at) = row.retire_at {
            if at <= now {
                continue;
            }
            next_retirement = Some(next_retirement.map_or(at, |next| next.min(at)));
        }
        let key = match previous.and_then(|ring| ring.find(&row.kid)) {
            Some(key) => key,
            None => Arc::new(SigningKey::from_pkcs8_pem(&row.private_key_pem)?),
        };
        if row.retire_at.is_none() {
            active = Some(key.clone());
            keys.insert(0, key);
        } else {
            keys.push(key);
        }
    }
    Ok(active.map(|active| UsableKeys {
        active,
        keys,
        next_retirement,
    }))
}

/// What `iocd keys rotate` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRotation {
    /// The new active key.
    pub kid: String,
    /// The key it replaced, if there was one.
    pub previous_kid: Option<String>,
    /// Until when the previous key is published and accepted (the wire's timestamp format).
    pub previous_key_retires_at: Option<String>,
}

/// How long a rotated-out key must stay: a replica may sign with it until it next reloads the
/// keys, and the last token it signs lives for the token lifetime plus the leeway.
pub fn rotation_overlap(
    token_lifetime: Duration,
    leeway_secs: u64,
    reload_interval: Duration,
) -> Duration {
    token_lifetime + Duration::from_secs(leeway_secs) + reload_interval
}

/// Generates a new signing key and makes it the active one; the previous key stays published
/// and accepted for `overlap`, then is dropped.
pub async fn rotate_signing_key(
    store: &dyn IdentityStore,
    overlap: Duration,
) -> anyhow::Result<KeyRotation> {
    let generated = tokio::task::spawn_blocking(SigningKey::generate).await??;
    let now = time::now();
    let retire_at = now + chrono_duration(overlap);
    let new = StoredSigningKey {
        kid: generated.kid().to_string(),
        private_key_pem: generated.to_pkcs8_pem()?,
        created_at: now,
        retire_at: None,
    };
    store.drop_retired_signing_keys(now).await?;
    let previous = store.rotate_signing_key(&new, retire_at).await?;
    tracing::info!(kid = %new.kid, previous = ?previous.as_ref().map(|p| &p.kid), "rotated the token-signing key");
    Ok(KeyRotation {
        kid: new.kid,
        previous_kid: previous.as_ref().map(|p| p.kid.clone()),
        previous_key_retires_at: previous.map(|_| time::format_wire(retire_at)),
    })
}

fn chrono_duration(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

/// The stored keys as `iocd keys list` shows them.
pub async fn describe_signing_keys(store: &dyn IdentityStore) -> anyhow::Result<Value> {
    let now = time::now();
    Ok(Value::Array(
        store
            .signing_keys()
            .await?
            .iter()
            .map(|k| {
                json!({
                    "kid": k.kid,
                    "active": k.retire_at.is_none(),
                    "createdDateTime": time::format_wire(k.created_at),
                    "retiresDateTime": k.retire_at.map(time::format_wire),
                    "published": k.retire_at.is_none_or(|at| at > now),
                })
            })
            .collect(),
    ))
}
