//! One simulated participant: join (REST, transport, `welcome`), publish, subscribe, send
//! paced media from the pre-encoded clips, receive and account every frame, churn and
//! reconnect, and leave when the run ends.
//!
//! Each connection has two tasks: the receiver ([`session`]), which never blocks on sending,
//! and a sender task ([`sender`]) that owns the sending half and paces the clips, so a
//! publisher stalled by flow control does not distort what its receiver measures.
//! [`connection`] opens the transport (QuicMeet or the baseline relay) and waits for
//! `welcome`; this module holds what the run shares with its participants and the
//! reconnect/churn loop around sessions.

mod announce;
mod connection;
mod sender;
mod session;

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quicmeet_client::Transport;
use quicmeet_proto::MediaKind;
use tokio::sync::watch;
use tokio::time::sleep_until;

use crate::cli::{Args, OnOff, TransportArg};
use crate::media::Library;
use crate::stats::Shared;

/// Where participants connect.
#[derive(Debug, Clone)]
pub enum Target {
    /// A QuicMeet server: REST base URL and one meeting code per room.
    Quicmeet {
        /// `http://127.0.0.1:PORT`.
        base: String,
        /// Meeting code per room.
        codes: Vec<String>,
    },
    /// The baseline relay.
    Relay {
        /// UDP address.
        addr: std::net::SocketAddr,
        /// SHA-256 of its certificate.
        hash: [u8; 32],
    },
}

/// A meeting's start line: media starts when every participant has joined and subscribed
/// (or when the deadline passes), so counts of sent and received frames can be compared.
#[derive(Debug)]
pub struct Gate {
    n: usize,
    arrived: AtomicUsize,
    tx: watch::Sender<Option<Instant>>,
    /// Tracks of publishers that gave up joining: the others stop waiting for them.
    missing: watch::Sender<usize>,
    /// Open anyway at this time.
    pub deadline: Instant,
}

impl Gate {
    /// A gate for `n` participants.
    pub fn new(n: usize, deadline: Instant) -> Self {
        Gate {
            n,
            arrived: AtomicUsize::new(0),
            tx: watch::channel(None).0,
            missing: watch::channel(0).0,
            deadline,
        }
    }

    /// One participant is ready.
    pub fn arrive(&self) {
        if self.arrived.fetch_add(1, Relaxed) + 1 >= self.n {
            self.open();
        }
    }

    /// A publisher of this meeting gave up joining: nobody waits for its `tracks` any more.
    pub fn give_up(&self, tracks: usize) {
        self.missing.send_modify(|m| *m += tracks);
    }

    /// Tracks that will never come (their publishers gave up joining), and their changes.
    pub(crate) fn missing(&self) -> watch::Receiver<usize> {
        self.missing.subscribe()
    }

    /// Start media now (idempotent).
    pub fn open(&self) {
        self.tx.send_if_modified(|v| {
            if v.is_none() {
                *v = Some(Instant::now());
                true
            } else {
                false
            }
        });
    }

    /// When media started, if it did.
    pub fn opened(&self) -> Option<Instant> {
        *self.tx.borrow()
    }

    fn subscribe(&self) -> watch::Receiver<Option<Instant>> {
        self.tx.subscribe()
    }
}

/// Everything the participant tasks share.
pub struct Ctx {
    /// Options.
    pub args: Args,
    /// Pre-encoded media.
    pub lib: Library,
    /// Counters.
    pub shared: Shared,
    /// Where to connect.
    pub target: Target,
    /// One gate per room.
    pub gates: Vec<Gate>,
    /// Publishers stop sending when this turns true.
    pub stop: watch::Receiver<bool>,
    /// Receivers leave when this turns true (after a drain period).
    pub end: watch::Receiver<bool>,
    /// HTTP client without cookies (guests).
    pub http: reqwest::Client,
    /// The impairment lab, if the run has one.
    pub lab: Option<crate::lab::Lab>,
}

/// What a participant does.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Index in the run.
    pub index: usize,
    /// Room index.
    pub room: usize,
    /// Index within the room.
    pub k: usize,
    /// Sends media.
    pub publisher: bool,
    /// Subscribes to the room's publishers.
    pub watches: bool,
    /// Transport.
    pub transport: Transport,
    /// Display name.
    pub name: String,
    /// Sits behind the impairment lab's link.
    pub impaired: bool,
}

impl Spec {
    /// The participant with run index `i`.
    pub fn of(args: &Args, i: usize) -> Spec {
        let per = args.per_room().max(1);
        let (room, k) = (i / per, i % per);
        let publisher = k < args.publishers_per_room;
        Spec {
            index: i,
            room,
            k,
            publisher,
            watches: !publisher || args.publishers_watch == OnOff::On,
            transport: match args.transport {
                TransportArg::Wt => Transport::WebTransport,
                TransportArg::Ws => Transport::WebSocket,
                TransportArg::Mix if i.is_multiple_of(2) => Transport::WebTransport,
                TransportArg::Mix => Transport::WebSocket,
            },
            name: format!("lt-r{room}-{}{k}", if publisher { "p" } else { "s" }),
            impaired: args.impair.is_some() && args.impair_participants.is_none_or(|n| k < n),
        }
    }

    /// Slots this participant publishes.
    pub fn slots(&self, args: &Args, lib: &Library) -> Vec<(u32, MediaKind)> {
        let mut v = vec![];
        if !self.publisher {
            return v;
        }
        if lib.audio.is_some() && args.audio == OnOff::On {
            v.push((0, MediaKind::Audio));
        }
        if lib.video.is_some() {
            v.push((1, MediaKind::Video));
        }
        if lib.screen.is_some() && self.k == 0 {
            v.push((2, MediaKind::Screen));
        }
        v
    }
}

/// Why a session ended.
enum End {
    /// The run is over.
    Done,
    /// Planned leave and rejoin.
    Churn,
    /// The connection ended unexpectedly (error kind).
    Lost(String),
}

/// Deterministic pseudo-random numbers (xorshift) for the churn schedule.
fn rand01(state: &mut u64) -> f64 {
    let mut x = *state | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Run one participant until the run ends. Bounded: at most 3 reconnects, every wait has a
/// timeout, and the run's `end` signal stops everything.
pub async fn participant(ctx: Arc<Ctx>, spec: Spec, start: Instant) {
    sleep_until(start.into()).await;
    let mut rng = ctx.args.seed ^ (spec.index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut arrived = false;
    let mut first = true;
    let mut reconnects = 0;
    let mut ever_joined = false;
    // The participant's link lives as long as the participant, across reconnects.
    let mut shims = match (&ctx.lab, spec.impaired) {
        (Some(lab), true) => Some(crate::lab::Shims::new(
            lab.impairment.clone(),
            ctx.args.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ spec.index as u64,
        )),
        _ => None,
    };
    loop {
        if *ctx.end.borrow() {
            break;
        }
        let churn_at = if !spec.publisher && ctx.args.churn > 0.0 {
            let mean = 60.0 / ctx.args.churn;
            let secs = -mean * (1.0 - rand01(&mut rng)).max(1e-9).ln();
            Some(Instant::now() + Duration::from_secs_f64(secs.clamp(0.5, 3600.0)))
        } else {
            None
        };
        let r = session::run(
            &ctx,
            &spec,
            first,
            churn_at,
            &mut arrived,
            &mut ever_joined,
            shims.as_mut(),
        )
        .await;
        first = false;
        match r {
            End::Done => break,
            End::Churn => {
                ctx.shared.churn_rejoins.fetch_add(1, Relaxed);
            }
            End::Lost(kind) => {
                ctx.shared.error(kind);
                if *ctx.end.borrow() || *ctx.stop.borrow() || reconnects >= 3 {
                    break;
                }
                if ever_joined {
                    reconnects += 1;
                    ctx.shared.reconnects.fetch_add(1, Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                } else {
                    break;
                }
            }
        }
    }
    if let Some(s) = &shims {
        ctx.shared.lab.add_links(s.stats());
    }
    if !ever_joined {
        ctx.shared.join_failed.fetch_add(1, Relaxed);
        if spec.publisher {
            // Before arriving, so the last ones waiting for its tracks open the gate at once.
            ctx.gates[spec.room].give_up(spec.slots(&ctx.args, &ctx.lib).len());
        }
    }
    if !arrived {
        ctx.gates[spec.room].arrive();
    }
}
