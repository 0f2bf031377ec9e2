//! What every request handler shares: storage, configuration, authentication, the upload
//! limit and counters. Nothing here is needed by another instance: all registry state is
//! in KS3.
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue, Response, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::errors::{RegistryError, Result};
use crate::fence::Fence;
use crate::health::Health;
use crate::htpasswd::Htpasswd;
use crate::http_io::Body;
use crate::metrics::{Metrics, UploadCount};
use crate::store::Store;
use crate::token_auth::TokenVerifier;
use crate::upload_guard::{UploadLocks, READ_BACK_MAX};

pub struct App {
    pub store: Store,
    pub config: Config,
    pub htpasswd: Option<Htpasswd>,
    /// `auth.token`'s verifier.
    pub token: Option<TokenVerifier>,
    /// `http.tls`'s acceptor.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// `proxy`: the pull-through cache, in proxy mode.
    pub proxy: Option<Arc<crate::proxy::Proxy>>,
    /// The connections being served (for a graceful drain).
    pub connections: crate::listen::Connections,
    uploads: Arc<Semaphore>,
    uploads_by_client: ClientCounts,
    /// One request at a time per upload (see `upload_guard`).
    pub upload_locks: UploadLocks,
    /// Bytes of uploads being read back for verification at once, in KiB.
    read_back: Arc<Semaphore>,
    pub stats: Arc<Stats>,
    /// What `/metrics` on the debug port shows.
    pub metrics: Arc<Metrics>,
    /// The storage health check's verdict (`health.storagedriver`).
    pub health: Arc<Health>,
    /// The registry's side of the sweep fence (garbage collection while serving).
    pub fence: Fence,
    /// `notifications`: the webhook endpoints' queues, when configured.
    pub notifier: Option<Arc<crate::notify::Notifier>>,
}

/// What the configuration's files made: the access controller and the TLS acceptor.
#[derive(Default)]
pub struct Access {
    pub htpasswd: Option<Htpasswd>,
    pub token: Option<TokenVerifier>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// The address a request came from (put in its extensions by the server).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

/// A blob request's place among the uploads in progress; dropped, it frees the place.
pub struct UploadSlot {
    _permit: OwnedSemaphorePermit,
    _client: ClientCount,
    /// In `registry_uploads_in_progress` while the slot is held.
    _counted: UploadCount,
}

/// Upload requests in progress per client address.
type ClientCounts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// One of a client's uploads in progress, counted until dropped.
struct ClientCount(Option<(ClientCounts, IpAddr)>);

impl Drop for ClientCount {
    fn drop(&mut self) {
        if let Some((map, ip)) = self.0.take() {
            let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = map.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
    }
}

/// Counters of this instance, for tests and operators.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) blobs_uploaded: AtomicU64,
    pub(crate) blobs_mounted: AtomicU64,
    pub(crate) manifests_pushed: AtomicU64,
    pub(crate) digests_from_saved_state: AtomicU64,
    pub(crate) digests_from_reread: AtomicU64,
    pub(crate) digests_from_small_read_back: AtomicU64,
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
    /// Upload digests verified by reading the whole upload back (no state, or one the
    /// upload's writer markers did not prove to be of these bytes).
    pub digests_from_reread: u64,
    /// Small uploads (up to 4 MiB) verified from the bytes read back into memory, which
    /// then became the blob.
    pub digests_from_small_read_back: u64,
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
            digests_from_small_read_back: g(&self.digests_from_small_read_back),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl App {
    pub fn new(store: Store, config: Config, access: Access) -> App {
        let uploads = Arc::new(Semaphore::new(config.limits.max_uploads));
        let fence = Fence::new(config.gc.settle);
        App {
            store,
            config,
            htpasswd: access.htpasswd,
            token: access.token,
            tls: access.tls,
            proxy: None,
            connections: Default::default(),
            uploads,
            uploads_by_client: Arc::default(),
            upload_locks: UploadLocks::default(),
            read_back: Arc::new(Semaphore::new(READ_BACK_BUDGET_KIB)),
            stats: Arc::new(Stats::default()),
            metrics: Arc::default(),
            health: Arc::default(),
            fence,
            notifier: None,
        }
    }

    /// A slot for a request that carries blob data, or `429` when all are taken or the
    /// client already holds its share of them.
    pub fn upload_slot(&self, client: Option<ClientAddr>) -> Result<UploadSlot> {
        let client = client.map(|ClientAddr(ip)| {
            let share = self.config.limits.per_client_uploads();
            let mut map = self
                .uploads_by_client
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let n = map.entry(ip).or_insert(0);
            if *n >= share {
                return Err(RegistryError::TooManyRequests(format!(
                    "this client has {share} blob uploads in progress; retry later"
                )));
            }
            *n += 1;
            Ok((Arc::clone(&self.uploads_by_client), ip))
        });
        // Counted from here on: given back on drop, also when the global permit is refused.
        let client = ClientCount(client.transpose()?);
        let permit = Arc::clone(&self.uploads).try_acquire_owned().map_err(|_| {
            RegistryError::TooManyRequests(format!(
                "more than {} blob uploads in progress; retry later",
                self.config.limits.max_uploads
            ))
        })?;
        Ok(UploadSlot {
            _permit: permit,
            _client: client,
            _counted: self.metrics.upload_started(),
        })
    }

    /// Room to hold `bytes` of an upload in memory while it is verified, if the budget
    /// allows (`None`: verify it another way).
    pub fn read_back_room(&self, bytes: u64) -> Option<OwnedSemaphorePermit> {
        if bytes > READ_BACK_MAX {
            return None;
        }
        let kib = u32::try_from(bytes.div_ceil(1024).max(1)).ok()?;
        Arc::clone(&self.read_back).try_acquire_many_owned(kib).ok()
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

/// Bytes (in KiB) all requests together may hold for read-back verification: 16 small
/// uploads of [`READ_BACK_MAX`] at once.
const READ_BACK_BUDGET_KIB: usize = 16 * (READ_BACK_MAX as usize / 1024);

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
