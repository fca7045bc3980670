//! Golden vectors shared with the TypeScript client (`crates/proto/vectors/*.json`).
//!
//! `cargo test -p quicmeet-proto --test vectors` checks every vector both ways: the hex bytes
//! decode to the JSON object, and the JSON object encodes to exactly the hex bytes. Invalid
//! vectors must fail with the given error code.
//!
//! The files are generated from the case lists below: after a deliberate protocol change run
//! `QM_REGEN_VECTORS=1 cargo test -p quicmeet-proto --test vectors` and review the diff. Without
//! that variable the test also fails when the files differ from the case lists, so the files
//! cannot drift silently.

use std::path::PathBuf;

use bytes::Bytes;
use quicmeet_proto::control::{self, ClientMessage, ServerMessage};
use quicmeet_proto::frame::{self, EncodedFrame, Frame, FrameHeader, MediaKind, StreamDecoder};
use quicmeet_proto::ws::WsMessage;
use quicmeet_proto::wt::{self, ControlStreamDecoder};
use quicmeet_proto::{ChatMessage, Decoded, MeetingInfo, Participant, Role, TrackInfo};
use serde_json::{json, Value};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

fn regen() -> bool {
    std::env::var_os("QM_REGEN_VECTORS").is_some()
}

// ---------- frames ----------

fn kind_name(k: MediaKind) -> &'static str {
    match k {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
        MediaKind::Screen => "screen",
    }
}

fn frame_to_json(f: &EncodedFrame) -> Value {
    let h = f.header();
    json!({
        "version": 1,
        "kind": kind_name(h.kind),
        "layer": h.layer,
        "keyframe": h.keyframe,
        "audio_level": h.audio_level,
        "track_id": h.track_id,
        "seq": h.seq,
        "capture_ts_us": h.capture_ts_us,
        "payload_len": h.payload_len,
        "payload_hex": hex::encode(f.payload()),
    })
}

fn frame_from_json(v: &Value) -> Frame {
    let kind = serde_json::from_value::<MediaKind>(v["kind"].clone()).unwrap();
    let payload = hex::decode(v["payload_hex"].as_str().unwrap()).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["payload_len"].as_u64().unwrap() as usize, payload.len());
    Frame::new(
        FrameHeader {
            kind,
            layer: v["layer"].as_u64().unwrap() as u8,
            keyframe: v["keyframe"].as_bool().unwrap(),
            track_id: v["track_id"].as_u64().unwrap() as u32,
            seq: v["seq"].as_u64().unwrap() as u32,
            capture_ts_us: v["capture_ts_us"].as_u64().unwrap(),
            audio_level: v["audio_level"].as_u64().map(|l| l as u8),
            payload_len: 0,
        },
        Bytes::from(payload),
    )
}

fn hdr(kind: MediaKind, track_id: u32, seq: u32, ts: u64) -> FrameHeader {
    FrameHeader {
        kind,
        layer: 0,
        keyframe: false,
        track_id,
        seq,
        capture_ts_us: ts,
        audio_level: None,
        payload_len: 0,
    }
}

fn valid_frames() -> Vec<(&'static str, Frame)> {
    let mut v = vec![];
    let mut h = hdr(MediaKind::Audio, 16, 1, 20_000);
    h.audio_level = Some(42);
    v.push((
        "audio_mic_with_level",
        Frame::new(h, Bytes::from_static(&[0xfc, 0xff, 0xfe])),
    ));
    let h = hdr(MediaKind::Audio, 19, 7, 140_000);
    v.push((
        "audio_screen_no_level",
        Frame::new(h, Bytes::from_static(&[0x78, 0x01])),
    ));
    let mut h = hdr(MediaKind::Audio, 32, 2, 40_000);
    h.audio_level = Some(127);
    v.push(("audio_silence_level_127", Frame::new(h, Bytes::new())));
    let mut h = hdr(MediaKind::Video, 17, 0, 1_700_000_000_000_000);
    h.keyframe = true;
    v.push((
        "video_keyframe_layer0",
        Frame::new(h, Bytes::from_static(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a])),
    ));
    let mut h = hdr(MediaKind::Video, 17, 1, 1_700_000_000_033_333);
    h.layer = 2;
    v.push((
        "video_delta_layer2",
        Frame::new(h, Bytes::from_static(&[0x31, 0x01, 0x00])),
    ));
    let mut h = hdr(MediaKind::Screen, 18, 5, 99);
    h.keyframe = true;
    h.layer = 1;
    v.push((
        "screen_keyframe_layer1",
        Frame::new(h, Bytes::from_static(b"screen")),
    ));
    let mut h = hdr(MediaKind::Video, u32::MAX, u32::MAX, (1 << 53) - 1);
    h.layer = 255;
    v.push(("max_field_values", Frame::new(h, Bytes::from_static(&[0]))));
    v
}

fn invalid_frames() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let good = valid_frames()[3].1.encode().unwrap().as_bytes().to_vec();
    let audio = valid_frames()[0].1.encode().unwrap().as_bytes().to_vec();
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    let with_audio = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = audio.clone();
        f(&mut b);
        b
    };
    vec![
        ("empty", vec![], "truncated"),
        ("version_0", with(&|b| b[0] = 0), "bad_version"),
        ("version_2", with(&|b| b[0] = 2), "bad_version"),
        ("kind_3", with(&|b| b[1] = 3), "unknown_kind"),
        ("flags_bit7", with(&|b| b[3] |= 0x80), "reserved_bits"),
        ("flags_bit2", with(&|b| b[3] |= 0x04), "reserved_bits"),
        ("reserved_byte_21", with(&|b| b[21] = 1), "reserved_bits"),
        ("reserved_u16_22", with(&|b| b[23] = 1), "reserved_bits"),
        (
            "audio_level_without_flag",
            with(&|b| b[20] = 3),
            "reserved_bits",
        ),
        (
            "audio_level_128",
            with_audio(&|b| b[20] = 128),
            "reserved_bits",
        ),
        (
            "payload_len_over_512k",
            with(&|b| {
                b[24..28].copy_from_slice(&(frame::MAX_PAYLOAD as u32 + 1).to_be_bytes());
            }),
            "oversized",
        ),
        ("header_cut_at_27", good[..27].to_vec(), "truncated"),
        (
            "payload_cut_short",
            good[..good.len() - 1].to_vec(),
            "truncated",
        ),
        ("trailing_byte", with(&|b| b.push(0)), "trailing_bytes"),
    ]
}

fn frames_doc() -> Value {
    let valid: Vec<Value> = valid_frames()
        .into_iter()
        .map(|(name, f)| {
            let e = f.encode().unwrap();
            json!({"name": name, "hex": hex::encode(e.as_bytes()), "frame": frame_to_json(&e)})
        })
        .collect();
    let invalid: Vec<Value> = invalid_frames()
        .into_iter()
        .map(|(name, b, code)| json!({"name": name, "hex": hex::encode(b), "error": code}))
        .collect();
    let names = [
        "video_keyframe_layer0",
        "video_delta_layer2",
        "audio_mic_with_level",
    ];
    let mut stream = vec![];
    for n in names {
        let f = valid_frames().into_iter().find(|(m, _)| *m == n).unwrap().1;
        stream.extend_from_slice(f.encode().unwrap().as_bytes());
    }
    json!({
        "description": "QuicMeet media frame golden vectors (see docs/PROTOCOL.md). Each valid entry: `hex` is the exact wire encoding of one frame (as in one datagram or after the 0x02 WebSocket type byte); `frame` is its decoded form (kind as a name, audio_level null when the flag is clear, payload as hex). Each invalid entry must be refused by a whole-message decoder with the error code given. `streams` holds frames back to back as on a WebTransport unidirectional stream; `frames` lists the valid entries in order. capture_ts_us values stay below 2^53 so that JavaScript numbers hold them exactly.",
        "valid": valid,
        "invalid": invalid,
        "streams": [{"name": "gop_then_audio", "hex": hex::encode(&stream), "frames": names}],
    })
}

// ---------- control ----------

fn participant(id: u32, name: &str, role: Role) -> Participant {
    Participant {
        id,
        name: name.into(),
        role,
        audio_muted: false,
        video_muted: true,
        hand_raised: false,
        transport: "webtransport".into(),
    }
}

fn client_cases() -> Vec<(&'static str, ClientMessage)> {
    use ClientMessage::*;
    vec![
        (
            "hello",
            Hello {
                token: "jt_5f2c9a".into(),
                client: Some("quicmeet-web/0.1".into()),
                uplink_reports: false,
            },
        ),
        (
            "hello_minimal",
            Hello {
                token: "jt_5f2c9a".into(),
                client: None,
                uplink_reports: false,
            },
        ),
        (
            "hello_uplink_reports",
            Hello {
                token: "jt_5f2c9a".into(),
                client: Some("quicmeet-web/0.1".into()),
                uplink_reports: true,
            },
        ),
        (
            "publish_camera",
            Publish {
                track_id: 17,
                kind: MediaKind::Video,
                codec: "vp8".into(),
                width: Some(1280),
                height: Some(720),
                layers_capable: false,
            },
        ),
        (
            "publish_mic",
            Publish {
                track_id: 16,
                kind: MediaKind::Audio,
                codec: "opus".into(),
                width: None,
                height: None,
                layers_capable: false,
            },
        ),
        (
            "publish_camera_layers_capable",
            Publish {
                track_id: 17,
                kind: MediaKind::Video,
                codec: "vp8".into(),
                width: Some(1280),
                height: Some(720),
                layers_capable: true,
            },
        ),
        ("unpublish", Unpublish { track_id: 18 }),
        (
            "subscribe_by_size",
            Subscribe {
                track_id: 33,
                max_width: Some(640),
                max_height: Some(360),
                layer: None,
            },
        ),
        (
            "subscribe_by_layer",
            Subscribe {
                track_id: 33,
                max_width: None,
                max_height: None,
                layer: Some(2),
            },
        ),
        ("unsubscribe", Unsubscribe { track_id: 33 }),
        (
            "mute",
            Mute {
                audio: true,
                video: false,
            },
        ),
        (
            "chat_unicode",
            Chat {
                text: "héllo \"world\" 👋\n".into(),
            },
        ),
        (
            "reaction",
            Reaction {
                emoji: "🎉".into()
            },
        ),
        ("hand", Hand { raised: true }),
        ("keyframe_request", KeyframeRequest { track_id: 33 }),
        ("admit", Admit { participant_id: 4 }),
        ("deny", Deny { participant_id: 5 }),
        ("mute_participant", MuteParticipant { participant_id: 2 }),
        ("remove", Remove { participant_id: 2 }),
        ("end_meeting", EndMeeting {}),
        (
            "signal",
            Signal {
                to: 3,
                data: json!({"sdp": "v=0", "n": [1, 2]}),
            },
        ),
        ("ping_int", Ping { t: 12345u64.into() }),
        (
            "ping_float",
            Ping {
                t: serde_json::Number::from_f64(1234.5).unwrap(),
            },
        ),
        ("leave", Leave {}),
        (
            "media_path_p2p",
            MediaPath {
                path: quicmeet_proto::MediaPathKind::P2p,
                peer: Some(3),
            },
        ),
        (
            "media_path_server",
            MediaPath {
                path: quicmeet_proto::MediaPathKind::Server,
                peer: None,
            },
        ),
        ("receiver_report", ReceiverReport { queue_ms: 87 }),
    ]
}

fn server_cases() -> Vec<(&'static str, ServerMessage)> {
    use ServerMessage::*;
    let chat = ChatMessage {
        id: 7,
        participant_id: 1,
        name: "Ann".into(),
        text: "hi all".into(),
        ts_ms: 1_764_000_000_000,
    };
    vec![
        (
            "welcome",
            Welcome {
                participant_id: 2,
                role: Role::Member,
                meeting: MeetingInfo {
                    code: "abc-defg-hij".into(),
                    title: "Standup".into(),
                    host_name: Some("Ann".into()),
                },
                participants: vec![
                    participant(1, "Ann", Role::Host),
                    participant(2, "Bob", Role::Member),
                ],
                tracks: vec![
                    TrackInfo {
                        track_id: 16,
                        participant_id: 1,
                        kind: MediaKind::Audio,
                        codec: "opus".into(),
                        width: None,
                        height: None,
                    },
                    TrackInfo {
                        track_id: 17,
                        participant_id: 1,
                        kind: MediaKind::Video,
                        codec: "vp8".into(),
                        width: Some(1280),
                        height: Some(720),
                    },
                ],
                chat: vec![chat.clone()],
            },
        ),
        (
            "lobby",
            Lobby {
                message: "Waiting for the host to let you in".into(),
            },
        ),
        (
            "denied",
            Denied {
                reason: "denied".into(),
            },
        ),
        (
            "participant_joined",
            ParticipantJoined {
                participant: participant(3, "Cy", Role::Guest),
            },
        ),
        (
            "participant_left",
            ParticipantLeft {
                participant_id: 3,
                reason: "left".into(),
            },
        ),
        (
            "track_published",
            TrackPublished {
                track: TrackInfo {
                    track_id: 50,
                    participant_id: 3,
                    kind: MediaKind::Screen,
                    codec: "vp8".into(),
                    width: Some(1920),
                    height: Some(1080),
                },
            },
        ),
        ("track_unpublished", TrackUnpublished { track_id: 50 }),
        (
            "mute_state",
            MuteState {
                participant_id: 3,
                audio: true,
                video: true,
            },
        ),
        ("please_mute", PleaseMute { by: 1 }),
        ("chat", Chat(chat)),
        (
            "reaction",
            Reaction {
                participant_id: 2,
                emoji: "👍".into(),
            },
        ),
        (
            "hand",
            Hand {
                participant_id: 2,
                raised: false,
            },
        ),
        ("active_speaker", ActiveSpeaker { participant_id: 1 }),
        (
            "knock",
            Knock {
                participant_id: 4,
                name: "Dee".into(),
                email: "dee@example.org".into(),
            },
        ),
        (
            "keyframe_request",
            KeyframeRequest {
                track_id: 17,
                layer: 0,
            },
        ),
        (
            "track_demand",
            TrackDemand {
                track_id: 17,
                layer: 1,
                viewers: 3,
            },
        ),
        (
            "produce_layer",
            ProduceLayer {
                track_id: 17,
                layer: 1,
                width: 640,
                height: 360,
                bitrate: 500_000,
            },
        ),
        (
            "stop_layer",
            StopLayer {
                track_id: 17,
                layer: 1,
            },
        ),
        (
            "layer_changed",
            LayerChanged {
                track_id: 17,
                layer: 1,
                width: 640,
                height: 360,
            },
        ),
        (
            "uplink_report",
            UplinkReport {
                queue_ms: 140,
                kbps: 612,
            },
        ),
        (
            "signal",
            Signal {
                from: 1,
                data: json!({"candidate": "x"}),
            },
        ),
        ("pong", Pong { t: 12345u64.into() }),
        (
            "error",
            Error {
                code: "forbidden".into(),
                message: "Only the host can end the meeting".into(),
            },
        ),
        (
            "goodbye",
            Goodbye {
                reason: "ended".into(),
                message: "The host ended the meeting".into(),
            },
        ),
    ]
}

fn invalid_control() -> Vec<(&'static str, &'static str, Vec<u8>, &'static str)> {
    vec![
        ("not_json", "client", b"{\"v\":1,".to_vec(), "bad_json"),
        (
            "not_an_object",
            "client",
            b"[1,\"leave\"]".to_vec(),
            "bad_json",
        ),
        (
            "not_utf8",
            "client",
            b"{\"v\":1,\"type\":\"chat\",\"text\":\"\xff\"}".to_vec(),
            "bad_json",
        ),
        (
            "missing_version",
            "client",
            br#"{"type":"leave"}"#.to_vec(),
            "bad_version",
        ),
        (
            "version_2",
            "client",
            br#"{"v":2,"type":"leave"}"#.to_vec(),
            "bad_version",
        ),
        (
            "version_string",
            "client",
            br#"{"v":"1","type":"leave"}"#.to_vec(),
            "bad_version",
        ),
        (
            "missing_type",
            "client",
            br#"{"v":1}"#.to_vec(),
            "missing_type",
        ),
        (
            "type_not_string",
            "client",
            br#"{"v":1,"type":5}"#.to_vec(),
            "missing_type",
        ),
        (
            "unknown_type",
            "client",
            br#"{"v":1,"type":"teleport"}"#.to_vec(),
            "unknown_message",
        ),
        (
            "server_type_from_client",
            "client",
            br#"{"v":1,"type":"welcome"}"#.to_vec(),
            "unknown_message",
        ),
        (
            "missing_field",
            "client",
            br#"{"v":1,"type":"chat"}"#.to_vec(),
            "invalid_message",
        ),
        (
            "media_path_unknown_path",
            "client",
            br#"{"v":1,"type":"media_path","path":"carrier_pigeon"}"#.to_vec(),
            "invalid_message",
        ),
        (
            "uplink_report_missing_rate",
            "server",
            br#"{"v":1,"type":"uplink_report","queue_ms":140}"#.to_vec(),
            "invalid_message",
        ),
        (
            "hello_uplink_reports_not_a_bool",
            "client",
            br#"{"v":1,"type":"hello","token":"jt_5f2c9a","uplink_reports":"yes"}"#.to_vec(),
            "invalid_message",
        ),
        (
            "receiver_report_negative",
            "client",
            br#"{"v":1,"type":"receiver_report","queue_ms":-5}"#.to_vec(),
            "invalid_message",
        ),
        (
            "wrong_field_type",
            "client",
            br#"{"v":1,"type":"subscribe","track_id":"17"}"#.to_vec(),
            "invalid_message",
        ),
        (
            "negative_id",
            "client",
            br#"{"v":1,"type":"admit","participant_id":-1}"#.to_vec(),
            "invalid_message",
        ),
        (
            "publish_layers_capable_not_bool",
            "client",
            br#"{"v":1,"type":"publish","track_id":17,"kind":"video","codec":"vp8","layers_capable":1}"#
                .to_vec(),
            "invalid_message",
        ),
        (
            "produce_layer_from_client",
            "client",
            br#"{"v":1,"type":"produce_layer","track_id":17,"layer":1}"#.to_vec(),
            "unknown_message",
        ),
        (
            "produce_layer_missing_size",
            "server",
            br#"{"v":1,"type":"produce_layer","track_id":17,"layer":1}"#.to_vec(),
            "invalid_message",
        ),
        (
            "client_type_from_server",
            "server",
            br#"{"v":1,"type":"publish"}"#.to_vec(),
            "unknown_message",
        ),
        (
            "welcome_missing_fields",
            "server",
            br#"{"v":1,"type":"welcome","participant_id":1}"#.to_vec(),
            "invalid_message",
        ),
    ]
}

fn control_doc() -> Value {
    let enc = |name: &str, json: Vec<u8>| -> Value {
        let obj: Value = serde_json::from_slice(&json).unwrap();
        json!({"name": name, "hex": hex::encode(&json), "json": obj})
    };
    let client: Vec<Value> = client_cases()
        .into_iter()
        .map(|(n, m)| enc(n, control::encode(&m)))
        .collect();
    let server: Vec<Value> = server_cases()
        .into_iter()
        .map(|(n, m)| enc(n, control::encode(&m)))
        .collect();
    let invalid: Vec<Value> = invalid_control()
        .into_iter()
        .map(|(n, dir, b, code)| json!({"name": n, "direction": dir, "hex": hex::encode(b), "error": code}))
        .collect();
    let leave = ClientMessage::Leave {};
    let hand = ClientMessage::Hand { raised: true };
    let mut two = wt::encode_control(&leave).unwrap().to_vec();
    two.extend_from_slice(&wt::encode_control(&hand).unwrap());
    let audio = valid_frames()[0].1.encode().unwrap();
    json!({
        "description": "QuicMeet control message golden vectors (see docs/PROTOCOL.md). `client` and `server` entries: `hex` is the exact UTF-8 JSON body Rust encodes (compact, \"v\":1 then \"type\" first, optional fields left out when absent); `json` is the same object parsed. Decoders must accept `hex` and produce `json`; other encoders may order keys differently, so compare parsed objects, not bytes. `invalid` entries must fail to decode in the given direction with the error code given. `wt_control_stream`: u32 BE length-prefixed bodies back to back as on the WebTransport control stream. `ws`: complete binary WebSocket messages (type byte 0x01 control JSON, 0x02 media frame); `ws_invalid` must be refused with the code given.",
        "client": client,
        "server": server,
        "invalid": invalid,
        "wt_control_stream": [
            {"name": "leave_then_hand", "hex": hex::encode(&two), "messages": [serde_json::from_slice::<Value>(&control::encode(&leave)).unwrap(), serde_json::from_slice::<Value>(&control::encode(&hand)).unwrap()]},
        ],
        "wt_invalid": [
            {"name": "length_over_64k", "hex": hex::encode(((control::MAX_CONTROL_LEN as u32) + 1).to_be_bytes()), "error": "too_large"},
        ],
        "ws": [
            {"name": "control_leave", "hex": hex::encode(WsMessage::encode_control(&leave).unwrap()), "type": 1, "json": serde_json::from_slice::<Value>(&control::encode(&leave)).unwrap()},
            {"name": "media_audio", "hex": hex::encode(WsMessage::encode_media(&audio)), "type": 2, "frame": frame_to_json(&audio)},
        ],
        "ws_invalid": [
            {"name": "empty", "hex": "", "error": "empty"},
            {"name": "type_byte_3", "hex": "037b7d", "error": "unknown_type"},
            {"name": "text_frame_byte", "hex": "7b7d", "error": "unknown_type"},
            {"name": "media_truncated", "hex": hex::encode(&WsMessage::encode_media(&audio)[..20]), "error": "truncated"},
        ],
    })
}

// ---------- checking ----------

fn load_or_write(name: &str, doc: Value) -> Value {
    let path = dir().join(name);
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    if regen() {
        std::fs::create_dir_all(dir()).unwrap();
        std::fs::write(&path, &text).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with QM_REGEN_VECTORS=1", path.display()));
    let parsed: Value = serde_json::from_str(&on_disk).unwrap();
    assert_eq!(
        parsed, doc,
        "{name} differs from the case list; regenerate with QM_REGEN_VECTORS=1 if intended"
    );
    parsed
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn frame_vectors_both_ways() {
    let doc = load_or_write("frames.json", frames_doc());
    let valid = doc["valid"].as_array().unwrap();
    assert!(valid.len() >= 7);
    for case in valid {
        let name = case["name"].as_str().unwrap();
        let bytes = unhex(&case["hex"]);
        let decoded = EncodedFrame::decode(Bytes::from(bytes.clone())).unwrap();
        assert_eq!(frame_to_json(&decoded), case["frame"], "{name}: decode");
        let encoded = frame_from_json(&case["frame"]).encode().unwrap();
        assert_eq!(encoded.as_bytes().as_ref(), &bytes[..], "{name}: encode");
    }
    for case in doc["invalid"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let err = EncodedFrame::decode(Bytes::from(unhex(&case["hex"]))).unwrap_err();
        assert_eq!(err.code(), case["error"], "{name}");
    }
    for case in doc["streams"].as_array().unwrap() {
        let bytes = unhex(&case["hex"]);
        let mut d = StreamDecoder::new();
        d.push(&bytes);
        for want in case["frames"].as_array().unwrap() {
            let Decoded::Complete(f) = d.decode().unwrap() else {
                panic!("short stream")
            };
            let v = valid.iter().find(|c| c["name"] == *want).unwrap();
            assert_eq!(frame_to_json(&f), v["frame"]);
        }
        assert!(d.is_clean_end());
    }
}

#[test]
fn control_vectors_both_ways() {
    let doc = load_or_write("control.json", control_doc());
    let mut seen_client = std::collections::BTreeSet::new();
    let mut seen_server = std::collections::BTreeSet::new();
    for case in doc["client"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let bytes = unhex(&case["hex"]);
        let m = control::decode_client(&bytes).unwrap();
        let from_json = control::decode_client(case["json"].to_string().as_bytes()).unwrap();
        assert_eq!(m, from_json, "{name}");
        assert_eq!(control::encode(&from_json), bytes, "{name}: encode");
        seen_client.insert(m.type_name());
    }
    for case in doc["server"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let bytes = unhex(&case["hex"]);
        let m = control::decode_server(&bytes).unwrap();
        let from_json = control::decode_server(case["json"].to_string().as_bytes()).unwrap();
        assert_eq!(m, from_json, "{name}");
        assert_eq!(control::encode(&from_json), bytes, "{name}: encode");
        seen_server.insert(case["json"]["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        seen_client.len(),
        control::CLIENT_TYPES.len(),
        "every client type has a vector"
    );
    assert_eq!(
        seen_server.len(),
        control::SERVER_TYPES.len(),
        "every server type has a vector"
    );
    for case in doc["invalid"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let bytes = unhex(&case["hex"]);
        let code = match case["direction"].as_str().unwrap() {
            "client" => control::decode_client(&bytes).unwrap_err().code(),
            _ => control::decode_server(&bytes).unwrap_err().code(),
        };
        assert_eq!(code, case["error"], "{name}");
    }
    for case in doc["wt_control_stream"].as_array().unwrap() {
        let mut d = ControlStreamDecoder::new();
        d.push(&unhex(&case["hex"]));
        for want in case["messages"].as_array().unwrap() {
            let Decoded::Complete(json) = d.decode_json().unwrap() else {
                panic!()
            };
            assert_eq!(serde_json::from_slice::<Value>(&json).unwrap(), *want);
        }
        assert_eq!(d.buffered(), 0);
    }
    for case in doc["wt_invalid"].as_array().unwrap() {
        let mut d = ControlStreamDecoder::new();
        d.push(&unhex(&case["hex"]));
        assert_eq!(d.decode_json().unwrap_err().code(), case["error"]);
    }
    for case in doc["ws"].as_array().unwrap() {
        let bytes = unhex(&case["hex"]);
        match WsMessage::decode(Bytes::from(bytes.clone())).unwrap() {
            WsMessage::Control(json) => {
                assert_eq!(case["type"], 1);
                assert_eq!(
                    serde_json::from_slice::<Value>(&json).unwrap(),
                    case["json"]
                );
                assert_eq!(WsMessage::Control(json).encode(), bytes);
            }
            WsMessage::Media(f) => {
                assert_eq!(case["type"], 2);
                assert_eq!(frame_to_json(&f), case["frame"]);
                assert_eq!(WsMessage::Media(f).encode(), bytes);
            }
        }
    }
    for case in doc["ws_invalid"].as_array().unwrap() {
        let err = WsMessage::decode(Bytes::from(unhex(&case["hex"]))).unwrap_err();
        assert_eq!(err.code(), case["error"], "{}", case["name"]);
    }
}
