//! The physical limit of a row: the same transfer by a plain HTTP client (what `curl` on a
//! presigned URL does) against the same server, with no signing per request, no
//! hashing, no checks and no copies of the payload: one PUT of the whole stream, one GET.
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::server::{presigned_url, scratch_key};
use super::MIB;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// `frames` times the same 1 MiB, shared, never copied.
struct Repeat {
    frame: Bytes,
    left: usize,
}

impl Body for Repeat {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        Poll::Ready(Some(Ok(Frame::data(self.frame.clone()))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.left * self.frame.len()) as u64)
    }
}

/// Upload and download times of `mib` MiB as one object at `endpoint` (the benchmark's
/// local server, V2 presigned URLs); the download is the best of `reads`.
pub async fn limit(
    endpoint: &str,
    mib: usize,
    data: Arc<Vec<u8>>,
    reads: usize,
) -> Result<(Duration, Duration), String> {
    let key = scratch_key("ks3-driver-bench-limit");
    let url = |method: &str| presigned_url(endpoint, &key, method);
    let frame = Bytes::from((*data).clone());
    if frame.len() != MIB {
        return Err("the payload is not 1 MiB".into());
    }

    let put_client = Client::builder(TokioExecutor::new()).build_http::<Repeat>();
    let req = http::Request::put(url("PUT"))
        .header("content-length", (mib * MIB).to_string())
        .body(Repeat { frame, left: mib })
        .map_err(|e| e.to_string())?;
    let t = Instant::now();
    let resp = put_client
        .request(req)
        .await
        .map_err(|e| format!("limit PUT: {e}"))?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    let up = t.elapsed();
    if !status.is_success() {
        return Err(format!("limit PUT: HTTP {status}"));
    }

    let get_client =
        Client::builder(TokioExecutor::new()).build_http::<http_body_util::Empty<Bytes>>();
    let mut down = Duration::MAX;
    for _ in 0..reads.max(1) {
        down = down.min(read(&get_client, &url("GET"), mib * MIB).await?);
    }
    let del = http::Request::delete(url("DELETE"))
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let _ = get_client.request(del).await;
    Ok((up, down))
}

/// One GET of the whole object: its time.
async fn read(
    client: &Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Empty<Bytes>,
    >,
    url: &str,
    size: usize,
) -> Result<Duration, String> {
    let t = Instant::now();
    let resp = client
        .get(url.parse().map_err(|e| format!("limit GET URL: {e}"))?)
        .await
        .map_err(|e| format!("limit GET: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("limit GET: HTTP {}", resp.status()));
    }
    let mut body = resp.into_body();
    let mut got = 0usize;
    while let Some(f) = body.frame().await {
        if let Ok(d) = f.map_err(|e| format!("limit GET body: {e}"))?.into_data() {
            got += d.len();
        }
    }
    let took = t.elapsed();
    if got != size {
        return Err(format!("limit GET: {got} of {size} bytes"));
    }
    Ok(took)
}
