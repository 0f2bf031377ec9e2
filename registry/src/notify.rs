//! Webhook notifications (`notifications`): distribution's events, built once a request
//! has been answered, from its route, method, status and response headers (plus what its
//! handler noted that the response does not say: [`manifest`], [`blob_size`],
//! [`mounted`], [`untagged`]), and queued for each endpoint without waiting
//! ([`queue`]: bounded, in order, retried until delivered).
//!
//! Which requests make events (as distribution 2.8.2): a manifest or blob `GET`/`HEAD`
//! answered 200 (206 and 307 for blobs) is a `pull`; a manifest `PUT` answered 201, and a
//! blob upload's final `PUT` or monolithic `POST` answered 201, a `push`; a mount answered
//! 201 a `mount`; a `DELETE` answered 202 a `delete` (for a manifest by digest, then one
//! per tag that pointed at it; by tag, one naming the tag).
mod event;
mod queue;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};

use crate::auth::User;
use crate::config::Notifications;
use crate::http_io::{percent_decode, query_pairs, Body};
use crate::metrics::Metrics;
use crate::route::{self, Route};
use event::{Action, ActorRecord, Event, RequestRecord, SourceRecord, Target, BLOB_MEDIA_TYPE};

/// The connection a request came on (put in its extensions by the listener).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conn {
    pub peer: SocketAddr,
    pub local_port: Option<u16>,
}

/// What a handler knows that its response does not say.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    manifest: Option<Bytes>,
    size: Option<u64>,
    mounted: bool,
    untagged: Vec<String>,
}

tokio::task_local! {
    /// The current request's [`Facts`], while notifications are configured.
    static FACTS: Arc<Mutex<Facts>>;
}

fn note(f: impl FnOnce(&mut Facts)) {
    let _ = FACTS.try_with(|facts| f(&mut facts.lock().unwrap_or_else(|p| p.into_inner())));
}

/// The manifest a request pushed or pulled (its media type, size and references).
pub(crate) fn manifest(bytes: &[u8]) {
    note(|f| f.manifest = Some(Bytes::copy_from_slice(bytes)));
}

/// The size of the blob a request pushed or pulled.
pub(crate) fn blob_size(size: u64) {
    note(|f| f.size = Some(size));
}

/// The request mounted a blob of `size` bytes from another repository.
pub(crate) fn mounted(size: u64) {
    note(|f| {
        f.size = Some(size);
        f.mounted = true;
    });
}

/// A manifest delete removed this tag.
pub(crate) fn untagged(tag: &str) {
    note(|f| f.untagged.push(tag.to_string()));
}

/// The registry's notification endpoints and their delivery tasks (stopped when dropped).
pub struct Notifier {
    queues: Vec<Arc<queue::Queue>>,
    tasks: Vec<tokio::task::AbortHandle>,
    include_references: bool,
    instance_id: String,
    hostname: String,
    tls: bool,
}

impl Drop for Notifier {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// One request, as its events will tell it.
pub(crate) struct Notice {
    notifier: Arc<Notifier>,
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    conn: Option<Conn>,
    request_id: String,
}

impl Notifier {
    /// Starts a delivery task per endpoint (on the current tokio runtime); `None` when
    /// no endpoint is configured.
    pub(crate) fn start(c: &Notifications, metrics: Arc<Metrics>, tls: bool) -> Option<Notifier> {
        if c.endpoints.is_empty() {
            return None;
        }
        let client = queue::client();
        let mut queues = Vec::new();
        let mut tasks = Vec::new();
        for e in &c.endpoints {
            let q = Arc::new(queue::Queue::new(e.clone(), Arc::clone(&metrics)));
            tasks.push(tokio::spawn(queue::deliver(Arc::clone(&q), client.clone())).abort_handle());
            tracing::info!(
                target: "ks3_registry::notify",
                endpoint = %e.name,
                url = %e.url,
                "sending notifications"
            );
            queues.push(q);
        }
        Some(Notifier {
            queues,
            tasks,
            include_references: c.include_references,
            instance_id: crate::ids::uuid4(),
            hostname: hostname(),
            tls,
        })
    }

    /// What to keep of `req` for its events.
    pub(crate) fn notice<B>(self: &Arc<Self>, req: &Request<B>, request_id: &str) -> Notice {
        Notice {
            notifier: Arc::clone(self),
            method: req.method().clone(),
            path: req.uri().path().to_string(),
            query: req.uri().query().map(str::to_string),
            headers: req.headers().clone(),
            conn: req.extensions().get::<Conn>().copied(),
            request_id: request_id.to_string(),
        }
    }

    /// Queues `ev` for every endpoint whose filters let it through.
    fn send(&self, ev: &Event) {
        let body = Bytes::from(event::envelope(ev));
        for q in &self.queues {
            let e = &q.endpoint;
            let ignored = e.ignored_actions.iter().any(|a| a == ev.action.as_str())
                || (!ev.target.media_type.is_empty()
                    && e.ignored_media_types.contains(&ev.target.media_type));
            if !ignored {
                q.push(body.clone());
            }
        }
    }
}

/// Runs `answer` (a request's handling) with a place for its handler's facts, then queues
/// the events its response tells of. Without notifications, just `answer`.
pub(crate) async fn around(
    notice: Option<Notice>,
    answer: impl Future<Output = Response<Body>>,
) -> Response<Body> {
    let Some(notice) = notice else {
        return answer.await;
    };
    let facts = Arc::new(Mutex::new(Facts::default()));
    let resp = FACTS.scope(Arc::clone(&facts), answer).await;
    let facts = std::mem::take(&mut *facts.lock().unwrap_or_else(|p| p.into_inner()));
    for ev in notice.events(&resp, facts) {
        notice.notifier.send(&ev);
    }
    resp
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

impl Notice {
    /// The events of this request answered with `resp`.
    fn events(&self, resp: &Response<Body>, facts: Facts) -> Vec<Event> {
        let Ok(Some(route)) = route::parse(&percent_decode(&self.path)) else {
            return Vec::new();
        };
        let status = resp.status();
        let rh = resp.headers();
        let digest = header(rh, "docker-content-digest").unwrap_or_default();
        let m = &self.method;
        let read = *m == Method::GET || *m == Method::HEAD;
        let n = &self.notifier;
        let mut out = Vec::new();
        match route {
            Route::Manifest { name, reference } => {
                let by_tag = !reference.contains(':');
                let tag = if by_tag {
                    reference.clone()
                } else {
                    String::new()
                };
                if read && status == StatusCode::OK {
                    let mut t = self.target(&name, "manifests", digest);
                    t.media_type = header(rh, "content-type").unwrap_or_default().into();
                    t.size = content_length(rh).unwrap_or(0);
                    t.length = t.size;
                    t.tag = tag;
                    if n.include_references {
                        t.references = facts
                            .manifest
                            .as_deref()
                            .map(event::references)
                            .unwrap_or_default();
                    }
                    out.push(self.event(Action::Pull, t, resp));
                } else if *m == Method::PUT && status == StatusCode::CREATED {
                    let mut t = self.target(&name, "manifests", digest);
                    if let Some(b) = &facts.manifest {
                        let ct = header(&self.headers, "content-type");
                        t.media_type = crate::manifest::parse(b, ct)
                            .map(|p| p.media_type)
                            .unwrap_or_default();
                        t.size = b.len() as u64;
                        t.length = t.size;
                        if n.include_references {
                            t.references = event::references(b);
                        }
                    }
                    let tags: Vec<String> = if by_tag {
                        vec![tag]
                    } else {
                        header(rh, "oci-tag")
                            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
                            .unwrap_or_else(|| vec![String::new()])
                    };
                    for tag in tags {
                        let mut t = t.clone();
                        t.tag = tag;
                        out.push(self.event(Action::Push, t, resp));
                    }
                } else if *m == Method::DELETE && status == StatusCode::ACCEPTED {
                    if by_tag {
                        out.push(self.event(Action::Delete, bare(&name, "", &reference), resp));
                    } else {
                        out.push(self.event(Action::Delete, bare(&name, &reference, ""), resp));
                        for t in &facts.untagged {
                            out.push(self.event(Action::Delete, bare(&name, "", t), resp));
                        }
                    }
                }
            }
            Route::Blob { name, digest: d } => {
                let served = matches!(
                    status,
                    StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::TEMPORARY_REDIRECT
                );
                if read && served {
                    let size = facts
                        .size
                        .or_else(|| total_of_range(rh))
                        .or_else(|| {
                            (status == StatusCode::OK)
                                .then(|| content_length(rh))
                                .flatten()
                        })
                        .unwrap_or(0);
                    out.push(self.event(Action::Pull, self.blob_target(&name, &d, size), resp));
                } else if *m == Method::DELETE && status == StatusCode::ACCEPTED {
                    out.push(self.event(Action::Delete, bare(&name, &d, ""), resp));
                }
            }
            Route::UploadStart { name } if *m == Method::POST && status == StatusCode::CREATED => {
                let size = facts.size.unwrap_or(0);
                let mut t = self.blob_target(&name, digest, size);
                if facts.mounted {
                    let q = query_pairs(self.query.as_deref());
                    t.from_repository = q
                        .iter()
                        .find(|(k, _)| k == "from")
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    out.push(self.event(Action::Mount, t, resp));
                } else {
                    out.push(self.event(Action::Push, t, resp));
                }
            }
            Route::Upload { name, .. } if *m == Method::PUT && status == StatusCode::CREATED => {
                let size = facts.size.unwrap_or(0);
                out.push(self.event(Action::Push, self.blob_target(&name, digest, size), resp));
            }
            _ => {}
        }
        out
    }

    fn blob_target(&self, repo: &str, digest: &str, size: u64) -> Target {
        let mut t = self.target(repo, "blobs", digest);
        t.media_type = BLOB_MEDIA_TYPE.into();
        t.size = size;
        t.length = size;
        t
    }

    /// A target in `repo` with its URL (`…/v2/<repo>/<kind>/<digest>`).
    fn target(&self, repo: &str, kind: &str, digest: &str) -> Target {
        Target {
            digest: digest.to_string(),
            repository: repo.to_string(),
            url: format!("{}/v2/{repo}/{kind}/{digest}", self.base_url()),
            ..Default::default()
        }
    }

    /// `scheme://host` of the request as its client addressed it (`X-Forwarded-Proto` and
    /// `X-Forwarded-Host` from a proxy in front, as distribution).
    fn base_url(&self) -> String {
        let h = &self.headers;
        let first = |v: &str| v.split(',').next().unwrap_or("").trim().to_string();
        let scheme = header(h, "x-forwarded-proto")
            .map(first)
            .filter(|s| s == "http" || s == "https")
            .unwrap_or_else(|| if self.notifier.tls { "https" } else { "http" }.into());
        let host = header(h, "x-forwarded-host")
            .map(first)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| self.host());
        format!("{scheme}://{host}")
    }

    fn host(&self) -> String {
        header(&self.headers, "host")
            .unwrap_or_default()
            .to_string()
    }

    /// The client's address: the first `X-Forwarded-For`, else `X-Real-Ip`, else the
    /// peer (distribution's `RemoteAddr`).
    fn remote_addr(&self) -> String {
        let h = &self.headers;
        if let Some(f) = header(h, "x-forwarded-for") {
            let first = f.split(',').next().unwrap_or("").trim();
            if !first.is_empty() {
                return first.to_string();
            }
        }
        if let Some(r) = header(h, "x-real-ip").filter(|r| !r.is_empty()) {
            return r.to_string();
        }
        self.conn.map(|c| c.peer.to_string()).unwrap_or_default()
    }

    fn event(&self, action: Action, target: Target, resp: &Response<Body>) -> Event {
        let n = &self.notifier;
        let port = self.conn.and_then(|c| c.local_port);
        Event {
            id: crate::ids::uuid4(),
            timestamp: event::timestamp_now(),
            action,
            target,
            request: RequestRecord {
                id: self.request_id.clone(),
                addr: self.remote_addr(),
                host: self.host(),
                method: self.method.to_string(),
                useragent: header(&self.headers, "user-agent")
                    .unwrap_or_default()
                    .to_string(),
            },
            actor: ActorRecord {
                name: resp.extensions().get::<User>().map(|u| u.0.clone()),
            },
            source: SourceRecord {
                addr: match port {
                    Some(p) => format!("{}:{p}", n.hostname),
                    None => n.hostname.clone(),
                },
                instance_id: n.instance_id.clone(),
            },
        }
    }
}

/// A target naming only a digest or a tag in `repo` (deletes, as distribution's).
fn bare(repo: &str, digest: &str, tag: &str) -> Target {
    Target {
        digest: digest.to_string(),
        repository: repo.to_string(),
        tag: tag.to_string(),
        ..Default::default()
    }
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    header(h, "content-length")?.parse().ok()
}

/// The whole size of a `Content-Range: bytes a-b/size` answer.
fn total_of_range(h: &HeaderMap) -> Option<u64> {
    header(h, "content-range")?.rsplit_once('/')?.1.parse().ok()
}

/// This machine's name (distribution's `source.addr` is it and the port).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
