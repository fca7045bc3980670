//! quicmeet-proto (skeleton)
