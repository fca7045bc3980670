//! quicmeet-transcode (skeleton)
