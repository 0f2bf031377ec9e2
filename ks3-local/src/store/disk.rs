//! The disk backend (`DIR`):
//! ```text
//! DIR/.tmp/<random>                       bodies being received (removed at start)
//! DIR/<bucket>/obj/<hh>/<sha256(key)>     one file per object: data ++ trailer
//! DIR/<bucket>/mpu/<uploadId>/upload.json an upload in progress
//! DIR/<bucket>/mpu/<uploadId>/part-<n>    its parts: data ++ trailer
//! ```
//! A trailer is `meta JSON ++ u32 LE length ++ "KS3LOC01"`, so one `rename` of a fully
//! written temp file publishes data and metadata together: a crash or a dropped connection
//! never leaves a partial object visible. Files are found again at start by their trailers.
//!
//! With `fsync`, a write is acknowledged only once the file and the directory entry that
//! names it are both on disk: an acknowledged object survives a power failure.
use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{Data, Object, ObjectMeta, Part, PartMeta, Upload, UploadInfo};
use crate::config::valid_bucket_name;

const MAGIC: &[u8; 8] = b"KS3LOC01";

/// Makes a directory's entries (a rename into it, a removal) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn key_hash(key: &str) -> String {
    ks3_proto::digest::hex(&Sha256::digest(key.as_bytes()))
}

/// A temp file removed on drop unless published.
#[derive(Debug)]
pub(super) struct TempPath(Option<PathBuf>);

impl TempPath {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    /// Gives up the removal on drop: the file was renamed into place.
    fn published(mut self) {
        self.0.take();
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A body being received into a temp file under `DIR/.tmp`.
pub(super) struct TempFile {
    file: tokio::io::BufWriter<tokio::fs::File>,
    path: TempPath,
    fsync: bool,
}

impl TempFile {
    pub(super) async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data).await
    }

    /// Appends the trailer and closes the file, synced when `fsync`: what is renamed into
    /// place later is then complete on disk.
    pub(super) async fn finish<T: Serialize>(self, trailer: &T) -> io::Result<TempPath> {
        let TempFile {
            mut file,
            path,
            fsync,
        } = self;
        let json = serde_json::to_vec(trailer)?;
        file.write_all(&json).await?;
        file.write_all(&(json.len() as u32).to_le_bytes()).await?;
        file.write_all(MAGIC).await?;
        file.flush().await?;
        let mut inner = file.into_inner();
        inner.flush().await?;
        if fsync {
            inner.sync_all().await?;
        }
        drop(inner);
        Ok(path)
    }
}

#[cfg(test)]
fn write_trailer_file<T: Serialize>(path: &Path, data: &[u8], meta: &T) -> io::Result<()> {
    use std::io::Write;
    let json = serde_json::to_vec(meta)?;
    let mut f = std::fs::File::create(path)?;
    f.write_all(data)?;
    f.write_all(&json)?;
    f.write_all(&(json.len() as u32).to_le_bytes())?;
    f.write_all(MAGIC)?;
    f.flush()
}

/// Reads a file's trailer: `(meta, data length)`.
fn read_trailer<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<(T, u64)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "no ks3-local trailer");
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len < 12 {
        return Err(bad());
    }
    f.seek(SeekFrom::Start(len - 12))?;
    let mut tail = [0u8; 12];
    f.read_exact(&mut tail)?;
    if &tail[4..] != MAGIC {
        return Err(bad());
    }
    let json_len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    if json_len + 12 > len {
        return Err(bad());
    }
    f.seek(SeekFrom::Start(len - 12 - json_len))?;
    let mut json = vec![0u8; json_len as usize];
    f.read_exact(&mut json)?;
    let meta = serde_json::from_slice(&json)?;
    Ok((meta, len - 12 - json_len))
}

/// Removes a published file; one already gone is no error.
pub(super) fn remove_file(path: &Path, fsync: bool) -> io::Result<()> {
    let removed = std::fs::remove_file(path);
    if removed.is_ok() && fsync {
        if let Some(parent) = path.parent() {
            let _ = sync_dir(parent);
        }
    }
    match removed {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The store's directory.
pub(super) struct Root {
    dir: PathBuf,
    fsync: bool,
}

impl Root {
    /// Opens (or creates) `dir` and empties `.tmp`: bodies being received when an earlier
    /// run stopped were never acknowledged.
    pub(super) fn open(dir: PathBuf, fsync: bool) -> io::Result<Root> {
        std::fs::create_dir_all(&dir)?;
        let root = Root { dir, fsync };
        let _ = std::fs::remove_dir_all(root.tmp());
        std::fs::create_dir_all(root.tmp())?;
        Ok(root)
    }

    fn tmp(&self) -> PathBuf {
        self.dir.join(".tmp")
    }

    fn bucket_dir(&self, name: &str) -> BucketDir {
        BucketDir {
            dir: self.dir.join(name),
            tmp: self.tmp(),
            fsync: self.fsync,
        }
    }

    /// The buckets an earlier run left, by name.
    pub(super) fn existing_buckets(&self) -> io::Result<Vec<(String, BucketDir)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().to_string();
            if e.path().is_dir() && valid_bucket_name(&name) {
                let dir = self.bucket_dir(&name);
                out.push((name, dir));
            }
        }
        Ok(out)
    }

    /// Creates a new bucket's directories (durably, with `fsync`).
    pub(super) fn create_bucket(&self, name: &str) -> io::Result<BucketDir> {
        let b = self.bucket_dir(name);
        std::fs::create_dir_all(b.dir.join("obj"))?;
        std::fs::create_dir_all(b.dir.join("mpu"))?;
        if self.fsync {
            sync_dir(&b.dir)?;
            sync_dir(&self.dir)?;
        }
        Ok(b)
    }
}

/// One bucket's directory.
pub(super) struct BucketDir {
    dir: PathBuf,
    tmp: PathBuf,
    fsync: bool,
}

/// Where a new object file goes (see [`BucketDir::object_target`]).
pub(super) struct ObjectTarget {
    path: PathBuf,
    parent: PathBuf,
    new_shard: bool,
}

impl BucketDir {
    pub(super) fn fsync(&self) -> bool {
        self.fsync
    }

    fn object_path(&self, key: &str) -> PathBuf {
        let h = key_hash(key);
        self.dir.join("obj").join(&h[..2]).join(h)
    }

    fn upload_dir(&self, id: &str) -> PathBuf {
        self.dir.join("mpu").join(id)
    }

    /// What an earlier run left: the objects, and the uploads in progress with the parts
    /// that were complete. Unreadable files are reported and skipped.
    pub(super) fn load(&self) -> io::Result<(BTreeMap<String, Object>, BTreeMap<String, Upload>)> {
        std::fs::create_dir_all(self.dir.join("obj"))?;
        std::fs::create_dir_all(self.dir.join("mpu"))?;
        let mut objects = BTreeMap::new();
        for shard in std::fs::read_dir(self.dir.join("obj"))? {
            let shard = shard?.path();
            if !shard.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&shard)? {
                let path = f?.path();
                match read_trailer::<ObjectMeta>(&path) {
                    Ok((meta, len)) if len == meta.size && self.object_path(&meta.key) == path => {
                        objects.insert(
                            meta.key.clone(),
                            Object {
                                meta: Arc::new(meta),
                                data: Data::File(path),
                            },
                        );
                    }
                    _ => tracing::warn!(
                        target: "ks3_local::store",
                        "ignoring unreadable object file {}",
                        path.display()
                    ),
                }
            }
        }
        let mut uploads = BTreeMap::new();
        for u in std::fs::read_dir(self.dir.join("mpu"))? {
            let udir = u?.path();
            let info: UploadInfo = match std::fs::read(udir.join("upload.json"))
                .ok()
                .and_then(|j| serde_json::from_slice(&j).ok())
            {
                Some(i) => i,
                None => {
                    tracing::warn!(
                        target: "ks3_local::store",
                        "ignoring unreadable upload {}",
                        udir.display()
                    );
                    continue;
                }
            };
            let mut parts = BTreeMap::new();
            for p in std::fs::read_dir(&udir)? {
                let path = p?.path();
                let is_part = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("part-"));
                if !is_part {
                    continue;
                }
                if let Ok((meta, len)) = read_trailer::<PartMeta>(&path) {
                    if len == meta.size {
                        parts.insert(
                            meta.number,
                            Part {
                                meta,
                                data: Data::File(path),
                            },
                        );
                    }
                }
            }
            uploads.insert(info.id.clone(), Upload::new(info, parts));
        }
        Ok((objects, uploads))
    }

    pub(super) async fn temp_file(&self) -> io::Result<TempFile> {
        let path = self.tmp.join(format!("{:032x}", rand::random::<u128>()));
        let file = tokio::fs::File::create(&path).await?;
        Ok(TempFile {
            file: tokio::io::BufWriter::with_capacity(1 << 20, file),
            path: TempPath(Some(path)),
            fsync: self.fsync,
        })
    }

    /// Where `key`'s file goes, its shard directory created: the part of publishing that
    /// need not happen under the index lock.
    pub(super) fn object_target(&self, key: &str) -> io::Result<ObjectTarget> {
        let path = self.object_path(key);
        let parent = path.parent().unwrap_or(&self.dir).to_path_buf();
        let new_shard = !parent.is_dir();
        if new_shard {
            std::fs::create_dir_all(&parent)?;
        }
        Ok(ObjectTarget {
            path,
            parent,
            new_shard,
        })
    }

    /// Renames the finished temp file into place. Called with the index locked, so that
    /// the files and the index change in the same order when one key is written twice at
    /// once.
    pub(super) fn publish_object(
        &self,
        target: &ObjectTarget,
        tmp: TempPath,
    ) -> io::Result<PathBuf> {
        std::fs::rename(tmp.path(), &target.path)?;
        tmp.published();
        Ok(target.path.clone())
    }

    /// The file was synced when finished; the rename is durable once its directory (and a
    /// directory created for it) is.
    pub(super) fn sync_published(&self, target: &ObjectTarget) -> io::Result<()> {
        if self.fsync {
            if target.new_shard {
                sync_dir(&self.dir.join("obj"))?;
            }
            sync_dir(&target.parent)?;
        }
        Ok(())
    }

    pub(super) fn publish_part(&self, id: &str, number: u32, tmp: TempPath) -> io::Result<PathBuf> {
        let udir = self.upload_dir(id);
        let path = udir.join(format!("part-{number:05}"));
        std::fs::rename(tmp.path(), &path)?;
        tmp.published();
        if self.fsync {
            sync_dir(&udir)?;
        }
        Ok(path)
    }

    /// Writes `upload.json` through a temp file and a rename, as objects are: an upload is
    /// either fully recorded or absent after a crash.
    pub(super) fn create_upload(&self, info: &UploadInfo) -> io::Result<()> {
        let udir = self.upload_dir(&info.id);
        std::fs::create_dir_all(&udir)?;
        let tmp = udir.join("upload.json.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(info)?)?;
            if self.fsync {
                f.sync_all()?;
            }
        }
        std::fs::rename(&tmp, udir.join("upload.json"))?;
        if self.fsync {
            sync_dir(&udir)?;
            sync_dir(&self.dir.join("mpu"))?;
        }
        Ok(())
    }

    /// Removes an upload's directory. Failures are ignored: the upload is already gone from
    /// the index, and a leftover directory is only found again at the next start.
    pub(super) fn remove_upload(&self, id: &str) {
        let _ = std::fs::remove_dir_all(self.upload_dir(id));
        if self.fsync {
            let _ = sync_dir(&self.dir.join("mpu"));
        }
    }

    /// Removes the (empty) bucket's directory.
    pub(super) fn remove(&self) -> io::Result<()> {
        std::fs::remove_dir_all(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let meta = PartMeta {
            number: 3,
            size: 5,
            md5: [1; 16],
            crc64: 9,
            last_modified_ms: 1,
        };
        write_trailer_file(&p, b"hello", &meta).unwrap();
        let (m, len): (PartMeta, u64) = read_trailer(&p).unwrap();
        assert_eq!((m.number, len), (3, 5));
        std::fs::write(&p, b"garbage without trailer").unwrap();
        assert!(read_trailer::<PartMeta>(&p).is_err());
        std::fs::write(&p, b"x").unwrap();
        assert!(read_trailer::<PartMeta>(&p).is_err());
    }
}
