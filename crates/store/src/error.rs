/// Errors of the store. Callers map them to API answers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sled::Error),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("the database was written by a newer QuicMeet (schema {found}, this build reads up to {supported})")]
    SchemaTooNew { found: u32, supported: u32 },
    #[error("an account with this e-mail address already exists")]
    EmailTaken,
    #[error("meeting code already in use")]
    CodeTaken,
    #[error("the link or token is not valid (it may have been used already)")]
    TokenInvalid,
    #[error("the link or token has expired")]
    TokenExpired,
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The shared state of the cluster cannot be reached (NATS down or JetStream not
    /// answering). The request may succeed later; nothing was half-written that matters.
    #[error("the cluster state is unavailable: {0}")]
    Unavailable(String),
    /// A compare-and-set kept losing to other writers; the caller may retry.
    #[error("too many concurrent updates of {0}")]
    Contended(String),
}

pub type StoreResult<T> = Result<T, StoreError>;
