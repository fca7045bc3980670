//! Security headers on pages and API answers, and Alt-Svc/HSTS only when TLS is on.

mod common;

use common::ServerProc;

const EVERYWHERE: [&str; 4] = [
    "content-security-policy",
    "permissions-policy",
    "cross-origin-opener-policy",
    "x-content-type-options",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let s = ServerProc::start(&tmp.path().join("data"), &[]);
    let c = reqwest::Client::new();
    for path in [
        "/",
        "/abc-defg-hij",
        "/api/me",
        "/api/nope",
        "/healthz",
        "/metrics",
    ] {
        let r = c.get(s.url(path)).send().await.unwrap();
        let h = r.headers();
        for name in EVERYWHERE {
            assert!(h.contains_key(name), "{name} missing on {path}");
        }
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.starts_with("default-src 'self'; script-src 'self';"),
            "{csp}"
        );
        assert!(csp.contains("worker-src 'self';"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        // The WebTransport endpoint runs on its own port, so it is named.
        assert!(
            csp.contains(&format!("https://127.0.0.1:{}", s.quic.port())),
            "{csp}"
        );
        assert_eq!(
            h["permissions-policy"],
            "camera=(self), microphone=(self), display-capture=(self)"
        );
        assert_eq!(h["cross-origin-opener-policy"], "same-origin");
        // Plain HTTP: no HSTS, and no Alt-Svc (browsers use HTTP/3 only for https origins).
        assert!(!h.contains_key("strict-transport-security"), "{path}");
        assert!(!h.contains_key("alt-svc"), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_answers_advertise_http3_and_hsts() {
    let tmp = tempfile::tempdir().unwrap();
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
    let c = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
        .resolve("localhost", s.http)
        .build()
        .unwrap();
    for path in ["/", "/api/me"] {
        let r = c
            .get(format!("https://localhost:{}{path}", s.http.port()))
            .send()
            .await
            .unwrap();
        let h = r.headers();
        assert_eq!(
            h["alt-svc"],
            format!("h3=\":{}\"; ma=86400", s.http.port()).as_str()
        );
        assert_eq!(h["strict-transport-security"], "max-age=31536000");
        for name in EVERYWHERE {
            assert!(h.contains_key(name), "{name} missing on {path}");
        }
    }
}
