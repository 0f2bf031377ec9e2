//! Request routing and the pieces the operation handlers share.
use std::sync::Arc;

use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::BodyExt;
use ks3_proto::date::http_date;
use ks3_proto::xml::{to_xml, Document, Owner};

use crate::auth::header_str;
use crate::body::{body_error, full, incomplete, set, ReqBody, RespBody};
use crate::error::S3Error;
use crate::limits::{MAX_KEY_LEN, MAX_USER_META};
use crate::query::Query;
use crate::state::State;
use crate::store::{Attrs, Bucket, ObjectMeta, Sink, StoreError};

pub mod bucket;
pub mod list;
pub mod multipart;
pub mod object;

/// Sub-resources and operations this server does not implement (→ 501 NotImplemented),
/// so that e.g. `GET /bucket?acl` is never mistaken for a listing.
const UNSUPPORTED: &[&str] = &[
    "acl",
    "adp",
    "cors",
    "lifecycle",
    "logging",
    "notification",
    "policy",
    "quota",
    "restore",
    "tagging",
    "versionId",
    "versioning",
    "versions",
    "website",
    "append",
    "position",
    "recycle",
    "encryption",
    "replication",
    "crr",
    "mirror",
    "inventory",
    "retention",
    "accelerate",
    "requestPayment",
    "object-lock",
    "torrent",
    "select",
    "decompresspolicy",
    "qos",
    "fetch",
    "accessmonitor",
    "transferAcceleration",
    "dataAccelerator",
];

/// One request, addressed and authenticated.
pub struct Req {
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Query,
    pub bucket: String,
    pub key: String,
    pub body: ReqBody,
    /// `Host` header (for `Location`).
    pub host: String,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<String> {
        header_str(&self.headers, name)
    }
}

pub type HResult = Result<Response<RespBody>, S3Error>;

/// What a store failure means on the wire: the one place where the store's errors become
/// KS3's codes and statuses.
impl From<StoreError> for S3Error {
    fn from(e: StoreError) -> S3Error {
        match e {
            StoreError::InvalidBucketName(name) => S3Error::new(
                400,
                "InvalidBucketName",
                "The specified bucket is not valid.",
            )
            .with("BucketName", name),
            StoreError::BucketAlreadyExists(name) => S3Error::new(
                409,
                "BucketAlreadyExists",
                "The requested bucket name is not available.",
            )
            .with("BucketName", name),
            StoreError::NoSuchBucket(name) => S3Error::no_such_bucket(&name),
            StoreError::BucketNotEmpty(name) => S3Error::new(
                409,
                "BucketNotEmpty",
                "The bucket you tried to delete is not empty.",
            )
            .with("BucketName", name),
            StoreError::NoSuchKey(key) => S3Error::no_such_key(&key),
            StoreError::NoSuchUpload(id) => S3Error::no_such_upload(&id),
            StoreError::Io(e) => S3Error::io(e),
        }
    }
}

pub fn bucket_of(state: &State, name: &str) -> Result<Arc<Bucket>, S3Error> {
    state
        .store
        .bucket(name)
        .ok_or_else(|| S3Error::no_such_bucket(name))
}

/// Routes an authenticated request to its operation.
pub async fn dispatch(state: &State, req: &mut Req) -> HResult {
    if let Some((name, _)) = req
        .query
        .0
        .iter()
        .find(|(k, _)| UNSUPPORTED.contains(&k.as_str()))
    {
        return Err(S3Error::not_implemented(&format!(
            "the ?{name} sub-resource"
        )));
    }
    let m = req.method.clone();
    if req.bucket.is_empty() {
        return match m {
            Method::GET => list::list_buckets(state, req),
            _ => Err(method_not_allowed()),
        };
    }
    if req.key.is_empty() {
        return match m {
            Method::GET if req.query.has("uploads") => multipart::list_uploads(state, req),
            Method::GET if req.query.has("location") => bucket::location(state, req),
            Method::GET => list::list_objects(state, req),
            Method::HEAD => bucket::head_bucket(state, req),
            Method::PUT => bucket::create_bucket(state, req),
            Method::DELETE => bucket::delete_bucket(state, req),
            Method::POST if req.query.has("delete") => bucket::multi_delete(state, req).await,
            Method::POST => Err(S3Error::not_implemented(
                "POST object (browser form upload)",
            )),
            _ => Err(method_not_allowed()),
        };
    }
    if req.key.len() > MAX_KEY_LEN {
        return Err(S3Error::key_too_long(req.key.len()));
    }
    let has_upload = req.query.has("uploadId");
    match m {
        Method::GET if has_upload => multipart::list_parts(state, req),
        Method::GET => object::get_object(state, req, false).await,
        Method::HEAD => object::get_object(state, req, true).await,
        Method::PUT if has_upload || req.query.has("partNumber") => {
            multipart::upload_part(state, req).await
        }
        Method::PUT if req.headers.contains_key("x-kss-copy-source") => {
            object::copy_object(state, req).await
        }
        Method::PUT => object::put_object(state, req).await,
        Method::POST if req.query.has("uploads") => multipart::initiate(state, req),
        Method::POST if has_upload => multipart::complete(state, req).await,
        Method::POST => Err(S3Error::not_implemented("this POST operation on an object")),
        Method::DELETE if has_upload => multipart::abort(state, req).await,
        Method::DELETE => object::delete_object(state, req),
        _ => Err(method_not_allowed()),
    }
}

fn method_not_allowed() -> S3Error {
    S3Error::new(
        405,
        "MethodNotAllowed",
        "The specified method is not allowed against this resource.",
    )
}

// ---- shared request parsing ----

/// `Content-Length`, required for bodies: absent → 411 `MissingContentLength`.
pub fn content_length(req: &Req) -> Result<u64, S3Error> {
    match req.header("content-length") {
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| S3Error::invalid_argument("Content-Length is not a number.")),
        None => Err(S3Error::new(
            411,
            "MissingContentLength",
            "You must provide the Content-Length HTTP header.",
        )),
    }
}

/// The decoded `Content-MD5`, if given; malformed → `InvalidDigest`.
pub fn content_md5(req: &Req) -> Result<Option<[u8; 16]>, S3Error> {
    match req.header("content-md5") {
        None => Ok(None),
        Some(v) => ks3_proto::digest::decode_content_md5(&v)
            .map(Some)
            .ok_or_else(S3Error::invalid_digest),
    }
}

/// Streams a request body of `expected` bytes into `sink`. A body that ends early or breaks
/// → `IncompleteBody` (the data is then dropped with the sink, never published).
pub async fn receive(body: &mut ReqBody, sink: &mut Sink, expected: u64) -> Result<(), S3Error> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(body_error)?;
        if let Ok(data) = frame.into_data() {
            if sink.len() + data.len() as u64 > expected {
                return Err(incomplete());
            }
            sink.write(&data).await?;
        }
    }
    if sink.len() != expected {
        return Err(incomplete());
    }
    Ok(())
}

/// `x-kss-server-side-encryption`: only `AES256`; SSE-C and KMS are not implemented.
pub fn sse(req: &Req) -> Result<Option<String>, S3Error> {
    for h in [
        "x-kss-server-side-encryption-customer-algorithm",
        "x-kss-server-side-encryption-customer-key",
        "x-kss-server-side-encryption-kss-kms-key-id",
    ] {
        if req.headers.contains_key(h) {
            return Err(S3Error::not_implemented(h));
        }
    }
    match req.header("x-kss-server-side-encryption") {
        None => Ok(None),
        Some(v) if v == "AES256" => Ok(Some(v)),
        Some(v) => Err(S3Error::invalid_argument(format!(
            "The encryption method specified is not supported: {v:?} (only AES256)."
        ))
        .with("ArgumentName", "x-kss-server-side-encryption")
        .with("ArgumentValue", v)),
    }
}

use ks3_proto::names::{CANNED_ACLS as ACLS, STORAGE_CLASSES};
const STORED_HEADERS: &[&str] = &[
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

/// Attributes of a new object from the request headers, validated.
pub fn attrs_from(req: &Req) -> Result<Attrs, S3Error> {
    let sse = sse(req)?;
    if let Some(acl) = req.header("x-kss-acl") {
        if !ACLS.contains(&acl.as_str()) {
            return Err(
                S3Error::invalid_argument(format!("Invalid canned ACL {acl:?}."))
                    .with("ArgumentName", "x-kss-acl"),
            );
        }
    }
    let storage_class = req.header("x-kss-storage-class");
    if let Some(sc) = &storage_class {
        if !STORAGE_CLASSES.contains(&sc.as_str()) {
            return Err(S3Error::new(
                400,
                "InvalidStorageClass",
                "The storage class you specified is not valid.",
            )
            .with("StorageClassRequested", sc.clone()));
        }
    }
    let mut user_meta = Vec::new();
    let mut meta_size = 0;
    for (n, v) in req.headers.iter() {
        if n.as_str().starts_with("x-kss-meta-") {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            meta_size += n.as_str().len() - "x-kss-meta-".len() + v.len();
            user_meta.push((n.as_str().to_string(), v));
        }
    }
    if meta_size > MAX_USER_META {
        return Err(S3Error::new(
            400,
            "MetadataTooLarge",
            "Your metadata headers exceed the maximum allowed metadata size.",
        )
        .with("MaxSizeAllowed", MAX_USER_META.to_string()));
    }
    let headers = STORED_HEADERS
        .iter()
        .filter_map(|h| req.header(h).map(|v| (h.to_string(), v)))
        .collect();
    Ok(Attrs {
        content_type: req.header("content-type").filter(|v| !v.is_empty()),
        sse,
        storage_class,
        user_meta,
        headers,
    })
}

/// Validates the key of a copy target or source.
pub fn check_key(key: &str) -> Result<(), S3Error> {
    if key.len() > MAX_KEY_LEN {
        return Err(S3Error::key_too_long(key.len()));
    }
    Ok(())
}

/// Parses `x-kss-copy-source: /bucket/url-encoded-key` (`+` = space).
pub fn copy_source(req: &Req) -> Result<(String, String), S3Error> {
    let raw = req.header("x-kss-copy-source").unwrap_or_default();
    let (path, q) = match raw.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (raw.as_str(), None),
    };
    if q.is_some_and(|q| q.contains("versionId")) {
        return Err(S3Error::not_implemented("copying a specific versionId"));
    }
    let bad = || {
        S3Error::invalid_argument(
            "Copy Source must mention the source bucket and key: /sourcebucket/sourcekey.",
        )
        .with("ArgumentName", "x-kss-copy-source")
        .with("ArgumentValue", raw.clone())
    };
    let decoded = ks3_proto::encode::decode(path, true).ok_or_else(bad)?;
    let decoded = decoded.strip_prefix('/').unwrap_or(&decoded);
    let (b, k) = decoded.split_once('/').ok_or_else(bad)?;
    if b.is_empty() || k.is_empty() {
        return Err(bad());
    }
    check_key(k)?;
    Ok((b.to_string(), k.to_string()))
}

// ---- shared response building ----

/// A response whose body is the document `doc` (see `ks3_proto::xml`).
pub fn xml_response<D: Document>(status: StatusCode, doc: &D) -> HResult {
    let body = to_xml(doc).map_err(|e| S3Error::internal(e.to_string()))?;
    Ok(raw_xml_response(status, body))
}

fn raw_xml_response(status: StatusCode, body: String) -> Response<RespBody> {
    let len = body.len();
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    set(&mut r, "content-type", "application/xml");
    set(&mut r, "content-length", &len.to_string());
    r
}

pub fn empty_response(status: StatusCode) -> Response<RespBody> {
    let mut r = Response::new(crate::body::empty());
    *r.status_mut() = status;
    if status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED {
        set(&mut r, "content-length", "0");
    }
    r
}

pub fn last_modified(ms: i64) -> String {
    http_date(ms.div_euclid(1000))
}

pub fn iso(ms: i64) -> String {
    ks3_proto::date::iso8601(ms as i128 * 1_000_000)
}

/// Headers describing a stored object (GET, HEAD).
pub fn object_headers(resp: &mut Response<RespBody>, meta: &ObjectMeta) {
    set(
        resp,
        "content-type",
        meta.attrs
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream"),
    );
    set(resp, "etag", &meta.etag);
    set(resp, "last-modified", &last_modified(meta.last_modified_ms));
    set(resp, "accept-ranges", "bytes");
    if let Some(s) = &meta.attrs.sse {
        set(resp, "x-kss-server-side-encryption", s);
    }
    if let Some(sc) = &meta.attrs.storage_class {
        set(resp, "x-kss-storage-class", sc);
    }
    for (n, v) in meta.attrs.user_meta.iter().chain(meta.attrs.headers.iter()) {
        set(resp, n, v);
    }
}

pub fn crc_header(resp: &mut Response<RespBody>, crc: u64) {
    set(resp, "x-kss-checksum-crc64ecma", &crc.to_string());
}

/// Parses a `max-*` paging parameter: default `default`, allowed `1..=max`.
pub fn page_size(req: &Req, name: &str, default: usize, max: usize) -> Result<usize, S3Error> {
    match req.query.get(name) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(S3Error::invalid_argument(format!(
                "{name} must be an integer between 1 and {max}."
            ))
            .with("ArgumentName", name.to_string())
            .with("ArgumentValue", v.to_string())),
        },
    }
}

/// `encoding-type`: absent or `url`.
pub fn url_encoding(req: &Req) -> Result<bool, S3Error> {
    match req.query.get("encoding-type") {
        None => Ok(false),
        Some("url") => Ok(true),
        Some(v) => Err(
            S3Error::invalid_argument("Invalid Encoding Method specified in Request")
                .with("ArgumentName", "encoding-type")
                .with("ArgumentValue", v.to_string()),
        ),
    }
}

/// Encodes a name for an `encoding-type=url` listing.
pub fn enc(s: &str, url: bool) -> String {
    if url {
        ks3_proto::encode::encode_key(s)
    } else {
        s.to_string()
    }
}

/// ETags compare without quotes, case-insensitively.
pub fn etag_eq(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_matches('"').to_ascii_lowercase();
    norm(a) == norm(b)
}

pub const OWNER_ID: &str = "ks3local";

/// This server's `<Owner>` (also its `<Initiator>`).
pub fn owner() -> Option<Owner> {
    Some(Owner {
        id: Some(OWNER_ID.into()),
        display_name: Some(OWNER_ID.into()),
    })
}
