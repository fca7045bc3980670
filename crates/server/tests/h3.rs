//! The web app and the API over HTTP/3, with a real h3 client against the real binary: same
//! router, same certificate, same cookies, limits and errors as over TCP.

mod common;
mod h3client;

use std::time::Duration;

use common::{token_from_mail, wait_mail, ServerProc};
use h3client::H3;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_over_http3_like_over_tcp() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ServerProc::start(
        &tmp.path().join("data"),
        &["--auth-rate-per-min", "100", "--mail-rate-per-hour", "3"],
    );
    // UDP at the HTTP port's number, with the development certificate WebTransport uses.
    let mut h3 = H3::connect(s.http).await.expect("HTTP/3 handshake");
    let dev: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.data_dir.join("certs/dev-cert.json")).unwrap())
            .unwrap();
    assert_eq!(h3.cert, dev["sha256_hex"].as_str().unwrap());

    let a = h3.get("/healthz", &[]).await.unwrap();
    assert_eq!((a.status, a.json()), (200, json!({"status": "ok"})));
    assert!(a
        .header("content-security-policy")
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert!(
        a.header("alt-svc").is_none(),
        "no Alt-Svc over HTTP/3 itself"
    );

    // Errors are the API's JSON errors.
    let a = h3.get("/api/no-such-route", &[]).await.unwrap();
    assert_eq!(
        (a.status, a.json()["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let a = h3
        .request(
            "POST",
            "/api/auth/signup",
            &[("content-type", "text/plain")],
            "hi",
        )
        .await
        .unwrap();
    assert_eq!(
        (a.status, a.json()["error"]["code"].clone()),
        (415, json!("bad_content_type"))
    );

    // The body limit: 413 with the same error code as over TCP.
    let big = json!({"name": "x".repeat(20_000), "email": "a@example.test", "password": "p"});
    let a = h3.post_json("/api/auth/signup", &[], &big).await.unwrap();
    assert_eq!(
        (a.status, a.json()["error"]["code"].clone()),
        (413, json!("body_too_large"))
    );

    // Sign up, verify, log in: the session cookie set over HTTP/3 works over HTTP/3.
    let outbox = s.data_dir.join("outbox");
    let a = h3
        .post_json(
            "/api/auth/signup",
            &[],
            &json!({"name": "Hana", "email": "hana@example.test", "password": "correct horse battery"}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{:?}", a.json());
    let token = token_from_mail(&wait_mail(&outbox, "hana@example.test", "/verify?token="));
    let a = h3
        .post_json("/api/auth/verify", &[], &json!({"token": token}))
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    let a = h3
        .post_json(
            "/api/auth/login",
            &[],
            &json!({"email": "hana@example.test", "password": "correct horse battery"}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    let cookie = a
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("qm_session="));
    let a = h3.get("/api/me", &[("cookie", &cookie)]).await.unwrap();
    assert_eq!(
        (a.status, a.json()["user"]["email"].clone()),
        (200, json!("hana@example.test"))
    );
    let a = h3.get("/api/me", &[]).await.unwrap();
    assert_eq!(a.status, 401);

    // The same rate limits. Verification mails to one address: 3 an hour, sign-up included,
    // whatever the client's address; another address is not affected.
    let mut statuses = vec![];
    let mut retry = None;
    for _ in 0..3 {
        let a = h3
            .post_json(
                "/api/auth/resend",
                &[],
                &json!({"email": "hana@example.test"}),
            )
            .await
            .unwrap();
        statuses.push(a.status);
        retry = a.header("retry-after").map(str::to_owned);
    }
    assert_eq!(statuses, [202, 202, 429], "{statuses:?}");
    let wait: u64 = retry.unwrap().parse().unwrap();
    assert!(
        wait > 60,
        "the per-address limit is hourly, Retry-After {wait}"
    );
    let a = h3
        .post_json(
            "/api/auth/resend",
            &[],
            &json!({"email": "other@example.test"}),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 202);
    let r = reqwest::Client::new()
        .post(s.url("/api/auth/signup"))
        .json(&json!({"name": "H", "email": "hana@example.test", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "over TCP too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http3_can_be_turned_off() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ServerProc::start(&tmp.path().join("data"), &["--http3", "false"]);
    let r = reqwest::get(s.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    let attempt = tokio::time::timeout(Duration::from_secs(3), H3::connect(s.http)).await;
    assert!(
        !matches!(attempt, Ok(Ok(_))),
        "an HTTP/3 handshake succeeded with --http3 false"
    );
}
