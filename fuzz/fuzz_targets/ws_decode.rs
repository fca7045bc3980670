//! One binary WebSocket message: never panics; what decodes re-encodes to the same bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use quicmeet_proto::control;
use quicmeet_proto::ws::WsMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = WsMessage::decode(Bytes::copy_from_slice(data)) {
        assert_eq!(m.encode(), data);
        if let WsMessage::Control(json) = m {
            let _ = control::decode_client(&json);
        }
    }
});
