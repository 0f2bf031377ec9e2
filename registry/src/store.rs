//! The registry's view of storage: links, blobs and manifests in distribution's layout,
//! every byte through the driver component.
//!
//! Two bounds every caller goes through (issue 25): a document a client may have written
//! (anything under `blobs/`, read as a manifest) is read only after its size is known to
//! be within [`MAX_MANIFEST`] ([`read_document`]); and every fan-out of driver calls
//! ([`fan_out`]) runs at most `width` at a time and draws each call from one
//! process-wide pool of [`FAN_OUT_PERMITS`], so no request (nor all of them together)
//! can turn into an unbounded burst of KS3 requests.
use std::future::Future;

use futures::stream::{self, StreamExt, TryStreamExt};
use ks3_driver_host::Driver;
use tokio::sync::Semaphore;

use crate::digest::Digest;
use crate::errors::{RegistryError, Result};
use crate::layout;
use crate::manifest::MAX_MANIFEST;

/// Driver calls of fan-outs in flight at once in this process, across every request, GC
/// and purge run.
pub const FAN_OUT_PERMITS: usize = 64;

/// Driver calls one request's fan-out keeps in flight (a quarter of the pool, so one
/// request cannot hold all of it).
pub const FAN_OUT_WIDTH: usize = 16;

/// The one pool every fan-out draws from. Process-wide rather than per [`Store`]: the
/// garbage collector and the purger run on a bare [`Driver`], and several registries of
/// one process (tests) share the machine all the same.
static FAN_OUT: Semaphore = Semaphore::const_new(FAN_OUT_PERMITS);

/// Runs `f` on each item, at most `width` at a time (at least 1), each call holding one
/// permit of the process-wide pool; the results in the items' order.
///
/// An item must not start another fan-out while it runs (it would hold a permit while
/// waiting for more: with every permit so held, nothing could proceed).
pub async fn fan_out<I, F, Fut, T>(items: I, width: usize, mut f: F) -> Vec<T>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = T>,
{
    let all = try_fan_out(items, width, |item| {
        let fut = f(item);
        async move { Ok::<T, std::convert::Infallible>(fut.await) }
    })
    .await;
    match all {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

/// [`fan_out`] that stops at the first error: no further item is started, and the
/// error is returned.
pub async fn try_fan_out<I, F, Fut, T, E>(
    items: I,
    width: usize,
    mut f: F,
) -> std::result::Result<Vec<T>, E>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
{
    stream::iter(items)
        .map(|item| {
            let fut = f(item);
            async move {
                let _permit = permit().await;
                fut.await
            }
        })
        .buffered(width.max(1))
        .try_collect()
        .await
}

/// A permit of the pool, held while one fan-out item runs.
async fn permit() -> Option<tokio::sync::SemaphorePermit<'static>> {
    // The pool is a static that is never closed, so `acquire` cannot fail; were it to,
    // running unpermitted is still bounded by the fan-out's width.
    FAN_OUT.acquire().await.ok()
}

/// A document read with a size cap.
#[derive(Debug)]
pub enum Document {
    Found(Vec<u8>),
    Missing,
    /// Larger than the cap: its size; its bytes were not read (or, when it grew between
    /// the size check and the read, were read by the sandbox and dropped here).
    TooLarge(u64),
}

/// The object at `path` if it is at most `cap` bytes: its size is looked up first, so a
/// large blob asked for as a manifest is never read. The read's result is checked again,
/// since the object may be replaced between the two calls (then the sandbox's own memory
/// limit is what bounds that one read).
pub async fn read_document(
    driver: &Driver,
    path: &str,
    cap: u64,
) -> std::result::Result<Document, ks3_driver_host::Error> {
    let size = match driver.stat(path).await {
        Ok(info) if info.is_dir => return Ok(Document::Missing),
        Ok(info) => info.size,
        Err(e) if e.is_not_found() => return Ok(Document::Missing),
        Err(e) => return Err(e),
    };
    if size > cap {
        return Ok(Document::TooLarge(size));
    }
    match driver.get_content(path).await {
        Ok(c) if c.len() as u64 > cap => Ok(Document::TooLarge(c.len() as u64)),
        Ok(c) => Ok(Document::Found(c)),
        Err(e) if e.is_not_found() => Ok(Document::Missing),
        Err(e) => Err(e),
    }
}

#[derive(Clone)]
pub struct Store {
    driver: Driver,
}

impl Store {
    pub fn new(driver: Driver) -> Store {
        Store { driver }
    }

    pub fn driver(&self) -> &Driver {
        &self.driver
    }

    /// The digest a link file names; `None` when the link does not exist. A link whose
    /// content is no digest counts as absent, as distribution's `readlink` fails on it.
    pub async fn read_link(&self, path: &str) -> Result<Option<Digest>> {
        match self.driver.get_content(path).await {
            Ok(c) => Ok(layout::parse_link(&c)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(RegistryError::storage("reading a link", e)),
        }
    }

    /// Writes a link exactly as distribution does: the digest string, no newline.
    pub async fn write_link(&self, path: &str, d: &Digest) -> Result<()> {
        self.driver
            .put_content_writerless(path, d.to_string().as_bytes())
            .await
            .map_err(|e| RegistryError::storage("writing a link", e))
    }

    /// Deletes `path` and everything under it; a missing path is not an error.
    pub async fn delete_if_present(&self, path: &str) -> Result<()> {
        delete_if_present(&self.driver, path)
            .await
            .map_err(|e| RegistryError::storage("deleting", e))
    }

    /// The size of a stored blob, `None` when it is absent.
    pub async fn blob_size(&self, d: &Digest) -> Result<Option<u64>> {
        match self.driver.stat(&layout::blob_data(d)).await {
            Ok(info) if !info.is_dir => Ok(Some(info.size)),
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(RegistryError::storage("looking up a blob", e)),
        }
    }

    /// The size of a blob that repository `name` holds (its `_layers` link names it and
    /// the data exists), as distribution's linked blob statter decides.
    pub async fn repo_blob_size(&self, name: &str, d: &Digest) -> Result<Option<u64>> {
        match self.read_link(&layout::layer_link(name, d)).await? {
            Some(linked) if &linked == d => self.blob_size(d).await,
            _ => Ok(None),
        }
    }

    /// Whether repository `name` links manifest `d` (its revision link, or a `_layers`
    /// link as distribution's fallback); its bytes may still be missing.
    pub async fn repo_links_manifest(&self, name: &str, d: &Digest) -> Result<bool> {
        let linked = match self.read_link(&layout::revision_link(name, d)).await? {
            Some(l) => Some(l),
            None => self.read_link(&layout::layer_link(name, d)).await?,
        };
        Ok(linked.as_ref() == Some(d))
    }

    /// Whether repository `name` holds manifest `d` (linked, see
    /// [`Store::repo_links_manifest`]) and its bytes exist.
    pub async fn repo_has_manifest(&self, name: &str, d: &Digest) -> Result<bool> {
        Ok(self.repo_links_manifest(name, d).await? && self.blob_size(d).await?.is_some())
    }

    /// The bytes of blob `d` read as a manifest: [`read_document`] capped at
    /// [`MAX_MANIFEST`] (distribution's limit), so that a layer asked for as a manifest
    /// is never read into memory.
    pub async fn get_manifest_bytes(&self, d: &Digest) -> Result<Document> {
        read_document(&self.driver, &layout::blob_data(d), MAX_MANIFEST)
            .await
            .map_err(|e| RegistryError::storage("reading a manifest", e))
    }

    /// The bytes of a small file only the registry itself writes (links, `startedat`,
    /// hash states; a few bytes each), `None` when absent. Never for anything under
    /// `blobs/`, whose size a client chooses: those go through
    /// [`Store::get_manifest_bytes`].
    pub async fn get_small(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.driver.get_content(path).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(RegistryError::storage("reading", e)),
        }
    }

    /// The direct children's base names, sorted; `None` when the directory is absent.
    pub async fn list_names(&self, path: &str) -> Result<Option<Vec<String>>> {
        match self.driver.list(path).await {
            Ok(children) => {
                let mut names: Vec<String> = children
                    .iter()
                    .filter_map(|c| c.rsplit('/').next())
                    .map(str::to_string)
                    .collect();
                names.sort();
                Ok(Some(names))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(RegistryError::storage("listing", e)),
        }
    }
}

/// Deletes `path` and everything under it; a path already gone counts as deleted (deletes
/// of the registry, its GC and its purger may race each other).
pub async fn delete_if_present(
    driver: &Driver,
    path: &str,
) -> std::result::Result<(), ks3_driver_host::Error> {
    match driver.delete(path).await {
        Err(e) if e.is_not_found() => Ok(()),
        done => done,
    }
}

/// [`delete_if_present`] of each `(label, path)`, `concurrency` at a time (a
/// [`fan_out`], so within the process-wide pool too); every result with its label and
/// path, in the targets' order.
pub async fn delete_each<L>(
    driver: &Driver,
    targets: Vec<(L, String)>,
    concurrency: usize,
) -> Vec<(L, String, std::result::Result<(), ks3_driver_host::Error>)> {
    fan_out(targets, concurrency, |(label, path)| async move {
        let r = delete_if_present(driver, &path).await;
        (label, path, r)
    })
    .await
}
