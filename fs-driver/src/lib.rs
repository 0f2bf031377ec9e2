//! A filesystem storage driver: the `registry:storage-driver` contract over a directory
//! (distribution's `filesystem` driver is the model). Compiled to `wasm32-wasip2`, `std::fs`
//! is `wasi:filesystem` on the host's preopened directories, so the same code builds and is
//! unit-tested natively; only the WIT glue (`component.rs`) is wasm-only.
//!
//! Layout under the root directory: a driver path `/a/b` is the file `<root>/a/b`.
//! Uploads live beside the content in a tree no driver path can name (`~` is outside the
//! path alphabet): `<root>/~uploads/a/b~` for `/a/b`, so that deleting `/a` can remove the
//! uploads under it by removing `<root>/~uploads/a` and `<root>/~uploads/a~`.
//! `put-content` writes `<root>/~tmp/<unique>` and renames it into place.
//! Directories are implicit: one left empty by a delete or a move is removed, up to the
//! root, so that a directory is always "a prefix with at least one object".
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[cfg(target_arch = "wasm32")]
mod component;

/// The driver's registration name: its variables are `REGISTRY_STORAGE_FILESYSTEM_*`.
pub const DRIVER_NAME: &str = "filesystem";
/// The root directory's variable (distribution's `rootdirectory`).
pub const ROOT_VAR: &str = "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY";
/// The largest chunk a reader returns.
pub const MAX_READ: usize = 4 << 20;

const UPLOADS: &str = "~uploads";
const TMP: &str = "~tmp";

/// The contract's errors (the WIT `driver-error`, minus what this driver never returns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    PathNotFound(String),
    InvalidPath(String),
    InvalidOffset {
        path: String,
        offset: i64,
    },
    /// A backend error: `status` 403 (permission) or 507 (full disk).
    Backend {
        code: String,
        status: u16,
        message: String,
        path: String,
    },
    Config {
        parameter: String,
        message: String,
    },
    /// An I/O failure; `integrity` when the data is not what was expected.
    Io {
        integrity: bool,
        message: String,
    },
    InvalidState(String),
}

/// Metadata of a file or an implicit directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub path: String,
    pub size: u64,
    pub mod_time_ns: u64,
    pub is_dir: bool,
}

/// `^(/[A-Za-z0-9._-]+)+$`.
pub fn valid_path(p: &str) -> bool {
    p.len() > 1
        && p.starts_with('/')
        && p[1..].split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

fn check_file(p: &str) -> Result<(), Error> {
    if valid_path(p) {
        Ok(())
    } else {
        Err(Error::InvalidPath(p.to_string()))
    }
}

/// A path that may also be the root `/`.
fn check_dir(p: &str) -> Result<(), Error> {
    if p == "/" {
        Ok(())
    } else {
        check_file(p)
    }
}

/// `e` as the contract's error for an operation on `path`.
fn io_error(e: io::Error, path: &str, what: &str) -> Error {
    match e.kind() {
        // `/a/b` where `/a` is a file: no such path either.
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
            Error::PathNotFound(path.to_string())
        }
        io::ErrorKind::PermissionDenied => Error::Backend {
            code: "PermissionDenied".into(),
            status: 403,
            message: format!("{what} {path}: {e}"),
            path: path.to_string(),
        },
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Error::Backend {
            code: "StorageFull".into(),
            status: 507,
            message: format!("{what} {path}: {e}"),
            path: path.to_string(),
        },
        _ => Error::Io {
            integrity: false,
            message: format!("{what} {path}: {e}"),
        },
    }
}

/// Like [`io_error`], but a missing file is an I/O error too (it is the driver's own).
fn internal(e: io::Error, path: &str, what: &str) -> Error {
    match io_error(e, path, what) {
        Error::PathNotFound(_) => Error::Io {
            integrity: false,
            message: format!("{what} {path}: not found"),
        },
        other => other,
    }
}

fn mod_time_ns(m: &fs::Metadata) -> u64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The driver over one root directory.
#[derive(Debug, Clone)]
pub struct Driver {
    root: PathBuf,
}

impl Driver {
    pub fn new(root: impl Into<PathBuf>) -> Driver {
        Driver { root: root.into() }
    }

    /// The driver configured from the environment (`REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY`,
    /// default `/`).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Driver, Error> {
        let root = get(ROOT_VAR).unwrap_or_default();
        let root = root.trim();
        if root.is_empty() {
            return Ok(Driver::new("/"));
        }
        if !root.starts_with('/') {
            return Err(Error::Config {
                parameter: "rootdirectory".into(),
                message: format!("`{root}` is not an absolute path"),
            });
        }
        Ok(Driver::new(root))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of a driver path (checked: `/` or the path rule).
    fn fs_path(&self, p: &str) -> PathBuf {
        let rel = p.trim_start_matches('/');
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    fn upload_file(&self, p: &str) -> PathBuf {
        self.root
            .join(UPLOADS)
            .join(format!("{}~", p.trim_start_matches('/')))
    }

    fn upload_dir(&self, p: &str) -> PathBuf {
        self.root.join(UPLOADS).join(p.trim_start_matches('/'))
    }

    /// Removes every upload at `p` and under `p/`.
    fn discard_uploads(&self, p: &str, under: bool) -> Result<(), Error> {
        ignore_missing(
            fs::remove_file(self.upload_file(p)),
            p,
            "discarding the upload of",
        )?;
        if under {
            ignore_missing(
                fs::remove_dir_all(self.upload_dir(p)),
                p,
                "discarding the uploads under",
            )?;
        }
        Ok(())
    }

    /// Removes the empty directories from `p`'s parent up to the root (not the root).
    fn prune_parents(&self, p: &str) {
        let mut cur = p;
        while let Some((parent, _)) = cur.rsplit_once('/') {
            if parent.is_empty() || fs::remove_dir(self.fs_path(parent)).is_err() {
                return;
            }
            cur = parent;
        }
    }

    fn create_parent(&self, file: &Path, p: &str) -> Result<(), Error> {
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent).map_err(|e| internal(e, p, "creating the directory of"))?;
        }
        Ok(())
    }

    /// A path in `~tmp` no one else uses.
    fn temp_file(&self) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        self.root.join(TMP).join(format!("{t:x}-{n:x}"))
    }

    pub fn get_content(&self, p: &str) -> Result<Vec<u8>, Error> {
        check_file(p)?;
        let f = self.fs_path(p);
        match fs::metadata(&f) {
            Ok(m) if m.is_file() => fs::read(&f).map_err(|e| io_error(e, p, "reading")),
            Ok(_) => Err(Error::PathNotFound(p.to_string())),
            Err(e) => Err(io_error(e, p, "reading")),
        }
    }

    pub fn put_content(&self, p: &str, content: &[u8]) -> Result<(), Error> {
        check_file(p)?;
        let tmp = self.temp_file();
        self.create_parent(&tmp, p)?;
        let written = File::create(&tmp)
            .and_then(|mut f| f.write_all(content).and_then(|()| f.sync_all()))
            .map_err(|e| internal(e, p, "writing"));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let dest = self.fs_path(p);
        let placed = self
            .create_parent(&dest, p)
            .and_then(|()| fs::rename(&tmp, &dest).map_err(|e| internal(e, p, "storing")));
        if placed.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        placed
    }

    pub fn reader(&self, p: &str, offset: i64) -> Result<FileReader, Error> {
        check_file(p)?;
        let Ok(start) = u64::try_from(offset) else {
            return Err(Error::InvalidOffset {
                path: p.to_string(),
                offset,
            });
        };
        let f = self.fs_path(p);
        let mut file = File::open(&f).map_err(|e| io_error(e, p, "opening"))?;
        let meta = file.metadata().map_err(|e| io_error(e, p, "opening"))?;
        if !meta.is_file() {
            return Err(Error::PathNotFound(p.to_string()));
        }
        let at = start.min(meta.len());
        file.seek(SeekFrom::Start(at))
            .map_err(|e| io_error(e, p, "seeking in"))?;
        Ok(FileReader {
            path: p.to_string(),
            file,
            // An offset past the end: at the end, but the position counts from the offset.
            position: start,
            at_end: start >= meta.len(),
        })
    }

    pub fn writer(&self, p: &str, append: bool) -> Result<FileWriter, Error> {
        check_file(p)?;
        let up = self.upload_file(p);
        let file = if append {
            match OpenOptions::new().append(true).open(&up) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // A committed zero-length object can be extended; nothing else.
                    match fs::metadata(self.fs_path(p)) {
                        Ok(m) if m.is_file() && m.len() == 0 => self.new_upload(&up, p)?,
                        Ok(_) => return Err(Error::PathNotFound(p.to_string())),
                        Err(e) => return Err(io_error(e, p, "resuming the upload of")),
                    }
                }
                Err(e) => return Err(internal(e, p, "resuming the upload of")),
            }
        } else {
            self.new_upload(&up, p)?
        };
        let size = file
            .metadata()
            .map_err(|e| internal(e, p, "resuming the upload of"))?
            .len();
        Ok(FileWriter {
            driver: self.clone(),
            path: p.to_string(),
            upload: up,
            file: Some(file),
            size,
            state: WriterState::Open,
        })
    }

    /// An empty upload file at `up`, replacing any (the new writer owns the path).
    fn new_upload(&self, up: &Path, p: &str) -> Result<File, Error> {
        self.create_parent(up, p)?;
        // A fresh inode: a writer still holding the old upload writes into a file that
        // no longer has a name, and its commit fails instead of taking this one's.
        ignore_missing(fs::remove_file(up), p, "discarding the upload of")?;
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(up)
            .map_err(|e| internal(e, p, "starting the upload of"))
    }

    pub fn stat(&self, p: &str) -> Result<FileInfo, Error> {
        check_dir(p)?;
        let f = self.fs_path(p);
        let m = fs::metadata(&f).map_err(|e| io_error(e, p, "stat"))?;
        if m.is_file() && p != "/" {
            return Ok(FileInfo {
                path: p.to_string(),
                size: m.len(),
                mod_time_ns: mod_time_ns(&m),
                is_dir: false,
            });
        }
        if m.is_dir() && !self.children(p)?.is_empty() {
            return Ok(FileInfo {
                path: p.to_string(),
                size: 0,
                mod_time_ns: 0,
                is_dir: true,
            });
        }
        Err(Error::PathNotFound(p.to_string()))
    }

    /// The visible entry names of the directory of `p` (none if it is missing or a file).
    fn children(&self, p: &str) -> Result<Vec<(String, bool)>, Error> {
        let entries = match fs::read_dir(self.fs_path(p)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Ok(Vec::new()),
            Err(e) => return Err(io_error(e, p, "listing")),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(e, p, "listing"))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue; // not a name any driver path can have
            };
            let child = join(p, &name);
            if !valid_path(&child) {
                continue; // `~uploads`, `~tmp`, and files no driver wrote
            }
            let is_dir = entry
                .file_type()
                .map_err(|e| io_error(e, &child, "listing"))?
                .is_dir();
            out.push((name, is_dir));
        }
        Ok(out)
    }

    pub fn list(&self, p: &str) -> Result<Vec<String>, Error> {
        check_dir(p)?;
        let children = self.children(p)?;
        if children.is_empty() && p != "/" {
            return Err(Error::PathNotFound(p.to_string()));
        }
        Ok(children.into_iter().map(|(n, _)| join(p, &n)).collect())
    }

    pub fn mv(&self, source: &str, dest: &str) -> Result<(), Error> {
        check_file(source)?;
        check_file(dest)?;
        let from = self.fs_path(source);
        match fs::metadata(&from) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(Error::PathNotFound(source.to_string())),
            Err(e) => return Err(io_error(e, source, "moving")),
        }
        if source == dest {
            return self.discard_uploads(source, false);
        }
        let to = self.fs_path(dest);
        self.create_parent(&to, dest)?;
        fs::rename(&from, &to).map_err(|e| io_error(e, source, "moving"))?;
        self.discard_uploads(source, false)?;
        self.discard_uploads(dest, false)?;
        self.prune_parents(source);
        Ok(())
    }

    pub fn delete(&self, p: &str) -> Result<(), Error> {
        check_file(p)?;
        let f = self.fs_path(p);
        let m = fs::symlink_metadata(&f).map_err(|e| io_error(e, p, "deleting"))?;
        if m.is_dir() {
            if self.children(p)?.is_empty() {
                return Err(Error::PathNotFound(p.to_string()));
            }
            fs::remove_dir_all(&f).map_err(|e| io_error(e, p, "deleting"))?;
        } else {
            fs::remove_file(&f).map_err(|e| io_error(e, p, "deleting"))?;
        }
        self.discard_uploads(p, true)?;
        self.prune_parents(p);
        Ok(())
    }

    pub fn walk(&self, p: &str, start_after: Option<&str>) -> Result<Walker, Error> {
        check_dir(p)?;
        let mut entries = Vec::new();
        self.collect(p, &mut entries)?;
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        if let Some(after) = start_after {
            entries.retain(|e| e.path.as_str() > after);
        }
        entries.reverse();
        Ok(Walker {
            pending: entries,
            skipped: Vec::new(),
        })
    }

    /// Everything under `p`, depth first.
    fn collect(&self, p: &str, out: &mut Vec<FileInfo>) -> Result<(), Error> {
        for (name, is_dir) in self.children(p)? {
            let child = join(p, &name);
            if is_dir {
                let before = out.len();
                out.push(FileInfo {
                    path: child.clone(),
                    size: 0,
                    mod_time_ns: 0,
                    is_dir: true,
                });
                self.collect(&child, out)?;
                if out.len() == before + 1 {
                    out.pop(); // an empty directory is no directory
                }
            } else {
                match fs::metadata(self.fs_path(&child)) {
                    Ok(m) => out.push(FileInfo {
                        path: child,
                        size: m.len(),
                        mod_time_ns: mod_time_ns(&m),
                        is_dir: false,
                    }),
                    // Deleted while walking.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error(e, &child, "walking")),
                }
            }
        }
        Ok(())
    }
}

fn ignore_missing(r: io::Result<()>, p: &str, what: &str) -> Result<(), Error> {
    match r {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(internal(e, p, what)),
        _ => Ok(()),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// A reader from an offset.
#[derive(Debug)]
pub struct FileReader {
    path: String,
    file: File,
    position: u64,
    at_end: bool,
}

impl FileReader {
    pub fn read(&mut self, max: usize) -> Result<Vec<u8>, Error> {
        if self.at_end || max == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; max.min(MAX_READ)];
        let n = loop {
            match self.file.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(e, &self.path, "reading")),
            }
        };
        if n == 0 {
            self.at_end = true;
        }
        buf.truncate(n);
        self.position = self.position.saturating_add(n as u64);
        Ok(buf)
    }

    pub fn position(&self) -> u64 {
        self.position
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterState {
    Open,
    Closed,
    Committed,
    Cancelled,
}

/// An upload: bytes go to the upload file, which `commit` renames into place.
#[derive(Debug)]
pub struct FileWriter {
    driver: Driver,
    path: String,
    upload: PathBuf,
    file: Option<File>,
    size: u64,
    state: WriterState,
}

impl FileWriter {
    fn open(&self, what: &str) -> Result<(), Error> {
        match self.state {
            WriterState::Open => Ok(()),
            s => Err(Error::InvalidState(format!(
                "{what} on the writer of {}: it is {}",
                self.path,
                match s {
                    WriterState::Closed => "closed",
                    WriterState::Committed => "committed",
                    _ => "cancelled",
                }
            ))),
        }
    }

    pub fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.open("write")?;
        let new_size = self
            .size
            .checked_add(data.len() as u64)
            .ok_or_else(|| Error::InvalidState(format!("{} would exceed 2^64 bytes", self.path)))?;
        let Some(file) = self.file.as_mut() else {
            return Err(Error::InvalidState(format!("no upload for {}", self.path)));
        };
        file.write_all(data)
            .map_err(|e| internal(e, &self.path, "writing the upload of"))?;
        self.size = new_size;
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn close(&mut self) -> Result<(), Error> {
        match self.state {
            WriterState::Committed | WriterState::Closed => return Ok(()),
            WriterState::Cancelled => return self.open("close"),
            WriterState::Open => {}
        }
        if let Some(f) = self.file.take() {
            f.sync_all()
                .map_err(|e| internal(e, &self.path, "closing the upload of"))?;
        }
        self.state = WriterState::Closed;
        Ok(())
    }

    /// Whether the upload file at the path is still the one this writer writes: a later
    /// `writer(path, false)` replaces it with a new file, which this writer must neither
    /// commit nor remove. (The same length and modification time as the open handle's;
    /// WASI gives no inode numbers.) True when the writer holds no handle (after close).
    fn still_ours(&self) -> bool {
        let Some(file) = self.file.as_ref() else {
            return true;
        };
        match (file.metadata(), fs::metadata(&self.upload)) {
            (Ok(mine), Ok(there)) => {
                mine.len() == there.len() && mine.modified().ok() == there.modified().ok()
            }
            _ => false,
        }
    }

    pub fn cancel(&mut self) -> Result<(), Error> {
        if self.state == WriterState::Committed {
            return self.open("cancel");
        }
        if !self.still_ours() {
            // Another writer owns the path now: nothing of this one is left to remove.
            self.file = None;
            self.state = WriterState::Cancelled;
            return Ok(());
        }
        self.file = None;
        self.state = WriterState::Cancelled;
        ignore_missing(
            fs::remove_file(&self.upload),
            &self.path,
            "cancelling the upload of",
        )
    }

    pub fn commit(&mut self) -> Result<(), Error> {
        self.open("commit")?;
        if let Some(f) = self.file.as_ref() {
            f.sync_all()
                .map_err(|e| internal(e, &self.path, "committing the upload of"))?;
        }
        // The upload must still be this writer's (another writer may have replaced it).
        if !self.still_ours() {
            return Err(Error::InvalidState(format!(
                "committing {}: a newer writer replaced this upload",
                self.path
            )));
        }
        let on_disk = fs::metadata(&self.upload)
            .map_err(|e| internal(e, &self.path, "committing the upload of"))?;
        if on_disk.len() != self.size {
            return Err(Error::Io {
                integrity: true,
                message: format!(
                    "committing {}: the upload holds {} bytes, the writer wrote {}",
                    self.path,
                    on_disk.len(),
                    self.size
                ),
            });
        }
        let dest = self.driver.fs_path(&self.path);
        self.driver.create_parent(&dest, &self.path)?;
        fs::rename(&self.upload, &dest)
            .map_err(|e| internal(e, &self.path, "committing the upload of"))?;
        self.file = None;
        self.state = WriterState::Committed;
        Ok(())
    }
}

/// A walk over a sorted snapshot of the tree.
#[derive(Debug)]
pub struct Walker {
    /// Entries still to give, last first.
    pending: Vec<FileInfo>,
    skipped: Vec<String>,
}

impl Walker {
    pub fn next(&mut self, max: usize) -> Vec<FileInfo> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(e) = self.pending.pop() else { break };
            let skip = self.skipped.iter().any(|d| {
                e.path
                    .strip_prefix(d.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
            });
            if !skip {
                out.push(e);
            }
        }
        out
    }

    pub fn skip_directory(&mut self, p: &str) {
        self.skipped.push(p.to_string());
    }
}

#[cfg(test)]
mod tests;
