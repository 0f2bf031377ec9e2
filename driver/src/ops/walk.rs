//! Walk: one flat listing (no delimiter, ~1 request per 1000 keys), directories inferred
//! from key order, skip-directory honoured by filtering and by jumping the marker.
use std::collections::VecDeque;
use std::sync::Arc;

use super::listing::PAGE_FLAT;
use super::{Driver, FileInfo};
use crate::error::DriverError;
use crate::http::Transport;
use crate::path::{DirPath, FilePath};

pub struct Walker<T> {
    driver: Arc<Driver<T>>,
    from: String,
    prefix: String,
    marker: Option<String>,
    /// The directory of the last file emitted; its ancestors have been emitted.
    prev_dir: String,
    skipped: Vec<String>,
    pending: VecDeque<FileInfo>,
    done: bool,
}

fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

fn is_under(p: &str, dir: &str) -> bool {
    dir == "/" || (p.len() > dir.len() && p.starts_with(dir) && p.as_bytes()[dir.len()] == b'/')
}

impl<T: Transport> Driver<T> {
    pub fn walk(
        self: &Arc<Self>,
        from: &DirPath,
        start_after: Option<&str>,
    ) -> Result<Walker<T>, DriverError> {
        let prefix = self.keys.dir_prefix(from);
        let mut w = Walker {
            driver: Arc::clone(self),
            from: from.to_string(),
            prefix: prefix.clone(),
            marker: None,
            prev_dir: from.to_string(),
            skipped: Vec::new(),
            pending: VecDeque::new(),
            done: false,
        };
        // The hint is a position in path order, not a path to operate on: any string is
        // accepted, and only one inside the walked tree moves the listing's marker.
        if let Some(hint) = start_after.filter(|h| !h.is_empty()) {
            match FilePath::parse(hint) {
                Ok(file) if is_under(hint, from) => {
                    w.marker = Some(self.keys.key(&file));
                    // The hint's ancestors were walked before; do not report them again.
                    w.prev_dir = parent(hint).to_string();
                }
                // Past the whole subtree (in path order): nothing is left to walk. (`from`
                // is not the root here, which holds every valid path.)
                _ if !is_under(hint, from) && hint > from.as_str() => {
                    w.done = hint >= format!("{from}/").as_str();
                }
                _ => {}
            }
        }
        Ok(w)
    }
}

impl<T: Transport> Walker<T> {
    fn skipped(&self, p: &str) -> bool {
        self.skipped.iter().any(|d| is_under(p, d))
    }

    /// Directories between `prev_dir` and `file`'s parent that were not reported yet.
    fn new_dirs(&self, file: &str) -> Vec<String> {
        let mut dirs = Vec::new();
        let mut d = parent(file);
        while d != "/" && d != self.from && is_under(d, &self.from) {
            if d == self.prev_dir || is_under(&self.prev_dir, d) {
                break;
            }
            dirs.push(d.to_string());
            d = parent(d);
        }
        dirs.reverse();
        dirs
    }

    fn fetch(&mut self) -> Result<(), DriverError> {
        let d = Arc::clone(&self.driver);
        let page = d.list_page(
            &self.prefix,
            false,
            self.marker.as_deref(),
            PAGE_FLAT,
            &self.from,
        )?;
        for e in &page.entries {
            // `~` sorts after every path character: from the first such key on (the
            // driver's hidden `~tails/` tree at the root) nothing is a path.
            if e.key.as_bytes().get(self.prefix.len()) == Some(&b'~') {
                self.done = true;
                return Ok(());
            }
            let Some(info) = d.entry_info(e) else {
                continue;
            };
            if self.skipped(&info.path) {
                continue;
            }
            for dir in self.new_dirs(&info.path) {
                if !self.skipped(&dir) {
                    self.pending.push_back(FileInfo::dir(dir));
                }
            }
            self.prev_dir = parent(&info.path).to_string();
            self.pending.push_back(info);
        }
        match page.next_marker {
            Some(m) => self.marker = Some(m),
            None => self.done = true,
        }
        Ok(())
    }

    pub fn next(&mut self, max: usize) -> Result<Vec<FileInfo>, DriverError> {
        let max = max.max(1);
        while self.pending.len() < max && !self.done {
            self.fetch()?;
        }
        let n = self.pending.len().min(max);
        Ok(self.pending.drain(..n).collect())
    }

    pub fn skip_directory(&mut self, dir: &FilePath) {
        // Jump the listing past the directory: `~` sorts after every path character.
        let jump = format!("{}~", self.driver.keys.file_dir_prefix(dir));
        let dir = dir.as_str();
        self.pending.retain(|i| !is_under(&i.path, dir));
        if self.marker.as_deref().is_none_or(|m| m < jump.as_str()) && !self.done {
            self.marker = Some(jump);
        }
        self.skipped.push(dir.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_helpers() {
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert!(is_under("/a/b", "/a"));
        assert!(!is_under("/a-b", "/a"));
        assert!(!is_under("/a", "/a"));
        assert!(is_under("/a", "/"));
    }
}
