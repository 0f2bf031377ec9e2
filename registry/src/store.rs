//! The registry's view of storage: links, blobs and manifests in distribution's layout,
//! every byte through the driver component.
use futures::stream::{self, StreamExt};
use ks3_driver::Driver;

use crate::digest::Digest;
use crate::errors::{RegistryError, Result};
use crate::layout;

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
            Err(e) => Err(RegistryError::storage("reading a link", &e)),
        }
    }

    /// Writes a link exactly as distribution does: the digest string, no newline.
    pub async fn write_link(&self, path: &str, d: &Digest) -> Result<()> {
        self.driver
            .put_content(path, d.to_string().as_bytes())
            .await
            .map_err(|e| RegistryError::storage("writing a link", &e))
    }

    /// Deletes `path` and everything under it; a missing path is not an error.
    pub async fn delete_if_present(&self, path: &str) -> Result<()> {
        delete_if_present(&self.driver, path)
            .await
            .map_err(|e| RegistryError::storage("deleting", &e))
    }

    /// The size of a stored blob, `None` when it is absent.
    pub async fn blob_size(&self, d: &Digest) -> Result<Option<u64>> {
        match self.driver.stat(&layout::blob_data(d)).await {
            Ok(info) if !info.is_dir => Ok(Some(info.size)),
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(RegistryError::storage("looking up a blob", &e)),
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

    /// Whether repository `name` holds manifest `d` (its revision link, or a `_layers`
    /// link as distribution's fallback) and its bytes exist.
    pub async fn repo_has_manifest(&self, name: &str, d: &Digest) -> Result<bool> {
        let linked = match self.read_link(&layout::revision_link(name, d)).await? {
            Some(l) => Some(l),
            None => self.read_link(&layout::layer_link(name, d)).await?,
        };
        match linked {
            Some(l) if &l == d => Ok(self.blob_size(d).await?.is_some()),
            _ => Ok(false),
        }
    }

    /// A small object's bytes (manifests), `None` when absent.
    pub async fn get_small(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.driver.get_content(path).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(RegistryError::storage("reading", &e)),
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
            Err(e) => Err(RegistryError::storage("listing", &e)),
        }
    }
}

/// Deletes `path` and everything under it; a path already gone counts as deleted (deletes
/// of the registry, its GC and its purger may race each other).
pub async fn delete_if_present(
    driver: &Driver,
    path: &str,
) -> std::result::Result<(), ks3_driver::Error> {
    match driver.delete(path).await {
        Err(e) if e.is_not_found() => Ok(()),
        done => done,
    }
}

/// [`delete_if_present`] of each `(label, path)`, `concurrency` at a time; every result
/// with its label and path, in the order they finish.
pub async fn delete_each<L>(
    driver: &Driver,
    targets: Vec<(L, String)>,
    concurrency: usize,
) -> Vec<(L, String, std::result::Result<(), ks3_driver::Error>)> {
    stream::iter(targets)
        .map(|(label, path)| async move {
            let r = delete_if_present(driver, &path).await;
            (label, path, r)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}
