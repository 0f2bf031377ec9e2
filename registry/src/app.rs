//! What every request handler shares: storage, configuration, authentication, the upload
//! limit and counters. Nothing here is needed by another instance: all registry state is
//! in KS3.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Response, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::errors::{RegistryError, Result};
use crate::htpasswd::Htpasswd;
use crate::http_io::Body;
use crate::store::Store;

pub struct App {
    pub store: Store,
    pub config: Config,
    pub htpasswd: Option<Htpasswd>,
    uploads: Arc<Semaphore>,
    pub stats: Arc<Stats>,
}

/// Counters of this instance, for tests and operators.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) blobs_uploaded: AtomicU64,
    pub(crate) blobs_mounted: AtomicU64,
    pub(crate) manifests_pushed: AtomicU64,
    pub(crate) digests_from_saved_state: AtomicU64,
    pub(crate) digests_from_reread: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Blob uploads completed (monolithic or chunked).
    pub blobs_uploaded: u64,
    /// Cross-repository mounts answered with 201.
    pub blobs_mounted: u64,
    pub manifests_pushed: u64,
    /// Upload digests verified from the saved hash state, without reading the data back.
    pub digests_from_saved_state: u64,
    /// Upload digests verified by reading the whole upload back (no matching state).
    pub digests_from_reread: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            blobs_uploaded: g(&self.blobs_uploaded),
            blobs_mounted: g(&self.blobs_mounted),
            manifests_pushed: g(&self.manifests_pushed),
            digests_from_saved_state: g(&self.digests_from_saved_state),
            digests_from_reread: g(&self.digests_from_reread),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl App {
    pub fn new(store: Store, config: Config, htpasswd: Option<Htpasswd>) -> App {
        let uploads = Arc::new(Semaphore::new(config.limits.max_uploads));
        App {
            store,
            config,
            htpasswd,
            uploads,
            stats: Arc::new(Stats::default()),
        }
    }

    /// A slot for a request that carries blob data, or `429` when all are taken.
    pub fn upload_slot(&self) -> Result<OwnedSemaphorePermit> {
        Arc::clone(&self.uploads).try_acquire_owned().map_err(|_| {
            RegistryError::TooManyRequests(format!(
                "more than {} blob uploads in progress; retry later",
                self.config.limits.max_uploads
            ))
        })
    }

    pub fn require_delete(&self) -> Result<()> {
        if self.config.delete_enabled {
            Ok(())
        } else {
            Err(RegistryError::Unsupported(
                "deletes are disabled (storage.delete.enabled)".into(),
            ))
        }
    }
}

/// A response with `status`, these headers and body.
pub fn respond(status: StatusCode, headers: &[(&str, String)], body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    set_headers(r.headers_mut(), headers);
    r
}

/// Sets headers whose values are already known to be valid; one that is not (a bug, or a
/// value from storage that cannot travel in a header) is left out rather than panicking.
pub fn set_headers(map: &mut HeaderMap, headers: &[(&str, String)]) {
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            map.append(name, value);
        }
    }
}

/// The error's JSON response.
pub fn error_response(e: &RegistryError) -> Response<Body> {
    respond(
        e.status(),
        &[("content-type", "application/json; charset=utf-8".into())],
        Body::full(e.body()),
    )
}
