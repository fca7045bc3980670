//! Opening codecs while keeping the options FFmpeg did not consume.
//!
//! `ffmpeg-next`'s `open_with` frees the leftover dictionary, so a misspelt libvpx option
//! (`cpu_used` instead of `cpu-used`) silently does nothing. This is the only module with
//! `unsafe`: it calls `avcodec_open2` itself to read the leftovers.
#![allow(unsafe_code)]

use ffmpeg_next::codec::encoder;
use ffmpeg_next::{ffi, Codec, Dictionary};

use crate::{Error, Result};

/// Open `video` with `codec` and `options`; fail if FFmpeg left any option unused.
pub(crate) fn open_video(
    mut video: encoder::video::Video,
    codec: Codec,
    options: Dictionary,
    name: &'static str,
) -> Result<encoder::video::Encoder> {
    // SAFETY: `disown` hands us the AVDictionary pointer (possibly null); avcodec_open2 takes
    // a pointer to it, may replace it with the dictionary of unused entries, and we take that
    // back into an owned `Dictionary` right after, which frees it on drop. The codec context
    // pointer is valid for the lifetime of `video`, and the codec pointer is a static AVCodec.
    let (res, leftover) = unsafe {
        let mut opts = options.disown();
        let res = ffi::avcodec_open2(video.as_mut_ptr(), codec.as_ptr(), &mut opts);
        (res, Dictionary::own(opts))
    };
    if res < 0 {
        return Err(Error::Ffmpeg(ffmpeg_next::Error::from(res)));
    }
    check_leftover(name, &leftover)?;
    Ok(encoder::video::Encoder(video))
}

/// Same as [`open_video`] for audio encoders.
pub(crate) fn open_audio(
    mut audio: encoder::audio::Audio,
    codec: Codec,
    options: Dictionary,
    name: &'static str,
) -> Result<encoder::audio::Encoder> {
    // SAFETY: as in `open_video`.
    let (res, leftover) = unsafe {
        let mut opts = options.disown();
        let res = ffi::avcodec_open2(audio.as_mut_ptr(), codec.as_ptr(), &mut opts);
        (res, Dictionary::own(opts))
    };
    if res < 0 {
        return Err(Error::Ffmpeg(ffmpeg_next::Error::from(res)));
    }
    check_leftover(name, &leftover)?;
    Ok(encoder::audio::Encoder(audio))
}

fn check_leftover(name: &'static str, leftover: &Dictionary) -> Result<()> {
    let options: Vec<String> = leftover.iter().map(|(k, _)| k.to_string()).collect();
    if options.is_empty() {
        Ok(())
    } else {
        Err(Error::UnusedOptions {
            codec: name,
            options,
        })
    }
}
