//! Bytes of a WebTransport uni stream, fed in pieces whose sizes come from the input itself:
//! never panics, and the frames decoded do not depend on how the stream was split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quicmeet_proto::frame::StreamDecoder;
use quicmeet_proto::Decoded;

fn run(data: &[u8], chunk: usize) -> (Vec<Vec<u8>>, bool) {
    let mut d = StreamDecoder::new();
    let mut out = vec![];
    let mut failed = false;
    for part in data.chunks(chunk.max(1)) {
        d.push(part);
        loop {
            match d.decode() {
                Ok(Decoded::Complete(f)) => out.push(f.as_bytes().to_vec()),
                Ok(Decoded::NeedMore(n)) => {
                    assert!(n > 0);
                    break;
                }
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            break;
        }
    }
    (out, failed)
}

fuzz_target!(|data: &[u8]| {
    let Some((&c, rest)) = data.split_first() else { return };
    let whole = run(rest, rest.len());
    let split = run(rest, c as usize);
    assert_eq!(whole, split);
});
