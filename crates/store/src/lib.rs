//! Persistent state of QuicMeet: users, e-mail verification tokens, login sessions, meetings,
//! join grants, chat history and the security rate-limit counters.
//!
//! One storage trait, [`Backend`], has two implementations: [`SledStore`], one embedded sled
//! database (the single-node default), and [`KvStore`], NATS JetStream key-value buckets shared
//! by every node of a cluster (see docs/CLUSTER.md). [`Store`] is the cheap, cloneable handle the
//! server holds; it derefs to the backend, so callers write `store.user(id).await`.
//!
//! This crate owns the stored layout and the security-sensitive primitives that go with it
//! (password hashing, token generation, meeting codes). It never stores a bearer secret in the
//! clear: tokens are stored as SHA-256 digests, passwords as argon2id hashes. Single-use tokens
//! stay single-use across nodes (compare-and-set on the KV revision). Writes that acknowledge a
//! user action are followed by [`Backend::flush`] in the caller before it answers, so an
//! acknowledged write survives a crash. The only network I/O here is the KV backend's NATS
//! connection, which the caller opens and hands in.

mod codes;
mod error;
pub mod kv;
mod model;
#[cfg(any(test, feature = "test-nats"))]
pub mod nats_server;
mod secrets;
mod sled;

pub use codes::{is_meeting_code, new_meeting_code};
pub use error::{StoreError, StoreResult};
pub use kv::KvStore;
pub use model::{ChatRecord, JoinGrant, JoinRole, Meeting, MeetingKind, Session, User};
pub use secrets::{hash_password, new_token, token_digest, verify_password, PasswordCheck};
pub use sled::SledStore;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

/// The layout version written by this build. Bump it with a migration in [`SledStore::open`].
pub const SCHEMA_VERSION: u32 = 1;

/// Chat messages a meeting keeps for `welcome` (PROTOCOL.md section 7). The KV backend keeps
/// only these; sled keeps everything and answers the same for `limit <= CHAT_KEEP`.
pub const CHAT_KEEP: usize = 200;

/// Normalises an e-mail address for lookups: trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

/// The answer of a shared rate-limit counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    /// Over the limit; the current window ends in this many seconds.
    Limited {
        retry_after_secs: u64,
    },
}

/// What a storage backend provides. Both backends pass the same test suite (`src/tests.rs`).
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A short name for logs and `/healthz`: `sled` or `nats-kv`.
    fn kind(&self) -> &'static str;

    /// Whether the backend can serve requests now (the KV backend: NATS is connected).
    fn is_available(&self) -> bool;

    /// Makes every write so far durable. Call before acknowledging a user action.
    async fn flush(&self) -> StoreResult<()>;

    // ---- users -------------------------------------------------------------------------

    /// Inserts a new user; fails with [`StoreError::EmailTaken`] if the address is in use.
    async fn create_user(&self, user: &User) -> StoreResult<()>;
    /// Replaces a stored user record (same id and e-mail).
    async fn update_user(&self, user: &User) -> StoreResult<()>;
    async fn user(&self, id: &str) -> StoreResult<Option<User>>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    async fn user_count(&self) -> StoreResult<usize>;

    // ---- e-mail verification ------------------------------------------------------------

    /// Stores a verification token (by digest) for `user_id`, valid for `ttl`.
    async fn put_verify_token(
        &self,
        token: &str,
        user_id: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> StoreResult<()>;
    /// Consumes a verification token: single use, refused once expired. Returns the verified
    /// user.
    async fn consume_verify_token(&self, token: &str, now: DateTime<Utc>) -> StoreResult<User>;

    // ---- sessions ----------------------------------------------------------------------

    async fn put_session(&self, token: &str, session: &Session) -> StoreResult<()>;
    /// Looks a session up by its bearer token; expired sessions are removed and not returned.
    async fn session(&self, token: &str, now: DateTime<Utc>) -> StoreResult<Option<Session>>;
    async fn delete_session(&self, token: &str) -> StoreResult<()>;

    // ---- meetings ----------------------------------------------------------------------

    /// Inserts a meeting under its code with its host and invitee indexes.
    /// Fails with [`StoreError::CodeTaken`] if the code exists (the caller draws another).
    async fn create_meeting(&self, m: &Meeting) -> StoreResult<()>;
    /// Replaces a meeting, keeping the invitee index in step with `old`'s invitees.
    async fn update_meeting(&self, old: &Meeting, new: &Meeting) -> StoreResult<()>;
    async fn meeting(&self, code: &str) -> StoreResult<Option<Meeting>>;
    /// Meetings hosted by `user_id` or inviting `email`, without duplicates.
    async fn meetings_for(&self, user_id: &str, email: &str) -> StoreResult<Vec<Meeting>>;
    async fn meeting_count(&self) -> StoreResult<usize>;

    // ---- join grants -------------------------------------------------------------------

    /// Stores a short-lived single-use join grant under the digest of `token`.
    async fn put_join_grant(&self, token: &str, grant: &JoinGrant) -> StoreResult<()>;
    /// Takes a join grant: it is removed whether or not it is still valid, so a token is
    /// never accepted twice, whichever node sees it.
    async fn take_join_grant(&self, token: &str, now: DateTime<Utc>) -> StoreResult<JoinGrant>;

    /// Drops expired join grants, verification tokens and sessions. Returns how many.
    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<usize>;

    // ---- chat --------------------------------------------------------------------------

    /// Appends a chat message to a meeting's history.
    async fn append_chat(&self, code: &str, rec: &ChatRecord) -> StoreResult<()>;
    /// The last `limit` (at most [`CHAT_KEEP`]) chat messages of a meeting, oldest first.
    async fn chat_history(&self, code: &str, limit: usize) -> StoreResult<Vec<ChatRecord>>;

    // ---- shared rate limits ------------------------------------------------------------

    /// Counts one attempt of `scope` (e.g. `login-ip`) by `key` in the current one-minute
    /// window and says whether it stays within `per_minute`. Refused attempts count too, so
    /// hammering does not reopen the window.
    async fn rate_check(
        &self,
        scope: &str,
        key: &str,
        now: DateTime<Utc>,
        per_minute: u32,
    ) -> StoreResult<RateDecision>;

    // ---- audits ------------------------------------------------------------------------

    /// Every stored key and value, raw. For audits and tests (e.g. "no token in the clear");
    /// reads everything, so never call it on a hot path.
    async fn raw_entries(&self) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>>;
}

/// Handle to the state; cheap to clone and safe to share between tasks.
#[derive(Clone)]
pub struct Store(Arc<dyn Backend>);

impl std::ops::Deref for Store {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl Store {
    /// Opens (or creates) the embedded sled database in `dir`.
    pub fn open(dir: &std::path::Path) -> StoreResult<Self> {
        Ok(Self(Arc::new(SledStore::open(dir)?)))
    }

    /// A throw-away in-memory sled database, for tests and benchmarks.
    pub fn temporary() -> StoreResult<Self> {
        Ok(Self(Arc::new(SledStore::temporary()?)))
    }

    /// The shared JetStream KV state of a cluster, reached through `client`. Creates the
    /// buckets when they do not exist; `prefix` names them (`<prefix>_users`, …).
    pub async fn kv(client: async_nats::Client, prefix: &str) -> StoreResult<Self> {
        Ok(Self(Arc::new(KvStore::open(client, prefix).await?)))
    }

    /// Wraps any backend.
    pub fn from_backend(b: impl Backend) -> Self {
        Self(Arc::new(b))
    }
}

/// The one-minute window `now` falls in, and the seconds until it ends.
pub(crate) fn rate_window(now: DateTime<Utc>) -> (i64, u64) {
    let secs = now.timestamp();
    let minute = secs.div_euclid(60);
    (minute, (60 - secs.rem_euclid(60)).max(1) as u64)
}

/// Token expiry record shared by both backends.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct TokenRecord {
    pub user_id: String,
    pub expires_at: DateTime<Utc>,
}

/// The record behind a single-use token that was just taken (removed): refused when there was
/// none (never issued, or already used) or when it had expired. Both backends answer alike.
pub(crate) fn taken<T: serde::de::DeserializeOwned>(
    value: Option<impl AsRef<[u8]>>,
    now: DateTime<Utc>,
    expires_at: impl Fn(&T) -> DateTime<Utc>,
) -> StoreResult<T> {
    let rec: T = dec(value.ok_or(StoreError::TokenInvalid)?.as_ref())?;
    if expires_at(&rec) <= now {
        return Err(StoreError::TokenExpired);
    }
    Ok(rec)
}

pub(crate) fn enc<T: serde::Serialize>(v: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn dec<T: serde::de::DeserializeOwned>(b: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(b).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests;
