//! One HTTP/3 GET against a running server, printing the request and the answer.
//! `cargo run -p quicmeet-server --example h3_get -- 127.0.0.1:8080 /api/me`
//! The certificate is not verified (development certificates are self-signed); its SHA-256 is
//! printed instead, to compare with `DATA_DIR/certs/dev-cert.json`. The client is the one the
//! HTTP/3 tests use.

use anyhow::Context;

#[path = "../tests/h3client/mod.rs"]
mod h3client;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: std::net::SocketAddr = args
        .next()
        .context("usage: h3_get HOST:PORT [PATH]")?
        .parse()?;
    let path = args.next().unwrap_or_else(|| "/healthz".to_owned());
    let mut h3 = h3client::H3::connect(addr).await?;
    println!("# QUIC {addr} ALPN h3, certificate sha256 {}", h3.cert);
    println!("> GET https://localhost{path} HTTP/3.0");
    let a = h3.get(&path, &[]).await?;
    println!("< HTTP/3.0 {}", a.status);
    for (k, v) in &a.headers {
        println!("< {k}: {}", v.to_str().unwrap_or("<binary>"));
    }
    println!("<\n{}", String::from_utf8_lossy(&a.body));
    Ok(())
}
