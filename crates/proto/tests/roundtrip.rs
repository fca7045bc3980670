//! Property tests: everything this crate encodes decodes back to the same value, however a
//! stream is split.

use bytes::Bytes;
use proptest::prelude::*;
use quicmeet_proto::control::{self, ClientMessage, ServerMessage};
use quicmeet_proto::frame::{EncodedFrame, Frame, FrameHeader, MediaKind, StreamDecoder};
use quicmeet_proto::ws::WsMessage;
use quicmeet_proto::wt::{self, ControlStreamDecoder};
use quicmeet_proto::{ChatMessage, Decoded, Role};

fn kind() -> impl Strategy<Value = MediaKind> {
    prop_oneof![
        Just(MediaKind::Audio),
        Just(MediaKind::Video),
        Just(MediaKind::Screen)
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        kind(),
        any::<u8>(),
        any::<bool>(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        proptest::option::of(0u8..=127),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(
            |(kind, layer, keyframe, track_id, seq, ts, level, payload)| {
                Frame::new(
                    FrameHeader {
                        kind,
                        layer,
                        keyframe,
                        track_id,
                        seq,
                        capture_ts_us: ts,
                        audio_level: level,
                        payload_len: 0,
                    },
                    Bytes::from(payload),
                )
            },
        )
}

fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("(?s).{0,40}").unwrap()
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (text(), proptest::option::of(text()), any::<bool>()).prop_map(
            |(token, client, uplink_reports)| ClientMessage::Hello {
                token,
                client,
                uplink_reports
            }
        ),
        (
            any::<u32>(),
            kind(),
            text(),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>())
        )
            .prop_map(
                |(track_id, kind, codec, width, height)| ClientMessage::Publish {
                    track_id,
                    kind,
                    codec,
                    width,
                    height,
                    layers_capable: width.is_some(),
                }
            ),
        (
            any::<u32>(),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u8>())
        )
            .prop_map(|(track_id, max_width, max_height, layer)| {
                ClientMessage::Subscribe {
                    track_id,
                    max_width,
                    max_height,
                    layer,
                }
            }),
        any::<u32>().prop_map(|track_id| ClientMessage::Unsubscribe { track_id }),
        (any::<bool>(), any::<bool>())
            .prop_map(|(audio, video)| ClientMessage::Mute { audio, video }),
        text().prop_map(|text| ClientMessage::Chat { text }),
        text().prop_map(|emoji| ClientMessage::Reaction { emoji }),
        any::<u32>().prop_map(|participant_id| ClientMessage::Remove { participant_id }),
        (any::<u32>(), text()).prop_map(|(to, s)| ClientMessage::Signal {
            to,
            data: serde_json::json!({"s": s})
        }),
        any::<i64>().prop_map(|t| ClientMessage::Ping { t: t.into() }),
        Just(ClientMessage::EndMeeting {}),
        Just(ClientMessage::Leave {}),
        (any::<bool>(), proptest::option::of(any::<u32>())).prop_map(|(p2p, peer)| {
            ClientMessage::MediaPath {
                path: if p2p {
                    quicmeet_proto::MediaPathKind::P2p
                } else {
                    quicmeet_proto::MediaPathKind::Server
                },
                peer,
            }
        }),
    ]
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    prop_oneof![
        (any::<u64>(), any::<u32>(), text(), text(), any::<u64>()).prop_map(
            |(id, participant_id, name, text, ts_ms)| {
                ServerMessage::Chat(ChatMessage {
                    id,
                    participant_id,
                    name,
                    text,
                    ts_ms,
                })
            }
        ),
        (any::<u32>(), text()).prop_map(|(participant_id, reason)| {
            ServerMessage::ParticipantLeft {
                participant_id,
                reason,
            }
        }),
        (any::<u32>(), any::<u8>(), any::<u32>(), any::<u32>()).prop_map(
            |(track_id, layer, width, height)| ServerMessage::LayerChanged {
                track_id,
                layer,
                width,
                height
            }
        ),
        (any::<u32>(), any::<u32>())
            .prop_map(|(queue_ms, kbps)| ServerMessage::UplinkReport { queue_ms, kbps }),
        (any::<u32>(), text(), text()).prop_map(|(participant_id, name, email)| {
            ServerMessage::Knock {
                participant_id,
                name,
                email,
            }
        }),
        (text(), text()).prop_map(|(code, message)| ServerMessage::Error { code, message }),
        any::<u32>().prop_map(|participant_id| ServerMessage::Welcome {
            participant_id,
            role: Role::Guest,
            meeting: Default::default(),
            participants: vec![],
            tracks: vec![],
            chat: vec![],
        }),
    ]
}

proptest! {
    #[test]
    fn frame_round_trips(f in frame()) {
        let e = f.encode().unwrap();
        let d = EncodedFrame::decode(e.as_bytes().clone()).unwrap();
        prop_assert_eq!(d.to_frame(), f);
        let ws = WsMessage::decode(Bytes::from(WsMessage::encode_media(&e))).unwrap();
        prop_assert_eq!(ws, WsMessage::Media(e));
    }

    #[test]
    fn stream_decoder_split_anywhere(frames in proptest::collection::vec(frame(), 1..6), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let mut wire = vec![];
        for f in &frames {
            wire.extend_from_slice(f.encode().unwrap().as_bytes());
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        let mut d = StreamDecoder::new();
        let mut out = vec![];
        for w in points.windows(2) {
            d.push(&wire[w[0]..w[1]]);
            loop {
                match d.decode().unwrap() {
                    Decoded::Complete(f) => out.push(f.to_frame()),
                    Decoded::NeedMore(n) => { prop_assert!(n > 0); break }
                }
            }
        }
        prop_assert_eq!(out, frames);
        prop_assert!(d.is_clean_end());
    }

    #[test]
    fn client_messages_round_trip(msgs in proptest::collection::vec(client_message(), 1..5), cut in any::<prop::sample::Index>()) {
        let mut wire = vec![];
        for m in &msgs {
            prop_assert_eq!(&control::decode_client(&control::encode(m)).unwrap(), m);
            wire.extend_from_slice(&wt::encode_control(m).unwrap());
        }
        let cut = cut.index(wire.len() + 1);
        let mut d = ControlStreamDecoder::new();
        let mut out = vec![];
        for part in [&wire[..cut], &wire[cut..]] {
            d.push(part);
            while let Decoded::Complete(m) = d.decode_client().unwrap() {
                out.push(m);
            }
        }
        prop_assert_eq!(out, msgs);
    }

    #[test]
    fn server_messages_round_trip(m in server_message()) {
        prop_assert_eq!(&control::decode_server(&control::encode(&m)).unwrap(), &m);
        let ws = WsMessage::encode_control(&m).unwrap();
        let WsMessage::Control(json) = WsMessage::decode(Bytes::from(ws)).unwrap() else { panic!() };
        prop_assert_eq!(control::decode_server(&json).unwrap(), m);
    }
}
