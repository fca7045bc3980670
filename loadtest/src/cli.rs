//! Command line: one struct for a run (`Args`), the `relay` subcommand for the baseline relay.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

/// Load tester for QuicMeet: drives simulated participants with real VP8 and Opus over
/// WebTransport and/or WebSocket, measures join time, end-to-end latency, jitter, loss and
/// server cost, and writes a summary, a JSON report and an HTML report.
///
/// Traffic goes only to the server given (or spawned); every run is bounded by --duration.
#[derive(Debug, Clone, Parser)]
#[command(name = "quicmeet-loadtest", version, about, long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Baseline subcommands.
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
    /// The load run.
    #[command(flatten)]
    pub args: Args,
}

/// Subcommands besides the default load run.
#[derive(Debug, Clone, Subcommand)]
pub enum Cmd {
    /// Run the minimal QUIC relay used as the cost floor (plain quinn, no SFU logic): every
    /// datagram and every unidirectional stream a connection sends is copied to every other
    /// connection of the same room. Prints `RELAY_READY quic=ADDR`.
    Relay {
        /// UDP address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: std::net::SocketAddr,
        /// Stop after this many seconds (bounded by design).
        #[arg(long, default_value_t = 3600)]
        max_secs: u64,
    },
}

/// Media transport of the simulated participants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportArg {
    /// WebTransport (QUIC) for everyone.
    Wt,
    /// WebSocket for everyone.
    Ws,
    /// Alternate WebTransport and WebSocket, participant by participant.
    Mix,
}

/// What the publishers' camera clip shows (`--video-scene`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoScene {
    /// The moving test pattern: every pixel changes every frame.
    Pattern,
    /// A webcam-like scene: a still room, a person who moves and talks, sensor noise.
    Camera,
}

impl VideoScene {
    /// The test scene that makes the clip.
    pub fn scene(self) -> quicmeet_testkit::clip::Scene {
        match self {
            VideoScene::Pattern => quicmeet_testkit::clip::Scene::Pattern,
            VideoScene::Camera => quicmeet_testkit::clip::Scene::Camera,
        }
    }
}

/// Video resolution of the publishers' camera track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Res {
    /// No camera track (audio-only meeting).
    None,
    /// 320x180.
    #[value(name = "180p")]
    P180,
    /// 640x360.
    #[value(name = "360p")]
    P360,
    /// 1280x720.
    #[value(name = "720p")]
    P720,
    /// 1920x1080.
    #[value(name = "1080p")]
    P1080,
}

impl Res {
    /// Width and height, `None` for no video.
    pub fn size(self) -> Option<(u32, u32)> {
        match self {
            Res::None => None,
            Res::P180 => Some((320, 180)),
            Res::P360 => Some((640, 360)),
            Res::P720 => Some((1280, 720)),
            Res::P1080 => Some((1920, 1080)),
        }
    }
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// What `--find-capacity` grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CapacityDim {
    /// Publishers per room (a meeting where everybody sends and watches everybody).
    Publishers,
    /// Receive-only subscribers per room.
    Subscribers,
    /// Number of rooms.
    Rooms,
}

/// What to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// A QuicMeet server (REST join, SFU).
    Quicmeet,
    /// The baseline relay (`quicmeet-loadtest relay`, spawned by the tool): same media on
    /// the wire, no SFU.
    Relay,
}

/// Options of a load run.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct Args {
    /// Server base URL (REST and WebSocket), e.g. http://127.0.0.1:8080. Not needed with
    /// --spawn-server. Must be a loopback or explicitly given address.
    #[arg(long, short = 's')]
    pub server: Option<String>,
    /// Start this `quicmeet` binary on 127.0.0.1 (ports chosen by the OS, a fresh data dir,
    /// rate limits raised for load) and stop it at the end.
    #[arg(long, value_name = "PATH")]
    pub spawn_server: Option<PathBuf>,
    /// With --spawn-server: start a cluster of this many nodes instead of one server, with
    /// a private `nats-server -js` on loopback. Each node takes `participants / N` media
    /// connections (`--max-node-participants`, unless given with --server-arg) before the
    /// placement rule sends further joiners elsewhere, so one meeting spreads over the nodes.
    /// Joins go through the first node; CPU and `/metrics` are summed over all nodes and NATS.
    /// With --find-capacity every step starts a fresh cluster sized for it, unless
    /// --server-arg=--max-node-participants=K is given (then the nodes start once).
    #[arg(long, default_value_t = 1, requires = "spawn_server", value_parser = clap::value_parser!(u16).range(1..=16))]
    pub nodes: u16,
    /// With --spawn-server (or --target relay): cap the spawned server, and each node with
    /// --nodes, at this many cores with a cgroup CPU quota (10 ms period), as if each ran on
    /// a machine of that size; the load tester and NATS keep the rest of this host. Compares
    /// one node with N nodes at the same per-node size on one machine. Needs root or a
    /// delegated cgroup.
    #[arg(long, value_name = "CORES")]
    pub node_cpus: Option<f64>,
    /// Extra arguments for the spawned server (repeatable), e.g. --server-arg=--max-participants=200.
    #[arg(long, allow_hyphen_values = true)]
    pub server_arg: Vec<String>,
    /// PID of the server process, to sample its CPU and memory from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Prometheus endpoint to sample (default: SERVER/metrics).
    #[arg(long)]
    pub metrics_url: Option<String>,
    /// What to load: the QuicMeet server or the baseline relay.
    #[arg(long, value_enum, default_value = "quicmeet")]
    pub target: Target,

    /// Number of meetings.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Participants per meeting that publish (and, unless --publishers-watch off, watch every
    /// other publisher).
    #[arg(long, default_value_t = 2)]
    pub publishers_per_room: usize,
    /// Receive-only participants per meeting (watch every publisher).
    #[arg(long, default_value_t = 2)]
    pub subscribers_per_room: usize,
    /// Whether publishers subscribe to the other publishers of their meeting.
    #[arg(long, value_enum, default_value = "on")]
    pub publishers_watch: OnOff,
    /// Media transport.
    #[arg(long, value_enum, default_value = "wt")]
    pub transport: TransportArg,
    /// Camera resolution (`none` for audio-only).
    #[arg(long, value_enum, default_value = "360p")]
    pub video_res: Res,
    /// What the camera shows: `pattern`, the moving test pattern where every pixel changes
    /// every frame (the encoders' and the transcoder's worst case), or `camera`, a webcam-like
    /// scene (a still room, a person who moves and talks, sensor noise).
    #[arg(long, value_enum, default_value = "pattern")]
    pub video_scene: VideoScene,
    /// Temporal layers in the camera clip: 1, or 2 as the browser client sends its camera
    /// (`L1T2`: every other frame is referred to by none, so the server makes lower layers from
    /// the base layer alone, at half the frame rate and half the CPU).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub video_temporal_layers: u8,
    /// Camera bitrate in kbit/s.
    #[arg(long, default_value_t = 600)]
    pub video_kbps: u32,
    /// Camera frame rate.
    #[arg(long, default_value_t = 30)]
    pub fps: u32,
    /// Seconds between camera keyframes.
    #[arg(long, default_value_t = 2.0)]
    pub keyframe_secs: f64,
    /// Microphone track (Opus, 20 ms frames).
    #[arg(long, value_enum, default_value = "on")]
    pub audio: OnOff,
    /// The first publisher of each meeting also shares its screen (VP8 720p, 5 fps, 800 kbit/s).
    #[arg(long)]
    pub screen: bool,
    /// Chat messages per second per meeting (spread over its participants; the server allows
    /// 5/s per participant).
    #[arg(long, default_value_t = 0.0)]
    pub chat_rate: f64,
    /// Spread joins over this many seconds.
    #[arg(long, default_value_t = 0.0)]
    pub ramp: f64,
    /// Seconds of media after the last join.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Subscriber leave-and-rejoin events per subscriber per minute (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// Video layer subscribers ask for (0 full, 1 half, 2 quarter: 1 and 2 are transcoded by
    /// the server).
    #[arg(long)]
    pub layer: Option<u8>,
    /// Send no `receiver_report` (the queueing delay each participant measures on its
    /// audio, which a browser sends): to compare the server's estimate without it.
    #[arg(long)]
    pub no_receiver_reports: bool,

    /// Join as guests of meetings given with --meeting (no account).
    #[arg(long)]
    pub guest: bool,
    /// Existing meeting code to use (repeatable); otherwise meetings are created.
    #[arg(long)]
    pub meeting: Vec<String>,
    /// Account that creates the meetings.
    #[arg(long, requires = "password")]
    pub email: Option<String>,
    /// Password of --email.
    #[arg(long)]
    pub password: Option<String>,
    /// Server mail outbox (DATA_DIR/outbox): sign up a fresh account and verify it from the
    /// mail. Implied by --spawn-server.
    #[arg(long)]
    pub outbox: Option<PathBuf>,

    /// Fail (exit 1) when the end-to-end p99 latency exceeds this (ms).
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    /// Fail (exit 1) when more than this percentage of frames is lost.
    #[arg(long)]
    pub max_loss: Option<f64>,
    /// Fail (exit 1) when more than this percentage of participants could not join.
    #[arg(long, default_value_t = 0.0)]
    pub max_join_fail: f64,
    /// Grow the load (see --capacity-dim) until a threshold breaks; report the largest load
    /// that held. Needs --max-p99-ms and/or --max-loss.
    #[arg(long)]
    pub find_capacity: bool,
    /// Dimension grown by --find-capacity.
    #[arg(long, value_enum, default_value = "publishers")]
    pub capacity_dim: CapacityDim,
    /// Upper bound for --find-capacity.
    #[arg(long, default_value_t = 64)]
    pub capacity_max: usize,

    /// Put participants behind the impairment lab's links: a named profile (`1mbit`,
    /// `down1m`, `up600k`, `lossy2`, `4g`, `wifi-bad`, `satellite`, `passthrough`) or a spec
    /// such as `down=1mbit,queue=200ms,delay=25ms,jitter=5ms,loss=1%,burst=3%/4` (a profile
    /// name may start it; see the README). Each impaired participant gets its own uplink and
    /// downlink, through a UDP shim (WebTransport) and a TCP shim (WebSocket).
    #[arg(long, value_name = "PROFILE|SPEC")]
    pub impair: Option<String>,
    /// Impair only the first N participants of each room (publishers come first).
    #[arg(long, value_name = "N", requires = "impair")]
    pub impair_participants: Option<usize>,
    /// Publishers follow their uplink: lower the bitrate, then the frame rate, then the
    /// resolution when sends back up, and climb back one step at a time.
    #[arg(long, value_enum, default_value = "on")]
    pub adapt: OnOff,
    /// Publishers declare `layers_capable` on their camera and, when the server's transcoder
    /// is saturated and asks (`produce_layer`), send the half and quarter layers themselves
    /// from clips encoded at those sizes, until `stop_layer` (PROTOCOL.md §5.6).
    #[arg(long, value_enum, default_value = "off")]
    pub publisher_layers: OnOff,
    /// Drop received audio datagrams older than this many ms instead of accounting them late,
    /// as browsers do (0: keep every datagram). The tool's own drops are reported apart.
    #[arg(long, default_value_t = 150)]
    pub datagram_max_age_ms: u64,

    /// Write the JSON report here.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
    /// Write the self-contained HTML report here.
    #[arg(long)]
    pub report_html: Option<PathBuf>,
    /// No live progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Seed of the churn schedule.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl Args {
    /// Participants per room.
    pub fn per_room(&self) -> usize {
        self.publishers_per_room + self.subscribers_per_room
    }

    /// Total participants.
    pub fn total(&self) -> usize {
        self.rooms * self.per_room()
    }

    /// The lab's setting, if `--impair` was given.
    pub fn lab(&self) -> Result<Option<crate::lab::Lab>, crate::lab::SpecError> {
        self.impair
            .as_deref()
            .map(|s| {
                Ok(crate::lab::Lab {
                    impairment: s.parse()?,
                    first: self.impair_participants,
                })
            })
            .transpose()
    }
}
