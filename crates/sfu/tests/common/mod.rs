//! Test harness: a room with a simulated clock and helpers to read its outputs.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use quicmeet_proto::{
    ClientMessage, EncodedFrame, Frame, FrameHeader, MediaKind, Role, ServerMessage,
};
use quicmeet_sfu::{ConnId, Input, Join, Output, Room, RoomConfig};

pub const WALL0: u64 = 1_764_000_000_000;

pub struct Sim {
    pub room: Room,
    pub now: Instant,
    pub t0: Instant,
}

impl Sim {
    pub fn new(config: RoomConfig) -> Self {
        let t0 = Instant::now();
        Sim {
            room: Room::new(config, t0, WALL0, vec![]),
            now: t0,
            t0,
        }
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
    }

    pub fn input(&mut self, input: Input) -> Vec<Output> {
        self.room.handle_input(self.now, input);
        self.drain()
    }

    pub fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.room.poll_output()).collect()
    }

    /// Join and return the participant id.
    pub fn join(&mut self, conn: u64, name: &str, role: Role, lobby: bool) -> (u32, Vec<Output>) {
        let outs = self.input(Input::Join(Join {
            conn: ConnId(conn),
            name: name.into(),
            email: format!("{}@example.org", name.to_lowercase()),
            role,
            lobby,
            transport: "webtransport".into(),
        }));
        let pid = outs
            .iter()
            .find_map(|o| match o {
                Output::Joined {
                    conn: c,
                    participant_id,
                } if *c == ConnId(conn) => Some(*participant_id),
                _ => None,
            })
            .expect("joined");
        (pid, outs)
    }

    pub fn control(&mut self, conn: u64, msg: ClientMessage) -> Vec<Output> {
        self.input(Input::Control(ConnId(conn), msg))
    }

    pub fn media(&mut self, conn: u64, frame: EncodedFrame) -> Vec<Output> {
        self.input(Input::Media(ConnId(conn), frame))
    }

    pub fn publish(&mut self, conn: u64, track_id: u32, kind: MediaKind) -> Vec<Output> {
        let (width, height) = if kind.is_video() {
            (Some(1280), Some(720))
        } else {
            (None, None)
        };
        let codec = if kind.is_video() { "vp8" } else { "opus" };
        self.control(
            conn,
            ClientMessage::Publish {
                track_id,
                kind,
                codec: codec.into(),
                width,
                height,
                layers_capable: false,
            },
        )
    }

    pub fn subscribe(&mut self, conn: u64, track_id: u32) -> Vec<Output> {
        self.control(
            conn,
            ClientMessage::Subscribe {
                track_id,
                max_width: None,
                max_height: None,
                layer: None,
            },
        )
    }
}

pub fn frame(
    kind: MediaKind,
    track_id: u32,
    seq: u32,
    keyframe: bool,
    layer: u8,
    len: usize,
) -> EncodedFrame {
    let payload: Vec<u8> = (0..len).map(|i| (i as u32 ^ seq) as u8).collect();
    Frame::new(
        FrameHeader {
            kind,
            layer,
            keyframe,
            track_id,
            seq,
            capture_ts_us: seq as u64 * 33_333,
            audio_level: None,
            payload_len: 0,
        },
        Bytes::from(payload),
    )
    .encode()
    .unwrap()
}

pub fn video(track_id: u32, seq: u32, keyframe: bool) -> EncodedFrame {
    frame(MediaKind::Video, track_id, seq, keyframe, 0, 200)
}

pub fn audio(track_id: u32, seq: u32, level: Option<u8>) -> EncodedFrame {
    Frame::new(
        FrameHeader {
            kind: MediaKind::Audio,
            layer: 0,
            keyframe: false,
            track_id,
            seq,
            capture_ts_us: seq as u64 * 20_000,
            audio_level: level,
            payload_len: 0,
        },
        Bytes::from_static(&[0xfc; 40]),
    )
    .encode()
    .unwrap()
}

/// Control messages addressed to `conn`.
pub fn msgs_to(outs: &[Output], conn: u64) -> Vec<ServerMessage> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Control { to, msg } if to.contains(ConnId(conn)) => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

/// Media frames addressed to `conn`.
pub fn media_to(outs: &[Output], conn: u64) -> Vec<EncodedFrame> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Media { to, frame } if *to == ConnId(conn) => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

pub fn error_codes(outs: &[Output], conn: u64) -> Vec<String> {
    msgs_to(outs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::Error { code, .. } => Some(code),
            _ => None,
        })
        .collect()
}

pub fn disconnects(outs: &[Output]) -> Vec<(u64, &'static str)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Disconnect { who, reason } => Some((who.0, *reason)),
            _ => None,
        })
        .collect()
}

pub fn keyframe_requests(outs: &[Output]) -> Vec<(u64, u32, u8)> {
    outs.iter()
        .filter_map(|o| match o {
            Output::KeyframeRequest {
                publisher,
                track_id,
                layer,
            } => Some((publisher.0, *track_id, *layer)),
            _ => None,
        })
        .collect()
}

/// Host (conn 1, pid 1) and member (conn 2, pid 2); host publishes mic 16 and camera 17.
pub fn two_party() -> Sim {
    let mut s = Sim::new(RoomConfig::default());
    s.join(1, "Ann", Role::Host, false);
    s.join(2, "Bob", Role::Member, false);
    s.publish(1, 16, MediaKind::Audio);
    s.publish(1, 17, MediaKind::Video);
    s
}
