//! iocd as an identity provider: its signing key, issuer URLs, the app registry and the caches
//! that keep token requests and API calls cheap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use iocd_auth::{SigningKey, TENANT_ID_PLACEHOLDER};
use iocd_domain::time;
use iocd_store::{AppRegistration, IdentityStore, StoredSigningKey};
use sha2::Digest as _;

use crate::config::IdentityConfig;

/// How long a tenant seen in the database is trusted to exist without asking again.
const KNOWN_TENANT_TTL: Duration = Duration::from_secs(60);

/// How long a verified client secret is remembered, so a burst of token requests costs one
/// argon2 verification rather than one each.
const VERIFIED_SECRET_TTL: Duration = Duration::from_secs(300);

/// iocd as an identity provider: its signing key, issuer URLs, the app registry and the caches
/// that keep token requests and API calls cheap.
pub struct IdentityProvider {
    store: Arc<dyn IdentityStore>,
    key: SigningKey,
    issuer_base: String,
    accepted_audiences: Vec<String>,
    token_lifetime: Duration,
    leeway_secs: u64,
    known_tenants: Mutex<HashMap<String, Instant>>,
    verified_secrets: Mutex<HashMap<String, VerifiedSecret>>,
    /// argon2 takes ~19 MiB and tens of milliseconds per verification: at most one per core
    /// runs at once, the rest queue, so a storm of token requests cannot exhaust memory.
    argon2_permits: tokio::sync::Semaphore,
}

struct VerifiedSecret {
    /// SHA-256 of the secret that verified. A fast hash is fine here: the secret has 256 bits of
    /// entropy, and this lives only in memory.
    secret_digest: [u8; 32],
    /// The stored hash it verified against; a changed registration invalidates the entry.
    secret_hash: String,
    verified_at: Instant,
}

/// Why a client could not authenticate at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuthError {
    UnknownApp,
    WrongSecret,
}

impl IdentityProvider {
    /// Loads the signing key from the database, generating and storing it on first use (race-free
    /// across replicas: whichever server stores first wins and everyone reads that one back).
    pub async fn open(
        store: Arc<dyn IdentityStore>,
        config: &IdentityConfig,
        issuer_base: &str,
    ) -> anyhow::Result<IdentityProvider> {
        let key = load_or_create_signing_key(store.as_ref()).await?;
        let issuer_base = issuer_base.trim_end_matches('/').to_string();
        let mut accepted_audiences: Vec<String> = config
            .accepted_audiences
            .iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect();
        if !accepted_audiences.contains(&issuer_base) {
            accepted_audiences.push(issuer_base.clone());
        }
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(IdentityProvider {
            store,
            key,
            issuer_base,
            accepted_audiences,
            token_lifetime: config.token_lifetime,
            leeway_secs: config.leeway_secs,
            known_tenants: Mutex::new(HashMap::new()),
            verified_secrets: Mutex::new(HashMap::new()),
            argon2_permits: tokio::sync::Semaphore::new(cores),
        })
    }

    pub fn store(&self) -> &Arc<dyn IdentityStore> {
        &self.store
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    pub fn issuer_base(&self) -> &str {
        &self.issuer_base
    }

    pub fn accepted_audiences(&self) -> &[String] {
        &self.accepted_audiences
    }

    pub fn token_lifetime(&self) -> Duration {
        self.token_lifetime
    }

    /// Clock skew tolerated on `exp` and `nbf` (of bearer tokens and client assertions).
    pub fn leeway_secs(&self) -> u64 {
        self.leeway_secs
    }

    /// The `iss` of v2 tokens: `{base}/{tenantid}/v2.0`, like `login.microsoftonline.com`.
    pub fn issuer_v2_template(&self) -> String {
        format!("{}/{TENANT_ID_PLACEHOLDER}/v2.0", self.issuer_base)
    }

    /// The `iss` of v1 tokens: `{base}/{tenantid}/`, like `sts.windows.net`.
    pub fn issuer_v1_template(&self) -> String {
        format!("{}/{TENANT_ID_PLACEHOLDER}/", self.issuer_base)
    }

    /// The issuer template of tokens of `version` requested on `host`: Entra's own when the
    /// client called an Entra login host (through interception), iocd's otherwise.
    pub fn issuer_template(&self, version: iocd_auth::TokenVersion, host: &str) -> String {
        match version {
            _ if iocd_auth::entra::is_login_host(host) => {
                iocd_auth::entra::entra_issuer(version).to_string()
            }
            iocd_auth::TokenVersion::V1 => self.issuer_v1_template(),
            iocd_auth::TokenVersion::V2 => self.issuer_v2_template(),
        }
    }

    /// Whether the tenant has apps. Positive answers are cached briefly; negative ones are not,
    /// so a tenant created by `iocd apps create` works at once.
    pub async fn tenant_exists(&self, tenant_id: &str) -> Result<bool, iocd_store::StoreError> {
        {
            let known = self
                .known_tenants
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if known
                .get(tenant_id)
                .is_some_and(|seen| seen.elapsed() < KNOWN_TENANT_TTL)
            {
                return Ok(true);
            }
        }
        let exists = self.store.tenant_exists(tenant_id).await?;
        let mut known = self
            .known_tenants
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if exists {
            known.insert(tenant_id.to_string(), Instant::now());
        } else {
            known.remove(tenant_id);
        }
        Ok(exists)
    }

    /// Checks a client id and secret against the app registry (client-credentials grant).
    pub async fn authenticate_client(
        &self,
        tenant_id: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Result<AppRegistration, ClientAuthError>, iocd_store::StoreError> {
        // The registry is read every time, so a deleted app gets no new token even while its
        // secret is still remembered below.
        let Some(app) = self.store.find_app(tenant_id, client_id).await? else {
            return Ok(Err(ClientAuthError::UnknownApp));
        };
        let digest: [u8; 32] = sha2::Sha256::digest(client_secret.as_bytes()).into();
        if self.recently_verified(&app, &digest) {
            return Ok(Ok(app));
        }
        let verified = {
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = self.argon2_permits.acquire().await;
            let secret = client_secret.to_string();
            let hash = app.secret_hash.clone();
            tokio::task::spawn_blocking(move || iocd_auth::verify_secret(&secret, &hash))
                .await
                .unwrap_or(false)
        };
        if !verified {
            return Ok(Err(ClientAuthError::WrongSecret));
        }
        self.verified_secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                app.client_id.clone(),
                VerifiedSecret {
                    secret_digest: digest,
                    secret_hash: app.secret_hash.clone(),
                    verified_at: Instant::now(),
                },
            );
        Ok(Ok(app))
    }

    fn recently_verified(&self, app: &AppRegistration, digest: &[u8; 32]) -> bool {
        let mut cache = self
            .verified_secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match cache.get(&app.client_id) {
            Some(entry)
                if entry.verified_at.elapsed() < VERIFIED_SECRET_TTL
                    && entry.secret_hash == app.secret_hash =>
            {
                &entry.secret_digest == digest
            }
            Some(_) => {
                cache.remove(&app.client_id);
                false
            }
            None => false,
        }
    }
}

async fn load_or_create_signing_key(store: &dyn IdentityStore) -> anyhow::Result<SigningKey> {
    if let Some(stored) = store.signing_key().await? {
        return Ok(SigningKey::from_pkcs8_pem(&stored.private_key_pem)?);
    }
    // RSA key generation takes a noticeable fraction of a second: keep it off the async threads.
    let generated = tokio::task::spawn_blocking(SigningKey::generate).await??;
    let candidate = StoredSigningKey {
        kid: generated.kid().to_string(),
        private_key_pem: generated.to_pkcs8_pem()?,
        created_at: time::now(),
    };
    let stored = store.signing_key_or_insert(&candidate).await?;
    if stored.kid == candidate.kid {
        tracing::info!(kid = %stored.kid, "generated the token-signing key and stored it in the database");
        return Ok(generated);
    }
    // Another server stored its key first; use that one so every replica signs alike.
    Ok(SigningKey::from_pkcs8_pem(&stored.private_key_pem)?)
}
