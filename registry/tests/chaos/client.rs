//! A plain HTTP client that never panics (a refused connection or a timeout is an
//! outcome, not a test failure), and the registry's blob and manifest requests on it.
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest as _, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A request that outlives this is abandoned (an unknown outcome). Long enough that no
/// request the registry is still working on is given up while the model moves on.
const REQUEST_LIMIT: Duration = Duration::from_secs(90);

pub struct Resp {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Every request to a registry that got no answer or a 5xx: when, and why in a few
/// words (the report tells those during the kills from the others).
static TROUBLE: std::sync::Mutex<Vec<(Instant, String)>> = std::sync::Mutex::new(Vec::new());

pub fn trouble() -> Vec<(Instant, String)> {
    TROUBLE.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn note(url: &str, what: String) {
    if !url.contains("/_ks3local/") {
        TROUBLE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((Instant::now(), what));
    }
}

/// A few words for a request that got no answer.
fn why_no_answer(method: &Method, e: &str) -> String {
    let why = if e.contains("ConnectionRefused") {
        "connection refused"
    } else if e.contains("IncompleteMessage") {
        "connection closed before the answer"
    } else if e.contains("ConnectionReset") {
        "connection reset"
    } else if e.contains("no answer in") {
        "no answer within the time limit"
    } else {
        e
    };
    format!(
        "{method}: no answer: {}",
        why.chars().take(120).collect::<String>()
    )
}

#[derive(Clone)]
pub struct Http {
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Http {
    pub fn new() -> Http {
        Http {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(5))
                .build_http(),
        }
    }

    /// One request; `Err` is a connection error or the time limit (no answer).
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Resp, String> {
        let mut b = Request::builder().method(method.clone()).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let work = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("reading the body: {e:?}"))?
                .to_bytes();
            Ok(Resp {
                status: parts.status,
                headers: parts.headers,
                body: body.to_vec(),
            })
        };
        let r = tokio::time::timeout(REQUEST_LIMIT, work)
            .await
            .unwrap_or_else(|_| Err(format!("no answer in {REQUEST_LIMIT:?}")));
        match &r {
            Err(e) => note(url, why_no_answer(&method, e)),
            Ok(resp) if resp.status.is_server_error() => {
                let code = serde_json::from_slice::<serde_json::Value>(&resp.body)
                    .ok()
                    .and_then(|v| v["errors"][0]["code"].as_str().map(str::to_string))
                    .unwrap_or_default();
                note(url, format!("{method}: {} {code}", resp.status.as_u16()));
            }
            Ok(_) => {}
        }
        r
    }
}

pub fn sha256(data: &[u8]) -> String {
    let h = Sha256::digest(data);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// How a request ended, as the report counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// The answer the operation wanted (201, 202, 200…).
    Ok,
    /// A 4xx: the registry refused (it says nothing happened).
    Refused,
    /// A 5xx: unknown whether it happened.
    Failed,
    /// No answer (a killed instance, a cut connection, the time limit): unknown too.
    NoAnswer,
}

impl Outcome {
    pub fn of(r: &Result<Resp, String>, wanted: StatusCode) -> Outcome {
        match r {
            Ok(r) if r.status == wanted => Outcome::Ok,
            Ok(r) if r.status.is_client_error() => Outcome::Refused,
            Ok(_) => Outcome::Failed,
            Err(_) => Outcome::NoAnswer,
        }
    }
}

/// How a blob goes up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Upload {
    /// `POST ?digest=` with the whole body.
    Monolithic,
    /// `POST`, then `PUT ?digest=` with the whole body.
    PostPut,
    /// `POST`, `PATCH` chunks, then an empty `PUT ?digest=`.
    Chunked,
}

/// Uploads `data` to `repo` on `base`; the outcome is the closing request's (201 wanted),
/// or the first failure's.
pub async fn upload_blob(
    http: &Http,
    base: &str,
    repo: &str,
    data: &[u8],
    how: Upload,
    chunk: usize,
) -> Outcome {
    let d = sha256(data);
    let start = format!("{base}/v2/{repo}/blobs/uploads/");
    if how == Upload::Monolithic {
        let r = http
            .send(
                Method::POST,
                &format!("{start}?digest={d}"),
                &[("content-type", "application/octet-stream")],
                data.to_vec(),
            )
            .await;
        return Outcome::of(&r, StatusCode::CREATED);
    }
    let r = http.send(Method::POST, &start, &[], Vec::new()).await;
    let location = match &r {
        Ok(resp) if resp.status == StatusCode::ACCEPTED => match resp.header("location") {
            Some(l) => l.to_string(),
            None => return Outcome::Failed,
        },
        _ => return Outcome::of(&r, StatusCode::ACCEPTED),
    };
    upload_to(http, base, &location, data, &d, how, chunk).await
}

/// The rest of an upload whose session is at `location` (as the registry answered it).
pub async fn upload_to(
    http: &Http,
    base: &str,
    location: &str,
    data: &[u8],
    digest: &str,
    how: Upload,
    chunk: usize,
) -> Outcome {
    let mut location = absolute(base, location);
    let sep = |l: &str| if l.contains('?') { '&' } else { '?' };
    if how == Upload::Chunked {
        let mut offset = 0;
        for piece in data.chunks(chunk.max(1)) {
            let range = format!("{offset}-{}", offset + piece.len() - 1);
            let r = http
                .send(
                    Method::PATCH,
                    &location,
                    &[
                        ("content-range", &range),
                        ("content-type", "application/octet-stream"),
                    ],
                    piece.to_vec(),
                )
                .await;
            match &r {
                Ok(resp) if resp.status == StatusCode::ACCEPTED => {
                    if let Some(l) = resp.header("location") {
                        location = absolute(base, l);
                    }
                }
                _ => return Outcome::of(&r, StatusCode::ACCEPTED),
            }
            offset += piece.len();
        }
        let url = format!("{location}{}digest={digest}", sep(&location));
        let r = http.send(Method::PUT, &url, &[], Vec::new()).await;
        return Outcome::of(&r, StatusCode::CREATED);
    }
    let url = format!("{location}{}digest={digest}", sep(&location));
    let r = http
        .send(
            Method::PUT,
            &url,
            &[("content-type", "application/octet-stream")],
            data.to_vec(),
        )
        .await;
    Outcome::of(&r, StatusCode::CREATED)
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else {
        format!("{base}{location}")
    }
}

/// `POST ?mount=&from=`: `Ok(None)` mounted (201); `Ok(Some(location))` the registry
/// started an upload instead (202); `Err` the outcome of a failure.
pub async fn mount(
    http: &Http,
    base: &str,
    repo: &str,
    digest: &str,
    from: &str,
) -> Result<Option<String>, Outcome> {
    let url = format!("{base}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}");
    let r = http.send(Method::POST, &url, &[], Vec::new()).await;
    match &r {
        Ok(resp) if resp.status == StatusCode::CREATED => Ok(None),
        Ok(resp) if resp.status == StatusCode::ACCEPTED => match resp.header("location") {
            Some(l) => Ok(Some(l.to_string())),
            None => Err(Outcome::Failed),
        },
        _ => Err(Outcome::of(&r, StatusCode::CREATED)),
    }
}

/// `HEAD /v2/<repo>/blobs/<digest>`: 200 (true), 404 (false), or an outcome.
pub async fn blob_exists(
    http: &Http,
    base: &str,
    repo: &str,
    digest: &str,
) -> Result<bool, Outcome> {
    let url = format!("{base}/v2/{repo}/blobs/{digest}");
    let r = http.send(Method::HEAD, &url, &[], Vec::new()).await;
    match &r {
        Ok(resp) if resp.status == StatusCode::OK => Ok(true),
        Ok(resp) if resp.status == StatusCode::NOT_FOUND => Ok(false),
        _ => Err(Outcome::of(&r, StatusCode::OK)),
    }
}

pub async fn put_manifest(
    http: &Http,
    base: &str,
    repo: &str,
    reference: &str,
    body: &[u8],
) -> Result<Resp, String> {
    let url = format!("{base}/v2/{repo}/manifests/{reference}");
    http.send(
        Method::PUT,
        &url,
        &[("content-type", OCI_MANIFEST)],
        body.to_vec(),
    )
    .await
}

pub async fn get_manifest(
    http: &Http,
    base: &str,
    repo: &str,
    reference: &str,
) -> Result<Resp, String> {
    let url = format!("{base}/v2/{repo}/manifests/{reference}");
    http.send(Method::GET, &url, &[("accept", OCI_MANIFEST)], Vec::new())
        .await
}

pub async fn get_blob(http: &Http, base: &str, repo: &str, digest: &str) -> Result<Resp, String> {
    let url = format!("{base}/v2/{repo}/blobs/{digest}");
    http.send(Method::GET, &url, &[], Vec::new()).await
}

pub async fn delete_manifest(
    http: &Http,
    base: &str,
    repo: &str,
    reference: &str,
) -> Result<Resp, String> {
    let url = format!("{base}/v2/{repo}/manifests/{reference}");
    http.send(Method::DELETE, &url, &[], Vec::new()).await
}
