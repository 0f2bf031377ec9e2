//! Move = server-side copy + delete of the source. Above `multipartcopythresholdsize`
//! the copy is a multipart copy, several parts in flight, so objects over 5 GB move.
use ks3_proto::encode::encode_key;

use super::multipart::{parse_crc, CompleteError, Part};
use super::{Driver, ObjectMeta};
use crate::client::{AfterBatch, Call, MAX_XML};
use crate::config::MAX_PARTS;
use crate::error::DriverError;
use crate::http::Transport;
use crate::path::FilePath;
use ks3_proto::xml;

impl<T: Transport> Driver<T> {
    pub fn mv(&self, src: &FilePath, dst: &FilePath) -> Result<(), DriverError> {
        self.mv_releasing(src, dst, true)
    }

    /// `mv` to a destination no writer is ever opened at (the caller's promise:
    /// `fast-path.move-to-writerless`): no closed writer's tail or upload can be there, so
    /// the destination is not cleared of them (one round trip and two requests less).
    pub fn mv_to_writerless(&self, src: &FilePath, dst: &FilePath) -> Result<(), DriverError> {
        self.mv_releasing(src, dst, false)
    }

    fn mv_releasing(
        &self,
        src: &FilePath,
        dst: &FilePath,
        release_dst: bool,
    ) -> Result<(), DriverError> {
        let (src_key, dst_key) = (self.keys.key(src), self.keys.key(dst));
        let info = self
            .head_meta(&src_key, src)?
            .ok_or_else(|| DriverError::PathNotFound(src.to_string()))?;
        if src_key == dst_key {
            return Ok(());
        }
        if info.size <= self.config().multipart_copy_threshold {
            self.copy_object(&src_key, &dst_key, info.crc, dst)?;
        } else {
            self.multipart_copy(&src_key, &dst_key, &info, dst)?;
        }
        // Neither path keeps an upload in progress: the destination holds the moved
        // content, the source nothing. Two round trips: the destination's uploads and
        // tail, then the source with its uploads and tail (the source goes only once the
        // destination is settled, so a failure leaves it to move again).
        if release_dst {
            self.release_uploads(&dst_key, dst)?;
        }
        self.release_uploads_and(&src_key, src, true)
    }

    pub(crate) fn copy_source(&self, key: &str) -> String {
        format!("/{}/{}", self.config().bucket, encode_key(key))
    }

    /// Server-side copy; KS3's CRC-64 of the copy must be the source's.
    fn copy_object(
        &self,
        src_key: &str,
        dst_key: &str,
        src_crc: Option<u64>,
        dst: &str,
    ) -> Result<(), DriverError> {
        let call = self.object_headers(
            Call::new("PUT", dst_key, dst).header("x-kss-copy-source", self.copy_source(src_key)),
        );
        let resp = self.client.send(&call.buffered(MAX_XML))?.resp;
        let crc_header = resp.header("x-kss-checksum-crc64ecma").map(str::to_string);
        // KS3 can answer 200 and put an <Error> in the body; read_xml turns that into an error.
        let result: xml::CopyObjectResult = self.client.read_xml(resp, dst)?;
        let got = crc_header.or(result.crc64.map(|c| c.to_string()));
        self.check_crc(got.as_deref(), src_crc, dst, "copied object")
    }

    fn multipart_copy(
        &self,
        src_key: &str,
        dst_key: &str,
        src: &ObjectMeta,
        dst: &str,
    ) -> Result<(), DriverError> {
        let upload_id = self.initiate(dst_key, dst)?;
        let result = self
            .copy_parts(src_key, dst_key, src.size, &upload_id, dst)
            .and_then(|parts| {
                self.complete(dst_key, &upload_id, &parts, dst)
                    .map_err(|e| match e {
                        CompleteError::Refused(e) | CompleteError::Failed(e) => e,
                    })
            });
        let completed = match result {
            Ok(c) => c,
            Err(e) => {
                // Leave nothing behind: a failed copy must not keep billing for its parts.
                let _ = self.abort(dst_key, &upload_id, dst);
                return Err(e);
            }
        };
        // The parts' CRCs are KS3's; the whole must still be the source's. When KS3's
        // answer to the Complete carried the whole object's CRC-64 and it is the source's,
        // that is proven already (and the size is the source's: the parts' ranges cover it
        // exactly), so no HEAD is needed: one round trip less per large move.
        if completed.crc.is_some() && completed.crc == src.crc {
            return Ok(());
        }
        let copied = self.head_meta(dst_key, dst)?;
        let got = copied.as_ref().and_then(|m| m.crc).map(|c| c.to_string());
        self.check_crc(got.as_deref(), src.crc, dst, "copied object")?;
        match copied {
            Some(m) if m.size == src.size => Ok(()),
            _ => Err(DriverError::integrity(
                dst,
                "the multipart copy did not produce an object of the source's size",
            )),
        }
    }

    fn copy_parts(
        &self,
        src_key: &str,
        dst_key: &str,
        size: u64,
        upload_id: &str,
        dst: &str,
    ) -> Result<Vec<Part>, DriverError> {
        // Within KS3's 10 000 parts whatever the size (parts stay ≤ 5 GB up to 50 TB).
        let chunk = self
            .config()
            .multipart_copy_chunk_size
            .max(size.div_ceil(u64::from(MAX_PARTS)));
        let source = self.copy_source(src_key);
        let mut ranges: Vec<(u32, u64, u64)> = Vec::new();
        let mut first = 0u64;
        while first < size {
            let last = first.saturating_add(chunk).min(size) - 1;
            let n = u32::try_from(ranges.len() + 1).map_err(|_| {
                DriverError::other(dst, "the multipart copy would need too many parts")
            })?;
            ranges.push((n, first, last));
            first = last + 1;
        }
        let mut parts = Vec::with_capacity(ranges.len());
        let window_len = usize::try_from(self.config().multipart_copy_max_concurrency)
            .unwrap_or(1)
            .max(1);
        for window in ranges.chunks(window_len) {
            let calls: Vec<Call<'_>> = window
                .iter()
                .map(|(n, first, last)| {
                    Call::new("PUT", dst_key, dst)
                        .query("partNumber", n.to_string())
                        .query("uploadId", upload_id)
                        .header("x-kss-copy-source", source.clone())
                        .header("x-kss-copy-source-range", format!("bytes={first}-{last}"))
                })
                .collect();
            for ((n, first, last), result) in window
                .iter()
                .zip(self.client.send_all(&calls, AfterBatch::Resend))
            {
                let resp = result?.resp;
                // KS3 sends the part's CRC-64 as a header (as for every part), some
                // servers in the XML too.
                let crc_header = resp.header("x-kss-checksum-crc64ecma").map(str::to_string);
                let copied: xml::CopyPartResult = self.client.read_xml(resp, dst)?;
                if copied.etag.is_empty() {
                    return Err(DriverError::io(
                        dst,
                        format!("upload part copy {n} returned an empty ETag"),
                    ));
                }
                let crc = match crc_header {
                    Some(v) => Some(parse_crc(&v, dst, &format!("part copy {n}"))?),
                    None => copied.crc64,
                };
                let etag = copied.etag;
                parts.push(Part {
                    number: *n,
                    etag,
                    size: last - first + 1,
                    crc,
                });
            }
        }
        Ok(parts)
    }
}
