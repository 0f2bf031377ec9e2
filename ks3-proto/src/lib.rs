//! KS3 protocol primitives, shared by the driver component and the local KS3 server.
//!
//! Everything here is a pure function over strings and bytes so it can be checked against
//! fixed vectors computed with the official KS3 SDK (see `tests/vectors.rs`).

pub mod crc64;
pub mod date;
pub mod digest;
pub mod encode;
pub mod limits;
pub mod names;
pub mod retry;
pub mod secret;
pub mod sign;
pub mod sign_v4;
pub mod xml;

pub use crc64::{Crc64, Crc64Pieces};
pub use retry::RetryPolicy;
pub use secret::Secret;
pub use sign::{SignedRequest, StringToSign};
pub use sign_v4::{SigningScheme, V4Namespace, V4Request, V4Signer};
