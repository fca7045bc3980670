//! Measures sign-up, login and join request latency (p50/p99 over N requests each) against an
//! in-process server on loopback, with the real password hashing and a real database.
//!
//! `cargo run --release -p quicmeet-server --example api_latency -- 1000`

use std::time::{Duration, Instant};

use quicmeet_server::{Config, Server};
use quicmeet_testkit::{mail, Hist};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn report(name: &str, v: &[Duration]) {
    let mut h = Hist::precise();
    for d in v {
        h.record(d.as_micros() as u64);
    }
    let s = h.summary();
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "{name:<8} n={:<5} p50 {:>7.2} ms  p99 {:>7.2} ms  mean {:>7.2} ms",
        s.count,
        ms(s.p50),
        ms(s.p99),
        s.mean / 1000.0
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir()?;
    let mut config = Config::for_tests(dir.path().to_owned());
    config.auth_rate_per_min = 1_000_000;
    config.join_rate_per_min = 1_000_000;
    config.transcode_workers = 0;
    config.log = "warn".into();
    let cancel = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(Server::run_with(config, cancel.clone(), move |b| {
        let _ = tx.send(b);
    }));
    let bound = rx.await?;
    let base = format!("http://{}", bound.http);
    let c = reqwest::Client::new();
    let outbox = dir.path().join("outbox");

    let mut signup = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let r = c
            .post(format!("{base}/api/auth/signup"))
            .json(&json!({"name": format!("User {i}"), "email": format!("u{i}@bench.test"), "password": "correct horse battery"}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 201, "signup {i}: {}", r.status());
        signup.push(t.elapsed());
    }
    // Verify the first user through the mail it got, then log in n times.
    let token = mail::verification_token(&outbox, "u0@bench.test", Duration::from_secs(15)).await?;
    let r = c
        .post(format!("{base}/api/auth/verify"))
        .json(&json!({"token": token}))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 200, "verify: {}", r.status());

    let mut login = Vec::with_capacity(n);
    let mut session = String::new();
    for _ in 0..n {
        let t = Instant::now();
        let r = c
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"email": "u0@bench.test", "password": "correct horse battery"}))
            .send()
            .await?;
        login.push(t.elapsed());
        anyhow::ensure!(r.status() == 200, "login: {}", r.status());
        session = r.headers()["set-cookie"]
            .to_str()?
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("qm_session=")
            .to_owned();
    }
    let r = c
        .post(format!("{base}/api/meetings"))
        .bearer_auth(&session)
        .json(&json!({"title": "Bench", "start": chrono::Utc::now().to_rfc3339(), "duration_minutes": 30, "type": "public"}))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 201, "create: {}", r.status());
    let code = r.json::<serde_json::Value>().await?["meeting"]["code"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut join = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let r = c
            .post(format!("{base}/api/meetings/{code}/join"))
            .json(&json!({"name": format!("Guest {i}"), "email": format!("g{i}@bench.test")}))
            .send()
            .await?;
        join.push(t.elapsed());
        anyhow::ensure!(r.status() == 200, "join: {}", r.status());
    }
    println!("QuicMeet API latency, {n} sequential requests each, loopback, one client:");
    report("signup", &signup);
    report("login", &login);
    report("join", &join);
    cancel.cancel();
    let _ = server.await;
    Ok(())
}
