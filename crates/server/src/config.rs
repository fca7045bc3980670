//! One configuration struct, filled from flags, `QUICMEET_*` environment variables and an
//! optional TOML file, in that order of precedence.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser};

/// QuicMeet: a self-hosted, QUIC-first video meeting server.
///
/// Every option can also be given as an environment variable (shown in brackets) or as a
/// key of the TOML file named by --config (the option's name with `_` for `-`, e.g.
/// `http_addr = "0.0.0.0:8080"`). Flags beat the environment, which beats the file.
#[derive(Parser, Debug, Clone)]
#[command(name = "quicmeet", version, about, long_about)]
pub struct Config {
    /// Optional TOML configuration file.
    #[arg(long, env = "QUICMEET_CONFIG")]
    pub config: Option<PathBuf>,

    /// Directory for the database, the mail outbox and generated development certificates.
    #[arg(long, env = "QUICMEET_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// TCP address for the web app, the REST API and the WebSocket fallback.
    #[arg(long, env = "QUICMEET_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// UDP address for WebTransport (HTTP/3 over QUIC).
    #[arg(long, env = "QUICMEET_QUIC_ADDR", default_value = "127.0.0.1:4433")]
    pub quic_addr: SocketAddr,

    /// The URL people use to reach this server; meeting links and e-mails use it.
    /// Default: http://localhost:<http port> (or https:// with --tls-cert).
    #[arg(long, env = "QUICMEET_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Host name browsers use for the WebTransport endpoint. Default: the public URL's host.
    #[arg(long, env = "QUICMEET_MEDIA_HOST")]
    pub media_host: Option<String>,

    /// Directory holding the built Angular client (served at /).
    #[arg(
        long,
        env = "QUICMEET_STATIC_DIR",
        default_value = "client-angular/dist/quicmeet/browser"
    )]
    pub static_dir: PathBuf,

    /// SMTP server for outgoing mail, e.g. smtp://127.0.0.1:2525 or
    /// smtps://user:pass@mail.example.org. Without it, mails are written to DATA_DIR/outbox.
    #[arg(long, env = "QUICMEET_SMTP_URL")]
    pub smtp_url: Option<String>,

    /// Sender address of outgoing mail.
    #[arg(
        long,
        env = "QUICMEET_MAIL_FROM",
        default_value = "QuicMeet <noreply@localhost>"
    )]
    pub mail_from: String,

    /// PEM certificate chain for production: serves HTTPS on the HTTP address and the same
    /// certificate for QUIC. Without it, a 13-day self-signed development certificate is
    /// made in DATA_DIR/certs for WebTransport and the web app is served over plain HTTP.
    #[arg(long, env = "QUICMEET_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// Serve the web app and the API over HTTP/3 too, on UDP at the HTTP port's number, with
    /// the same certificate (`--http3 false` turns it off). Browsers learn of it from the
    /// `Alt-Svc` header sent over HTTPS.
    #[arg(long, env = "QUICMEET_HTTP3", default_value_t = true, action = clap::ArgAction::Set)]
    pub http3: bool,

    /// Seconds between checks of the certificate files for changes (they are also re-read
    /// on SIGHUP); a changed certificate is used for new connections without a restart.
    #[arg(long, env = "QUICMEET_CERT_CHECK_SECS", default_value_t = 10)]
    pub cert_check_secs: u64,

    /// PEM private key matching --tls-cert.
    #[arg(long, env = "QUICMEET_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Put every user in this one team instead of the team named by their e-mail domain.
    #[arg(long, env = "QUICMEET_TEAM")]
    pub team: Option<String>,

    /// Lifetime of a join token in seconds (single use).
    #[arg(long, env = "QUICMEET_JOIN_TOKEN_TTL_SECS", default_value_t = 120)]
    pub join_token_ttl_secs: u64,

    /// Lifetime of a login session in hours.
    #[arg(long, env = "QUICMEET_SESSION_TTL_HOURS", default_value_t = 720)]
    pub session_ttl_hours: u64,

    /// Sign-up, login and resend attempts allowed per minute per client IP and per account.
    #[arg(long, env = "QUICMEET_AUTH_RATE_PER_MIN", default_value_t = 10)]
    pub auth_rate_per_min: u32,

    /// Sign-ups and verification-mail resends allowed per hour for one e-mail address,
    /// whatever the client address.
    #[arg(long, env = "QUICMEET_MAIL_RATE_PER_HOUR", default_value_t = 5)]
    pub mail_rate_per_hour: u32,

    /// Join requests allowed per minute per client IP and per account.
    #[arg(long, env = "QUICMEET_JOIN_RATE_PER_MIN", default_value_t = 60)]
    pub join_rate_per_min: u32,

    /// Largest number of participants in one meeting.
    #[arg(long, env = "QUICMEET_MAX_PARTICIPANTS", default_value_t = 100)]
    pub max_participants: usize,

    /// Worker threads that make lower video layers with FFmpeg (0 turns server-side layers
    /// off; subscribers then always get the publisher's own layer). Default: one per core.
    #[arg(long, env = "QUICMEET_TRANSCODE_WORKERS", default_value_t = transcode_workers_default())]
    pub transcode_workers: usize,

    /// Nice value of the transcoder's threads (0 to 19; 0, the default, gives them the same
    /// priority as forwarding). Above 0 the transcoder only gets the CPU that forwarding and
    /// everything else on the machine leave: on a server saturated by its own forwarding that
    /// keeps audio fresh (10 took a 40-person meeting's audio p99 from 191 to 103 ms), but on
    /// a machine shared with other busy processes a lower layer can stall while subscribers
    /// are moved onto it.
    #[arg(long, env = "QUICMEET_TRANSCODE_NICE", default_value_t = 0,
          value_parser = clap::value_parser!(i32).range(0..=19))]
    pub transcode_nice: i32,

    /// Which frames of a publisher that sends two temporal layers (browsers' cameras do) the
    /// transcoder decodes to make its lower layers: `every-frame` (lower layers at the
    /// publisher's frame rate), `base-layer` (at half of it, for half the CPU) or `when-busy`
    /// (the default: every frame while a worker has room, the base layer only while it is
    /// busy or its queues drop input).
    #[arg(long, env = "QUICMEET_TRANSCODE_TEMPORAL", default_value = "when-busy")]
    pub transcode_temporal: quicmeet_transcode::pool::TemporalPolicy,

    /// Treat the transcoder pool as saturated when it would make more than this many lower
    /// layers at once (all meetings together), as it is when it drops input: publishers that
    /// declared `layers_capable` are then asked to make their wanted lower layers themselves
    /// (PROTOCOL.md §5.6), and get them back one at a time when the pool has room. Keeps CPU
    /// for forwarding on a small machine; 0 asks for every lower layer a capable publisher can
    /// make. Without it only dropped input counts as saturated.
    #[arg(long, env = "QUICMEET_TRANSCODE_SATURATION_LAYERS")]
    pub transcode_saturation_layers: Option<u32>,

    /// Take the client address from X-Forwarded-For (only behind a trusted reverse proxy).
    #[arg(long, env = "QUICMEET_TRUST_PROXY", default_value_t = false)]
    pub trust_proxy: bool,

    /// NATS server of a cluster, e.g. nats://127.0.0.1:4222 (JetStream enabled). With it this
    /// node keeps users, sessions, meetings, tokens, chat and the login/join rate counters in
    /// JetStream KV shared with the other nodes (docs/CLUSTER.md). Without it everything stays
    /// in the embedded database under DATA_DIR.
    #[arg(long, env = "QUICMEET_NATS_URL")]
    pub nats_url: Option<String>,

    /// In a cluster, the media connections this node takes before the placement rule sends
    /// further joiners of its meetings to another node (docs/CLUSTER.md section 8). A
    /// placement threshold, not an admission limit: a client that connects here with a valid
    /// token is still let in. Unset: the node is never full.
    #[arg(long, env = "QUICMEET_MAX_NODE_PARTICIPANTS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_node_participants: Option<u64>,

    /// This node's name in a cluster (lower-case letters, digits and `-`, at most 32).
    /// Default: a random name made at start.
    #[arg(long, env = "QUICMEET_NODE_ID", value_parser = parse_node_id)]
    pub node_id: Option<String>,

    /// Let two-person meetings talk peer to peer over WebRTC (`on` or `off`). Hosts can
    /// still turn it off per meeting; off sends every call through the server.
    #[arg(long, env = "QUICMEET_P2P", default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    pub p2p: bool,

    /// STUN/TURN URLs handed to browsers for peer-to-peer calls, comma-separated, e.g.
    /// `stun:turn.example.org:3478,turn:turn.example.org:3478?transport=udp`. Empty: host
    /// candidates only, which works on one network.
    #[arg(long, env = "QUICMEET_ICE_URLS", value_delimiter = ',')]
    pub ice_urls: Vec<String>,

    /// Username for the turn:/turns: URLs (a long-term credential, e.g. coturn `user=`).
    #[arg(long, env = "QUICMEET_TURN_USERNAME", requires = "turn_credential")]
    pub turn_username: Option<String>,

    /// Password for the turn:/turns: URLs.
    #[arg(long, env = "QUICMEET_TURN_CREDENTIAL", requires = "turn_username")]
    pub turn_credential: Option<String>,

    /// Log filter (tracing's EnvFilter syntax); RUST_LOG overrides it.
    #[arg(long, env = "QUICMEET_LOG", default_value = "info")]
    pub log: String,
}

impl Config {
    /// Parses the process's arguments and environment, after folding in the TOML file.
    pub fn load() -> anyhow::Result<Self> {
        let args: Vec<String> = std::env::args().collect();
        let file = config_file_arg(&args).or_else(|| std::env::var("QUICMEET_CONFIG").ok());
        if let Some(path) = file {
            apply_toml(&PathBuf::from(path))?;
        }
        Ok(Config::parse_from(args))
    }

    /// A configuration with every default, for tests: data in `data_dir`, both ports on
    /// loopback chosen by the kernel.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        let mut c = Config::parse_from(["quicmeet"]);
        c.data_dir = data_dir;
        c.http_addr = "127.0.0.1:0".parse().expect("static address");
        c.quic_addr = "127.0.0.1:0".parse().expect("static address");
        c
    }

    pub fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some()
    }
}

/// Node ids appear in NATS subjects, so they are kept to one safe token.
fn parse_node_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("use 1 to 32 lower-case letters, digits and `-`".into())
    }
}

/// `--p2p on|off` (also true/false, as a TOML boolean becomes).
/// One transcoder worker per core: each publisher's layers are made on one thread, so more
/// workers than cores only add contention, and fewer leave cores idle while queues drop frames.
fn transcode_workers_default() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(format!("expected `on` or `off`, not `{s}`")),
    }
}

fn config_file_arg(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(v.to_owned());
        }
    }
    None
}

/// Turns each TOML key into its `QUICMEET_*` variable unless the environment already sets it,
/// so precedence stays flags > environment > file. Unknown keys are refused.
fn apply_toml(path: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let cmd = Config::command();
    for (key, value) in table {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_id().as_str() == key && key != "config");
        let Some(arg) = arg else {
            bail!("{}: unknown key `{key}`", path.display());
        };
        let env = arg
            .get_env()
            .and_then(|e| e.to_str())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("QUICMEET_{}", key.to_ascii_uppercase()));
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => bail!(
                "{}: `{key}` must be a string, integer or boolean, not {other}",
                path.display()
            ),
        };
        if std::env::var_os(&env).is_none() {
            std::env::set_var(env, text);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_documents_every_option() {
        let help = Config::command().render_long_help().to_string();
        for a in Config::command().get_arguments() {
            if let Some(l) = a.get_long() {
                assert!(
                    help.contains(&format!("--{l}")),
                    "--{l} missing from --help"
                );
                assert!(
                    a.get_help().is_some() || a.get_long_help().is_some(),
                    "--{l} has no help"
                );
            }
        }
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let c = Config::parse_from(["quicmeet"]);
        assert_eq!(c.http_addr.port(), 8080);
        assert!(c.smtp_url.is_none());
        assert!(!c.tls_enabled());
        assert!(c.nats_url.is_none(), "cluster mode is opt-in");
        assert_eq!(
            c.transcode_workers,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            "one transcoder worker per core"
        );
        assert_eq!(
            c.transcode_nice, 0,
            "the transcoder's priority is left alone"
        );
        let c = Config::parse_from(["quicmeet", "--transcode-nice", "10"]);
        assert_eq!(c.transcode_nice, 10);
        assert!(Config::try_parse_from(["quicmeet", "--transcode-nice", "20"]).is_err());
        assert!(Config::try_parse_from(["quicmeet", "--transcode-nice", "-1"]).is_err());
        use quicmeet_transcode::pool::TemporalPolicy;
        assert_eq!(
            Config::parse_from(["quicmeet"]).transcode_temporal,
            TemporalPolicy::WhenBusy,
            "every frame while the transcoder has room"
        );
        let c = Config::parse_from(["quicmeet", "--transcode-temporal", "base-layer"]);
        assert_eq!(c.transcode_temporal, TemporalPolicy::BaseLayer);
        let e = Config::try_parse_from(["quicmeet", "--transcode-temporal", "half"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("every-frame, base-layer or when-busy"),
            "{e}"
        );
    }

    #[test]
    fn node_ids_are_single_subject_tokens() {
        for good in ["a", "node-1", "n0"] {
            assert!(parse_node_id(good).is_ok(), "{good}");
        }
        for bad in ["", "A", "a.b", "a*", "a>", "a b", &"x".repeat(33)] {
            assert!(parse_node_id(bad).is_err(), "{bad}");
        }
        let c = Config::parse_from(["quicmeet", "--nats-url", "nats://127.0.0.1:4222"]);
        assert_eq!(c.nats_url.as_deref(), Some("nats://127.0.0.1:4222"));
        assert_eq!(
            c.max_node_participants, None,
            "a node is never full by default"
        );
        let c = Config::parse_from(["quicmeet", "--max-node-participants", "40"]);
        assert_eq!(c.max_node_participants, Some(40));
        assert!(Config::try_parse_from(["quicmeet", "--max-node-participants", "0"]).is_err());
    }

    #[test]
    fn p2p_is_on_by_default_with_host_candidates_only() {
        let c = Config::parse_from(["quicmeet"]);
        assert!(c.p2p, "peer to peer is on by default");
        assert!(c.ice_urls.is_empty(), "host candidates only by default");
    }

    #[test]
    fn p2p_flag_takes_on_and_off() {
        assert!(!Config::parse_from(["quicmeet", "--p2p", "off"]).p2p);
        assert!(Config::parse_from(["quicmeet", "--p2p=on"]).p2p);
        assert!(Config::try_parse_from(["quicmeet", "--p2p", "maybe"]).is_err());
        let c = Config::parse_from([
            "quicmeet",
            "--ice-urls",
            "stun:a.example:3478,turn:a.example:3478",
        ]);
        assert_eq!(c.ice_urls.len(), 2);
    }
}
