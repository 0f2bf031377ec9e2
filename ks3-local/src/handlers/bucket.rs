//! Bucket operations and the multi-object delete.
use http::StatusCode;

use sha2::{Digest, Sha256};

use super::*;
use crate::body::collect;
use crate::limits::MAX_DELETE_KEYS;
use ks3_proto::xml::{
    from_xml, Delete, DeleteEntry, DeleteError, DeleteResult, Deleted, LocationConstraint, S3_NS,
};

const MAX_DELETE_BODY: usize = 4 << 20;

pub fn head_bucket(state: &State, req: &Req) -> HResult {
    bucket_of(state, &req.bucket)?;
    Ok(empty_response(StatusCode::OK))
}

/// `GET /bucket?location`: the server's region as its V4 region name (`BEIJING`), or the
/// region id when it has none.
pub fn location(state: &State, req: &Req) -> HResult {
    bucket_of(state, &req.bucket)?;
    let region = &state.config.region;
    let name = ks3_proto::sign_v4::v4_region(region).unwrap_or(region);
    xml_response(
        StatusCode::OK,
        &LocationConstraint {
            xmlns: Some(S3_NS.into()),
            region: name.to_string(),
        },
    )
}

pub fn create_bucket(state: &State, req: &Req) -> HResult {
    if let Some(acl) = req.header("x-kss-acl") {
        if !["private", "public-read", "public-read-write"].contains(&acl.as_str()) {
            return Err(S3Error::invalid_argument(format!(
                "Invalid canned ACL {acl:?}."
            )));
        }
    }
    state.store.create_bucket(&req.bucket)?;
    let mut r = empty_response(StatusCode::OK);
    set(&mut r, "location", &format!("/{}", req.bucket));
    Ok(r)
}

pub fn delete_bucket(state: &State, req: &Req) -> HResult {
    state.store.delete_bucket(&req.bucket)?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// `POST /bucket?delete`. `Content-MD5` is required (absent → 400 `InvalidRequest`, as S3;
/// malformed → `InvalidDigest`; wrong → `BadDigest`). More than 1000 keys, no key, or bad
/// XML → `MalformedXML`. A missing key is reported as an `<Error>` with `NoSuchKey`
/// (consistent with KS3's single DELETE).
pub async fn multi_delete(state: &State, req: &mut Req) -> HResult {
    let bucket = bucket_of(state, &req.bucket)?;
    let want_md5 = content_md5(req)?;
    let checksum = request_checksum(req)?;
    if want_md5.is_none() && checksum.is_none() {
        return Err(S3Error::invalid_request(
            "Missing required header for this request: Content-MD5",
        ));
    }
    let body = collect(&mut req.body, MAX_DELETE_BODY).await?;
    if want_md5.is_some_and(|m| ks3_proto::digest::md5(&body) != m) {
        return Err(S3Error::bad_digest());
    }
    if let Some((name, algorithm, claimed)) = checksum {
        let computed = ks3_proto::digest::base64(&algorithm.digest(&body));
        if computed != claimed.trim() {
            return Err(S3Error::new(
                400,
                "BadDigest",
                format!("The {name} you specified did not match the calculated checksum."),
            ));
        }
    }
    let request: Delete = from_xml(&body).map_err(|_| S3Error::malformed_xml())?;
    let quiet = request.quiet.unwrap_or(false);
    if request.objects.is_empty() || request.objects.len() > MAX_DELETE_KEYS {
        return Err(S3Error::malformed_xml());
    }
    let mut result = DeleteResult {
        xmlns: Some(S3_NS.into()),
        entries: Vec::new(),
    };
    for key in request.objects.into_iter().map(|o| o.key) {
        let outcome = if key.is_empty() {
            Err(("InvalidArgument", "The key is empty.".to_string()))
        } else if key.len() > MAX_KEY_LEN {
            Err(("KeyTooLong", "Your key is too long.".to_string()))
        } else {
            match bucket.delete(&key) {
                Ok(()) => Ok(()),
                Err(StoreError::NoSuchKey(_)) => {
                    Err(("NoSuchKey", "The specified key does not exist.".to_string()))
                }
                Err(e) => Err(("InternalError", e.to_string())),
            }
        };
        match outcome {
            Ok(()) if quiet => {}
            Ok(()) => result.entries.push(DeleteEntry::Deleted(Deleted { key })),
            Err((code, msg)) => result.entries.push(DeleteEntry::Error(DeleteError {
                key,
                code: code.to_string(),
                message: Some(msg),
            })),
        }
    }
    xml_response(StatusCode::OK, &result)
}

/// The flexible checksums S3 SDKs send instead of `Content-MD5` (botocore ≥ 1.36 sends
/// `x-amz-checksum-crc32` on a multi-object delete and no `Content-MD5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checksum {
    Crc32,
    Crc32c,
    Sha256,
}

impl Checksum {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            // Reflected polynomials of CRC-32 (IEEE) and CRC-32C (Castagnoli).
            Checksum::Crc32 => crc32(0xEDB8_8320, data).to_be_bytes().to_vec(),
            Checksum::Crc32c => crc32(0x82F6_3B78, data).to_be_bytes().to_vec(),
            Checksum::Sha256 => Sha256::digest(data).to_vec(),
        }
    }
}

/// Bitwise CRC-32 (init and final xor all ones); bodies here are at most a few MiB.
fn crc32(poly: u32, data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ poly
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The one `x-amz-checksum-*` header of the request, if any; an algorithm this server does
/// not compute → 501 rather than an unchecked body.
fn request_checksum(req: &Req) -> Result<Option<(String, Checksum, String)>, S3Error> {
    let mut found = None;
    for (n, v) in req.headers.iter() {
        let Some(alg) = n.as_str().strip_prefix("x-amz-checksum-") else {
            continue;
        };
        if alg == "type" || alg == "mode" {
            continue;
        }
        let algorithm = match alg {
            "crc32" => Checksum::Crc32,
            "crc32c" => Checksum::Crc32c,
            "sha256" => Checksum::Sha256,
            _ => return Err(S3Error::not_implemented(n.as_str())),
        };
        let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
        if found
            .replace((n.as_str().to_string(), algorithm, value))
            .is_some()
        {
            return Err(S3Error::invalid_request(
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
            ));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_values() {
        // The standard check input of both CRCs.
        assert_eq!(crc32(0xEDB8_8320, b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(0x82F6_3B78, b"123456789"), 0xE306_9283);
        assert_eq!(
            ks3_proto::digest::base64(&Checksum::Crc32.digest(b"")),
            "AAAAAA=="
        );
    }
}
