use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};

use crate::{StoreError, StoreResult};

/// OWASP's argon2id recommendation: 19 MiB of memory, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) {
    SystemRandom::new()
        .fill(buf)
        .expect("the system random number generator failed");
}

/// Hashes a password with argon2id and a fresh 128-bit salt; returns the PHC string.
/// Takes tens of milliseconds on purpose: run it off the async runtime.
pub fn hash_password(password: &str) -> StoreResult<String> {
    let mut salt = [0u8; 16];
    fill_random(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| StoreError::Hash(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Hash(e.to_string()))
}

/// Outcome of a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    Match,
    Mismatch,
}

/// Verifies `password` against a PHC string. A malformed hash counts as a mismatch.
pub fn verify_password(password: &str, phc: &str) -> PasswordCheck {
    match PasswordHash::new(phc) {
        Ok(h) if argon2().verify_password(password.as_bytes(), &h).is_ok() => PasswordCheck::Match,
        _ => PasswordCheck::Mismatch,
    }
}

/// A new bearer token: 256 random bits, URL-safe base64 without padding.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    fill_random(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The SHA-256 digest under which a token is stored.
pub fn token_digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
