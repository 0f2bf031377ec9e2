//! KS3 multipart-upload calls, one function per API call, and a Complete that is never
//! repeated blindly.
use std::sync::Arc;

use ks3_proto::digest::{hex, md5};
use ks3_proto::Crc64;

use super::Driver;
use crate::client::{Call, Failed, MAX_XML};
use crate::config::MAX_PARTS;
use crate::error::DriverError;
use crate::http::{Response, Transport, TransportError};
use ks3_proto::xml;

/// A part KS3 holds for an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub number: u32,
    pub etag: String,
    pub size: u64,
    /// CRC-64 of the part's bytes, when the driver knows it (it sent them, or saved it).
    pub crc: Option<u64>,
}

/// A part on its way to KS3: its bytes, kept until KS3 confirms them (a part is sent
/// again from them), and their CRC-64.
pub(crate) struct PartJob {
    pub number: u32,
    pub data: Arc<Vec<u8>>,
    pub crc: u64,
    /// Retries so far.
    pub attempt: u32,
    /// Send `Content-MD5`: KS3 sent neither a CRC-64 nor an MD5 ETag to check the part by.
    pub md5: bool,
}

/// What became of one attempt at a part.
pub(crate) enum PartOutcome {
    /// KS3 holds the part, checked.
    Done(Part),
    /// Send it again (after the backoff of its attempt when `backoff`).
    Again { backoff: bool },
    /// It failed for good (or after the retries); its bytes are still in the job.
    Failed(DriverError),
}

pub(crate) fn too_many_parts(p: &str, part_size: usize) -> DriverError {
    DriverError::InvalidState(format!(
        "cannot write {p}: the upload would need more than KS3's {MAX_PARTS} parts; \
         at {part_size} bytes per part an object holds at most {} bytes, raise `chunksize`",
        (part_size as u64).saturating_mul(u64::from(MAX_PARTS))
    ))
}

/// An upload in progress, as List Multipart Uploads reports it.
/// Where a listing of uploads goes on: the key marker and the upload-id marker.
pub(crate) type UploadMarkers = (String, String);

pub(crate) struct Upload {
    pub key: String,
    pub upload_id: String,
    pub initiated: String,
}

/// Why a Complete failed.
pub(crate) enum CompleteError {
    /// KS3 refused the part list (`InvalidPart`, `InvalidPartOrder`): repeating it cannot
    /// succeed, and the upload cannot be completed as it stands.
    Refused(DriverError),
    /// Anything else (network, 5xx after retries, the upload gone): the upload, if it still
    /// exists, is intact.
    Failed(DriverError),
}

/// What the object a Complete makes must look like, to recognise it when the answer to
/// the Complete was lost.
/// A CRC-64 as KS3 sends it (`x-kss-checksum-crc64ecma`, decimal), for the `what` of `p`.
pub(crate) fn parse_crc(raw: &str, p: &str, what: &str) -> Result<u64, DriverError> {
    raw.trim().parse::<u64>().map_err(|_| {
        DriverError::io(
            p,
            format!("KS3 sent an unreadable CRC-64 `{raw}` for the {what}"),
        )
    })
}

/// What a successful Complete proved of the object it made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Completed {
    /// The CRC-64 of the whole object, when KS3 reported one with its answer and it was the
    /// parts' combined: the object is then known without a HEAD. `None` when KS3 sent none
    /// or the completion was recognised afterwards (a lost answer).
    pub(crate) crc: Option<u64>,
}

impl Completed {
    const UNCONFIRMED: Completed = Completed { crc: None };
}

struct Expected {
    size: u64,
    crc: Option<u64>,
    etag: Option<String>,
}

impl Expected {
    fn of(parts: &[Part]) -> Expected {
        let mut size = 0u64;
        let mut crc = Some(0u64);
        let mut md5s = Vec::with_capacity(parts.len() * 16);
        let mut etags_known = true;
        for p in parts {
            size = size.saturating_add(p.size);
            crc = match (crc, p.crc) {
                (Some(acc), Some(c)) => Some(Crc64::combine(acc, c, p.size)),
                _ => None,
            };
            match hex_md5(&p.etag) {
                Some(m) => md5s.extend_from_slice(&m),
                None => etags_known = false,
            }
        }
        // S3's multipart ETag: the MD5 of the parts' binary MD5s, then `-<parts>`.
        let etag = etags_known.then(|| format!("{}-{}", hex(&md5(&md5s)), parts.len()));
        Expected { size, crc, etag }
    }
}

/// The 16 bytes of an ETag that is a quoted (or bare) hex MD5.
fn hex_md5(etag: &str) -> Option<[u8; 16]> {
    let h = etag.trim().trim_matches('"');
    if h.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A part's ETag is the MD5 of its bytes: true when `etag` names exactly `data`.
pub(crate) fn etag_is_md5_of(etag: &str, data: &[u8]) -> bool {
    hex_md5(etag) == Some(md5(data))
}

impl<T: Transport> Driver<T> {
    /// Starts a multipart upload at `key`. When an earlier attempt failed, KS3 may have
    /// started an upload for it all the same (its answer lost or cut): nothing names
    /// such an upload, so it is aborted here, with every other upload at the key that
    /// began no later than this one (see [`Driver::uploads_before`]).
    pub(crate) fn initiate(&self, key: &str, p: &str) -> Result<String, DriverError> {
        let call = self.object_headers(Call::new("POST", key, p).subresource("uploads").body(
            &[],
            "application/octet-stream",
            false,
        ));
        let sent = self.client.send(&call.buffered(MAX_XML))?;
        let (resp, failed_attempts) = (sent.resp, sent.failed_attempts);
        let result: xml::InitiateMultipartUploadResult = self.client.read_xml(resp, p)?;
        if result.upload_id.is_empty() {
            return Err(DriverError::io(
                p,
                "initiate multipart upload returned an empty UploadId",
            ));
        }
        if failed_attempts > 0 {
            // Best effort: the upload that matters exists; what is left here goes at the
            // commit or cancel, a later `writer(path, false)`, `delete` or `mv`.
            for id in self.uploads_before(key, &result.upload_id, p) {
                let _ = self.abort(key, &id, p);
            }
        }
        Ok(result.upload_id)
    }

    /// Uploads at `key` that began no later than upload `id`, other than it: left by an
    /// initiate whose answer was lost and that was then retried, or by older writers a
    /// newer owner of the path superseded. Nothing can resume them once `id` exists, is
    /// committed or cancelled. Best effort: empty when the listing fails.
    pub(crate) fn uploads_before(&self, key: &str, id: &str, p: &str) -> Vec<String> {
        let Ok(uploads) = self.uploads_of(key, p) else {
            return Vec::new();
        };
        let started = |u: &Upload| ks3_proto::date::parse_iso8601(&u.initiated);
        let Some(ours) = uploads.iter().find(|u| u.upload_id == id).and_then(started) else {
            return Vec::new();
        };
        uploads
            .iter()
            .filter(|u| u.upload_id != id && started(u).is_some_and(|t| t <= ours))
            .map(|u| u.upload_id.clone())
            .collect()
    }

    /// The request that uploads `job` as a part of upload `upload_id`.
    fn part_call<'a>(
        &self,
        key: &'a str,
        upload_id: &str,
        job: &'a PartJob,
        p: &'a str,
    ) -> Call<'a> {
        Call::new("PUT", key, p)
            .query("partNumber", job.number.to_string())
            .query("uploadId", upload_id)
            .body(&job.data, "application/octet-stream", job.md5)
    }

    /// Starts the upload of `job` without waiting for it (see [`Transport::start`]).
    pub(crate) fn start_part(
        &self,
        key: &str,
        upload_id: &str,
        job: &PartJob,
        p: &str,
    ) -> Result<T::Flight, DriverError> {
        if job.number > MAX_PARTS {
            return Err(too_many_parts(p, job.data.len()));
        }
        let call = self.part_call(key, upload_id, job, p);
        self.client.start(&call, Arc::clone(&job.data))
    }

    /// Judges the answer to one attempt at `job`: the part KS3 now holds, or whether (and
    /// how) to send it again. KS3's CRC-64 of what it stored must be the driver's; when it
    /// sends none, the ETag must be the MD5 of the bytes, and a part whose ETag is no MD5
    /// is sent again with `Content-MD5`, for KS3 to check. A mismatch is retried like a
    /// network error.
    pub(crate) fn part_outcome(
        &self,
        key: &str,
        upload_id: &str,
        job: &mut PartJob,
        sent: Result<Response, TransportError>,
        p: &str,
    ) -> PartOutcome {
        let number = job.number;
        let judged = {
            let call = self.part_call(key, upload_id, job, p);
            self.client.judge(&call, sent, job.attempt)
        };
        let failed = match judged {
            Ok(resp) => {
                let etag = resp.header("etag").unwrap_or("").to_string();
                if etag.is_empty() {
                    return PartOutcome::Failed(DriverError::io(
                        p,
                        format!("upload of part {number} returned no ETag"),
                    ));
                }
                let verified = match resp.header("x-kss-checksum-crc64ecma") {
                    Some(_) => self.client.verify_crc(&resp, job.crc, p),
                    None if job.md5 => Ok(()),
                    None if hex_md5(&etag).is_none() => {
                        // Nothing to compare here: let KS3 check the bytes itself.
                        job.md5 = true;
                        return PartOutcome::Again { backoff: false };
                    }
                    None if etag_is_md5_of(&etag, &job.data) => Ok(()),
                    None => Err(DriverError::integrity(
                        p,
                        format!("integrity check failed: KS3's ETag of part {number} is {etag}, not the MD5 of the data the driver sent"),
                    )),
                };
                match verified {
                    Ok(()) => {
                        return PartOutcome::Done(Part {
                            number,
                            etag,
                            size: job.data.len() as u64,
                            crc: Some(job.crc),
                        })
                    }
                    Err(e) => Failed {
                        error: e,
                        retryable: true,
                    },
                }
            }
            Err(f) => f,
        };
        if failed.retryable && self.client.retry_policy().may_retry(job.attempt) {
            job.attempt += 1;
            PartOutcome::Again { backoff: true }
        } else {
            PartOutcome::Failed(failed.error)
        }
    }

    /// Uploads `job` and waits for it, retrying as [`part_outcome`](Self::part_outcome)
    /// says.
    pub(crate) fn upload_part_now(
        &self,
        key: &str,
        upload_id: &str,
        mut job: PartJob,
        p: &str,
    ) -> Result<Part, DriverError> {
        loop {
            let flight = self.start_part(key, upload_id, &job, p)?;
            let sent = self.client.transport.finish(flight);
            match self.part_outcome(key, upload_id, &mut job, sent, p) {
                PartOutcome::Done(part) => return Ok(part),
                PartOutcome::Failed(e) => return Err(e),
                PartOutcome::Again { backoff } => {
                    if backoff {
                        self.client.backoff(job.attempt);
                    }
                }
            }
        }
    }

    /// Completes the upload. Complete is not idempotent (a repeat of one that succeeded
    /// answers `NoSuchUpload`), so before every retry, and on `NoSuchUpload`, the driver
    /// looks at the key: an object with the expected size, CRC-64 and ETag means an
    /// earlier attempt did complete it. KS3's CRC-64 of the result is checked against the
    /// one combined from the parts.
    pub(crate) fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[Part],
        p: &str,
    ) -> Result<Completed, CompleteError> {
        let request = xml::CompleteMultipartUpload {
            parts: parts
                .iter()
                .map(|x| xml::CompletePart {
                    part_number: x.number,
                    etag: x.etag.clone(),
                    crc64: x.crc,
                })
                .collect(),
        };
        let body = xml::to_xml(&request)
            .map_err(|e| CompleteError::Failed(DriverError::io(p, e.to_string())))?;
        let call = Call::new("POST", key, p).query("uploadId", upload_id).body(
            body.as_bytes(),
            "text/xml",
            false,
        );
        let expected = Expected::of(parts);
        let policy = self.client.retry_policy();
        let mut attempt = 0;
        loop {
            let outcome = self
                .client
                .send(&call.clone().once(attempt))
                .map(|sent| sent.resp)
                .map_err(|f| (f.error, f.retryable))
                .and_then(|resp| {
                    // KS3 can answer 200 with an <Error> inside.
                    let crc_header = resp.header("x-kss-checksum-crc64ecma").map(str::to_string);
                    self.client
                        .read_xml::<xml::CompleteMultipartUploadResult>(resp, p)
                        .map(|result| (result, crc_header))
                        .map_err(|e| {
                            let retryable = matches!(&e, DriverError::Backend(b)
                                if matches!(b.code.as_str(), "InternalError" | "SlowDown" | "ServiceUnavailable" | "RequestTimeout"));
                            (e, retryable)
                        })
                });
            let err = match outcome {
                Ok((result, crc_header)) => {
                    let got = crc_header.or(result.crc64.map(|c| c.to_string()));
                    self.check_crc(got.as_deref(), expected.crc, p, "completed object")
                        .map_err(CompleteError::Failed)?;
                    // `check_crc` passed: when both sides had a CRC, they are equal.
                    let crc = expected.crc.filter(|_| got.is_some());
                    return Ok(Completed { crc });
                }
                Err((e, _)) if matches!(e.code(), Some("InvalidPart" | "InvalidPartOrder")) => {
                    // After a lost answer, a retried Complete can meet parts already
                    // consumed by the first one.
                    if attempt > 0 && self.completed_as_expected(key, &expected, p) {
                        return Ok(Completed::UNCONFIRMED);
                    }
                    return Err(CompleteError::Refused(e));
                }
                Err((e, _)) if e.code() == Some("NoSuchUpload") => {
                    if self.completed_as_expected(key, &expected, p) {
                        return Ok(Completed::UNCONFIRMED);
                    }
                    return Err(CompleteError::Failed(e));
                }
                Err((e, true)) => e,
                Err((e, false)) => return Err(CompleteError::Failed(e)),
            };
            // Transient: did it happen anyway (a lost response, a timeout after the work)?
            if self.completed_as_expected(key, &expected, p) {
                return Ok(Completed::UNCONFIRMED);
            }
            if !policy.may_retry(attempt) {
                return Err(CompleteError::Failed(err));
            }
            attempt += 1;
            self.client.backoff(attempt);
        }
    }

    /// True when the object at `key` is the one completing `expected` makes: same size,
    /// and a CRC-64 or ETag that matches (at least one must be there to compare).
    fn completed_as_expected(&self, key: &str, expected: &Expected, p: &str) -> bool {
        let Ok(Some(meta)) = self.head_meta(key, p) else {
            return false;
        };
        if meta.size != expected.size {
            return false;
        }
        let crc = match (meta.crc, expected.crc) {
            (Some(a), Some(b)) => Some(a == b),
            _ => None,
        };
        let etag = match (&expected.etag, meta.etag.as_deref()) {
            (Some(want), Some(got)) => Some(got.trim().trim_matches('"') == want),
            _ => None,
        };
        match (crc, etag) {
            (Some(false), _) | (_, Some(false)) => false,
            (Some(true), _) | (_, Some(true)) => true,
            (None, None) => false,
        }
    }

    /// Compares a CRC-64 KS3 reported (`got`, as sent) with the one the driver computed.
    /// Nothing reported: nothing to compare (KS3 documents the header as optional).
    pub(crate) fn check_crc(
        &self,
        got: Option<&str>,
        expected: Option<u64>,
        p: &str,
        what: &str,
    ) -> Result<(), DriverError> {
        let Some(raw) = got else { return Ok(()) };
        let got = parse_crc(raw, p, what)?;
        match expected {
            Some(want) if want != got => Err(DriverError::integrity(
                p,
                format!(
                    "integrity check failed: KS3's CRC-64 of the {what} is {got}, the data the driver sent has {want}"
                ),
            )),
            _ => Ok(()),
        }
    }

    pub(crate) fn abort(&self, key: &str, upload_id: &str, p: &str) -> Result<(), DriverError> {
        // An upload that is already gone (404 NoSuchUpload) is what abort wanted.
        self.client.send(
            &Call::new("DELETE", key, p)
                .query("uploadId", upload_id)
                .accept(&[404]),
        )?;
        Ok(())
    }

    /// Every part of an upload, following the part-number marker page by page; `None` when
    /// the upload does not exist (any more).
    pub(crate) fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
        p: &str,
    ) -> Result<Option<Vec<Part>>, DriverError> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut call = Call::new("GET", key, p)
                .query("uploadId", upload_id)
                .query("max-parts", "1000");
            if let Some(m) = &marker {
                call = call.query("part-number-marker", m.clone());
            }
            let resp = self
                .client
                .send(&call.accept(&[404]).buffered(MAX_XML))?
                .resp;
            if resp.status == 404 {
                let err = self.client.backend_error(resp, p);
                return match err.code.as_str() {
                    "NoSuchUpload" => Ok(None),
                    _ => Err(DriverError::Backend(err)),
                };
            }
            let page: xml::ListPartsResult = self.client.read_xml(resp, p)?;
            for part in page.parts {
                if part.etag.is_empty() {
                    return Err(DriverError::io(
                        p,
                        format!(
                            "list parts response has part {} without an ETag",
                            part.part_number
                        ),
                    ));
                }
                parts.push(Part {
                    number: part.part_number,
                    etag: part.etag,
                    size: part.size,
                    crc: None,
                });
            }
            if parts.len() > MAX_PARTS as usize {
                return Err(DriverError::io(
                    p,
                    "list parts lists more than 10 000 parts",
                ));
            }
            if !page.is_truncated {
                break;
            }
            let next = page
                .next_part_number_marker
                .unwrap_or_default()
                .trim()
                .to_string();
            if next.is_empty() || Some(&next) == marker.as_ref() {
                return Err(DriverError::io(
                    p,
                    "list parts is truncated but its marker does not advance",
                ));
            }
            marker = Some(next);
        }
        parts.sort_by_key(|p| p.number);
        Ok(Some(parts))
    }

    /// The listing of uploads in progress whose key starts with `prefix`, from `markers`
    /// on (one page).
    pub(crate) fn uploads_page_call<'a>(
        prefix: &'a str,
        markers: Option<&(String, String)>,
        p: &'a str,
    ) -> Call<'a> {
        let mut call = Call::new("GET", "", p)
            .subresource("uploads")
            .query("prefix", prefix)
            .query("max-uploads", "1000");
        if let Some((k, u)) = markers {
            call = call
                .query("key-marker", k.clone())
                .query("upload-id-marker", u.clone());
        }
        call.buffered(MAX_XML)
    }

    /// One page of [`Self::uploads_page_call`]: its uploads, and the markers of the next
    /// page when it is truncated (which must advance past `markers`).
    pub(crate) fn read_uploads_page(
        &self,
        resp: Response,
        markers: Option<&(String, String)>,
        p: &str,
    ) -> Result<(Vec<Upload>, Option<UploadMarkers>), DriverError> {
        let page: xml::ListMultipartUploadsResult = self.client.read_xml(resp, p)?;
        let mut out = Vec::with_capacity(page.uploads.len());
        for u in page.uploads {
            if u.key.is_empty() || u.upload_id.is_empty() {
                return Err(DriverError::io(
                    p,
                    "list multipart uploads lists an upload with an empty key or id",
                ));
            }
            out.push(Upload {
                key: u.key,
                upload_id: u.upload_id,
                initiated: u.initiated.unwrap_or_default(),
            });
        }
        if !page.is_truncated {
            return Ok((out, None));
        }
        let next = (
            page.next_key_marker.unwrap_or_default(),
            page.next_upload_id_marker.unwrap_or_default(),
        );
        if next.0.is_empty() || Some(&next) == markers {
            return Err(DriverError::io(
                p,
                "list multipart uploads is truncated but its markers do not advance",
            ));
        }
        Ok((out, Some(next)))
    }

    /// Uploads in progress whose key starts with `prefix`, following key and upload-id
    /// markers.
    pub(crate) fn list_uploads(&self, prefix: &str, p: &str) -> Result<Vec<Upload>, DriverError> {
        let resp = self
            .client
            .send(&Self::uploads_page_call(prefix, None, p))?
            .resp;
        let (first, next) = self.read_uploads_page(resp, None, p)?;
        self.list_uploads_from(prefix, first, next, p)
    }

    /// [`Self::list_uploads`] going on from the pages already read (`out`) at `markers`
    /// (`None`: there are no more).
    pub(crate) fn list_uploads_from(
        &self,
        prefix: &str,
        mut out: Vec<Upload>,
        mut markers: Option<(String, String)>,
        p: &str,
    ) -> Result<Vec<Upload>, DriverError> {
        while let Some(m) = markers {
            let resp = self
                .client
                .send(&Self::uploads_page_call(prefix, Some(&m), p))?
                .resp;
            let (page, next) = self.read_uploads_page(resp, Some(&m), p)?;
            out.extend(page);
            markers = next;
        }
        Ok(out)
    }

    /// Uploads in progress for exactly `key`, oldest first.
    pub(crate) fn uploads_of(&self, key: &str, p: &str) -> Result<Vec<Upload>, DriverError> {
        let mut v: Vec<Upload> = self
            .list_uploads(key, p)?
            .into_iter()
            .filter(|u| u.key == key)
            .collect();
        v.sort_by(|a, b| a.initiated.cmp(&b.initiated));
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::crc64;

    #[test]
    fn expected_multipart_etag_and_crc() {
        let a = vec![1u8; 100];
        let b = vec![2u8; 50];
        let parts = [
            Part {
                number: 1,
                etag: format!("\"{}\"", hex(&md5(&a))),
                size: 100,
                crc: Some(crc64(&a)),
            },
            Part {
                number: 2,
                etag: hex(&md5(&b)),
                size: 50,
                crc: Some(crc64(&b)),
            },
        ];
        let e = Expected::of(&parts);
        assert_eq!(e.size, 150);
        assert_eq!(e.crc, Some(crc64(&[a.clone(), b.clone()].concat())));
        let mut md5s = md5(&a).to_vec();
        md5s.extend_from_slice(&md5(&b));
        assert_eq!(e.etag, Some(format!("{}-2", hex(&md5(&md5s)))));
        assert!(etag_is_md5_of(&parts[0].etag, &a));
        assert!(!etag_is_md5_of(&parts[0].etag, &b));
        assert!(!etag_is_md5_of("\"xyz\"", &a));
        let unknown = Part {
            crc: None,
            etag: "opaque".into(),
            ..parts[1].clone()
        };
        let e = Expected::of(&[parts[0].clone(), unknown]);
        assert_eq!((e.crc, e.etag), (None, None));
    }
}
