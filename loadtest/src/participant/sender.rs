//! The sending half of a session: forwards control messages under the server's rate limit
//! and, once the room's gate opens and until the run's stop, sends each track's frames of the
//! pre-encoded clips on schedule (and chat, when asked).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quicmeet_client::uplink::{Adapter, Sample, LADDER};
use quicmeet_client::{now_us, DatagramSender, TrackPublisher};
use quicmeet_proto::{ClientMessage, EncodedFrame, MediaKind};
use tokio::sync::{mpsc, watch};
use tokio::time::sleep_until;

use super::connection::ConnTx;
use super::{Ctx, Spec};
use crate::cli::OnOff;
use crate::lab::report::RungChange;
use crate::media::Player;
use crate::stats::kind_index;

/// Control messages per second the sender allows itself (the server allows 50).
const CONTROL_RATE: f64 = 40.0;
/// Burst of control messages (the server allows 100).
const CONTROL_BURST: f64 = 80.0;

struct Track {
    kind: MediaKind,
    slot: u32,
    /// 0 for the published track; 1 or 2 for a layer the server asked this publisher to make.
    layer: u8,
    player: Player,
    publisher: TrackPublisher,
    due: Instant,
}

/// A video write blocked this long means the publisher's own data is queueing.
const BACKING_UP: Duration = Duration::from_millis(20);
/// How often a publisher judges its uplink.
const ADAPT_EVERY: Duration = Duration::from_millis(250);

/// Audio as the uplink carries it: the Opus clip's ~32 kbit/s plus frame, QUIC or TCP and IP
/// headers, 50 packets a second.
const AUDIO_ON_THE_WIRE_BPS: f64 = 48_000.0;
/// A media frame's header on the wire (PROTOCOL §1), bits.
const FRAME_HEADER_BITS: f64 = (quicmeet_proto::frame::HEADER_LEN * 8) as f64;
/// How long the server's `uplink_report` counts in the own measure's place.
const REPORT_FRESH: Duration = Duration::from_millis(600);

/// What the sender measured of its uplink since the last judgement. Lateness against the
/// schedule is left out on purpose: on a busy machine it measures this tool's CPU, and the
/// load must not shrink because the tool is slow.
#[derive(Default)]
struct Uplink {
    /// Longest a video write blocked (flow control: the uplink backs up).
    block: Duration,
    /// The QUIC path's counters at the last judgement.
    prev: Option<quicmeet_client::PathStats>,
    /// The server's latest `uplink_report`: when it came, queue ms, kbit/s.
    server: Option<(Instant, u32, u32)>,
}

impl Uplink {
    /// What the server said, if recently: its queue and the rate that arrived.
    fn server_report(&self) -> Option<(Duration, f64)> {
        self.server
            .filter(|(at, _, _)| at.elapsed() < REPORT_FRESH)
            .map(|(_, q, kbps)| {
                (
                    Duration::from_millis(u64::from(q)),
                    f64::from(kbps) * 1000.0,
                )
            })
    }

    /// The interval's sample so far, without ending it: the server's report with what this
    /// sender saw itself.
    fn peek(&self) -> Sample {
        let (queue, delivered) = self.server_report().unzip();
        Sample {
            queue_delay: self.block.max(queue.unwrap_or_default()),
            loss: 0.0,
            delivered_bps: delivered,
        }
    }

    /// The interval's sample, and reset for the next one.
    fn sample(&mut self, path: Option<quicmeet_client::PathStats>) -> Sample {
        let mut s = self.peek();
        if let Some(p) = path {
            // A longer round trip means a queue somewhere, maybe on the downlink its acks
            // take; it counts only while this publisher's own writes back up too.
            if self.block >= BACKING_UP {
                s.queue_delay = s.queue_delay.max(p.rtt.saturating_sub(p.min_rtt));
            }
            if let Some(q) = self.prev {
                let sent = p.sent_packets.saturating_sub(q.sent_packets);
                if sent > 0 {
                    s.loss = p.lost_packets.saturating_sub(q.lost_packets) as f64 / sent as f64;
                }
            }
            self.prev = Some(p);
        }
        self.block = Duration::ZERO;
        s
    }
}

/// Takes the server's latest `uplink_report` into `uplink` and judges it at once: a report
/// says more than the next tick's own measure. Returns the new rung, if any. `open` turns
/// false when the session's channel closed (a closed one must not wake the loop again).
fn judge_report(
    reports: &mut watch::Receiver<Option<(u32, u32)>>,
    changed: Result<(), watch::error::RecvError>,
    open: &mut bool,
    uplink: &mut Uplink,
    adapter: &mut Adapter,
    sending: bool,
) -> Option<usize> {
    *open = changed.is_ok();
    let (queue_ms, kbps) = if *open {
        (*reports.borrow_and_update())?
    } else {
        return None;
    };
    uplink.server = Some((Instant::now(), queue_ms, kbps));
    if !sending {
        return None;
    }
    adapter.on_sample(Instant::now(), uplink.peek())
}

/// The track's next frame if it is due, advancing its schedule. An impaired publisher stamps
/// the frame with its scheduled capture time, so time spent waiting for its own uplink counts
/// in the latency, as it would for a camera; others stamp the send time, so the tool's own
/// scheduling delays (CPU) stay out of what it measures of the server.
fn next_frame(
    t: &mut Track,
    ctx: &Ctx,
    keys: Keys<'_>,
    stamp_schedule: bool,
) -> Option<EncodedFrame> {
    let (keyframes, layer_keys) = keys;
    let now = Instant::now();
    if t.due > now {
        return None;
    }
    let late = now.duration_since(t.due);
    ctx.shared.sender_lag.record(late.as_micros() as u64);
    let flag = if t.layer > 0 {
        layer_keys.get(t.layer as usize)
    } else {
        keyframes.get(t.slot as usize)
    };
    if flag.is_some_and(|f| f.swap(false, Relaxed)) {
        t.player.want_keyframe = true;
    }
    let f = t.player.next_frame();
    let capture = if stamp_schedule {
        now_us().saturating_sub(late.as_micros() as u64)
    } else {
        now_us()
    };
    let frame = t.publisher.frame_at(f.keyframe, capture, &f.data);
    let iv = t.player.interval();
    t.due += iv;
    if now > t.due + iv * 10 {
        // Far behind schedule: skip ahead rather than burst. Behind an impaired uplink that
        // is the link's doing; otherwise the tool was starved of CPU.
        ctx.shared.error(if stamp_schedule {
            "uplink_behind_schedule"
        } else {
            "sender_behind_schedule"
        });
        t.due = now;
    }
    match frame {
        Ok(f) => Some(f),
        Err(_) => {
            ctx.shared.error("frame_encode");
            None
        }
    }
}

/// Keyframe requests: per slot for the published tracks, per layer for the camera's layers
/// this publisher makes.
type Keys<'a> = (&'a [AtomicBool; 3], &'a [AtomicBool; 3]);

/// Starts and stops the camera layers this publisher makes so they match `mask` (bit n =
/// layer n). A new layer starts at its clip's first frame, a keyframe.
fn follow_layer_requests(tracks: &mut Vec<Track>, ctx: &Ctx, pid: u32, mask: u8) {
    tracks.retain(|t| t.layer == 0 || mask & (1 << t.layer) != 0);
    for layer in 1..=2u8 {
        if mask & (1 << layer) == 0 || tracks.iter().any(|t| t.layer == layer) {
            continue;
        }
        let Some(clip) = ctx.lib.video_layers.get(layer as usize).cloned().flatten() else {
            continue;
        };
        tracks.push(Track {
            kind: MediaKind::Video,
            slot: 1,
            layer,
            player: Player::new(clip),
            publisher: TrackPublisher::for_layer(pid * 16 + 1, MediaKind::Video, layer),
            due: Instant::now(),
        });
    }
}

/// Account one send; a failed frame still counts as sent (receivers count it lost).
fn sent(ctx: &Ctx, kind: MediaKind, frame: &EncodedFrame, r: Result<(), String>) {
    ctx.shared.sent(kind, frame.len());
    if let Err(e) = r {
        tracing::debug!(error = %e, "media send failed");
        ctx.shared.error(format!(
            "send_{}",
            crate::stats::KIND_NAMES[kind_index(kind)]
        ));
    }
}

/// Send an audio frame: in a datagram when the connection has them (never waiting), on
/// the connection otherwise.
/// `handed` counts the datagrams QUIC took.
async fn send_audio(
    ctx: &Ctx,
    conn: &mut ConnTx,
    dg: Option<&DatagramSender>,
    f: EncodedFrame,
    handed: &mut u64,
) {
    let r = match dg.map(|d| d.send_frame(&f)) {
        Some(Ok(())) => {
            *handed += 1;
            Ok(())
        }
        // Too large for a datagram (or no datagrams): the connection's own path.
        _ => conn.send_frame(&f).await,
    };
    sent(ctx, MediaKind::Audio, &f, r);
}

/// Owns the sending half: forwards control messages and, once the room's gate opens and
/// until the run's stop, sends each track's frames on schedule. Audio has its own schedule
/// and, on WebTransport, its own datagram path, so it goes out on time even while a video
/// write waits for the uplink. With `--adapt on`, a publisher judges its uplink every
/// [`ADAPT_EVERY`] and moves its camera along the ladder ([`quicmeet_client::uplink`]).
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    ctx: Arc<Ctx>,
    spec: Spec,
    mut conn: ConnTx,
    pid: u32,
    slots: Vec<(u32, MediaKind)>,
    mut ctl: mpsc::Receiver<ClientMessage>,
    keyframes: Arc<[AtomicBool; 3]>,
    (mut ceiling, mut reports): (watch::Receiver<usize>, watch::Receiver<Option<(u32, u32)>>),
    (mut layer_mask, layer_keys): (watch::Receiver<u8>, Arc<[AtomicBool; 3]>),
) {
    let keys: Keys<'_> = (&keyframes, &layer_keys);
    let mut layers_open = true;
    // The session's report channel is open (a closed one must not wake the loop again).
    let mut reports_open = true;
    let sh = &ctx.shared;
    let mut tracks: Vec<Track> = slots
        .iter()
        .filter_map(|(slot, kind)| {
            let clip = match kind {
                MediaKind::Audio => ctx.lib.audio.clone(),
                MediaKind::Video => ctx.lib.video.clone(),
                MediaKind::Screen => ctx.lib.screen.clone(),
            }?;
            let mut publisher = TrackPublisher::new(pid * 16 + slot, *kind);
            if *kind == MediaKind::Audio {
                publisher.set_audio_level(Some(30 + (spec.k as u8 % 40)));
            }
            Some(Track {
                kind: *kind,
                slot: *slot,
                layer: 0,
                player: Player::new(clip),
                publisher,
                due: Instant::now(),
            })
        })
        .collect();
    let mut audio = tracks
        .iter()
        .position(|t| t.kind == MediaKind::Audio)
        .map(|i| tracks.remove(i));
    let dg = conn.datagram_sender();
    // Audio datagrams handed to QUIC, against what it says it sent at the end.
    let mut dg_handed = 0u64;
    let stamp_schedule = spec.impaired;
    let adapts = ctx.args.adapt == OnOff::On
        && ctx.lib.video_ladder.len() > 1
        && tracks.iter().any(|t| t.kind == MediaKind::Video);
    // Start low and climb (`Adapter::starting_measured`); a cut fits what the server says
    // arrived. Each rung counts at what its clip really sends (frame headers included),
    // the audio at its clip's rate plus headers.
    let measured: Option<[f64; LADDER.len()]> = ctx
        .lib
        .video_ladder
        .iter()
        .map(|c| c.kbps() * 1000.0 + FRAME_HEADER_BITS / c.interval.as_secs_f64().max(1e-3))
        .collect::<Vec<f64>>()
        .try_into()
        .ok();
    let mut adapter = match measured {
        Some(rungs) => Adapter::starting_measured(rungs, AUDIO_ON_THE_WIRE_BPS),
        None => Adapter::starting(
            f64::from(ctx.args.video_kbps) * 1000.0,
            AUDIO_ON_THE_WIRE_BPS,
        ),
    };
    let mut uplink = Uplink::default();
    let mut adapt_due = Instant::now();
    let per_room = ctx.args.per_room().max(1) as f64;
    let chat_every = (ctx.args.chat_rate > 0.0)
        .then(|| Duration::from_secs_f64((per_room / ctx.args.chat_rate).max(0.25)));
    let mut chat_due = Instant::now();
    let gate = &ctx.gates[spec.room];
    let mut go = gate.subscribe();
    let mut stop = ctx.stop.clone();
    let mut sending = false;
    let mut stopped = *stop.borrow();
    let mut ctl_tokens = CONTROL_BURST;
    let mut ctl_last = Instant::now();
    let never = Instant::now() + Duration::from_secs(365 * 86_400);
    // Publishers' video starts staggered over one keyframe interval, as real cameras are
    // not in step; with every keyframe at the same instant the fan-out would be a burst
    // no real meeting produces.
    let stagger = Duration::from_secs_f64(
        ctx.args.keyframe_secs.max(0.0) * spec.k as f64
            / ctx.args.publishers_per_room.max(1) as f64,
    );
    let start_sending = |tracks: &mut Vec<Track>,
                         audio: &mut Option<Track>,
                         chat_due: &mut Instant,
                         adapt_due: &mut Instant| {
        let now = Instant::now();
        for t in tracks.iter_mut() {
            t.due = now + stagger;
        }
        if let Some(a) = audio {
            a.due = now;
        }
        if let Some(e) = chat_every {
            *chat_due = now + e.mul_f64((spec.k as f64 + 0.5) / per_room);
        }
        *adapt_due = now + stagger + ADAPT_EVERY;
    };
    // Move the camera to `rung` (a new clip starts on a keyframe).
    let set_rung = |tracks: &mut Vec<Track>, rung: usize, cause: &'static str| {
        for t in tracks
            .iter_mut()
            .filter(|t| t.kind == MediaKind::Video && t.layer == 0)
        {
            if let Some(clip) = ctx.lib.video_ladder.get(rung) {
                t.player = Player::new(clip.clone());
            }
        }
        let at_s = gate.opened().map_or(0.0, |g| {
            Instant::now().saturating_duration_since(g).as_secs_f64()
        });
        sh.lab.rungs.lock().push(RungChange {
            participant: spec.index,
            at_s,
            rung,
            cause,
        });
    };
    if adapts {
        set_rung(&mut tracks, adapter.rung(), "start");
    }
    if go.borrow().is_some() && !stopped {
        sending = true;
        start_sending(&mut tracks, &mut audio, &mut chat_due, &mut adapt_due);
    }
    loop {
        let next = if sending {
            let mut n = tracks.iter().map(|t| t.due).min().unwrap_or(never);
            if let Some(a) = &audio {
                n = n.min(a.due);
            }
            if chat_every.is_some() {
                n = n.min(chat_due);
            }
            if adapts {
                n = n.min(adapt_due);
            }
            n
        } else {
            never
        };
        tokio::select! {
            biased;
            m = ctl.recv() => match m {
                Some(m) => {
                    // Stay under the server's control-message limit (PROTOCOL §5.9: 50/s,
                    // burst 100): a big meeting's joiner has one subscribe per track.
                    let now = Instant::now();
                    ctl_tokens = (ctl_tokens
                        + now.duration_since(ctl_last).as_secs_f64() * CONTROL_RATE)
                        .min(CONTROL_BURST);
                    ctl_last = now;
                    if ctl_tokens < 1.0 {
                        let wait = Duration::from_secs_f64((1.0 - ctl_tokens) / CONTROL_RATE);
                        tokio::time::sleep(wait).await;
                        ctl_tokens = 1.0;
                        ctl_last = Instant::now();
                    }
                    ctl_tokens -= 1.0;
                    if let Err(e) = conn.send_control(&m).await {
                        tracing::debug!(error = %e, "control send failed");
                        sh.error("send_control");
                    }
                }
                None => break,
            },
            _ = stop.changed(), if !stopped => {
                stopped = true;
                sending = false;
                record_last(&ctx, &spec, audio.iter().chain(tracks.iter()));
            }
            r = go.changed(), if !sending && !stopped => {
                if r.is_ok() && go.borrow().is_some() {
                    sending = true;
                    start_sending(&mut tracks, &mut audio, &mut chat_due, &mut adapt_due);
                }
            }
            r = layer_mask.changed(), if layers_open => {
                if r.is_ok() {
                    let mask = *layer_mask.borrow();
                    follow_layer_requests(&mut tracks, &ctx, pid, mask);
                } else {
                    layers_open = false;
                }
            }
            r = reports.changed(), if adapts && reports_open => {
                let judged = judge_report(&mut reports, r, &mut reports_open, &mut uplink, &mut adapter, sending);
                if let Some(rung) = judged {
                    set_rung(&mut tracks, rung, "uplink");
                }
            }
            r = ceiling.changed(), if adapts => {
                if r.is_ok() {
                    let c = *ceiling.borrow();
                    if let Some(rung) = adapter.set_ceiling(Instant::now(), c) {
                        set_rung(&mut tracks, rung, "server");
                    }
                }
            }
            _ = sleep_until(next.into()), if sending => {
                if let Some(f) = audio.as_mut().and_then(|a| next_frame(a, &ctx, keys, stamp_schedule)) {
                    send_audio(&ctx, &mut conn, dg.as_ref(), f, &mut dg_handed).await;
                }
                if adapts && adapt_due <= Instant::now() {
                    adapt_due += ADAPT_EVERY;
                    let s = uplink.sample(conn.path_stats());
                    if let Some(rung) = adapter.on_sample(Instant::now(), s) {
                        set_rung(&mut tracks, rung, "uplink");
                    }
                }
                // A rung judged while a video write waited, applied after this round's frames.
                let mut pending_rung = None;
                for t in tracks.iter_mut() {
                    let Some(frame) = next_frame(t, &ctx, keys, stamp_schedule) else {
                        continue;
                    };
                    let started = Instant::now();
                    // While this write waits for the uplink, audio keeps its schedule on its
                    // own path.
                    let r = {
                        let write = conn.send_frame(&frame);
                        tokio::pin!(write);
                        loop {
                            let audio_due = match (&audio, &dg) {
                                (Some(a), Some(_)) => a.due,
                                _ => never,
                            };
                            tokio::select! {
                                r = &mut write => break r,
                                // A write that waits is when the uplink backs up: what the
                                // server says of it is judged at once, not after the write.
                                r = reports.changed(), if adapts && reports_open => {
                                    let judged = judge_report(&mut reports, r, &mut reports_open, &mut uplink, &mut adapter, true);
                                    pending_rung = judged.or(pending_rung);
                                }
                                _ = sleep_until(audio_due.into()) => {
                                    let (Some(a), Some(d)) = (audio.as_mut(), dg.as_ref()) else {
                                        continue;
                                    };
                                    if let Some(f) = next_frame(a, &ctx, keys, stamp_schedule) {
                                        let r = d.send_frame(&f).map_err(|e| e.to_string());
                                        dg_handed += u64::from(r.is_ok());
                                        sent(&ctx, MediaKind::Audio, &f, r);
                                    }
                                }
                            }
                        }
                    };
                    uplink.block = uplink.block.max(started.elapsed());
                    sent(&ctx, t.kind, &frame, r);
                }
                if let Some(rung) = pending_rung {
                    set_rung(&mut tracks, rung, "uplink");
                }
                if let Some(e) = chat_every {
                    if chat_due <= Instant::now() {
                        let m = ClientMessage::Chat { text: format!("lt {}", now_us()) };
                        if conn.send_control(&m).await.is_ok() {
                            sh.chat_sent.fetch_add(1, Relaxed);
                        }
                        chat_due += e;
                    }
                }
            }
        }
    }
    if !stopped {
        record_last(&ctx, &spec, audio.iter().chain(tracks.iter()));
    }
    if let Some(p) = conn.path_stats() {
        // quinn drops the oldest unsent datagrams when its send buffer is full, silently.
        sh.quic_datagrams_dropped_out
            .fetch_add(dg_handed.saturating_sub(p.datagrams_sent), Relaxed);
    }
    conn.close().await;
}

fn record_last<'a>(ctx: &Ctx, spec: &Spec, tracks: impl Iterator<Item = &'a Track>) {
    let mut last = ctx.shared.last_seq.lock();
    // A layer this publisher made is numbered apart; the published track's count is what
    // receivers' tail loss is measured against.
    for t in tracks.filter(|t| t.layer == 0) {
        let n = t.publisher.next_seq();
        if n > 0 {
            last.insert((spec.room, t.publisher.track_id()), n - 1);
        }
    }
}
