//! quicmeet-store (skeleton)
