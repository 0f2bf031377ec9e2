//! The host's error type: the driver's own [`DriverError`], wrapped as the guest returned
//! it (the same type, compiled natively here; never re-shaped), plus what only the host
//! can say: the sandbox stopped the operation, or could not run it.
use std::fmt;

pub use ks3_driver_component::error::{
    BackendError, CertificateProblem, DriverError, IoError, IoKind,
};

/// Every error of the typed API. `Display` starts with the driver name (`ks3: …`), with
/// the driver's own wording; no variant ever carries a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The driver's error: not found, an invalid path or offset, KS3's answer, a bad
    /// configuration value, a request that did not complete (its [`IoKind`] says why), a
    /// misused reader or writer. Displayed as the driver words it; its own `source`.
    Driver(DriverError),
    /// The sandbox stopped the operation or could not run it; `kind` says how.
    Sandbox(SandboxError),
}

/// How the sandbox failed an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxKind {
    /// The guest trapped.
    Trap,
    /// The guest asked for more memory than its limit.
    Memory,
    /// The wall-clock limit: the call's traffic with KS3 stood still for longer than the
    /// driver's retries could take, or the hard `op_timeout` passed.
    WallClock,
    /// The guest tried to reach a destination other than the configured endpoint.
    Denied,
    /// The component could not be loaded, or an instance or an executor thread could not
    /// be started.
    Start,
    /// The host's own setup of this driver failed (its TLS client, an egress override).
    Setup,
    /// The instance cannot be used any more: an earlier call on it was cancelled mid-way,
    /// or the stream it handed over broke at the host's side.
    Broken,
}

/// A failure of the sandbox: its kind and, in words, what was stopped and why (the
/// operation and its path, the limit, the guest's last stderr line with credentials
/// masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxError {
    pub kind: SandboxKind,
    pub message: String,
}

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: sandbox: {}",
            ks3_driver_component::DRIVER_NAME,
            self.message
        )
    }
}

// No `source`: the message already carries the words of the wasmtime error it came from,
// and its kind is what callers match on.
impl std::error::Error for SandboxError {}

impl Error {
    /// A sandbox failure of `kind`.
    pub fn sandbox(kind: SandboxKind, message: impl Into<String>) -> Error {
        Error::Sandbox(SandboxError {
            kind,
            message: message.into(),
        })
    }

    /// A short, stable name of the error (`path-not-found`, `backend`, …, `sandbox`), as
    /// the CLI prints it.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Driver(e) => e.name(),
            Error::Sandbox(_) => "sandbox",
        }
    }

    /// The driver's error, unless the sandbox failed.
    pub fn driver_error(&self) -> Option<&DriverError> {
        match self {
            Error::Driver(e) => Some(e),
            Error::Sandbox(_) => None,
        }
    }

    /// How the sandbox failed, if it did.
    pub fn sandbox_kind(&self) -> Option<SandboxKind> {
        match self {
            Error::Sandbox(e) => Some(e.kind),
            Error::Driver(_) => None,
        }
    }

    /// The kind of an `Io` error (for a refused certificate, with what was wrong with it
    /// when the host could tell).
    pub fn io_kind(&self) -> Option<IoKind> {
        self.driver_error().and_then(DriverError::io_kind_of)
    }

    /// KS3's error code, for a backend error.
    pub fn code(&self) -> Option<&str> {
        self.driver_error().and_then(DriverError::code)
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Driver(DriverError::PathNotFound(_)))
    }
}

impl From<DriverError> for Error {
    fn from(e: DriverError) -> Self {
        Error::Driver(e)
    }
}

impl From<SandboxError> for Error {
    fn from(e: SandboxError) -> Self {
        Error::Sandbox(e)
    }
}

impl From<ks3_driver_component::config::ConfigError> for Error {
    fn from(e: ks3_driver_component::config::ConfigError) -> Self {
        Error::Driver(e.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Driver(e) => e.fmt(f),
            Error::Sandbox(e) => e.fmt(f),
        }
    }
}

/// Transparent: an error's `Display` is its inner error's (both start with `ks3: `), so
/// the chain goes on with the inner error's own `source` rather than repeating it.
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Driver(e) => e.source(),
            Error::Sandbox(e) => e.source(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_the_driver_wording() {
        let e = Error::from(DriverError::PathNotFound("/x".into()));
        assert_eq!(e.to_string(), "ks3: Path not found: /x");
        let e = Error::from(DriverError::InvalidOffset {
            path: "/x".into(),
            offset: -1,
        });
        assert_eq!(e.to_string(), "ks3: invalid offset: -1 for path: /x");
        assert_eq!(
            Error::from(DriverError::UnsupportedMethod(String::new())).to_string(),
            "ks3: unsupported method"
        );
        // The driver's words are kept (the host's own copy of the error used to drop them).
        assert_eq!(
            Error::from(DriverError::UnsupportedMethod("PUT".into())).to_string(),
            "ks3: unsupported method: PUT"
        );
        assert_eq!(
            Error::sandbox(SandboxKind::Trap, "boom").to_string(),
            "ks3: sandbox: boom"
        );
        let e = Error::from(DriverError::Backend(BackendError {
            code: "NoSuchBucket".into(),
            status: 404,
            message: "m".into(),
            request_id: "r".into(),
            path: "/p".into(),
        }));
        assert!(e
            .to_string()
            .starts_with("ks3: KS3 error NoSuchBucket (HTTP 404) on /p"));
        assert_eq!(e.code(), Some("NoSuchBucket"));
    }

    #[test]
    fn every_variant_starts_with_the_driver_name() {
        for e in [
            Error::from(DriverError::PathNotFound("/a".into())),
            Error::from(DriverError::InvalidPath("a".into())),
            Error::from(DriverError::InvalidOffset {
                path: "/a".into(),
                offset: -5,
            }),
            Error::from(DriverError::UnsupportedMethod(String::new())),
            Error::from(DriverError::Backend(BackendError::default())),
            Error::from(DriverError::Config {
                parameter: "bucket".into(),
                message: "required".into(),
            }),
            Error::from(DriverError::Io(IoError::new(IoKind::Timeout, "x"))),
            Error::from(DriverError::InvalidState("y".into())),
            Error::sandbox(SandboxKind::Start, "z"),
        ] {
            assert!(e.to_string().starts_with("ks3: "), "{e}");
            // The driver's error is wrapped, not copied: it comes back as it went in.
            if let Some(d) = e.driver_error() {
                assert_eq!(Error::from(d.clone()), e);
                assert_eq!(e.kind(), d.name());
            } else {
                assert_eq!(e.kind(), "sandbox");
            }
        }
    }
}
