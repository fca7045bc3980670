//! `quicmeet-loadtest`: the tool engineers use to size and trust a QuicMeet deployment.
//!
//! It drives simulated participants through the real REST API and media transports
//! (WebTransport, WebSocket or a mix) with **real** VP8 and Opus encoded once at start-up and
//! replayed on schedule, each frame stamped with its send time in `capture_ts_us`, so that on
//! one machine (loopback shares the clock) end-to-end latency is receive time − capture time.
//! Loss comes from sequence-number gaps per track and layer, server drops and cost from the
//! server's `/metrics` and `/proc`. A run ends with a summary table, a JSON report and a
//! self-contained HTML report; thresholds make it exit non-zero. `--find-capacity` grows the
//! load until a threshold breaks.
//!
//! The `relay` subcommand is the cost floor: a minimal quinn relay with the same media on the
//! wire and no SFU logic, measured by the same participants.
//!
//! What this crate must never do: send traffic anywhere but the target it was given (or
//! spawned), loop without a bound in count and time, or invent protocol (everything on the
//! wire comes from `quicmeet-proto` through `quicmeet-client`).

pub mod api;
pub mod build;
pub mod capacity;
pub mod cli;
pub mod cluster;
pub mod cpucap;
pub mod hist;
pub mod lab;
pub mod media;
pub mod participant;
pub mod relay;
pub mod report;
pub mod run;
pub mod server;
pub mod stats;
