use super::*;
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

#[test]
fn email_is_unique_case_insensitively() {
    let s = Store::temporary().unwrap();
    s.create_user(&user("ada@example.org")).unwrap();
    assert!(matches!(
        s.create_user(&user(" ADA@example.org ")),
        Err(StoreError::EmailTaken)
    ));
    assert!(s.user_by_email("Ada@Example.org").unwrap().is_some());
}

#[test]
fn passwords_verify_only_with_the_right_password() {
    let h = hash_password("s3cret pass").unwrap();
    assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert_eq!(verify_password("s3cret pass", &h), PasswordCheck::Match);
    assert_eq!(verify_password("s3cret pasS", &h), PasswordCheck::Mismatch);
    assert_eq!(verify_password("x", "not a hash"), PasswordCheck::Mismatch);
}

#[test]
fn verification_token_is_single_use_and_expires() {
    let s = Store::temporary().unwrap();
    let u = user("b@example.org");
    s.create_user(&u).unwrap();
    let now = Utc::now();
    s.put_verify_token("tok1", &u.id, now, Duration::hours(24))
        .unwrap();
    let v = s.consume_verify_token("tok1", now).unwrap();
    assert!(v.verified);
    assert!(s.user(&u.id).unwrap().unwrap().verified);
    assert!(matches!(
        s.consume_verify_token("tok1", now),
        Err(StoreError::TokenInvalid)
    ));
    s.put_verify_token("tok2", &u.id, now, Duration::hours(24))
        .unwrap();
    assert!(matches!(
        s.consume_verify_token("tok2", now + Duration::hours(25)),
        Err(StoreError::TokenExpired)
    ));
}

#[test]
fn tokens_are_stored_only_as_digests() {
    let s = Store::temporary().unwrap();
    let tok = new_token();
    let now = Utc::now();
    s.put_session(
        &tok,
        &Session {
            user_id: "u".into(),
            created_at: now,
            expires_at: now + Duration::days(1),
        },
    )
    .unwrap();
    for kv in s.sessions.iter() {
        let (k, v) = kv.unwrap();
        assert!(!k.windows(tok.len()).any(|w| w == tok.as_bytes()));
        assert!(!v.windows(tok.len()).any(|w| w == tok.as_bytes()));
    }
    assert!(s.session(&tok, now).unwrap().is_some());
    assert!(s.session(&tok, now + Duration::days(2)).unwrap().is_none());
}

#[test]
fn join_grant_is_single_use() {
    let s = Store::temporary().unwrap();
    let now = Utc::now();
    let g = JoinGrant {
        meeting_code: "abc-defg-hij".into(),
        name: "G".into(),
        email: "g@x.org".into(),
        user_id: None,
        role: JoinRole::Guest,
        lobby: false,
        expires_at: now + Duration::seconds(60),
    };
    s.put_join_grant("jt", &g).unwrap();
    assert_eq!(s.take_join_grant("jt", now).unwrap(), g);
    assert!(matches!(
        s.take_join_grant("jt", now),
        Err(StoreError::TokenInvalid)
    ));
    s.put_join_grant("jt2", &g).unwrap();
    assert!(matches!(
        s.take_join_grant("jt2", now + Duration::seconds(61)),
        Err(StoreError::TokenExpired)
    ));
}

#[test]
fn meetings_are_listed_for_host_and_invitees_and_follow_edits() {
    let s = Store::temporary().unwrap();
    let host = user("host@example.org");
    let m = meeting(&host, &["Inv@Other.org"]);
    s.create_meeting(&m).unwrap();
    assert!(matches!(s.create_meeting(&m), Err(StoreError::CodeTaken)));
    assert_eq!(s.meetings_for(&host.id, &host.email).unwrap().len(), 1);
    assert_eq!(s.meetings_for("nobody", "inv@other.org").unwrap().len(), 1);
    let mut m2 = m.clone();
    m2.invitees = vec!["new@other.org".into()];
    s.update_meeting(&m, &m2).unwrap();
    assert!(s
        .meetings_for("nobody", "inv@other.org")
        .unwrap()
        .is_empty());
    assert_eq!(s.meetings_for("nobody", "new@other.org").unwrap().len(), 1);
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

#[test]
fn chat_history_returns_the_latest_messages_in_order() {
    let s = Store::temporary().unwrap();
    for id in 1..=30u64 {
        s.append_chat(
            "abc-defg-hij",
            &ChatRecord {
                id,
                participant_id: 1,
                name: "A".into(),
                text: format!("m{id}"),
                ts_ms: id as i64,
            },
        )
        .unwrap();
    }
    s.append_chat(
        "zzz-zzzz-zzz",
        &ChatRecord {
            id: 1,
            participant_id: 1,
            name: "B".into(),
            text: "other".into(),
            ts_ms: 0,
        },
    )
    .unwrap();
    let h = s.chat_history("abc-defg-hij", 10).unwrap();
    assert_eq!(h.len(), 10);
    assert_eq!(h[0].id, 21);
    assert_eq!(h[9].id, 30);
}

#[test]
fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let u = user("c@example.org");
    {
        let s = Store::open(dir.path()).unwrap();
        s.create_user(&u).unwrap();
        s.flush_blocking().unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.user_by_email("c@example.org").unwrap().unwrap().id, u.id);
}
