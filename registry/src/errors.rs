//! The spec's error codes and their JSON form, `{"errors":[{"code","message","detail"}]}`.
use http::StatusCode;

#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    BlobUnknown(String),
    #[error("{0}")]
    BlobUploadInvalid(String),
    #[error("{0}")]
    BlobUploadUnknown(String),
    /// A chunk that does not start where the upload ends: 416, as the spec requires.
    #[error("{0}")]
    RangeInvalid(String),
    #[error("{0}")]
    DigestInvalid(String),
    #[error("{0}")]
    ManifestBlobUnknown(String),
    #[error("{0}")]
    ManifestInvalid(String),
    #[error("{0}")]
    ManifestUnknown(String),
    #[error("{0}")]
    NameInvalid(String),
    #[error("{0}")]
    NameUnknown(String),
    #[error("{0}")]
    SizeInvalid(String),
    /// A body over the configured limit: 413, code `SIZE_INVALID`.
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    TagInvalid(String),
    #[error("{0}")]
    PaginationInvalid(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// The client stopped sending (idle past the body timeout).
    #[error("{0}")]
    Timeout(String),
    /// Storage failed during `what` (e.g. "committing an upload"). The driver's error is
    /// kept whole as the `source`, with its kind (not found, an [`IoKind`], KS3's code, a
    /// sandbox failure) for whoever maps it; its words (KS3 key paths, request ids, retry
    /// counts, the sandbox's limits; never credentials, which the host redacts) are for
    /// the log only ([`Self::log_detail`]). Clients get distribution's generic `UNKNOWN`
    /// "unknown error" (see [`Self::body`]).
    ///
    /// [`IoKind`]: ks3_driver_host::IoKind
    #[error("storage: {what}")]
    Storage {
        what: String,
        // Boxed: the driver's error is large, and every `Result` of the registry carries
        // this enum.
        #[source]
        source: Box<ks3_driver_host::Error>,
    },
}

impl RegistryError {
    pub fn code(&self) -> &'static str {
        use RegistryError::*;
        match self {
            BlobUnknown(_) => "BLOB_UNKNOWN",
            BlobUploadInvalid(_) | RangeInvalid(_) | Timeout(_) => "BLOB_UPLOAD_INVALID",
            BlobUploadUnknown(_) => "BLOB_UPLOAD_UNKNOWN",
            DigestInvalid(_) => "DIGEST_INVALID",
            ManifestBlobUnknown(_) => "MANIFEST_BLOB_UNKNOWN",
            ManifestInvalid(_) => "MANIFEST_INVALID",
            ManifestUnknown(_) => "MANIFEST_UNKNOWN",
            NameInvalid(_) => "NAME_INVALID",
            NameUnknown(_) => "NAME_UNKNOWN",
            SizeInvalid(_) | TooLarge(_) => "SIZE_INVALID",
            TagInvalid(_) => "TAG_INVALID",
            PaginationInvalid(_) => "PAGINATION_NUMBER_INVALID",
            Unsupported(_) => "UNSUPPORTED",
            TooManyRequests(_) => "TOOMANYREQUESTS",
            Storage { .. } => "UNKNOWN",
        }
    }

    pub fn status(&self) -> StatusCode {
        use RegistryError::*;
        match self {
            BlobUnknown(_) | BlobUploadUnknown(_) | ManifestUnknown(_) | NameUnknown(_) => {
                StatusCode::NOT_FOUND
            }
            BlobUploadInvalid(_)
            | DigestInvalid(_)
            | ManifestBlobUnknown(_)
            | ManifestInvalid(_)
            | NameInvalid(_)
            | SizeInvalid(_)
            | TagInvalid(_)
            | PaginationInvalid(_) => StatusCode::BAD_REQUEST,
            RangeInvalid(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Unsupported(_) => StatusCode::METHOD_NOT_ALLOWED,
            TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Storage { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body. A storage error's is distribution's generic one, the same for
    /// every failure: what went wrong inside is for the log ([`Self::log_detail`]), not
    /// for whoever sent the request.
    pub fn body(&self) -> Vec<u8> {
        let message = match self {
            RegistryError::Storage { .. } => "unknown error".to_string(),
            other => other.to_string(),
        };
        let v = serde_json::json!({
            "errors": [{"code": self.code(), "message": message, "detail": null}]
        });
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// What the log should say about an error that the client is not told: a storage
    /// error, with the driver's.
    pub fn log_detail(&self) -> Option<String> {
        match self {
            RegistryError::Storage { source, .. } => Some(format!("{self}: {source}")),
            _ => None,
        }
    }

    /// A storage failure during `what`.
    pub fn storage(what: &str, source: ks3_driver_host::Error) -> RegistryError {
        RegistryError::Storage {
            what: what.to_string(),
            source: Box::new(source),
        }
    }
}

pub type Result<T> = std::result::Result<T, RegistryError>;
