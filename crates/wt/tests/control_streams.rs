//! A client whose HTTP/3 control-stream frames arrive in pieces still gets its WebTransport
//! session.
//!
//! wtransport's driver reads the peer's SETTINGS (and the CONNECT stream's later frames) inside
//! a `select!` that it rebuilds on every turn. Before our patch, a frame read that had taken the
//! frame's type and length and was waiting for its payload was dropped whenever another branch
//! fired first (a new stream, a datagram), and the next turn parsed the payload as frames. The
//! server then closed the connection with whatever error those bytes made: `H3_EXCESSIVE_LOAD`,
//! `H3_FRAME_UNEXPECTED`, `H3_MISSING_SETTINGS`, depending on the order of the settings. It
//! takes a frame split across packets and a busy connection, so joins failed that way only on a
//! saturated machine. This test splits the frame on purpose with a raw QUIC client.

use std::sync::Arc;
use std::time::Duration;

mod common;

use wtransport_proto::bytes::BufferWriter;
use wtransport_proto::frame::Frame;
use wtransport_proto::session::SessionRequest;
use wtransport_proto::settings::Settings;
use wtransport_proto::varint::VarInt;

/// The bytes `frame` takes on the wire.
fn encode(frame: &Frame<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let mut w = BufferWriter::new(&mut buf);
    frame.write_to_buffer(&mut w).expect("frame fits");
    let n = w.offset();
    buf.truncate(n);
    buf
}

/// A QUIC connection to `port` with ALPN `h3`, trusting only `cert`.
async fn raw_h3_connection(cert: &[u8], port: u16) -> (quinn::Endpoint, quinn::Connection) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(cert.to_vec()))
        .expect("trust the server's certificate");
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .expect("TLS 1.3")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).expect("QUIC TLS config");
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).expect("endpoint");
    let conn = endpoint
        .connect_with(
            quinn::ClientConfig::new(Arc::new(quic)),
            ([127, 0, 0, 1], port).into(),
            "localhost",
        )
        .expect("connect")
        .await
        .expect("QUIC handshake");
    (endpoint, conn)
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_frame_split_around_a_new_stream_still_opens_a_session() {
    let common::LoopbackServer {
        endpoint: server,
        port,
        cert_der: cert,
        ..
    } = common::loopback_server();
    let accept = tokio::spawn(async move {
        let request = server.accept().await.await?;
        assert_eq!(request.path(), "/split");
        let conn = request.accept().await?;
        Ok::<_, wtransport::error::ConnectionError>((server, conn))
    });

    let (_endpoint, conn) = raw_h3_connection(&cert, port).await;

    let settings = Settings::builder()
        .qpack_max_table_capacity(VarInt::from_u32(0))
        .qpack_blocked_streams(VarInt::from_u32(0))
        .enable_connect_protocol()
        .enable_webtransport()
        .enable_h3_datagrams()
        .webtransport_max_sessions(VarInt::from_u32(1))
        .build();
    let frame = encode(&settings.generate_frame());
    // SETTINGS is type 0x04 and a one-byte length here: the payload starts at byte 2.
    assert_eq!(frame[0], 0x04);
    assert!(frame.len() > 3 && usize::from(frame[1]) == frame.len() - 2);

    // Control stream: its type and the frame's header, then a pause so that the server's
    // driver reads them and waits for the payload.
    let mut control = conn.open_uni().await.expect("control stream");
    control.write_all(&[0x00]).await.unwrap();
    control.write_all(&frame[..2]).await.unwrap();
    settle().await;
    // Another stream opens meanwhile: the driver's select! takes that branch.
    let mut encoder = conn.open_uni().await.expect("QPACK encoder stream");
    encoder.write_all(&[0x02]).await.unwrap();
    settle().await;
    // Then the payload arrives.
    control.write_all(&frame[2..]).await.unwrap();
    settle().await;

    // The session request, on a request stream.
    let request = SessionRequest::new(format!("https://localhost:{port}/split")).unwrap();
    let (mut send, mut recv) = conn.open_bi().await.expect("request stream");
    send.write_all(&encode(&request.headers().generate_frame()))
        .await
        .unwrap();

    let (_server, session) = tokio::time::timeout(Duration::from_secs(5), accept)
        .await
        .expect("the server answers within 5 s")
        .unwrap()
        .unwrap_or_else(|e| panic!("the server refused the session: {e}"));
    // The client reads the server's response: a HEADERS frame (status 200).
    let mut head = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(5), recv.read_exact(&mut head))
        .await
        .expect("a response within 5 s")
        .expect("response bytes");
    assert_eq!(head[0], 0x01, "the response starts with a HEADERS frame");
    assert!(conn.close_reason().is_none(), "{:?}", conn.close_reason());
    drop(session);
}
