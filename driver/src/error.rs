//! The driver's errors: distribution's typed errors plus what KS3 and the network can say.
use std::fmt;

/// Name every rendered error starts with, as distribution's base wrapper does.
pub const DRIVER_NAME: &str = "ks3";

/// An error KS3 returned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BackendError {
    pub code: String,
    pub status: u16,
    pub message: String,
    pub request_id: String,
    pub path: String,
}

/// What kind of failure an `Io` error is. Hosts, the CLI's hints and retry decisions match
/// on this, never on the message, which is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoKind {
    /// Could not connect: refused, DNS, unreachable, a TLS handshake that failed for a
    /// reason other than the server's certificate.
    Connect,
    /// No response, or no body bytes, within `requesttimeout`.
    Timeout,
    /// The connection broke mid-request or mid-response.
    Dropped,
    /// The server's TLS certificate was refused; retrying cannot help. The guest cannot see
    /// why (wasi:http says only "certificate error"); a host that can, says so here.
    TlsCertificate(Option<CertificateProblem>),
    /// The sandbox refused the destination.
    Denied,
    /// A response KS3 would never send: malformed XML, a missing or unreadable header or
    /// field, a listing whose marker does not advance.
    BadResponse,
    /// Data failed its integrity check: a CRC-64, an ETag that is not the MD5 of what was
    /// sent, a body shorter than its length.
    Integrity,
    /// Anything else: a request that cannot be signed or split, a host-side callback.
    Other,
}

/// Why a server certificate was refused, when the host could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateProblem {
    /// Not signed by a trusted CA (a private CA needs the `cafile` parameter).
    UnknownIssuer,
    Expired,
    NotValidYet,
    /// Issued for another host name.
    HostnameMismatch,
    Revoked,
    Other,
}

/// A request that did not complete, or a response that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoError {
    pub kind: IoKind,
    /// What failed, in words, naming the path.
    pub message: String,
}

impl From<crate::http::TransportErrorKind> for IoKind {
    fn from(k: crate::http::TransportErrorKind) -> Self {
        use crate::http::TransportErrorKind as T;
        match k {
            T::Connect => IoKind::Connect,
            T::Timeout => IoKind::Timeout,
            T::Dropped => IoKind::Dropped,
            T::Denied => IoKind::Denied,
            T::TlsCertificate => IoKind::TlsCertificate(None),
            T::Protocol => IoKind::BadResponse,
        }
    }
}

impl IoError {
    pub fn new(kind: IoKind, message: impl Into<String>) -> Self {
        IoError {
            kind,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverError {
    PathNotFound(String),
    InvalidPath(String),
    InvalidOffset { path: String, offset: i64 },
    UnsupportedMethod(String),
    Backend(BackendError),
    Config { parameter: String, message: String },
    Io(IoError),
    InvalidState(String),
}

impl DriverError {
    fn io_kind(kind: IoKind, path: &str, what: impl fmt::Display) -> Self {
        DriverError::Io(IoError::new(kind, format!("{what} (path {path})")))
    }

    /// A response KS3 would never send.
    pub fn io(path: &str, what: impl fmt::Display) -> Self {
        Self::io_kind(IoKind::BadResponse, path, what)
    }

    /// Data that failed its integrity check.
    pub fn integrity(path: &str, what: impl fmt::Display) -> Self {
        Self::io_kind(IoKind::Integrity, path, what)
    }

    /// A failure that is neither the network's nor KS3's.
    pub fn other(path: &str, what: impl fmt::Display) -> Self {
        Self::io_kind(IoKind::Other, path, what)
    }

    /// A transport failure while `what`, keeping its kind.
    pub fn transport(path: &str, what: impl fmt::Display, e: &crate::http::TransportError) -> Self {
        Self::io_kind(e.kind.into(), path, format!("{what}: {e}"))
    }

    /// A short, stable name of the variant (`path-not-found`, `backend`, …), as the CLI
    /// prints it.
    pub fn name(&self) -> &'static str {
        match self {
            DriverError::PathNotFound(_) => "path-not-found",
            DriverError::InvalidPath(_) => "invalid-path",
            DriverError::InvalidOffset { .. } => "invalid-offset",
            DriverError::UnsupportedMethod(_) => "unsupported-method",
            DriverError::Backend(_) => "backend",
            DriverError::Config { .. } => "config",
            DriverError::Io(_) => "io",
            DriverError::InvalidState(_) => "invalid-state",
        }
    }

    /// The kind of an `Io` error.
    pub fn io_kind_of(&self) -> Option<IoKind> {
        match self {
            DriverError::Io(e) => Some(e.kind),
            _ => None,
        }
    }

    /// KS3's error code, if this is a backend error.
    pub fn code(&self) -> Option<&str> {
        match self {
            DriverError::Backend(b) => Some(&b.code),
            _ => None,
        }
    }
}

impl From<crate::config::ConfigError> for DriverError {
    fn from(e: crate::config::ConfigError) -> Self {
        DriverError::Config {
            parameter: e.parameter,
            message: e.message,
        }
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = DRIVER_NAME;
        match self {
            DriverError::PathNotFound(p) => write!(f, "{n}: Path not found: {p}"),
            DriverError::InvalidPath(p) => write!(f, "{n}: invalid path: {p}"),
            DriverError::InvalidOffset { path, offset } => {
                write!(f, "{n}: invalid offset: {offset} for path: {path}")
            }
            DriverError::UnsupportedMethod(m) if m.is_empty() => {
                write!(f, "{n}: unsupported method")
            }
            DriverError::UnsupportedMethod(m) => write!(f, "{n}: unsupported method: {m}"),
            DriverError::Backend(b) => {
                write!(
                    f,
                    "{n}: KS3 error {} (HTTP {})",
                    if b.code.is_empty() {
                        "<no code>"
                    } else {
                        &b.code
                    },
                    b.status
                )?;
                if !b.path.is_empty() {
                    write!(f, " on {}", b.path)?;
                }
                if !b.message.is_empty() {
                    write!(f, ": {}", b.message)?;
                }
                if !b.request_id.is_empty() {
                    write!(f, " (request id {})", b.request_id)?;
                }
                Ok(())
            }
            DriverError::Config { parameter, message } => write!(
                f,
                "{n}: invalid configuration: parameter `{parameter}`: {message}"
            ),
            DriverError::Io(e) => write!(f, "{n}: {}", e.message),
            DriverError::InvalidState(m) => write!(f, "{n}: {m}"),
        }
    }
}

impl std::error::Error for DriverError {}
