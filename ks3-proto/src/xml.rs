//! KS3's XML bodies as serde types, shared by the driver (which reads the responses and
//! writes the two request bodies) and `ks3-local` (which reads the requests and writes the
//! responses). Read with [`from_xml`], written with [`to_xml`], both through quick-xml's
//! serde support.
//!
//! **Required and optional.** A field the driver cannot work without (`IsTruncated`, a
//! part's `PartNumber`/`ETag`/`Size`, an upload's `UploadId`, a key's `Key`/`Size`, an
//! error's `Code`) is a plain field: a document without it is an error, never a silent
//! default. Informational fields are `Option`, so that a server leaving one out still
//! works. Repeated elements are `Vec`s (zero of them is valid). Numbers are typed (`u32`,
//! `u64`, `bool`): quick-xml parses them with `str::parse`, so an overflow or a sign is an
//! error, not a wrap.
//!
//! **Names are matched by local name.** KS3 sometimes answers with prefixed elements
//! (`<ns2:ListPartsResult xmlns:ns2=…><ns2:Part>`). quick-xml's deserializer keys struct
//! fields and enum variants by an element's *local* name (the part after `:`), and
//! [`from_xml`] checks the root by local name too, so a prefixed document reads like an
//! unprefixed one (tested below). Namespace URIs are not checked, as before.
//!
//! **Limits.** Before deserializing, [`from_xml`] walks the document once with quick-xml's
//! reader and refuses: non-UTF-8, more than [`MAX_DEPTH`] levels of nesting or
//! [`MAX_ELEMENTS`] elements, a DOCTYPE (no entity tricks), a second root or text outside
//! the root. Callers bound the document's size before they get here.
use std::fmt;

use quick_xml::events::Event;
use quick_xml::se::{QuoteLevel, Serializer};
use quick_xml::Reader;
use serde::de::DeserializeOwned;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize};

/// S3's namespace, which S3-compatible servers put on most response roots.
pub const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";
/// The declaration [`to_xml`] starts every document with.
pub const DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
/// At most this many nested elements.
pub const MAX_DEPTH: usize = 16;
/// At most this many elements in one document.
pub const MAX_ELEMENTS: usize = 200_000;

/// A document that is not acceptable: malformed, over a limit, of another shape, or
/// missing a required field. The message says which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError(String);

impl XmlError {
    fn new(msg: impl Into<String>) -> Self {
        XmlError(msg.into())
    }
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for XmlError {}

/// A KS3 document type and the local name of its root element.
pub trait Document: Serialize + DeserializeOwned {
    const ROOT: &'static str;
}

/// Checks the document against the limits and returns it as text with its root's local
/// name.
fn scan(doc: &[u8]) -> Result<(&str, String), XmlError> {
    let text = std::str::from_utf8(doc).map_err(|_| XmlError::new("XML is not UTF-8"))?;
    let mut reader = Reader::from_str(text);
    let mut depth = 0usize;
    let mut count = 0usize;
    let mut root: Option<String> = None;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| XmlError::new(format!("malformed XML: {e}")))?;
        match ev {
            Event::Start(_) | Event::Empty(_) if depth == 0 && root.is_some() => {
                return Err(XmlError::new("XML has more than one root element"))
            }
            Event::Start(ref s) | Event::Empty(ref s) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::new("XML has too many elements"));
                }
                if root.is_none() {
                    let name = std::str::from_utf8(s.local_name().into_inner())
                        .map_err(|_| XmlError::new("XML element name is not UTF-8"))?;
                    root = Some(name.to_string());
                }
                if matches!(ev, Event::Start(_)) {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(XmlError::new("XML nested too deeply"));
                    }
                }
            }
            Event::End(_) => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| XmlError::new("unbalanced XML"))?;
            }
            Event::Text(t) if depth == 0 && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(XmlError::new("text outside the XML root element"))
            }
            Event::CData(_) if depth == 0 => {
                return Err(XmlError::new("text outside the XML root element"))
            }
            Event::DocType(_) => return Err(XmlError::new("XML with a DOCTYPE")),
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 {
        return Err(XmlError::new("truncated XML document"));
    }
    let root = root.ok_or_else(|| XmlError::new("empty XML document"))?;
    Ok((text, root))
}

/// The local name of the document's root element, after the checks [`from_xml`] makes.
/// Tells a KS3 `<Error>` from the result a caller expected.
pub fn root_name(doc: &[u8]) -> Result<String, XmlError> {
    scan(doc).map(|(_, root)| root)
}

/// Reads a document of type `T`: within the limits, rooted at `T::ROOT` (by local name),
/// with every required field present and every number in range.
pub fn from_xml<T: Document>(doc: &[u8]) -> Result<T, XmlError> {
    let (text, root) = scan(doc)?;
    if root != T::ROOT {
        return Err(XmlError::new(format!(
            "unexpected <{root}> where <{}> belongs",
            T::ROOT
        )));
    }
    quick_xml::de::from_str(text).map_err(|e| XmlError::new(format!("<{}>: {e}", T::ROOT)))
}

/// Writes a document, with the XML declaration, no indentation and every empty element
/// written as `<a></a>`. Text is escaped fully (`&<>'"`); characters XML 1.0 cannot carry
/// raw (controls other than tab, newline and return) are written as numeric references,
/// as S3 does.
pub fn to_xml<T: Document>(value: &T) -> Result<String, XmlError> {
    let mut body = String::new();
    let mut ser = Serializer::with_root(&mut body, Some(T::ROOT))
        .map_err(|e| XmlError::new(format!("writing <{}>: {e}", T::ROOT)))?;
    ser.expand_empty_elements(true);
    ser.set_quote_level(QuoteLevel::Full);
    value
        .serialize(ser)
        .map_err(|e| XmlError::new(format!("writing <{}>: {e}", T::ROOT)))?;
    let mut out = String::with_capacity(DECLARATION.len() + body.len());
    out.push_str(DECLARATION);
    for c in body.chars() {
        if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') {
            out.push_str(&format!("&#x{:X};", c as u32));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

macro_rules! document {
    ($($t:ty => $root:literal),* $(,)?) => {
        $(impl Document for $t {
            const ROOT: &'static str = $root;
        })*
    };
}

document! {
    ListAllMyBucketsResult => "ListAllMyBucketsResult",
    LocationConstraint => "LocationConstraint",
    ListBucketResult => "ListBucketResult",
    InitiateMultipartUploadResult => "InitiateMultipartUploadResult",
    CompleteMultipartUpload => "CompleteMultipartUpload",
    CompleteMultipartUploadResult => "CompleteMultipartUploadResult",
    ListPartsResult => "ListPartsResult",
    ListMultipartUploadsResult => "ListMultipartUploadsResult",
    CopyObjectResult => "CopyObjectResult",
    CopyPartResult => "CopyPartResult",
    Delete => "Delete",
    DeleteResult => "DeleteResult",
    ErrorResponse => "Error",
}

/// `<Owner>` / `<Initiator>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    #[serde(rename = "ID", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "DisplayName", skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// `<CommonPrefixes><Prefix/></CommonPrefixes>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CommonPrefix {
    pub prefix: String,
}

/// `GET /` (list buckets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAllMyBucketsResult {
    #[serde(rename = "@xmlns", skip_serializing_if = "Option::is_none")]
    pub xmlns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    pub buckets: Buckets,
}

/// `<Buckets>` of [`ListAllMyBucketsResult`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buckets {
    #[serde(rename = "Bucket", default)]
    pub buckets: Vec<BucketEntry>,
}

/// One `<Bucket>` of a bucket listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BucketEntry {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<String>,
}

/// `GET /bucket?location`: the region as the root's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationConstraint {
    #[serde(rename = "@xmlns", skip_serializing_if = "Option::is_none")]
    pub xmlns: Option<String>,
    #[serde(rename = "$text", default)]
    pub region: String,
}

/// `GET /bucket` (ListObjects v1, and v2 with `list-type=2`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListBucketResult {
    #[serde(rename = "@xmlns", skip_serializing_if = "Option::is_none")]
    pub xmlns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_keys: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_continuation_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_after: Option<String>,
    /// Required: without it, the end of a listing cannot be told from a cut-off page.
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    #[serde(default)]
    pub contents: Vec<ObjectEntry>,
    #[serde(default)]
    pub common_prefixes: Vec<CommonPrefix>,
}

/// One `<Contents>` of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectEntry {
    pub key: String,
    /// ISO 8601.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    #[serde(rename = "ETag", skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// `Normal` or `Multipart`.
    #[serde(rename = "Type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// `POST /key?uploads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InitiateMultipartUploadResult {
    #[serde(rename = "@xmlns", skip_serializing_if = "Option::is_none")]
    pub xmlns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub upload_id: String,
}

/// The body of `POST /key?uploadId=ID`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteMultipartUpload {
    #[serde(rename = "Part", default)]
    pub parts: Vec<CompletePart>,
}

/// One `<Part>` of [`CompleteMultipartUpload`]; a CRC-64 lets KS3 check that the part it
/// holds is the one the client sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompletePart {
    pub part_number: u32,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(
        rename = "ChecksumCRC64ECMA",
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub crc64: Option<u64>,
}

/// The answer to a Complete (KS3 may also answer 200 with an `<Error>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompleteMultipartUploadResult {
    #[serde(rename = "@xmlns", skip_serializing_if = "Option::is_none")]
    pub xmlns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(rename = "ETag", skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(
        rename = "ChecksumCRC64ECMA",
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub crc64: Option<u64>,
}

/// `GET /key?uploadId=ID`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListPartsResult {
    #[serde(rename = "@xmlns", skip_serializing_if = "Option::is_none")]
    pub xmlns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiator: Option<Owner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Markers are opaque to a client; kept as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_number_marker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_part_number_marker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_parts: Option<u32>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<String>,
    #[serde(rename = "Part", default)]
    pub parts: Vec<PartEntry>,
}

/// One `<Part>` of [`ListPartsResult`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PartEntry {
    pub part_number: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    #[serde(rename = "ETag")]
    pub etag: String,
    pub size: u64,
    #[serde(
        rename = "ChecksumCRC64ECMA",
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub crc64: Option<u64>,
}

/// `GET /bucket?uploads`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListMultipartUploadsResult {
    #[serde(rename = "@xmlns", skip_serializing_if = "Option::is_none")]
    pub xmlns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_marker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_id_marker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_key_marker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_upload_id_marker: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_uploads: Option<u32>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_type: Option<String>,
    #[serde(rename = "Upload", default)]
    pub uploads: Vec<UploadEntry>,
    #[serde(default)]
    pub common_prefixes: Vec<CommonPrefix>,
}

/// One `<Upload>` of [`ListMultipartUploadsResult`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UploadEntry {
    pub key: String,
    pub upload_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiator: Option<Owner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// ISO 8601.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initiated: Option<String>,
}

/// `PUT /key` with `x-kss-copy-source`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CopyObjectResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    #[serde(rename = "ETag", skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(
        rename = "ChecksumCRC64ECMA",
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub crc64: Option<u64>,
}

/// Upload Part Copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CopyPartResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// Required: Complete needs it.
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(
        rename = "ChecksumCRC64ECMA",
        default,
        deserialize_with = "empty_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub crc64: Option<u64>,
}

/// The body of `POST /bucket?delete`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delete {
    /// Absent means verbose (`false`).
    #[serde(rename = "Quiet", skip_serializing_if = "Option::is_none")]
    pub quiet: Option<bool>,
    #[serde(rename = "Object", default)]
    pub objects: Vec<DeleteObject>,
}

/// One `<Object>` of [`Delete`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteObject {
    pub key: String,
}

/// The answer to a multi-object delete: `<Deleted>` and `<Error>` in the order of the
/// request's keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteResult {
    #[serde(rename = "@xmlns", skip_serializing_if = "Option::is_none")]
    pub xmlns: Option<String>,
    #[serde(rename = "$value", default)]
    pub entries: Vec<DeleteEntry>,
}

/// One key's outcome in a [`DeleteResult`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeleteEntry {
    Deleted(Deleted),
    Error(DeleteError),
}

/// `<Deleted>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Deleted {
    pub key: String,
}

/// `<Error>` inside a [`DeleteResult`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteError {
    pub key: String,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A KS3 error body: `<Error><Code/><Message/><Resource/><RequestId/>…</Error>`.
///
/// `details` are the error-specific elements a server adds after those
/// (`StringToSign`, `ArgumentName`, `ServerTime`, …), written in order; a reader ignores
/// them (they are not read back).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorResponse {
    pub code: String,
    pub message: Option<String>,
    pub resource: Option<String>,
    pub request_id: Option<String>,
    #[serde(skip)]
    pub details: Vec<(&'static str, String)>,
}

// By hand: the detail elements' names are only known at run time.
impl Serialize for ErrorResponse {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Error", 4 + self.details.len())?;
        st.serialize_field("Code", &self.code)?;
        for (name, value) in [
            ("Message", &self.message),
            ("Resource", &self.resource),
            ("RequestId", &self.request_id),
        ] {
            match value {
                Some(v) => st.serialize_field(name, v)?,
                None => st.skip_field(name)?,
            }
        }
        for (name, value) in &self.details {
            st.serialize_field(name, value)?;
        }
        st.end()
    }
}

/// An optional number that may also come as an empty element (`<ChecksumCRC64ECMA/>`):
/// absent or empty is `None`; anything else must be a `u64`.
fn empty_as_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("`{t}` is not a u64: {e}"))),
    }
}

#[cfg(test)]
mod tests;
