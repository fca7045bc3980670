//! Control JSON and the WebTransport control stream framing: never panics; a message that
//! decodes re-encodes to something that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quicmeet_proto::control;
use quicmeet_proto::wt::ControlStreamDecoder;
use quicmeet_proto::Decoded;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = control::decode_client(data) {
        assert_eq!(control::decode_client(&control::encode(&m)).unwrap(), m);
    }
    if let Ok(m) = control::decode_server(data) {
        assert_eq!(control::decode_server(&control::encode(&m)).unwrap(), m);
    }
    let mut d = ControlStreamDecoder::new();
    d.push(data);
    while let Ok(Decoded::Complete(json)) = d.decode_json() {
        let _ = control::decode_client(&json);
    }
});
