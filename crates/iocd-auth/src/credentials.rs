//! App registrations' credentials: client ids, client secrets and how secrets are stored.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand_core::{OsRng, RngCore};

/// Bytes of OS randomness in a client secret: 32 bytes = 256 bits, beyond any guessing.
const CLIENT_SECRET_BYTES: usize = 32;

/// OWASP Password Storage Cheat Sheet, argon2id option 2: 19 MiB of memory, 2 passes, 1 lane.
/// Client secrets are high-entropy already, so the cost guards against a leaked database
/// rather than against guessing; the OWASP minimum keeps token requests fast.
const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
const ARGON2_ITERATIONS: u32 = 2;
const ARGON2_PARALLELISM: u32 = 1;

/// A new application (client) id: a random UUID v4, formatted like Entra's `appId`.
pub fn generate_client_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new client secret: 256 bits from the OS random generator, as 43 URL-safe base64 characters,
/// so it can go in a form body, a query string or an environment variable without escaping.
pub fn generate_client_secret() -> String {
    let mut bytes = [0u8; CLIENT_SECRET_BYTES];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn owasp_argon2id() -> Argon2<'static> {
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        None,
    )
    .expect("the OWASP argon2 parameters are within argon2's limits");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a client secret for storage, as an argon2id PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) with a fresh random salt.
pub fn hash_secret(secret: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    owasp_argon2id()
        .hash_password(secret.as_bytes(), &salt)
        // Only parameter or salt problems make hashing fail, and both are fixed and valid here.
        .expect("argon2id hashing with fixed, valid parameters does not fail")
        .to_string()
}

/// Whether `secret` matches a PHC string made by [`hash_secret`]. The hash's own parameters are
/// used, so secrets stored before a parameter change still verify. The final comparison is the
/// argon2 crate's constant-time one. A PHC string that does not parse never matches.
///
/// The 19 MiB of argon2's working memory are kept per thread and reused, not allocated and
/// freed for each verification: freed blocks that size stay in the C allocator's per-thread
/// arenas, fragmented, and a flood of verifications once grew a server by hundreds of MiB. A
/// thread that verifies keeps one such block for as long as it lives.
pub fn verify_secret(secret: &str, phc: &str) -> bool {
    thread_local! {
        static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    MEMORY.with(|memory| match memory.try_borrow_mut() {
        Ok(mut memory) => verify_secret_in(secret, phc, &mut memory),
        // Only reentrancy could get here, and nothing in a verification verifies again.
        Err(_) => verify_secret_in(secret, phc, &mut Vec::new()),
    })
}

/// [`verify_secret`], with argon2's working memory in `memory` (grown as the hash's `m` needs).
fn verify_secret_in(secret: &str, phc: &str, memory: &mut Vec<argon2::Block>) -> bool {
    let Ok(stored) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (stored.salt, stored.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(stored.algorithm) else {
        return false;
    };
    let version = match stored.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&stored) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, argon2::Block::default());
    }
    let argon2 = Argon2::new(algorithm, version, params);
    let computed = argon2::password_hash::Output::init_with(expected.len(), |out| {
        argon2
            .hash_password_into_with_memory(secret.as_bytes(), salt, out, &mut memory[..blocks])
            .map_err(|_| argon2::password_hash::Error::Password)
    });
    // `Output`'s equality is constant-time.
    computed.is_ok_and(|computed| computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier;

    #[test]
    fn client_ids_are_uuid_v4() {
        let id = generate_client_id();
        let parsed = uuid::Uuid::parse_str(&id).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 4);
        assert_ne!(id, generate_client_id());
    }

    #[test]
    fn client_secrets_carry_256_bits_in_url_safe_text() {
        let secret = generate_client_secret();
        let decoded = URL_SAFE_NO_PAD.decode(&secret).expect("URL-safe base64");
        assert_eq!(decoded.len(), 32);
        assert!(secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(secret, generate_client_secret());
    }

    #[test]
    fn verification_with_reused_memory_agrees_with_the_argon2_crate() {
        let phc = hash_secret("right");
        let stored = PasswordHash::new(&phc).unwrap();
        let mut memory = Vec::new();
        for (secret, expected) in [
            ("right", true),
            ("wrong", false),
            ("right", true),
            ("", false),
        ] {
            let reference = owasp_argon2id()
                .verify_password(secret.as_bytes(), &stored)
                .is_ok();
            assert_eq!(reference, expected);
            assert_eq!(verify_secret_in(secret, &phc, &mut memory), expected);
            assert_eq!(verify_secret(secret, &phc), expected);
        }
        // Another hash's parameters: a smaller m still verifies with the larger memory.
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"s", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
        assert!(verify_secret_in("s", &small, &mut memory));
        assert!(!verify_secret_in("t", &small, &mut memory));
    }

    #[test]
    fn hash_uses_argon2id_with_owasp_parameters_and_verifies_only_the_right_secret() {
        let secret = generate_client_secret();
        let phc = hash_secret(&secret);
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_secret(&secret, &phc));
        assert!(!verify_secret(&generate_client_secret(), &phc));
        assert!(!verify_secret("", &phc));
        // A fresh salt each time: the same secret never hashes to the same string twice.
        assert_ne!(phc, hash_secret(&secret));
    }

    #[test]
    fn unparseable_hashes_never_match() {
        assert!(!verify_secret("secret", ""));
        assert!(!verify_secret("secret", "secret"));
        assert!(!verify_secret(
            "secret",
            "$argon2id$v=19$m=19456,t=2,p=1$broken"
        ));
    }
}
