//! A WebTransport server on loopback with a fresh self-signed certificate, for the tests and
//! the handshake example.
// Each user reads only some of the fields.
#![allow(dead_code)]

use wtransport::endpoint::endpoint_side::Server;
use wtransport::tls::Sha256Digest;
use wtransport::{Endpoint, Identity, ServerConfig};

/// A server endpoint on 127.0.0.1 (any port), its port, its certificate (DER) and that
/// certificate's SHA-256 (what a client pins with `with_server_certificate_hashes`).
pub struct LoopbackServer {
    pub endpoint: Endpoint<Server>,
    pub port: u16,
    pub cert_der: Vec<u8>,
    pub cert_hash: Sha256Digest,
}

pub fn loopback_server() -> LoopbackServer {
    let identity = Identity::self_signed(["localhost"]).expect("self-signed identity");
    let cert = &identity.certificate_chain().as_slice()[0];
    let (cert_der, cert_hash) = (cert.der().to_vec(), cert.hash());
    let endpoint = Endpoint::server(
        ServerConfig::builder()
            .with_bind_address("127.0.0.1:0".parse().unwrap())
            .with_identity(identity)
            .build(),
    )
    .expect("server endpoint");
    let port = endpoint.local_addr().unwrap().port();
    LoopbackServer {
        endpoint,
        port,
        cert_der,
        cert_hash,
    }
}
