//! A blob that the cache lacks, fetched from the upstream once and served while it is
//! stored (the tee), with one fetch per blob and repository at a time in the process
//! (single-flight).
//!
//! The first request for a blob starts a *flight*: a task that `GET`s the blob upstream
//! (its local lookup alongside: bytes the bucket already holds, cached for another
//! repository or left by an expiry, are only linked), then reads the upstream's body
//! frame by frame, hashes it, hands each frame to every client that joined the flight
//! and to a writer task that writes it through the driver's writer into an upload
//! (`_uploads/<id>/data`, with `startedat`, so the purger clears what a crash leaves).
//! The last frame reaches the clients only after the digest verified; a wrong blob ends
//! every client's body with an error instead, and is neither moved nor linked. When the
//! writer committed, the upload is moved into `blobs/`, its expiry scheduled, and it is
//! linked into the repository.
//!
//! A request that finds a flight joins it and gets the same bytes: the frames sent so
//! far first (a flight keeps up to [`REPLAY_MAX`] of them for this), then the rest as
//! they come; one that comes later than that (or asks for a range) waits for the flight
//! to end and is served from the store. Clients are fed at the pace of the slowest one (each has a
//! two-frame channel); one that takes no frame for `limits.bodytimeout` is cut, and the
//! flight goes on storing when every client has gone.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use ks3_driver_host::{Driver, FileWriter};
use tokio::sync::{mpsc, watch};

use super::{expiry, Miss, Proxy, LOG};
use crate::app::{respond, App};
use crate::digest::{Digest, Hasher};
use crate::errors::{RegistryError, Result};
use crate::http_io::{Body, CHUNK};
use crate::layout;

type Sender = mpsc::Sender<std::result::Result<Bytes, std::io::Error>>;

/// The most a flight holds of what it sent, for clients that join after its first frame.
const REPLAY_MAX: usize = 8 << 20;

/// Frames buffered for the writer (each up to [`CHUNK`]) before the upstream waits.
const WRITER_QUEUE: usize = 8;

#[derive(Clone)]
enum Phase {
    /// The upstream's answer is awaited.
    Connecting,
    /// Its body is being read: clients may still join while `Flight::clients` is open.
    Streaming { size: u64 },
    /// Ended: the blob is stored and linked (its size), or why not.
    Done(std::result::Result<u64, RegistryError>),
}

pub struct Flight {
    phase: watch::Sender<Phase>,
    joining: Mutex<Joining>,
}

/// Who gets the flight's frames, and what a client joining now must be sent first.
struct Joining {
    /// Clients may still join: every frame sent so far is in `replay`.
    open: bool,
    replay: Vec<Bytes>,
    replay_len: usize,
    clients: Vec<Sender>,
}

impl Flight {
    /// A body fed by the flight from its first byte (the frames sent so far first), while
    /// those fit in [`REPLAY_MAX`].
    fn join(&self, size: u64) -> Option<Body> {
        let mut j = self.joining.lock().unwrap_or_else(|p| p.into_inner());
        if !j.open {
            return None;
        }
        let (tx, rx) = mpsc::channel(j.replay.len() + 2);
        for b in &j.replay {
            let _ = tx.try_send(Ok(b.clone()));
        }
        j.clients.push(tx);
        Some(Body::Channel {
            rx,
            len: Some(size),
        })
    }

    /// Records `b` as sent; the clients to send it to.
    fn sending(&self, b: &Bytes) -> Vec<Sender> {
        let mut j = self.joining.lock().unwrap_or_else(|p| p.into_inner());
        if j.open {
            if j.replay_len + b.len() > REPLAY_MAX {
                j.open = false;
                j.replay = Vec::new();
            } else {
                j.replay_len += b.len();
                j.replay.push(b.clone());
            }
        }
        j.clients.clone()
    }

    fn forget(&self, gone: &Sender) {
        let mut j = self.joining.lock().unwrap_or_else(|p| p.into_inner());
        j.clients.retain(|c| !c.same_channel(gone));
    }

    /// No more joining: the clients, for the last frame or an error.
    fn close(&self) -> Vec<Sender> {
        let mut j = self.joining.lock().unwrap_or_else(|p| p.into_inner());
        j.open = false;
        j.replay = Vec::new();
        std::mem::take(&mut j.clients)
    }

    /// `b` to every client; one that does not take it within `idle` (or went away) is
    /// dropped, which ends its response.
    async fn send(&self, b: Bytes, idle: Duration) {
        for c in self.sending(&b) {
            if !matches!(
                tokio::time::timeout(idle, c.send(Ok(b.clone()))).await,
                Ok(Ok(()))
            ) {
                self.forget(&c);
            }
        }
    }
}

fn headers(d: &Digest, size: u64) -> Vec<(&'static str, String)> {
    vec![
        ("docker-content-digest", d.to_string()),
        ("etag", format!("\"{d}\"")),
        ("content-length", size.to_string()),
        ("content-type", "application/octet-stream".into()),
    ]
}

fn unavailable(name: &str, d: &Digest, e: impl std::fmt::Display) -> RegistryError {
    tracing::warn!(target: LOG, "blob {d} of {name}: {e}");
    RegistryError::Unavailable(format!(
        "blob {d} is not cached and the upstream could not be reached"
    ))
}

pub async fn blob(
    p: &Arc<Proxy>,
    app: &App,
    method: &Method,
    req_headers: &HeaderMap,
    name: &str,
    d: &Digest,
) -> Result<Miss> {
    let unknown = || RegistryError::BlobUnknown(format!("blob {d} is not in {name}"));
    let what = format!("blobs/{d}");
    if method == Method::HEAD {
        // As 2.8.2: the upstream's answer, nothing fetched.
        let resp = match p.upstream.get(Method::HEAD, name, &what, &[]).await {
            Ok(Some(r)) => r,
            Ok(None) => return Err(unknown()),
            Err(e) => return Err(unavailable(name, d, e)),
        };
        let size = content_length(&resp)
            .ok_or_else(|| unavailable(name, d, "the upstream's HEAD has no Content-Length"))?;
        return Ok(Miss::Answer(respond(
            StatusCode::OK,
            &headers(d, size),
            Body::empty(),
        )));
    }
    let flight = p.flight(name, d, app.config.limits.body_timeout);
    let ranged = req_headers.contains_key(http::header::RANGE);
    let mut phase = flight.phase.subscribe();
    loop {
        let now = phase.borrow_and_update().clone();
        match now {
            Phase::Connecting => {}
            Phase::Streaming { size } if !ranged => {
                if let Some(body) = flight.join(size) {
                    return Ok(Miss::Answer(respond(
                        StatusCode::OK,
                        &headers(d, size),
                        body,
                    )));
                }
            }
            Phase::Streaming { .. } => {}
            Phase::Done(Ok(size)) => return Ok(Miss::Stored(size)),
            Phase::Done(Err(e)) => return Err(e),
        }
        if phase.changed().await.is_err() {
            return Err(unavailable(name, d, "the fetch ended without an outcome"));
        }
    }
}

fn content_length(resp: &http::Response<Incoming>) -> Option<u64> {
    resp.headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

impl Proxy {
    /// The flight of `(name, d)`, started when there is none.
    fn flight(self: &Arc<Self>, name: &str, d: &Digest, idle: Duration) -> Arc<Flight> {
        let key = (name.to_string(), d.clone());
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = flights.get(&key) {
            return Arc::clone(f);
        }
        let flight = Arc::new(Flight {
            phase: watch::Sender::new(Phase::Connecting),
            joining: Mutex::new(Joining {
                open: true,
                replay: Vec::new(),
                replay_len: 0,
                clients: Vec::new(),
            }),
        });
        flights.insert(key.clone(), Arc::clone(&flight));
        let (p, f) = (Arc::clone(self), Arc::clone(&flight));
        tokio::spawn(async move {
            let outcome = p.fetch(&f, &key.0, &key.1, idle).await;
            if let Err(e) = &outcome {
                tracing::warn!(target: LOG, "caching blob {} of {}: {e}", key.1, key.0);
            }
            f.phase.send_replace(Phase::Done(outcome));
            p.flights
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        });
        flight
    }

    async fn fetch(&self, flight: &Flight, name: &str, d: &Digest, idle: Duration) -> Result<u64> {
        let what = format!("blobs/{d}");
        let (resp, stored) = tokio::join!(
            self.upstream.get(Method::GET, name, &what, &[]),
            self.store.blob_size(d)
        );
        let resp = match resp {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Err(RegistryError::BlobUnknown(format!(
                    "blob {d} is not in {name}"
                )))
            }
            Err(e) => return Err(unavailable(name, d, e)),
        };
        let size = content_length(&resp);
        if let Ok(Some(have)) = stored {
            // The upstream confirmed the repository has it; the bucket has its bytes.
            if size.is_none_or(|s| s == have) {
                drop(resp);
                self.link(name, d).await?;
                return Ok(have);
            }
        }
        let size = size
            .ok_or_else(|| unavailable(name, d, "the upstream's answer has no Content-Length"))?;
        flight.phase.send_replace(Phase::Streaming { size });

        let id = crate::ids::uuid4();
        let upload = layout::upload_data(name, &id);
        let (to_writer, queue) = mpsc::channel(WRITER_QUEUE);
        let writer = tokio::spawn(write_upload(
            self.store.driver().clone(),
            upload.clone(),
            layout::upload_started_at(name, &id),
            queue,
        ));
        let streamed = tee(resp.into_body(), flight, d, size, idle, &to_writer).await;
        drop(to_writer);
        let written = writer
            .await
            .map_err(|e| RegistryError::Unavailable(format!("the writer task: {e}")))?;
        let outcome = match (streamed, written) {
            (Ok(()), Ok(mut w)) => match w.commit().await {
                Ok(()) => self.place(name, d, &upload).await,
                Err(e) => Err(RegistryError::storage("committing a cached blob", e)),
            },
            (Err(e), Ok(mut w)) => {
                let _ = w.cancel().await;
                Err(e)
            }
            (Ok(()), Err(e)) => Err(e),
            (Err(e), Err(_)) => Err(e),
        };
        let _ = self
            .store
            .delete_if_present(&layout::upload_dir(name, &id))
            .await;
        outcome.map(|()| size)
    }

    /// The verified upload moved into `blobs/` and linked.
    async fn place(&self, name: &str, d: &Digest, upload: &str) -> Result<()> {
        self.store
            .driver()
            .mv_to_writerless(upload, &layout::blob_data(d))
            .await
            .map_err(|e| RegistryError::storage("moving a cached blob into place", e))?;
        self.link(name, d).await
    }

    /// The expiry is scheduled before the link is written, so a crash between the two
    /// leaves an entry for a link that never came (harmless), never a link that would
    /// never expire.
    async fn link(&self, name: &str, d: &Digest) -> Result<()> {
        expiry::schedule(self, expiry::Kind::Blob, name, d).await;
        self.store.write_link(&layout::layer_link(name, d), d).await
    }
}

/// Reads the upstream's body: each frame hashed, sent to the writer (joined into
/// [`CHUNK`]s) and to the flight's clients, the last one only once the digest verified.
async fn tee(
    mut body: Incoming,
    flight: &Flight,
    d: &Digest,
    size: u64,
    idle: Duration,
    to_writer: &mpsc::Sender<Bytes>,
) -> Result<()> {
    let mut hasher = Hasher::new(d.algorithm());
    let mut held: Option<Bytes> = None;
    let mut chunk = BytesMut::new();
    let mut total = 0u64;
    let mut storing = true;
    let failed = |m: String| RegistryError::Unavailable(format!("fetching blob {d}: {m}"));
    let result = loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => break Err(failed(format!("the upstream sent nothing for {idle:?}"))),
            Ok(None) => break Ok(()),
            Ok(Some(Err(e))) => break Err(failed(format!("the upstream's body broke: {e}"))),
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > size {
            break Err(failed(format!(
                "the upstream sent more than its {size} bytes"
            )));
        }
        hasher.update(&data);
        if storing {
            chunk.extend_from_slice(&data);
            if chunk.len() >= CHUNK && to_writer.send(chunk.split().freeze()).await.is_err() {
                storing = false; // the writer failed: it reports why
            }
        }
        if let Some(previous) = held.replace(data) {
            flight.send(previous, idle).await;
        }
    };
    let verdict = result.and_then(|()| {
        if total != size {
            return Err(failed(format!("the upstream sent {total} of {size} bytes")));
        }
        let got = hasher.finish();
        if &got != d {
            return Err(RegistryError::DigestInvalid(format!(
                "the upstream's blob {d} hashes to {got}: not cached"
            )));
        }
        Ok(())
    });
    match &verdict {
        Ok(()) => {
            if let Some(last) = held {
                flight.send(last, idle).await;
            }
            flight.close();
            if storing && !chunk.is_empty() {
                let _ = to_writer.send(chunk.freeze()).await;
            }
        }
        Err(e) => {
            for c in &flight.close() {
                let _ = c.try_send(Err(std::io::Error::other(e.to_string())));
            }
        }
    }
    verdict
}

/// The writer side of the tee: an upload written through the driver's writer; the
/// writer returned uncommitted (the tee decides whether it is committed or cancelled).
async fn write_upload(
    driver: Driver,
    path: String,
    started_at: String,
    mut queue: mpsc::Receiver<Bytes>,
) -> Result<FileWriter> {
    let storage = |what: &'static str| move |e| RegistryError::storage(what, e);
    let now = crate::ids::rfc3339_now();
    let (writer, started) = tokio::join!(
        driver.writer(&path, false),
        driver.put_content_writerless(&started_at, now.as_bytes())
    );
    started.map_err(storage("writing a cached blob's startedat"))?;
    let mut writer = writer.map_err(storage("opening a cached blob's writer"))?;
    while let Some(b) = queue.recv().await {
        if let Err(e) = writer.write(&b).await {
            let _ = writer.cancel().await;
            return Err(RegistryError::storage("writing a cached blob", e));
        }
    }
    Ok(writer)
}
