//! ListObjects (v1) pages, and the listings built on them: direct children and "does this
//! directory have anything in it".
use super::{Driver, FileInfo};
use crate::client::{Call, MAX_XML};
use crate::error::DriverError;
use crate::http::{Response, Transport};
use crate::path::{self, DirPath};
use ks3_proto::xml::ListBucketResult;

/// KS3 returns at most 100 entries per page when a delimiter is given, 1000 otherwise.
pub(crate) const PAGE_WITH_DELIMITER: u32 = ks3_proto::limits::MAX_KEYS_DELIMITED;
pub(crate) const PAGE_FLAT: u32 = ks3_proto::limits::MAX_KEYS;

pub(crate) struct Entry {
    pub key: String,
    pub size: u64,
    pub mod_time_ns: u64,
}

pub(crate) struct Page {
    pub entries: Vec<Entry>,
    pub prefixes: Vec<String>,
    /// Where the next page starts, if the listing is truncated.
    pub next_marker: Option<String>,
}

impl<T: Transport> Driver<T> {
    pub(crate) fn list_page(
        &self,
        prefix: &str,
        delimiter: bool,
        marker: Option<&str>,
        max_keys: u32,
        p: &str,
    ) -> Result<Page, DriverError> {
        let call = Self::list_page_call(prefix, delimiter, marker, max_keys, p);
        let resp = self.client.send(&call)?.resp;
        self.read_list_page(resp, prefix, marker, p)
    }

    /// The request of [`Self::list_page`], to send with others.
    pub(crate) fn list_page_call<'a>(
        prefix: &'a str,
        delimiter: bool,
        marker: Option<&'a str>,
        max_keys: u32,
        p: &'a str,
    ) -> Call<'a> {
        let mut call = Call::new("GET", "", p)
            .query("prefix", prefix)
            .query("max-keys", max_keys.to_string());
        if delimiter {
            call = call.query("delimiter", "/");
        }
        if let Some(m) = marker {
            call = call.query("marker", m);
        }
        call.buffered(MAX_XML)
    }

    /// The answer to [`Self::list_page_call`].
    pub(crate) fn read_list_page(
        &self,
        resp: Response,
        prefix: &str,
        marker: Option<&str>,
        p: &str,
    ) -> Result<Page, DriverError> {
        let page: ListBucketResult = self.client.read_xml(resp, p)?;
        let entries: Vec<Entry> = page
            .contents
            .into_iter()
            .map(|c| Entry {
                mod_time_ns: c
                    .last_modified
                    .as_deref()
                    .and_then(ks3_proto::date::parse_iso8601)
                    .map(|n| n.max(0) as u64)
                    .unwrap_or(0),
                key: c.key,
                size: c.size,
            })
            .collect();
        let prefixes: Vec<String> = page.common_prefixes.into_iter().map(|c| c.prefix).collect();
        // KS3 lists only what starts with the prefix asked for; a key or common prefix
        // outside it (the fuzzer had a server answer `reg/ac/` to a listing of `reg/a/`)
        // would surface as a child of the wrong directory.
        let outside = entries
            .iter()
            .map(|e| e.key.as_str())
            .chain(prefixes.iter().map(String::as_str))
            .find(|k| !k.starts_with(prefix));
        if let Some(k) = outside {
            return Err(DriverError::io(
                p,
                format!("list response names `{k}`, outside the listed prefix `{prefix}`"),
            ));
        }
        let next_marker = if page.is_truncated {
            let nm = page.next_marker.unwrap_or_default();
            let last = entries
                .last()
                .map(|e| e.key.as_str())
                .into_iter()
                .chain(prefixes.last().map(|s| s.as_str()))
                .max();
            let m = if !nm.is_empty() {
                Some(nm)
            } else {
                last.map(str::to_string)
            };
            // A truncated page that does not move the marker forward would loop forever.
            match (&m, marker) {
                (None, _) => {
                    return Err(DriverError::io(
                        p,
                        "list response is truncated but gives no marker",
                    ))
                }
                (Some(m), Some(old)) if m.as_str() <= old => {
                    return Err(DriverError::io(
                        p,
                        "list response is truncated but its marker does not advance",
                    ))
                }
                _ => m,
            }
        } else {
            None
        };
        Ok(Page {
            entries,
            prefixes,
            next_marker,
        })
    }

    /// True when anything the driver can see lives under `p/`.
    pub(crate) fn has_children(&self, p: &DirPath) -> Result<bool, DriverError> {
        let prefix = self.keys.dir_prefix(p);
        let mut marker: Option<String> = None;
        loop {
            let page = self.list_page(&prefix, false, marker.as_deref(), PAGE_FLAT, p)?;
            if page
                .entries
                .iter()
                .any(|e| path::is_file_key(&self.keys, &e.key).is_some())
            {
                return Ok(true);
            }
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => return Ok(false),
            }
        }
    }

    pub fn list(&self, p: &DirPath) -> Result<Vec<String>, DriverError> {
        let prefix = self.keys.dir_prefix(p);
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self.list_page(&prefix, true, marker.as_deref(), PAGE_WITH_DELIMITER, p)?;
            out.extend(
                page.entries
                    .iter()
                    .filter_map(|e| path::is_file_key(&self.keys, &e.key))
                    .map(|f| f.to_string()),
            );
            out.extend(
                page.prefixes
                    .iter()
                    .filter_map(|pre| self.keys.path_of(pre))
                    .map(|f| f.to_string()),
            );
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        if out.is_empty() && !p.is_root() {
            return Err(DriverError::PathNotFound(p.to_string()));
        }
        Ok(out)
    }

    pub(crate) fn entry_info(&self, e: &Entry) -> Option<FileInfo> {
        path::is_file_key(&self.keys, &e.key).map(|path| FileInfo {
            path: path.to_string(),
            size: e.size,
            mod_time_ns: e.mod_time_ns,
            is_dir: false,
        })
    }
}
