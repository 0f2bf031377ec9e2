//! Object storage: an in-memory index per bucket (objects, uploads in progress, finished
//! Completes) over one of two backends that hold the bytes: RAM ([`memory`]) or files
//! ([`disk`]). The index and the multipart bookkeeping are the same for both; only
//! receiving, publishing and removing bytes differ.
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use ks3_proto::digest::Md5Stream;
use ks3_proto::Crc64;
use serde::{Deserialize, Serialize};

use crate::config::valid_bucket_name;
use crate::sync::{lock, read, write};

mod disk;
mod error;
mod memory;

pub use error::{Result, StoreError};
pub use memory::MemData;

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
enum Data {
    File(PathBuf),
    Mem(MemData),
}

impl Data {
    fn open(&self) -> io::Result<Opened> {
        Ok(match self {
            Data::File(p) => Opened::File(std::fs::File::open(p)?),
            Data::Mem(b) => Opened::Mem(b.clone()),
        })
    }
}

/// Readable data, opened while the index was locked (so it matches its metadata even if
/// the key is overwritten or deleted right after).
pub enum Opened {
    File(std::fs::File),
    Mem(MemData),
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

impl Part {
    pub fn open(&self) -> Result<Opened> {
        Ok(self.data.open()?)
    }
}

pub struct Upload {
    pub info: UploadInfo,
    pub parts: BTreeMap<u32, Part>,
    /// Serialises Complete and Abort of one upload.
    pub op_lock: Arc<tokio::sync::Mutex<()>>,
}

impl Upload {
    fn new(info: UploadInfo, parts: BTreeMap<u32, Part>) -> Upload {
        Upload {
            info,
            parts,
            op_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

/// What a finished Complete returned, so a retried Complete gets the same answer.
#[derive(Debug, Clone)]
pub struct Completed {
    pub key: String,
    pub etag: String,
    pub crc64: u64,
    pub modified_ms: i64,
}

/// Fully written data, not yet visible (see [`Bucket::put`]).
pub struct Staged(StagedData);

impl Staged {
    /// The parts' bytes in order as one object's, when every part is in RAM: their
    /// buffers are shared, no byte is copied. `None` for parts on disk.
    pub fn join_in_memory(parts: &[Part]) -> Option<Staged> {
        let mut pieces = Vec::new();
        for p in parts {
            match &p.data {
                Data::Mem(m) => pieces.extend(m.pieces().iter().cloned()),
                Data::File(_) => return None,
            }
        }
        Some(Staged(StagedData::Mem(MemData::joined(pieces))))
    }
}

enum StagedData {
    File(disk::TempPath),
    Mem(MemData),
}

enum Writer {
    File(disk::TempFile),
    Mem(memory::Buffer),
}

/// Receives a body (to a temp file or RAM), computing MD5, CRC-64 and length on the way.
pub struct Sink {
    writer: Writer,
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
        match &mut self.writer {
            Writer::File(f) => f.write(data).await?,
            Writer::Mem(b) => b.write(data),
        }
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn crc64(&self) -> u64 {
        self.crc.value()
    }

    /// MD5 of everything written (zeros when the sink was created without MD5).
    pub fn md5(&self) -> [u8; 16] {
        self.md5.clone().map(|m| m.finish()).unwrap_or_default()
    }

    /// Ends the body; `trailer` is the metadata a file keeps with its data (see [`disk`]).
    pub async fn finish<T: Serialize>(self, trailer: &T) -> Result<Staged> {
        Ok(Staged(match self.writer {
            Writer::File(f) => StagedData::File(f.finish(trailer).await?),
            Writer::Mem(b) => StagedData::Mem(b.finish()),
        }))
    }
}

/// Where a bucket keeps its bytes.
enum Backend {
    Memory,
    Disk(disk::BucketDir),
}

pub struct Bucket {
    pub name: String,
    pub created_ms: i64,
    backend: Backend,
    objects: RwLock<BTreeMap<String, Object>>,
    uploads: Mutex<BTreeMap<String, Upload>>,
    completed: Mutex<HashMap<String, Completed>>,
}

impl Bucket {
    fn new(name: &str, backend: Backend) -> Bucket {
        Bucket {
            name: name.to_string(),
            created_ms: now_ms(),
            backend,
            objects: RwLock::new(BTreeMap::new()),
            uploads: Mutex::new(BTreeMap::new()),
            completed: Mutex::new(HashMap::new()),
        }
    }

    /// A bucket directory written by an earlier run.
    fn load(name: &str, dir: disk::BucketDir) -> io::Result<Bucket> {
        let (objects, uploads) = dir.load()?;
        let b = Bucket::new(name, Backend::Disk(dir));
        *write(&b.objects) = objects;
        *lock(&b.uploads) = uploads;
        Ok(b)
    }

    /// The directory that file data (only ever made by a disk bucket's sink) goes to.
    fn dir_for_files(&self) -> Result<&disk::BucketDir> {
        match &self.backend {
            Backend::Disk(d) => Ok(d),
            Backend::Memory => Err(io::Error::other("file data for an in-memory bucket").into()),
        }
    }

    /// A sink for a new body. `size_hint` sizes the RAM buffer.
    pub async fn sink(&self, size_hint: u64, with_md5: bool) -> Result<Sink> {
        let writer = match &self.backend {
            Backend::Disk(d) => Writer::File(d.temp_file().await?),
            Backend::Memory => Writer::Mem(memory::Buffer::new(size_hint)),
        };
        Ok(Sink {
            writer,
            md5: with_md5.then(Md5Stream::default),
            crc: Crc64::new(),
            len: 0,
        })
    }

    pub fn is_empty(&self) -> bool {
        read(&self.objects).is_empty() && lock(&self.uploads).is_empty()
    }

    /// Metadata and opened data of a key.
    pub fn open(&self, key: &str) -> Result<(Arc<ObjectMeta>, Opened)> {
        let objects = read(&self.objects);
        let Some(o) = objects.get(key) else {
            return Err(StoreError::NoSuchKey(key.to_string()));
        };
        Ok((o.meta.clone(), o.data.open()?))
    }

    /// Publishes staged data under `meta.key` (atomically replacing any previous object).
    pub fn put(&self, meta: ObjectMeta, staged: Staged) -> Result<Arc<ObjectMeta>> {
        let meta = Arc::new(meta);
        match staged.0 {
            StagedData::Mem(b) => {
                write(&self.objects).insert(
                    meta.key.clone(),
                    Object {
                        meta: meta.clone(),
                        data: Data::Mem(b),
                    },
                );
            }
            StagedData::File(tmp) => {
                let dir = self.dir_for_files()?;
                let target = dir.object_target(&meta.key)?;
                {
                    let mut objects = write(&self.objects);
                    let path = dir.publish_object(&target, tmp)?;
                    objects.insert(
                        meta.key.clone(),
                        Object {
                            meta: meta.clone(),
                            data: Data::File(path),
                        },
                    );
                }
                dir.sync_published(&target)?;
            }
        }
        Ok(meta)
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        let mut objects = write(&self.objects);
        let Some(o) = objects.remove(key) else {
            return Err(StoreError::NoSuchKey(key.to_string()));
        };
        if let (Data::File(path), Backend::Disk(dir)) = (&o.data, &self.backend) {
            if let Err(e) = disk::remove_file(path, dir.fsync()) {
                // Keep index and disk consistent.
                objects.insert(key.to_string(), o);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Runs `f` over the sorted index.
    pub fn with_objects<R>(&self, f: impl FnOnce(&BTreeMap<String, Object>) -> R) -> R {
        f(&read(&self.objects))
    }

    // ---- multipart ----

    pub fn create_upload(&self, info: UploadInfo) -> Result<()> {
        if let Backend::Disk(dir) = &self.backend {
            dir.create_upload(&info)?;
        }
        lock(&self.uploads).insert(info.id.clone(), Upload::new(info, BTreeMap::new()));
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
        let data = match staged.0 {
            StagedData::Mem(b) => Data::Mem(b),
            StagedData::File(tmp) => {
                Data::File(self.dir_for_files()?.publish_part(id, meta.number, tmp)?)
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
        if let Backend::Disk(dir) = &self.backend {
            dir.remove_upload(id);
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

/// All buckets.
pub struct Store {
    /// `None`: everything in RAM.
    disk: Option<disk::Root>,
    buckets: RwLock<BTreeMap<String, Arc<Bucket>>>,
}

impl Store {
    /// Opens (or creates) the store and makes sure `buckets` exist.
    pub fn open(root: Option<PathBuf>, buckets: &[String], fsync: bool) -> anyhow::Result<Store> {
        let disk = root.map(|r| disk::Root::open(r, fsync)).transpose()?;
        let mut existing = BTreeMap::new();
        if let Some(root) = &disk {
            for (name, dir) in root.existing_buckets()? {
                let b = Bucket::load(&name, dir)?;
                existing.insert(name, Arc::new(b));
            }
        }
        let store = Store {
            disk,
            buckets: RwLock::new(existing),
        };
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

    pub fn bucket(&self, name: &str) -> Option<Arc<Bucket>> {
        read(&self.buckets).get(name).cloned()
    }

    pub fn buckets(&self) -> Vec<Arc<Bucket>> {
        read(&self.buckets).values().cloned().collect()
    }

    pub fn create_bucket(&self, name: &str) -> Result<()> {
        if !valid_bucket_name(name) {
            return Err(StoreError::InvalidBucketName(name.to_string()));
        }
        let mut map = write(&self.buckets);
        if map.contains_key(name) {
            return Err(StoreError::BucketAlreadyExists(name.to_string()));
        }
        let backend = match &self.disk {
            Some(root) => Backend::Disk(root.create_bucket(name)?),
            None => Backend::Memory,
        };
        map.insert(name.to_string(), Arc::new(Bucket::new(name, backend)));
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
        if let Backend::Disk(dir) = &b.backend {
            dir.remove()?;
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
        let b = Bucket::new("b", Backend::Memory);
        // A declared 4 GB body reserves nothing like it before a byte arrives.
        let mut sink = b.sink(4_000_000_000, true).await.unwrap();
        let cap = |s: &Sink| match &s.writer {
            Writer::Mem(m) => m.capacity(),
            Writer::File(_) => unreachable!("memory bucket"),
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
}
