//! The portal's sessions: who is signed in in which browser, held in this process.
//!
//! A session is a random 256-bit id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` when the
//! portal is served over HTTPS); the tokens the sign-in obtained stay here, never in the browser.
//! Each session has its own CSRF token, which every form carries and every POST must return.
//! Sessions live in memory: a restart signs everyone out, and behind a load balancer the portal
//! needs sticky sessions (docs/compatibility.md, "Portal").

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue};

use super::admin::Created;
use super::transfer::ImportJob;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "iocd_portal";
/// The cookie binding a sign-in in progress to the browser that started it (its `state`).
pub(crate) const SIGN_IN_COOKIE: &str = "iocd_portal_signin";
/// The last tenant signed in to, to fill in the sign-in form.
pub(crate) const TENANT_COOKIE: &str = "iocd_portal_tenant";

/// A session unused this long ends.
const IDLE_LIMIT: Duration = Duration::from_secs(8 * 3600);
/// Most sessions held at once; beyond, the least recently used ends.
const MAX_SESSIONS: usize = 10_000;
/// A sign-in must come back from the sign-in page within this time.
const SIGN_IN_LIMIT: Duration = Duration::from_secs(600);
const MAX_PENDING: usize = 10_000;
/// Imports whose reports a session keeps (the newest).
const MAX_IMPORTS: usize = 5;

/// A random, URL-safe 256-bit value.
pub(crate) fn random_token() -> String {
    iocd_auth::generate_client_secret()
}

/// Equal strings, compared in time independent of where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The tokens of a session.
#[derive(Clone)]
pub(crate) struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// When the access token stops being accepted.
    pub expires_at: Instant,
}

/// One signed-in browser.
pub(crate) struct Session {
    pub tenant_id: String,
    /// The portal client the session signed in through.
    pub client_id: String,
    /// Every form of this session carries it; every POST must return it.
    pub csrf: String,
    pub tokens: tokio::sync::Mutex<Tokens>,
    last_used: Mutex<Instant>,
    /// The latest imports, by number.
    imports: Mutex<VecDeque<(u64, Arc<ImportJob>)>>,
    /// A secret or password just created, shown once on the next page.
    pub once: Mutex<Option<Created>>,
}

impl Session {
    /// Keeps an import's progress and report; returns its number.
    pub fn add_import(&self, job: Arc<ImportJob>) -> u64 {
        let mut imports = self.imports.lock().unwrap_or_else(PoisonError::into_inner);
        let number = imports.back().map_or(1, |(n, _)| n + 1);
        imports.push_back((number, job));
        while imports.len() > MAX_IMPORTS {
            imports.pop_front();
        }
        number
    }

    pub fn import(&self, number: u64) -> Option<Arc<ImportJob>> {
        self.imports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, job)| job.clone())
    }

    /// Takes what was created for showing once.
    pub fn take_once(&self) -> Option<Created> {
        self.once
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    pub fn show_once(&self, created: Created) {
        *self.once.lock().unwrap_or_else(PoisonError::into_inner) = Some(created);
    }
}

/// A sign-in started by the portal, waiting for its code.
#[derive(Clone)]
pub(crate) struct PendingSignIn {
    pub tenant_id: String,
    pub client_id: String,
    pub code_verifier: String,
    pub redirect_uri: String,
    /// The portal page to open after signing in.
    pub return_to: String,
    started: Instant,
}

/// Every session and sign-in in progress of this process.
#[derive(Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    pending: Mutex<HashMap<String, PendingSignIn>>,
}

impl Sessions {
    /// Records a sign-in in progress; returns its `state`.
    pub(crate) fn start_sign_in(
        &self,
        tenant_id: &str,
        client_id: &str,
        code_verifier: &str,
        redirect_uri: &str,
        return_to: &str,
    ) -> String {
        let state = random_token();
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.retain(|_, p| p.started.elapsed() < SIGN_IN_LIMIT);
        if pending.len() >= MAX_PENDING {
            if let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.started)
                .map(|(k, _)| k.clone())
            {
                pending.remove(&oldest);
            }
        }
        pending.insert(
            state.clone(),
            PendingSignIn {
                tenant_id: tenant_id.to_string(),
                client_id: client_id.to_string(),
                code_verifier: code_verifier.to_string(),
                redirect_uri: redirect_uri.to_string(),
                return_to: return_to.to_string(),
                started: Instant::now(),
            },
        );
        state
    }

    /// Takes the sign-in of `state` (once), if it is recent.
    pub(crate) fn finish_sign_in(&self, state: &str) -> Option<PendingSignIn> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(state)
            .filter(|p| p.started.elapsed() < SIGN_IN_LIMIT)
    }

    /// A new session; returns its id (the cookie's value).
    pub(crate) fn create(&self, tenant_id: &str, client_id: &str, tokens: Tokens) -> String {
        let id = random_token();
        let session = Arc::new(Session {
            tenant_id: tenant_id.to_string(),
            client_id: client_id.to_string(),
            csrf: random_token(),
            tokens: tokio::sync::Mutex::new(tokens),
            last_used: Mutex::new(Instant::now()),
            imports: Mutex::new(VecDeque::new()),
            once: Mutex::new(None),
        });
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| idle_for(s) < IDLE_LIMIT);
        }
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .max_by_key(|(_, s)| idle_for(s))
                .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), session);
        id
    }

    /// The live session of this id, marked as used now.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Session>> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let session = sessions.get(id)?.clone();
        if idle_for(&session) >= IDLE_LIMIT {
            sessions.remove(id);
            return None;
        }
        *session
            .last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        Some(session)
    }

    pub(crate) fn end(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

fn idle_for(session: &Session) -> Duration {
    session
        .last_used
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .elapsed()
}

/// A cookie's value from the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_string())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, path `/` (the sign-in callback and the
/// pages share it), `Secure` when served over HTTPS; `max_age` 0 deletes the cookie, `None`
/// makes it last the browser session.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    secure: bool,
    max_age: Option<u64>,
) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        text.push_str("; Secure");
    }
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; iocd_portal=xyz"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&headers, "iocd"), None);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }

    #[test]
    fn a_sign_in_is_taken_once() {
        let sessions = Sessions::default();
        let state = sessions.start_sign_in("t", "c", "v", "r", "/portal");
        assert!(sessions.finish_sign_in(&state).is_some());
        assert!(sessions.finish_sign_in(&state).is_none());
    }

    #[test]
    fn the_session_cookie_is_strict_and_http_only() {
        let value = set_cookie(SESSION_COOKIE, "v", true, None);
        let text = value.to_str().unwrap();
        assert!(text.contains("HttpOnly") && text.contains("SameSite=Strict"));
        assert!(text.contains("Secure"));
        assert!(!set_cookie(SESSION_COOKIE, "v", false, None)
            .to_str()
            .unwrap()
            .contains("Secure"));
    }
}
