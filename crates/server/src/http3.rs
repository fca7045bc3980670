//! The web app and the API over HTTP/3: a quinn endpoint on UDP at the HTTP port's number,
//! `h3` for the framing, and the same axum router as TCP, so cookies, body limits, rate
//! limits, headers and errors are the same whichever way a request comes.
//!
//! It owns only the glue: QUIC connection → h3 requests → `Router::oneshot` → h3 response.
//! It must never decide anything a TCP request would get differently.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{body::Body, extract::ConnectInfo, Router};
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::certs::SharedCert;

/// Largest request body read off an HTTP/3 stream; the router's own limit
/// ([`crate::web::MAX_BODY_BYTES`]) answers 413 below this, as over TCP.
const MAX_READ_BYTES: usize = 4 * crate::web::MAX_BODY_BYTES;
/// Requests one connection may have open at once.
const MAX_STREAMS: u32 = 100;

/// Makes the QUIC endpoint for HTTP/3 on `socket` with the certificate in force.
pub fn endpoint(socket: std::net::UdpSocket, cert: &SharedCert) -> anyhow::Result<quinn::Endpoint> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(cert.h3_config()?)?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(MAX_STREAMS.into())
        .max_idle_timeout(Some(Duration::from_secs(30).try_into()?));
    server.transport_config(Arc::new(transport));
    Ok(quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server),
        socket,
        Arc::new(quinn::TokioRuntime),
    )?)
}

/// Serves `router` on `endpoint` until `cancel`, then closes the connections.
pub async fn serve(endpoint: quinn::Endpoint, router: Router, cancel: CancellationToken) {
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        let incoming = tokio::select! {
            _ = cancel.cancelled() => break,
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
        };
        let router = router.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let peer = incoming.remote_address();
            let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(10), incoming).await else {
                return;
            };
            if let Err(e) = connection(conn, peer, router, cancel).await {
                tracing::debug!(error = %e, %peer, "HTTP/3 connection ended");
            }
        });
    }
    tracker.close();
    endpoint.close(quinn::VarInt::from_u32(0x100), b"server shutdown");
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
}

async fn connection(
    conn: quinn::Connection,
    peer: SocketAddr,
    router: Router,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut h3: h3::server::Connection<h3_quinn::Connection, Bytes> =
        h3::server::Connection::new(h3_quinn::Connection::new(conn)).await?;
    loop {
        let resolver = tokio::select! {
            _ = cancel.cancelled() => {
                let _ = h3.shutdown(0).await;
                return Ok(());
            }
            r = h3.accept() => match r? {
                Some(r) => r,
                None => return Ok(()),
            },
        };
        let router = router.clone();
        tokio::spawn(async move {
            let (req, stream) = match resolver.resolve_request().await {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(error = %e, "bad HTTP/3 request");
                    return;
                }
            };
            if let Err(e) = request(req, stream, peer, router).await {
                tracing::debug!(error = %e, "HTTP/3 request failed");
            }
        });
    }
}

async fn request<S>(
    req: http::Request<()>,
    mut stream: h3::server::RequestStream<S, Bytes>,
    peer: SocketAddr,
    router: Router,
) -> anyhow::Result<()>
where
    S: h3::quic::BidiStream<Bytes>,
{
    let mut body = BytesMut::new();
    while let Some(mut chunk) = stream.recv_data().await? {
        if body.len() + chunk.remaining() > MAX_READ_BYTES {
            let res = crate::error::ApiError::new(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "The request body is too large.",
            );
            let res = router_less(res);
            return respond(&mut stream, res).await;
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    let (parts, ()) = req.into_parts();
    let mut req = http::Request::from_parts(parts, Body::from(body.freeze()));
    req.extensions_mut().insert(ConnectInfo(peer));
    req.extensions_mut().insert(crate::headers::OverHttp3);
    let res = match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    respond(&mut stream, res).await
}

fn router_less(e: crate::error::ApiError) -> http::Response<Body> {
    axum::response::IntoResponse::into_response(e)
}

async fn respond<S>(
    stream: &mut h3::server::RequestStream<S, Bytes>,
    res: http::Response<Body>,
) -> anyhow::Result<()>
where
    S: h3::quic::BidiStream<Bytes>,
{
    let (mut parts, mut body) = res.into_parts();
    // Connection-specific headers have no meaning in HTTP/3 (RFC 9114 §4.2).
    for h in [
        http::header::CONNECTION,
        http::header::TRANSFER_ENCODING,
        http::header::UPGRADE,
    ] {
        parts.headers.remove(h);
    }
    parts.headers.remove("keep-alive");
    stream
        .send_response(http::Response::from_parts(parts, ()))
        .await?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| anyhow::anyhow!("response body: {e}"))?;
        if let Ok(data) = frame.into_data() {
            if !data.is_empty() {
                stream.send_data(data).await?;
            }
        }
    }
    stream.finish().await?;
    Ok(())
}
