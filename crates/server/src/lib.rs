//! quicmeet-server (skeleton)
