//! Serving the router over TCP: plain HTTP in development, rustls in front of it in
//! production, both with upgrades (WebSocket) and graceful shutdown.
//!
//! Every request carries its peer address (`ConnectInfo<SocketAddr>`, for rate limits) and
//! its accepted socket ([`TcpSocket`], so a WebSocket subscriber's bandwidth estimate can read
//! the kernel's `TCP_INFO`).

use std::os::fd::AsRawFd;
use std::{net::SocketAddr, sync::Arc};

use axum::{extract::ConnectInfo, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::media::TcpSocket;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long open connections get to finish when the server stops.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Accepts connections until `cancel`; with `tls`, each one is wrapped in rustls first.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        let (mut tcp, peer): (_, SocketAddr) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => { tracing::warn!(error = %e, "accept failed"); continue; }
            },
        };
        crate::tune_tcp(&mut tcp);
        let socket = TcpSocket(tcp.as_raw_fd());
        let acceptor = acceptor.clone();
        let router = router.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            match acceptor {
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                    if let Ok(Ok(stream)) = handshake.await {
                        serve_connection(stream, peer, socket, router, cancel).await;
                    }
                }
                None => serve_connection(tcp, peer, socket, router, cancel).await,
            }
        });
    }
    tracker.close();
    let _ = tokio::time::timeout(2 * DRAIN_TIMEOUT, tracker.wait()).await;
    Ok(())
}

/// Serves HTTP/1.1 or HTTP/2 on one accepted connection until it closes or `cancel`.
async fn serve_connection<IO>(
    io: IO,
    peer: SocketAddr,
    socket: TcpSocket,
    router: Router,
    cancel: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(socket);
        router.clone().oneshot(req.map(axum::body::Body::new))
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn).await;
        }
    }
}
