//! `quicmeet`: runs the QuicMeet server. Everything lives in the library; see `Config`.

use anyhow::Context;
use std::io::Write;

fn main() -> anyhow::Result<()> {
    let config = quicmeet_server::Config::load().context("reading configuration")?;
    quicmeet_server::init_tracing(&config.log);
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let cancel = tokio_util::sync::CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            quicmeet_server::shutdown_signal().await;
            c2.cancel();
        });
        quicmeet_server::Server::run_with(config, cancel, |b| {
            // One machine-readable line for scripts and tests that start us on port 0.
            let mut out = std::io::stdout();
            let _ = writeln!(out, "QUICMEET_READY http={} quic={}", b.http, b.quic);
            let _ = out.flush();
        })
        .await
    })
}
