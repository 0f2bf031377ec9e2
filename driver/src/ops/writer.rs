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

use super::multipart::{too_many_parts, CompleteError, Part, PartJob, PartOutcome};
use super::tail::encode_tail;
use super::Driver;
use crate::error::DriverError;
use crate::http::Transport;
use crate::path::FilePath;

mod resume;

/// Where the writer is in its life. What only one stage has (the clean-up left after a
/// commit) lives in its variant, so no other stage can carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Takes writes, `close`, `commit` and `cancel`.
    Open,
    /// `close` saved the tail: only `cancel` is left (or `writer(path, true)` anywhere).
    Closed,
    /// The content is the path's; `Some` while removing the tail is still to do (see
    /// `clean_up_after_commit`): calling `commit` again does it.
    Committed(Option<Cleanup>),
    Cancelled,
}

/// What is left to do once committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cleanup {
    /// This writer stored a tail: it goes.
    DropTail,
    /// This writer stored no tail, but another writer may have closed one at the path
    /// since this one opened: it goes, with the upload it names (as after `put_content`).
    ReleaseTail,
}

/// The tail object in KS3, as far as this writer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// None stored (or it was removed).
    Absent,
    /// One may exist and must go at commit or cancel, but it no longer describes the
    /// upload, parts and buffer (bytes were written or parts sent since).
    Outdated,
    /// It describes exactly the current upload, parts and buffer.
    Current,
}

impl Tail {
    fn stored(self) -> bool {
        self != Tail::Absent
    }

    /// The buffer or the parts changed: a stored tail no longer describes them.
    fn outdate(&mut self) {
        if *self == Tail::Current {
            *self = Tail::Outdated;
        }
    }
}

/// The multipart upload the writer's parts go to, and what the writer learnt about it.
#[derive(Debug, Clone)]
struct Upload {
    id: String,
    /// KS3 offers no check of a part but `Content-MD5`: every part carries it.
    md5: bool,
    /// The upload ends in a short part whose bytes the driver does not have: it can be
    /// committed or cancelled, not extended.
    sealed: bool,
}

pub struct FileWriter<T: Transport> {
    driver: Arc<Driver<T>>,
    path: FilePath,
    key: String,
    /// `None` until the first part goes (a writer that never fills a part PUTs its bytes
    /// at commit).
    upload: Option<Upload>,
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
    buf: Vec<u8>,
    /// CRC-64 of `buf`, kept as bytes arrive.
    buf_crc: Crc64Pieces,
    size: u64,
    state: State,
    tail: Tail,
    /// Set by a resume that found nothing to continue and left nothing at the key: no
    /// tail, every upload there aborted (see `resume_untailed`).
    left_nothing: bool,
}

impl<T: Transport> Driver<T> {
    pub fn writer(
        self: &Arc<Self>,
        p: &FilePath,
        append: bool,
    ) -> Result<FileWriter<T>, DriverError> {
        let mut w = self.new_writer(p);
        if append {
            w.resume()?;
        } else {
            // A new writer owns the path: whatever was uploaded and not committed goes.
            self.release_uploads(&w.key, p)?;
        }
        Ok(w)
    }

    /// `writer(p, true)`, or where that is path-not-found, `writer(p, false)`, in one
    /// call (`fast-path.writer-append-or-create`). A resume that found no tail, no upload
    /// worth continuing (those it found it aborted) and no object has already done what
    /// `writer(p, false)` would do before starting: the new writer starts at once.
    pub fn writer_append_or_create(
        self: &Arc<Self>,
        p: &FilePath,
    ) -> Result<FileWriter<T>, DriverError> {
        let mut w = self.new_writer(p);
        match w.resume() {
            Ok(()) => Ok(w),
            Err(DriverError::PathNotFound(_)) => {
                let cleared = w.left_nothing;
                let w = self.new_writer(p);
                if !cleared {
                    self.release_uploads(&w.key, p)?;
                }
                Ok(w)
            }
            Err(e) => Err(e),
        }
    }

    fn new_writer(self: &Arc<Self>, p: &FilePath) -> FileWriter<T> {
        let key = self.keys.key(p);
        FileWriter {
            driver: Arc::clone(self),
            path: p.clone(),
            key,
            upload: None,
            parts: Vec::new(),
            ahead: BTreeMap::new(),
            flights: Vec::new(),
            jobs: Vec::new(),
            failed: Vec::new(),
            buf: Vec::new(),
            buf_crc: Crc64Pieces::new(),
            size: 0,
            state: State::Open,
            tail: Tail::Absent,
            left_nothing: false,
        }
    }
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
            State::Committed(_) => "committed",
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
        if self.upload.as_ref().is_some_and(|u| u.sealed) {
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
            self.tail.outdate();
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
            self.tail.outdate();
            self.launch(PartJob {
                number,
                data: Arc::new(data),
                crc,
                attempt: 0,
                md5: self.md5(),
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
        match &self.upload {
            Some(u) => Ok(u.id.clone()),
            None => {
                let id = self.driver.initiate(&self.key, &self.path)?;
                self.upload = Some(Upload {
                    id: id.clone(),
                    md5: false,
                    sealed: false,
                });
                Ok(id)
            }
        }
    }

    fn upload_id(&self) -> Option<String> {
        self.upload.as_ref().map(|u| u.id.clone())
    }

    /// Whether parts carry `Content-MD5` (see [`Upload::md5`]).
    fn md5(&self) -> bool {
        self.upload.as_ref().is_some_and(|u| u.md5)
    }

    /// Puts `job` in flight (or, if it cannot even start, among the failed).
    fn launch(&mut self, job: PartJob) {
        let id = self.upload_id().unwrap_or_default();
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
        let id = self.upload_id().unwrap_or_default();
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
                        if let Some(u) = &mut self.upload {
                            u.md5 = true;
                        }
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
            md5: self.md5(),
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
        if self.tail == Tail::Current {
            return Ok(());
        }
        let id = self.upload_id();
        let tail = encode_tail(id.as_deref(), &self.parts, &self.buf);
        let d = Arc::clone(&self.driver);
        d.put_object(&self.tail_key(), &self.path, &tail)?;
        self.tail = Tail::Current;
        Ok(())
    }

    fn drop_tail(&mut self) -> Result<(), DriverError> {
        if self.tail.stored() {
            let d = Arc::clone(&self.driver);
            d.delete_object(&self.tail_key(), &self.path)?;
            self.tail = Tail::Absent;
        }
        Ok(())
    }

    /// Persists what was written, uncommitted, for a later `writer(path, true)`.
    pub fn close(&mut self) -> Result<(), DriverError> {
        if let State::Committed(_) = self.state {
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
        if matches!(self.state, State::Committed(_) | State::Cancelled) {
            return self.check_open();
        }
        self.forget_parts_in_flight();
        let d = Arc::clone(&self.driver);
        if let Some(id) = self.upload_id() {
            let stale = self.stale_before(&id);
            d.abort(&self.key, &id, &self.path)?;
            self.upload = None;
            self.abort_all(stale);
        }
        self.drop_tail()?;
        self.state = State::Cancelled;
        self.buf = Vec::new();
        Ok(())
    }

    pub fn commit(&mut self) -> Result<(), DriverError> {
        if let State::Committed(Some(cleanup)) = self.state {
            return self.clean_up_after_commit(cleanup);
        }
        self.check_open()?;
        self.flush_full_chunks()?;
        self.settle()?;
        let d = Arc::clone(&self.driver);
        let Some(id) = self.upload_id() else {
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
            Ok(_) => {
                self.abort_all(stale);
                self.committed()
            }
            Err(CompleteError::Refused(e)) => {
                // The part list itself is wrong: no retry can complete this upload.
                let aborted = d.abort(&self.key, &id, &self.path);
                let _ = self.drop_tail();
                self.upload = None;
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
        let cleanup = if self.tail.stored() {
            Cleanup::DropTail
        } else {
            Cleanup::ReleaseTail
        };
        self.state = State::Committed(Some(cleanup));
        self.buf = Vec::new();
        self.upload = None;
        self.clean_up_after_commit(cleanup)
    }

    /// Removes the tail once the content is committed. If that fails, the commit has
    /// happened all the same; calling `commit` again finishes the clean-up.
    fn clean_up_after_commit(&mut self, cleanup: Cleanup) -> Result<(), DriverError> {
        match cleanup {
            Cleanup::DropTail => self.drop_tail()?,
            // The content is now the path's: an upload another writer closed there since
            // this one opened must not come back over it (as after put_content).
            Cleanup::ReleaseTail => self.driver.release_tail(&self.path)?,
        }
        self.state = State::Committed(None);
        Ok(())
    }
}
