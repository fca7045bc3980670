//! Fixtures that QuicMeet's integration tests and its load tester share, written once:
//!
//! - [`process`]: start the `quicmeet` binary (or any child that prints a ready line) on
//!   loopback and read the addresses from its `QUICMEET_READY` line; read a process's
//!   resident memory from `/proc`;
//! - [`mail`]: find a mail in the server's outbox folder, undo quoted-printable, take the
//!   verification token from it;
//! - `rest` (feature `rest`): sign up, verify and log in, create a meeting, through the REST
//!   API;
//! - `clip` (feature `media`): real VP8 and Opus test material, checked to be playable;
//! - [`latency`]: latency histograms and their percentiles (HdrHistogram);
//! - [`rng`]: a tiny deterministic generator for randomised tests.
//!
//! The load tester is a shipped binary and uses this crate as a normal dependency, so nothing
//! here panics on what it reads or assumes a test harness (no `env!("CARGO_BIN_EXE_…")`, no
//! `assert!`): every fallible step returns [`Error`], and test code adds its own `expect`.
//!
//! What this crate must never do: talk to anything but the loopback addresses it was handed
//! or the processes it started, wait without a bound, or leave a child process running when
//! its handle is dropped.

use std::time::Duration;

#[cfg(feature = "media")]
pub mod clip;
pub mod latency;
pub mod mail;
pub mod process;
#[cfg(feature = "rest")]
pub mod rest;
pub mod rng;

pub use latency::{Hist, Summary};
pub use rng::Rng;

/// What can go wrong in a fixture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Starting or reading a process or file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Something did not happen in time.
    #[error("{what} within {after:?}")]
    Timeout {
        /// What did not happen ("no verification mail to …").
        what: String,
        /// How long was waited.
        after: Duration,
    },
    /// A ready line or an answer lacked something.
    #[error("{0}")]
    Malformed(String),
    /// An HTTP request could not be made.
    #[cfg(feature = "rest")]
    #[error("{what}: {source}")]
    Http {
        /// The request.
        what: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// The server answered a REST call with an unexpected status.
    #[error("{what} failed: HTTP {status} {code} {body}")]
    Refused {
        /// The step ("sign-up", "login", …).
        what: &'static str,
        /// HTTP status.
        status: u16,
        /// The API's error code (`error.code`), or `unknown`.
        code: String,
        /// The answer's body, for the test's message.
        body: String,
    },
    /// FFmpeg could not make the test media, or made something unplayable.
    #[cfg(feature = "media")]
    #[error("test media: {0}")]
    Media(String),
}

/// Result of a fixture.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}
