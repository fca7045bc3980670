//! The store test suite. Every behaviour test runs against both backends: sled, and JetStream
//! KV on a private nats-server started by the test. Each test gets two handles `a` and `b` on
//! the same state: clones for sled, two NATS connections (two "nodes") for KV.

use super::*;
use crate::nats_server::NatsServer;
use chrono::Duration;

fn user(email: &str) -> User {
    User {
        id: new_token(),
        name: "Ada".into(),
        email: email.into(),
        password_hash: hash_password("correct horse").unwrap(),
        verified: false,
        team: "example.org".into(),
        created_at: Utc::now(),
    }
}

fn meeting(host: &User, invitees: &[&str]) -> Meeting {
    Meeting {
        code: new_meeting_code(),
        title: "Standup".into(),
        start: Utc::now(),
        duration_minutes: 30,
        kind: MeetingKind::Private,
        host_id: host.id.clone(),
        host_name: host.name.clone(),
        host_email: host.email.clone(),
        team: host.team.clone(),
        invitees: invitees.iter().map(|s| s.to_string()).collect(),
        cancelled: false,
        created_at: Utc::now(),
        revision: 0,
        ended_at: None,
        p2p: true,
    }
}

async fn email_is_unique_case_insensitively(a: &Store, b: &Store) {
    a.create_user(&user("ada@example.org")).await.unwrap();
    assert!(matches!(
        b.create_user(&user(" ADA@example.org ")).await,
        Err(StoreError::EmailTaken)
    ));
    assert!(b.user_by_email("Ada@Example.org").await.unwrap().is_some());
    assert!(b.user_by_email("bob@example.org").await.unwrap().is_none());
    assert_eq!(a.user_count().await.unwrap(), 1);
}

async fn verification_token_is_single_use_and_expires(a: &Store, b: &Store) {
    let u = user("b@example.org");
    a.create_user(&u).await.unwrap();
    let now = Utc::now();
    a.put_verify_token("tok1", &u.id, now, Duration::hours(24))
        .await
        .unwrap();
    let v = b.consume_verify_token("tok1", now).await.unwrap();
    assert!(v.verified);
    assert!(a.user(&u.id).await.unwrap().unwrap().verified);
    assert!(matches!(
        a.consume_verify_token("tok1", now).await,
        Err(StoreError::TokenInvalid)
    ));
    a.put_verify_token("tok2", &u.id, now, Duration::hours(24))
        .await
        .unwrap();
    assert!(matches!(
        b.consume_verify_token("tok2", now + Duration::hours(25))
            .await,
        Err(StoreError::TokenExpired)
    ));
}

async fn tokens_are_stored_only_as_digests(a: &Store, _b: &Store) {
    let tok = new_token();
    let now = Utc::now();
    let session = Session {
        user_id: "u".into(),
        created_at: now,
        expires_at: now + Duration::days(1),
    };
    a.put_session(&tok, &session).await.unwrap();
    a.put_join_grant(&tok, &grant(now)).await.unwrap();
    a.put_verify_token(&tok, "u", now, Duration::hours(1))
        .await
        .unwrap();
    let entries = a.raw_entries().await.unwrap();
    assert!(entries.len() >= 3, "{}", entries.len());
    for (k, v) in &entries {
        assert!(!k.windows(tok.len()).any(|w| w == tok.as_bytes()));
        assert!(!v.windows(tok.len()).any(|w| w == tok.as_bytes()));
    }
    assert_eq!(a.session(&tok, now).await.unwrap(), Some(session));
    assert!(a
        .session(&tok, now + Duration::days(2))
        .await
        .unwrap()
        .is_none());
    // The expired session was removed, not just hidden.
    assert!(a.session(&tok, now).await.unwrap().is_none());
}

async fn sessions_end_at_logout_everywhere(a: &Store, b: &Store) {
    let now = Utc::now();
    let s = Session {
        user_id: "u".into(),
        created_at: now,
        expires_at: now + Duration::days(1),
    };
    a.put_session("t", &s).await.unwrap();
    assert!(b.session("t", now).await.unwrap().is_some());
    b.delete_session("t").await.unwrap();
    assert!(a.session("t", now).await.unwrap().is_none());
}

fn grant(now: DateTime<Utc>) -> JoinGrant {
    JoinGrant {
        meeting_code: "abc-defg-hij".into(),
        name: "G".into(),
        email: "g@x.org".into(),
        user_id: None,
        role: JoinRole::Guest,
        lobby: false,
        expires_at: now + Duration::seconds(60),
    }
}

async fn join_grant_is_single_use(a: &Store, b: &Store) {
    let now = Utc::now();
    let g = grant(now);
    a.put_join_grant("jt", &g).await.unwrap();
    assert_eq!(b.take_join_grant("jt", now).await.unwrap(), g);
    assert!(matches!(
        a.take_join_grant("jt", now).await,
        Err(StoreError::TokenInvalid)
    ));
    a.put_join_grant("jt2", &g).await.unwrap();
    assert!(matches!(
        b.take_join_grant("jt2", now + Duration::seconds(61)).await,
        Err(StoreError::TokenExpired)
    ));
    // Taken even though it had expired: it cannot be used later either.
    assert!(matches!(
        a.take_join_grant("jt2", now).await,
        Err(StoreError::TokenInvalid)
    ));
}

async fn racing_takers_of_one_join_token_get_it_once(a: &Store, b: &Store) {
    let now = Utc::now();
    for round in 0..20 {
        let tok = format!("race{round}");
        a.put_join_grant(&tok, &grant(now)).await.unwrap();
        let (x, y) = tokio::join!(a.take_join_grant(&tok, now), b.take_join_grant(&tok, now));
        let wins = [&x, &y].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {x:?} / {y:?}");
        for r in [x, y] {
            if let Err(e) = r {
                assert!(matches!(e, StoreError::TokenInvalid), "{e}");
            }
        }
    }
}

async fn meetings_are_listed_for_host_and_invitees_and_follow_edits(a: &Store, b: &Store) {
    let host = user("host@example.org");
    let m = meeting(&host, &["Inv@Other.org"]);
    a.create_meeting(&m).await.unwrap();
    assert!(matches!(
        b.create_meeting(&m).await,
        Err(StoreError::CodeTaken)
    ));
    assert_eq!(b.meeting(&m.code).await.unwrap(), Some(m.clone()));
    assert_eq!(
        b.meetings_for(&host.id, &host.email).await.unwrap().len(),
        1
    );
    assert_eq!(
        b.meetings_for("nobody", "inv@other.org")
            .await
            .unwrap()
            .len(),
        1
    );
    let mut m2 = m.clone();
    m2.invitees = vec!["new@other.org".into()];
    m2.revision = 1;
    b.update_meeting(&m, &m2).await.unwrap();
    assert!(a
        .meetings_for("nobody", "inv@other.org")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        a.meetings_for("nobody", "new@other.org").await.unwrap(),
        vec![m2.clone()]
    );
    assert_eq!(a.meeting(&m.code).await.unwrap(), Some(m2));
    assert_eq!(a.meeting_count().await.unwrap(), 1);
    assert!(a.meeting("zzz-zzzz-zzz").await.unwrap().is_none());
    // Hostile lookups are plain misses, not errors (keys are encoded, never raw).
    assert!(a.meeting("a.b.>*").await.unwrap().is_none());
    assert!(a.meeting("").await.unwrap().is_none());
}

fn chat(id: u64, text: &str) -> ChatRecord {
    ChatRecord {
        id,
        participant_id: 1,
        name: "A".into(),
        text: text.into(),
        ts_ms: id as i64,
    }
}

async fn chat_history_returns_the_latest_messages_in_order(a: &Store, b: &Store) {
    for id in 1..=30u64 {
        let s = if id % 2 == 0 { a } else { b };
        s.append_chat("abc-defg-hij", &chat(id, &format!("m{id}")))
            .await
            .unwrap();
    }
    a.append_chat("zzz-zzzz-zzz", &chat(1, "other"))
        .await
        .unwrap();
    let h = b.chat_history("abc-defg-hij", 10).await.unwrap();
    assert_eq!(h.len(), 10);
    assert_eq!(h[0].id, 21);
    assert_eq!(h[9].id, 30);
    assert_eq!(h[9].text, "m30");
    assert_eq!(a.chat_history("zzz-zzzz-zzz", 10).await.unwrap().len(), 1);
    assert!(a.chat_history("nope-nope-no", 10).await.unwrap().is_empty());
}

async fn chat_keeps_what_welcome_replays(a: &Store, _b: &Store) {
    for id in 1..=(CHAT_KEEP as u64 + 20) {
        a.append_chat("abc-defg-hij", &chat(id, "x")).await.unwrap();
    }
    let h = a.chat_history("abc-defg-hij", 10_000).await.unwrap();
    assert_eq!(h.len(), CHAT_KEEP);
    assert_eq!(h.last().unwrap().id, CHAT_KEEP as u64 + 20);
    assert!(h.windows(2).all(|w| w[0].id + 1 == w[1].id));
}

async fn rate_counters_are_shared_and_per_key(a: &Store, b: &Store) {
    let now = Utc::now();
    for i in 0..6 {
        let s = if i % 2 == 0 { a } else { b };
        assert_eq!(
            s.rate_check("login-account", "ada@example.org", now, 6)
                .await
                .unwrap(),
            RateDecision::Allowed,
            "attempt {i}"
        );
    }
    let RateDecision::Limited { retry_after_secs } = b
        .rate_check("login-account", "ada@example.org", now, 6)
        .await
        .unwrap()
    else {
        panic!("the seventh attempt in a minute must be refused");
    };
    assert!((1..=60).contains(&retry_after_secs));
    // Another key and another scope have their own counters.
    assert_eq!(
        a.rate_check("login-account", "bob@example.org", now, 6)
            .await
            .unwrap(),
        RateDecision::Allowed
    );
    assert_eq!(
        a.rate_check("join-account", "ada@example.org", now, 6)
            .await
            .unwrap(),
        RateDecision::Allowed
    );
    // The next minute starts afresh.
    assert_eq!(
        a.rate_check(
            "login-account",
            "ada@example.org",
            now + Duration::seconds(60),
            6
        )
        .await
        .unwrap(),
        RateDecision::Allowed
    );
}

/// Everyone behind one office NAT joins the all-hands at the same minute: every join passes
/// through the same per-address counter, on two nodes at once. Each one must be counted once,
/// and none refused because the counter was busy.
async fn a_burst_on_one_rate_counter_is_counted_not_refused(a: &Store, b: &Store) {
    let now = Utc::now();
    let burst = futures::future::join_all((0..96).map(|i| {
        let s = if i % 2 == 0 { a } else { b };
        s.rate_check("join-ip", "203.0.113.7", now, 1000)
    }))
    .await;
    for (i, r) in burst.iter().enumerate() {
        assert!(
            matches!(r, Ok(RateDecision::Allowed)),
            "join {i} of the burst: {r:?}"
        );
    }
    // 96 counted: the 97th is still within a limit of 97, the 98th is not.
    assert!(matches!(
        a.rate_check("join-ip", "203.0.113.7", now, 97).await,
        Ok(RateDecision::Allowed)
    ));
    assert!(matches!(
        b.rate_check("join-ip", "203.0.113.7", now, 97).await,
        Ok(RateDecision::Limited { .. })
    ));
}

async fn purge_drops_only_expired_records(a: &Store, b: &Store) {
    let now = Utc::now();
    let mut old = grant(now);
    old.expires_at = now - Duration::seconds(1);
    a.put_join_grant("old", &old).await.unwrap();
    a.put_join_grant("new", &grant(now)).await.unwrap();
    a.put_verify_token("v-old", "u", now - Duration::hours(2), Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(b.purge_expired(now).await.unwrap(), 2);
    assert!(matches!(
        a.take_join_grant("old", now).await,
        Err(StoreError::TokenInvalid)
    ));
    assert!(a.take_join_grant("new", now).await.is_ok());
}

/// Instantiates each suite function for both backends.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sled_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let a = super::Store::temporary().unwrap();
                    super::$name(&a, &a.clone()).await;
                }
            )*
        }
        mod kv_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let nats = super::NatsServer::start();
                    let a = super::kv_store(&nats, "node-a").await;
                    let b = super::kv_store(&nats, "node-b").await;
                    super::$name(&a, &b).await;
                }
            )*
        }
    };
}

async fn kv_store(nats: &NatsServer, node: &str) -> Store {
    let client = kv::connect(&nats.url(), node).await.unwrap();
    Store::kv(client, "qm").await.unwrap()
}

suite!(
    email_is_unique_case_insensitively,
    verification_token_is_single_use_and_expires,
    tokens_are_stored_only_as_digests,
    sessions_end_at_logout_everywhere,
    join_grant_is_single_use,
    racing_takers_of_one_join_token_get_it_once,
    meetings_are_listed_for_host_and_invitees_and_follow_edits,
    chat_history_returns_the_latest_messages_in_order,
    chat_keeps_what_welcome_replays,
    rate_counters_are_shared_and_per_key,
    a_burst_on_one_rate_counter_is_counted_not_refused,
    purge_drops_only_expired_records,
);

#[test]
fn passwords_verify_only_with_the_right_password() {
    let h = hash_password("s3cret pass").unwrap();
    assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert_eq!(verify_password("s3cret pass", &h), PasswordCheck::Match);
    assert_eq!(verify_password("s3cret pasS", &h), PasswordCheck::Mismatch);
    assert_eq!(verify_password("x", "not a hash"), PasswordCheck::Mismatch);
}

#[test]
fn meeting_codes_have_the_meet_shape_and_do_not_repeat() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..2000 {
        let c = new_meeting_code();
        assert!(is_meeting_code(&c), "{c}");
        assert!(seen.insert(c));
    }
    assert!(!is_meeting_code("abc-defg-hi"));
    assert!(!is_meeting_code("ABC-defg-hij"));
    assert!(!is_meeting_code("abcdefghijkl"));
}

#[tokio::test]
async fn sled_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let u = user("c@example.org");
    {
        let s = Store::open(dir.path()).unwrap();
        s.create_user(&u).await.unwrap();
        s.flush().await.unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(
        s.user_by_email("c@example.org").await.unwrap().unwrap().id,
        u.id
    );
}

#[tokio::test]
async fn kv_refuses_quickly_while_nats_is_down_and_recovers_with_its_data() {
    let mut nats = NatsServer::start();
    let s = kv_store(&nats, "node-a").await;
    let u = user("d@example.org");
    s.create_user(&u).await.unwrap();
    assert!(s.is_available());
    nats.kill();
    let t = std::time::Instant::now();
    while s.is_available() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "still 'available'"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(matches!(
        s.user(&u.id).await,
        Err(StoreError::Unavailable(_))
    ));
    nats.restart();
    let t = std::time::Instant::now();
    while !s.is_available() {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "no reconnect"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // JetStream may need a moment after a restart to load its streams.
    let mut found = None;
    for _ in 0..50 {
        match s.user_by_email("d@example.org").await {
            Ok(u) => {
                found = u;
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    assert_eq!(found.map(|f| f.id), Some(u.id));
}
