//! QuicMeet patch: frame reads on long-lived HTTP/3 streams that survive being cancelled.
//!
//! The driver reads the peer's control stream and the CONNECT stream inside a `select!` that it
//! builds anew on every turn, so each read is dropped whenever another branch (a new stream, a
//! datagram) fires first. The frame parser keeps what it has read in its own future: a read
//! dropped after the frame's type and length lost them, and the next read parsed the payload as
//! frames, which closed the connection with `H3_EXCESSIVE_LOAD`, `H3_FRAME_UNEXPECTED` or
//! `H3_MISSING_SETTINGS`. That takes a frame split across packets, so it happened when the
//! peer's machine was busy. Here the read owns the stream and is kept until it completes,
//! whatever happens to the future that awaited it.

use super::session::StreamSession;
use super::uniremote::StreamUniRemoteH3;
use super::ProtoReadError;
use std::future::pending;
use std::future::Future;
use std::pin::Pin;
use wtransport_proto::frame::Frame;

type FrameResult = Result<Frame<'static>, ProtoReadError>;

/// A stream that can read its next frame by value, giving itself back.
pub trait ReadsFrames: Sized + Send + 'static {
    /// Reads the next frame; returns the stream with the result.
    fn read_next(self) -> impl Future<Output = (Self, FrameResult)> + Send;
}

impl ReadsFrames for StreamUniRemoteH3 {
    fn read_next(mut self) -> impl Future<Output = (Self, FrameResult)> + Send {
        async move {
            let result = self.read_frame().await;
            (self, result)
        }
    }
}

impl ReadsFrames for StreamSession {
    fn read_next(mut self) -> impl Future<Output = (Self, FrameResult)> + Send {
        async move {
            let result = self.read_frame().await;
            (self, result)
        }
    }
}

/// A stream slot whose frame read is resumed, not restarted, after its caller is dropped.
pub struct ResumableFrames<S> {
    idle: Option<S>,
    #[allow(clippy::type_complexity)]
    reading: Option<Pin<Box<dyn Future<Output = (S, FrameResult)> + Send>>>,
}

impl<S: ReadsFrames> ResumableFrames<S> {
    pub fn empty() -> Self {
        Self {
            idle: None,
            reading: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.idle.is_none() && self.reading.is_none()
    }

    pub fn set_stream(&mut self, stream: S) {
        self.idle = Some(stream);
        self.reading = None;
    }

    /// The stream, if no read is under way (it is not while the caller handles a frame).
    pub fn take(&mut self) -> Option<S> {
        self.idle.take()
    }

    /// The next frame. Never completes while the slot is empty. Cancel-safe: a read dropped
    /// half-way goes on at the next call from where it stopped.
    pub async fn read_frame(&mut self) -> FrameResult {
        if self.reading.is_none() {
            let Some(stream) = self.idle.take() else {
                return pending().await;
            };
            self.reading = Some(Box::pin(stream.read_next()));
        }
        let (stream, result) = self.reading.as_mut().expect("a read is under way").await;
        self.reading = None;
        self.idle = Some(stream);
        result
    }
}
