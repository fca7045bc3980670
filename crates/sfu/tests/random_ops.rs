//! Random sequences of joins, control messages, media and time, from fixed seeds: the room
//! never panics and keeps its promises to subscribers:
//! - media goes only to admitted participants;
//! - every video frame a subscriber receives is a keyframe or the direct successor (same
//!   layer, seq + 1) of the previous frame it received on that track, so its decoder never
//!   sees a hole in a group of pictures.

mod common;

use std::collections::{HashMap, HashSet};

use common::*;
use quicmeet_proto::{ClientMessage, MediaKind, Role, ServerMessage};
use quicmeet_sfu::{ConnId, Input, Join, Output, RoomConfig, TranscoderLoad};
use quicmeet_testkit::Rng;

#[derive(Default)]
struct Model {
    pid: HashMap<u64, u32>,
    admitted: HashSet<u64>,
    /// (subscriber, track) → (layer, seq) of the last video frame received.
    last: HashMap<(u64, u32), (u8, u32)>,
    /// (track, layer, made by the publisher) → next seq that source sends. The publisher and
    /// the transcoder number a lower layer each in their own sequence.
    seq: HashMap<(u32, u8, bool), u32>,
    media_out: u64,
}

impl Model {
    fn check(&mut self, outs: &[Output]) {
        for o in outs {
            match o {
                Output::Joined {
                    conn,
                    participant_id,
                } => {
                    self.pid.insert(conn.0, *participant_id);
                }
                Output::Control {
                    to,
                    msg: ServerMessage::Welcome { .. },
                } => {
                    self.admitted.insert(to.as_slice()[0].0);
                }
                Output::Disconnect { who, .. } => self.forget(who.0),
                Output::Media { to, frame } => {
                    self.media_out += 1;
                    assert!(
                        self.admitted.contains(&to.0),
                        "media to non-admitted {to:?}"
                    );
                    let h = frame.header();
                    if !h.kind.is_video() {
                        continue;
                    }
                    let key = (to.0, h.track_id);
                    if !h.keyframe {
                        let prev = self.last.get(&key).copied();
                        assert_eq!(
                            prev,
                            Some((h.layer, h.seq.wrapping_sub(1))),
                            "delta {} layer {} of track {} to {} does not follow {prev:?}",
                            h.seq,
                            h.layer,
                            h.track_id,
                            to.0
                        );
                    }
                    self.last.insert(key, (h.layer, h.seq));
                }
                _ => {}
            }
        }
    }

    fn forget(&mut self, conn: u64) {
        self.admitted.remove(&conn);
        self.pid.remove(&conn);
        self.last.retain(|(c, _), _| *c != conn);
    }
}

/// Runs one seed; answers the video frames delivered and the lower layers publishers took
/// over from the transcoder.
fn run(seed: u64, steps: usize) -> (u64, u64) {
    let mut handovers = 0;
    let config = RoomConfig {
        max_participants: 6,
        max_lobby: 3,
        publish_frames_per_sec: 25.0,
        publish_frames_burst: 5.0,
        gop_cache_frames: 12,
        ..RoomConfig::default()
    };
    let mut s = Sim::new(config);
    let mut rng = Rng::new(seed);
    let mut m = Model::default();
    let conns = 1..=8u64;
    for _ in 0..steps {
        let c = 1 + rng.below(conns.end() - conns.start() + 1);
        let pid = m.pid.get(&c).copied();
        let any_pid = 1 + rng.below(10) as u32;
        // Mostly a published track, sometimes any id at all.
        let published: Vec<u32> = s.room.tracks().map(|t| t.track_id).collect();
        let any_track = if published.is_empty() || rng.chance(5) {
            any_pid * 16 + rng.below(4) as u32
        } else {
            published[rng.below(published.len() as u64) as usize]
        };
        let outs = match (pid, rng.below(20)) {
            (None, _) => {
                let role = match rng.below(4) {
                    0 => Role::Host,
                    1 => Role::Guest,
                    _ => Role::Member,
                };
                s.input(Input::Join(Join {
                    conn: ConnId(c),
                    name: format!("p{c}"),
                    email: format!("p{c}@x"),
                    role,
                    lobby: rng.chance(3),
                    transport: "websocket".into(),
                }))
            }
            (Some(_), 0) if rng.chance(20) => {
                let outs = s.input(Input::Leave(ConnId(c), "disconnected".into()));
                m.forget(c);
                outs
            }
            (Some(p), 1) => {
                let slot = rng.below(4) as u32;
                let kind = match slot {
                    1 => MediaKind::Video,
                    2 => MediaKind::Screen,
                    _ => MediaKind::Audio,
                };
                s.control(
                    c,
                    ClientMessage::Publish {
                        track_id: p * 16 + slot,
                        kind,
                        codec: "vp8".into(),
                        width: Some(1280),
                        height: Some(720),
                        layers_capable: rng.chance(2),
                    },
                )
            }
            (Some(_), 2 | 3) => s.control(
                c,
                ClientMessage::Subscribe {
                    track_id: any_track,
                    max_width: None,
                    max_height: None,
                    layer: if rng.chance(2) {
                        Some(rng.below(3) as u8)
                    } else {
                        None
                    },
                },
            ),
            (Some(_), 4) => s.control(
                c,
                ClientMessage::Unsubscribe {
                    track_id: any_track,
                },
            ),
            (Some(p), 5) if rng.chance(4) => s.control(
                c,
                ClientMessage::Unpublish {
                    track_id: p * 16 + rng.below(4) as u32,
                },
            ),
            (Some(_), 6) => {
                let msg = match rng.below(9) {
                    0 => ClientMessage::Admit {
                        participant_id: any_pid,
                    },
                    1 => ClientMessage::Deny {
                        participant_id: any_pid,
                    },
                    2 => ClientMessage::MuteParticipant {
                        participant_id: any_pid,
                    },
                    3 if rng.chance(10) => ClientMessage::Remove {
                        participant_id: any_pid,
                    },
                    4 => ClientMessage::Chat { text: "hi".into() },
                    5 => ClientMessage::Hand {
                        raised: rng.chance(2),
                    },
                    6 => ClientMessage::Signal {
                        to: any_pid,
                        data: serde_json::Value::Null,
                    },
                    7 => ClientMessage::KeyframeRequest {
                        track_id: any_track,
                    },
                    _ => ClientMessage::Mute {
                        audio: rng.chance(2),
                        video: rng.chance(2),
                    },
                };
                s.control(c, msg)
            }
            (Some(_), 7) if rng.chance(3000) => s.control(c, ClientMessage::EndMeeting {}),
            (Some(_), 8) => s.input(Input::KeyframeNeeded {
                from: ConnId(c),
                track_id: any_track,
            }),
            (Some(_), 9) => {
                let _ = s
                    .room
                    .set_layer(s.now, ConnId(c), any_track, rng.below(4) as u8);
                s.drain()
            }
            (Some(_), 10) => {
                // Transcoder output for some track (kind as the slot says).
                let layer = 1 + rng.below(2) as u8;
                let kind = if any_track % 16 == 2 {
                    MediaKind::Screen
                } else {
                    MediaKind::Video
                };
                let seq = m.seq.entry((any_track, layer, false)).or_default();
                let f = frame(kind, any_track, *seq, rng.chance(8), layer, 30);
                *seq = seq.wrapping_add(1);
                s.input(Input::LayerMedia(f))
            }
            (Some(_), 11) => {
                s.advance(rng.below(300));
                s.input(Input::Tick)
            }
            (Some(_), 12) if rng.chance(4) => {
                // The transcoder pool's load: publishers take layers over and give them back.
                s.advance(rng.below(2000));
                let dropped = if rng.chance(2) { 3 } else { 0 };
                s.input(Input::TranscoderLoad(TranscoderLoad {
                    dropped,
                    busy: 0.1,
                    layers: rng.below(4) as u32,
                    max_layers: None,
                }))
            }
            (Some(p), _) => {
                // Media from this participant, mostly on its own tracks.
                let foreign = rng.chance(10);
                let track_id = if foreign {
                    any_track
                } else {
                    p * 16 + rng.below(4) as u32
                };
                let kind = match track_id % 16 {
                    1 => MediaKind::Video,
                    2 => MediaKind::Screen,
                    _ => MediaKind::Audio,
                };
                let layer = if rng.chance(10) {
                    1 + rng.below(2) as u8
                } else {
                    0
                };
                // A frame for somebody else's track is refused; it must not use up a seq
                // of the real publisher's sequence.
                let mut spare = 0;
                let seq = if foreign && any_track / 16 != p {
                    &mut spare
                } else {
                    m.seq.entry((track_id, layer, true)).or_default()
                };
                let f = if kind == MediaKind::Audio {
                    audio(track_id, *seq, Some(rng.below(128) as u8))
                } else {
                    frame(kind, track_id, *seq, rng.chance(10), layer, 100)
                };
                *seq = seq.wrapping_add(1);
                s.advance(rng.below(15));
                s.media(c, f)
            }
        };
        m.check(&outs);
        if s.room.is_ended() {
            handovers += s.room.stats().publisher_layers_started;
            // Start over in a fresh room; the model starts over too.
            s = Sim::new(s.room.config().clone());
            m = Model {
                media_out: m.media_out,
                seq: std::mem::take(&mut m.seq),
                ..Model::default()
            };
        }
    }
    handovers += s.room.stats().publisher_layers_started;
    (m.media_out, handovers)
}

#[test]
fn random_operations_keep_the_room_consistent() {
    let (mut media, mut handovers) = (0, 0);
    for seed in 1..=8u64 {
        let (m, h) = run(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 20_000);
        media += m;
        handovers += h;
    }
    assert!(handovers > 0, "no publisher ever took a layer over");
    assert!(
        media > 50_000,
        "the random walk forwarded enough media to mean something: {media}"
    );
}
