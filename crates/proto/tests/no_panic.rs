//! Every decoder survives ~100k random and mutated inputs without panicking.
//!
//! This is the always-on companion of the cargo-fuzz targets in `fuzz/` (which need nightly):
//! a fixed-seed PRNG makes it deterministic, so it runs in CI on stable.

use bytes::Bytes;
use quicmeet_proto::control::{self, ClientMessage, ServerMessage};
use quicmeet_proto::frame::{EncodedFrame, Frame, FrameHeader, MediaKind, StreamDecoder};
use quicmeet_proto::ws::WsMessage;
use quicmeet_proto::wt::{self, ControlStreamDecoder};
use quicmeet_proto::Decoded;

/// xorshift64*: tiny, deterministic, good enough to shake decoders.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let h = FrameHeader {
        kind: MediaKind::Video,
        layer: 0,
        keyframe: true,
        track_id: 17,
        seq: 3,
        capture_ts_us: 1000,
        audio_level: None,
        payload_len: 0,
    };
    let mut a = h;
    a.kind = MediaKind::Audio;
    a.audio_level = Some(20);
    let f1 = Frame::new(h, Bytes::from_static(b"vp8 payload"))
        .encode()
        .unwrap();
    let f2 = Frame::new(a, Bytes::from_static(b"op")).encode().unwrap();
    let mut stream = f1.as_bytes().to_vec();
    stream.extend_from_slice(f2.as_bytes());
    let msgs: Vec<Vec<u8>> = vec![
        control::encode(&ClientMessage::Subscribe {
            track_id: 17,
            max_width: Some(640),
            max_height: None,
            layer: Some(1),
        }),
        control::encode(&ClientMessage::Chat {
            text: "hello".into(),
        }),
        control::encode(&ClientMessage::Signal {
            to: 2,
            data: serde_json::json!({"a":[1,{"b":null}]}),
        }),
        control::encode(&ServerMessage::LayerChanged {
            track_id: 1,
            layer: 2,
            width: 3,
            height: 4,
        }),
        control::encode(&ClientMessage::EndMeeting {}),
    ];
    let mut out = vec![f1.as_bytes().to_vec(), f2.as_bytes().to_vec(), stream];
    for m in msgs {
        out.push(wt::frame_control_json(&m).unwrap().to_vec());
        out.push(WsMessage::Control(Bytes::from(m.clone())).encode());
        out.push(m);
    }
    out.push(WsMessage::encode_media(&f1));
    out
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    match rng.below(4) {
        0 => {
            // pure random bytes
            let n = rng.below(80);
            b = (0..n).map(|_| rng.next() as u8).collect();
        }
        _ => {
            for _ in 0..=rng.below(4) {
                match rng.below(5) {
                    0 if !b.is_empty() => {
                        let i = rng.below(b.len());
                        b[i] = rng.next() as u8;
                    }
                    1 if !b.is_empty() => {
                        let i = rng.below(b.len());
                        b[i] ^= 1 << rng.below(8);
                    }
                    2 => b.truncate(rng.below(b.len() + 1)),
                    3 => {
                        let i = rng.below(b.len() + 1);
                        b.insert(i, rng.next() as u8);
                    }
                    _ if b.len() >= 4 => {
                        // plausible small lengths where length fields live
                        let i = rng.below(b.len() - 3);
                        b[i..i + 4].copy_from_slice(&(rng.below(64) as u32).to_be_bytes());
                    }
                    _ => {}
                }
            }
        }
    }
    b
}

fn exercise(rng: &mut Rng, input: &[u8]) {
    let bytes = Bytes::copy_from_slice(input);
    let _ = FrameHeader::parse(input);
    let _ = EncodedFrame::decode(bytes.clone());
    let _ = control::decode_client(input);
    let _ = control::decode_server(input);
    if let Ok(WsMessage::Control(json)) = WsMessage::decode(bytes) {
        let _ = control::decode_client(&json);
    }
    let cut = rng.below(input.len() + 1);
    let mut sd = StreamDecoder::new();
    let mut cd = ControlStreamDecoder::new();
    for part in [&input[..cut], &input[cut..]] {
        sd.push(part);
        cd.push(part);
        while let Ok(Decoded::Complete(f)) = sd.decode() {
            assert!(f.len() >= quicmeet_proto::frame::HEADER_LEN);
        }
        while let Ok(Decoded::Complete(json)) = cd.decode_json() {
            let _ = control::decode_client(&json);
        }
    }
}

#[test]
fn decoders_never_panic_on_100k_inputs() {
    let seeds = seeds();
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    for _ in 0..100_000 {
        let seed = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed);
        exercise(&mut rng, &input);
    }
}
