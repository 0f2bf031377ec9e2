//! Multipart uploads: initiate, upload part (and part copy), complete, abort, list parts,
//! list uploads.
use http::StatusCode;
use ks3_proto::digest::{etag, hex, Md5Stream};
use ks3_proto::Crc64;

use super::list::count;
use super::object::copy_into;
use super::*;
use crate::body::collect;
use crate::limits::{MAX_KEYS, MAX_PARTS_LISTED, MAX_PART_NUMBER};
use crate::store::{now_ms, PartMeta, Staged, UploadInfo};
use ks3_proto::xml::{
    from_xml, CommonPrefix, CompleteMultipartUpload, CompleteMultipartUploadResult, CopyPartResult,
    InitiateMultipartUploadResult, ListMultipartUploadsResult, ListPartsResult, PartEntry,
    UploadEntry, S3_NS,
};

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
const MAX_COMPLETE_BODY: usize = 8 << 20;

pub fn initiate(state: &State, req: &Req) -> HResult {
    let bucket = bucket_of(state, &req.bucket)?;
    let attrs = attrs_from(req)?;
    let info = UploadInfo {
        // Time-ordered, so that uploads of one key list in initiation order.
        id: format!("{:016x}{:016x}", now_nanos(), rand::random::<u64>()),
        key: req.key.clone(),
        initiated_ms: now_ms(),
        attrs,
    };
    bucket.create_upload(info.clone())?;
    let mut r = xml_response(
        StatusCode::OK,
        &InitiateMultipartUploadResult {
            xmlns: Some(S3_NS.into()),
            bucket: Some(bucket.name.clone()),
            key: Some(info.key.clone()),
            upload_id: info.id.clone(),
        },
    )?;
    if let Some(s) = &info.attrs.sse {
        set(&mut r, "x-kss-server-side-encryption", s);
    }
    Ok(r)
}

fn part_number(req: &Req) -> Result<u32, S3Error> {
    let raw = req.query.get("partNumber").unwrap_or("");
    let n: i64 = raw.parse().map_err(|_| {
        S3Error::invalid_argument("Part number must be an integer between 1 and 10000, inclusive")
            .with("ArgumentName", "partNumber")
            .with("ArgumentValue", raw.to_string())
    })?;
    if !(1..=MAX_PART_NUMBER as i64).contains(&n) {
        return Err(S3Error::new(
            400,
            "InvalidPartNum",
            "Part number must be an integer between 1 and 10000, inclusive",
        )
        .with("PartNumber", raw.to_string()));
    }
    Ok(n as u32)
}

fn upload_id(req: &Req) -> Result<String, S3Error> {
    match req.query.get_nonempty("uploadId") {
        Some(id) => Ok(id.to_string()),
        None => Err(
            S3Error::invalid_argument("This operation needs a non-empty uploadId.")
                .with("ArgumentName", "uploadId"),
        ),
    }
}

/// Parses `x-kss-copy-source-range: bytes=first-last` against a source of `size` bytes.
fn copy_range(req: &Req, size: u64) -> Result<(u64, u64), S3Error> {
    let Some(raw) = req.header("x-kss-copy-source-range") else {
        return Ok((0, size));
    };
    let bad = || {
        S3Error::invalid_argument(format!(
            "The x-kss-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy, within the source object of size {size}"
        ))
        .with("ArgumentName", "x-kss-copy-source-range")
        .with("ArgumentValue", raw.clone())
    };
    let spec = raw.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if a > b || b >= size {
        return Err(bad());
    }
    Ok((a, b - a + 1))
}

/// `PUT ?partNumber=N&uploadId=ID`, with a body or `x-kss-copy-source`.
pub async fn upload_part(state: &State, req: &mut Req) -> HResult {
    let bucket = bucket_of(state, &req.bucket)?;
    let number = part_number(req)?;
    let id = upload_id(req)?;
    let (info, _) = bucket
        .upload_info(&id, &req.key)
        .ok_or_else(|| S3Error::no_such_upload(&id))?;
    sse(req)?;
    let copying = req.headers.contains_key("x-kss-copy-source");
    let (sink, modified_ms) = if copying {
        let (src_bucket, src_key) = copy_source(req)?;
        let src = bucket_of(state, &src_bucket)?;
        let (meta, opened) = src.open(&src_key)?;
        let (offset, len) = copy_range(req, meta.size)?;
        if len > state.config.max_copy_size {
            return Err(S3Error::entity_too_large(len, state.config.max_copy_size));
        }
        let mut sink = bucket.sink(len, true).await?;
        copy_into(&mut sink, opened, offset, len).await?;
        (sink, now_ms())
    } else {
        let len = content_length(req)?;
        if len > state.config.max_put_size {
            return Err(S3Error::entity_too_large(len, state.config.max_put_size));
        }
        let want_md5 = content_md5(req)?;
        let mut sink = bucket.sink(len, true).await?;
        receive(&mut req.body, &mut sink, len).await?;
        if want_md5.is_some_and(|w| w != sink.md5()) {
            return Err(S3Error::bad_digest());
        }
        (sink, now_ms())
    };
    let meta = PartMeta {
        number,
        size: sink.len(),
        md5: sink.md5(),
        crc64: sink.crc64(),
        last_modified_ms: modified_ms,
    };
    let staged = sink.finish(&meta).await?;
    bucket.put_part(&id, &req.key, meta.clone(), staged)?;
    let tag = etag(&meta.md5);
    let mut r = if copying {
        xml_response(
            StatusCode::OK,
            &CopyPartResult {
                last_modified: Some(iso(meta.last_modified_ms)),
                etag: tag.clone(),
                crc64: None,
            },
        )?
    } else {
        let mut r = empty_response(StatusCode::OK);
        set(&mut r, "etag", &tag);
        r
    };
    set(
        &mut r,
        "last-modified",
        &last_modified(meta.last_modified_ms),
    );
    crc_header(&mut r, meta.crc64);
    if let Some(s) = &info.attrs.sse {
        set(&mut r, "x-kss-server-side-encryption", s);
    }
    Ok(r)
}

fn complete_result(
    req: &Req,
    bucket: &str,
    key: &str,
    tag: &str,
    crc: u64,
    sse: Option<&str>,
    modified_ms: i64,
) -> HResult {
    let result = CompleteMultipartUploadResult {
        xmlns: Some(S3_NS.into()),
        location: Some(format!(
            "http://{}/{}/{}",
            req.host,
            bucket,
            ks3_proto::encode::encode_key(key)
        )),
        bucket: Some(bucket.to_string()),
        key: Some(key.to_string()),
        etag: Some(tag.to_string()),
        crc64: Some(crc),
    };
    let mut r = xml_response(StatusCode::OK, &result)?;
    set(&mut r, "last-modified", &last_modified(modified_ms));
    crc_header(&mut r, crc);
    if let Some(s) = sse {
        set(&mut r, "x-kss-server-side-encryption", s);
    }
    Ok(r)
}

/// The answer to a Complete of an upload that is no longer in progress: `NoSuchUpload`,
/// or, with [`ServerConfig::replay_completed_uploads`](crate::ServerConfig), the first
/// Complete's answer again for a retried one.
fn retried_complete(state: &State, req: &Req, bucket: &Bucket, id: &str) -> HResult {
    if !state.config.replay_completed_uploads {
        return Err(S3Error::no_such_upload(id));
    }
    match bucket.completed(id).filter(|c| c.key == req.key) {
        Some(c) => complete_result(
            req,
            &bucket.name,
            &c.key,
            &c.etag,
            c.crc64,
            None,
            c.modified_ms,
        ),
        None => Err(S3Error::no_such_upload(id)),
    }
}

/// `POST ?uploadId=ID` with `<CompleteMultipartUpload>`: parts must be listed ascending and
/// consecutive from 1 (`InvalidPartOrder`), exist with matching ETags (`InvalidPart`), and
/// all but the last be at least the minimum part size (`EntityTooSmall`).
pub async fn complete(state: &State, req: &mut Req) -> HResult {
    let bucket = bucket_of(state, &req.bucket)?;
    let id = upload_id(req)?;
    let body = collect(&mut req.body, MAX_COMPLETE_BODY).await?;
    let op_lock = match bucket.upload_info(&id, &req.key) {
        Some((_, l)) => l,
        None => return retried_complete(state, req, &bucket, &id),
    };
    let _guard = op_lock.lock().await;
    let Some((info, _)) = bucket.upload_info(&id, &req.key) else {
        return retried_complete(state, req, &bucket, &id);
    };

    let request: CompleteMultipartUpload = from_xml(&body).map_err(|_| S3Error::malformed_xml())?;
    let listed: Vec<(u32, String, Option<u64>)> = request
        .parts
        .into_iter()
        .map(|p| (p.part_number, p.etag, p.crc64))
        .collect();
    let stored = bucket
        .parts(&id, &req.key)
        .ok_or_else(|| S3Error::no_such_upload(&id))?;
    // distribution 2.8.2 completes an upload with no parts (an empty blob) with an empty
    // list (registry-notes.md §6.7): that makes an empty object. An empty list for an
    // upload that has parts is still malformed.
    if listed.is_empty() && !stored.is_empty() {
        return Err(S3Error::malformed_xml());
    }
    for (i, (num, _, _)) in listed.iter().enumerate() {
        if *num as usize != i + 1 {
            return Err(S3Error::new(
                400,
                "InvalidPartOrder",
                "The list of parts was not in ascending order, or part numbers are not consecutive starting at 1.",
            )
            .with("PartNumber", num.to_string()));
        }
    }
    let mut chosen = Vec::with_capacity(listed.len());
    for (num, tag, crc) in &listed {
        let part = stored.iter().find(|p| p.meta.number == *num);
        let ok = part
            .filter(|p| etag_eq(tag, &hex(&p.meta.md5)) && crc.is_none_or(|c| c == p.meta.crc64));
        let Some(part) = ok else {
            return Err(S3Error::new(
                400,
                "InvalidPart",
                "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.",
            )
            .with("PartNumber", num.to_string())
            .with("ETag", tag.clone()));
        };
        chosen.push(part.clone());
    }
    let min = state.config.min_part_size;
    let all_but_last = chosen.split_last().map_or(&[][..], |(_, rest)| rest);
    for p in all_but_last {
        if p.meta.size < min {
            return Err(S3Error::new(
                400,
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size.",
            )
            .with("PartNumber", p.meta.number.to_string())
            .with("ProposedSize", p.meta.size.to_string())
            .with("MinSizeAllowed", min.to_string()));
        }
    }

    let total: u64 = chosen.iter().map(|p| p.meta.size).sum();
    let mut md5s = Md5Stream::default();
    let mut crc = 0u64;
    for p in &chosen {
        md5s.update(&p.meta.md5);
        crc = Crc64::combine(crc, p.meta.crc64, p.meta.size);
    }
    let tag = format!("\"{}-{}\"", hex(&md5s.finish()), chosen.len());
    let meta = ObjectMeta {
        key: req.key.clone(),
        size: total,
        etag: tag,
        crc64: crc,
        last_modified_ms: now_ms(),
        attrs: info.attrs.clone(),
        parts: Some(chosen.len() as u32),
    };
    // In RAM the object is the parts' buffers in order (nothing is copied); on disk the
    // parts are copied into one file. The CRC-64 is combined from the parts' either way,
    // as KS3 derives it.
    let staged = match Staged::join_in_memory(&chosen) {
        Some(staged) => staged,
        None => {
            let mut sink = bucket.sink(total, false).await?;
            for p in &chosen {
                let opened = p.open().map_err(|_| S3Error::no_such_upload(&id))?;
                copy_into(&mut sink, opened, 0, p.meta.size).await?;
            }
            sink.finish(&meta).await?
        }
    };
    let meta = bucket.complete(&id, meta, staged)?;
    complete_result(
        req,
        &bucket.name,
        &meta.key,
        &meta.etag,
        meta.crc64,
        meta.attrs.sse.as_deref(),
        meta.last_modified_ms,
    )
}

/// `DELETE ?uploadId=ID` → 204.
pub async fn abort(state: &State, req: &Req) -> HResult {
    let bucket = bucket_of(state, &req.bucket)?;
    let id = upload_id(req)?;
    let (_, op_lock) = bucket
        .upload_info(&id, &req.key)
        .ok_or_else(|| S3Error::no_such_upload(&id))?;
    let _guard = op_lock.lock().await;
    if bucket.remove_upload(&id, &req.key) {
        Ok(empty_response(StatusCode::NO_CONTENT))
    } else {
        Err(S3Error::no_such_upload(&id))
    }
}

/// `GET ?uploadId=ID&max-parts=&part-number-marker=`.
pub fn list_parts(state: &State, req: &Req) -> HResult {
    let bucket = bucket_of(state, &req.bucket)?;
    let id = upload_id(req)?;
    let url = url_encoding(req)?;
    let max = page_size(req, "max-parts", MAX_PARTS_LISTED, MAX_PARTS_LISTED)?;
    let marker: u32 = match req.query.get_nonempty("part-number-marker") {
        None => 0,
        Some(v) => v.parse().map_err(|_| {
            S3Error::invalid_argument("part-number-marker must be an integer.")
                .with("ArgumentName", "part-number-marker")
                .with("ArgumentValue", v.to_string())
        })?,
    };
    let (info, _) = bucket
        .upload_info(&id, &req.key)
        .ok_or_else(|| S3Error::no_such_upload(&id))?;
    let parts = bucket
        .parts(&id, &req.key)
        .ok_or_else(|| S3Error::no_such_upload(&id))?;
    let after: Vec<_> = parts.iter().filter(|p| p.meta.number > marker).collect();
    let truncated = after.len() > max;
    let page = &after[..after.len().min(max)];
    let next = page.last().map(|p| p.meta.number).unwrap_or(0);

    let result = ListPartsResult {
        xmlns: Some(S3_NS.into()),
        bucket: Some(bucket.name.clone()),
        key: Some(enc(&info.key, url)),
        upload_id: Some(id.clone()),
        initiator: owner(),
        owner: owner(),
        storage_class: Some(
            info.attrs
                .storage_class
                .clone()
                .unwrap_or_else(|| "STANDARD".into()),
        ),
        part_number_marker: Some(marker.to_string()),
        next_part_number_marker: Some(next.to_string()),
        max_parts: Some(count(max)),
        is_truncated: truncated,
        encoding_type: url.then(|| "url".into()),
        parts: page
            .iter()
            .map(|p| PartEntry {
                part_number: p.meta.number,
                last_modified: Some(iso(p.meta.last_modified_ms)),
                etag: etag(&p.meta.md5),
                size: p.meta.size,
                crc64: Some(p.meta.crc64),
            })
            .collect(),
    };
    xml_response(StatusCode::OK, &result)
}

/// `GET /bucket?uploads&prefix=&delimiter=&key-marker=&upload-id-marker=&max-uploads=`.
/// Uploads are ordered by key, then initiation (upload ids are time-ordered).
pub fn list_uploads(state: &State, req: &Req) -> HResult {
    let bucket = bucket_of(state, &req.bucket)?;
    let url = url_encoding(req)?;
    let max = page_size(req, "max-uploads", MAX_KEYS, MAX_KEYS)?;
    let prefix = req.query.get("prefix").unwrap_or("");
    let delimiter = req.query.get_nonempty("delimiter");
    let key_marker = req.query.get("key-marker").unwrap_or("");
    let id_marker = req
        .query
        .get_nonempty("upload-id-marker")
        .filter(|_| !key_marker.is_empty());

    let mut all: Vec<(String, String, i64, Option<String>)> = bucket.with_uploads(|ups| {
        ups.values()
            .filter(|u| u.info.key.starts_with(prefix))
            .map(|u| {
                (
                    u.info.key.clone(),
                    u.info.id.clone(),
                    u.info.initiated_ms,
                    u.info.attrs.storage_class.clone(),
                )
            })
            .collect()
    });
    all.sort();
    // Position after the markers.
    let start = match id_marker {
        Some(idm) => all
            .iter()
            .position(|(k, id, _, _)| k == key_marker && id == idm)
            .map(|i| i + 1)
            .unwrap_or_else(|| all.partition_point(|(k, _, _, _)| k.as_str() <= key_marker)),
        None => all.partition_point(|(k, _, _, _)| k.as_str() <= key_marker),
    };
    let mut uploads = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut truncated = false;
    let mut last: Option<(String, Option<String>)> = None;
    for (k, id, initiated, sc) in &all[start..] {
        let rolled = delimiter.and_then(|d| {
            k[prefix.len()..]
                .find(d)
                .map(|i| k[..prefix.len() + i + d.len()].to_string())
        });
        if let Some(cp) = &rolled {
            // Keys are sorted, so a prefix's uploads are contiguous.
            if cp.as_str() <= key_marker || prefixes.last() == Some(cp) {
                continue;
            }
        }
        if uploads.len() + prefixes.len() == max {
            truncated = true;
            break;
        }
        match rolled {
            Some(cp) => {
                prefixes.push(cp.clone());
                last = Some((cp, None));
            }
            None => {
                uploads.push((k.clone(), *initiated, id.clone(), sc.clone()));
                last = Some((k.clone(), Some(id.clone())));
            }
        }
    }

    let next = last.filter(|_| truncated);
    let result = ListMultipartUploadsResult {
        xmlns: Some(S3_NS.into()),
        bucket: Some(bucket.name.clone()),
        key_marker: Some(enc(key_marker, url)),
        upload_id_marker: Some(id_marker.unwrap_or("").to_string()),
        next_key_marker: next.as_ref().map(|(k, _)| enc(k, url)),
        next_upload_id_marker: next.map(|(_, id)| id.unwrap_or_default()),
        delimiter: delimiter.map(|d| enc(d, url)),
        prefix: Some(enc(prefix, url)),
        max_uploads: Some(count(max)),
        is_truncated: truncated,
        encoding_type: url.then(|| "url".into()),
        uploads: uploads
            .into_iter()
            .map(|(k, initiated, id, sc)| UploadEntry {
                key: enc(&k, url),
                upload_id: id,
                initiator: owner(),
                owner: owner(),
                storage_class: Some(sc.unwrap_or_else(|| "STANDARD".into())),
                initiated: Some(iso(initiated)),
            })
            .collect(),
        common_prefixes: prefixes
            .iter()
            .map(|p| CommonPrefix {
                prefix: enc(p, url),
            })
            .collect(),
    };
    xml_response(StatusCode::OK, &result)
}
