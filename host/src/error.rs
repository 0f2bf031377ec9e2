//! The host's error type: the driver's typed errors (1:1 with the WIT `driver-error`), plus
//! what only the host can say (the sandbox stopped the guest).
use std::fmt;

use ks3_driver_component::error::{BackendError, DriverError};
pub use ks3_driver_component::error::{CertificateProblem, IoError, IoKind};

/// Every error of the typed API. `Display` starts with the driver name (`ks3: …`), with
/// the driver's own wording; no variant ever carries a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No object and no directory at `path` (distribution's `PathNotFoundError`).
    PathNotFound { path: String },
    /// `path` does not match the path rule (`InvalidPathError`).
    InvalidPath { path: String },
    /// A negative read offset (`InvalidOffsetError`).
    InvalidOffset { path: String, offset: i64 },
    /// `ErrUnsupportedMethod`.
    UnsupportedMethod,
    /// KS3 answered with an error: its code, HTTP status, message and request id.
    Backend(BackendError),
    /// A bad configuration value; nothing was sent.
    Config { parameter: String, message: String },
    /// The request did not complete (connection, timeout, refused certificate, checksum,
    /// malformed response): the driver's own error, whose `kind` says which.
    Io(IoError),
    /// A writer or reader used after it was finished, or a similar misuse.
    InvalidState(String),
    /// The sandbox stopped the operation: a trap (e.g. the memory limit), the wall-clock
    /// limit, a refused egress destination, or a component that could not be loaded.
    Runtime(String),
}

impl Error {
    /// A short, stable name of the variant (`path-not-found`, `backend`, …), as the CLI
    /// prints it.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::PathNotFound { .. } => "path-not-found",
            Error::InvalidPath { .. } => "invalid-path",
            Error::InvalidOffset { .. } => "invalid-offset",
            Error::UnsupportedMethod => "unsupported-method",
            Error::Backend(_) => "backend",
            Error::Config { .. } => "config",
            Error::Io(_) => "io",
            Error::InvalidState(_) => "invalid-state",
            Error::Runtime(_) => "sandbox",
        }
    }

    /// The kind of an `Io` error (for a refused certificate, with what was wrong with it
    /// when the host could tell).
    pub fn io_kind(&self) -> Option<IoKind> {
        match self {
            Error::Io(e) => Some(e.kind),
            _ => None,
        }
    }

    /// KS3's error code, for a backend error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Backend(b) => Some(&b.code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::PathNotFound { .. })
    }

    /// The same error in the driver's own type (the sandbox variant has no counterpart
    /// there and becomes `None`).
    pub fn to_driver_error(&self) -> Option<DriverError> {
        Some(match self.clone() {
            Error::PathNotFound { path } => DriverError::PathNotFound(path),
            Error::InvalidPath { path } => DriverError::InvalidPath(path),
            Error::InvalidOffset { path, offset } => DriverError::InvalidOffset { path, offset },
            Error::UnsupportedMethod => DriverError::UnsupportedMethod(String::new()),
            Error::Backend(b) => DriverError::Backend(b),
            Error::Config { parameter, message } => DriverError::Config { parameter, message },
            Error::Io(e) => DriverError::Io(e),
            Error::InvalidState(m) => DriverError::InvalidState(m),
            Error::Runtime(_) => return None,
        })
    }
}

impl From<DriverError> for Error {
    fn from(e: DriverError) -> Self {
        match e {
            DriverError::PathNotFound(path) => Error::PathNotFound { path },
            DriverError::InvalidPath(path) => Error::InvalidPath { path },
            DriverError::InvalidOffset { path, offset } => Error::InvalidOffset { path, offset },
            DriverError::UnsupportedMethod(_) => Error::UnsupportedMethod,
            DriverError::Backend(b) => Error::Backend(b),
            DriverError::Config { parameter, message } => Error::Config { parameter, message },
            DriverError::Io(e) => Error::Io(e),
            DriverError::InvalidState(m) => Error::InvalidState(m),
        }
    }
}

impl From<ks3_driver_component::config::ConfigError> for Error {
    fn from(e: ks3_driver_component::config::ConfigError) -> Self {
        Error::Config {
            parameter: e.parameter,
            message: e.message,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnsupportedMethod => {
                write!(
                    f,
                    "{}: unsupported method",
                    ks3_driver_component::DRIVER_NAME
                )
            }
            Error::Runtime(m) => write!(f, "{}: sandbox: {m}", ks3_driver_component::DRIVER_NAME),
            other => match other.to_driver_error() {
                Some(d) => d.fmt(f),
                None => Ok(()),
            },
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_the_driver_wording() {
        let e = Error::PathNotFound { path: "/x".into() };
        assert_eq!(e.to_string(), "ks3: Path not found: /x");
        let e = Error::InvalidOffset {
            path: "/x".into(),
            offset: -1,
        };
        assert_eq!(e.to_string(), "ks3: invalid offset: -1 for path: /x");
        assert_eq!(
            Error::UnsupportedMethod.to_string(),
            "ks3: unsupported method"
        );
        assert_eq!(
            Error::Runtime("boom".into()).to_string(),
            "ks3: sandbox: boom"
        );
        let e = Error::Backend(BackendError {
            code: "NoSuchBucket".into(),
            status: 404,
            message: "m".into(),
            request_id: "r".into(),
            path: "/p".into(),
        });
        assert!(e
            .to_string()
            .starts_with("ks3: KS3 error NoSuchBucket (HTTP 404) on /p"));
        assert_eq!(e.code(), Some("NoSuchBucket"));
    }

    #[test]
    fn every_variant_starts_with_the_driver_name() {
        for e in [
            Error::PathNotFound { path: "/a".into() },
            Error::InvalidPath { path: "a".into() },
            Error::InvalidOffset {
                path: "/a".into(),
                offset: -5,
            },
            Error::UnsupportedMethod,
            Error::Backend(BackendError::default()),
            Error::Config {
                parameter: "bucket".into(),
                message: "required".into(),
            },
            Error::Io(IoError::new(IoKind::Timeout, "x")),
            Error::InvalidState("y".into()),
            Error::Runtime("z".into()),
        ] {
            assert!(e.to_string().starts_with("ks3: "), "{e}");
            let back = e.to_driver_error().map(Error::from);
            if !matches!(e, Error::Runtime(_)) {
                assert_eq!(back, Some(e));
            }
        }
    }
}
