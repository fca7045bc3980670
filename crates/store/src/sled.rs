//! The embedded backend: one sled database with a tree per kind of record. Used when the
//! server runs alone (no `--nats-url`). Its layout is unchanged from before the storage trait.

use chrono::{DateTime, Duration, Utc};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use crate::{
    dec, enc, normalize_email, rate_window, taken, token_digest, Backend, ChatRecord, JoinGrant,
    Meeting, RateDecision, Session, StoreError, StoreResult, TokenRecord, User, SCHEMA_VERSION,
};

/// Handle to the database; cheap to clone and safe to share between threads.
#[derive(Clone)]
pub struct SledStore {
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
    limits: sled::Tree,
}

fn index_key(prefix: &str, code: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 1 + code.len());
    k.extend_from_slice(prefix.as_bytes());
    k.push(0);
    k.extend_from_slice(code.as_bytes());
    k
}

impl SledStore {
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
            limits: db.open_tree("limits")?,
            db,
        })
    }
}

#[async_trait::async_trait]
impl Backend for SledStore {
    fn kind(&self) -> &'static str {
        "sled"
    }

    fn is_available(&self) -> bool {
        true
    }

    /// Makes every write so far durable. Call before acknowledging a user action.
    async fn flush(&self) -> StoreResult<()> {
        self.db.flush_async().await?;
        Ok(())
    }

    // ---- users -------------------------------------------------------------------------

    /// Inserts a new user; fails with [`StoreError::EmailTaken`] if the address is in use.
    async fn create_user(&self, user: &User) -> StoreResult<()> {
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
    async fn update_user(&self, user: &User) -> StoreResult<()> {
        self.users.insert(user.id.as_bytes(), enc(user)?)?;
        Ok(())
    }

    async fn user(&self, id: &str) -> StoreResult<Option<User>> {
        self.users.get(id.as_bytes())?.map(|v| dec(&v)).transpose()
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let email = normalize_email(email);
        match self.users_by_email.get(email.as_bytes())? {
            None => Ok(None),
            Some(id) => {
                self.user(std::str::from_utf8(&id).unwrap_or_default())
                    .await
            }
        }
    }

    async fn user_count(&self) -> StoreResult<usize> {
        Ok(self.users.len())
    }

    // ---- e-mail verification ------------------------------------------------------------

    /// Stores a verification token (by digest) for `user_id`, valid for `ttl`.
    async fn put_verify_token(
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
    async fn consume_verify_token(&self, token: &str, now: DateTime<Utc>) -> StoreResult<User> {
        let taken_value = self.verify_tokens.remove(token_digest(token))?;
        let rec = taken(taken_value, now, |t: &TokenRecord| t.expires_at)?;
        let mut user = self
            .user(&rec.user_id)
            .await?
            .ok_or(StoreError::TokenInvalid)?;
        user.verified = true;
        self.update_user(&user).await?;
        Ok(user)
    }

    // ---- sessions ----------------------------------------------------------------------

    async fn put_session(&self, token: &str, session: &Session) -> StoreResult<()> {
        self.sessions.insert(token_digest(token), enc(session)?)?;
        Ok(())
    }

    /// Looks a session up by its bearer token; expired sessions are removed and not returned.
    async fn session(&self, token: &str, now: DateTime<Utc>) -> StoreResult<Option<Session>> {
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

    async fn delete_session(&self, token: &str) -> StoreResult<()> {
        self.sessions.remove(token_digest(token))?;
        Ok(())
    }

    // ---- meetings ----------------------------------------------------------------------

    /// Inserts a meeting under its code with its host and invitee indexes.
    /// Fails with [`StoreError::CodeTaken`] if the code exists (the caller draws another).
    async fn create_meeting(&self, m: &Meeting) -> StoreResult<()> {
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
    async fn update_meeting(&self, old: &Meeting, new: &Meeting) -> StoreResult<()> {
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

    async fn meeting(&self, code: &str) -> StoreResult<Option<Meeting>> {
        self.meetings
            .get(code.as_bytes())?
            .map(|v| dec(&v))
            .transpose()
    }

    /// Meetings hosted by `user_id` or inviting `email`, without duplicates.
    async fn meetings_for(&self, user_id: &str, email: &str) -> StoreResult<Vec<Meeting>> {
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

    async fn meeting_count(&self) -> StoreResult<usize> {
        Ok(self.meetings.len())
    }

    // ---- join grants -------------------------------------------------------------------

    /// Stores a short-lived single-use join grant under the digest of `token`.
    async fn put_join_grant(&self, token: &str, grant: &JoinGrant) -> StoreResult<()> {
        self.join_grants.insert(token_digest(token), enc(grant)?)?;
        Ok(())
    }

    /// Takes a join grant: it is removed whether or not it is still valid, so a token is
    /// never accepted twice.
    async fn take_join_grant(&self, token: &str, now: DateTime<Utc>) -> StoreResult<JoinGrant> {
        let taken_value = self.join_grants.remove(token_digest(token))?;
        taken(taken_value, now, |g: &JoinGrant| g.expires_at)
    }

    /// Drops expired join grants, verification tokens and sessions. Returns how many.
    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<usize> {
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
    async fn append_chat(&self, code: &str, rec: &ChatRecord) -> StoreResult<()> {
        let mut key = index_key(code, "");
        key.extend_from_slice(&rec.id.to_be_bytes());
        self.chat.insert(key, enc(rec)?)?;
        Ok(())
    }

    /// The last `limit` chat messages of a meeting, oldest first.
    async fn chat_history(&self, code: &str, limit: usize) -> StoreResult<Vec<ChatRecord>> {
        let prefix = index_key(code, "");
        let mut out: Vec<ChatRecord> = Vec::new();
        for kv in self
            .chat
            .scan_prefix(&prefix)
            .rev()
            .take(limit.min(crate::CHAT_KEEP))
        {
            let (_, v) = kv?;
            out.push(dec(&v)?);
        }
        out.reverse();
        Ok(out)
    }

    // ---- shared rate limits ------------------------------------------------------------

    async fn rate_check(
        &self,
        scope: &str,
        key: &str,
        now: DateTime<Utc>,
        per_minute: u32,
    ) -> StoreResult<RateDecision> {
        let (minute, retry_after_secs) = rate_window(now);
        let mut k = index_key(scope, key);
        k.push(0);
        k.extend_from_slice(&minute.to_be_bytes());
        let count = self
            .limits
            .update_and_fetch(&k, |old| {
                let n = old
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_be_bytes)
                    .unwrap_or(0);
                Some(n.saturating_add(1).to_be_bytes().to_vec())
            })?
            .and_then(|b| b.as_ref().try_into().ok())
            .map(u32::from_be_bytes)
            .unwrap_or(u32::MAX);
        // Old windows are never read again; drop the previous minute's counter lazily.
        let mut prev = index_key(scope, key);
        prev.push(0);
        prev.extend_from_slice(&(minute - 1).to_be_bytes());
        self.limits.remove(prev)?;
        Ok(if count <= per_minute.max(1) {
            RateDecision::Allowed
        } else {
            RateDecision::Limited { retry_after_secs }
        })
    }

    async fn raw_entries(&self) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for name in self.db.tree_names() {
            let tree = self.db.open_tree(name)?;
            for kv in tree.iter() {
                let (k, v) = kv?;
                out.push((k.to_vec(), v.to_vec()));
            }
        }
        Ok(out)
    }
}

fn tx_result(res: Result<(), TransactionError<StoreError>>) -> StoreResult<()> {
    match res {
        Ok(()) => Ok(()),
        Err(TransactionError::Abort(e)) => Err(e),
        Err(TransactionError::Storage(e)) => Err(StoreError::Db(e)),
    }
}
