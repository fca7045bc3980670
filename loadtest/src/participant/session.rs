//! One session of a participant: publish and subscribe, start the sender, then receive and
//! account every frame and control message until the run ends, a churn leave, or the
//! connection is lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quicmeet_client::{delay, now_us, uplink, DelayMeter, Event};
use quicmeet_proto::{track, ClientMessage, MediaKind, ServerMessage};
use tokio::sync::mpsc;
use tokio::time::sleep_until;

use super::announce::Announcements;
use super::connection::{connect, Joined};
use super::{sender, Ctx, End, Spec, Target};
use crate::lab::report::{LayerSwitch, SETTLE_ALLOWANCE};
use crate::lab::Shims;
use crate::stats::{kind_index, Shared, StreamStat};

/// Tracks of the room this participant should receive, besides its own.
fn expected_tracks(ctx: &Ctx, spec: &Spec) -> usize {
    if !spec.watches {
        return 0;
    }
    (0..ctx.args.publishers_per_room)
        .filter(|k| *k != spec.k || !spec.publisher)
        .map(|k| {
            Spec::of(&ctx.args, spec.room * ctx.args.per_room() + k)
                .slots(&ctx.args, &ctx.lib)
                .len()
        })
        .sum()
}

/// When a track was subscribed.
struct Sub {
    at_us: u64,
    at: Instant,
}

/// Run one session; returns why it ended.
pub(super) async fn run(
    ctx: &Arc<Ctx>,
    spec: &Spec,
    first: bool,
    churn_at: Option<Instant>,
    arrived: &mut bool,
    ever_joined: &mut bool,
    shims: Option<&mut Shims>,
) -> End {
    let (joined, api_us, connect_us) = match connect(ctx, spec, shims).await {
        Ok(j) => j,
        Err(kind) => return End::Lost(kind),
    };
    let sh = &ctx.shared;
    sh.join_api.lock().record(api_us);
    sh.join_connect.lock().record(connect_us);
    sh.connected.fetch_add(1, Relaxed);
    if !*ever_joined {
        sh.joined.fetch_add(1, Relaxed);
        *ever_joined = true;
    }
    let is_relay = matches!(ctx.target, Target::Relay { .. });
    let Joined {
        tx,
        mut rx,
        pid,
        tracks,
    } = joined;
    if spec.impaired {
        sh.lab.impaired_pids.lock().insert((spec.room, pid));
    }
    let gate = &ctx.gates[spec.room];
    let mut go = gate.subscribe();
    // Tracks of this meeting's publishers that gave up joining: not waited for.
    let mut missing = gate.missing();
    let mut watch_missing = true;
    // Seconds since the room's media started (negative before).
    let since_start = |g: Option<Instant>| {
        g.map_or(0.0, |g| {
            let now = Instant::now();
            if now >= g {
                now.duration_since(g).as_secs_f64()
            } else {
                -g.duration_since(now).as_secs_f64()
            }
        })
    };
    let (ctl_tx, ctl_rx) = mpsc::channel::<ClientMessage>(256);
    let keyframes: Arc<[AtomicBool; 3]> = Arc::default();
    // Layers of the camera the server asked this publisher to make (bit n = layer n), and
    // keyframe requests for them (index = layer).
    let (layers_tx, layers_rx) = tokio::sync::watch::channel(0u8);
    let layer_keys: Arc<[AtomicBool; 3]> = Arc::default();
    let mut requests = quicmeet_client::layers::LayerRequests::new();
    let capable = ctx.args.publisher_layers == crate::cli::OnOff::On;
    let slots = spec.slots(&ctx.args, &ctx.lib);
    // The highest rung the server allows this publisher (0: full quality).
    let (ceiling_tx, ceiling_rx) = tokio::sync::watch::channel(0usize);
    // The server's latest `uplink_report` (queue ms, kbit/s).
    let (report_tx, report_rx) = tokio::sync::watch::channel(None::<(u32, u32)>);
    let sender = tokio::spawn(sender::run(
        ctx.clone(),
        spec.clone(),
        tx,
        pid,
        slots.clone(),
        ctl_rx,
        keyframes.clone(),
        (ceiling_rx, report_rx),
        (layers_rx, layer_keys.clone()),
    ));
    for (slot, kind) in &slots {
        let (width, height) = match kind {
            MediaKind::Video => ctx.lib.video.as_ref().and_then(|c| c.size).unzip(),
            MediaKind::Screen => ctx.lib.screen.as_ref().and_then(|c| c.size).unzip(),
            MediaKind::Audio => (None, None),
        };
        let _ = ctl_tx
            .send(ClientMessage::Publish {
                track_id: pid * 16 + slot,
                kind: *kind,
                codec: if *kind == MediaKind::Audio {
                    "opus".into()
                } else {
                    "vp8".into()
                },
                width,
                height,
                layers_capable: capable && *kind == MediaKind::Video,
            })
            .await;
    }

    let expected = expected_tracks(ctx, spec);
    let mut subs: HashMap<u32, Sub> = HashMap::new();
    let mut streams: HashMap<(u32, u8), StreamStat> = HashMap::new();
    // The layer each track arrives on now (after `layer_changed`), and which announcement
    // each open video stream belongs to.
    let mut ann = Announcements::default();
    let mut ping_sent = false;
    let mut first_frame_done = false;
    let connected_at = Instant::now();
    let connected_us = now_us();

    let subscribe = |track: u32, owner: u32, kind: MediaKind, subs: &mut HashMap<u32, Sub>| {
        if !spec.watches || owner == pid || subs.contains_key(&track) {
            return None;
        }
        let (at, at_us) = if is_relay {
            (connected_at, connected_us)
        } else {
            (Instant::now(), now_us())
        };
        subs.insert(track, Sub { at_us, at });
        if is_relay {
            return None;
        }
        Some(ClientMessage::Subscribe {
            track_id: track,
            max_width: None,
            max_height: None,
            layer: if kind == MediaKind::Audio {
                None
            } else {
                ctx.args.layer
            },
        })
    };
    for (track, owner, kind) in tracks {
        if let Some(m) = subscribe(track, owner, kind, &mut subs) {
            let _ = ctl_tx.send(m).await;
        }
    }

    // The queueing delay this receiver sees on its audio, reported as a browser does.
    let mut meter = DelayMeter::default();
    let mut reports = !is_relay && !ctx.args.no_receiver_reports;
    let mut report_tick = tokio::time::interval(Duration::from_micros(delay::REPORT_INTERVAL_US));
    report_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut end_rx = ctx.end.clone();
    let never = Instant::now() + Duration::from_secs(365 * 86_400);
    let churn_deadline = churn_at.unwrap_or(never);
    let result = loop {
        // Ready for media: every expected track subscribed; a ping's pong then proves the
        // server processed the subscriptions (control messages are handled in order).
        // (The watch is read only until this participant has arrived, not per frame.)
        if !*arrived && !ping_sent && subs.len() + *missing.borrow_and_update() >= expected {
            if is_relay {
                *arrived = true;
                gate.arrive();
            } else {
                ping_sent = true;
                let _ = ctl_tx
                    .send(ClientMessage::Ping {
                        t: serde_json::Number::from(spec.index as u64),
                    })
                    .await;
            }
        }
        let gate_open = go.borrow().is_some();
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { break End::Lost("events_ended".into()) };
                for h in rx.take_expired() {
                    open_stream(&mut streams, &mut ann, spec, &h, sh).on_expired(h.seq);
                }
                match ev {
                    Event::Media(m) => {
                        let h = *m.frame.header();
                        if h.kind == MediaKind::Audio {
                            meter.on_audio(h.track_id, h.capture_ts_us, m.received_unix_us);
                        }
                        let st = open_stream(&mut streams, &mut ann, spec, &h, sh);
                        let sub = subs.get(&h.track_id);
                        let cached = sub.is_some_and(|s| h.capture_ts_us < s.at_us);
                        let transit = m.received_unix_us as i64 - h.capture_ts_us as i64;
                        let len = m.frame.len();
                        if let Some(lat) = st.on_frame(h.seq, len, transit, cached) {
                            sh.latency[kind_index(h.kind)].record(lat);
                            sh.window.record(lat);
                            let settled = go
                                .borrow()
                                .is_some_and(|g| m.received_at >= g + SETTLE_ALLOWANCE);
                            if settled {
                                st.settled.record(lat);
                            }
                        }
                        sh.frames_rx.fetch_add(1, Relaxed);
                        sh.bytes_rx.fetch_add(len as u64, Relaxed);
                        if st.first_frame_us.is_none() {
                            let from = match (sub.map(|s| s.at), *go.borrow()) {
                                (Some(a), Some(g)) => a.max(g),
                                (Some(a), None) => a,
                                (None, Some(g)) => g,
                                (None, None) => m.received_at,
                            };
                            let ff = m.received_at.saturating_duration_since(from).as_micros() as u64;
                            st.first_frame_us = Some(ff);
                            if !first_frame_done {
                                // Join time counts the session's first frame of any kind
                                // (video starts are staggered on purpose).
                                first_frame_done = true;
                                sh.first_frame.lock().record(ff);
                                sh.join_total.lock().record(api_us + connect_us + ff);
                            }
                        }
                    }
                    Event::Control(msg) => match msg {
                        ServerMessage::TrackPublished { track } => {
                            if let Some(m) = subscribe(track.track_id, track.participant_id, track.kind, &mut subs) {
                                let _ = ctl_tx.send(m).await;
                            }
                        }
                        ServerMessage::LayerChanged { track_id, layer, .. } => {
                            // A layer this subscription had before (it moved away and
                            // back), or the same layer again (its source changed:
                            // publisher-made layers, PROTOCOL §5.6, numbered anew from a
                            // keyframe): what was received of it before is finished and a
                            // new stream starts, so the frames sent on it while this
                            // subscriber watched another layer are not counted as lost.
                            // Over WebTransport its first frames may have come before it
                            // (`announce`): those stay in the stream it opens.
                            let open = streams.contains_key(&(track_id, layer));
                            if ann.on_announce(track_id, layer, open) {
                                if let Some(s) = streams.remove(&(track_id, layer)) {
                                    sh.streams.lock().push(s);
                                }
                            }
                            sh.lab.layer_switches.lock().push(LayerSwitch {
                                room: spec.room,
                                receiver: spec.index,
                                track: track_id,
                                layer,
                                at_s: since_start(*go.borrow()),
                            });
                        }
                        // Nobody needs this publisher's full camera layer (or nobody watches
                        // it): send no more than that, as a browser publisher does.
                        ServerMessage::TrackDemand { track_id, layer, viewers }
                            if Some(track_id) == track::track_id(pid, track::Slot::Camera) =>
                        {
                            let _ = ceiling_tx.send(uplink::demand_rung(layer, viewers));
                        }
                        // What the server sees of this publisher's uplink.
                        ServerMessage::UplinkReport { queue_ms, kbps } => {
                            let _ = report_tx.send(Some((queue_ms, kbps)));
                        }
                        ServerMessage::KeyframeRequest { track_id, layer: 0 } => {
                            if let Some(f) = keyframes.get((track_id % 16) as usize) {
                                f.store(true, Relaxed);
                            }
                        }
                        ServerMessage::KeyframeRequest { layer, .. } => {
                            if let Some(f) = layer_keys.get(layer as usize) {
                                f.store(true, Relaxed);
                            }
                        }
                        m @ (ServerMessage::ProduceLayer { .. } | ServerMessage::StopLayer { .. }) => {
                            requests.handle(&m);
                            if let Some(cam) = track::track_id(pid, track::Slot::Camera) {
                                let _ = layers_tx.send(requests.mask(cam));
                            }
                        }
                        ServerMessage::Chat(c) => {
                            sh.chat_rx.fetch_add(1, Relaxed);
                            if let Some(t) = c.text.strip_prefix("lt ").and_then(|t| t.parse::<u64>().ok()) {
                                sh.chat_latency.record(now_us().saturating_sub(t));
                            }
                        }
                        ServerMessage::Pong { .. } if !*arrived => {
                            *arrived = true;
                            gate.arrive();
                        }
                        // A server older than receiver reports does not know them: stop
                        // sending them (its strike limit would drop the connection), as a
                        // browser does. This tool sends no other message it could not know.
                        ServerMessage::Error { code, .. } if code == "unknown_message" && reports => {
                            reports = false;
                        }
                        ServerMessage::Error { code, .. } => sh.error(format!("server_error_{code}")),
                        ServerMessage::Goodbye { reason, .. } => break End::Lost(format!("goodbye_{reason}")),
                        _ => {}
                    },
                    Event::ProtocolError { code, .. } => sh.error(format!("protocol_{code}")),
                    Event::Closed(_) => break End::Lost("connection_closed".into()),
                }
            }
            // A publisher gave up joining: check again whether everything that will come came.
            r = missing.changed(), if !*arrived && watch_missing => {
                // Err: the gate's sender is gone (only as the run ends); stop watching it.
                watch_missing = r.is_ok();
            }
            _ = report_tick.tick(), if reports => {
                if let Some(queue_ms) = meter.report(now_us()) {
                    // Never waits: a full control queue skips a report.
                    let _ = ctl_tx.try_send(ClientMessage::ReceiverReport { queue_ms });
                }
            }
            _ = end_rx.changed() => break End::Done,
            _ = go.changed(), if !gate_open => {}
            _ = sleep_until(gate.deadline.into()), if !gate_open => {
                if gate.opened().is_none() {
                    sh.error("room_start_timeout");
                    gate.open();
                }
            }
            _ = sleep_until(churn_deadline.into()), if churn_at.is_some() && !*ctx.stop.borrow() => break End::Churn,
        }
    };
    if let Some(st) = rx.stats() {
        sh.datagrams_expired
            .fetch_add(st.datagrams_expired, Relaxed);
        // What QUIC received but this tool never read: dropped by QUIC's receive buffer
        // (the oldest go first when it is full), i.e. this tool read too slowly.
        sh.quic_datagrams_dropped_in.fetch_add(
            st.quic_datagrams_received.saturating_sub(st.datagrams),
            Relaxed,
        );
    }
    if *ctx.end.borrow() && !matches!(result, End::Done) {
        // Closed while the run was ending: not an error.
        finish(ctx, spec, streams, subs, ann.layers(), first, true);
        drop(ctl_tx);
        let _ = sender.await;
        sh.connected.fetch_sub(1, Relaxed);
        return End::Done;
    }
    finish(
        ctx,
        spec,
        streams,
        subs,
        ann.layers(),
        first,
        matches!(result, End::Done),
    );
    drop(ctl_tx);
    let _ = tokio::time::timeout(Duration::from_secs(3), sender).await;
    sh.connected.fetch_sub(1, Relaxed);
    result
}

/// The open stream a frame with header `h` belongs to: a new one when none is open, or when
/// the frame begins a new visit to its layer ahead of its `layer_changed` (the old one is
/// handed to the report).
fn open_stream<'a>(
    streams: &'a mut HashMap<(u32, u8), StreamStat>,
    ann: &mut Announcements,
    spec: &Spec,
    h: &quicmeet_proto::FrameHeader,
    sh: &Shared,
) -> &'a mut StreamStat {
    let key = (h.track_id, h.layer);
    if ann.on_frame(h.track_id, h.layer, h.keyframe, streams.contains_key(&key)) {
        if let Some(s) = streams.remove(&key) {
            sh.streams.lock().push(s);
        }
    }
    streams
        .entry(key)
        .or_insert_with(|| StreamStat::new(spec.room, spec.index, h.track_id, h.layer, h.kind))
}

/// Hand the session's streams to the report; at the end of the run, add the frames the
/// publishers sent after the last one received (tail loss), and streams that never arrived.
fn finish(
    ctx: &Ctx,
    spec: &Spec,
    mut streams: HashMap<(u32, u8), StreamStat>,
    subs: HashMap<u32, Sub>,
    layers: &HashMap<u32, u8>,
    first: bool,
    at_end: bool,
) {
    if at_end && first {
        let last = ctx.shared.last_seq.lock();
        let layer = ctx.args.layer.unwrap_or(0);
        for (track, _) in subs.iter() {
            let kind = match track % 16 {
                0 | 3 => MediaKind::Audio,
                1 => MediaKind::Video,
                _ => MediaKind::Screen,
            };
            let l = if kind == MediaKind::Audio { 0 } else { layer };
            // Its frames came on another layer (a subscription may start below the full
            // one, PROTOCOL §5.8): they were not lost.
            let elsewhere = layers.contains_key(track) || streams.keys().any(|(t, _)| t == track);
            if elsewhere && !streams.contains_key(&(*track, l)) {
                continue;
            }
            if let (Some(seq), std::collections::hash_map::Entry::Vacant(e)) =
                (last.get(&(spec.room, *track)), streams.entry((*track, l)))
            {
                // Subscribed, the publisher sent, nothing arrived: all of it was lost.
                let mut s = StreamStat::new(spec.room, spec.index, *track, l, kind);
                if l == 0 {
                    s.tail_lost = u64::from(*seq) + 1;
                }
                e.insert(s);
            }
        }
        let opened = ctx.gates[spec.room].opened();
        // Tracks that came on another layer at some point: their layer-0 stream need not
        // start at the first frame.
        let layered: std::collections::HashSet<u32> = streams
            .keys()
            .filter(|(_, l)| *l != 0)
            .map(|(t, _)| *t)
            .chain(layers.keys().copied())
            .collect();
        for ((track, layer), s) in streams.iter_mut() {
            if *layer != 0 {
                continue;
            }
            // Layers are numbered apart: after a switch away from layer 0, what the publisher
            // sent later came on the other layer, not lost.
            let moved = layers.get(track).is_some_and(|l| *l != 0);
            if let (Some(seq), Some(_), false) =
                (last.get(&(spec.room, *track)), s.first_seq, moved)
            {
                if *seq > s.highest {
                    s.tail_lost = u64::from(*seq - s.highest);
                }
            }
            // Subscribed before the room's media started: everything from seq 0 was due.
            let early = !layered.contains(track)
                && subs
                    .get(track)
                    .zip(opened)
                    .is_some_and(|(sub, go)| sub.at <= go);
            if early {
                s.head_lost = u64::from(s.first_seq.unwrap_or(0));
            }
        }
    }
    ctx.shared.streams.lock().extend(streams.into_values());
}
