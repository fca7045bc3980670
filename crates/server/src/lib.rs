//! The `quicmeet` server: configuration, the REST API, the web app's static files, mail,
//! certificates, metrics, and (in `media`) the WebTransport and WebSocket endpoints.
//!
//! `Server::run(config, shutdown)` is the whole server; `main` only reads the configuration.
//! The server owns I/O; protocol decisions live in the `proto` and `sfu` crates.

pub mod api;
pub mod certs;
pub mod cluster;
pub mod config;
pub mod error;
pub mod headers;
mod http3;
pub mod ics;
pub mod mail;
pub mod media;
pub mod metrics;
pub mod ratelimit;
mod serve;
mod task;
mod web;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use quicmeet_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use web::app;

use crate::{mail::Mailer, metrics::Metrics, ratelimit::RateLimiter};

/// State shared by every request handler.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub mailer: Mailer,
    pub metrics: Arc<Metrics>,
    pub cert: certs::SharedCert,
    pub public_url: String,
    /// The WebTransport URL handed to browsers.
    pub wt_url: String,
    /// The WebSocket URL handed to browsers.
    pub ws_url: String,
    pub limits: Limits,
    /// Rooms and media connections.
    pub media: Arc<media::MediaHub>,
    /// A precomputed hash verified when an e-mail is unknown, so both failures take as long.
    pub dummy_hash: String,
    /// Headers every answer carries.
    pub security: Arc<headers::SecurityHeaders>,
    /// Set in cluster mode (`--nats-url`): the NATS connection shared state lives behind.
    pub cluster: Option<cluster::Cluster>,
}

/// The rate limits of the API.
pub struct Limits {
    pub signup_ip: RateLimiter,
    pub login_ip: RateLimiter,
    pub login_account: RateLimiter,
    pub resend_ip: RateLimiter,
    pub resend_account: RateLimiter,
    pub join_ip: RateLimiter,
    pub join_account: RateLimiter,
    /// Verification mails (sign-up and resend together) per e-mail address per hour, so the
    /// server cannot be used to flood one mailbox from many client addresses.
    pub mail_per_address: RateLimiter,
}

impl Limits {
    fn new(c: &Config) -> Self {
        Self {
            signup_ip: RateLimiter::per_minute(c.auth_rate_per_min),
            login_ip: RateLimiter::per_minute(c.auth_rate_per_min.saturating_mul(3)),
            login_account: RateLimiter::per_minute(c.auth_rate_per_min),
            resend_ip: RateLimiter::per_minute(c.auth_rate_per_min),
            resend_account: RateLimiter::per_minute(c.auth_rate_per_min.div_ceil(3)),
            join_ip: RateLimiter::per_minute(c.join_rate_per_min),
            join_account: RateLimiter::per_minute(c.join_rate_per_min),
            mail_per_address: RateLimiter::per_hour(c.mail_rate_per_hour),
        }
    }
}

pub type SharedState = Arc<AppState>;

/// Addresses the server actually bound (ports may have been 0 in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub http: SocketAddr,
    pub quic: SocketAddr,
    /// HTTP/3 (UDP, same port number as `http`), unless turned off.
    pub http3: Option<SocketAddr>,
}

/// The running server.
pub struct Server;

impl Server {
    /// Runs until `shutdown` completes, then drains connections and returns.
    pub async fn run(
        config: Config,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            shutdown.await;
            c2.cancel();
        });
        Self::run_with(config, cancel, |_| {}).await
    }

    /// Like [`Server::run`], reporting the bound addresses once listening.
    pub async fn run_with(
        config: Config,
        cancel: CancellationToken,
        on_ready: impl FnOnce(Bound),
    ) -> anyhow::Result<()> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let (cluster, store) = match &config.nats_url {
            Some(url) => {
                let (c, s) = cluster::Cluster::connect(url, config.node_id.as_deref()).await?;
                (Some(c), s)
            }
            None => {
                let s = Store::open(&config.data_dir.join("db")).with_context(|| {
                    format!("opening the database in {}", config.data_dir.display())
                })?;
                (None, s)
            }
        };
        let mailer = Mailer::from_config(config.smtp_url.as_deref(), &config.data_dir)?;

        let (listener, h3_socket) = bind_http(&config).await?;
        let http = listener.local_addr()?;
        let scheme = if config.tls_enabled() {
            "https"
        } else {
            "http"
        };
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://localhost:{}", http.port()))
            .trim_end_matches('/')
            .to_owned();
        let public_host = public_host(&public_url);
        // Chromium resolves `localhost` to ::1 for QUIC and does not fall back to 127.0.0.1,
        // so in development (certificate hashes, no names checked) a loopback IPv4 endpoint is
        // named by its address.
        let media_host = config.media_host.clone().unwrap_or_else(|| {
            if public_host == "localhost"
                && config.quic_addr.ip().is_ipv4()
                && !config.tls_enabled()
            {
                "127.0.0.1".to_owned()
            } else {
                public_host.clone()
            }
        });

        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        if !names.contains(&media_host) {
            names.push(media_host.clone());
        }
        let tls_pair = config.tls_cert.as_deref().zip(config.tls_key.as_deref());
        let cert = certs::load_or_create(&config.data_dir, tls_pair, &names, chrono::Utc::now())?;
        let cert: certs::SharedCert = Arc::new(certs::CertState::new(cert)?);

        // The QUIC port is reserved here so the join answer can name it; the media plane
        // takes the socket over.
        let quic_socket = std::net::UdpSocket::bind(config.quic_addr)
            .with_context(|| format!("binding UDP on {}", config.quic_addr))?;
        let quic = quic_socket.local_addr()?;

        let ws_scheme = if public_url.starts_with("https") {
            "wss"
        } else {
            "ws"
        };
        let ws_url = format!(
            "{ws_scheme}://{}/ws",
            public_url.split("://").nth(1).unwrap_or("localhost")
        );
        let wt_url = format!("https://{}:{}/wt", bracket(&media_host), quic.port());

        let media = media::MediaHub::new(
            store.clone(),
            media::MediaConfig {
                max_participants: config.max_participants,
                transcode_workers: config.transcode_workers,
                transcode_nice: config.transcode_nice,
                transcode_temporal: config.transcode_temporal,
                transcode_saturation_layers: config.transcode_saturation_layers,
            },
            cancel.child_token(),
        );
        media.spawn_load_sampler();
        let dummy_hash =
            tokio::task::spawn_blocking(|| quicmeet_store::hash_password("not a password"))
                .await??;
        let h3_endpoint = match h3_socket {
            Some(s) => Some(http3::endpoint(s, &cert).context("starting HTTP/3")?),
            None => None,
        };
        let h3_addr = match &h3_endpoint {
            Some(e) => Some(e.local_addr()?),
            None => None,
        };
        let security = Arc::new(headers::SecurityHeaders::new(
            config.tls_enabled(),
            &ws_url,
            &wt_url,
            h3_addr.map(|a| a.port()),
        ));
        let state = Arc::new(AppState {
            security,
            limits: Limits::new(&config),
            media: media.clone(),
            config,
            store,
            mailer,
            metrics: Arc::new(Metrics::default()),
            cert,
            public_url,
            wt_url,
            ws_url,
            dummy_hash,
            cluster,
        });
        tracing::info!(
            http = %http, quic = %quic, http3 = ?h3_addr, public_url = %state.public_url,
            mail = %state.mailer.describe(), "QuicMeet is listening"
        );
        {
            let cert = state.cert.clone();
            tokio::spawn(async move {
                if let Err(e) = media::wt::serve(media, quic_socket, cert).await {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "the WebTransport endpoint stopped"
                    );
                }
            });
        }
        spawn_housekeeping(state.clone(), cancel.clone());
        certs::watch(
            state.cert.clone(),
            Duration::from_secs(state.config.cert_check_secs.max(1)),
            cancel.clone(),
        );
        if let Some(c) = &state.cluster {
            cluster::spawn_advertiser(state.clone(), cancel.clone());
            state.media.set_cluster(c.net.clone());
            let hub = state.media.clone();
            cluster::net::spawn_liveness(
                c.net.clone(),
                move |change| hub.node_change(change),
                cancel.clone(),
            );
        }
        on_ready(Bound {
            http,
            quic,
            http3: h3_addr,
        });

        let router = web::app(state.clone());
        if let Some(e) = h3_endpoint {
            tokio::spawn(http3::serve(e, router.clone(), cancel.clone()));
        }
        let tls = if state.config.tls_enabled() {
            Some(state.cert.https_config()?)
        } else {
            None
        };
        serve::serve(listener, tls, router, cancel.clone()).await?;
        state.store.flush().await?;
        tracing::info!("QuicMeet stopped");
        Ok(())
    }
}

/// Binds the TCP listener and, unless HTTP/3 is off, a UDP socket with the same port number.
/// With port 0 the kernel picks the TCP port, which may be taken for UDP: then try another.
async fn bind_http(config: &Config) -> anyhow::Result<(TcpListener, Option<std::net::UdpSocket>)> {
    let mut tries = 0;
    loop {
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("binding HTTP on {}", config.http_addr))?;
        if !config.http3 {
            return Ok((listener, None));
        }
        if config.quic_addr.port() == config.http_addr.port() && config.http_addr.port() != 0 {
            // WebTransport has this UDP port; it cannot be shared between two QUIC endpoints.
            tracing::warn!(
                port = config.http_addr.port(),
                "HTTP/3 for the web app is off: --quic-addr uses the HTTP port's number for \
                 WebTransport. Give WebTransport another port to have both."
            );
            return Ok((listener, None));
        }
        let addr = listener.local_addr()?;
        match std::net::UdpSocket::bind(addr) {
            Ok(udp) => return Ok((listener, Some(udp))),
            Err(e) if config.http_addr.port() == 0 && tries < 10 => {
                tracing::debug!(error = %e, %addr, "UDP port taken; trying another");
                tries += 1;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("binding HTTP/3 (UDP) on {addr}"));
            }
        }
    }
}

pub(crate) fn public_host(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("localhost").to_owned();
    }
    authority
        .split(':')
        .next()
        .unwrap_or("localhost")
        .to_owned()
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn spawn_housekeeping(state: SharedState, cancel: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = chrono::Utc::now();
            match state.store.purge_expired(now).await {
                Ok(n) if n > 0 => tracing::debug!(n, "purged expired tokens and sessions"),
                Err(e) => tracing::warn!(error = %e, "purging expired tokens failed"),
                _ => {}
            }
            let renew = certs::needs_renewal(&state.cert.read(), now);
            if renew {
                let names = vec![
                    "localhost".to_owned(),
                    "127.0.0.1".to_owned(),
                    "::1".to_owned(),
                ];
                match certs::make_dev_cert(&state.config.data_dir.join("certs"), &names, now) {
                    Ok(c) => {
                        if let Err(e) = state.cert.replace(c) {
                            tracing::error!(error = %e, "loading the renewed certificate failed")
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "renewing the development certificate failed")
                    }
                }
            }
        }
    });
}

/// Keeps little unsent data in the kernel per connection, so a WebSocket subscriber whose
/// network is slow pushes back on its queue in the server (which drops video and keeps audio
/// fresh) instead of hiding seconds of media in a socket buffer.
pub(crate) fn tune_tcp(tcp: &mut tokio::net::TcpStream) {
    let _ = tcp.set_nodelay(true);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let _ = socket2::SockRef::from(&*tcp).set_tcp_notsent_lowat(8 * 1024);
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

/// Installs the log subscriber.
pub fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}
