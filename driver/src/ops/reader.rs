//! A ranged GET streamed in chunks; a connection that breaks mid-body is resumed with a
//! new ranged GET from where it stopped, pinned with `If-Match` to the object the reader
//! started on, so a replaced object is an error, never a splice of two objects.
//!
//! The bytes come out either through [`FileReader::read`], or as each response's body
//! handed to the caller ([`FileReader::take_body`], for a host that reads the stream
//! itself without a copy through the sandbox) and reported back ([`FileReader::body_done`])
//! with its length and CRC-64, so that resuming and the whole-object check stay here.
use std::sync::Arc;

use ks3_proto::Crc64Pieces;

use super::Driver;
use crate::client::Call;
use crate::error::{DriverError, IoError, IoKind};
use crate::http::{Body, NoBody, Response, Transport};
use crate::path::FilePath;

/// The largest chunk one `read` returns.
pub const MAX_READ: usize = 4 << 20;

pub struct FileReader<T> {
    driver: Arc<Driver<T>>,
    path: String,
    key: String,
    pos: u64,
    /// Where the object ends (from Content-Range / Content-Length).
    end: Option<u64>,
    resp: Option<Response>,
    /// ETag of the object the first response came from.
    etag: Option<String>,
    /// The CRC of a whole-object read so far (bytes read here and bodies the caller
    /// read), and KS3's value for it.
    crc: Option<(Crc64Pieces, u64)>,
    resumes: u32,
    eof: bool,
    /// The current response's body is with the caller (`take_body`), not yet reported.
    taken: bool,
}

impl<T: Transport> Driver<T> {
    pub fn reader(
        self: &Arc<Self>,
        p: &FilePath,
        offset: i64,
    ) -> Result<FileReader<T>, DriverError> {
        let Ok(pos) = u64::try_from(offset) else {
            return Err(DriverError::InvalidOffset {
                path: p.to_string(),
                offset,
            });
        };
        let mut r = FileReader {
            driver: Arc::clone(self),
            path: p.to_string(),
            key: self.keys.key(p),
            pos,
            end: None,
            resp: None,
            etag: None,
            crc: None,
            resumes: 0,
            eof: false,
            taken: false,
        };
        r.open()?;
        Ok(r)
    }
}

impl<T: Transport> FileReader<T> {
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn open(&mut self) -> Result<(), DriverError> {
        let d = Arc::clone(&self.driver);
        let mut call = Call::new("GET", &self.key, &self.path);
        if self.pos > 0 {
            call = call.header("range", format!("bytes={}-", self.pos));
        }
        if let Some(etag) = &self.etag {
            call = call.header("if-match", etag.clone());
        }
        let resp = d.client.send(&call.accept(&[404, 412, 416]))?.resp;
        if (200..300).contains(&resp.status) {
            match (&self.etag, resp.header("etag")) {
                (None, Some(e)) => self.etag = Some(e.to_string()),
                (Some(want), Some(got)) if want != got => {
                    return Err(self.replaced());
                }
                _ => {}
            }
        }
        match resp.status {
            404 if self.etag.is_some() => Err(self.replaced()),
            404 => Err(d.not_found(resp, &self.path)),
            412 => Err(self.replaced()),
            // Offset at or past the end: an empty reader, as distribution expects. A 416
            // for a missing key would have been a 404 first.
            416 => {
                self.eof = true;
                Ok(())
            }
            206 => {
                let total = resp
                    .header("content-range")
                    .and_then(|v| v.rsplit('/').next())
                    .and_then(|t| t.trim().parse::<u64>().ok());
                let start = resp
                    .header("content-range")
                    .and_then(|v| v.trim().strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|s| s.parse::<u64>().ok());
                if start != Some(self.pos) {
                    return Err(DriverError::io(
                        &self.path,
                        "KS3 answered a ranged read with the wrong range",
                    ));
                }
                self.end = total;
                self.resp = Some(resp);
                Ok(())
            }
            _ => {
                let len = resp
                    .header("content-length")
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if self.pos > 0 {
                    // A server that ignored Range sent the whole object: skip to the offset.
                    self.end = len;
                    let mut skip = self.pos;
                    let mut resp = resp;
                    while skip > 0 {
                        let want = usize::try_from(skip.min(1 << 20)).unwrap_or(1 << 20);
                        match resp.body.read(want) {
                            Ok(Some(c)) => {
                                // A body that hands out more than asked would skip past
                                // the offset: refuse it rather than return wrong bytes.
                                skip = u64::try_from(c.len())
                                    .ok()
                                    .and_then(|n| skip.checked_sub(n))
                                    .ok_or_else(|| {
                                        DriverError::io(
                                            &self.path,
                                            "the transport returned more bytes than asked for",
                                        )
                                    })?;
                            }
                            Ok(None) => {
                                self.eof = true;
                                return Ok(());
                            }
                            Err(e) => {
                                return Err(DriverError::transport(
                                    &self.path,
                                    "reading the object",
                                    &e,
                                ))
                            }
                        }
                    }
                    self.resp = Some(resp);
                    return Ok(());
                }
                self.end = len;
                if self.resumes == 0 {
                    self.crc = resp
                        .header("x-kss-checksum-crc64ecma")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|want| (Crc64Pieces::new(), want));
                }
                self.resp = Some(resp);
                Ok(())
            }
        }
    }

    /// Up to `max` bytes; empty at the end.
    pub fn read(&mut self, max: usize) -> Result<Vec<u8>, DriverError> {
        let max = max.clamp(1, MAX_READ);
        self.check_not_taken()?;
        loop {
            if self.eof {
                return Ok(Vec::new());
            }
            let Some(resp) = self.resp.as_mut() else {
                self.open()?;
                continue;
            };
            match resp.body.read(max) {
                Ok(Some(chunk)) if !chunk.is_empty() => {
                    self.pos = self.pos.saturating_add(chunk.len() as u64);
                    if let Some((crc, _)) = self.crc.as_mut() {
                        crc.update(&chunk);
                    }
                    return Ok(chunk);
                }
                Ok(Some(_)) => continue,
                Ok(None) => self.body_ended()?,
                Err(e) if e.retryable() => self.reconnect(e.kind.into(), e.to_string())?,
                Err(e) => return Err(DriverError::transport(&self.path, "reading the object", &e)),
            }
        }
    }

    /// The current response's body, from `position` on, for the caller to read itself;
    /// `None` at the end. [`Self::body_done`] must follow before anything else.
    pub fn take_body(&mut self) -> Result<Option<Box<dyn Body>>, DriverError> {
        self.check_not_taken()?;
        loop {
            if self.eof {
                return Ok(None);
            }
            if let Some(resp) = self.resp.as_mut() {
                self.taken = true;
                return Ok(Some(std::mem::replace(&mut resp.body, Box::new(NoBody))));
            }
            self.open()?;
        }
    }

    /// The caller read `count` bytes of the taken body, with CRC-64 `crc`; the body ended
    /// (`broken` is `None`) or failed. A broken body is resumed by the next read or
    /// `take_body`; at the end, the whole object's CRC is checked.
    pub fn body_done(
        &mut self,
        count: u64,
        crc: u64,
        broken: Option<String>,
    ) -> Result<(), DriverError> {
        if !self.taken {
            return Err(DriverError::InvalidState(format!(
                "reader of {}: no body was taken",
                self.path
            )));
        }
        self.taken = false;
        let pos = self.pos.checked_add(count);
        match (pos, self.end) {
            (Some(pos), Some(end)) if pos <= end => self.pos = pos,
            (Some(pos), None) => self.pos = pos,
            _ => {
                self.resp = None;
                return Err(DriverError::io(
                    &self.path,
                    format!(
                        "{count} bytes read from byte {} run past the end of the object",
                        self.pos
                    ),
                ));
            }
        }
        if let Some((so_far, _)) = self.crc.as_mut() {
            so_far.append(crc, count);
        }
        match broken {
            None => self.body_ended(),
            Some(why) => self.reconnect(IoKind::Dropped, why),
        }
    }

    fn check_not_taken(&self) -> Result<(), DriverError> {
        if self.taken {
            return Err(DriverError::InvalidState(format!(
                "reader of {}: a taken body was not reported back",
                self.path
            )));
        }
        Ok(())
    }

    /// The response's body ended cleanly: short of the object's end, resume; else the end,
    /// where a whole-object read's CRC is checked.
    fn body_ended(&mut self) -> Result<(), DriverError> {
        if let Some(end) = self.end {
            if self.pos < end {
                return self.reconnect(
                    IoKind::Dropped,
                    format!("body ended at byte {} of {end}", self.pos),
                );
            }
        }
        self.eof = true;
        self.resp = None;
        if let Some((so_far, want)) = self.crc.take() {
            let got = so_far.value();
            if got != want {
                return Err(DriverError::integrity(
                    &self.path,
                    format!("integrity check failed: read data has CRC-64 {got}, KS3 says {want}"),
                ));
            }
        }
        Ok(())
    }

    fn replaced(&self) -> DriverError {
        DriverError::io(
            &self.path,
            format!(
                "the object changed (replaced or deleted) while it was being read, at byte {}",
                self.pos
            ),
        )
    }

    /// Drops the broken response so the next read re-opens at the current position.
    fn reconnect(&mut self, kind: IoKind, why: String) -> Result<(), DriverError> {
        self.resp = None;
        if !self.driver.client.retry_policy().may_retry(self.resumes) {
            return Err(DriverError::Io(IoError::new(
                kind,
                format!(
                    "reading the object failed after {} resumes: {why} (path {})",
                    self.resumes, self.path
                ),
            )));
        }
        self.resumes += 1;
        // The CRC covers a single whole-object response; after a resume it keeps running
        // over the concatenation, which is still the whole object.
        Ok(())
    }
}
