//! iocd as an identity provider: its signing key, issuer URLs, the app registry and the caches
//! that keep token requests and API calls cheap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use iocd_auth::{SigningKey, TENANT_ID_PLACEHOLDER};
use iocd_domain::time;
use iocd_store::{AppRegistration, IdentityStore, StoredSigningKey};
use sha2::Digest as _;

use crate::argon2_threads::Argon2Threads;
use crate::config::IdentityConfig;
use crate::keys::{usable_keys, KeyRing};
use crate::lockout::{FailedAuthLimits, Lockout, Lockouts};

/// How long a tenant seen in the database is trusted to exist without asking again.
const KNOWN_TENANT_TTL: Duration = Duration::from_secs(60);

/// How long a verified client secret is remembered, so a burst of token requests costs one
/// argon2 verification rather than one each.
const VERIFIED_SECRET_TTL: Duration = Duration::from_secs(300);

/// Wrong passwords tolerated per user within [`SIGN_IN_FAILURE_WINDOW`]; one address may fail
/// more often, as many people can share it.
const SIGN_IN_FAILURE_LIMIT: usize = 10;
const SIGN_IN_FAILURE_LIMIT_PER_ADDRESS: usize = 50;
const SIGN_IN_FAILURE_WINDOW: Duration = Duration::from_secs(300);

/// iocd as an identity provider: its signing key, issuer URLs, the app registry and the caches
/// that keep token requests and API calls cheap.
pub struct IdentityProvider {
    store: Arc<dyn IdentityStore>,
    keys: RwLock<Arc<KeyRing>>,
    /// When the keys were last read from the database.
    keys_read_at: Mutex<Instant>,
    key_reload_interval: Duration,
    /// One reload at a time; the others keep using the keys at hand.
    key_reload: tokio::sync::Mutex<()>,
    issuer_base: String,
    accepted_audiences: Vec<String>,
    token_lifetime: Duration,
    leeway_secs: u64,
    known_tenants: Mutex<HashMap<String, Instant>>,
    /// Domain alias → tenant id, with when it was read.
    known_aliases: Mutex<HashMap<String, (String, Instant)>>,
    verified_secrets: Mutex<HashMap<String, VerifiedSecret>>,
    /// argon2 takes ~19 MiB and tens of milliseconds per verification: at most one per core
    /// runs at once, the rest queue, so a storm of token requests cannot exhaust memory.
    argon2_permits: tokio::sync::Semaphore,
    /// Where argon2 runs (`argon2_threads.rs`): one thread per core, so memory stays bounded.
    argon2: Argon2Threads,
    /// Failed client authentications per client id and address (`lockout.rs`).
    lockouts: RwLock<Arc<Lockouts>>,
    /// What an unknown client id's secret is verified against, so that an unknown id costs the
    /// same argon2 verification as a wrong secret and client ids cannot be told apart by timing.
    dummy_hash: String,
    refresh_token_lifetime: Duration,
    /// Wrong passwords per user, and per address (delegated sign-ins).
    sign_in_failures: crate::sign_in_lockout::FailureLimiter,
    sign_in_failures_by_address: crate::sign_in_lockout::FailureLimiter,
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
    /// Too many failed authentications for this client id or from this address.
    LockedOut(Lockout),
}

impl IdentityProvider {
    /// Loads the signing key from the database, generating and storing it on first use (race-free
    /// across replicas: whichever server stores first wins and everyone reads that one back).
    pub async fn open(
        store: Arc<dyn IdentityStore>,
        config: &IdentityConfig,
        issuer_base: &str,
    ) -> anyhow::Result<IdentityProvider> {
        load_or_create_signing_key(store.as_ref()).await?;
        let stored = store.signing_keys().await?;
        let Some(usable) = usable_keys(&stored, None, time::now())? else {
            anyhow::bail!("the database has no active signing key");
        };
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
        let argon2 = Argon2Threads::start(cores)?;
        let dummy_hash = argon2
            .run(|| iocd_auth::hash_secret(&iocd_auth::generate_client_secret()))
            .await
            .ok_or_else(|| anyhow::anyhow!("the argon2 threads failed to hash"))?;
        Ok(IdentityProvider {
            store,
            keys: RwLock::new(Arc::new(KeyRing::new(0, usable))),
            keys_read_at: Mutex::new(Instant::now()),
            key_reload_interval: config.key_reload_interval,
            key_reload: tokio::sync::Mutex::new(()),
            issuer_base,
            accepted_audiences,
            token_lifetime: config.token_lifetime,
            leeway_secs: config.leeway_secs,
            known_tenants: Mutex::new(HashMap::new()),
            known_aliases: Mutex::new(HashMap::new()),
            verified_secrets: Mutex::new(HashMap::new()),
            argon2_permits: tokio::sync::Semaphore::new(cores),
            argon2,
            lockouts: RwLock::new(Arc::new(Lockouts::in_memory(&config.failed_auth_limits))),
            dummy_hash,
            refresh_token_lifetime: config.refresh_token_lifetime,
            sign_in_failures: crate::sign_in_lockout::FailureLimiter::new(
                SIGN_IN_FAILURE_LIMIT,
                SIGN_IN_FAILURE_WINDOW,
            ),
            sign_in_failures_by_address: crate::sign_in_lockout::FailureLimiter::new(
                SIGN_IN_FAILURE_LIMIT_PER_ADDRESS,
                SIGN_IN_FAILURE_WINDOW,
            ),
        })
    }

    /// Replaces the failure meters (by Redis-backed ones shared by replicas, say).
    pub fn set_lockouts(&self, lockouts: Lockouts) {
        *self
            .lockouts
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(lockouts);
    }

    /// In-memory failure meters for `limits`, replacing the current ones.
    pub fn set_failed_auth_limits(&self, limits: &FailedAuthLimits) {
        self.set_lockouts(Lockouts::in_memory(limits));
    }

    fn lockouts(&self) -> Arc<Lockouts> {
        self.lockouts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn store(&self) -> &Arc<dyn IdentityStore> {
        &self.store
    }

    /// The key new tokens are signed with, as last read.
    pub fn signing_key(&self) -> Arc<SigningKey> {
        self.key_ring().active().clone()
    }

    /// The keys as last read from the database (see [`Self::current_key_ring`]).
    pub fn key_ring(&self) -> Arc<KeyRing> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The keys, re-read from the database first when the last read is older than the reload
    /// interval, so a rotation made on any server (or by `iocd keys rotate`) is seen here. A
    /// database failure keeps the keys at hand (and is logged).
    pub async fn current_key_ring(&self) -> Arc<KeyRing> {
        let stale = self
            .keys_read_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
            >= self.key_reload_interval
            || self.key_ring().has_retired_key(time::now());
        if stale {
            if let Err(e) = self.reload_keys().await {
                tracing::error!(error = %e, "re-reading the signing keys failed; keeping the keys at hand");
            }
        }
        self.key_ring()
    }

    /// Re-reads the signing keys from the database now (unless another task is doing so);
    /// true when the set of keys changed. Rotated-out keys past their time are dropped.
    pub async fn reload_keys(&self) -> anyhow::Result<bool> {
        let Ok(_reloading) = self.key_reload.try_lock() else {
            return Ok(false);
        };
        let now = time::now();
        let stored = self.store.signing_keys().await?;
        if stored
            .iter()
            .any(|k| k.retire_at.is_some_and(|at| at <= now))
        {
            self.store.drop_retired_signing_keys(now).await?;
        }
        *self
            .keys_read_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        let current = self.key_ring();
        let Some(usable) = usable_keys(&stored, Some(&current), now)? else {
            anyhow::bail!("the database has no active signing key");
        };
        let unchanged = usable.active.kid() == current.active().kid()
            && usable.keys.len() == current.kids().len()
            && usable.keys.iter().all(|k| current.contains(k.kid()));
        if unchanged {
            return Ok(false);
        }
        let ring = KeyRing::new(current.generation + 1, usable);
        tracing::info!(active = %ring.active().kid(), keys = ?ring.kids(), "the signing keys changed");
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
        Ok(true)
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

    /// How long a refresh token may wait to be used (each use rotates it).
    pub fn refresh_token_lifetime(&self) -> Duration {
        self.refresh_token_lifetime
    }

    pub(crate) fn sign_in_failures(&self) -> &crate::sign_in_lockout::FailureLimiter {
        &self.sign_in_failures
    }

    pub(crate) fn sign_in_failures_by_address(&self) -> &crate::sign_in_lockout::FailureLimiter {
        &self.sign_in_failures_by_address
    }

    /// The hash an unknown user's password is verified against (the same one unknown client
    /// ids use), so a missing user costs the same argon2 run as a wrong password.
    pub(crate) fn decoy_password_hash(&self) -> &str {
        &self.dummy_hash
    }

    /// argon2 verification on the argon2 threads, at most one per core at once.
    pub(crate) async fn verify_with_permit(&self, secret: &str, hash: &str) -> bool {
        // The semaphore is never closed, so acquiring cannot fail.
        let _permit = self.argon2_permits.acquire().await;
        let secret = secret.to_string();
        let hash = hash.to_string();
        self.argon2
            .run(move || iocd_auth::verify_secret(&secret, &hash))
            .await
            .unwrap_or(false)
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

    /// The id of the tenant `name` names: a tenant id (that has apps), else a domain alias
    /// (`iocd tenants alias`, any case). Positive alias answers are cached like tenants.
    pub async fn resolve_tenant(
        &self,
        name: &str,
    ) -> Result<Option<String>, iocd_store::StoreError> {
        if self.tenant_exists(name).await? {
            return Ok(Some(name.to_string()));
        }
        let domain = name.to_ascii_lowercase();
        {
            let known = self
                .known_aliases
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((tenant_id, seen)) = known.get(&domain) {
                if seen.elapsed() < KNOWN_TENANT_TTL {
                    return Ok(Some(tenant_id.clone()));
                }
            }
        }
        let Some(tenant_id) = self.store.resolve_tenant_alias(&domain).await? else {
            return Ok(None);
        };
        if !self.tenant_exists(&tenant_id).await? {
            return Ok(None);
        }
        self.known_aliases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(domain, (tenant_id.clone(), Instant::now()));
        Ok(Some(tenant_id))
    }

    /// Checks a client id and secret against the app registry (client-credentials grant), from
    /// `address` (the client's IP address, for the per-address failure limit). An unknown client
    /// id costs the same verification as a wrong secret; a client id or address with too many
    /// failures is refused without one, unless the secret is one verified recently.
    pub async fn authenticate_client(
        &self,
        tenant_id: &str,
        client_id: &str,
        client_secret: &str,
        address: Option<&str>,
    ) -> Result<Result<AppRegistration, ClientAuthError>, iocd_store::StoreError> {
        // The registry is read every time, so a deleted app gets no new token even while its
        // secret is still remembered below.
        let app = self.store.find_app(tenant_id, client_id).await?;
        let digest: [u8; 32] = sha2::Sha256::digest(client_secret.as_bytes()).into();
        if let Some(app) = &app {
            if self.recently_verified(app, &digest) {
                return Ok(Ok(app.clone()));
            }
        }
        let lockouts = self.lockouts();
        if let Some(lockout) = lockouts.check(tenant_id, client_id, address) {
            return Ok(Err(ClientAuthError::LockedOut(lockout)));
        }
        let hash = app
            .as_ref()
            .map_or(self.dummy_hash.as_str(), |app| app.secret_hash.as_str());
        let verified = self.verify_with_permit(client_secret, hash).await;
        let app = match app {
            Some(app) if verified => app,
            unknown_or_wrong => {
                lockouts.record_failure(tenant_id, client_id, address).await;
                return Ok(Err(if unknown_or_wrong.is_none() {
                    ClientAuthError::UnknownApp
                } else {
                    ClientAuthError::WrongSecret
                }));
            }
        };
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

/// Makes sure the database has an active signing key, generating one on first use (race-free
/// across replicas: whichever server stores first wins and everyone uses that one).
async fn load_or_create_signing_key(store: &dyn IdentityStore) -> anyhow::Result<()> {
    if store.signing_key().await?.is_some() {
        return Ok(());
    }
    // RSA key generation takes a noticeable fraction of a second: keep it off the async threads.
    let generated = tokio::task::spawn_blocking(SigningKey::generate).await??;
    let candidate = StoredSigningKey {
        kid: generated.kid().to_string(),
        private_key_pem: generated.to_pkcs8_pem()?,
        created_at: time::now(),
        retire_at: None,
    };
    let stored = store.signing_key_or_insert(&candidate).await?;
    if stored.kid == candidate.kid {
        tracing::info!(kid = %stored.kid, "generated the token-signing key and stored it in the database");
    }
    Ok(())
}
