//! Bucket operations and the multi-object delete.
use http::StatusCode;

use super::*;
use crate::body::collect;
use crate::xml::{parse, XmlWriter};

/// At most this many keys per multi-object delete.
pub const MAX_DELETE_KEYS: usize = 1000;
const MAX_DELETE_BODY: usize = 4 << 20;

pub fn head_bucket(state: &State, req: &Req) -> HResult {
    bucket_of(state, &req.bucket)?;
    Ok(empty_response(StatusCode::OK))
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
    let Some(want_md5) = content_md5(req)? else {
        return Err(S3Error::invalid_request(
            "Missing required header for this request: Content-MD5",
        ));
    };
    let body = collect(&mut req.body, MAX_DELETE_BODY).await?;
    if ks3_proto::digest::md5(&body) != want_md5 {
        return Err(S3Error::bad_digest());
    }
    let root = parse(&body).map_err(|_| S3Error::malformed_xml())?;
    if root.name != "Delete" {
        return Err(S3Error::malformed_xml());
    }
    let quiet = match root
        .child("Quiet")
        .map(|q| q.text.trim().to_ascii_lowercase())
    {
        None => false,
        Some(q) if q == "true" => true,
        Some(q) if q == "false" => false,
        Some(_) => return Err(S3Error::malformed_xml()),
    };
    let mut keys = Vec::new();
    for o in root.children_named("Object") {
        let key = o.child("Key").ok_or_else(S3Error::malformed_xml)?;
        keys.push(key.text.clone());
    }
    if keys.is_empty() || keys.len() > MAX_DELETE_KEYS {
        return Err(S3Error::malformed_xml());
    }
    let mut x = XmlWriter::new();
    x.root("DeleteResult");
    for key in keys {
        let outcome = if key.is_empty() {
            Err(("InvalidArgument", "The key is empty.".to_string()))
        } else if key.len() > MAX_KEY_LEN {
            Err(("KeyTooLong", "Your key is too long.".to_string()))
        } else {
            match bucket.delete(&key) {
                Ok(true) => Ok(()),
                Ok(false) => Err(("NoSuchKey", "The specified key does not exist.".to_string())),
                Err(e) => Err(("InternalError", e.to_string())),
            }
        };
        match outcome {
            Ok(()) if quiet => {}
            Ok(()) => {
                x.open("Deleted");
                x.elem("Key", &key);
                x.close("Deleted");
            }
            Err((code, msg)) => {
                x.open("Error");
                x.elem("Key", &key);
                x.elem("Code", code);
                x.elem("Message", &msg);
                x.close("Error");
            }
        }
    }
    x.close("DeleteResult");
    Ok(xml_response(StatusCode::OK, x.finish()))
}
