//! A real HTTP/3 client (quinn + h3) and TLS probes that report which certificate a listener
//! serves, for the HTTP/3, header and certificate-reload tests.
#![allow(dead_code)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::{Buf, Bytes};
use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
    DigitallySignedStruct, SignatureScheme,
};

/// Accepts any certificate: the tests compare what they got with what they expect instead.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
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

fn tls(alpn: &[&[u8]], tls13_only: bool) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone());
    let builder = if tls13_only {
        builder.with_protocol_versions(&[&rustls::version::TLS13])
    } else {
        builder.with_safe_default_protocol_versions()
    }
    .unwrap();
    let mut cfg = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    cfg
}

/// Hex SHA-256 of a DER certificate.
pub fn sha256_hex(der: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

/// Opens a QUIC connection with ALPN h3 and returns it with the leaf certificate's hash.
pub async fn quic_connect(
    addr: SocketAddr,
) -> anyhow::Result<(quinn::Endpoint, quinn::Connection, String)> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls(&[b"h3"], true))?;
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn =
        tokio::time::timeout(Duration::from_secs(5), ep.connect(addr, "localhost")?).await??;
    let certs = conn
        .peer_identity()
        .and_then(|i| i.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or_else(|| anyhow::anyhow!("no peer certificate"))?;
    let leaf = sha256_hex(certs[0].as_ref());
    Ok((ep, conn, leaf))
}

/// The hash of the certificate a TCP TLS listener serves.
pub async fn tcp_cert(addr: SocketAddr) -> anyhow::Result<String> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls(&[b"http/1.1"], false)));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let certs = tls
        .get_ref()
        .1
        .peer_certificates()
        .ok_or_else(|| anyhow::anyhow!("no peer certificate"))?;
    Ok(sha256_hex(certs[0].as_ref()))
}

/// An answer read in full.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP/3 client connection.
pub struct H3 {
    _ep: quinn::Endpoint,
    send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    /// SHA-256 of the certificate the server presented.
    pub cert: String,
}

impl H3 {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let (ep, conn, cert) = quic_connect(addr).await?;
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn)).await?;
        tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        Ok(Self {
            _ep: ep,
            send,
            cert,
        })
    }

    /// Sends one request (`headers` as name/value pairs) and reads the whole answer.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> anyhow::Result<Answer> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("https://localhost{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut stream = self.send.send_request(req.body(())?).await?;
        let body: Bytes = body.into();
        if !body.is_empty() {
            stream.send_data(body).await?;
        }
        stream.finish().await?;
        let res = stream.recv_response().await?;
        let mut out = Vec::new();
        while let Some(mut chunk) = stream.recv_data().await? {
            while chunk.has_remaining() {
                let part = chunk.chunk();
                out.extend_from_slice(part);
                let n = part.len();
                chunk.advance(n);
            }
        }
        Ok(Answer {
            status: res.status().as_u16(),
            headers: res.headers().clone(),
            body: out.into(),
        })
    }

    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Answer> {
        self.request("GET", path, headers, Bytes::new()).await
    }

    pub async fn post_json(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> anyhow::Result<Answer> {
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        self.request("POST", path, &h, serde_json::to_vec(body)?)
            .await
    }
}
