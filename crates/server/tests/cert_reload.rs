//! A production certificate is replaced without a restart, for HTTPS over TCP, HTTP/3 and
//! WebTransport: when its files change, and on SIGHUP.

mod common;
mod h3client;

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use common::ServerProc;
use h3client::{quic_connect, sha256_hex, tcp_cert};

/// Writes a new self-signed certificate for localhost; returns its hash.
fn write_cert(dir: &Path) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    // Write to temporary names and rename, as certificate tools do, so the server never
    // reads half a file.
    std::fs::write(dir.join("key.pem.new"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert.pem.new"), cert.pem()).unwrap();
    std::fs::rename(dir.join("key.pem.new"), dir.join("key.pem")).unwrap();
    std::fs::rename(dir.join("cert.pem.new"), dir.join("cert.pem")).unwrap();
    sha256_hex(cert.der())
}

fn start(dir: &Path, check_secs: &str) -> ServerProc {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    ServerProc::start(
        &dir.join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--cert-check-secs",
            check_secs,
        ],
    )
}

/// The certificates served by HTTPS, HTTP/3 and WebTransport, in that order.
async fn served(s: &ServerProc) -> [String; 3] {
    let tcp = tcp_cert(s.http).await.unwrap();
    let (_e, c, h3) = quic_connect(s.http).await.unwrap();
    c.close(0u32.into(), b"");
    let (_e, c, wt) = quic_connect(s.quic).await.unwrap();
    c.close(0u32.into(), b"");
    [tcp, h3, wt]
}

async fn wait_for(s: &ServerProc, want: &str) -> [String; 3] {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = served(s).await;
        if got.iter().all(|h| h == want) || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_certificate_file_is_served_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let first = write_cert(tmp.path());
    let s = start(tmp.path(), "1");
    assert_eq!(served(&s).await, [first.clone(), first.clone(), first]);
    // A connection opened before the change keeps working after it.
    let (_e, old, _) = quic_connect(s.http).await.unwrap();

    let second = write_cert(tmp.path());
    let got = wait_for(&s, &second).await;
    assert_eq!(got, [second.clone(), second.clone(), second]);
    assert!(
        old.close_reason().is_none(),
        "an open connection was dropped"
    );
    // Same process: no restart happened.
    assert!(s.child.id() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_a_broken_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let first = write_cert(tmp.path());
    // File checks effectively off: only the signal reloads.
    let s = start(tmp.path(), "86400");
    let second = write_cert(tmp.path());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        served(&s).await,
        [first.clone(), first.clone(), first.clone()],
        "reloaded without a signal (first {first}, second {second})"
    );

    let hup = |pid: u32| {
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
    };
    assert!(hup(s.child.id()).success());
    let got = wait_for(&s, &second).await;
    assert_eq!(got, [second.clone(), second.clone(), second.clone()]);

    // A key that does not match the certificate is refused; the last good one stays.
    let other = rcgen::KeyPair::generate().unwrap();
    std::fs::write(tmp.path().join("key.pem"), other.serialize_pem()).unwrap();
    assert!(hup(s.child.id()).success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(served(&s).await, [second.clone(), second.clone(), second]);
}
