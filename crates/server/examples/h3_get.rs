//! One HTTP/3 GET against a running server, printing the request and the answer.
//! `cargo run -p quicmeet-server --example h3_get -- 127.0.0.1:8080 /api/me`
//! The certificate is not verified (development certificates are self-signed); its SHA-256 is
//! printed instead, to compare with `DATA_DIR/certs/dev-cert.json`.

use std::sync::Arc;

use anyhow::Context;
use bytes::Buf;
use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
    DigitallySignedStruct, SignatureScheme,
};

#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: std::net::SocketAddr = args
        .next()
        .context("usage: h3_get HOST:PORT [PATH]")?
        .parse()?;
    let path = args.next().unwrap_or_else(|| "/healthz".to_owned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let conn = ep.connect(addr, "localhost")?.await?;
    if let Some(certs) = conn
        .peer_identity()
        .and_then(|i| i.downcast::<Vec<CertificateDer<'static>>>().ok())
    {
        let d = ring::digest::digest(&ring::digest::SHA256, certs[0].as_ref());
        println!(
            "# QUIC {} ALPN h3, certificate sha256 {}",
            addr,
            hex::encode(d)
        );
    }
    let (mut driver, mut send) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    let req = http::Request::get(format!("https://localhost{path}"))
        .version(http::Version::HTTP_3)
        .body(())?;
    println!("> {} {} {:?}", req.method(), req.uri(), req.version());
    let mut stream = send.send_request(req).await?;
    stream.finish().await?;
    let res = stream.recv_response().await?;
    println!("< {:?} {}", res.version(), res.status());
    for (k, v) in res.headers() {
        println!("< {k}: {}", v.to_str().unwrap_or("<binary>"));
    }
    let mut body = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await? {
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    println!("<\n{}", String::from_utf8_lossy(&body));
    Ok(())
}
