//! `quicmeet`: runs the QuicMeet server. Everything lives in the library; see `Config`.

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let config = quicmeet_server::Config::load().context("reading configuration")?;
    quicmeet_server::init_tracing(&config.log);
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let shutdown = quicmeet_server::shutdown_signal();
        quicmeet_server::Server::run(config, shutdown).await
    })
}
