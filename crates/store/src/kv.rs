//! The cluster backend: NATS JetStream key-value buckets shared by every node.
//!
//! Layout (docs/CLUSTER.md section 3): one bucket per kind of record, history 1, file storage.
//! Every key is hex-encoded (KV keys allow only `[-/_=.A-Za-z0-9]`); token keys are the hex of
//! the token's SHA-256, never the token. Uniqueness uses `create`, single use uses
//! `delete_expect_revision`, read-modify-write uses `update(…, revision)` in a bounded loop.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use async_nats::{
    connection::State,
    jetstream::{
        self,
        kv::{self, CreateErrorKind, Operation, UpdateErrorKind},
    },
};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use futures::TryStreamExt;

use crate::{
    dec, enc, normalize_email, rate_window, taken, token_digest, Backend, ChatRecord, JoinGrant,
    Meeting, RateDecision, Session, StoreError, StoreResult, TokenRecord, User, CHAT_KEEP,
};

/// How many compare-and-set rounds a read-modify-write tries before giving up.
const CAS_ROUNDS: usize = 16;
/// JetStream requests fail after this long instead of hanging a request handler.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// A meeting's stored chat stays below this, dropping the oldest messages first (NATS's
/// default message limit is 1 MiB).
const CHAT_MAX_BYTES: usize = 512 * 1024;
/// Join grants live minutes; their bucket forgets anything older than a day, including the
/// delete markers that consumed grants leave behind.
const JOIN_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Rate windows are one minute; two keep the current and the previous one.
const LIMITS_MAX_AGE: Duration = Duration::from_secs(120);

/// JetStream KV state shared by the nodes of a cluster.
pub struct KvStore {
    client: async_nats::Client,
    users: kv::Store,
    emails: kv::Store,
    verify: kv::Store,
    sessions: kv::Store,
    meetings: kv::Store,
    by_host: kv::Store,
    by_invitee: kv::Store,
    join: kv::Store,
    chat: kv::Store,
    limits: kv::Store,
    /// This node's turns on keys for read-modify-writes.
    turns: Turns,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn hex_key(s: &str) -> String {
    if s.is_empty() {
        // KV keys may not be empty; no real id or address is.
        return "_".into();
    }
    hex::encode(s.as_bytes())
}

fn token_key(token: &str) -> String {
    hex::encode(token_digest(token))
}

/// The current value (None when absent or deleted) and the revision to compare against
/// (None when the key never existed).
struct Current {
    value: Option<bytes::Bytes>,
    revision: Option<u64>,
}

impl KvStore {
    /// Opens the buckets named `<prefix>_<kind>`, creating those that do not exist.
    pub async fn open(client: async_nats::Client, prefix: &str) -> StoreResult<Self> {
        let mut js = jetstream::new(client.clone());
        js.set_timeout(REQUEST_TIMEOUT);
        let b = |name: &str, max_age: Duration| {
            let js = js.clone();
            let bucket = format!("{prefix}_{name}");
            async move { bucket_of(&js, bucket, max_age).await }
        };
        let none = Duration::ZERO;
        Ok(Self {
            users: b("users", none).await?,
            emails: b("emails", none).await?,
            verify: b("verify", none).await?,
            sessions: b("sessions", none).await?,
            meetings: b("meetings", none).await?,
            by_host: b("by_host", none).await?,
            by_invitee: b("by_invitee", none).await?,
            join: b("join", JOIN_MAX_AGE).await?,
            chat: b("chat", none).await?,
            limits: b("limits", LIMITS_MAX_AGE).await?,
            turns: Turns::default(),
            client,
        })
    }

    fn ready(&self) -> StoreResult<()> {
        if self.client.connection_state() == State::Connected {
            Ok(())
        } else {
            Err(StoreError::Unavailable("not connected to NATS".into()))
        }
    }

    fn buckets(&self) -> [&kv::Store; 10] {
        [
            &self.users,
            &self.emails,
            &self.verify,
            &self.sessions,
            &self.meetings,
            &self.by_host,
            &self.by_invitee,
            &self.join,
            &self.chat,
            &self.limits,
        ]
    }
}

/// Opens (creating if needed) a KV bucket with history 1 and file storage; for cluster state
/// outside the store, such as the node directory. `max_age` zero keeps entries forever.
pub async fn open_bucket(
    client: &async_nats::Client,
    bucket: &str,
    max_age: Duration,
) -> StoreResult<kv::Store> {
    let mut js = jetstream::new(client.clone());
    js.set_timeout(REQUEST_TIMEOUT);
    bucket_of(&js, bucket.to_owned(), max_age).await
}

async fn bucket_of(
    js: &jetstream::Context,
    bucket: String,
    max_age: Duration,
) -> StoreResult<kv::Store> {
    if let Ok(s) = js.get_key_value(bucket.clone()).await {
        return Ok(s);
    }
    // The stream a KV bucket is, made by hand: the client's `create_key_value` first reads
    // account fields that nats-server 2.9 (Debian 12) does not send, and fails.
    let config = jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        // The duplicate window may not outlast the records.
        duplicate_window: if max_age.is_zero() {
            Duration::from_secs(120)
        } else {
            max_age.min(Duration::from_secs(120))
        },
        storage: jetstream::stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    };
    // Two nodes may race to create it; the loser finds it made.
    if let Err(e) = js.get_or_create_stream(config).await {
        return Err(unavailable(e));
    }
    js.get_key_value(bucket).await.map_err(unavailable)
}

async fn current(kv: &kv::Store, key: &str) -> StoreResult<Current> {
    match kv.entry(key).await.map_err(unavailable)? {
        None => Ok(Current {
            value: None,
            revision: None,
        }),
        Some(e) => Ok(Current {
            value: (e.operation == Operation::Put).then_some(e.value),
            revision: Some(e.revision),
        }),
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(
    kv: &kv::Store,
    key: &str,
) -> StoreResult<Option<T>> {
    match kv.get(key).await.map_err(unavailable)? {
        None => Ok(None),
        Some(b) => dec(&b).map(Some),
    }
}

async fn put_json<T: serde::Serialize>(kv: &kv::Store, key: &str, v: &T) -> StoreResult<()> {
    kv.put(key, enc(v)?.into()).await.map_err(unavailable)?;
    Ok(())
}

/// Writes `value` only if `key` is still at `cur`'s revision. `Ok(false)`: someone else won.
async fn compare_and_set(
    kv: &kv::Store,
    key: &str,
    cur: &Current,
    value: Vec<u8>,
) -> StoreResult<bool> {
    let res = match cur.revision {
        Some(rev) => kv.update(key, value.into(), rev).await,
        None => match kv.create(key, value.into()).await {
            Ok(r) => Ok(r),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(unavailable(e)),
        },
    };
    match res {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
        Err(e) => Err(unavailable(e)),
    }
}

/// Read-modify-write under compare-and-set. `f` gets the current value and returns the new
/// one (None: leave it) and the result.
async fn modify<R>(
    turns: &Turns,
    kv: &kv::Store,
    key: &str,
    mut f: impl FnMut(Option<&[u8]>) -> StoreResult<(Option<Vec<u8>>, R)> + Send,
) -> StoreResult<R> {
    // Writers of this key on this node take turns here, so only other nodes can make a
    // compare-and-set lose: a burst on one node costs one round trip per writer instead of
    // a storm of lost races.
    let _turn = turns.take(&kv.name, key).await;
    for round in 0..CAS_ROUNDS {
        let cur = current(kv, key).await?;
        let (new, out) = f(cur.value.as_deref())?;
        let Some(new) = new else {
            return Ok(out);
        };
        if compare_and_set(kv, key, &cur, new).await? {
            return Ok(out);
        }
        // Lost the race: wait a random moment that grows with each loss, so a burst of
        // writers on one key (two dozen joins at once share the per-IP join counter) spreads
        // out instead of colliding again in lockstep.
        tokio::time::sleep(backoff(round)).await;
    }
    Err(StoreError::Contended(format!("{}/{key}", kv.name)))
}

/// A random wait below `2^round` ms, at most 64 ms (the clock's nanoseconds are random
/// enough to break lockstep; this is not a secret). Sixteen rounds wait at most about 0.8 s
/// in all, time for a few dozen nodes to take their turns on one key.
fn backoff(round: usize) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let cap_us = 1000u64 << round.min(6);
    Duration::from_micros(u64::from(nanos) % cap_us)
}

/// Turns on keys for one node's read-modify-writes: one async mutex per `bucket/key` with a
/// write in flight. Each node (each [`KvStore`], and any other owner of buckets) has its own,
/// so writers on one node queue while different nodes still race, as they must, through
/// compare-and-set. The table holds only weak entries; the dead ones are swept once it grows
/// past a few hundred.
#[derive(Default)]
pub struct Turns(std::sync::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>);

impl Turns {
    /// Waits for this node's turn to modify `bucket/key`.
    async fn take(&self, bucket: &str, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut t = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if t.len() >= 256 {
                t.retain(|_, w| w.strong_count() > 0);
            }
            let name = format!("{bucket}/{key}");
            match t.get(&name).and_then(Weak::upgrade) {
                Some(l) => l,
                None => {
                    let l = Arc::new(tokio::sync::Mutex::new(()));
                    t.insert(name, Arc::downgrade(&l));
                    l
                }
            }
        };
        lock.lock_owned().await
    }
}

/// Adds one to the decimal counter under `key` (compare-and-set, so racing nodes each get
/// their own value) and returns the new value; a missing counter counts from 0.
pub async fn increment(turns: &Turns, kv: &kv::Store, key: &str) -> StoreResult<u64> {
    modify(turns, kv, key, |cur| {
        let n = match cur {
            Some(b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| StoreError::Corrupt(format!("counter {key}")))?,
            None => 0,
        } + 1;
        Ok((Some(n.to_string().into_bytes()), n))
    })
    .await
}

/// Takes a single-use record: reads it and deletes exactly that revision. Of racing takers
/// only one gets `Some`.
async fn take(kv: &kv::Store, key: &str) -> StoreResult<Option<bytes::Bytes>> {
    let cur = current(kv, key).await?;
    let (Some(value), Some(rev)) = (cur.value, cur.revision) else {
        return Ok(None);
    };
    match kv.delete_expect_revision(key, Some(rev)).await {
        Ok(()) => Ok(Some(value)),
        Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(None),
        Err(e) => Err(unavailable(e)),
    }
}

/// Adds or removes `code` in a JSON list of meeting codes.
async fn index_edit(
    turns: &Turns,
    kv: &kv::Store,
    key: &str,
    code: &str,
    add: bool,
) -> StoreResult<()> {
    modify(turns, kv, key, |cur| {
        let mut codes: Vec<String> = cur.map(dec).transpose()?.unwrap_or_default();
        let had = codes.iter().any(|c| c == code);
        if add == had {
            return Ok((None, ()));
        }
        if add {
            codes.push(code.to_owned());
        } else {
            codes.retain(|c| c != code);
        }
        Ok((Some(enc(&codes)?), ()))
    })
    .await
}

async fn keys_of(kv: &kv::Store) -> StoreResult<Vec<String>> {
    let keys = kv.keys().await.map_err(unavailable)?;
    keys.try_collect().await.map_err(unavailable)
}

async fn count_of(kv: &kv::Store) -> StoreResult<usize> {
    // Fresh stream state (the bucket's own `status` answers from a cache). With history 1 a
    // stream holds one message per key; the counted buckets never delete.
    let info = kv.stream.get_info().await.map_err(unavailable)?;
    Ok(info.state.messages as usize)
}

/// Deletes the entries of `kv` whose decoded record `expired` says so. Returns how many.
async fn purge_where<T: serde::de::DeserializeOwned>(
    kv: &kv::Store,
    expired: impl Fn(&T) -> bool + Send + Sync,
) -> StoreResult<usize> {
    let mut n = 0;
    for key in keys_of(kv).await? {
        let cur = current(kv, &key).await?;
        let (Some(v), Some(rev)) = (cur.value, cur.revision) else {
            continue;
        };
        if dec::<T>(&v).map(|r| expired(&r)).unwrap_or(true) {
            match kv.delete_expect_revision(&key, Some(rev)).await {
                Ok(()) => n += 1,
                // Changed meanwhile (renewed or taken): not ours to drop.
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
    }
    Ok(n)
}

#[async_trait::async_trait]
impl Backend for KvStore {
    fn kind(&self) -> &'static str {
        "nats-kv"
    }

    fn is_available(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    async fn flush(&self) -> StoreResult<()> {
        // JetStream acknowledges a write once it is stored; there is nothing left to flush.
        self.ready()
    }

    // ---- users -------------------------------------------------------------------------

    async fn create_user(&self, user: &User) -> StoreResult<()> {
        self.ready()?;
        let email_key = hex_key(&normalize_email(&user.email));
        match self.emails.create(&email_key, user.id.clone().into()).await {
            Ok(_) => {}
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                return Err(StoreError::EmailTaken)
            }
            Err(e) => return Err(unavailable(e)),
        }
        if let Err(e) = put_json(&self.users, &hex_key(&user.id), user).await {
            // Free the address again so a retry can succeed.
            let _ = self.emails.delete(&email_key).await;
            return Err(e);
        }
        Ok(())
    }

    async fn update_user(&self, user: &User) -> StoreResult<()> {
        self.ready()?;
        put_json(&self.users, &hex_key(&user.id), user).await
    }

    async fn user(&self, id: &str) -> StoreResult<Option<User>> {
        self.ready()?;
        get_json(&self.users, &hex_key(id)).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        self.ready()?;
        let key = hex_key(&normalize_email(email));
        match self.emails.get(key).await.map_err(unavailable)? {
            None => Ok(None),
            Some(id) => {
                self.user(std::str::from_utf8(&id).unwrap_or_default())
                    .await
            }
        }
    }

    async fn user_count(&self) -> StoreResult<usize> {
        self.ready()?;
        count_of(&self.users).await
    }

    // ---- e-mail verification ------------------------------------------------------------

    async fn put_verify_token(
        &self,
        token: &str,
        user_id: &str,
        now: DateTime<Utc>,
        ttl: ChronoDuration,
    ) -> StoreResult<()> {
        self.ready()?;
        let rec = TokenRecord {
            user_id: user_id.to_owned(),
            expires_at: now + ttl,
        };
        put_json(&self.verify, &token_key(token), &rec).await
    }

    async fn consume_verify_token(&self, token: &str, now: DateTime<Utc>) -> StoreResult<User> {
        self.ready()?;
        let taken_value = take(&self.verify, &token_key(token)).await?;
        let rec = taken(taken_value, now, |t: &TokenRecord| t.expires_at)?;
        modify(&self.turns, &self.users, &hex_key(&rec.user_id), |cur| {
            let mut user: User = cur.map(dec).transpose()?.ok_or(StoreError::TokenInvalid)?;
            user.verified = true;
            Ok((Some(enc(&user)?), user))
        })
        .await
    }

    // ---- sessions ----------------------------------------------------------------------

    async fn put_session(&self, token: &str, session: &Session) -> StoreResult<()> {
        self.ready()?;
        put_json(&self.sessions, &token_key(token), session).await
    }

    async fn session(&self, token: &str, now: DateTime<Utc>) -> StoreResult<Option<Session>> {
        self.ready()?;
        let key = token_key(token);
        match get_json::<Session>(&self.sessions, &key).await? {
            Some(s) if s.expires_at <= now => {
                self.sessions.delete(&key).await.map_err(unavailable)?;
                Ok(None)
            }
            other => Ok(other),
        }
    }

    async fn delete_session(&self, token: &str) -> StoreResult<()> {
        self.ready()?;
        self.sessions
            .delete(token_key(token))
            .await
            .map_err(unavailable)
    }

    // ---- meetings ----------------------------------------------------------------------

    async fn create_meeting(&self, m: &Meeting) -> StoreResult<()> {
        self.ready()?;
        match self.meetings.create(hex_key(&m.code), enc(m)?.into()).await {
            Ok(_) => {}
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                return Err(StoreError::CodeTaken)
            }
            Err(e) => return Err(unavailable(e)),
        }
        index_edit(
            &self.turns,
            &self.by_host,
            &hex_key(&m.host_id),
            &m.code,
            true,
        )
        .await?;
        for inv in &m.invitees {
            index_edit(
                &self.turns,
                &self.by_invitee,
                &hex_key(&normalize_email(inv)),
                &m.code,
                true,
            )
            .await?;
        }
        Ok(())
    }

    async fn update_meeting(&self, old: &Meeting, new: &Meeting) -> StoreResult<()> {
        self.ready()?;
        put_json(&self.meetings, &hex_key(&new.code), new).await?;
        // The record is the truth; the index follows it (meetings_for re-checks the record,
        // so an index entry left behind by a failure here is never shown).
        let norm = |v: &[String]| v.iter().map(|e| normalize_email(e)).collect::<Vec<_>>();
        let (before, after) = (norm(&old.invitees), norm(&new.invitees));
        for inv in before.iter().filter(|e| !after.contains(e)) {
            index_edit(
                &self.turns,
                &self.by_invitee,
                &hex_key(inv),
                &old.code,
                false,
            )
            .await?;
        }
        for inv in after.iter().filter(|e| !before.contains(e)) {
            index_edit(
                &self.turns,
                &self.by_invitee,
                &hex_key(inv),
                &new.code,
                true,
            )
            .await?;
        }
        Ok(())
    }

    async fn meeting(&self, code: &str) -> StoreResult<Option<Meeting>> {
        self.ready()?;
        get_json(&self.meetings, &hex_key(code)).await
    }

    async fn meetings_for(&self, user_id: &str, email: &str) -> StoreResult<Vec<Meeting>> {
        self.ready()?;
        let email = normalize_email(email);
        let mut codes: Vec<String> = get_json(&self.by_host, &hex_key(user_id))
            .await?
            .unwrap_or_default();
        let invited: Vec<String> = get_json(&self.by_invitee, &hex_key(&email))
            .await?
            .unwrap_or_default();
        for c in invited {
            if !codes.contains(&c) {
                codes.push(c);
            }
        }
        let mut out = Vec::with_capacity(codes.len());
        for c in codes {
            if let Some(m) = self.meeting(&c).await? {
                let m: Meeting = m;
                if m.host_id == user_id || m.invitees.iter().any(|i| normalize_email(i) == email) {
                    out.push(m);
                }
            }
        }
        Ok(out)
    }

    async fn meeting_count(&self) -> StoreResult<usize> {
        self.ready()?;
        count_of(&self.meetings).await
    }

    // ---- join grants -------------------------------------------------------------------

    async fn put_join_grant(&self, token: &str, grant: &JoinGrant) -> StoreResult<()> {
        self.ready()?;
        put_json(&self.join, &token_key(token), grant).await
    }

    async fn take_join_grant(&self, token: &str, now: DateTime<Utc>) -> StoreResult<JoinGrant> {
        self.ready()?;
        let taken_value = take(&self.join, &token_key(token)).await?;
        taken(taken_value, now, |g: &JoinGrant| g.expires_at)
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> StoreResult<usize> {
        self.ready()?;
        let mut n = purge_where(&self.join, |g: &JoinGrant| g.expires_at <= now).await?;
        n += purge_where(&self.verify, |t: &TokenRecord| t.expires_at <= now).await?;
        n += purge_where(&self.sessions, |s: &Session| s.expires_at <= now).await?;
        Ok(n)
    }

    // ---- chat --------------------------------------------------------------------------

    async fn append_chat(&self, code: &str, rec: &ChatRecord) -> StoreResult<()> {
        self.ready()?;
        modify(&self.turns, &self.chat, &hex_key(code), |cur| {
            let mut list: Vec<ChatRecord> = cur.map(dec).transpose()?.unwrap_or_default();
            // Ids increase within a meeting; keep the list sorted even if appends race.
            let at = list.partition_point(|c| c.id < rec.id);
            if list.get(at).is_some_and(|c| c.id == rec.id) {
                return Ok((None, ()));
            }
            list.insert(at, rec.clone());
            let excess = list.len().saturating_sub(CHAT_KEEP);
            list.drain(..excess);
            let mut bytes = enc(&list)?;
            while bytes.len() > CHAT_MAX_BYTES && list.len() > 1 {
                let cut = (list.len() / 4).max(1);
                list.drain(..cut);
                bytes = enc(&list)?;
            }
            Ok((Some(bytes), ()))
        })
        .await
    }

    async fn chat_history(&self, code: &str, limit: usize) -> StoreResult<Vec<ChatRecord>> {
        self.ready()?;
        let mut list: Vec<ChatRecord> = get_json(&self.chat, &hex_key(code))
            .await?
            .unwrap_or_default();
        let skip = list.len().saturating_sub(limit.min(CHAT_KEEP));
        list.drain(..skip);
        Ok(list)
    }

    // ---- shared rate limits ------------------------------------------------------------

    async fn rate_check(
        &self,
        scope: &str,
        key: &str,
        now: DateTime<Utc>,
        per_minute: u32,
    ) -> StoreResult<RateDecision> {
        self.ready()?;
        let (minute, retry_after_secs) = rate_window(now);
        let k = format!("{}.{}.{minute}", hex_key(scope), hex_key(key));
        let count = modify(&self.turns, &self.limits, &k, |cur| {
            let n: u32 = cur
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let n = n.saturating_add(1);
            Ok((Some(n.to_string().into_bytes()), n))
        })
        .await?;
        Ok(if count <= per_minute.max(1) {
            RateDecision::Allowed
        } else {
            RateDecision::Limited { retry_after_secs }
        })
    }

    // ---- audits ------------------------------------------------------------------------

    async fn raw_entries(&self) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.ready()?;
        let mut out = Vec::new();
        for b in self.buckets() {
            for key in keys_of(b).await? {
                if let Some(v) = b.get(key.clone()).await.map_err(unavailable)? {
                    out.push((format!("{}/{key}", b.name).into_bytes(), v.to_vec()));
                }
            }
        }
        Ok(out)
    }
}

/// Connects to NATS the way every node does: named, reconnecting forever with a backoff of at
/// most one second (docs/CLUSTER.md section 10).
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, StoreError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(REQUEST_TIMEOUT)
        .max_reconnects(None)
        .reconnect_delay_callback(|attempt| {
            Duration::from_millis((100 * attempt as u64).clamp(100, 1000))
        })
        .connect(url)
        .await
        .map_err(unavailable)
}
