//! Recursive delete: the object at `path` and every key under `path/` (never a sibling
//! such as `path-2`), in multi-object batches of at most 1000 keys — and with them every
//! upload in progress there and its saved tail, so nothing is left to bill or to resume.
use super::listing::PAGE_FLAT;
use super::Driver;
use crate::client::{AfterBatch, Call, MAX_XML};
use crate::error::{BackendError, DriverError};
use crate::http::{Response, Transport};
use crate::path::FilePath;
use ks3_proto::xml;

/// KS3 deletes at most this many keys in one `POST ?delete`.
pub(crate) const MAX_BATCH: usize = ks3_proto::limits::MAX_DELETE_KEYS;

impl<T: Transport> Driver<T> {
    pub fn delete(&self, p: &FilePath) -> Result<(), DriverError> {
        let key = self.keys.key(p);
        let prefix = self.keys.file_dir_prefix(p);
        let tail_key = self.keys.tail_key(p);
        let tail_prefix = self.keys.tail_dir_prefix(p);
        // One round trip asks everything that does not depend on another answer: the
        // uploads in progress at the path or under it, the first page of keys under it and
        // of the tails at it and under it. Then the uploads are aborted, so none can be
        // resumed or completed over what is deleted (the listing by `key` also returns
        // siblings such as `key-2`, which are not ours), and what was found is deleted.
        // The tails are listed by the tail key itself, which finds the path's own tail and
        // those under it at once (siblings' tails are passed over; tails are few: only a
        // closed, uncommitted writer leaves one).
        let calls = [
            Self::uploads_page_call(&key, None, p),
            Self::list_page_call(&tail_key, false, None, PAGE_FLAT, p),
            Self::list_page_call(&prefix, false, None, PAGE_FLAT, p),
        ];
        let sent = self.client.send_all(&calls, AfterBatch::Continue);
        let [uploads, tails, under]: [_; 3] = sent.try_into().map_err(|_| {
            DriverError::other(p, "the client answered fewer calls than it was given")
        })?;
        let (first, next) = self.read_uploads_page(uploads?.resp, None, p)?;
        for u in self.list_uploads_from(&key, first, next, p)? {
            if u.key == key || u.key.starts_with(&prefix) {
                self.abort(&u.key, &u.upload_id, p)?;
            }
        }
        let tails = self.read_list_page(tails?.resp, &tail_key, None, p)?;
        let ours = |k: &str| k == tail_key || k.starts_with(&tail_prefix);
        let tails = self.all_listed_from(&tail_key, tails, ours, p)?;
        let under = self.read_list_page(under?.resp, &prefix, None, p)?;
        if under.entries.is_empty() && under.next_marker.is_none() {
            // Nothing under the path: it exists if its object did, which only the
            // object's own DELETE tells (a multi-object delete reports every key deleted).
            if !tails.is_empty() {
                self.delete_keys(&tails, p)?;
            }
            return if self.delete_object(&key, p)? {
                Ok(())
            } else {
                Err(DriverError::PathNotFound(p.to_string()))
            };
        }
        // Something under the path, so it exists: the object at the path (if there is
        // one) and the tails go in the first batch with the keys under it, one request
        // where a DELETE of the object beside the listings would be one more.
        let mut first_batch = tails;
        first_batch.push(key.clone());
        self.delete_listed_from(&prefix, under, first_batch, p)?;
        Ok(())
    }

    /// Every key listed by `prefix` that `keep` accepts, from the first page of the
    /// listing (already made) on.
    fn all_listed_from(
        &self,
        prefix: &str,
        mut page: super::listing::Page,
        keep: impl Fn(&str) -> bool,
        p: &str,
    ) -> Result<Vec<String>, DriverError> {
        let mut keys = Vec::new();
        loop {
            keys.extend(page.entries.into_iter().map(|e| e.key).filter(|k| keep(k)));
            match page.next_marker {
                Some(m) => page = self.list_page(prefix, false, Some(&m), PAGE_FLAT, p)?,
                None => return Ok(keys),
            }
        }
    }

    /// Deletes every key listed by `prefix`, from the first page of the listing (already
    /// made) on, and `first_batch` with the first page's keys.
    fn delete_listed_from(
        &self,
        prefix: &str,
        mut page: super::listing::Page,
        first_batch: Vec<String>,
        p: &str,
    ) -> Result<(), DriverError> {
        let mut keys = first_batch;
        loop {
            keys.extend(page.entries.into_iter().map(|e| e.key));
            if !keys.is_empty() {
                self.delete_keys(&keys, p)?;
            }
            match page.next_marker {
                Some(m) => {
                    page = self.list_page(prefix, false, Some(&m), PAGE_FLAT, p)?;
                    keys = Vec::new();
                }
                None => return Ok(()),
            }
        }
    }

    /// DELETE of one key; `false` when it did not exist (KS3 answers 404 `NoSuchKey`).
    pub fn delete_object(&self, key: &str, p: &str) -> Result<bool, DriverError> {
        let resp = self.client.send(&Self::delete_call(key, p))?.resp;
        self.judge_delete(resp, p)
    }

    /// The DELETE of one key (404 accepted: see [`Self::judge_delete`]).
    pub(crate) fn delete_call<'a>(key: &'a str, p: &'a str) -> Call<'a> {
        Call::new("DELETE", key, p).accept(&[404])
    }

    /// The answer to [`Self::delete_call`]: `false` when the key did not exist.
    pub(crate) fn judge_delete(&self, resp: Response, p: &str) -> Result<bool, DriverError> {
        if resp.status == 404 {
            let err = self.client.backend_error(resp, p);
            return if err.code == "NoSuchBucket" {
                Err(DriverError::Backend(err))
            } else {
                Ok(false)
            };
        }
        Ok(true)
    }

    /// Deletes `keys` in batches; when a batch call itself fails, falls back to one DELETE
    /// per key. Keys KS3 refuses to delete are reported together.
    pub(crate) fn delete_keys(&self, keys: &[String], p: &str) -> Result<(), DriverError> {
        let mut failures: Vec<(String, String)> = Vec::new();
        for batch in keys.chunks(MAX_BATCH) {
            match self.delete_batch(batch, p) {
                Ok(errs) => failures.extend(errs),
                Err(_) => {
                    for k in batch {
                        if let Err(e) = self.delete_object(k, p) {
                            failures.push((k.clone(), e.to_string()));
                        }
                    }
                }
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        let shown: Vec<String> = failures
            .iter()
            .take(10)
            .map(|(k, e)| format!("{k}: {e}"))
            .collect();
        Err(DriverError::Backend(BackendError {
            code: "DeleteFailed".into(),
            status: 0,
            message: format!(
                "{} of {} keys could not be deleted: {}{}",
                failures.len(),
                keys.len(),
                shown.join("; "),
                if failures.len() > 10 { "; …" } else { "" }
            ),
            request_id: String::new(),
            path: p.into(),
        }))
    }

    /// One `POST ?delete`; returns the per-key errors other than "already gone".
    fn delete_batch(
        &self,
        batch: &[String],
        p: &str,
    ) -> Result<Vec<(String, String)>, DriverError> {
        let request = xml::Delete {
            quiet: Some(false),
            objects: batch
                .iter()
                .map(|k| xml::DeleteObject { key: k.clone() })
                .collect(),
        };
        let body = xml::to_xml(&request).map_err(|e| DriverError::io(p, e.to_string()))?;
        let call = Call::new("POST", "", p).subresource("delete").body(
            body.as_bytes(),
            "application/xml",
            true,
        );
        let resp = self.client.send(&call.buffered(MAX_XML))?.resp;
        let result: xml::DeleteResult = self.client.read_xml(resp, p)?;
        Ok(result
            .entries
            .into_iter()
            .filter_map(|entry| match entry {
                xml::DeleteEntry::Error(e) if e.code != "NoSuchKey" => Some((
                    e.key,
                    format!("{}: {}", e.code, e.message.unwrap_or_default()),
                )),
                _ => None,
            })
            .collect())
    }
}
