//! A bare registry client for the "At 20 ms" table: the requests skopeo and a sequential
//! OCI client send, one by one, each timed, over a plain pooled HTTP/1.1 client (no
//! redirects followed but the blob GET's own, no retries), so the table can say which
//! client request waited on how many KS3 round trips.
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::image::sha256_hex;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// How a blob is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// `POST`, then `PUT ?digest=` with the whole body (oci-client's monolithic push, the
    /// spec's most common single-blob path).
    Monolithic,
    /// skopeo's (containers/image): `HEAD` of the blob (is it there already?), `POST`,
    /// one `PATCH` with the whole body, `PUT ?digest=` without one.
    Skopeo,
}

impl Flow {
    /// The client requests of one upload, in order (what [`Registry::push_blob`] times).
    pub fn steps(self) -> &'static [&'static str] {
        match self {
            Flow::Monolithic => &["POST", "PUT"],
            Flow::Skopeo => &["HEAD", "POST", "PATCH", "PUT"],
        }
    }
}

/// One registry's base URL and a pooled client.
#[derive(Clone)]
pub struct Registry {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A blob's digest (`sha256:…`) and size.
#[derive(Debug, Clone)]
pub struct BlobRef {
    pub digest: String,
    pub size: usize,
}

impl BlobRef {
    pub fn of(data: &[u8]) -> BlobRef {
        BlobRef {
            digest: format!("sha256:{}", sha256_hex(data)),
            size: data.len(),
        }
    }
}

/// An OCI image manifest of `config` and `layers`; `salt` (when set) goes into an
/// annotation, so manifests of the same blobs can differ.
pub fn manifest(config: &BlobRef, layers: &[BlobRef], salt: Option<u64>) -> Bytes {
    let mut m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": OCI_LAYER, "digest": l.digest, "size": l.size
        })).collect::<Vec<_>>(),
    });
    if let Some(s) = salt {
        m["annotations"] = serde_json::json!({"bench.salt": s.to_string()});
    }
    Bytes::from(m.to_string())
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Registry {
    /// `addr` is `host:port`.
    pub fn new(addr: &str) -> Registry {
        Registry {
            base: format!("http://{addr}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, String> {
        let mut b = Request::builder().method(method.clone()).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if !body.is_empty() || method == Method::PUT || method == Method::POST {
            b = b.header(header::CONTENT_LENGTH, body.len());
        }
        let req = b.body(Full::new(body)).map_err(|e| e.to_string())?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?
            .to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// `want` or an error naming the request and the answer.
    fn expect(a: &Answer, want: StatusCode, what: &str) -> Result<(), String> {
        if a.status == want {
            Ok(())
        } else {
            Err(format!(
                "{what}: {} (expected {want}): {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            ))
        }
    }

    /// An answer's `Location`, as an absolute URL.
    fn location(&self, a: &Answer, what: &str) -> Result<String, String> {
        let loc = a
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("{what}: no Location"))?;
        Ok(
            if loc.starts_with("http://") || loc.starts_with("https://") {
                loc.to_string()
            } else {
                format!("{}{loc}", self.base)
            },
        )
    }

    /// Uploads `data` to `repo` by `flow`; the time each client request took, in the
    /// order of [`Flow::steps`].
    pub async fn push_blob(
        &self,
        repo: &str,
        data: Bytes,
        flow: Flow,
    ) -> Result<Vec<Duration>, String> {
        let blob = BlobRef::of(&data);
        let mut times = Vec::with_capacity(4);
        let mut timed = Instant::now();
        let mut lap = |times: &mut Vec<Duration>| {
            times.push(timed.elapsed());
            timed = Instant::now();
        };
        if flow == Flow::Skopeo {
            let url = format!("{}/v2/{repo}/blobs/{}", self.base, blob.digest);
            let a = self.send(Method::HEAD, &url, &[], Bytes::new()).await?;
            Self::expect(&a, StatusCode::NOT_FOUND, "HEAD blob")?;
            lap(&mut times);
        }
        let url = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let a = self.send(Method::POST, &url, &[], Bytes::new()).await?;
        Self::expect(&a, StatusCode::ACCEPTED, "POST upload")?;
        let mut loc = self.location(&a, "POST upload")?;
        lap(&mut times);
        let octets = [("content-type", "application/octet-stream")];
        let put_body = match flow {
            Flow::Monolithic => data,
            Flow::Skopeo => {
                let a = self.send(Method::PATCH, &loc, &octets, data).await?;
                Self::expect(&a, StatusCode::ACCEPTED, "PATCH upload")?;
                loc = self.location(&a, "PATCH upload")?;
                lap(&mut times);
                Bytes::new()
            }
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let url = format!("{loc}{sep}digest={}", blob.digest);
        let a = self.send(Method::PUT, &url, &octets, put_body).await?;
        Self::expect(&a, StatusCode::CREATED, "PUT upload")?;
        lap(&mut times);
        Ok(times)
    }

    /// Puts `manifest` as `repo:tag`; the time it took.
    pub async fn push_manifest(
        &self,
        repo: &str,
        tag: &str,
        manifest: Bytes,
    ) -> Result<Duration, String> {
        let t = Instant::now();
        let url = format!("{}/v2/{repo}/manifests/{tag}", self.base);
        let a = self
            .send(
                Method::PUT,
                &url,
                &[("content-type", OCI_MANIFEST)],
                manifest,
            )
            .await?;
        Self::expect(&a, StatusCode::CREATED, "PUT manifest")?;
        Ok(t.elapsed())
    }

    /// Pushes an image: its layers by `flow`, all at once when `concurrent` (skopeo), else
    /// one after the other; then its config, then the manifest as `repo:tag`.
    pub async fn push_image(
        &self,
        repo: &str,
        tag: &str,
        layers: &[Bytes],
        config: Bytes,
        flow: Flow,
        concurrent: bool,
    ) -> Result<(), String> {
        if concurrent {
            futures::future::try_join_all(
                layers.iter().map(|l| self.push_blob(repo, l.clone(), flow)),
            )
            .await?;
        } else {
            for l in layers {
                self.push_blob(repo, l.clone(), flow).await?;
            }
        }
        let config_ref = BlobRef::of(&config);
        self.push_blob(repo, config, flow).await?;
        let refs: Vec<BlobRef> = layers.iter().map(|l| BlobRef::of(l)).collect();
        self.push_manifest(repo, tag, manifest(&config_ref, &refs, None))
            .await?;
        Ok(())
    }

    /// Pulls `repo:tag`: the manifest, then its config and layers (all at once when
    /// `concurrent`), each blob GET's redirect to KS3 followed, every digest checked.
    pub async fn pull_image(&self, repo: &str, tag: &str, concurrent: bool) -> Result<(), String> {
        let url = format!("{}/v2/{repo}/manifests/{tag}", self.base);
        let a = self
            .send(Method::GET, &url, &[("accept", OCI_MANIFEST)], Bytes::new())
            .await?;
        Self::expect(&a, StatusCode::OK, "GET manifest")?;
        let m: serde_json::Value =
            serde_json::from_slice(&a.body).map_err(|e| format!("manifest: {e}"))?;
        let mut digests = vec![m["config"]["digest"].as_str().unwrap_or("").to_string()];
        if let Some(layers) = m["layers"].as_array() {
            digests.extend(
                layers
                    .iter()
                    .map(|l| l["digest"].as_str().unwrap_or("").to_string()),
            );
        }
        if concurrent {
            futures::future::try_join_all(digests.iter().map(|d| self.pull_blob(repo, d))).await?;
        } else {
            for d in &digests {
                self.pull_blob(repo, d).await?;
            }
        }
        Ok(())
    }

    async fn pull_blob(&self, repo: &str, digest: &str) -> Result<(), String> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let mut a = self.send(Method::GET, &url, &[], Bytes::new()).await?;
        if a.status == StatusCode::TEMPORARY_REDIRECT {
            let to = self.location(&a, "GET blob")?;
            a = self.send(Method::GET, &to, &[], Bytes::new()).await?;
        }
        Self::expect(&a, StatusCode::OK, "GET blob")?;
        if format!("sha256:{}", sha256_hex(&a.body)) != digest {
            return Err(format!("GET blob {digest}: other bytes"));
        }
        Ok(())
    }
}
