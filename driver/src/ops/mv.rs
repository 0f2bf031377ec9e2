//! Move = server-side copy + delete of the source. Above `multipartcopythresholdsize`
//! the copy is a multipart copy, several parts in flight, so objects over 5 GB move.
use ks3_proto::encode::encode_key;

use super::Driver;
use crate::client::Call;
use crate::error::DriverError;
use crate::http::Transport;
use crate::path;

impl<T: Transport> Driver<T> {
    pub fn mv(&self, src: &str, dst: &str) -> Result<(), DriverError> {
        path::check(src)?;
        path::check(dst)?;
        let (src_key, dst_key) = (self.keys.key(src), self.keys.key(dst));
        let info = self
            .head(&src_key, src)?
            .ok_or_else(|| DriverError::PathNotFound(src.to_string()))?;
        if src_key == dst_key {
            return Ok(());
        }
        if info.size <= self.config().multipart_copy_threshold {
            self.copy_object(&src_key, &dst_key, dst)?;
        } else {
            self.multipart_copy(&src_key, &dst_key, info.size, dst)?;
        }
        self.delete_object(&src_key, src)?;
        Ok(())
    }

    pub(crate) fn copy_source(&self, key: &str) -> String {
        format!("/{}/{}", self.config().bucket, encode_key(key))
    }

    fn copy_object(&self, src_key: &str, dst_key: &str, dst: &str) -> Result<(), DriverError> {
        let call = self.object_headers(
            Call::new("PUT", dst_key, dst).header("x-kss-copy-source", self.copy_source(src_key)),
        );
        let resp = self.client.call(&call, &[])?;
        // KS3 can answer 200 and put an <Error> in the body; read_xml turns that into an error.
        self.client
            .read_xml(resp, dst, "CopyObjectResult")
            .map(|_| ())
    }

    fn multipart_copy(
        &self,
        src_key: &str,
        dst_key: &str,
        size: u64,
        dst: &str,
    ) -> Result<(), DriverError> {
        let upload_id = self.initiate(dst_key, dst)?;
        match self.copy_parts(src_key, dst_key, size, &upload_id, dst) {
            Ok(parts) => match self.complete(dst_key, &upload_id, &parts, dst) {
                Ok(_) => Ok(()),
                Err(e) => {
                    let _ = self.abort(dst_key, &upload_id, dst);
                    Err(e)
                }
            },
            Err(e) => {
                // Leave nothing behind: a failed copy must not keep billing for its parts.
                let _ = self.abort(dst_key, &upload_id, dst);
                Err(e)
            }
        }
    }

    fn copy_parts(
        &self,
        src_key: &str,
        dst_key: &str,
        size: u64,
        upload_id: &str,
        dst: &str,
    ) -> Result<Vec<(u32, String)>, DriverError> {
        let chunk = self.config().multipart_copy_chunk_size;
        let source = self.copy_source(src_key);
        let ranges: Vec<(u32, u64, u64)> = (0..size.div_ceil(chunk))
            .map(|i| (i as u32 + 1, i * chunk, ((i + 1) * chunk).min(size) - 1))
            .collect();
        let mut parts = Vec::with_capacity(ranges.len());
        for window in ranges.chunks(self.config().multipart_copy_max_concurrency as usize) {
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
            for ((n, _, _), result) in window.iter().zip(self.client.call_all(&calls)) {
                let node = self.client.read_xml(result?, dst, "CopyPartResult")?;
                let etag = node.text_of("ETag").to_string();
                if etag.is_empty() {
                    return Err(DriverError::io(
                        dst,
                        format!("upload part copy {n} returned no ETag"),
                    ));
                }
                parts.push((*n, etag));
            }
        }
        Ok(parts)
    }
}
