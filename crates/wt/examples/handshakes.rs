//! Opens many WebTransport sessions to a server in the same process and reports the ones refused
//! (by their error) and the ones slower than 5 s (by how long they took): a check that a change
//! to wtransport's handshake path refuses or delays no session (third_party/README.md).
//!
//! `cargo run --release -p quicmeet-wt --example handshakes -- [TOTAL] [AT_ONCE]`
//! (defaults 2000 and 32). Beside CPU hogs and with many at once, the kernel drops UDP and some
//! handshakes wait for QUIC's loss recovery: compare builds in alternating runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use tokio::sync::Semaphore;
use wtransport::{ClientConfig, Endpoint};

const SLOW: Duration = Duration::from_secs(5);

enum Outcome {
    Refused(String),
    Slow(Duration),
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map_or(2000, |a| a.parse().expect("TOTAL"));
    let at_once: usize = args.next().map_or(32, |a| a.parse().expect("AT_ONCE"));

    let common::LoopbackServer {
        endpoint: server,
        port,
        cert_hash: hash,
        ..
    } = common::loopback_server();
    let server_refusals = Arc::new(std::sync::Mutex::new(BTreeMap::<String, usize>::new()));
    let refusals = server_refusals.clone();
    tokio::spawn(async move {
        loop {
            let incoming = server.accept().await;
            let refusals = refusals.clone();
            tokio::spawn(async move {
                let result = async { incoming.await?.accept().await }.await;
                match result {
                    Ok(conn) => {
                        // Held until the client closes it.
                        conn.closed().await;
                    }
                    Err(e) => *refusals.lock().unwrap().entry(e.to_string()).or_default() += 1,
                }
            });
        }
    });

    let client = Arc::new(
        Endpoint::client(
            ClientConfig::builder()
                .with_bind_default()
                .with_server_certificate_hashes([hash])
                .build(),
        )
        .expect("client endpoint"),
    );
    let url = format!("https://127.0.0.1:{port}/");
    let gate = Arc::new(Semaphore::new(at_once));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for _ in 0..total {
        let permit = gate.clone().acquire_owned().await.unwrap();
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let result = tokio::time::timeout(Duration::from_secs(60), client.connect(url)).await;
            drop(permit);
            match result {
                Ok(Ok(conn)) => {
                    conn.close(0u32.into(), b"");
                    let took = t0.elapsed();
                    (took > SLOW).then_some(Outcome::Slow(took))
                }
                Ok(Err(e)) => Some(Outcome::Refused(e.to_string())),
                Err(_) => Some(Outcome::Refused("timed out after 60 s".to_string())),
            }
        }));
    }
    let mut refused = BTreeMap::<String, usize>::new();
    let mut slow = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Some(Outcome::Refused(e)) => *refused.entry(e).or_default() += 1,
            Some(Outcome::Slow(took)) => slow.push(took.as_secs_f64()),
            None => {}
        }
    }
    slow.sort_by(f64::total_cmp);
    println!(
        "{total} handshakes, {at_once} at a time, {:.1} s: {} refused, {} slower than {} s {:.1?}",
        started.elapsed().as_secs_f64(),
        refused.values().sum::<usize>(),
        slow.len(),
        SLOW.as_secs(),
        slow
    );
    for (e, n) in &refused {
        println!("  client saw {n}× {e}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (e, n) in server_refusals.lock().unwrap().iter() {
        println!("  server saw {n}× {e}");
    }
}
