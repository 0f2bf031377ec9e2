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
        // uploads in progress at the path or under it, the tails at it and under it, and
        // the keys at it and under it. Then the uploads are aborted, so none can be resumed
        // or completed over what is deleted (the listing by `key` also returns siblings
        // such as `key-2`, which are not ours), and what was found is deleted.
        // The tails are listed by the tail key itself, which finds the path's own tail and
        // those under it at once (siblings' tails are passed over; tails are few: only a
        // closed, uncommitted writer leaves one).
        // The keys are listed by `key` too, not by `key/`: whether the path exists is then
        // read from the listing. Asking the object's own DELETE instead (404 or not) gives
        // the wrong answer when the DELETE is retried after its first answer was lost: the
        // retry finds the object the first attempt removed gone.
        let calls = [
            Self::uploads_page_call(&key, None, p),
            Self::list_page_call(&tail_key, false, None, PAGE_FLAT, p),
            Self::list_page_call(&key, false, None, PAGE_FLAT, p),
        ];
        let sent = self.client.send_all(&calls, AfterBatch::Continue);
        let [uploads, tails, at_and_under]: [_; 3] = sent.try_into().map_err(|_| {
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
        let first = self.read_list_page(at_and_under?.resp, &key, None, p)?;
        let (found, rest) = split_by_key(first, &key, &prefix);
        let found_on_first_page = !found.is_empty();
        // The tails and what the first page found go in one batch; the rest of a large
        // directory follows page by page.
        let mut batch = tails;
        batch.extend(found);
        let exists = match rest {
            Rest::Done => {
                if !batch.is_empty() {
                    self.delete_keys(&batch, p)?;
                }
                found_on_first_page
            }
            Rest::Under(marker) => {
                let page = self.list_page(&prefix, false, marker.as_deref(), PAGE_FLAT, p)?;
                let found_under = !page.entries.is_empty();
                self.delete_listed_from(&prefix, page, batch, p)?;
                found_on_first_page || found_under
            }
        };
        if exists {
            Ok(())
        } else {
            Err(DriverError::PathNotFound(p.to_string()))
        }
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
            // One key goes by its own DELETE: no XML either way (404 is "already gone").
            if let [k] = batch {
                if let Err(e) = self.delete_object(k, p) {
                    failures.push((k.clone(), e.to_string()));
                }
                continue;
            }
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

/// What a listing by `key` leaves to list after its first page.
#[derive(Debug, PartialEq)]
enum Rest {
    /// The first page held everything at `key` and under `key/`.
    Done,
    /// More under `key/`: list by `key/` after this marker (from its start for `None`).
    Under(Option<String>),
}

/// The keys of a listing's first page by `key` that are the path's own (`key` and those
/// under `prefix`, i.e. `key/`), and what is left to list. The listing is in byte order, so
/// the siblings sort around the path's keys: `key-2` (a byte below `/`) before `key/…`,
/// `key0` after. A truncated page that ended before `key/…` or inside it continues with a
/// listing by `key/` itself, never through more siblings; one that reached a sibling after
/// `key/…` has seen all the path's keys.
fn split_by_key(page: super::listing::Page, key: &str, prefix: &str) -> (Vec<String>, Rest) {
    let truncated = page.next_marker.is_some();
    let mut ours = Vec::new();
    let mut past = false;
    for k in page.entries.into_iter().map(|e| e.key) {
        if k == key || k.starts_with(prefix) {
            ours.push(k);
        } else if k.as_bytes().get(key.len()).is_some_and(|&b| b > b'/') {
            past = true;
        }
    }
    if !truncated || past {
        return (ours, Rest::Done);
    }
    let after = ours.last().filter(|k| k.starts_with(prefix)).cloned();
    (ours, Rest::Under(after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::listing::{Entry, Page};

    fn page(keys: &[&str], truncated: bool) -> Page {
        Page {
            entries: keys
                .iter()
                .map(|k| Entry {
                    key: k.to_string(),
                    size: 0,
                    mod_time_ns: 0,
                })
                .collect(),
            prefixes: Vec::new(),
            next_marker: truncated.then(|| keys.last().unwrap_or(&"").to_string()),
        }
    }

    #[test]
    fn a_whole_page_keeps_the_paths_keys_and_passes_over_siblings() {
        let (ours, rest) = split_by_key(
            page(
                &["r/a", "r/a-2", "r/a.b/c", "r/a/x", "r/a/y/z", "r/a0"],
                false,
            ),
            "r/a",
            "r/a/",
        );
        assert_eq!(ours, ["r/a", "r/a/x", "r/a/y/z"]);
        assert_eq!(rest, Rest::Done);
    }

    #[test]
    fn a_truncated_page_of_siblings_goes_on_under_the_path_from_its_start() {
        let (ours, rest) = split_by_key(page(&["r/a", "r/a-1", "r/a-2"], true), "r/a", "r/a/");
        assert_eq!(ours, ["r/a"]);
        assert_eq!(rest, Rest::Under(None));
        let (ours, rest) = split_by_key(page(&["r/a-1", "r/a-2"], true), "r/a", "r/a/");
        assert!(ours.is_empty());
        assert_eq!(rest, Rest::Under(None));
    }

    #[test]
    fn a_page_truncated_under_the_path_goes_on_after_its_last_key() {
        let (ours, rest) = split_by_key(page(&["r/a", "r/a/1", "r/a/2"], true), "r/a", "r/a/");
        assert_eq!(ours, ["r/a", "r/a/1", "r/a/2"]);
        assert_eq!(rest, Rest::Under(Some("r/a/2".into())));
    }

    #[test]
    fn a_page_that_reached_a_later_sibling_has_seen_everything() {
        let (ours, rest) = split_by_key(page(&["r/a/1", "r/ab", "r/ac"], true), "r/a", "r/a/");
        assert_eq!(ours, ["r/a/1"]);
        assert_eq!(rest, Rest::Done);
    }
}
