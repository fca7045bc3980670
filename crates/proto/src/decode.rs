//! The result type shared by the incremental decoders.

/// Outcome of an incremental decode step.
///
/// Decoders for byte streams never fail just because the input stopped in the middle of a
/// message: they answer [`Decoded::NeedMore`] with the number of bytes that are missing at
/// least, and the caller reads more and tries again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<T> {
    /// One complete item was decoded and removed from the buffer.
    Complete(T),
    /// The buffer holds a prefix of an item; at least this many more bytes are needed.
    NeedMore(usize),
}

impl<T> Decoded<T> {
    /// The decoded item, if complete.
    pub fn complete(self) -> Option<T> {
        match self {
            Decoded::Complete(t) => Some(t),
            Decoded::NeedMore(_) => None,
        }
    }

    /// Map the complete item.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Decoded<U> {
        match self {
            Decoded::Complete(t) => Decoded::Complete(f(t)),
            Decoded::NeedMore(n) => Decoded::NeedMore(n),
        }
    }
}
