//! The client's error type.

use quicmeet_proto::{ControlError, FrameError};

/// Everything that can go wrong while joining, connecting, sending or receiving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The HTTP request to the REST API failed (connection, TLS, body).
    #[error("HTTP request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The REST API answered with an error.
    #[error("join refused with HTTP {status}: {code}: {message}")]
    JoinRefused {
        /// HTTP status.
        status: u16,
        /// The API's stable error code.
        code: String,
        /// The API's human text.
        message: String,
    },
    /// The join answer lacks a field or has one of the wrong shape.
    #[error("invalid join answer: {0}")]
    BadJoinAnswer(String),
    /// A media URL cannot be used.
    #[error("invalid URL {url:?}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The WebTransport session could not be established (handshake, refused session).
    #[error("WebTransport connect failed: {0}")]
    WebTransportConnect(#[from] wtransport::error::ConnectingError),
    /// The WebTransport connection failed or was closed.
    #[error("WebTransport connection error: {0}")]
    WebTransportConnection(#[from] wtransport::error::ConnectionError),
    /// Writing to a WebTransport stream failed (stopped by the peer, connection lost).
    #[error("WebTransport stream write failed: {0}")]
    StreamWrite(#[from] wtransport::error::StreamWriteError),
    /// A WebTransport stream could not be opened.
    #[error("WebTransport stream open failed: {0}")]
    StreamOpen(#[from] wtransport::error::StreamOpeningError),
    /// A datagram could not be sent.
    #[error("WebTransport datagram send failed: {0}")]
    Datagram(#[from] wtransport::error::SendDatagramError),
    /// The WebSocket connection failed.
    #[error("WebSocket error: {0}")]
    WebSocket(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    /// Local I/O (binding the UDP socket).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A control message could not be encoded or decoded.
    #[error("control message error: {0}")]
    Control(#[from] ControlError),
    /// A media frame could not be encoded or decoded.
    #[error("media frame error: {0}")]
    Frame(#[from] FrameError),
    /// The operation exists only on the other transport (raw test hooks).
    #[error("{0} is not available on this transport")]
    WrongTransport(&'static str),
    /// The connection is closed; nothing more can be sent or received.
    #[error("connection closed")]
    Closed,
    /// A wait ran out of time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
}

impl From<tokio_tungstenite::tungstenite::Error> for ClientError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        ClientError::WebSocket(Box::new(e))
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
