//! The store's own error: what went wrong in storage terms. Which KS3 code and status each
//! becomes is the handlers' business (`From<StoreError> for S3Error`).
use std::io;

#[derive(Debug)]
pub enum StoreError {
    InvalidBucketName(String),
    BucketAlreadyExists(String),
    NoSuchBucket(String),
    BucketNotEmpty(String),
    NoSuchKey(String),
    /// The upload does not exist (any more) for that key.
    NoSuchUpload(String),
    Io(io::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::InvalidBucketName(b) => write!(f, "invalid bucket name {b:?}"),
            StoreError::BucketAlreadyExists(b) => write!(f, "bucket {b} already exists"),
            StoreError::NoSuchBucket(b) => write!(f, "no bucket {b}"),
            StoreError::BucketNotEmpty(b) => write!(f, "bucket {b} is not empty"),
            StoreError::NoSuchKey(k) => write!(f, "no object {k:?}"),
            StoreError::NoSuchUpload(id) => write!(f, "no multipart upload {id}"),
            // Bare, as a multi-object delete quotes it in its per-key error.
            StoreError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        StoreError::Io(e)
    }
}
