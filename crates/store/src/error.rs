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
}

pub type StoreResult<T> = Result<T, StoreError>;
