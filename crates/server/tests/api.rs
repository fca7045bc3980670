//! End-to-end tests of the REST API against the real `quicmeet` binary over real HTTP,
//! with mail delivered to a real SMTP server on loopback.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn meeting_body(title: &str, kind: &str, invitees: &[&str]) -> Value {
    json!({"title": title, "start": in_one_hour(), "duration_minutes": 30, "type": kind, "invitees": invitees})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_verify_create_meetings_and_join_by_role() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start(&tmp.path().join("mail"));
    let s = ServerProc::start(&tmp.path().join("data"), &["--smtp-url", &sink.url()]);

    // Unverified accounts cannot log in, with a clear error.
    let c0 = client();
    let (st, _, _) = post(
        &c0,
        &s.url("/api/auth/signup"),
        json!({"name": "Una", "email": "una@acme.test", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(st, 201);
    let (st, body, _) = post(
        &c0,
        &s.url("/api/auth/login"),
        json!({"email": "una@acme.test", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(st, 403);
    assert_eq!(body["error"]["code"], "email_not_verified");
    // Asking again sends a fresh, working link.
    let (st, _, _) = post(
        &c0,
        &s.url("/api/auth/resend"),
        json!({"email": "una@acme.test"}),
    )
    .await;
    assert_eq!(st, 202);

    let host = verified_user(&s, &sink.dir, "Hope Host", "hope@acme.test").await;
    let (st, me) = get(&host, &s.url("/api/me")).await;
    assert_eq!(st, 200);
    assert_eq!(me["user"]["email"], "hope@acme.test");
    assert_eq!(me["user"]["verified"], true);
    assert_eq!(me["user"]["team"], "acme.test");

    let invitee = verified_user(&s, &sink.dir, "Ivy Invitee", "ivy@other.test").await;
    let outsider = verified_user(&s, &sink.dir, "Otto Outsider", "otto@other.test").await;
    let teammate = verified_user(&s, &sink.dir, "Tess Team", "tess@acme.test").await;

    let mut codes = std::collections::HashMap::new();
    for kind in ["public", "private", "team"] {
        let (st, body, _) = post(
            &host,
            &s.url("/api/meetings"),
            meeting_body(&format!("{kind} sync"), kind, &["ivy@other.test"]),
        )
        .await;
        assert_eq!(st, 201, "{body}");
        let code = body["meeting"]["code"].as_str().unwrap().to_owned();
        assert!(quicmeet_store::is_meeting_code(&code), "{code}");
        assert_eq!(
            body["meeting"]["link"],
            format!("{}/{}", s.base.replace("127.0.0.1", "localhost"), code)
        );
        codes.insert(kind, code);
    }
    // The invitee got an invitation with the link and a calendar attachment.
    let mail = wait_mail(&sink.dir, "ivy@other.test", &codes["private"]).await;
    assert!(mail.contains("text/calendar"), "{mail}");
    assert!(
        mail.contains("BEGIN:VCALENDAR") || mail.contains("QkVHSU46VkNBTEVOREFS"),
        "{mail}"
    );

    // Lists: the host sees three, the invitee sees three (invited), the outsider none.
    let (_, l) = get(&host, &s.url("/api/meetings")).await;
    assert_eq!(l["meetings"].as_array().unwrap().len(), 3);
    assert!(l["meetings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["role"] == "host"));
    let (_, l) = get(&invitee, &s.url("/api/meetings")).await;
    assert_eq!(l["meetings"].as_array().unwrap().len(), 3);
    let (_, l) = get(&outsider, &s.url("/api/meetings")).await;
    assert!(l["meetings"].as_array().unwrap().is_empty());

    // Look-up by code gives public facts only to non-hosts.
    let (st, m) = get(
        &outsider,
        &s.url(&format!("/api/meetings/{}", codes["private"])),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(m["meeting"]["host_name"], "Hope Host");
    assert!(m["meeting"].get("invitees").is_none());

    let join = |c: reqwest::Client, code: String, body: Value| {
        let url = s.url(&format!("/api/meetings/{code}/join"));
        async move { post(&c, &url, body).await }
    };
    // Host of the private meeting: ready, role host, media endpoints with the cert hash.
    let (st, j, _) = join(host.clone(), codes["private"].clone(), json!({})).await;
    assert_eq!(st, 200, "{j}");
    assert_eq!(j["status"], "ready");
    assert_eq!(j["participant"]["role"], "host");
    assert_eq!(
        j["media"]["webtransport"]["cert_hashes"][0]["algorithm"],
        "sha-256"
    );
    assert_eq!(
        j["media"]["webtransport"]["cert_hashes"][0]["value_hex"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert!(j["media"]["webtransport"]["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!(":{}/wt", s.quic.port())));
    assert!(j["media"]["websocket"]["url"]
        .as_str()
        .unwrap()
        .ends_with("/ws"));
    assert!(j["token"].as_str().unwrap().len() >= 43);
    // Invitee of the private meeting: straight in.
    let (st, j, _) = join(invitee.clone(), codes["private"].clone(), json!({})).await;
    assert_eq!((st, j["status"].as_str()), (200, Some("ready")), "{j}");
    assert_eq!(j["participant"]["role"], "member");
    // Outsider of the private meeting: waits for the host.
    let (st, j, _) = join(outsider.clone(), codes["private"].clone(), json!({})).await;
    assert_eq!((st, j["status"].as_str()), (202, Some("waiting")), "{j}");
    assert!(j["token"].is_string());
    // A guest of the private meeting knocks too.
    let (st, j, _) = join(
        client(),
        codes["private"].clone(),
        json!({"name": "Gus", "email": "gus@x.test"}),
    )
    .await;
    assert_eq!((st, j["status"].as_str()), (202, Some("waiting")), "{j}");
    // Public meeting: a guest with name and e-mail is in; without them, a clear 400.
    let (st, j, _) = join(
        client(),
        codes["public"].clone(),
        json!({"name": "Gus Guest", "email": "gus@x.test"}),
    )
    .await;
    assert_eq!(
        (st, j["participant"]["role"].as_str()),
        (200, Some("guest")),
        "{j}"
    );
    let (st, j, _) = join(client(), codes["public"].clone(), json!({"name": "Gus"})).await;
    assert_eq!(
        (st, j["error"]["code"].as_str()),
        (400, Some("invalid_email")),
        "{j}"
    );
    // Team meeting: a teammate is in, an outsider is refused, a guest must sign in.
    let (st, j, _) = join(teammate.clone(), codes["team"].clone(), json!({})).await;
    assert_eq!((st, j["status"].as_str()), (200, Some("ready")), "{j}");
    let (st, j, _) = join(outsider.clone(), codes["team"].clone(), json!({})).await;
    assert_eq!(
        (st, j["error"]["code"].as_str()),
        (403, Some("not_in_team")),
        "{j}"
    );
    let (st, j, _) = join(
        client(),
        codes["team"].clone(),
        json!({"name": "G", "email": "g@x.test"}),
    )
    .await;
    assert_eq!(
        (st, j["error"]["code"].as_str()),
        (401, Some("sign_in_required")),
        "{j}"
    );

    // Edit and cancel: only the host; cancelled meetings refuse joins.
    let url = s.url(&format!("/api/meetings/{}", codes["public"]));
    let r = outsider
        .patch(&url)
        .json(&json!({"title": "hijacked"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = host
        .patch(&url)
        .json(&json!({"title": "Renamed", "duration_minutes": 45}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m: Value = r.json().await.unwrap();
    assert_eq!(
        (
            m["meeting"]["title"].as_str(),
            m["meeting"]["duration_minutes"].as_u64()
        ),
        (Some("Renamed"), Some(45))
    );
    let r = host
        .get(s.url(&format!("/api/meetings/{}/ics", codes["public"])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/calendar"));
    assert!(r.text().await.unwrap().contains("SUMMARY:Renamed"));
    assert_eq!(outsider.delete(&url).send().await.unwrap().status(), 403);
    assert_eq!(host.delete(&url).send().await.unwrap().status(), 204);
    let (st, j, _) = join(
        client(),
        codes["public"].clone(),
        json!({"name": "Gus", "email": "gus@x.test"}),
    )
    .await;
    assert_eq!(
        (st, j["error"]["code"].as_str()),
        (410, Some("meeting_cancelled")),
        "{j}"
    );

    // Logout ends the session.
    let r = host.post(s.url("/api/auth/logout")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(&host, &s.url("/api/me")).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_links_are_single_use_and_sessions_work_as_cookie_or_bearer() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ServerProc::start(&tmp.path().join("data"), &[]);
    let outbox = s.data_dir.join("outbox");
    let c = client();
    let (st, _, _) = post(
        &c,
        &s.url("/api/auth/signup"),
        json!({"name": "Vera", "email": "vera@example.test", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(st, 201);
    // The embedded default writes the mail to the outbox folder.
    let token = token_from_mail(&wait_mail(&outbox, "vera@example.test", "/verify?token=").await);
    assert_eq!(
        post(&c, &s.url("/api/auth/verify"), json!({"token": token}))
            .await
            .0,
        200
    );
    let (st, body, _) = post(&c, &s.url("/api/auth/verify"), json!({"token": token})).await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (400, Some("token_invalid"))
    );
    let (st, body, _) = post(&c, &s.url("/api/auth/verify"), json!({"token": "made-up"})).await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (400, Some("token_invalid"))
    );

    let (st, _, headers) = post(
        &c,
        &s.url("/api/auth/login"),
        json!({"email": "VERA@example.test", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(st, 200);
    let cookie = headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("qm_session="));
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    let token = cookie
        .trim_start_matches("qm_session=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // The same token works as a Bearer header for non-browser clients.
    let r = reqwest::Client::new()
        .get(s.url("/api/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = reqwest::Client::new()
        .get(s.url("/api/me"))
        .bearer_auth("nonsense")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");
    // Sessions are stored hashed: the raw token is nowhere in the database files.
    let db_dir = s.data_dir.join("db");
    let mut found = false;
    for e in walk(&db_dir) {
        let bytes = std::fs::read(&e).unwrap_or_default();
        if bytes.windows(token.len()).any(|w| w == token.as_bytes()) {
            found = true;
        }
    }
    assert!(!found, "raw session token found in the database");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p))
            } else {
                out.push(p)
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut s = ServerProc::start(&data, &[]);
    let outbox = data.join("outbox");
    let host = verified_user(&s, &outbox, "Dora Durable", "dora@example.test").await;
    let (st, body, _) = post(
        &host,
        &s.url("/api/meetings"),
        meeting_body("Survives", "public", &[]),
    )
    .await;
    assert_eq!(st, 201);
    let code = body["meeting"]["code"].as_str().unwrap().to_owned();
    // A sign-up acknowledged just before the crash.
    let (st, _, _) = post(
        &client(),
        &s.url("/api/auth/signup"),
        json!({"name": "Late", "email": "late@example.test", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(st, 201);
    s.kill9();

    let s = ServerProc::start(&data, &[]);
    let c = client();
    let (st, _, _) = post(
        &c,
        &s.url("/api/auth/login"),
        json!({"email": "dora@example.test", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(st, 200, "verified account lost by kill -9");
    let (st, m) = get(&c, &s.url(&format!("/api/meetings/{code}"))).await;
    assert_eq!(st, 200, "meeting lost by kill -9");
    assert_eq!(m["meeting"]["title"], "Survives");
    let (st, body, _) = post(
        &client(),
        &s.url("/api/auth/signup"),
        json!({"name": "Late", "email": "late@example.test", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (409, Some("email_taken")),
        "sign-up lost by kill -9"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_rate_limited_and_failures_look_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ServerProc::start(&tmp.path().join("data"), &["--auth-rate-per-min", "5"]);
    let outbox = s.data_dir.join("outbox");
    let _u = verified_user(&s, &outbox, "Rita", "rita@example.test").await;
    let c = client();

    // Same code and message for an unknown address and a wrong password, and similar time
    // (both run the password hash; a shortcut would answer >10x faster).
    let mut t_unknown = Duration::ZERO;
    let mut t_wrong = Duration::ZERO;
    let (st1, b1, _) = post(
        &c,
        &s.url("/api/auth/login"),
        json!({"email": "nobody@example.test", "password": "whatever123"}),
    )
    .await;
    let (st2, b2, _) = post(
        &c,
        &s.url("/api/auth/login"),
        json!({"email": "rita@example.test", "password": "wrong password"}),
    )
    .await;
    assert_eq!((st1, st2), (401, 401));
    assert_eq!(b1, b2);
    for _ in 0..2 {
        let t = Instant::now();
        post(
            &c,
            &s.url("/api/auth/login"),
            json!({"email": "nobody2@example.test", "password": "whatever123"}),
        )
        .await;
        t_unknown += t.elapsed();
        let t = Instant::now();
        post(
            &c,
            &s.url("/api/auth/login"),
            json!({"email": "rita@example.test", "password": "wrong password"}),
        )
        .await;
        t_wrong += t.elapsed();
    }
    assert!(
        t_unknown * 4 > t_wrong,
        "unknown {t_unknown:?} vs wrong {t_wrong:?}"
    );

    // Per account: the 6th attempt on rita within a minute is refused, with Retry-After.
    let mut last = 0;
    let mut retry = None;
    for _ in 0..4 {
        let (st, _, h) = post(
            &c,
            &s.url("/api/auth/login"),
            json!({"email": "rita@example.test", "password": "wrong password"}),
        )
        .await;
        last = st;
        retry = h.get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    }
    assert_eq!(last, 429);
    assert!(retry.unwrap().parse::<u64>().unwrap() >= 1);

    // Per IP: sign-ups beyond the limit are refused.
    let mut statuses = vec![];
    for i in 0..7 {
        let (st, _, _) = post(
            &c,
            &s.url("/api/auth/signup"),
            json!({"name": "S", "email": format!("s{i}@example.test"), "password": "short"}),
        )
        .await;
        statuses.push(st);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let text = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("quicmeet_rate_limited_total{limit=\"signup\"}"));
    assert!(!text.contains("quicmeet_rate_limited_total{limit=\"signup\"} 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meeting_codes_cannot_be_enumerated() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ServerProc::start(&tmp.path().join("data"), &["--join-rate-per-min", "20"]);
    let c = client();
    let mut statuses = vec![];
    for i in 0..25 {
        let code = format!(
            "abc-defg-h{}{}",
            (b'a' + (i / 26) as u8) as char,
            (b'a' + (i % 26) as u8) as char
        );
        let code = &code[..12];
        statuses.push(get(&c, &s.url(&format!("/api/meetings/{code}"))).await.0);
    }
    assert!(statuses[..20].iter().all(|&s| s == 404), "{statuses:?}");
    assert!(statuses[20..].iter().all(|&s| s == 429), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_400_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ServerProc::start(&tmp.path().join("data"), &[]);
    let outbox = s.data_dir.join("outbox");
    let host = verified_user(&s, &outbox, "Bea", "bea@example.test").await;
    let url = s.url("/api/meetings");
    let send_raw = |body: &'static str| {
        let host = host.clone();
        let url = url.clone();
        async move {
            let r = host
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (st, b) = send_raw("{not json").await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (400, Some("bad_json")),
        "{b}"
    );
    let (st, b) = send_raw(r#"{"title":"x"}"#).await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (400, Some("invalid_field")),
        "{b}"
    );
    assert!(
        b["error"]["message"].as_str().unwrap().contains("start"),
        "{b}"
    );
    let cases = [
        (
            json!({"title": "x", "start": "next tuesday", "duration_minutes": 30, "type": "public"}),
            "invalid_start",
        ),
        (
            json!({"title": "x", "start": in_one_hour(), "duration_minutes": 0, "type": "public"}),
            "invalid_duration",
        ),
        (
            json!({"title": "x", "start": in_one_hour(), "duration_minutes": -3, "type": "public"}),
            "invalid_duration",
        ),
        (
            json!({"title": "x", "start": in_one_hour(), "duration_minutes": 1441, "type": "public"}),
            "invalid_duration",
        ),
        (
            json!({"title": "x".repeat(201), "start": in_one_hour(), "duration_minutes": 30, "type": "public"}),
            "invalid_title",
        ),
        (
            json!({"title": "x", "start": in_one_hour(), "duration_minutes": 30, "type": "secret"}),
            "invalid_type",
        ),
        (
            json!({"title": "x", "start": in_one_hour(), "duration_minutes": 30, "type": "public", "invitees": ["nope"]}),
            "invalid_invitee",
        ),
    ];
    for (body, code) in cases {
        let (st, b, _) = post(&host, &url, body.clone()).await;
        assert_eq!(
            (st, b["error"]["code"].as_str()),
            (400, Some(code)),
            "{body} -> {b}"
        );
        assert!(!b["error"]["message"].as_str().unwrap().is_empty());
    }
    let (_, l) = get(&host, &url).await;
    assert!(
        l["meetings"].as_array().unwrap().is_empty(),
        "a refused meeting was stored"
    );

    // Oversized bodies are refused before parsing.
    let big = format!("{{\"title\":\"{}\"}}", "x".repeat(64 * 1024));
    let r = host
        .post(&url)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Sign-up checks.
    for (body, code) in [
        (
            json!({"name": "", "email": "a@b.test", "password": "long enough"}),
            "invalid_name",
        ),
        (
            json!({"name": "A", "email": "not-an-email", "password": "long enough"}),
            "invalid_email",
        ),
        (
            json!({"name": "A", "email": "a@b.test", "password": "short"}),
            "weak_password",
        ),
    ] {
        let (st, b, _) = post(&client(), &s.url("/api/auth/signup"), body).await;
        assert_eq!((st, b["error"]["code"].as_str()), (400, Some(code)), "{b}");
    }
    // Unknown meetings and routes.
    let (st, b) = get(&host, &s.url("/api/meetings/zzz-zzzz-zzz")).await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (404, Some("meeting_not_found"))
    );
    let (st, b) = get(&host, &s.url("/api/meetings/..%2Fetc")).await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (404, Some("meeting_not_found"))
    );
    let (st, b) = get(&host, &s.url("/api/nope")).await;
    assert_eq!((st, b["error"]["code"].as_str()), (404, Some("not_found")));
    // Creating without signing in.
    let (st, b, _) = post(&client(), &url, meeting_body("x", "public", &[])).await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (401, Some("unauthenticated"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_health_metrics_openapi_and_stops_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = ServerProc::start(&tmp.path().join("data"), &[]);
    let c = client();
    let (st, h) = get(&c, &s.url("/healthz")).await;
    assert_eq!((st, h["status"].as_str()), (200, Some("ok")));
    let (st, api) = get(&c, &s.url("/api/openapi.json")).await;
    assert_eq!(st, 200);
    for p in [
        "/api/auth/signup",
        "/api/auth/login",
        "/api/meetings",
        "/api/meetings/{code}/join",
    ] {
        assert!(api["paths"].get(p).is_some(), "{p} missing from OpenAPI");
    }
    let metrics = c
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("# TYPE quicmeet_http_responses counter"));
    assert!(metrics.contains("quicmeet_http_responses_total{class=\"2xx\"}"));
    assert!(metrics.contains("quicmeet_users 0"));
    // The app shell (or the "client not built" page) is served for meeting links.
    let r = c.get(s.url("/abc-defg-hij")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("QuicMeet"));
    let status = s.sigterm();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_mode_serves_https_with_the_given_certificate_and_secure_cookies() {
    let tmp = tempfile::tempdir().unwrap();
    // A certificate "from a CA" the client trusts (here: self-signed, added as a root).
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let s = ServerProc::start(
        &tmp.path().join("data"),
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    let base = format!("https://localhost:{}", s.http.port());
    let c = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
        .resolve("localhost", s.http)
        .cookie_store(true)
        .build()
        .unwrap();
    let r = c.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP is not served in this mode.
    assert!(reqwest::get(format!("http://{}/healthz", s.http))
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true));

    let (st, _, _) = post(
        &c,
        &format!("{base}/api/auth/signup"),
        json!({"name": "Tia", "email": "tia@example.test", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(st, 201);
    let mail = wait_mail(
        &s.data_dir.join("outbox"),
        "tia@example.test",
        "/verify?token=",
    )
    .await;
    assert!(
        mail.contains(&format!("{base}/verify?token=")),
        "links use the https public URL"
    );
    assert_eq!(
        post(
            &c,
            &format!("{base}/api/auth/verify"),
            json!({"token": token_from_mail(&mail)})
        )
        .await
        .0,
        200
    );
    let (st, _, h) = post(
        &c,
        &format!("{base}/api/auth/login"),
        json!({"email": "tia@example.test", "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(st, 200);
    assert!(
        h["set-cookie"].to_str().unwrap().contains("; Secure"),
        "session cookie must be Secure over TLS"
    );
    let (st, m, _) = post(
        &c,
        &format!("{base}/api/meetings"),
        meeting_body("TLS", "public", &[]),
    )
    .await;
    assert_eq!(st, 201);
    let code = m["meeting"]["code"].as_str().unwrap();
    let (st, j, _) = post(&c, &format!("{base}/api/meetings/{code}/join"), json!({})).await;
    assert_eq!(st, 200, "{j}");
    // A real certificate needs no hash; browsers validate it normally.
    assert!(j["media"]["webtransport"]["cert_hashes"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(j["media"]["websocket"]["url"]
        .as_str()
        .unwrap()
        .starts_with("wss://localhost:"));
}
