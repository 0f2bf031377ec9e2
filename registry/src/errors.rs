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
    /// The registry cannot serve the request now (a garbage collection is deleting what
    /// it needs): 503 `UNAVAILABLE`, to be retried.
    #[error("{0}")]
    Unavailable(String),
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
    /// "unknown error" (see [`Self::body`]) with 500 — unless KS3 could not be reached
    /// ([`Self::is_unavailable`]): then 503 `UNAVAILABLE`, which tells a client to come
    /// back rather than that the registry is broken.
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
            Unavailable(_) => "UNAVAILABLE",
            PaginationInvalid(_) => "PAGINATION_NUMBER_INVALID",
            Unsupported(_) => "UNSUPPORTED",
            TooManyRequests(_) => "TOOMANYREQUESTS",
            Storage { .. } if self.is_unavailable() => "UNAVAILABLE",
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
            Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Storage { .. } if self.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Storage { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body. A storage error's is distribution's generic one, the same for
    /// every failure (`UNKNOWN` "unknown error", or `UNAVAILABLE` "service unavailable"
    /// when KS3 could not be reached): what went wrong inside is for the log
    /// ([`Self::log_detail`]), not for whoever sent the request.
    pub fn body(&self) -> Vec<u8> {
        let message = match self {
            RegistryError::Storage { .. } if self.is_unavailable() => {
                "service unavailable".to_string()
            }
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

    /// Whether this is a storage failure because KS3 could not be reached, after the
    /// driver's retries: a connection refused or unroutable (`IoKind::Connect`), no answer
    /// within `requesttimeout` (`Timeout`), a connection that broke mid-request
    /// (`Dropped`), or a call whose traffic stood still past the driver's whole retry
    /// budget (the sandbox's wall clock). These pass when KS3 comes back, with no restart
    /// of the registry, so the client gets 503 `UNAVAILABLE` and [`Self::retry_after`].
    /// Everything KS3 *answered* (a 500, `SlowDown` once the retries ran out, a refused
    /// signature, a missing bucket), a refused certificate or destination, and every
    /// sandbox failure but the wall clock stay distribution's 500 `UNKNOWN`: waiting does
    /// not mend them, or KS3 itself said what is wrong.
    pub fn is_unavailable(&self) -> bool {
        match self {
            RegistryError::Storage { source, .. } => unreachable(source),
            _ => false,
        }
    }

    /// The `Retry-After` of an answer to this error, in seconds: [`RETRY_AFTER_SECS`] for an
    /// unreachable KS3 ([`Self::is_unavailable`]), none for anything else.
    pub fn retry_after(&self) -> Option<u64> {
        self.is_unavailable().then_some(RETRY_AFTER_SECS)
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

/// The `Retry-After` sent with a 503 for an unreachable KS3, in seconds. The driver has
/// already spent its retries on the request (at least `maxretries` back-offs), so the
/// outage is longer than a blip; a few seconds lets a client's own retry loop find KS3
/// back without hammering the registry meanwhile.
pub const RETRY_AFTER_SECS: u64 = 5;

/// Whether a driver error says KS3 could not be reached (see
/// [`RegistryError::is_unavailable`]): the host's `IoKind`, never the message's words.
fn unreachable(e: &ks3_driver_host::Error) -> bool {
    use ks3_driver_host::{IoKind, SandboxKind};
    matches!(
        e.io_kind(),
        Some(IoKind::Connect | IoKind::Timeout | IoKind::Dropped)
    ) || e.sandbox_kind() == Some(SandboxKind::WallClock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ks3_driver_host::{BackendError, DriverError, Error, IoError, IoKind, SandboxKind};

    fn storage(e: Error) -> RegistryError {
        RegistryError::storage("reading a link", e)
    }

    #[test]
    fn unreachable_storage_is_503_unavailable() {
        for kind in [IoKind::Connect, IoKind::Timeout, IoKind::Dropped] {
            let e = storage(DriverError::Io(IoError::new(kind, "x")).into());
            assert!(e.is_unavailable(), "{kind:?}");
            assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(e.code(), "UNAVAILABLE");
            assert_eq!(e.retry_after(), Some(RETRY_AFTER_SECS));
            let body: serde_json::Value = serde_json::from_slice(&e.body()).expect("json");
            assert_eq!(
                body,
                serde_json::json!({"errors": [{"code": "UNAVAILABLE", "message": "service unavailable", "detail": null}]})
            );
            // The detail is still the log's.
            assert!(e.log_detail().expect("detail").contains("reading a link"));
        }
        let wall = storage(Error::sandbox(SandboxKind::WallClock, "stood still"));
        assert_eq!(wall.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn what_ks3_answered_stays_500_unknown() {
        let slow_down = DriverError::Backend(BackendError {
            code: "SlowDown".into(),
            status: 503,
            ..Default::default()
        });
        for e in [
            Error::from(slow_down),
            Error::from(DriverError::Io(IoError::new(IoKind::Integrity, "crc"))),
            Error::from(DriverError::Io(IoError::new(
                IoKind::TlsCertificate(None),
                "cert",
            ))),
            Error::from(DriverError::Io(IoError::new(IoKind::Denied, "denied"))),
            Error::from(DriverError::Io(IoError::new(IoKind::BadResponse, "xml"))),
            Error::sandbox(SandboxKind::Trap, "trap"),
        ] {
            let e = storage(e);
            assert!(!e.is_unavailable(), "{e:?}");
            assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(e.code(), "UNKNOWN");
            assert_eq!(e.retry_after(), None);
        }
        assert!(!RegistryError::BlobUnknown("x".into()).is_unavailable());
    }
}
