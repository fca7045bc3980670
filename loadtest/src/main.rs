//! `quicmeet-loadtest`: see the library docs and `--help`.

use clap::Parser;
use quicmeet_loadtest::cli::{Cli, Cmd};

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QUICMEET_LOADTEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            std::process::exit(2);
        }
    };
    let code = rt.block_on(async {
        match cli.cmd {
            Some(Cmd::Relay { addr, max_secs }) => {
                match quicmeet_loadtest::relay::run_relay(addr, max_secs).await {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        2
                    }
                }
            }
            None => match quicmeet_loadtest::run::run(&cli.args).await {
                Ok(report) => {
                    println!("{}", report.table());
                    if let Err(e) = quicmeet_loadtest::run::write_reports(&cli.args, &report) {
                        eprintln!("error: {e:#}");
                        return 2;
                    }
                    if report.passed {
                        0
                    } else {
                        1
                    }
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    2
                }
            },
        }
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    std::process::exit(code);
}
