//! The two sides the benchmark compares: the component (`ks3_driver_host::Driver`, async) and the
//! native baseline (the same driver crate compiled natively, sync, over the component's
//! pooled client). Each measurement step runs the same [`Side`] operations on both.
//!
//! Each operation is a whole measured unit (an upload, the small-object loop, a listing),
//! not a single call: the native side runs every unit on one blocking thread and takes its
//! time there, so its figures hold no thread hop per call, as before this split.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::native::{DirPath, FilePath, NativeDriver, NativeTransport};
use futures::future::LocalBoxFuture;
use ks3_driver_host::{Config, Driver, WalkControl};
use tokio::runtime::Handle;

use super::{err, MIB};

/// What a side's operation yields, boxed so that the steps can hold both sides in one
/// table (`[&dyn Side; 2]`).
pub type Fut<'a, T> = LocalBoxFuture<'a, Result<T, String>>;

/// Latencies of the small-object operations, by operation ("put", "get", "stat").
pub type Latencies = BTreeMap<&'static str, Vec<Duration>>;

/// The benchmark's view of one driver. The durations an operation returns are measured by
/// the side itself (the native one on its blocking thread), around the driver calls only.
pub trait Side {
    /// "component" or "native": the column, and the name in errors and object paths.
    fn name(&self) -> &'static str;
    /// Uploads `mib` times `data` to `path`; the time from opening the writer to commit.
    fn upload(&self, path: String, data: Arc<Vec<u8>>, mib: usize) -> Fut<'_, Duration>;
    /// Reads `path` to its end, 4 MiB at a time: the time and the bytes read.
    fn download(&self, path: String) -> Fut<'_, (Duration, usize)>;
    /// For each path in turn: put `body`, get it back (checking its size), stat it.
    fn small_objects(&self, paths: Vec<String>, body: Arc<Vec<u8>>) -> Fut<'_, Latencies>;
    /// Lists `dir`: the time and the entries.
    fn list(&self, dir: String) -> Fut<'_, (Duration, usize)>;
    /// Walks `dir` to its end: the time and the entries.
    fn walk(&self, dir: String) -> Fut<'_, (Duration, usize)>;
    /// Deletes the tree `dir`: the time.
    fn delete(&self, dir: String) -> Fut<'_, Duration>;
    /// One upload of `mib` times `data` per path, all at once; done when all committed.
    fn concurrent_uploads(&self, paths: Vec<String>, data: Arc<Vec<u8>>, mib: usize)
        -> Fut<'_, ()>;
    /// The command-line arguments of a fresh process doing one stat of `path`.
    fn cold_stat_args(&self, path: &str) -> Vec<String>;
    /// Whether that process keeps a compiled-code cache (so a warmed cache is its own figure).
    fn caches_code(&self) -> bool;
}

/// The component, through its async API on the benchmark's runtime.
pub struct Component(pub Driver);

impl Component {
    /// Writes `mib` times `data` to `path` and commits: the stream-write unit of every
    /// component row (also the signature-schemes table's).
    pub async fn upload(
        driver: &Driver,
        path: &str,
        data: &[u8],
        mib: usize,
    ) -> Result<(), String> {
        let mut w = driver.writer(path, false).await.map_err(err)?;
        for _ in 0..mib {
            w.write(data).await.map_err(err)?;
        }
        w.commit().await.map_err(err)
    }

    /// Reads `path` to its end, 4 MiB at a time: the bytes read.
    pub async fn read_to_end(driver: &Driver, path: &str) -> Result<usize, String> {
        let mut r = driver.reader(path, 0).await.map_err(err)?;
        let mut got = 0;
        loop {
            let b = r.read_bytes(4 * MIB).await.map_err(err)?;
            if b.is_empty() {
                return Ok(got);
            }
            got += b.len();
        }
    }
}

impl Side for Component {
    fn name(&self) -> &'static str {
        "component"
    }

    fn upload(&self, path: String, data: Arc<Vec<u8>>, mib: usize) -> Fut<'_, Duration> {
        Box::pin(async move {
            let t = Instant::now();
            Self::upload(&self.0, &path, &data, mib).await?;
            Ok(t.elapsed())
        })
    }

    fn download(&self, path: String) -> Fut<'_, (Duration, usize)> {
        Box::pin(async move {
            let t = Instant::now();
            let got = Self::read_to_end(&self.0, &path).await?;
            Ok((t.elapsed(), got))
        })
    }

    fn small_objects(&self, paths: Vec<String>, body: Arc<Vec<u8>>) -> Fut<'_, Latencies> {
        Box::pin(async move {
            let mut lat = Latencies::new();
            for p in &paths {
                let t = Instant::now();
                self.0.put_content(p, &body).await.map_err(err)?;
                lat.entry("put").or_default().push(t.elapsed());
                let t = Instant::now();
                let got = self.0.get_content(p).await.map_err(err)?;
                lat.entry("get").or_default().push(t.elapsed());
                if got.len() != body.len() {
                    return Err("component get-content: wrong size".into());
                }
                let t = Instant::now();
                self.0.stat(p).await.map_err(err)?;
                lat.entry("stat").or_default().push(t.elapsed());
            }
            Ok(lat)
        })
    }

    fn list(&self, dir: String) -> Fut<'_, (Duration, usize)> {
        Box::pin(async move {
            let t = Instant::now();
            let listed = self.0.list(&dir).await.map_err(err)?;
            Ok((t.elapsed(), listed.len()))
        })
    }

    fn walk(&self, dir: String) -> Fut<'_, (Duration, usize)> {
        Box::pin(async move {
            let t = Instant::now();
            let mut seen = 0usize;
            self.0
                .walk(&dir, None, |_| {
                    seen += 1;
                    Ok(WalkControl::Continue)
                })
                .await
                .map_err(err)?;
            Ok((t.elapsed(), seen))
        })
    }

    fn delete(&self, dir: String) -> Fut<'_, Duration> {
        Box::pin(async move {
            let t = Instant::now();
            self.0.delete(&dir).await.map_err(err)?;
            Ok(t.elapsed())
        })
    }

    fn concurrent_uploads(
        &self,
        paths: Vec<String>,
        data: Arc<Vec<u8>>,
        mib: usize,
    ) -> Fut<'_, ()> {
        Box::pin(async move {
            // Tasks, so that the writers run on the runtime's worker threads together.
            let tasks: Vec<_> = paths
                .into_iter()
                .map(|p| {
                    let (driver, data) = (self.0.clone(), data.clone());
                    tokio::spawn(async move { Self::upload(&driver, &p, &data, mib).await })
                })
                .collect();
            for t in tasks {
                t.await.map_err(err)??;
            }
            Ok(())
        })
    }

    fn cold_stat_args(&self, path: &str) -> Vec<String> {
        vec!["stat".into(), path.into()]
    }

    fn caches_code(&self) -> bool {
        true
    }
}

/// The native driver takes validated paths, as the component's WIT boundary makes them.
fn file(p: &str) -> Result<FilePath, String> {
    FilePath::parse(p).map_err(err)
}

fn dir(p: &str) -> Result<DirPath, String> {
    DirPath::parse(p).map_err(err)
}

/// The native driver. Every call into `NativeDriver` is in this type's inherent methods
/// (sync, for blocking threads), so that a change of the native driver's signatures (e.g.
/// validated path types instead of `&str`) is made here only.
#[derive(Clone)]
pub struct Native(Arc<NativeDriver>);

impl Native {
    /// Over the component driver's pooled client, blocking on `handle` from blocking threads.
    /// `config` is the KS3 driver's (`driver.config()`).
    pub fn new(driver: &Driver, config: &Config, handle: Handle) -> Self {
        Native(NativeDriver::new(
            config.clone(),
            NativeTransport::new(driver, config, handle),
        ))
    }

    /// One stat by a driver with a client of its own: the native cold start's operation.
    pub fn standalone_stat(config: Config, handle: Handle, path: &str) -> Result<(), String> {
        let t = NativeTransport::standalone(&config, handle).map_err(err)?;
        Native(NativeDriver::new(config, t)).stat(path)
    }

    pub fn put(&self, path: &str, body: &[u8]) -> Result<(), String> {
        self.0.put_content(&file(path)?, body).map_err(err)
    }

    fn get(&self, path: &str) -> Result<Vec<u8>, String> {
        self.0.get_content(&file(path)?).map_err(err)
    }

    pub(crate) fn stat(&self, path: &str) -> Result<(), String> {
        self.0.stat(&dir(path)?).map(|_| ()).map_err(err)
    }

    fn write_stream(&self, path: &str, data: &[u8], mib: usize) -> Result<(), String> {
        let mut w = self.0.writer(&file(path)?, false).map_err(err)?;
        for _ in 0..mib {
            w.write(data).map_err(err)?;
        }
        w.commit().map_err(err)
    }

    /// Reads `path` to its end, 4 MiB at a time: the bytes read.
    fn read_stream(&self, path: &str) -> Result<usize, String> {
        let mut r = self.0.reader(&file(path)?, 0).map_err(err)?;
        let mut got = 0;
        loop {
            let b = r.read(4 * MIB).map_err(err)?;
            if b.is_empty() {
                return Ok(got);
            }
            got += b.len();
        }
    }

    fn list_dir(&self, dir: &str) -> Result<usize, String> {
        self.0.list(&self::dir(dir)?).map(|l| l.len()).map_err(err)
    }

    /// Walks `dir` in batches of 1000 (a listing page): the entries.
    fn walk_dir(&self, dir: &str) -> Result<usize, String> {
        let mut w = self.0.walk(&self::dir(dir)?, None).map_err(err)?;
        let mut seen = 0;
        loop {
            let b = w.next(1000).map_err(err)?;
            if b.is_empty() {
                return Ok(seen);
            }
            seen += b.len();
        }
    }

    fn delete_tree(&self, dir: &str) -> Result<(), String> {
        self.0.delete(&file(dir)?).map_err(err)
    }

    /// Runs `op` on a clone of this driver on a blocking thread, timing it there.
    fn timed<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Native) -> Result<T, String> + Send + 'static,
    ) -> Fut<'static, (Duration, T)> {
        let native = self.clone();
        Box::pin(blocking(move || {
            let t = Instant::now();
            let v = op(&native)?;
            Ok((t.elapsed(), v))
        }))
    }
}

impl Side for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn upload(&self, path: String, data: Arc<Vec<u8>>, mib: usize) -> Fut<'_, Duration> {
        let run = self.timed(move |n| n.write_stream(&path, &data, mib));
        Box::pin(async move { Ok(run.await?.0) })
    }

    fn download(&self, path: String) -> Fut<'_, (Duration, usize)> {
        self.timed(move |n| n.read_stream(&path))
    }

    fn small_objects(&self, paths: Vec<String>, body: Arc<Vec<u8>>) -> Fut<'_, Latencies> {
        let native = self.clone();
        Box::pin(blocking(move || {
            let mut lat = Latencies::new();
            for p in &paths {
                let t = Instant::now();
                native.put(p, &body)?;
                lat.entry("put").or_default().push(t.elapsed());
                let t = Instant::now();
                let got = native.get(p)?;
                lat.entry("get").or_default().push(t.elapsed());
                if got.len() != body.len() {
                    return Err("native get-content: wrong size".to_string());
                }
                let t = Instant::now();
                native.stat(p)?;
                lat.entry("stat").or_default().push(t.elapsed());
            }
            Ok(lat)
        }))
    }

    fn list(&self, dir: String) -> Fut<'_, (Duration, usize)> {
        self.timed(move |n| n.list_dir(&dir))
    }

    fn walk(&self, dir: String) -> Fut<'_, (Duration, usize)> {
        self.timed(move |n| n.walk_dir(&dir))
    }

    fn delete(&self, dir: String) -> Fut<'_, Duration> {
        let run = self.timed(move |n| n.delete_tree(&dir));
        Box::pin(async move { Ok(run.await?.0) })
    }

    fn concurrent_uploads(
        &self,
        paths: Vec<String>,
        data: Arc<Vec<u8>>,
        mib: usize,
    ) -> Fut<'_, ()> {
        Box::pin(async move {
            // One blocking thread per writer: the native driver's writes block.
            let tasks: Vec<_> = paths
                .into_iter()
                .map(|p| {
                    let (native, data) = (self.clone(), data.clone());
                    tokio::task::spawn_blocking(move || native.write_stream(&p, &data, mib))
                })
                .collect();
            for t in tasks {
                t.await.map_err(err)??;
            }
            Ok(())
        })
    }

    fn cold_stat_args(&self, path: &str) -> Vec<String> {
        vec!["bench".into(), "--native-stat".into(), path.into()]
    }

    fn caches_code(&self) -> bool {
        false
    }
}

/// Runs a native operation on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(err)?
}
