//! The exports: `wasi:blobstore` over the driver's operations, and the `wasi:io` streams
//! values are read and written through (this component's own resources, see the crate
//! documentation).
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use ks3_driver_component::ops::{Driver, FileReader, FileWriter, Walker};
use ks3_driver_component::path::{DirPath, FilePath};
use ks3_driver_component::wasm::transport::WasiTransport;
use ks3_driver_component::{Config, DriverError};

use crate::{byte_range, object_name, object_path, STAGING_DIR};

wit_bindgen::generate!({
    world: "provider",
    path: "wit",
});

use exports::wasi::blobstore::container::{
    ContainerMetadata, GuestContainer, GuestStreamObjectNames, ObjectMetadata, StreamObjectNames,
};
use exports::wasi::blobstore::types::{
    GuestIncomingValue, GuestOutgoingValue, IncomingValue, ObjectId, OutgoingValue,
    OutgoingValueBorrow,
};
use exports::wasi::io::streams::{
    GuestInputStream, GuestOutputStream, InputStream, InputStreamBorrow, OutputStream, StreamError,
};

type Ks3 = Driver<WasiTransport>;

/// The most a stream says it accepts at once (`check-write`) and reads in one call.
const CHUNK: u64 = 1 << 20;
/// `consume-sync` returns a whole value in one list: larger values are refused (a list
/// that size would also exceed what a host passes in one call); read them as a stream.
const MAX_SYNC: u64 = 64 << 20;
/// Names one `read-stream-object-names` / `skip-stream-object-names` returns at most.
const MAX_NAMES: u64 = 10_000;

struct Component;

/// One driver per instance, configured from the environment (`REGISTRY_STORAGE_KS3_*`).
fn driver() -> Result<Arc<Ks3>, String> {
    static DRIVER: OnceLock<Result<Arc<Ks3>, String>> = OnceLock::new();
    DRIVER
        .get_or_init(|| {
            let config = Config::from_env_vars(ks3_driver_component::wasm::environment())
                .map_err(|e| e.to_string())?;
            let transport = WasiTransport::new(&config.endpoint);
            Ok(Driver::new(config, transport))
        })
        .clone()
}

fn msg(e: DriverError) -> String {
    e.to_string()
}

fn file_path(name: &str) -> Result<FilePath, String> {
    FilePath::parse(&object_path(name)?).map_err(msg)
}

/// The one container's name: the configured bucket.
fn bucket() -> Result<String, String> {
    Ok(driver()?.config().bucket.clone())
}

fn check_container(name: &str) -> Result<(), String> {
    let bucket = bucket()?;
    if name == bucket {
        Ok(())
    } else {
        Err(format!(
            "no container `{name}`: this provider serves one container, the configured bucket `{bucket}`"
        ))
    }
}

/// The size and modification time (seconds) of an object; `None` when there is none (a
/// name that is only a prefix of others is no object).
fn stat(d: &Ks3, p: &FilePath) -> Result<Option<(u64, u64)>, String> {
    let dir = DirPath::parse(p.as_str()).map_err(msg)?;
    match d.stat(&dir) {
        Ok(info) if !info.is_dir => Ok(Some((info.size, info.mod_time_ns / 1_000_000_000))),
        Ok(_) | Err(DriverError::PathNotFound(_)) => Ok(None),
        Err(e) => Err(msg(e)),
    }
}

/// Copies `src` to `dst` chunk by chunk through the driver's reader and writer.
fn copy(d: &Arc<Ks3>, src: &FilePath, dst: &FilePath) -> Result<(), String> {
    let mut reader = d.reader(src, 0).map_err(msg)?;
    let mut writer = d.writer(dst, false).map_err(msg)?;
    let copied = (|| loop {
        let chunk = reader.read(4 << 20)?;
        if chunk.is_empty() {
            return writer.commit();
        }
        writer.write(&chunk)?;
    })();
    if copied.is_err() {
        let _ = writer.cancel();
    }
    copied.map_err(msg)
}

impl exports::wasi::blobstore::blobstore::Guest for Component {
    fn create_container(
        name: String,
    ) -> Result<exports::wasi::blobstore::container::Container, String> {
        let bucket = bucket()?;
        if name == bucket {
            return Err(format!("container `{name}` already exists"));
        }
        Err(format!(
            "creating containers is not supported: this provider serves one container, the configured bucket `{bucket}`"
        ))
    }

    fn get_container(
        name: String,
    ) -> Result<exports::wasi::blobstore::container::Container, String> {
        check_container(&name)?;
        Ok(exports::wasi::blobstore::container::Container::new(
            Bucket { name },
        ))
    }

    fn delete_container(name: String) -> Result<(), String> {
        check_container(&name)?;
        Err(format!(
            "deleting containers is not supported: `{name}` is the configured bucket (`clear` empties it)"
        ))
    }

    fn container_exists(name: String) -> Result<bool, String> {
        Ok(name == bucket()?)
    }

    fn copy_object(src: ObjectId, dest: ObjectId) -> Result<(), String> {
        check_container(&src.container)?;
        check_container(&dest.container)?;
        let (from, to) = (file_path(&src.object)?, file_path(&dest.object)?);
        if from == to {
            return Ok(());
        }
        copy(&driver()?, &from, &to)
    }

    fn move_object(src: ObjectId, dest: ObjectId) -> Result<(), String> {
        check_container(&src.container)?;
        check_container(&dest.container)?;
        let (from, to) = (file_path(&src.object)?, file_path(&dest.object)?);
        if from == to {
            return Ok(());
        }
        driver()?.mv(&from, &to).map_err(msg)
    }
}

struct Bucket {
    name: String,
}

impl exports::wasi::blobstore::container::Guest for Component {
    type Container = Bucket;
    type StreamObjectNames = Names;
}

impl GuestContainer for Bucket {
    fn name(&self) -> Result<String, String> {
        Ok(self.name.clone())
    }

    fn info(&self) -> Result<ContainerMetadata, String> {
        // KS3 tells a bucket's creation time only in the account's bucket listing.
        Ok(ContainerMetadata {
            name: self.name.clone(),
            created_at: 0,
        })
    }

    fn get_data(&self, name: String, start: u64, end: u64) -> Result<IncomingValue, String> {
        let d = driver()?;
        let p = file_path(&name)?;
        let Some((size, _)) = stat(&d, &p)? else {
            return Err(format!("object `{name}` not found"));
        };
        let (offset, len) = byte_range(start, end, size).map_err(|e| format!("{e} (`{name}`)"))?;
        // Opened now, so the bytes stay readable if the object is replaced or deleted
        // before the value is consumed (the driver's reader pins what it opened).
        let reader = if len == 0 {
            None
        } else {
            let offset =
                i64::try_from(offset).map_err(|_| format!("offset {offset} is too large"))?;
            Some(d.reader(&p, offset).map_err(msg)?)
        };
        Ok(IncomingValue::new(Incoming {
            source: RefCell::new(Source {
                reader,
                remaining: len,
            }),
            len,
        }))
    }

    fn write_data(&self, name: String, data: OutgoingValueBorrow<'_>) -> Result<(), String> {
        let p = file_path(&name)?;
        let value = data.get::<Outgoing>();
        let mut up = value.0.borrow_mut();
        if up.target.is_some() {
            return Err("write-data was already called for this value".to_string());
        }
        up.target = Some(p);
        Ok(())
    }

    fn list_objects(&self) -> Result<StreamObjectNames, String> {
        let walker = driver()?.walk(&DirPath::root(), None).map_err(msg)?;
        Ok(StreamObjectNames::new(Names {
            walker: RefCell::new(walker),
            pending: RefCell::new(VecDeque::new()),
            done: Cell::new(false),
        }))
    }

    fn delete_object(&self, name: String) -> Result<(), String> {
        let p = file_path(&name)?;
        let d = driver()?;
        // The one object: a name is flat, so `a` never takes `a/b` with it. A missing
        // object is no error.
        d.delete_object(&d.keys.key(&p), p.as_str())
            .map(drop)
            .map_err(msg)
    }

    fn delete_objects(&self, names: Vec<String>) -> Result<(), String> {
        let paths = names
            .iter()
            .map(|n| file_path(n))
            .collect::<Result<Vec<_>, _>>()?;
        let d = driver()?;
        for p in paths {
            d.delete_object(&d.keys.key(&p), p.as_str()).map_err(msg)?;
        }
        Ok(())
    }

    fn has_object(&self, name: String) -> Result<bool, String> {
        Ok(stat(&*driver()?, &file_path(&name)?)?.is_some())
    }

    fn object_info(&self, name: String) -> Result<ObjectMetadata, String> {
        let p = file_path(&name)?;
        match stat(&*driver()?, &p)? {
            Some((size, created_at)) => Ok(ObjectMetadata {
                name,
                container: self.name.clone(),
                created_at,
                size,
            }),
            None => Err(format!("object `{name}` not found")),
        }
    }

    fn clear(&self) -> Result<(), String> {
        let d = driver()?;
        let mut walker = d.walk(&DirPath::root(), None).map_err(msg)?;
        loop {
            let batch = walker.next(1000).map_err(msg)?;
            if batch.is_empty() {
                return Ok(());
            }
            for info in batch.iter().filter(|i| !i.is_dir) {
                if object_name(&info.path).is_some() {
                    let p = FilePath::parse(&info.path).map_err(msg)?;
                    d.delete_object(&d.keys.key(&p), p.as_str()).map_err(msg)?;
                }
            }
        }
    }
}

/// The cursor of `list-objects`: the driver's walk of the root, files only.
struct Names {
    walker: RefCell<Walker<WasiTransport>>,
    pending: RefCell<VecDeque<String>>,
    done: Cell<bool>,
}

impl Names {
    /// Up to `max` names (fewer only at the end), and whether the listing ended.
    fn take(&self, max: u64) -> Result<(Vec<String>, bool), String> {
        let max = usize::try_from(max.min(MAX_NAMES)).unwrap_or(1);
        let mut out = Vec::new();
        let mut pending = self.pending.borrow_mut();
        while out.len() < max {
            if let Some(name) = pending.pop_front() {
                out.push(name);
                continue;
            }
            if self.done.get() {
                break;
            }
            let batch = self.walker.borrow_mut().next(1000).map_err(msg)?;
            if batch.is_empty() {
                self.done.set(true);
            }
            let staging = format!("/{STAGING_DIR}");
            for info in batch {
                if info.path == staging {
                    if let Ok(dir) = FilePath::parse(&staging) {
                        self.walker.borrow_mut().skip_directory(&dir);
                    }
                }
                if !info.is_dir {
                    if let Some(name) = object_name(&info.path) {
                        pending.push_back(name.to_string());
                    }
                }
            }
        }
        Ok((out, self.done.get() && pending.is_empty()))
    }
}

impl GuestStreamObjectNames for Names {
    fn read_stream_object_names(&self, len: u64) -> Result<(Vec<String>, bool), String> {
        self.take(len)
    }

    fn skip_stream_object_names(&self, num: u64) -> Result<(u64, bool), String> {
        let (names, end) = self.take(num)?;
        Ok((names.len() as u64, end))
    }
}

impl exports::wasi::blobstore::types::Guest for Component {
    type OutgoingValue = Outgoing;
    type IncomingValue = Incoming;
}

/// A value being read: the driver's reader, positioned at the range's start.
struct Source {
    reader: Option<FileReader<WasiTransport>>,
    remaining: u64,
}

impl Source {
    /// The next bytes of the range, at most `max`; empty at its end.
    fn next(&mut self, max: u64) -> Result<Vec<u8>, String> {
        let want = max.min(self.remaining).min(CHUNK);
        if want == 0 {
            self.reader = None;
            return Ok(Vec::new());
        }
        let Some(reader) = self.reader.as_mut() else {
            return Ok(Vec::new());
        };
        let chunk = reader.read(want as usize).map_err(|e| {
            self.remaining = 0;
            msg(e)
        })?;
        if chunk.is_empty() {
            let short = self.remaining;
            self.remaining = 0;
            self.reader = None;
            return Err(format!(
                "the object ended {short} bytes before the value's end"
            ));
        }
        // `read` returns at most `want` ≤ `remaining` bytes.
        self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
        if self.remaining == 0 {
            // A ranged read stops here; the rest of the response is not needed.
            self.reader = None;
        }
        Ok(chunk)
    }
}

struct Incoming {
    source: RefCell<Source>,
    len: u64,
}

impl GuestIncomingValue for Incoming {
    fn incoming_value_consume_sync(this: IncomingValue) -> Result<Vec<u8>, String> {
        let value = this.into_inner::<Incoming>();
        if value.len > MAX_SYNC {
            return Err(format!(
                "the value is {} bytes, more than consume-sync returns ({MAX_SYNC}): use consume-async",
                value.len
            ));
        }
        let mut source = value.source.into_inner();
        let mut out = Vec::with_capacity(value.len as usize);
        loop {
            let chunk = source.next(CHUNK)?;
            if chunk.is_empty() {
                return Ok(out);
            }
            out.extend_from_slice(&chunk);
        }
    }

    fn incoming_value_consume_async(this: IncomingValue) -> Result<InputStream, String> {
        let value = this.into_inner::<Incoming>();
        Ok(InputStream::new(ValueReader {
            source: value.source,
        }))
    }

    fn size(&self) -> u64 {
        self.len
    }
}

/// A value's body being read (`consume-async`).
struct ValueReader {
    source: RefCell<Source>,
}

fn failed(message: String) -> StreamError {
    StreamError::LastOperationFailed(exports::wasi::io::error::Error::new(IoError(message)))
}

impl GuestInputStream for ValueReader {
    fn read(&self, len: u64) -> Result<Vec<u8>, StreamError> {
        let chunk = self.source.borrow_mut().next(len).map_err(failed)?;
        if chunk.is_empty() && len > 0 {
            return Err(StreamError::Closed);
        }
        Ok(chunk)
    }

    fn blocking_read(&self, len: u64) -> Result<Vec<u8>, StreamError> {
        self.read(len)
    }

    fn skip(&self, len: u64) -> Result<u64, StreamError> {
        Ok(self.read(len)?.len() as u64)
    }

    fn blocking_skip(&self, len: u64) -> Result<u64, StreamError> {
        self.skip(len)
    }

    fn subscribe(&self) -> exports::wasi::io::poll::Pollable {
        exports::wasi::io::poll::Pollable::new(Ready)
    }
}

/// A value being written. Its bytes go to the driver's writer as they come: at the
/// object's path when `write-data` named it before the first byte, else in the staging
/// area, moved into place at `finish`. Nothing is visible before `finish`.
struct Upload {
    target: Option<FilePath>,
    writer: Option<(FilePath, FileWriter<WasiTransport>)>,
    stream_taken: bool,
    stream_alive: bool,
    error: Option<String>,
    finished: bool,
}

impl Upload {
    fn write(&mut self, data: &[u8]) -> Result<(), StreamError> {
        if let Some(e) = &self.error {
            return Err(failed(e.clone()));
        }
        let written = self.write_through(data);
        written.map_err(|e| {
            self.error = Some(e.clone());
            failed(e)
        })
    }

    fn write_through(&mut self, data: &[u8]) -> Result<(), String> {
        if data.is_empty() {
            return Ok(());
        }
        if self.writer.is_none() {
            let d = driver()?;
            let path = match &self.target {
                Some(p) => p.clone(),
                None => {
                    let id = wasi::random::random::get_random_u64();
                    FilePath::parse(&format!("/{STAGING_DIR}/{id:016x}")).map_err(msg)?
                }
            };
            let writer = d.writer(&path, false).map_err(msg)?;
            self.writer = Some((path, writer));
        }
        match self.writer.as_mut() {
            Some((_, w)) => w.write(data).map_err(msg),
            None => Err("no writer".to_string()),
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        if self.stream_alive {
            return Err("the value's body stream must be dropped before finish".to_string());
        }
        if let Some(e) = self.error.clone() {
            return Err(format!("writing the value failed: {e}"));
        }
        let Some(target) = self.target.clone() else {
            return Err(
                "finish before write-data: the value names no object, nothing was stored"
                    .to_string(),
            );
        };
        let d = driver()?;
        match self.writer.as_mut() {
            None => d.put_content(&target, &[]).map_err(msg)?,
            Some((path, w)) => {
                w.commit().map_err(msg)?;
                if *path != target {
                    d.mv(path, &target).map_err(msg)?;
                }
            }
        }
        self.finished = true;
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.finished {
            // Dropped without finish: the value is corrupt, nothing is stored.
            if let Some((_, w)) = self.writer.as_mut() {
                let _ = w.cancel();
            }
        }
    }
}

struct Outgoing(Rc<RefCell<Upload>>);

impl GuestOutgoingValue for Outgoing {
    fn new_outgoing_value() -> OutgoingValue {
        OutgoingValue::new(Outgoing(Rc::new(RefCell::new(Upload {
            target: None,
            writer: None,
            stream_taken: false,
            stream_alive: false,
            error: None,
            finished: false,
        }))))
    }

    fn outgoing_value_write_body(&self) -> Result<OutputStream, ()> {
        let mut up = self.0.borrow_mut();
        if up.stream_taken {
            return Err(());
        }
        up.stream_taken = true;
        up.stream_alive = true;
        Ok(OutputStream::new(ValueWriter(Rc::clone(&self.0))))
    }

    fn finish(this: OutgoingValue) -> Result<(), String> {
        let value = this.into_inner::<Outgoing>();
        let mut up = value.0.borrow_mut();
        up.finish()
    }
}

/// A value's body stream (`outgoing-value-write-body`).
struct ValueWriter(Rc<RefCell<Upload>>);

impl Drop for ValueWriter {
    fn drop(&mut self) {
        self.0.borrow_mut().stream_alive = false;
    }
}

impl GuestOutputStream for ValueWriter {
    fn check_write(&self) -> Result<u64, StreamError> {
        match &self.0.borrow().error {
            Some(e) => Err(failed(e.clone())),
            None => Ok(CHUNK),
        }
    }

    fn write(&self, contents: Vec<u8>) -> Result<(), StreamError> {
        self.0.borrow_mut().write(&contents)
    }

    fn blocking_write_and_flush(&self, contents: Vec<u8>) -> Result<(), StreamError> {
        self.write(contents)
    }

    fn flush(&self) -> Result<(), StreamError> {
        self.check_write().map(drop)
    }

    fn blocking_flush(&self) -> Result<(), StreamError> {
        self.flush()
    }

    fn subscribe(&self) -> exports::wasi::io::poll::Pollable {
        exports::wasi::io::poll::Pollable::new(Ready)
    }

    fn write_zeroes(&self, len: u64) -> Result<(), StreamError> {
        let mut left = len;
        while left > 0 {
            let n = left.min(CHUNK);
            self.0.borrow_mut().write(&vec![0; n as usize])?;
            left -= n;
        }
        Ok(())
    }

    fn blocking_write_zeroes_and_flush(&self, len: u64) -> Result<(), StreamError> {
        self.write_zeroes(len)
    }

    fn splice(&self, src: InputStreamBorrow<'_>, len: u64) -> Result<u64, StreamError> {
        let chunk = src.get::<ValueReader>().read(len.min(CHUNK))?;
        self.0.borrow_mut().write(&chunk)?;
        Ok(chunk.len() as u64)
    }

    fn blocking_splice(&self, src: InputStreamBorrow<'_>, len: u64) -> Result<u64, StreamError> {
        self.splice(src, len)
    }
}

impl exports::wasi::io::streams::Guest for Component {
    type InputStream = ValueReader;
    type OutputStream = ValueWriter;
}

/// A stream error's detail.
struct IoError(String);

impl exports::wasi::io::error::Guest for Component {
    type Error = IoError;
}

impl exports::wasi::io::error::GuestError for IoError {
    fn to_debug_string(&self) -> String {
        self.0.clone()
    }
}

/// This component's streams never wait outside a call: every pollable is ready.
struct Ready;

impl exports::wasi::io::poll::Guest for Component {
    type Pollable = Ready;

    fn poll(in_: Vec<exports::wasi::io::poll::PollableBorrow<'_>>) -> Vec<u32> {
        (0..in_.len())
            .filter_map(|i| u32::try_from(i).ok())
            .collect()
    }
}

impl exports::wasi::io::poll::GuestPollable for Ready {
    fn ready(&self) -> bool {
        true
    }

    fn block(&self) {}
}

export!(Component);
