//! The upload path: a small state machine over KS3 multipart upload.
//!
//! * Bytes collect in one buffer; every time it holds `chunksize` bytes, exactly that many
//!   go up as the next part, so all parts but the last are the same size (stores that
//!   require uniform parts work) and memory stays at about one chunk.
//! * `close` persists the bytes that do not fill a part yet in a hidden "tail" object next
//!   to the path (`<key>~tail`; `~` is outside the path alphabet, so no driver path can
//!   name it and listings never show it), together with the upload id and the number of
//!   parts it follows. A later `writer(path, append = true)` — any process — reads it back
//!   and continues, so no undersized part is ever uploaded and no re-base is needed.
//! * Without a tail (a writer that died before `close`) the upload is found with List
//!   Multipart Uploads + List Parts. Parts of another size (another chunksize, another
//!   client) are re-based: the upload is completed and copied back in uniform parts.
//! * `commit` uploads the rest as the last part and completes the upload (or, for an
//!   upload that never filled a part, PUTs the object in one request), then drops the tail.
use std::sync::Arc;

use ks3_proto::Crc64;

use super::multipart::Part;
use super::Driver;
use crate::client::Call;
use crate::error::DriverError;
use crate::http::Transport;
use crate::path;

const TAIL_SUFFIX: &str = "~tail";
const TAIL_MAGIC: &str = "ks3-driver-tail/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Closed,
    Committed,
    Cancelled,
}

pub struct FileWriter<T> {
    driver: Arc<Driver<T>>,
    path: String,
    key: String,
    upload_id: Option<String>,
    parts: Vec<Part>,
    buf: Vec<u8>,
    size: u64,
    state: State,
    /// A tail object may exist in KS3 and must go at commit or cancel.
    tail_stored: bool,
}

impl<T: Transport> Driver<T> {
    pub fn writer(self: &Arc<Self>, p: &str, append: bool) -> Result<FileWriter<T>, DriverError> {
        path::check(p)?;
        let mut w = FileWriter {
            driver: Arc::clone(self),
            path: p.to_string(),
            key: self.keys.key(p),
            upload_id: None,
            parts: Vec::new(),
            buf: Vec::new(),
            size: 0,
            state: State::Open,
            tail_stored: false,
        };
        if append {
            w.resume()?;
        }
        Ok(w)
    }
}

/// The tail object's content: a header line, then the bytes.
fn encode_tail(upload_id: Option<&str>, parts: usize, data: &[u8]) -> Vec<u8> {
    let header = format!(
        "{TAIL_MAGIC} upload={} parts={parts}\n",
        upload_id.unwrap_or("-")
    );
    let mut out = Vec::with_capacity(header.len() + data.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// What `close` saved: the upload it belongs to, how many parts precede it, its bytes.
struct SavedTail {
    upload_id: Option<String>,
    parts_before: usize,
    data: Vec<u8>,
}

fn decode_tail(raw: &[u8]) -> Option<SavedTail> {
    let nl = raw.iter().position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&raw[..nl]).ok()?;
    let mut it = header.split(' ');
    if it.next()? != TAIL_MAGIC {
        return None;
    }
    let upload = it.next()?.strip_prefix("upload=")?;
    let parts = it.next()?.strip_prefix("parts=")?.parse().ok()?;
    let upload_id = (upload != "-").then(|| upload.to_string());
    Some(SavedTail {
        upload_id,
        parts_before: parts,
        data: raw[nl + 1..].to_vec(),
    })
}

impl<T: Transport> FileWriter<T> {
    fn chunk(&self) -> usize {
        self.driver.config().chunk_size as usize
    }

    fn tail_key(&self) -> String {
        format!("{}{TAIL_SUFFIX}", self.key)
    }

    fn check_open(&self) -> Result<(), DriverError> {
        match self.state {
            State::Open => Ok(()),
            State::Closed => Err(DriverError::InvalidState(format!(
                "writer for {} is already closed",
                self.path
            ))),
            State::Committed => Err(DriverError::InvalidState(format!(
                "writer for {} is already committed",
                self.path
            ))),
            State::Cancelled => Err(DriverError::InvalidState(format!(
                "writer for {} is already cancelled",
                self.path
            ))),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn write(&mut self, data: &[u8]) -> Result<(), DriverError> {
        self.check_open()?;
        let chunk = self.chunk();
        let mut data = data;
        while !data.is_empty() {
            let take = (chunk - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.size += take as u64;
            if self.buf.len() == chunk {
                self.flush_part()?;
            }
        }
        Ok(())
    }

    /// Uploads the full buffer as the next part.
    fn flush_part(&mut self) -> Result<(), DriverError> {
        let d = Arc::clone(&self.driver);
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = d.initiate(&self.key, &self.path)?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = self.parts.len() as u32 + 1;
        let part = d.upload_part(&self.key, &upload_id, number, &self.buf, &self.path)?;
        self.parts.push(part);
        self.buf.clear();
        Ok(())
    }

    pub fn close(&mut self) -> Result<(), DriverError> {
        if self.state == State::Committed {
            return Ok(());
        }
        self.check_open()?;
        let tail = encode_tail(self.upload_id.as_deref(), self.parts.len(), &self.buf);
        let d = Arc::clone(&self.driver);
        d.put_object(&self.tail_key(), &self.path, &tail)?;
        self.tail_stored = true;
        self.state = State::Closed;
        self.buf = Vec::new();
        Ok(())
    }

    pub fn cancel(&mut self) -> Result<(), DriverError> {
        if matches!(self.state, State::Committed | State::Cancelled) {
            return self.check_open();
        }
        let d = Arc::clone(&self.driver);
        if let Some(id) = self.upload_id.take() {
            d.abort(&self.key, &id, &self.path)?;
        }
        self.drop_tail()?;
        self.state = State::Cancelled;
        self.buf = Vec::new();
        Ok(())
    }

    fn drop_tail(&mut self) -> Result<(), DriverError> {
        if self.tail_stored {
            let d = Arc::clone(&self.driver);
            d.delete_object(&self.tail_key(), &self.path)?;
            self.tail_stored = false;
        }
        Ok(())
    }

    pub fn commit(&mut self) -> Result<(), DriverError> {
        self.check_open()?;
        let d = Arc::clone(&self.driver);
        match self.upload_id.clone() {
            None => d.put_object(&self.key, &self.path, &self.buf)?,
            Some(id) => {
                if !self.buf.is_empty() {
                    self.flush_part()?;
                }
                let parts: Vec<(u32, String)> = self
                    .parts
                    .iter()
                    .map(|p| (p.number, p.etag.clone()))
                    .collect();
                match d.complete(&self.key, &id, &parts, &self.path) {
                    Ok(_) => {}
                    Err(e) => {
                        let _ = d.abort(&self.key, &id, &self.path);
                        self.state = State::Cancelled;
                        return Err(e);
                    }
                }
            }
        }
        self.state = State::Committed;
        self.buf = Vec::new();
        self.drop_tail()
    }

    /// Picks up where an earlier writer left off.
    fn resume(&mut self) -> Result<(), DriverError> {
        let d = Arc::clone(&self.driver);
        if let Some(tail) = self.read_tail()? {
            let SavedTail {
                upload_id,
                parts_before,
                data,
            } = tail;
            self.tail_stored = true;
            if let Some(id) = upload_id {
                self.parts = d.list_parts(&self.key, &id, &self.path)?;
                self.upload_id = Some(id);
            }
            // More parts than the tail knows of: a later writer already uploaded the tail's
            // bytes inside a part and died before its own close.
            if self.parts.len() == parts_before {
                self.buf = data;
            }
        } else {
            let mut uploads = d.list_uploads(&self.key, &self.path)?;
            uploads.sort_by(|a, b| a.initiated.cmp(&b.initiated));
            match uploads.pop() {
                Some(u) => {
                    self.parts = d.list_parts(&self.key, &u.upload_id, &self.path)?;
                    self.upload_id = Some(u.upload_id);
                }
                None => {
                    return match d.head(&self.key, &self.path)? {
                        Some(info) if info.size == 0 => Ok(()),
                        Some(_) => Err(DriverError::InvalidState(format!(
                            "cannot append to {}: it is committed with content (only empty objects and uncommitted uploads can be appended to)",
                            self.path
                        ))),
                        None => Err(DriverError::PathNotFound(self.path.clone())),
                    };
                }
            }
        }
        let chunk = self.chunk() as u64;
        if self.parts.iter().any(|p| p.size != chunk) {
            self.rebase()?;
        }
        self.size = self.parts.iter().map(|p| p.size).sum::<u64>() + self.buf.len() as u64;
        Ok(())
    }

    fn read_tail(&self) -> Result<Option<SavedTail>, DriverError> {
        let d = &self.driver;
        let key = self.tail_key();
        let mut resp = d.client.call(&Call::new("GET", &key, &self.path), &[404])?;
        if resp.status == 404 {
            return Ok(None);
        }
        let raw = resp
            .read_all(d.config().chunk_size as usize + 4096)
            .map_err(|e| {
                DriverError::io(&self.path, format!("reading the upload's saved tail: {e}"))
            })?;
        if let Some(v) = resp.header("x-kss-checksum-crc64ecma") {
            if v.trim().parse::<u64>().ok() != Some(Crc64::checksum(&raw)) {
                return Err(DriverError::io(
                    &self.path,
                    "integrity check failed reading the upload's saved tail",
                ));
            }
        }
        match decode_tail(&raw) {
            Some(tail) => Ok(Some(tail)),
            None => Err(DriverError::io(
                &self.path,
                "the upload's saved tail is corrupt",
            )),
        }
    }

    /// Makes the parts uniform again: completes the upload as it is, then starts a new
    /// one that copies the object back in `chunksize` parts and keeps the remainder in
    /// the buffer.
    fn rebase(&mut self) -> Result<(), DriverError> {
        let d = Arc::clone(&self.driver);
        let Some(old_id) = self.upload_id.take() else {
            return Ok(());
        };
        let pending = std::mem::take(&mut self.buf);
        let parts: Vec<(u32, String)> = self
            .parts
            .iter()
            .map(|p| (p.number, p.etag.clone()))
            .collect();
        d.complete(&self.key, &old_id, &parts, &self.path)?;
        let total: u64 = self.parts.iter().map(|p| p.size).sum();
        self.parts.clear();
        let chunk = self.chunk() as u64;
        let full = total / chunk;
        if full > 0 {
            let id = d.initiate(&self.key, &self.path)?;
            let source = d.copy_source(&self.key);
            for i in 0..full {
                let call = Call::new("PUT", &self.key, &self.path)
                    .query("partNumber", (i + 1).to_string())
                    .query("uploadId", id.clone())
                    .header("x-kss-copy-source", source.clone())
                    .header(
                        "x-kss-copy-source-range",
                        format!("bytes={}-{}", i * chunk, (i + 1) * chunk - 1),
                    );
                let node =
                    d.client
                        .read_xml(d.client.call(&call, &[])?, &self.path, "CopyPartResult")?;
                self.parts.push(Part {
                    number: i as u32 + 1,
                    etag: node.text_of("ETag").to_string(),
                    size: chunk,
                });
            }
            self.upload_id = Some(id);
        }
        let rest = total - full * chunk;
        if rest > 0 {
            let call = Call::new("GET", &self.key, &self.path)
                .header("range", format!("bytes={}-{}", full * chunk, total - 1));
            let mut resp = d.client.call(&call, &[])?;
            self.buf = resp.read_all(rest as usize).map_err(|e| {
                DriverError::io(
                    &self.path,
                    format!("reading back the upload's last part: {e}"),
                )
            })?;
        }
        self.buf.extend_from_slice(&pending);
        // The completed object now stands at the path; it is replaced at commit. Until then
        // the tail records the new upload so another process resumes this one.
        let tail = encode_tail(self.upload_id.as_deref(), self.parts.len(), &self.buf);
        d.put_object(&self.tail_key(), &self.path, &tail)?;
        self.tail_stored = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_round_trip() {
        let raw = encode_tail(Some("abc"), 3, b"hello\nworld");
        let t = decode_tail(&raw).unwrap();
        assert_eq!(t.upload_id.as_deref(), Some("abc"));
        assert_eq!(t.parts_before, 3);
        assert_eq!(t.data, b"hello\nworld");
        let raw = encode_tail(None, 0, b"");
        assert_eq!(decode_tail(&raw).unwrap().upload_id, None);
        assert!(decode_tail(b"garbage").is_none());
        assert!(decode_tail(b"ks3-driver-tail/1 upload=x parts=q\n").is_none());
    }
}
