//! Persistent state of QuicMeet: users, e-mail verification tokens, login sessions, meetings,
//! join grants and chat history, kept in one sled database.
//!
//! This crate owns the on-disk layout and the security-sensitive primitives that go with it
//! (password hashing, token generation, meeting codes). It never does network I/O and never
//! stores a bearer secret in the clear: tokens are stored as SHA-256 digests, passwords as
//! argon2id hashes. Writes that acknowledge a user action are followed by [`Store::flush`] in
//! the caller before it answers, so an acknowledged write survives a crash.

mod codes;
mod error;
mod model;
mod secrets;

pub use codes::{is_meeting_code, new_meeting_code};
pub use error::{StoreError, StoreResult};
pub use model::{ChatRecord, JoinGrant, JoinRole, Meeting, MeetingKind, Session, User};
pub use secrets::{hash_password, new_token, token_digest, verify_password, PasswordCheck};

use chrono::{DateTime, Duration, Utc};
use serde::{de::DeserializeOwned, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

/// The layout version written by this build. Bump it with a migration in [`Store::open`].
pub const SCHEMA_VERSION: u32 = 1;

/// Handle to the database; cheap to clone and safe to share between threads.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    users: sled::Tree,
    users_by_email: sled::Tree,
    verify_tokens: sled::Tree,
    sessions: sled::Tree,
    meetings: sled::Tree,
    meetings_by_host: sled::Tree,
    meetings_by_invitee: sled::Tree,
    join_grants: sled::Tree,
    chat: sled::Tree,
}

fn enc<T: Serialize>(v: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn dec<T: DeserializeOwned>(b: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(b).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn index_key(prefix: &str, code: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 1 + code.len());
    k.extend_from_slice(prefix.as_bytes());
    k.push(0);
    k.extend_from_slice(code.as_bytes());
    k
}

/// Normalises an e-mail address for lookups: trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

impl Store {
    /// Opens (or creates) the database in `dir`, checking the schema version.
    pub fn open(dir: &std::path::Path) -> StoreResult<Self> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(500))
            .open()?;
        Self::from_db(db)
    }

    /// A throw-away in-memory database, for tests and benchmarks.
    pub fn temporary() -> StoreResult<Self> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> StoreResult<Self> {
        match db.get(b"schema_version")? {
            None => {
                db.insert(b"schema_version", &SCHEMA_VERSION.to_be_bytes())?;
            }
            Some(v) => {
                let found = u32::from_be_bytes(
                    v.as_ref()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("schema_version".into()))?,
                );
                if found > SCHEMA_VERSION {
                    return Err(StoreError::SchemaTooNew {
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                // Version 1 is the first layout: nothing to migrate yet.
            }
        }
        Ok(Self {
            users: db.open_tree("users")?,
            users_by_email: db.open_tree("users_by_email")?,
            verify_tokens: db.open_tree("verify_tokens")?,
            sessions: db.open_tree("sessions")?,
            meetings: db.open_tree("meetings")?,
            meetings_by_host: db.open_tree("meetings_by_host")?,
            meetings_by_invitee: db.open_tree("meetings_by_invitee")?,
            join_grants: db.open_tree("join_grants")?,
            chat: db.open_tree("chat")?,
            db,
        })
    }

    /// Makes every write so far durable. Call before acknowledging a user action.
    pub async fn flush(&self) -> StoreResult<()> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// Blocking variant of [`Store::flush`].
    pub fn flush_blocking(&self) -> StoreResult<()> {
        self.db.flush()?;
        Ok(())
    }

    // ---- users -------------------------------------------------------------------------

    /// Inserts a new user; fails with [`StoreError::EmailTaken`] if the address is in use.
    pub fn create_user(&self, user: &User) -> StoreResult<()> {
        let email = normalize_email(&user.email);
        let value = enc(user)?;
        let res = (&self.users, &self.users_by_email).transaction(|(users, by_email)| {
            if by_email.get(email.as_bytes())?.is_some() {
                return Err(ConflictableTransactionError::Abort(StoreError::EmailTaken));
            }
            by_email.insert(email.as_bytes(), user.id.as_bytes())?;
            users.insert(user.id.as_bytes(), value.clone())?;
            Ok(())
        });
        tx_result(res)
    }

    /// Replaces a stored user record (same id and e-mail).
    pub fn update_user(&self, user: &User) -> StoreResult<()> {
        self.users.insert(user.id.as_bytes(), enc(user)?)?;
        Ok(())
    }

    pub fn user(&self, id: &str) -> StoreResult<Option<User>> {
        self.users.get(id.as_bytes())?.map(|v| dec(&v)).transpose()
    }

    pub fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let email = normalize_email(email);
        match self.users_by_email.get(email.as_bytes())? {
            None => Ok(None),
            Some(id) => self.user(std::str::from_utf8(&id).unwrap_or_default()),
        }
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    // ---- e-mail verification ------------------------------------------------------------

    /// Stores a verification token (by digest) for `user_id`, valid for `ttl`.
    pub fn put_verify_token(
        &self,
        token: &str,
        user_id: &str,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> StoreResult<()> {
        let rec = TokenRecord {
            user_id: user_id.to_owned(),
            expires_at: now + ttl,
        };
        self.verify_tokens.insert(token_digest(token), enc(&rec)?)?;
        Ok(())
    }

    /// Consumes a verification token: single use, refused once expired.
    /// Returns the verified user.
    pub fn consume_verify_token(&self, token: &str, now: DateTime<Utc>) -> StoreResult<User> {
        let rec: TokenRecord = match self.verify_tokens.remove(token_digest(token))? {
            None => return Err(StoreError::TokenInvalid),
            Some(v) => dec(&v)?,
        };
        if rec.expires_at <= now {
            return Err(StoreError::TokenExpired);
        }
        let mut user = self.user(&rec.user_id)?.ok_or(StoreError::TokenInvalid)?;
        user.verified = true;
        self.update_user(&user)?;
        Ok(user)
    }

    // ---- sessions ----------------------------------------------------------------------

    pub fn put_session(&self, token: &str, session: &Session) -> StoreResult<()> {
        self.sessions.insert(token_digest(token), enc(session)?)?;
        Ok(())
    }

    /// Looks a session up by its bearer token; expired sessions are removed and not returned.
    pub fn session(&self, token: &str, now: DateTime<Utc>) -> StoreResult<Option<Session>> {
        let key = token_digest(token);
        match self.sessions.get(key)? {
            None => Ok(None),
            Some(v) => {
                let s: Session = dec(&v)?;
                if s.expires_at <= now {
                    self.sessions.remove(key)?;
                    Ok(None)
                } else {
                    Ok(Some(s))
                }
            }
        }
    }

    pub fn delete_session(&self, token: &str) -> StoreResult<()> {
        self.sessions.remove(token_digest(token))?;
        Ok(())
    }

    // ---- meetings ----------------------------------------------------------------------

    /// Inserts a meeting under its code with its host and invitee indexes.
    /// Fails with [`StoreError::CodeTaken`] if the code exists (the caller draws another).
    pub fn create_meeting(&self, m: &Meeting) -> StoreResult<()> {
        let value = enc(m)?;
        let res = (
            &self.meetings,
            &self.meetings_by_host,
            &self.meetings_by_invitee,
        )
            .transaction(|(meetings, by_host, by_inv)| {
                if meetings.get(m.code.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::CodeTaken));
                }
                meetings.insert(m.code.as_bytes(), value.clone())?;
                by_host.insert(index_key(&m.host_id, &m.code), &[])?;
                for inv in &m.invitees {
                    by_inv.insert(index_key(&normalize_email(inv), &m.code), &[])?;
                }
                Ok(())
            });
        tx_result(res)
    }

    /// Replaces a meeting, keeping the invitee index in step with `old`'s invitees.
    pub fn update_meeting(&self, old: &Meeting, new: &Meeting) -> StoreResult<()> {
        let value = enc(new)?;
        let res = (&self.meetings, &self.meetings_by_invitee).transaction(|(meetings, by_inv)| {
            for inv in &old.invitees {
                by_inv.remove(index_key(&normalize_email(inv), &old.code))?;
            }
            for inv in &new.invitees {
                by_inv.insert(index_key(&normalize_email(inv), &new.code), &[])?;
            }
            meetings.insert(new.code.as_bytes(), value.clone())?;
            Ok(())
        });
        tx_result(res)
    }

    pub fn meeting(&self, code: &str) -> StoreResult<Option<Meeting>> {
        self.meetings
            .get(code.as_bytes())?
            .map(|v| dec(&v))
            .transpose()
    }

    /// Meetings hosted by `user_id` or inviting `email`, without duplicates.
    pub fn meetings_for(&self, user_id: &str, email: &str) -> StoreResult<Vec<Meeting>> {
        let mut codes: Vec<Vec<u8>> = Vec::new();
        for prefix in [
            (&self.meetings_by_host, index_key(user_id, "")),
            (
                &self.meetings_by_invitee,
                index_key(&normalize_email(email), ""),
            ),
        ] {
            for kv in prefix.0.scan_prefix(&prefix.1) {
                let (k, _) = kv?;
                let code = k[prefix.1.len()..].to_vec();
                if !codes.contains(&code) {
                    codes.push(code);
                }
            }
        }
        let mut out = Vec::with_capacity(codes.len());
        for c in codes {
            if let Some(v) = self.meetings.get(&c)? {
                out.push(dec(&v)?);
            }
        }
        Ok(out)
    }

    pub fn meeting_count(&self) -> usize {
        self.meetings.len()
    }

    // ---- join grants -------------------------------------------------------------------

    /// Stores a short-lived single-use join grant under the digest of `token`.
    pub fn put_join_grant(&self, token: &str, grant: &JoinGrant) -> StoreResult<()> {
        self.join_grants.insert(token_digest(token), enc(grant)?)?;
        Ok(())
    }

    /// Takes a join grant: it is removed whether or not it is still valid, so a token is
    /// never accepted twice.
    pub fn take_join_grant(&self, token: &str, now: DateTime<Utc>) -> StoreResult<JoinGrant> {
        let g: JoinGrant = match self.join_grants.remove(token_digest(token))? {
            None => return Err(StoreError::TokenInvalid),
            Some(v) => dec(&v)?,
        };
        if g.expires_at <= now {
            return Err(StoreError::TokenExpired);
        }
        Ok(g)
    }

    /// Drops expired join grants, verification tokens and sessions. Returns how many.
    pub fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<usize> {
        let mut n = 0;
        for kv in self.join_grants.iter() {
            let (k, v) = kv?;
            if dec::<JoinGrant>(&v)
                .map(|g| g.expires_at <= now)
                .unwrap_or(true)
            {
                self.join_grants.remove(k)?;
                n += 1;
            }
        }
        for kv in self.verify_tokens.iter() {
            let (k, v) = kv?;
            if dec::<TokenRecord>(&v)
                .map(|g| g.expires_at <= now)
                .unwrap_or(true)
            {
                self.verify_tokens.remove(k)?;
                n += 1;
            }
        }
        for kv in self.sessions.iter() {
            let (k, v) = kv?;
            if dec::<Session>(&v)
                .map(|g| g.expires_at <= now)
                .unwrap_or(true)
            {
                self.sessions.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    // ---- chat --------------------------------------------------------------------------

    /// Appends a chat message to a meeting's history.
    pub fn append_chat(&self, code: &str, rec: &ChatRecord) -> StoreResult<()> {
        let mut key = index_key(code, "");
        key.extend_from_slice(&rec.id.to_be_bytes());
        self.chat.insert(key, enc(rec)?)?;
        Ok(())
    }

    /// The last `limit` chat messages of a meeting, oldest first.
    pub fn chat_history(&self, code: &str, limit: usize) -> StoreResult<Vec<ChatRecord>> {
        let prefix = index_key(code, "");
        let mut out: Vec<ChatRecord> = Vec::new();
        for kv in self.chat.scan_prefix(&prefix).rev().take(limit) {
            let (_, v) = kv?;
            out.push(dec(&v)?);
        }
        out.reverse();
        Ok(out)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TokenRecord {
    user_id: String,
    expires_at: DateTime<Utc>,
}

fn tx_result(res: Result<(), TransactionError<StoreError>>) -> StoreResult<()> {
    match res {
        Ok(()) => Ok(()),
        Err(TransactionError::Abort(e)) => Err(e),
        Err(TransactionError::Storage(e)) => Err(StoreError::Db(e)),
    }
}

#[cfg(test)]
mod tests;
