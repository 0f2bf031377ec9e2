//! `writer(path, append = true)`: picking up where an earlier writer left off, from its
//! tail or, without one, from the newest upload at the key.
use std::sync::Arc;

use super::{FileWriter, Tail, Upload};
use crate::client::Call;
use crate::config::MIN_PART_SIZE;
use crate::error::DriverError;
use crate::http::Transport;
use crate::ops::multipart::{etag_is_md5_of, Part};
use crate::ops::tail::{decode_tail, SavedTail, MAX_TAIL_HEADER};
use ks3_proto::Crc64;

impl<T: Transport> FileWriter<T> {
    /// Picks up where an earlier writer left off.
    pub(super) fn resume(&mut self) -> Result<(), DriverError> {
        let d = Arc::clone(&self.driver);
        match self.read_tail()? {
            Some(tail) => {
                self.tail = Tail::Outdated;
                match tail.upload_id.clone() {
                    None => {
                        self.set_buf(tail.data);
                        self.tail = Tail::Current;
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
            self.tail = Tail::Current;
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
            // No tail (none was read, or the one read was dropped) and no upload left.
            self.left_nothing = self.tail == Tail::Absent;
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
        let sealed = match parts.iter().position(|p| p.size < MIN_PART_SIZE) {
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
            // The last part is short and not ours: commit or cancel only.
            Some(_) => true,
            None => false,
        };
        self.parts = parts;
        self.upload = Some(Upload {
            id,
            md5: false,
            sealed,
        });
        Ok(())
    }

    fn read_tail(&self) -> Result<Option<SavedTail>, DriverError> {
        let d = &self.driver;
        let key = self.tail_key();
        let limit = self.chunk().saturating_add(MAX_TAIL_HEADER);
        let get = Call::new("GET", &key, &self.path)
            .accept(&[404])
            .buffered(limit);
        let mut resp = d.client.send(&get)?.resp;
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
