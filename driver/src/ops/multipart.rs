//! KS3 multipart-upload calls, one function per API call.
use super::Driver;
use crate::client::{crc64, Call};
use crate::error::DriverError;
use crate::http::Transport;
use crate::xml;

/// A part KS3 holds for an upload.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub number: u32,
    pub etag: String,
    pub size: u64,
}

/// An upload in progress, as List Multipart Uploads reports it.
pub(crate) struct Upload {
    pub upload_id: String,
    pub initiated: String,
}

impl<T: Transport> Driver<T> {
    pub(crate) fn initiate(&self, key: &str, p: &str) -> Result<String, DriverError> {
        let call = self.object_headers(Call::new("POST", key, p).subresource("uploads").body(
            &[],
            "application/octet-stream",
            false,
        ));
        let node = self.client.read_xml(
            self.client.call(&call, &[])?,
            p,
            "InitiateMultipartUploadResult",
        )?;
        let id = node.text_of("UploadId");
        if id.is_empty() {
            return Err(DriverError::io(
                p,
                "initiate multipart upload returned no UploadId",
            ));
        }
        Ok(id.to_string())
    }

    /// Uploads one part with Content-MD5; a CRC-64 mismatch is retried like a network error.
    pub(crate) fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        data: &[u8],
        p: &str,
    ) -> Result<Part, DriverError> {
        let call = Call::new("PUT", key, p)
            .query("partNumber", number.to_string())
            .query("uploadId", upload_id)
            .body(data, "application/octet-stream", true);
        let expected = crc64(data);
        let mut attempts = 0;
        loop {
            let resp = self.client.call(&call, &[])?;
            match self.client.verify_crc(&resp, expected, p) {
                Ok(()) => {
                    let etag = resp.header("etag").unwrap_or("").to_string();
                    if etag.is_empty() {
                        return Err(DriverError::io(
                            p,
                            format!("upload of part {number} returned no ETag"),
                        ));
                    }
                    return Ok(Part {
                        number,
                        etag,
                        size: data.len() as u64,
                    });
                }
                Err(e) if attempts >= self.config().max_retries => return Err(e),
                Err(_) => attempts += 1,
            }
        }
    }

    /// Completes the upload; returns KS3's CRC-64 of the object if it sent one.
    pub(crate) fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        p: &str,
    ) -> Result<Option<u64>, DriverError> {
        let body = xml::complete_body(parts);
        let call = Call::new("POST", key, p).query("uploadId", upload_id).body(
            body.as_bytes(),
            "text/xml",
            false,
        );
        let resp = self.client.call(&call, &[])?;
        let header_crc = resp
            .header("x-kss-checksum-crc64ecma")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let node = self
            .client
            .read_xml(resp, p, "CompleteMultipartUploadResult")?;
        let xml_crc = node.text_of("ChecksumCRC64ECMA").trim().parse::<u64>().ok();
        Ok(header_crc.or(xml_crc))
    }

    pub(crate) fn abort(&self, key: &str, upload_id: &str, p: &str) -> Result<(), DriverError> {
        let resp = self.client.call(
            &Call::new("DELETE", key, p).query("uploadId", upload_id),
            &[404],
        )?;
        // An upload that is already gone is what abort wanted.
        let _ = resp;
        Ok(())
    }

    /// Every part of an upload, following the part-number marker page by page.
    pub(crate) fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
        p: &str,
    ) -> Result<Vec<Part>, DriverError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut call = Call::new("GET", key, p)
                .query("uploadId", upload_id)
                .query("max-parts", "1000");
            if let Some(m) = &marker {
                call = call.query("part-number-marker", m.clone());
            }
            let node = self
                .client
                .read_xml(self.client.call(&call, &[])?, p, "ListPartsResult")?;
            for part in node.children("Part") {
                let number = part.text_of("PartNumber").trim().parse::<u32>();
                let size = part.text_of("Size").trim().parse::<u64>();
                match (number, size) {
                    (Ok(number), Ok(size)) => parts.push(Part {
                        number,
                        etag: part.text_of("ETag").to_string(),
                        size,
                    }),
                    _ => {
                        return Err(DriverError::io(
                            p,
                            "list parts response has a part without a valid number or size",
                        ))
                    }
                }
            }
            if node.text_of("IsTruncated").trim() != "true" {
                break;
            }
            let next = node.text_of("NextPartNumberMarker").trim().to_string();
            if next.is_empty() || Some(&next) == marker.as_ref() {
                return Err(DriverError::io(
                    p,
                    "list parts is truncated but its marker does not advance",
                ));
            }
            marker = Some(next);
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    /// Uploads in progress for exactly `key`, following key and upload-id markers.
    pub(crate) fn list_uploads(&self, key: &str, p: &str) -> Result<Vec<Upload>, DriverError> {
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut call = Call::new("GET", "", p)
                .subresource("uploads")
                .query("prefix", key)
                .query("max-uploads", "1000");
            if let Some((k, u)) = &markers {
                call = call
                    .query("key-marker", k.clone())
                    .query("upload-id-marker", u.clone());
            }
            let node = self.client.read_xml(
                self.client.call(&call, &[])?,
                p,
                "ListMultipartUploadsResult",
            )?;
            for u in node.children("Upload") {
                if u.text_of("Key") == key {
                    out.push(Upload {
                        upload_id: u.text_of("UploadId").to_string(),
                        initiated: u.text_of("Initiated").to_string(),
                    });
                }
            }
            if node.text_of("IsTruncated").trim() != "true" {
                break;
            }
            let next = (
                node.text_of("NextKeyMarker").to_string(),
                node.text_of("NextUploadIdMarker").to_string(),
            );
            if next.0.is_empty() || Some(&next) == markers.as_ref() {
                return Err(DriverError::io(
                    p,
                    "list multipart uploads is truncated but its markers do not advance",
                ));
            }
            markers = Some(next);
        }
        Ok(out)
    }
}
