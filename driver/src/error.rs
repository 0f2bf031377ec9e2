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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverError {
    PathNotFound(String),
    InvalidPath(String),
    InvalidOffset { path: String, offset: i64 },
    UnsupportedMethod(String),
    Backend(BackendError),
    Config { parameter: String, message: String },
    Io(String),
    InvalidState(String),
}

impl DriverError {
    pub fn io(path: &str, what: impl fmt::Display) -> Self {
        DriverError::Io(format!("{what} (path {path})"))
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
            DriverError::Io(m) => write!(f, "{n}: {m}"),
            DriverError::InvalidState(m) => write!(f, "{n}: {m}"),
        }
    }
}

impl std::error::Error for DriverError {}
