//! The lab's part of the report: the profile, what the links did, and the figures of
//! impaired and unimpaired participants side by side — as receivers (what an impaired
//! subscriber gets, and whether the others are unaffected) and as senders (how an impaired
//! publisher's media reaches the others).

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::time::Duration;

use parking_lot::Mutex;
use quicmeet_proto::MediaKind;
use serde::Serialize;

use super::{Impairment, ShimStats};
use crate::hist::Hist;
use crate::participant::Spec;
use crate::stats::StreamStat;

/// How long a subscriber's video gets to settle on a layer before its latency counts as
/// "settled" (the figure: within 3 s).
pub const SETTLE_ALLOWANCE: Duration = Duration::from_secs(3);

/// A `layer_changed` a participant received.
#[derive(Debug, Clone, Serialize)]
pub struct LayerSwitch {
    /// Room.
    pub room: usize,
    /// Receiving participant (run index).
    pub receiver: usize,
    /// Track.
    pub track: u32,
    /// New layer.
    pub layer: u8,
    /// Seconds after the room's media started.
    pub at_s: f64,
}

/// A publisher's adaptation step.
#[derive(Debug, Clone, Serialize)]
pub struct RungChange {
    /// Publishing participant (run index).
    pub participant: usize,
    /// Seconds after the room's media started.
    pub at_s: f64,
    /// New rung (0 is full quality).
    pub rung: usize,
    /// Why: `uplink` (its own measurement) or `server` (nobody needs the full layer).
    pub cause: &'static str,
}

/// What participants record for the lab while the run goes on.
#[derive(Debug, Default)]
pub struct Records {
    /// `(room, participant id)` of impaired participants, to tell their tracks apart.
    pub impaired_pids: Mutex<HashSet<(usize, u32)>>,
    /// Every `layer_changed` received.
    pub layer_switches: Mutex<Vec<LayerSwitch>>,
    /// Every publisher adaptation step.
    pub rungs: Mutex<Vec<RungChange>>,
    /// Impaired participants' shim counters, added when they leave.
    pub links: Mutex<ShimStats>,
}

impl Records {
    /// Add one participant's shim counters.
    pub fn add_links(&self, s: ShimStats) {
        let mut l = self.links.lock();
        l.up = l.up.add(&s.up);
        l.down = l.down.add(&s.down);
        l.overflow += s.overflow;
    }
}

/// Latency and loss of one kind in one group.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    /// Streams.
    pub streams: u64,
    /// Frames received.
    pub received: u64,
    /// Frames lost.
    pub lost: u64,
    /// Loss in percent.
    pub loss_pct: f64,
    /// Latency p50 (ms).
    pub p50_ms: f64,
    /// Latency p99 (ms).
    pub p99_ms: f64,
    /// Latency p99 of frames after the settle allowance (ms).
    pub settled_p99_ms: f64,
    /// Frames received later than the kind's deadline ([`AUDIO_DEADLINE`],
    /// [`VIDEO_DEADLINE`]) after capture, in percent of the frames sent: what a player that
    /// keeps conversation latency skips or plays as a stall.
    pub late_pct: f64,
    /// Lost and late together, in percent of the frames sent: the share a user does not get in
    /// time. A server that drops stale media (instead of delivering it late) moves frames from
    /// late to lost; this sum is the fair comparison.
    pub lost_or_late_pct: f64,
}

/// Audio later than this after capture is late: the one-way delay past which a conversation
/// suffers (ITU-T G.114), and past the browser client's largest jitter buffer (120 ms) plus
/// the way there.
pub const AUDIO_DEADLINE: Duration = Duration::from_millis(150);
/// Video later than this after capture is late (G.114's upper bound for interactive use).
pub const VIDEO_DEADLINE: Duration = Duration::from_millis(400);

/// One group of streams.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// What the group is.
    pub name: String,
    /// Audio.
    pub audio: Figures,
    /// Video (camera).
    pub video: Figures,
    /// `layer_changed` messages received for these streams.
    pub layer_switches: u64,
    /// Seconds after media start of the last layer switch (`None`: no switch).
    pub settled_at_s: Option<f64>,
    /// The lowest layer (highest index) any of these streams was moved to.
    pub lowest_layer: u8,
    /// Those `layer_changed` messages in the order they came, to see where each stream
    /// settled and whether a later one was a try of a better layer.
    pub switches: Vec<LayerSwitch>,
}

/// The lab's section of the report.
#[derive(Debug, Clone, Serialize)]
pub struct LabReport {
    /// The link.
    pub impairment: Impairment,
    /// In words.
    pub description: String,
    /// Impaired participants.
    pub impaired: usize,
    /// All participants.
    pub participants: usize,
    /// Loss the links alone cause on a path from an impaired publisher to an impaired
    /// subscriber (its uplink, then the other's downlink), in percent.
    pub path_loss_pct: f64,
    /// What the impaired participants' links did (both transports, all of them summed).
    pub links: ShimStats,
    /// Groups: impaired and unimpaired receivers; media from impaired and unimpaired
    /// publishers.
    pub groups: Vec<Group>,
    /// Publisher adaptation steps.
    pub rung_changes: Vec<RungChange>,
}

fn figures<'a>(streams: impl Iterator<Item = &'a StreamStat>, deadline: Duration) -> Figures {
    let mut f = Figures::default();
    let (mut lat, mut settled) = (Hist::default(), Hist::default());
    for s in streams {
        f.streams += 1;
        f.received += s.received;
        f.lost += s.lost();
        lat.merge(&s.latency);
        settled.merge(&s.settled);
    }
    let n = f.received + f.lost;
    f.loss_pct = if n == 0 {
        0.0
    } else {
        f.lost as f64 * 100.0 / n as f64
    };
    let (a, b) = (lat.summary(), settled.summary());
    f.p50_ms = a.p50 as f64 / 1000.0;
    f.p99_ms = a.p99 as f64 / 1000.0;
    f.settled_p99_ms = b.p99 as f64 / 1000.0;
    if n > 0 {
        let late = lat.count_above(deadline.as_micros() as u64);
        f.late_pct = late as f64 * 100.0 / n as f64;
        f.lost_or_late_pct = (late + f.lost) as f64 * 100.0 / n as f64;
    }
    f
}

/// Build the section, or `None` when the run had no lab.
pub fn build(
    args: &crate::cli::Args,
    lab: Option<&super::Lab>,
    rec: &Records,
    streams: &[StreamStat],
) -> Option<LabReport> {
    let lab = lab?;
    let impaired_rx = |s: &StreamStat| Spec::of(args, s.receiver).impaired;
    let pids = rec.impaired_pids.lock().clone();
    let impaired_tx = |s: &StreamStat| pids.contains(&(s.room, s.track / 16));
    let switches = rec.layer_switches.lock().clone();
    let mut groups = vec![];
    let mut group = |name: &str, pick: &dyn Fn(&StreamStat) -> bool| {
        let members: Vec<&StreamStat> = streams.iter().filter(|s| pick(s)).collect();
        if members.is_empty() {
            return;
        }
        let keys: HashSet<(usize, u32)> = members.iter().map(|s| (s.receiver, s.track)).collect();
        let mine: Vec<&LayerSwitch> = switches
            .iter()
            .filter(|w| keys.contains(&(w.receiver, w.track)))
            .collect();
        let mut last: HashMap<(usize, u32), f64> = HashMap::new();
        for w in &mine {
            let e = last.entry((w.receiver, w.track)).or_insert(w.at_s);
            *e = e.max(w.at_s);
        }
        groups.push(Group {
            name: name.to_owned(),
            audio: figures(
                members
                    .iter()
                    .copied()
                    .filter(|s| s.kind == MediaKind::Audio),
                AUDIO_DEADLINE,
            ),
            video: figures(
                members
                    .iter()
                    .copied()
                    .filter(|s| s.kind == MediaKind::Video),
                VIDEO_DEADLINE,
            ),
            layer_switches: mine.len() as u64,
            settled_at_s: last.values().copied().reduce(f64::max),
            lowest_layer: mine.iter().map(|w| w.layer).max().unwrap_or(0),
            switches: mine.iter().map(|w| (*w).clone()).collect(),
        });
    };
    group("impaired receivers", &|s| impaired_rx(s));
    group("unimpaired receivers", &|s| !impaired_rx(s));
    if !pids.is_empty() {
        group("from impaired publishers", &|s| impaired_tx(s));
        group("from unimpaired publishers", &|s| !impaired_tx(s));
    }
    let total = args.total();
    let impaired = (0..total).filter(|i| Spec::of(args, *i).impaired).count();
    let i = &lab.impairment;
    let path_loss = 1.0 - (1.0 - i.up.wire_loss()) * (1.0 - i.down.wire_loss());
    Some(LabReport {
        impairment: i.clone(),
        description: i.to_string(),
        impaired,
        participants: total,
        path_loss_pct: path_loss * 100.0,
        links: *rec.links.lock(),
        groups,
        rung_changes: rec.rungs.lock().clone(),
    })
}

impl LabReport {
    /// Lines for the plain-text summary.
    pub fn table(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "lab: {} · impaired {}/{} participants · links alone lose {:.2} % on an impaired→impaired path",
            self.description, self.impaired, self.participants, self.path_loss_pct
        );
        let l = &self.links;
        let _ = writeln!(
            s,
            "  links: up {} pkts, {} queue drops, {} lost, queue max {:.0} ms · down {} pkts, {} queue drops, {} lost, queue max {:.0} ms",
            l.up.packets,
            l.up.queue_drops,
            l.up.lost,
            l.up.max_queue_us as f64 / 1000.0,
            l.down.packets,
            l.down.queue_drops,
            l.down.lost,
            l.down.max_queue_us as f64 / 1000.0
        );
        let _ = writeln!(
            s,
            "  {:<27} {:>15} {:>7} {:>11} {:>15} {:>7} {:>12} {:>8} {:>6} {:>9}",
            "group",
            "audio p50/p99",
            "loss%",
            "lost+late%",
            "video p50/p99",
            "loss%",
            "video p99>3s",
            "switches",
            "lowest",
            "settled"
        );
        for g in &self.groups {
            let _ = writeln!(
                s,
                "  {:<27} {:>15} {:>7.2} {:>11.2} {:>15} {:>7.2} {:>12.1} {:>8} {:>6} {:>9}",
                g.name,
                format!("{:.1}/{:.1}", g.audio.p50_ms, g.audio.p99_ms),
                g.audio.loss_pct,
                g.audio.lost_or_late_pct,
                format!("{:.1}/{:.1}", g.video.p50_ms, g.video.p99_ms),
                g.video.loss_pct,
                g.video.settled_p99_ms,
                g.layer_switches,
                g.lowest_layer,
                g.settled_at_s
                    .map_or("-".to_owned(), |t| format!("{t:.1} s"))
            );
        }
        if !self.rung_changes.is_empty() {
            let steps: Vec<String> = self
                .rung_changes
                .iter()
                .take(12)
                .map(|r| format!("p{}→{}@{:.1}s({})", r.participant, r.rung, r.at_s, r.cause))
                .collect();
            let _ = writeln!(
                s,
                "  publisher adaptation: {} steps: {}{}",
                self.rung_changes.len(),
                steps.join(" "),
                if self.rung_changes.len() > 12 {
                    " …"
                } else {
                    ""
                }
            );
        }
    }
}
