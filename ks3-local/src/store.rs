//! Object storage: an in-memory index per bucket over either RAM (`Bytes`) or files.
//!
//! On disk (`DIR`):
//! ```text
//! DIR/.tmp/<random>                       bodies being received (removed at start)
//! DIR/<bucket>/obj/<hh>/<sha256(key)>     one file per object: data ++ trailer
//! DIR/<bucket>/mpu/<uploadId>/upload.json an upload in progress
//! DIR/<bucket>/mpu/<uploadId>/part-<n>    its parts: data ++ trailer
//! ```
//! A trailer is `meta JSON ++ u32 LE length ++ "KS3LOC01"`, so one `rename` of a fully
//! written temp file publishes data and metadata together: a crash or a dropped connection
//! never leaves a partial object visible. Files are found again at start by their trailers.
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use bytes::{Bytes, BytesMut};
use ks3_proto::digest::Md5Stream;
use ks3_proto::Crc64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::config::valid_bucket_name;
use crate::sync::{lock, read, write};

const MAGIC: &[u8; 8] = b"KS3LOC01";

/// Why a store operation failed, in the store's own terms; the handlers decide what each
/// means on the wire.
#[derive(Debug)]
pub enum StoreError {
    InvalidBucketName(String),
    BucketAlreadyExists(String),
    NoSuchBucket(String),
    BucketNotEmpty(String),
    NoSuchKey(String),
    /// The upload does not exist (any more) for that key.
    NoSuchUpload(String),
    Io(io::Error),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::InvalidBucketName(b) => write!(f, "invalid bucket name {b:?}"),
            StoreError::BucketAlreadyExists(b) => write!(f, "bucket {b} already exists"),
            StoreError::NoSuchBucket(b) => write!(f, "no bucket {b}"),
            StoreError::BucketNotEmpty(b) => write!(f, "bucket {b} is not empty"),
            StoreError::NoSuchKey(k) => write!(f, "no object {k:?}"),
            StoreError::NoSuchUpload(id) => write!(f, "no multipart upload {id}"),
            // Bare, as a multi-object delete quotes it in its per-key error.
            StoreError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        StoreError::Io(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Attributes given at PUT / initiate time and returned on GET / HEAD.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Attrs {
    pub content_type: Option<String>,
    pub sse: Option<String>,
    pub storage_class: Option<String>,
    /// `x-kss-meta-*` headers, names lower-cased.
    pub user_meta: Vec<(String, String)>,
    /// Stored standard headers: cache-control, content-disposition, content-encoding,
    /// content-language, expires.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// Quoted.
    pub etag: String,
    pub crc64: u64,
    pub last_modified_ms: i64,
    pub attrs: Attrs,
    /// Number of parts for a multipart object.
    pub parts: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartMeta {
    pub number: u32,
    pub size: u64,
    pub md5: [u8; 16],
    pub crc64: u64,
    pub last_modified_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadInfo {
    pub id: String,
    pub key: String,
    pub initiated_ms: i64,
    pub attrs: Attrs,
}

/// Where the bytes are.
#[derive(Debug, Clone)]
pub enum Data {
    File(PathBuf),
    Mem(Bytes),
}

/// Readable data, opened while the index was locked (so it matches its metadata even if
/// the key is overwritten or deleted right after).
pub enum Opened {
    File(std::fs::File),
    Mem(Bytes),
}

#[derive(Debug, Clone)]
pub struct Object {
    pub meta: Arc<ObjectMeta>,
    data: Data,
}

#[derive(Debug, Clone)]
pub struct Part {
    pub meta: PartMeta,
    data: Data,
}

pub struct Upload {
    pub info: UploadInfo,
    pub parts: BTreeMap<u32, Part>,
    /// Serialises Complete and Abort of one upload.
    pub op_lock: Arc<tokio::sync::Mutex<()>>,
}

/// What a finished Complete returned, so a retried Complete gets the same answer.
#[derive(Debug, Clone)]
pub struct Completed {
    pub key: String,
    pub etag: String,
    pub crc64: u64,
    pub modified_ms: i64,
}

/// A temp file removed on drop unless published.
#[derive(Debug)]
pub struct TempPath(Option<PathBuf>);

impl TempPath {
    fn take(mut self) -> PathBuf {
        self.0.take().unwrap_or_default()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Fully written data, not yet visible.
pub enum Staged {
    File(TempPath),
    Mem(Bytes),
}

enum SinkInner {
    File {
        file: tokio::io::BufWriter<tokio::fs::File>,
        path: TempPath,
    },
    Mem(BytesMut),
}

/// Receives a body (to a temp file or RAM), computing MD5, CRC-64 and length on the way.
pub struct Sink {
    inner: SinkInner,
    /// `fsync` the file when finished.
    fsync: bool,
    md5: Option<Md5Stream>,
    crc: Crc64,
    len: u64,
}

impl Sink {
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        if let Some(m) = self.md5.as_mut() {
            m.update(data);
        }
        self.crc.update(data);
        self.len += data.len() as u64;
        match &mut self.inner {
            SinkInner::File { file, .. } => file.write_all(data).await?,
            SinkInner::Mem(buf) => buf.extend_from_slice(data),
        }
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn crc64(&self) -> u64 {
        self.crc.value()
    }

    /// MD5 of everything written (zeros when the sink was created without MD5).
    pub fn md5(&self) -> [u8; 16] {
        self.md5.clone().map(|m| m.finish()).unwrap_or_default()
    }

    /// Appends the trailer (files only) and closes the file.
    pub async fn finish<T: Serialize>(self, trailer: &T) -> Result<Staged> {
        match self.inner {
            SinkInner::File { mut file, path } => {
                let json = serde_json::to_vec(trailer).map_err(io::Error::from)?;
                file.write_all(&json).await?;
                file.write_all(&(json.len() as u32).to_le_bytes()).await?;
                file.write_all(MAGIC).await?;
                file.flush().await?;
                let mut inner = file.into_inner();
                inner.flush().await?;
                if self.fsync {
                    inner.sync_all().await?;
                }
                drop(inner);
                Ok(Staged::File(path))
            }
            SinkInner::Mem(buf) => Ok(Staged::Mem(buf.freeze())),
        }
    }
}

pub struct Bucket {
    pub name: String,
    pub created_ms: i64,
    /// `fsync` files and directories before a write is acknowledged (on disk).
    fsync: bool,
    dir: Option<PathBuf>,
    tmp: Option<PathBuf>,
    objects: RwLock<BTreeMap<String, Object>>,
    uploads: Mutex<BTreeMap<String, Upload>>,
    completed: Mutex<HashMap<String, Completed>>,
}

/// Makes a directory's entries (a rename into it, a removal) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn key_hash(key: &str) -> String {
    ks3_proto::digest::hex(&Sha256::digest(key.as_bytes()))
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

impl Bucket {
    fn new(name: &str, dir: Option<PathBuf>, tmp: Option<PathBuf>, fsync: bool) -> Bucket {
        Bucket {
            name: name.to_string(),
            created_ms: now_ms(),
            fsync,
            dir,
            tmp,
            objects: RwLock::new(BTreeMap::new()),
            uploads: Mutex::new(BTreeMap::new()),
            completed: Mutex::new(HashMap::new()),
        }
    }

    fn object_path(&self, dir: &Path, key: &str) -> PathBuf {
        let h = key_hash(key);
        dir.join("obj").join(&h[..2]).join(h)
    }

    fn upload_dir(&self, dir: &Path, id: &str) -> PathBuf {
        dir.join("mpu").join(id)
    }

    /// Loads a bucket directory written by an earlier run.
    fn load(name: &str, dir: PathBuf, tmp: PathBuf, fsync: bool) -> io::Result<Bucket> {
        std::fs::create_dir_all(dir.join("obj"))?;
        std::fs::create_dir_all(dir.join("mpu"))?;
        let b = Bucket::new(name, Some(dir.clone()), Some(tmp), fsync);
        {
            let mut objects = write(&b.objects);
            for shard in std::fs::read_dir(dir.join("obj"))? {
                let shard = shard?.path();
                if !shard.is_dir() {
                    continue;
                }
                for f in std::fs::read_dir(&shard)? {
                    let path = f?.path();
                    match read_trailer::<ObjectMeta>(&path) {
                        Ok((meta, len))
                            if len == meta.size && b.object_path(&dir, &meta.key) == path =>
                        {
                            objects.insert(
                                meta.key.clone(),
                                Object {
                                    meta: Arc::new(meta),
                                    data: Data::File(path),
                                },
                            );
                        }
                        _ => eprintln!(
                            "ks3-local: ignoring unreadable object file {}",
                            path.display()
                        ),
                    }
                }
            }
        }
        {
            let mut uploads = lock(&b.uploads);
            for u in std::fs::read_dir(dir.join("mpu"))? {
                let udir = u?.path();
                let info: UploadInfo = match std::fs::read(udir.join("upload.json"))
                    .ok()
                    .and_then(|j| serde_json::from_slice(&j).ok())
                {
                    Some(i) => i,
                    None => {
                        eprintln!("ks3-local: ignoring unreadable upload {}", udir.display());
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
                uploads.insert(
                    info.id.clone(),
                    Upload {
                        info,
                        parts,
                        op_lock: Arc::new(tokio::sync::Mutex::new(())),
                    },
                );
            }
        }
        Ok(b)
    }

    /// A sink for a new body. `size_hint` sizes the RAM buffer.
    pub async fn sink(&self, size_hint: u64, with_md5: bool) -> Result<Sink> {
        let inner = match &self.tmp {
            Some(tmp) => {
                let path = tmp.join(format!("{:032x}", rand::random::<u128>()));
                let file = tokio::fs::File::create(&path).await?;
                SinkInner::File {
                    file: tokio::io::BufWriter::with_capacity(1 << 20, file),
                    path: TempPath(Some(path)),
                }
            }
            // Memory grows as bytes arrive: a declared length reserves at most 64 KiB.
            None => SinkInner::Mem(BytesMut::with_capacity(size_hint.min(64 << 10) as usize)),
        };
        Ok(Sink {
            inner,
            fsync: self.fsync,
            md5: with_md5.then(Md5Stream::default),
            crc: Crc64::new(),
            len: 0,
        })
    }

    pub fn is_empty(&self) -> bool {
        read(&self.objects).is_empty() && lock(&self.uploads).is_empty()
    }

    pub fn head(&self, key: &str) -> Option<Arc<ObjectMeta>> {
        read(&self.objects).get(key).map(|o| o.meta.clone())
    }

    /// Metadata and opened data of a key.
    pub fn open(&self, key: &str) -> Result<(Arc<ObjectMeta>, Opened)> {
        let objects = read(&self.objects);
        let Some(o) = objects.get(key) else {
            return Err(StoreError::NoSuchKey(key.to_string()));
        };
        let opened = match &o.data {
            Data::File(p) => Opened::File(std::fs::File::open(p)?),
            Data::Mem(b) => Opened::Mem(b.clone()),
        };
        Ok((o.meta.clone(), opened))
    }

    /// Publishes staged data under `meta.key` (atomically replacing any previous object).
    pub fn put(&self, meta: ObjectMeta, staged: Staged) -> Result<Arc<ObjectMeta>> {
        let meta = Arc::new(meta);
        let data = match (staged, &self.dir) {
            (Staged::File(tmp), Some(dir)) => {
                let path = self.object_path(dir, &meta.key);
                let parent = path.parent().unwrap_or(dir).to_path_buf();
                let new_shard = !parent.is_dir();
                if new_shard {
                    std::fs::create_dir_all(&parent)?;
                }
                {
                    let mut objects = write(&self.objects);
                    std::fs::rename(tmp.0.as_deref().unwrap_or(Path::new("")), &path)?;
                    tmp.take();
                    objects.insert(
                        meta.key.clone(),
                        Object {
                            meta: meta.clone(),
                            data: Data::File(path),
                        },
                    );
                }
                // The file was synced when finished; the rename is durable once its
                // directory (and a directory created for it) is.
                if self.fsync {
                    if new_shard {
                        sync_dir(&dir.join("obj"))?;
                    }
                    sync_dir(&parent)?;
                }
                return Ok(meta);
            }
            (Staged::Mem(b), _) => Data::Mem(b),
            (Staged::File(_), None) => {
                return Err(io::Error::other("file data for an in-memory bucket").into())
            }
        };
        write(&self.objects).insert(
            meta.key.clone(),
            Object {
                meta: meta.clone(),
                data,
            },
        );
        Ok(meta)
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        let mut objects = write(&self.objects);
        match objects.remove(key) {
            None => Err(StoreError::NoSuchKey(key.to_string())),
            Some(o) => {
                if let Data::File(p) = o.data {
                    let removed = std::fs::remove_file(&p);
                    if removed.is_ok() && self.fsync {
                        if let Some(parent) = p.parent() {
                            let _ = sync_dir(parent);
                        }
                    }
                    match removed {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => {
                            // Keep index and disk consistent.
                            objects.insert(
                                key.to_string(),
                                Object {
                                    meta: o.meta,
                                    data: Data::File(p),
                                },
                            );
                            return Err(e.into());
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
        }
    }

    /// Runs `f` over the sorted index.
    pub fn with_objects<R>(&self, f: impl FnOnce(&BTreeMap<String, Object>) -> R) -> R {
        f(&read(&self.objects))
    }

    // ---- multipart ----

    pub fn create_upload(&self, info: UploadInfo) -> Result<()> {
        if let Some(dir) = &self.dir {
            let udir = self.upload_dir(dir, &info.id);
            std::fs::create_dir_all(&udir)?;
            let tmp = udir.join("upload.json.tmp");
            {
                use std::io::Write;
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&serde_json::to_vec(&info).map_err(io::Error::from)?)?;
                if self.fsync {
                    f.sync_all()?;
                }
            }
            std::fs::rename(&tmp, udir.join("upload.json"))?;
            if self.fsync {
                sync_dir(&udir)?;
                sync_dir(&dir.join("mpu"))?;
            }
        }
        lock(&self.uploads).insert(
            info.id.clone(),
            Upload {
                info,
                parts: BTreeMap::new(),
                op_lock: Arc::new(tokio::sync::Mutex::new(())),
            },
        );
        Ok(())
    }

    /// The upload `id` if it exists for `key`.
    pub fn upload_info(
        &self,
        id: &str,
        key: &str,
    ) -> Option<(UploadInfo, Arc<tokio::sync::Mutex<()>>)> {
        lock(&self.uploads)
            .get(id)
            .filter(|u| u.info.key == key)
            .map(|u| (u.info.clone(), u.op_lock.clone()))
    }

    /// Runs `f` over the uploads.
    pub fn with_uploads<R>(&self, f: impl FnOnce(&BTreeMap<String, Upload>) -> R) -> R {
        f(&lock(&self.uploads))
    }

    /// The parts of an upload (a snapshot).
    pub fn parts(&self, id: &str, key: &str) -> Option<Vec<Part>> {
        lock(&self.uploads)
            .get(id)
            .filter(|u| u.info.key == key)
            .map(|u| u.parts.values().cloned().collect())
    }

    /// Publishes a part; `NoSuchUpload` if the upload vanished meanwhile.
    pub fn put_part(&self, id: &str, key: &str, meta: PartMeta, staged: Staged) -> Result<()> {
        let mut uploads = lock(&self.uploads);
        let Some(u) = uploads.get_mut(id).filter(|u| u.info.key == key) else {
            return Err(StoreError::NoSuchUpload(id.to_string()));
        };
        let data = match (staged, &self.dir) {
            (Staged::File(tmp), Some(dir)) => {
                let path = self
                    .upload_dir(dir, id)
                    .join(format!("part-{:05}", meta.number));
                std::fs::rename(tmp.0.as_deref().unwrap_or(Path::new("")), &path)?;
                tmp.take();
                if self.fsync {
                    sync_dir(&self.upload_dir(dir, id))?;
                }
                Data::File(path)
            }
            (Staged::Mem(b), _) => Data::Mem(b),
            (Staged::File(_), None) => {
                return Err(io::Error::other("file part for an in-memory bucket").into())
            }
        };
        u.parts.insert(meta.number, Part { meta, data });
        Ok(())
    }

    /// Removes an upload and its parts; `false` if it did not exist.
    pub fn remove_upload(&self, id: &str, key: &str) -> bool {
        let mut uploads = lock(&self.uploads);
        if uploads.get(id).is_none_or(|u| u.info.key != key) {
            return false;
        }
        uploads.remove(id);
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(self.upload_dir(dir, id));
            if self.fsync {
                let _ = sync_dir(&dir.join("mpu"));
            }
        }
        true
    }

    /// Publishes a completed multipart object and removes its upload, in one step.
    pub fn complete(&self, id: &str, meta: ObjectMeta, staged: Staged) -> Result<Arc<ObjectMeta>> {
        let meta = self.put(meta, staged)?;
        self.remove_upload(id, &meta.key);
        let mut done = lock(&self.completed);
        if done.len() > 10_000 {
            done.clear();
        }
        done.insert(
            id.to_string(),
            Completed {
                key: meta.key.clone(),
                etag: meta.etag.clone(),
                crc64: meta.crc64,
                modified_ms: meta.last_modified_ms,
            },
        );
        Ok(meta)
    }

    pub fn completed(&self, id: &str) -> Option<Completed> {
        lock(&self.completed).get(id).cloned()
    }
}

impl Part {
    pub fn open(&self) -> Result<Opened> {
        Ok(match &self.data {
            Data::File(p) => Opened::File(std::fs::File::open(p)?),
            Data::Mem(b) => Opened::Mem(b.clone()),
        })
    }
}

/// All buckets.
pub struct Store {
    root: Option<PathBuf>,
    fsync: bool,
    buckets: RwLock<BTreeMap<String, Arc<Bucket>>>,
}

impl Store {
    /// Opens (or creates) the store and makes sure `buckets` exist.
    pub fn open(root: Option<PathBuf>, buckets: &[String], fsync: bool) -> anyhow::Result<Store> {
        let store = Store {
            root: root.clone(),
            fsync,
            buckets: RwLock::new(BTreeMap::new()),
        };
        if let Some(root) = &root {
            std::fs::create_dir_all(root)?;
            let tmp = root.join(".tmp");
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp)?;
            let mut map = write(&store.buckets);
            for e in std::fs::read_dir(root)? {
                let e = e?;
                let name = e.file_name().to_string_lossy().to_string();
                if e.path().is_dir() && valid_bucket_name(&name) {
                    let b = Bucket::load(&name, e.path(), tmp.clone(), fsync)?;
                    map.insert(name, Arc::new(b));
                }
            }
        }
        for b in buckets {
            if !valid_bucket_name(b) {
                anyhow::bail!("invalid bucket name {b:?} (KS3: [a-z0-9.-], 3-63 characters)");
            }
            if store.bucket(b).is_none() {
                store
                    .create_bucket(b)
                    .map_err(|e| anyhow::anyhow!("creating bucket {b}: {e}"))?;
            }
        }
        Ok(store)
    }

    pub fn is_memory(&self) -> bool {
        self.root.is_none()
    }

    pub fn bucket(&self, name: &str) -> Option<Arc<Bucket>> {
        read(&self.buckets).get(name).cloned()
    }

    pub fn buckets(&self) -> Vec<Arc<Bucket>> {
        read(&self.buckets).values().cloned().collect()
    }

    pub fn has_bucket(&self, name: &str) -> bool {
        read(&self.buckets).contains_key(name)
    }

    pub fn create_bucket(&self, name: &str) -> Result<()> {
        if !valid_bucket_name(name) {
            return Err(StoreError::InvalidBucketName(name.to_string()));
        }
        let mut map = write(&self.buckets);
        if map.contains_key(name) {
            return Err(StoreError::BucketAlreadyExists(name.to_string()));
        }
        let bucket = match &self.root {
            Some(root) => {
                let dir = root.join(name);
                std::fs::create_dir_all(dir.join("obj"))?;
                std::fs::create_dir_all(dir.join("mpu"))?;
                if self.fsync {
                    sync_dir(&dir)?;
                    sync_dir(root)?;
                }
                Bucket::new(name, Some(dir), Some(root.join(".tmp")), self.fsync)
            }
            None => Bucket::new(name, None, None, false),
        };
        map.insert(name.to_string(), Arc::new(bucket));
        Ok(())
    }

    pub fn delete_bucket(&self, name: &str) -> Result<()> {
        let mut map = write(&self.buckets);
        let Some(b) = map.get(name) else {
            return Err(StoreError::NoSuchBucket(name.to_string()));
        };
        if !b.is_empty() {
            return Err(StoreError::BucketNotEmpty(name.to_string()));
        }
        if let Some(dir) = &b.dir {
            std::fs::remove_dir_all(dir)?;
        }
        map.remove(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_sink_reserves_as_bytes_arrive() {
        let b = Bucket::new("b", None, None, false);
        // A declared 4 GB body reserves nothing like it before a byte arrives.
        let mut sink = b.sink(4_000_000_000, true).await.unwrap();
        let cap = |s: &Sink| match &s.inner {
            SinkInner::Mem(m) => m.capacity(),
            SinkInner::File { .. } => unreachable!("memory bucket"),
        };
        assert!(cap(&sink) <= 64 << 10, "{}", cap(&sink));
        sink.write(&[7u8; 300_000]).await.unwrap();
        assert!(
            cap(&sink) >= 300_000 && cap(&sink) < 4 << 20,
            "{}",
            cap(&sink)
        );
        assert_eq!(sink.len(), 300_000);
    }

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
