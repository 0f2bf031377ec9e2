//! Proxy mode (`proxy.remoteurl`): a pull-through cache of an upstream registry, as
//! distribution's. What a client asks for and the cache lacks is fetched from the
//! upstream and stored in the normal layout (`blobs/…/data`, `_layers`,
//! `_manifests/revisions`, `_manifests/tags/<t>/{current,index}`) while it is served:
//!
//! - **blobs** ([`fill`]) are streamed to the client as they arrive and written through
//!   the driver's writer at the same time; linked only once their digest verified (the
//!   last bytes reach the client only then, so a client never gets a whole wrong blob);
//!   concurrent pulls of one blob share one upstream fetch (single-flight per process);
//! - **manifests by tag** are revalidated at every pull: a `HEAD` of the tag upstream
//!   (as 2.8.2), the manifest fetched when its digest is not the cached tag's; the
//!   cached tag answers when the upstream is unreachable or does not know it;
//! - **manifests by digest** are served from the cache, fetched once when missing;
//! - cached content older than `proxy.ttl` is expired by a background task whose
//!   schedule is in the store ([`expiry`]), so it survives restarts and is shared by
//!   every instance on the bucket;
//! - writes are refused with distribution's `405 UNSUPPORTED` ([`refuse_write`]).
mod expiry;
mod fill;
mod upstream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, Method, Response};
use http_body_util::{BodyExt, Limited};
use ks3_driver_host::Driver;

use crate::app::App;
use crate::config::ProxyConfig;
use crate::digest::Digest;
use crate::errors::{RegistryError, Result};
use crate::http_io::Body;
use crate::layout;
use crate::manifest::{self, MAX_MANIFEST};
use crate::route::valid_tag;
use crate::store::Store;

pub use expiry::run_expiry;

const LOG: &str = "ks3_registry::proxy";

/// The manifest types asked for upstream (what this registry stores and serves).
const MANIFEST_TYPES: &[&str] = &[
    manifest::OCI_MANIFEST,
    manifest::OCI_INDEX,
    manifest::DOCKER_MANIFEST,
    manifest::DOCKER_LIST,
];

/// The pull-through cache of one upstream.
pub struct Proxy {
    upstream: upstream::Upstream,
    store: Store,
    config: ProxyConfig,
    /// Blob fetches in progress, by repository and digest.
    flights: Mutex<HashMap<(String, Digest), Arc<fill::Flight>>>,
}

impl Proxy {
    pub fn new(config: ProxyConfig, driver: Driver) -> std::result::Result<Arc<Proxy>, String> {
        Ok(Arc::new(Proxy {
            upstream: upstream::Upstream::new(&config)?,
            store: Store::new(driver),
            config,
            flights: Mutex::default(),
        }))
    }

    /// Brings the cache up to date for a manifest `GET`/`HEAD` of `reference` before it
    /// is read from the store as any other: a tag is revalidated upstream, a digest the
    /// repository lacks is fetched. The upstream's failures are logged and leave the
    /// cache as it is (the read then answers from it, or `MANIFEST_UNKNOWN`).
    async fn refresh_manifest(&self, name: &str, reference: &str) -> Result<()> {
        if reference.contains(':') {
            let Some(d) = Digest::parse(reference) else {
                return Ok(());
            };
            if self.store.repo_has_manifest(name, &d).await? {
                return Ok(());
            }
            return self.fetch_manifest(name, &d, None).await;
        }
        if !valid_tag(reference) {
            return Ok(());
        }
        let what = format!("manifests/{reference}");
        let current = layout::tag_current_link(name, reference);
        let (head, cached) = tokio::join!(
            self.upstream.get(Method::HEAD, name, &what, MANIFEST_TYPES),
            self.store.read_link(&current)
        );
        let cached = cached?;
        let upstream_digest = match head {
            Ok(Some(resp)) => resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(Digest::parse),
            // 2.8.2: a tag the upstream does not know (any more) is served from the cache.
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::warn!(target: LOG, "revalidating {name}:{reference}: {e}; serving the cached tag");
                return Ok(());
            }
        };
        match upstream_digest {
            Some(d) if cached.as_ref() == Some(&d) => {
                // The tag is current; its manifest may have expired from the cache.
                if !self.store.repo_has_manifest(name, &d).await? {
                    self.fetch_manifest(name, &d, Some(reference)).await?;
                }
                Ok(())
            }
            Some(d) => self.fetch_manifest(name, &d, Some(reference)).await,
            // No digest in the HEAD's answer: GET by tag and hash it.
            None => self.fetch_manifest_by_tag(name, reference).await,
        }
    }

    async fn fetch_manifest(&self, name: &str, d: &Digest, tag: Option<&str>) -> Result<()> {
        let Some(bytes) = self.get_manifest(name, &d.to_string()).await else {
            return Ok(());
        };
        let got = Digest::of(d.algorithm(), &bytes);
        if &got != d {
            tracing::warn!(target: LOG, "the upstream's manifest {d} of {name} hashes to {got}: not cached");
            return Ok(());
        }
        self.store_manifest(name, d, &bytes, tag).await
    }

    async fn fetch_manifest_by_tag(&self, name: &str, tag: &str) -> Result<()> {
        let Some(bytes) = self.get_manifest(name, tag).await else {
            return Ok(());
        };
        let d = Digest::of(crate::digest::Algorithm::Sha256, &bytes);
        self.store_manifest(name, &d, &bytes, Some(tag)).await
    }

    /// The upstream's manifest bytes (`None`, logged, when it has none to give).
    async fn get_manifest(&self, name: &str, reference: &str) -> Option<Vec<u8>> {
        let what = format!("manifests/{reference}");
        let resp = match self
            .upstream
            .get(Method::GET, name, &what, MANIFEST_TYPES)
            .await
        {
            Ok(Some(r)) => r,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(target: LOG, "fetching manifest {name}:{reference}: {e}");
                return None;
            }
        };
        let limit = usize::try_from(MAX_MANIFEST).unwrap_or(usize::MAX);
        match Limited::new(resp.into_body(), limit).collect().await {
            Ok(b) => Some(b.to_bytes().to_vec()),
            Err(e) => {
                tracing::warn!(target: LOG, "reading manifest {name}:{reference} from the upstream: {e}");
                None
            }
        }
    }

    /// Schedules a verified manifest's expiry, then stores it as a push would: its bytes,
    /// its revision link, and the tag's current and index links.
    async fn store_manifest(
        &self,
        name: &str,
        d: &Digest,
        bytes: &[u8],
        tag: Option<&str>,
    ) -> Result<()> {
        if manifest::stored_media_type(bytes)
            .and_then(|m| manifest::kind_of(&m))
            .is_none()
        {
            tracing::warn!(target: LOG, "the upstream's {name}@{d} is no manifest this registry serves: not cached");
            return Ok(());
        }
        // Scheduled first: whatever of the manifest is stored is then sure to expire.
        expiry::schedule(self, expiry::Kind::Manifest, name, d).await;
        let driver = self.store.driver();
        let blob = layout::blob_data(d);
        let data = async {
            driver
                .put_content_writerless(&blob, bytes)
                .await
                .map_err(|e| RegistryError::storage("caching a manifest", e))
        };
        let revision_link = layout::revision_link(name, d);
        let revision = self.store.write_link(&revision_link, d);
        let (data, revision) = tokio::join!(data, revision);
        data?;
        revision?;
        if let Some(t) = tag {
            let (current, index) = (
                layout::tag_current_link(name, t),
                layout::tag_index_link(name, t, d),
            );
            let (current, index) = tokio::join!(
                self.store.write_link(&current, d),
                self.store.write_link(&index, d)
            );
            current?;
            index?;
        }
        Ok(())
    }
}

/// Before a manifest `GET`/`HEAD` is answered from the store: in proxy mode, the cache
/// brought up to date (see [`Proxy::refresh_manifest`]).
pub async fn refresh_manifest(app: &App, name: &str, reference: &str) -> Result<()> {
    match &app.proxy {
        Some(p) => p.refresh_manifest(name, reference).await,
        None => Ok(()),
    }
}

/// In proxy mode, `tags/list` as the upstream answers it while it can (2.8.2's rule);
/// `None` (the cached tags answer) when it is unreachable, refuses, or does not know the
/// repository.
pub async fn upstream_tags(
    app: &App,
    name: &str,
    query: &[(String, String)],
) -> Option<Response<Body>> {
    let p = app.proxy.as_ref()?;
    let q: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "n" || k == "last")
        .map(|(k, v)| format!("{k}={}", crate::http_io::percent_encode(v)))
        .collect();
    let what = if q.is_empty() {
        "tags/list".to_string()
    } else {
        format!("tags/list?{}", q.join("&"))
    };
    let resp = match p.upstream.get(Method::GET, name, &what, &[]).await {
        Ok(Some(r)) => r,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(target: LOG, "listing the tags of {name} upstream: {e}; listing the cached ones");
            return None;
        }
    };
    let link = resp
        .headers()
        .get(http::header::LINK)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = Limited::new(resp.into_body(), 16 << 20)
        .collect()
        .await
        .ok()?
        .to_bytes();
    serde_json::from_slice::<serde_json::Value>(&body).ok()?;
    let mut h = vec![("content-type", "application/json".to_string())];
    if let Some(l) = link {
        h.push(("link", l));
    }
    Some(crate::app::respond(
        http::StatusCode::OK,
        &h,
        Body::full(body),
    ))
}

/// What a blob request that missed the cache gets.
pub enum Miss {
    /// The answer (a `HEAD`'s headers, or the bytes streamed as they are fetched).
    Answer(Response<Body>),
    /// The blob is now stored (another request fetched it): serve it from the store.
    Stored(u64),
}

/// A blob `GET`/`HEAD` that the repository lacks: `BLOB_UNKNOWN`, or in proxy mode the
/// upstream's blob (see [`fill`]).
pub async fn blob_miss(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    name: &str,
    d: &Digest,
) -> Result<Miss> {
    let Some(p) = &app.proxy else {
        return Err(RegistryError::BlobUnknown(format!(
            "blob {d} is not in {name}"
        )));
    };
    fill::blob(p, app, method, headers, name, d).await
}

/// In proxy mode every request but a `GET` or `HEAD` is refused as distribution 2.8.2
/// refuses it: `405` with `{"errors":[{"code":"UNSUPPORTED",…}]}`.
pub fn refuse_write(app: &App, method: &Method) -> Result<()> {
    if app.proxy.is_some() && method != Method::GET && method != Method::HEAD {
        return Err(RegistryError::Unsupported(
            "the registry is a pull-through cache (proxy mode): pushes and deletes are not allowed"
                .into(),
        ));
    }
    Ok(())
}
