//! The driver's tails (`<rootdirectory>/~tails/<path>`, driver/src/ops/tail.rs): what a
//! closed, uncommitted writer saved. No driver path names them (`~` is outside the path
//! alphabet), so no driver operation lists them; fsck lists them itself, with one
//! signed `GET /?prefix=…` per 1000 keys: the request built and signed by the driver's
//! own client code (`Client::sign`, natively: the configured scheme, addressing style
//! and credentials) and sent through the driver's pooled egress client, the door the
//! host keeps for trusted native callers. Deleting an orphan tail goes through the
//! driver (`delete` of the path it belongs to removes the tail and aborts its upload).
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use ks3_driver_component::client::{Call, Client, MAX_XML};
use ks3_driver_component::http::{
    Request, Response, Transport, TransportError, TransportErrorKind,
};
use ks3_driver_component::path::{FilePath, Keys};
use ks3_driver_host::egress_client::{EgressClient, RequestOptions};
use ks3_driver_host::Driver;
use ks3_proto::xml::{self, ListBucketResult};

use super::FsckError;
use crate::layout;

/// The client only signs here; requests go out through the async egress client, so this
/// transport is never asked to send.
struct SignOnly;

impl Transport for SignOnly {
    fn send(&self, _: &Request, _: &[u8], _: Duration) -> Result<Response, TransportError> {
        Err(TransportError::new(
            TransportErrorKind::Protocol,
            "sign-only client",
        ))
    }
    type Flight = ();
    fn start(&self, _: &Request, _: Arc<Vec<u8>>, _: Duration) {}
    fn advance(&self, _: &mut [()], _: bool) -> Vec<usize> {
        Vec::new()
    }
    fn finish(&self, _: ()) -> Result<Response, TransportError> {
        self.send(
            &Request {
                method: "GET",
                path_and_query: String::new(),
                headers: Vec::new(),
            },
            &[],
            Duration::ZERO,
        )
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// Attempts per listing page (transport errors and 5xx are tried again).
const ATTEMPTS: u32 = 4;

/// Every tail under the registry's root: the driver path each belongs to (the path the
/// writer wrote, such as `…/_uploads/<id>/data`), in key order.
pub(super) async fn list_tails(driver: &Driver) -> Result<Vec<String>, FsckError> {
    // Tails are the KS3 driver's own keys; another driver has none.
    let Some(config) = driver.config().cloned() else {
        return Ok(Vec::new());
    };
    let keys = Keys::new(&config.root_directory);
    let any = FilePath::parse("/x").map_err(|e| FsckError::Listing(e.to_string()))?;
    let tail_of_any = keys.tail_key(&any);
    // `<root>/~tails/`: a tail key is this, then the driver path without its `/`.
    let tails_prefix = tail_of_any[..tail_of_any.len() - 1].to_string();
    let ours = FilePath::parse(layout::ROOT).map_err(|e| FsckError::Listing(e.to_string()))?;
    let prefix = keys.tail_dir_prefix(&ours);
    let base = config.endpoint.base_url();
    let timeout = Duration::from_secs(config.request_timeout_secs.max(1));
    let client = Client::new(config, SignOnly);
    let egress = EgressClient::of(driver);
    let mut paths = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = list_page(&client, &egress, &base, timeout, &prefix, marker.as_deref()).await?;
        let last = page.contents.last().map(|c| c.key.clone());
        for c in page.contents {
            if let Some(rel) = c.key.strip_prefix(&tails_prefix) {
                paths.push(format!("/{rel}"));
            }
        }
        if !page.is_truncated {
            return Ok(paths);
        }
        let next = page.next_marker.filter(|m| !m.is_empty()).or(last);
        match next {
            // A truncated page that does not move on would loop forever.
            Some(m) if marker.as_ref().is_none_or(|old| &m > old) => marker = Some(m),
            _ => {
                return Err(FsckError::Listing(
                    "listing the tails: a truncated page gives no marker that advances".into(),
                ))
            }
        }
    }
}

async fn list_page(
    client: &Client<SignOnly>,
    egress: &EgressClient,
    base: &str,
    timeout: Duration,
    prefix: &str,
    marker: Option<&str>,
) -> Result<ListBucketResult, FsckError> {
    let mut last_error = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        let mut call = Call::new("GET", "", "~tails")
            .query("prefix", prefix)
            .query("max-keys", "1000");
        if let Some(m) = marker {
            call = call.query("marker", m);
        }
        // Signed at each attempt: the date is part of the signature.
        let req = client
            .sign(&call)
            .map_err(|e| FsckError::Listing(format!("signing the tails listing: {e}")))?;
        let mut b = http::Request::builder()
            .method(req.method)
            .uri(format!("{base}{}", req.path_and_query));
        for (k, v) in &req.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        let body = Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed_unsync();
        let req = b
            .body(body)
            .map_err(|e| FsckError::Listing(format!("listing the tails: {e}")))?;
        let options = RequestOptions {
            connect_timeout: Some(timeout.min(Duration::from_secs(10))),
            first_byte_timeout: Some(timeout),
            between_bytes_timeout: Some(timeout),
        };
        let resp = match egress.send(req, options).await {
            Ok(r) => r,
            Err(e) => {
                last_error = format!("{e:?}");
                continue;
            }
        };
        let status = resp.status().as_u16();
        let body = match Limited::new(resp.into_body(), MAX_XML).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                last_error = format!("reading the answer: {e}");
                continue;
            }
        };
        if status >= 500 {
            last_error = format!("HTTP {status}");
            continue;
        }
        if status != 200 {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(FsckError::Listing(format!(
                "listing the tails: HTTP {status}: {text}"
            )));
        }
        return xml::from_xml::<ListBucketResult>(&body)
            .map_err(|e| FsckError::Listing(format!("listing the tails: unreadable answer: {e}")));
    }
    Err(FsckError::Listing(format!(
        "listing the tails: {last_error} (after {ATTEMPTS} attempts)"
    )))
}
