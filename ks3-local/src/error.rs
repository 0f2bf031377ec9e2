//! KS3 error responses: `<Error><Code/><Message/><Resource/><RequestId/></Error>`.
use http::StatusCode;

use ks3_proto::xml::{to_xml, ErrorResponse};

/// A KS3 error: a code, its HTTP status and a message, plus optional extra elements
/// (`StringToSign`, `SignatureProvided`, `ServerTime`, …).
#[derive(Debug, Clone)]
pub struct S3Error {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub extra: Vec<(&'static str, String)>,
    /// Extra response headers (e.g. `Content-Range` of a 416).
    pub headers: Vec<(&'static str, String)>,
    /// The peer must not reuse the connection (the request body was not consumed).
    pub close: bool,
}

impl S3Error {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        S3Error {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: code.to_string(),
            message: message.into(),
            extra: Vec::new(),
            headers: Vec::new(),
            close: false,
        }
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((name, value.into()));
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The XML body.
    pub fn body(&self, resource: &str, request_id: &str) -> String {
        let doc = ErrorResponse {
            code: self.code.clone(),
            message: Some(self.message.clone()),
            resource: Some(resource.to_string()),
            request_id: Some(request_id.to_string()),
            details: self.extra.clone(),
        };
        // Writing plain strings cannot fail; if it ever did, the code alone still tells
        // the client what happened.
        to_xml(&doc).unwrap_or_else(|_| {
            format!(
                "{}<Error><Code>{}</Code></Error>",
                ks3_proto::xml::DECLARATION,
                self.code
            )
        })
    }

    // The catalogue, with KS3's codes and statuses.

    pub fn access_denied(msg: impl Into<String>) -> Self {
        Self::new(403, "AccessDenied", msg)
    }
    pub fn invalid_argument(msg: impl Into<String>) -> Self {
        Self::new(400, "InvalidArgument", msg)
    }
    pub fn invalid_request(msg: impl Into<String>) -> Self {
        Self::new(400, "InvalidRequest", msg)
    }
    pub fn malformed_xml() -> Self {
        Self::new(
            400,
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema.",
        )
    }
    pub fn no_such_bucket(bucket: &str) -> Self {
        Self::new(404, "NoSuchBucket", "The specified bucket does not exist.")
            .with("BucketName", bucket)
    }
    pub fn no_such_key(key: &str) -> Self {
        Self::new(404, "NoSuchKey", "The specified key does not exist.").with("Key", key)
    }
    pub fn no_such_upload(id: &str) -> Self {
        Self::new(
            404,
            "NoSuchUpload",
            "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed.",
        )
        .with("UploadId", id)
    }
    pub fn not_implemented(what: &str) -> Self {
        Self::new(
            501,
            "NotImplemented",
            format!("A header or query you provided implies functionality that is not implemented: {what}"),
        )
    }
    pub fn entity_too_large(size: u64, max: u64) -> Self {
        Self::new(
            400,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed object size.",
        )
        .with("ProposedSize", size.to_string())
        .with("MaxSizeAllowed", max.to_string())
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(500, "InternalError", msg)
    }
    pub fn bad_digest() -> Self {
        Self::new(
            400,
            "BadDigest",
            "The Content-MD5 you specified did not match what we received.",
        )
    }
    pub fn invalid_digest() -> Self {
        Self::new(
            400,
            "InvalidDigest",
            "The Content-MD5 you specified is not valid.",
        )
    }
    pub fn key_too_long(len: usize) -> Self {
        Self::new(400, "KeyTooLong", "Your key is too long.")
            .with("Size", len.to_string())
            .with("MaxSizeAllowed", crate::limits::MAX_KEY_LEN.to_string())
    }
    pub fn invalid_uri() -> Self {
        Self::new(400, "InvalidURI", "Couldn't parse the specified URI.")
    }
    pub fn io(e: std::io::Error) -> Self {
        Self::internal(format!(
            "We encountered an internal error ({e}). Please try again."
        ))
    }
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for S3Error {}
