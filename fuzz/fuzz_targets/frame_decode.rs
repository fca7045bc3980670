//! One whole message (datagram) decoded as a frame: never panics; a frame that decodes
//! re-encodes to the same bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use quicmeet_proto::frame::{EncodedFrame, FrameHeader};

fuzz_target!(|data: &[u8]| {
    let _ = FrameHeader::parse(data);
    if let Ok(f) = EncodedFrame::decode(Bytes::copy_from_slice(data)) {
        let again = f.to_frame().encode().expect("decoded frames re-encode");
        assert_eq!(again.as_bytes().as_ref(), data);
    }
});
