//! GET / HEAD / PUT / DELETE / copy of single objects.
use http::{Response, StatusCode};
use ks3_proto::date::parse_http_date;
use ks3_proto::digest::etag;

use super::*;
use crate::body::data_body;
use crate::store::{now_ms, Opened, Sink};
use ks3_proto::xml::CopyObjectResult;

/// The outcome of a `Range` header against an object of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// No (usable) range: the whole object.
    Whole,
    /// Inclusive bounds.
    Part(u64, u64),
    Unsatisfiable,
}

/// Parses `bytes=a-b`, `bytes=a-`, `bytes=-n`. Syntactically invalid or multi-range headers
/// are ignored (whole object), as HTTP prescribes.
pub fn parse_range(h: &str, size: u64) -> RangeSpec {
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return RangeSpec::Whole;
    };
    if spec.contains(',') {
        return RangeSpec::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return RangeSpec::Whole;
        };
        if n == 0 || size == 0 {
            return RangeSpec::Unsatisfiable;
        }
        return RangeSpec::Part(size - n.min(size), size - 1);
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeSpec::Whole;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e,
            _ => return RangeSpec::Whole,
        }
    };
    if start >= size {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Part(start, end.min(size - 1))
}

fn precondition_failed(cond: &str) -> S3Error {
    S3Error::new(
        412,
        "PreconditionFailed",
        "At least one of the preconditions you specified did not hold.",
    )
    .with("Condition", cond.to_string())
}

/// `If-Match`-style conditions against an object: `Ok(true)` = answer 304 Not Modified.
fn conditions(req: &Req, meta: &ObjectMeta, prefix: &str) -> Result<bool, S3Error> {
    let lm = meta.last_modified_ms.div_euclid(1000);
    let h = |n: &str| req.header(&format!("{prefix}{n}"));
    if let Some(v) = h("if-match") {
        if !(v.trim() == "*" || v.split(',').any(|t| etag_eq(t, &meta.etag))) {
            return Err(precondition_failed(&format!("{prefix}If-Match")));
        }
    } else if let Some(t) = h("if-unmodified-since")
        .as_deref()
        .and_then(parse_http_date)
    {
        if lm > t {
            return Err(precondition_failed(&format!("{prefix}If-Unmodified-Since")));
        }
    }
    if let Some(v) = h("if-none-match") {
        if v.trim() == "*" || v.split(',').any(|t| etag_eq(t, &meta.etag)) {
            if prefix.is_empty() {
                return Ok(true);
            }
            return Err(precondition_failed(&format!("{prefix}If-None-Match")));
        }
    } else if let Some(t) = h("if-modified-since").as_deref().and_then(parse_http_date) {
        if lm <= t {
            if prefix.is_empty() {
                return Ok(true);
            }
            return Err(precondition_failed(&format!("{prefix}If-Modified-Since")));
        }
    }
    Ok(false)
}

const RESPONSE_OVERRIDES: &[(&str, &str)] = &[
    ("response-content-type", "content-type"),
    ("response-content-language", "content-language"),
    ("response-expires", "expires"),
    ("response-cache-control", "cache-control"),
    ("response-content-disposition", "content-disposition"),
    ("response-content-encoding", "content-encoding"),
];

pub async fn get_object(state: &State, req: &Req, head: bool) -> HResult {
    let bucket = bucket_of(state, &req.bucket)?;
    let (meta, opened) = bucket.open(&req.key)?;
    if conditions(req, &meta, "")? {
        let mut r = empty_response(StatusCode::NOT_MODIFIED);
        set(&mut r, "etag", &meta.etag);
        set(
            &mut r,
            "last-modified",
            &last_modified(meta.last_modified_ms),
        );
        return Ok(r);
    }
    let size = meta.size;
    let range = match req.header("range") {
        Some(h) => parse_range(&h, size),
        None => RangeSpec::Whole,
    };
    let (status, offset, len) = match range {
        RangeSpec::Whole => (StatusCode::OK, 0, size),
        RangeSpec::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        RangeSpec::Unsatisfiable => {
            return Err(S3Error::new(
                416,
                "InvalidRange",
                "The requested range is not satisfiable",
            )
            .with("RangeRequested", req.header("range").unwrap_or_default())
            .with("ActualObjectSize", size.to_string())
            .with_header("content-range", format!("bytes */{size}")));
        }
    };
    let body = if head {
        crate::body::empty()
    } else {
        data_body(opened, offset, len).await.map_err(S3Error::io)?
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    object_headers(&mut r, &meta);
    set(&mut r, "content-length", &len.to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            &mut r,
            "content-range",
            &format!("bytes {}-{}/{}", offset, offset + len - 1, size),
        );
    } else {
        crc_header(&mut r, meta.crc64);
    }
    for (param, header) in RESPONSE_OVERRIDES {
        if let Some(v) = req.query.get(param) {
            set(&mut r, header, v);
        }
    }
    Ok(r)
}

pub async fn put_object(state: &State, req: &mut Req) -> HResult {
    let bucket = bucket_of(state, &req.bucket)?;
    let len = content_length(req)?;
    if len > state.config.max_put_size {
        return Err(S3Error::entity_too_large(len, state.config.max_put_size));
    }
    let want_md5 = content_md5(req)?;
    let attrs = attrs_from(req)?;
    let mut sink = bucket.sink(len, true).await?;
    receive(&mut req.body, &mut sink, len).await?;
    let md5 = sink.md5();
    if want_md5.is_some_and(|w| w != md5) {
        return Err(S3Error::bad_digest());
    }
    let meta = ObjectMeta {
        key: req.key.clone(),
        size: len,
        etag: etag(&md5),
        crc64: sink.crc64(),
        last_modified_ms: now_ms(),
        attrs,
        parts: None,
    };
    let staged = sink.finish(&meta).await?;
    let meta = bucket.put(meta, staged)?;
    let mut r = empty_response(StatusCode::OK);
    set(&mut r, "etag", &meta.etag);
    set(
        &mut r,
        "last-modified",
        &last_modified(meta.last_modified_ms),
    );
    crc_header(&mut r, meta.crc64);
    if let Some(s) = &meta.attrs.sse {
        set(&mut r, "x-kss-server-side-encryption", s);
    }
    Ok(r)
}

/// DELETE: 204, or 404 `NoSuchKey` for a missing key (KS3's behaviour, unlike S3).
pub fn delete_object(state: &State, req: &Req) -> HResult {
    let bucket = bucket_of(state, &req.bucket)?;
    bucket.delete(&req.key)?;
    Ok(empty_response(StatusCode::NO_CONTENT))
}

/// Appends `len` bytes at `offset` of `src` to `sink`.
pub async fn copy_into(sink: &mut Sink, src: Opened, offset: u64, len: u64) -> Result<(), S3Error> {
    match src {
        Opened::Mem(m) => {
            let pieces = m.range(offset, len);
            if pieces.iter().map(|b| b.len() as u64).sum::<u64>() != len {
                return Err(S3Error::internal(
                    "source data is shorter than its metadata",
                ));
            }
            for b in &pieces {
                sink.write(b).await?;
            }
        }
        Opened::File(f) => {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let mut f = tokio::fs::File::from_std(f);
            f.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(S3Error::io)?;
            let mut left = len;
            let mut buf = vec![0u8; 1 << 20];
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let n = f.read(&mut buf[..want]).await.map_err(S3Error::io)?;
                if n == 0 {
                    return Err(S3Error::internal(
                        "source object file is shorter than its metadata",
                    ));
                }
                sink.write(&buf[..n]).await?;
                left -= n as u64;
            }
        }
    }
    Ok(())
}

/// PUT with `x-kss-copy-source`.
pub async fn copy_object(state: &State, req: &Req) -> HResult {
    let dst = bucket_of(state, &req.bucket)?;
    let (src_bucket, src_key) = copy_source(req)?;
    let directive = req
        .header("x-kss-metadata-directive")
        .unwrap_or_else(|| "COPY".to_string());
    if directive != "COPY" && directive != "REPLACE" {
        return Err(S3Error::invalid_argument("Unknown metadata directive.")
            .with("ArgumentName", "x-kss-metadata-directive")
            .with("ArgumentValue", directive));
    }
    let new_attrs = attrs_from(req)?;
    let src = bucket_of(state, &src_bucket)?;
    let (meta, opened) = src.open(&src_key)?;
    if meta.size > state.config.max_copy_size {
        return Err(S3Error::entity_too_large(
            meta.size,
            state.config.max_copy_size,
        ));
    }
    conditions(req, &meta, "x-kss-copy-source-")?;
    let attrs = if directive == "REPLACE" {
        new_attrs
    } else {
        let mut a = meta.attrs.clone();
        if new_attrs.sse.is_some() {
            a.sse = new_attrs.sse;
        }
        if new_attrs.storage_class.is_some() {
            a.storage_class = new_attrs.storage_class;
        }
        a
    };
    let mut sink = dst.sink(meta.size, false).await?;
    copy_into(&mut sink, opened, 0, meta.size).await?;
    let new = ObjectMeta {
        key: req.key.clone(),
        size: meta.size,
        etag: meta.etag.clone(),
        crc64: meta.crc64,
        last_modified_ms: now_ms(),
        attrs,
        parts: meta.parts,
    };
    let staged = sink.finish(&new).await?;
    let new = dst.put(new, staged)?;
    let mut r = xml_response(
        StatusCode::OK,
        &CopyObjectResult {
            last_modified: Some(iso(new.last_modified_ms)),
            etag: Some(new.etag.clone()),
            crc64: Some(new.crc64),
        },
    )?;
    set(
        &mut r,
        "last-modified",
        &last_modified(new.last_modified_ms),
    );
    crc_header(&mut r, new.crc64);
    if let Some(s) = &new.attrs.sse {
        set(&mut r, "x-kss-server-side-encryption", s);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeSpec::*;
        assert_eq!(parse_range("bytes=0-0", 10), Part(0, 0));
        assert_eq!(parse_range("bytes=2-", 10), Part(2, 9));
        assert_eq!(parse_range("bytes=5-100", 10), Part(5, 9));
        assert_eq!(parse_range("bytes=-3", 10), Part(7, 9));
        assert_eq!(parse_range("bytes=-30", 10), Part(0, 9));
        assert_eq!(parse_range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-2", 10), Whole);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), Whole);
        assert_eq!(parse_range("items=0-1", 10), Whole);
        assert_eq!(parse_range("bytes=x-1", 10), Whole);
    }
}
