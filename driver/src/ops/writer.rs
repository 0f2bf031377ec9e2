//! The upload path: a small state machine over KS3 multipart upload that loses nothing
//! and brings nothing back.
//!
//! * Bytes collect in one buffer; every time it holds `chunksize` bytes, exactly that many
//!   go up as the next part, so memory stays at about one chunk.
//! * `close` persists what does not fill a part yet in a hidden *tail* object
//!   (`<root>/~tails/<path>`, see [`Keys::tail_key`](crate::path::Keys::tail_key)), with
//!   the upload id, the number of parts it follows and their CRC-64s. A later
//!   `writer(path, append = true)` in any process reads it back and goes on.
//! * Without a tail (a writer that died before `close`), the newest upload at the key is
//!   resumed with List Multipart Uploads + List Parts — unless an object was written at
//!   the key since that upload began, which makes the upload stale.
//! * Resumed parts need not be of this writer's `chunksize`: KS3 takes parts of any size
//!   ≥ 5 MB but the last, so nothing is re-based and nothing partial is ever published.
//!   A resumed upload whose last part is short and whose bytes no tail holds (another
//!   client's) can be committed or cancelled but not extended.
//! * `commit` saves the last bytes in the tail *before* uploading them as the short last
//!   part, so a Complete that fails leaves a resumable upload; a Complete whose answer was
//!   lost is recognised by the object it made (see `Driver::complete`).
//! * One owner per path: `writer(path, false)`, `put_content`, `delete` and `mv` remove
//!   the path's tail and abort the uploads in progress at it, so an older upload can never
//!   come back over newer content.
use std::collections::BTreeMap;
use std::sync::Arc;

use ks3_proto::{Crc64, Crc64Pieces};

use super::multipart::{etag_is_md5_of, too_many_parts, CompleteError, Part, PartJob, PartOutcome};
use super::Driver;
use crate::client::Call;
use crate::config::MIN_PART_SIZE;
use crate::error::DriverError;
use crate::http::{Response, Transport};
use crate::path::FilePath;

const TAIL_MAGIC: &str = "ks3-driver-tail/2";
/// The tail's header line is at most this long (10 000 parts × a 20-digit CRC).
const MAX_TAIL_HEADER: usize = 256 + 21 * 10_000;
/// Enough of a tail to read the upload id it names (it comes first in the header).
const TAIL_ID_PREFIX: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Closed,
    Committed,
    Cancelled,
}

pub struct FileWriter<T: Transport> {
    driver: Arc<Driver<T>>,
    path: FilePath,
    key: String,
    upload_id: Option<String>,
    /// The upload's parts 1..n that KS3 holds, checked.
    parts: Vec<Part>,
    /// Parts KS3 holds past a gap (a part before them is still in flight or failed).
    ahead: BTreeMap<u32, Part>,
    /// Parts in flight, and the jobs they carry (same order).
    flights: Vec<T::Flight>,
    jobs: Vec<PartJob>,
    /// Parts that failed after their retries, with their bytes: sent again before
    /// anything else.
    failed: Vec<(PartJob, DriverError)>,
    /// KS3 offers no check of a part but `Content-MD5`: every part carries it.
    md5: bool,
    buf: Vec<u8>,
    /// CRC-64 of `buf`, kept as bytes arrive.
    buf_crc: Crc64Pieces,
    size: u64,
    state: State,
    /// A tail object may exist in KS3 and must go at commit or cancel.
    tail_stored: bool,
    /// The stored tail describes exactly the current upload, parts and buffer.
    tail_current: bool,
    /// The upload ends in a short part whose bytes the driver does not have: it can be
    /// committed or cancelled, not extended.
    sealed: bool,
    /// Committed, but the tail is not removed yet (see `clean_up_after_commit`).
    cleanup_pending: bool,
}

/// What `close` saved: the upload it belongs to, the parts before it, its bytes.
#[derive(Debug, PartialEq, Eq)]
struct SavedTail {
    upload_id: Option<String>,
    /// CRC-64 of each part before the tail, in order (`None` where unknown).
    part_crcs: Vec<Option<u64>>,
    data: Vec<u8>,
}

/// The tail object's content: a header line, then the bytes.
fn encode_tail(upload_id: Option<&str>, parts: &[Part], data: &[u8]) -> Vec<u8> {
    let crcs: Vec<String> = parts
        .iter()
        .map(|p| p.crc.map_or_else(|| "?".to_string(), |c| c.to_string()))
        .collect();
    let header = format!(
        "{TAIL_MAGIC} upload={} parts={} crcs={}\n",
        upload_id.unwrap_or("-"),
        parts.len(),
        if crcs.is_empty() {
            "-".to_string()
        } else {
            crcs.join(",")
        }
    );
    let mut out = Vec::with_capacity(header.len() + data.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// The upload id a tail names, from the first bytes of the tail.
fn tail_upload_id(raw: &[u8]) -> Option<Option<String>> {
    let end = raw.iter().position(|&b| b == b'\n').unwrap_or(raw.len());
    let header = std::str::from_utf8(&raw[..end]).ok()?;
    let mut it = header.split(' ');
    if it.next()? != TAIL_MAGIC {
        return None;
    }
    let upload = it.next()?.strip_prefix("upload=")?;
    Some((upload != "-").then(|| upload.to_string()))
}

fn decode_tail(raw: &[u8]) -> Option<SavedTail> {
    let nl = raw.iter().take(MAX_TAIL_HEADER).position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&raw[..nl]).ok()?;
    let mut it = header.split(' ');
    if it.next()? != TAIL_MAGIC {
        return None;
    }
    let upload = it.next()?.strip_prefix("upload=")?;
    let parts: usize = it.next()?.strip_prefix("parts=")?.parse().ok()?;
    let crcs = it.next()?.strip_prefix("crcs=")?;
    if it.next().is_some() {
        return None;
    }
    let part_crcs: Vec<Option<u64>> = if crcs == "-" {
        Vec::new()
    } else {
        crcs.split(',')
            .map(|c| match c {
                "?" => Some(None),
                c => c.parse::<u64>().ok().map(Some),
            })
            .collect::<Option<_>>()?
    };
    if part_crcs.len() != parts || (upload == "-" && parts != 0) {
        return None;
    }
    Some(SavedTail {
        upload_id: (upload != "-").then(|| upload.to_string()),
        part_crcs,
        data: raw[nl + 1..].to_vec(),
    })
}

impl<T: Transport> Driver<T> {
    pub fn writer(
        self: &Arc<Self>,
        p: &FilePath,
        append: bool,
    ) -> Result<FileWriter<T>, DriverError> {
        let key = self.keys.key(p);
        let mut w = FileWriter {
            driver: Arc::clone(self),
            path: p.clone(),
            key,
            upload_id: None,
            parts: Vec::new(),
            ahead: BTreeMap::new(),
            flights: Vec::new(),
            jobs: Vec::new(),
            failed: Vec::new(),
            md5: false,
            buf: Vec::new(),
            buf_crc: Crc64Pieces::new(),
            size: 0,
            state: State::Open,
            tail_stored: false,
            tail_current: false,
            sealed: false,
            cleanup_pending: false,
        };
        if append {
            w.resume()?;
        } else {
            // A new writer owns the path: whatever was uploaded and not committed goes.
            self.release_uploads(&w.key, p)?;
        }
        Ok(w)
    }

    /// Removes the path's tail and aborts every upload in progress at its key.
    pub(crate) fn release_uploads(&self, key: &str, p: &FilePath) -> Result<(), DriverError> {
        for u in self.uploads_of(key, p)? {
            self.abort(key, &u.upload_id, p)?;
        }
        self.delete_object(&self.keys.tail_key(p), p)?;
        Ok(())
    }

    /// Removes the path's tail and aborts the upload it names: what `put_content` needs
    /// (one request when there is no tail). Uploads no tail names are stale once an
    /// object was written after them (see `FileWriter::resume_untailed`).
    pub(crate) fn release_tail(&self, p: &FilePath) -> Result<(), DriverError> {
        let tail_key = self.keys.tail_key(p);
        let probe = tail_probe(&tail_key, p);
        let resp = self
            .client
            .call_buffered(&probe, &[404], self.tail_probe_limit())?;
        self.release_probed_tail(resp, &tail_key, p)
    }

    /// The most a tail probe reads: a server that ignores its Range sends the whole tail.
    pub(crate) fn tail_probe_limit(&self) -> usize {
        usize::try_from(self.config().chunk_size)
            .unwrap_or(usize::MAX)
            .saturating_add(MAX_TAIL_HEADER)
    }

    /// Given the answer to [`tail_probe`] (read whole, 404 when there is no tail), aborts
    /// the upload the tail names and deletes the tail.
    pub(crate) fn release_probed_tail(
        &self,
        mut resp: Response,
        tail_key: &str,
        p: &FilePath,
    ) -> Result<(), DriverError> {
        if resp.status == 404 {
            return Ok(());
        }
        // Only the header's start is needed (a server that ignores Range may send it all).
        let mut raw = Vec::new();
        while raw.len() < TAIL_ID_PREFIX {
            match resp.body.read(TAIL_ID_PREFIX - raw.len()) {
                Ok(Some(c)) => raw.extend_from_slice(&c),
                Ok(None) => break,
                Err(e) => {
                    return Err(DriverError::transport(
                        p,
                        "reading the upload's saved tail",
                        &e,
                    ))
                }
            }
        }
        // A tail that cannot be read names nothing we could abort; it goes all the same.
        if let Some(Some(id)) = tail_upload_id(&raw) {
            self.abort(&self.keys.key(p), &id, p)?;
        }
        self.delete_object(tail_key, p)?;
        Ok(())
    }
}

/// The GET of the start of a path's tail, where its upload id is: enough to release it.
pub(crate) fn tail_probe<'a>(tail_key: &'a str, p: &'a str) -> Call<'a> {
    // Range is honoured by KS3; a server that ignores it sends the whole tail, which
    // stays within what `read_tail` accepts.
    Call::new("GET", tail_key, p).header("range", format!("bytes=0-{}", TAIL_ID_PREFIX - 1))
}

impl<T: Transport> FileWriter<T> {
    fn chunk(&self) -> usize {
        // Bounded by `MAX_CHUNK_SIZE` (1 GiB) at configuration, so it fits a wasm32 usize.
        usize::try_from(self.driver.config().chunk_size).unwrap_or(usize::MAX)
    }

    fn tail_key(&self) -> String {
        self.driver.keys.tail_key(&self.path)
    }

    fn check_open(&self) -> Result<(), DriverError> {
        let what = match self.state {
            State::Open => return Ok(()),
            State::Closed => "closed",
            State::Committed => "committed",
            State::Cancelled => "cancelled",
        };
        Err(DriverError::InvalidState(format!(
            "writer for {} is already {what}",
            self.path
        )))
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends `data`.
    pub fn write(&mut self, data: &[u8]) -> Result<(), DriverError> {
        self.write_with_crc(data, None)
    }

    /// Appends `data`, with its CRC-64 when the caller has it (a host computes it
    /// natively, far faster than the sandbox can): the part checksums KS3 must confirm
    /// are then joined from it instead of hashed here. A wrong value only makes KS3's
    /// confirmation fail: the part is sent again and, failing again, the write fails.
    pub fn write_with_crc(&mut self, data: &[u8], crc: Option<u64>) -> Result<(), DriverError> {
        self.check_open()?;
        if data.is_empty() {
            return Ok(());
        }
        if self.sealed {
            return Err(DriverError::InvalidState(format!(
                "cannot append to {}: its upload ends in a short part that another client \
                 uploaded, whose bytes this driver does not have; commit or cancel it",
                self.path
            )));
        }
        // Parts that failed earlier go again first; while they fail, nothing is added.
        if !self.failed.is_empty() {
            self.settle()?;
        }
        let chunk = self.chunk();
        let whole = data.len();
        let mut data = data;
        while !data.is_empty() {
            // A buffer can hold more than a chunk: a resumed tail of a larger chunksize.
            self.flush_full_chunks()?;
            let take = chunk.saturating_sub(self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            match crc {
                // All of `data` in one piece: its CRC is the caller's.
                Some(c) if take == data.len() && data.len() == whole => {
                    self.buf_crc.append(c, take as u64)
                }
                _ => self.buf_crc.update(&data[..take]),
            }
            data = &data[take..];
            self.size = self.size.saturating_add(take as u64);
            self.tail_current = false;
        }
        self.flush_full_chunks()?;
        // Feed the bodies in flight what they take now, and hear their answers.
        self.pump(false);
        if !self.failed.is_empty() {
            return self.drain();
        }
        Ok(())
    }

    /// Starts `chunksize` bytes as the next part while the buffer holds that many, with
    /// at most `parts_in_flight` parts in flight (waiting for one to land when full).
    fn flush_full_chunks(&mut self) -> Result<(), DriverError> {
        let chunk = self.chunk();
        while self.buf.len() >= chunk {
            while self.flights.len() >= self.driver.config().parts_in_flight() {
                self.pump(true);
            }
            if !self.failed.is_empty() {
                // Nothing new goes while a part has failed (memory stays bounded): the
                // failure is reported once the rest has landed.
                return self.drain();
            }
            let number = self.next_number();
            if number > crate::config::MAX_PARTS {
                // Checked before the bytes leave the buffer: they stay.
                return Err(too_many_parts(&self.path, chunk));
            }
            self.ensure_upload()?;
            let (data, crc) = if self.buf.len() == chunk {
                let crc = std::mem::take(&mut self.buf_crc).value();
                (
                    std::mem::replace(&mut self.buf, Vec::with_capacity(chunk)),
                    crc,
                )
            } else {
                let rest = self.buf.split_off(chunk);
                let data = std::mem::replace(&mut self.buf, rest);
                self.buf_crc = Crc64Pieces::new();
                self.buf_crc.update(&self.buf);
                let crc = Crc64::checksum(&data);
                (data, crc)
            };
            self.tail_current = false;
            self.launch(PartJob {
                number,
                data: Arc::new(data),
                crc,
                attempt: 0,
                md5: self.md5,
            });
        }
        Ok(())
    }

    /// The number the next part gets: every number handed out is in exactly one of
    /// `parts`, `ahead`, `jobs` and `failed`.
    fn next_number(&self) -> u32 {
        let n = self.parts.len() + self.ahead.len() + self.jobs.len() + self.failed.len();
        u32::try_from(n)
            .ok()
            .and_then(|n| n.checked_add(1))
            .unwrap_or(u32::MAX)
    }

    fn ensure_upload(&mut self) -> Result<String, DriverError> {
        match &self.upload_id {
            Some(id) => Ok(id.clone()),
            None => {
                let id = self.driver.initiate(&self.key, &self.path)?;
                self.upload_id = Some(id.clone());
                Ok(id)
            }
        }
    }

    /// Puts `job` in flight (or, if it cannot even start, among the failed).
    fn launch(&mut self, job: PartJob) {
        let id = self.upload_id.clone().unwrap_or_default();
        match self.driver.start_part(&self.key, &id, &job, &self.path) {
            Ok(flight) => {
                self.flights.push(flight);
                self.jobs.push(job);
            }
            Err(e) => self.failed.push((job, e)),
        }
    }

    /// Moves the parts in flight on; with `block`, until at least one has landed (or
    /// there is none). Landed parts join `parts` (or `ahead`), failed ones `failed`.
    fn pump(&mut self, block: bool) {
        let d = Arc::clone(&self.driver);
        let mut ready = d.client.transport.advance(&mut self.flights, block);
        ready.sort_unstable();
        let id = self.upload_id.clone().unwrap_or_default();
        // Highest index first, so that `swap_remove` moves only flights not yet seen.
        for i in ready.into_iter().rev() {
            if i >= self.flights.len() {
                continue;
            }
            let flight = self.flights.swap_remove(i);
            let mut job = self.jobs.swap_remove(i);
            let sent = d.client.transport.finish(flight);
            match d.part_outcome(&self.key, &id, &mut job, sent, &self.path) {
                PartOutcome::Done(part) => {
                    self.ahead.insert(part.number, part);
                }
                PartOutcome::Again { backoff } => {
                    if backoff {
                        d.client.backoff(job.attempt);
                    }
                    if job.md5 {
                        self.md5 = true;
                    }
                    self.launch(job);
                }
                PartOutcome::Failed(e) => self.failed.push((job, e)),
            }
        }
        // Parts whose predecessors have all landed join the upload's part list.
        while let Some(part) = self.ahead.remove(&self.next_in_order()) {
            self.parts.push(part);
        }
    }

    fn next_in_order(&self) -> u32 {
        u32::try_from(self.parts.len())
            .ok()
            .and_then(|n| n.checked_add(1))
            .unwrap_or(u32::MAX)
    }

    /// Sends failed parts again (with fresh retries) and waits for every part in flight;
    /// afterwards nothing is in flight, and the first failure, if any, is the error (its
    /// part's bytes kept for the next attempt).
    fn settle(&mut self) -> Result<(), DriverError> {
        for (mut job, _) in std::mem::take(&mut self.failed) {
            job.attempt = 0;
            self.launch(job);
        }
        self.drain()
    }

    /// Waits for every part in flight; the first failure, if any, is the error.
    fn drain(&mut self) -> Result<(), DriverError> {
        while !self.flights.is_empty() {
            self.pump(true);
        }
        match self.failed.first() {
            Some((_, e)) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Uploads the buffer, which stays, as the next (last) part and waits for it.
    fn upload_buffer_now(&mut self) -> Result<Part, DriverError> {
        let upload_id = self.ensure_upload()?;
        let job = PartJob {
            number: self.next_number(),
            data: Arc::new(self.buf.clone()),
            crc: self.buf_crc.value(),
            attempt: 0,
            md5: self.md5,
        };
        self.driver
            .upload_part_now(&self.key, &upload_id, job, &self.path)
    }

    fn set_buf(&mut self, data: Vec<u8>) {
        self.buf_crc = Crc64Pieces::new();
        self.buf_crc.update(&data);
        self.buf = data;
    }

    /// Drops the parts in flight (their requests end) and the failed ones.
    fn forget_parts_in_flight(&mut self) {
        self.flights.clear();
        self.jobs.clear();
        self.failed.clear();
    }

    fn save_tail(&mut self) -> Result<(), DriverError> {
        if self.tail_stored && self.tail_current {
            return Ok(());
        }
        let tail = encode_tail(self.upload_id.as_deref(), &self.parts, &self.buf);
        let d = Arc::clone(&self.driver);
        d.put_object(&self.tail_key(), &self.path, &tail)?;
        self.tail_stored = true;
        self.tail_current = true;
        Ok(())
    }

    fn drop_tail(&mut self) -> Result<(), DriverError> {
        if self.tail_stored {
            let d = Arc::clone(&self.driver);
            d.delete_object(&self.tail_key(), &self.path)?;
            self.tail_stored = false;
            self.tail_current = false;
        }
        Ok(())
    }

    /// Persists what was written, uncommitted, for a later `writer(path, true)`.
    pub fn close(&mut self) -> Result<(), DriverError> {
        if self.state == State::Committed {
            return Ok(());
        }
        self.check_open()?;
        self.flush_full_chunks()?;
        self.settle()?;
        self.save_tail()?;
        self.state = State::Closed;
        self.buf = Vec::new();
        Ok(())
    }

    pub fn cancel(&mut self) -> Result<(), DriverError> {
        if matches!(self.state, State::Committed | State::Cancelled) {
            return self.check_open();
        }
        self.forget_parts_in_flight();
        let d = Arc::clone(&self.driver);
        if let Some(id) = self.upload_id.clone() {
            let stale = self.stale_before(&id);
            d.abort(&self.key, &id, &self.path)?;
            self.upload_id = None;
            self.abort_all(stale);
        }
        self.drop_tail()?;
        self.state = State::Cancelled;
        self.buf = Vec::new();
        Ok(())
    }

    pub fn commit(&mut self) -> Result<(), DriverError> {
        if self.state == State::Committed && self.cleanup_pending {
            return self.clean_up_after_commit();
        }
        self.check_open()?;
        self.flush_full_chunks()?;
        self.settle()?;
        let d = Arc::clone(&self.driver);
        let Some(id) = self.upload_id.clone() else {
            d.put_object(&self.key, &self.path, &self.buf)?;
            return self.committed();
        };
        if self.parts.is_empty() && self.buf.is_empty() {
            // KS3 cannot complete an upload without parts: the empty object is a PUT.
            d.put_object(&self.key, &self.path, &[])?;
            d.abort(&self.key, &id, &self.path)?;
            return self.committed();
        }
        let mut parts = self.parts.clone();
        if !self.buf.is_empty() {
            // The short last part goes first: if this writer's upload is gone (a newer
            // writer on the path aborted it), that fails here, before the tail below
            // could replace the newer writer's saved state with one naming a dead upload.
            let last = self.upload_buffer_now()?;
            // Saved before the Complete, so that if the Complete fails the bytes of this
            // short last part are still at hand for a resume (a part's bytes cannot be
            // read back).
            self.save_tail()?;
            parts.push(last);
        }
        let stale = self.stale_before(&id);
        match d.complete(&self.key, &id, &parts, &self.path) {
            Ok(()) => {
                self.abort_all(stale);
                self.committed()
            }
            Err(CompleteError::Refused(e)) => {
                // The part list itself is wrong: no retry can complete this upload.
                let aborted = d.abort(&self.key, &id, &self.path);
                let _ = self.drop_tail();
                self.upload_id = None;
                self.state = State::Cancelled;
                self.buf = Vec::new();
                Err(DriverError::io(
                    &self.path,
                    format!(
                        "KS3 refused to complete the upload ({e}); {}",
                        match aborted {
                            Ok(()) => "the upload was aborted".to_string(),
                            Err(a) => format!("aborting it failed too: {a}"),
                        }
                    ),
                ))
            }
            // Everything is kept: `commit` again, or `writer(path, true)` anywhere.
            Err(CompleteError::Failed(e)) => Err(e),
        }
    }

    /// Uploads at the key that began no later than upload `id`, other than it (see
    /// [`Driver::uploads_before`]): they go with `id` when it is committed or cancelled
    /// (best effort: the listing failing leaves them to the next `writer(path, false)`,
    /// `delete` or `mv`).
    fn stale_before(&self, id: &str) -> Vec<String> {
        self.driver.uploads_before(&self.key, id, &self.path)
    }

    fn abort_all(&self, ids: Vec<String>) {
        for id in ids {
            // Best effort, as above: the upload that mattered is already done.
            let _ = self.driver.abort(&self.key, &id, &self.path);
        }
    }

    fn committed(&mut self) -> Result<(), DriverError> {
        self.state = State::Committed;
        self.buf = Vec::new();
        self.upload_id = None;
        self.cleanup_pending = true;
        self.clean_up_after_commit()
    }

    /// Removes the tail once the content is committed. If that fails, the commit has
    /// happened all the same; calling `commit` again finishes the clean-up.
    fn clean_up_after_commit(&mut self) -> Result<(), DriverError> {
        if self.tail_stored {
            self.drop_tail()?;
        } else {
            // The content is now the path's: an upload another writer closed there since
            // this one opened must not come back over it (as after put_content).
            self.driver.release_tail(&self.path)?;
        }
        self.cleanup_pending = false;
        Ok(())
    }

    /// Picks up where an earlier writer left off.
    fn resume(&mut self) -> Result<(), DriverError> {
        let d = Arc::clone(&self.driver);
        match self.read_tail()? {
            Some(tail) => {
                self.tail_stored = true;
                match tail.upload_id.clone() {
                    None => {
                        self.set_buf(tail.data);
                        self.tail_current = true;
                    }
                    Some(id) => match d.list_parts(&self.key, &id, &self.path)? {
                        Some(parts) => self.resume_tailed(id, parts, tail)?,
                        None => {
                            // The tail names an upload that is gone (completed or aborted
                            // after the tail was written): it is stale.
                            self.drop_tail()?;
                            self.resume_untailed()?;
                        }
                    },
                }
            }
            None => self.resume_untailed()?,
        }
        self.size = self
            .parts
            .iter()
            .fold(0u64, |acc, p| acc.saturating_add(p.size))
            .saturating_add(self.buf.len() as u64);
        Ok(())
    }

    fn resume_tailed(
        &mut self,
        id: String,
        mut parts: Vec<Part>,
        tail: SavedTail,
    ) -> Result<(), DriverError> {
        let known = tail.part_crcs.len();
        in_order_prefix(&mut parts);
        if parts.len() < known {
            return Err(DriverError::io(
                &self.path,
                format!(
                    "cannot resume: the upload has {} parts, its saved state {known}",
                    parts.len()
                ),
            ));
        }
        for (p, crc) in parts.iter_mut().zip(&tail.part_crcs) {
            p.crc = *crc;
        }
        let extra = parts.len() - known;
        let last_is_tail = extra == 1
            && parts.last().is_some_and(|l| {
                l.size == tail.data.len() as u64 && etag_is_md5_of(&l.etag, &tail.data)
            });
        if extra == 0 || last_is_tail {
            // The tail's bytes are the rest of the upload. (A part after them that holds
            // exactly them is a commit's last part whose Complete failed: it is uploaded
            // again, as part of whatever comes next.)
            parts.truncate(known);
            self.set_buf(tail.data);
            self.tail_current = true;
        }
        // Otherwise a later writer put the tail's bytes into its parts and died before its
        // own `close`: the parts are the truth.
        self.adopt(id, parts)
    }

    /// Resumes the newest upload at the key, if it is not stale.
    fn resume_untailed(&mut self) -> Result<(), DriverError> {
        let d = Arc::clone(&self.driver);
        let uploads = d.uploads_of(&self.key, &self.path)?;
        let object = d.head(&self.key, &self.path)?;
        let newest = uploads.last().filter(|u| match &object {
            // An object written in or after the second the upload began replaced it.
            Some(o) => ks3_proto::date::parse_iso8601(&u.initiated).is_some_and(|started| {
                started.div_euclid(1_000_000_000) > i128::from(o.mod_time_ns / 1_000_000_000)
            }),
            None => true,
        });
        let Some(upload) = newest else {
            for u in &uploads {
                d.abort(&self.key, &u.upload_id, &self.path)?;
            }
            return match object {
                // distribution appends to an empty object as to nothing.
                Some(info) if info.size == 0 => Ok(()),
                _ => Err(DriverError::PathNotFound(self.path.to_string())),
            };
        };
        let id = upload.upload_id.clone();
        match d.list_parts(&self.key, &id, &self.path)? {
            Some(parts) => self.adopt(id, parts),
            None => Err(DriverError::PathNotFound(self.path.to_string())),
        }
    }

    /// Takes over `parts` of upload `id` after checking they can be completed: those
    /// numbered 1..n without a gap (see `in_order_prefix`), every one but the last at
    /// least the minimum part size.
    fn adopt(&mut self, id: String, mut parts: Vec<Part>) -> Result<(), DriverError> {
        in_order_prefix(&mut parts);
        match parts.iter().position(|p| p.size < MIN_PART_SIZE) {
            Some(i) if i + 1 < parts.len() => {
                return Err(DriverError::io(
                    &self.path,
                    format!(
                        "cannot resume: part {} of the upload is {} bytes, below KS3's minimum for a part that is not the last",
                        i + 1,
                        parts[i].size
                    ),
                ))
            }
            Some(_) => {
                // The last part is short and not ours: commit or cancel only.
                self.sealed = true;
            }
            None => {}
        }
        self.parts = parts;
        self.upload_id = Some(id);
        Ok(())
    }

    fn read_tail(&self) -> Result<Option<SavedTail>, DriverError> {
        let d = &self.driver;
        let key = self.tail_key();
        let limit = self.chunk().saturating_add(MAX_TAIL_HEADER);
        let mut resp =
            d.client
                .call_buffered(&Call::new("GET", &key, &self.path), &[404], limit)?;
        if resp.status == 404 {
            return Ok(None);
        }
        let raw = resp.read_all(limit).map_err(|e| {
            DriverError::transport(&self.path, "reading the upload's saved tail", &e)
        })?;
        if let Some(v) = resp.header("x-kss-checksum-crc64ecma") {
            d.check_crc(
                Some(v),
                Some(Crc64::checksum(&raw)),
                &self.path,
                "saved tail",
            )?;
        }
        match decode_tail(&raw) {
            Some(tail) => Ok(Some(tail)),
            None => Err(DriverError::integrity(
                &self.path,
                "the upload's saved tail is corrupt",
            )),
        }
    }
}

/// Keeps the parts numbered 1..n without a gap (`parts` sorted by number). A writer that
/// died with parts in flight can leave a gap; the parts after it hold bytes that follow
/// a missing part, so they are left out (a part uploaded later with the same number
/// replaces one, and Complete leaves out the rest).
fn in_order_prefix(parts: &mut Vec<Part>) {
    let n = parts
        .iter()
        .zip(1u32..)
        .take_while(|(p, i)| p.number == *i)
        .count();
    parts.truncate(n);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u32, crc: Option<u64>) -> Part {
        Part {
            number: n,
            etag: "e".into(),
            size: 5,
            crc,
        }
    }

    #[test]
    fn tail_round_trip() {
        let raw = encode_tail(
            Some("abc"),
            &[part(1, Some(7)), part(2, None)],
            b"hello\nworld",
        );
        let t = decode_tail(&raw).unwrap();
        assert_eq!(t.upload_id.as_deref(), Some("abc"));
        assert_eq!(t.part_crcs, vec![Some(7), None]);
        assert_eq!(t.data, b"hello\nworld");
        assert_eq!(tail_upload_id(&raw[..20]), None, "cut inside the id");
        assert_eq!(tail_upload_id(&raw), Some(Some("abc".into())));
        let raw = encode_tail(None, &[], b"");
        assert_eq!(decode_tail(&raw).unwrap().upload_id, None);
        assert_eq!(tail_upload_id(&raw), Some(None));
        for bad in [
            &b"garbage"[..],
            b"ks3-driver-tail/2 upload=x parts=q crcs=-\n",
            b"ks3-driver-tail/2 upload=x parts=2 crcs=1\n",
            b"ks3-driver-tail/2 upload=- parts=1 crcs=1\n",
            b"ks3-driver-tail/2 upload=x parts=1 crcs=z\n",
            b"ks3-driver-tail/1 upload=x parts=0\n",
            b"ks3-driver-tail/2 upload=x parts=0 crcs=- extra\n",
        ] {
            assert!(
                decode_tail(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
