//! quicmeet-sfu (skeleton)
