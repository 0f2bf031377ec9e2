//! Blob uploads, `/v2/<name>/blobs/uploads/…`, in distribution's layout: the bytes grow in
//! `_uploads/<id>/data` through the driver's writer (closed after every request and
//! resumed with `append` by the next, on any instance), `startedat` marks the upload as
//! known, and `hashstates/sha256/<offset>` keeps the SHA-256 state after each request so
//! the final `PUT` verifies the digest without reading the data back.

use http::{HeaderMap, Response, StatusCode};
use ks3_driver_host::FileWriter;

use crate::app::{respond, App, ClientAddr, Stats};
use crate::blobs::parse_digest;
use crate::digest::{Algorithm, Digest, Hasher};
use crate::errors::{RegistryError, Result};
use crate::fence::{Entered, Left, Protect};
use crate::http_io::{query_get, Body, BodyReader, RequestBody};
use crate::layout;
use crate::resumable_sha256::ResumableSha256;
use crate::upload_guard;

fn storage(what: &str) -> impl Fn(ks3_driver_host::Error) -> RegistryError + '_ {
    move |e| RegistryError::storage(what, e)
}

/// `POST /v2/<name>/blobs/uploads/`: a mount (`?mount=&from=`), a whole blob in one
/// request (`?digest=`), or a new upload session.
pub async fn start(
    app: &App,
    name: &str,
    query: &[(String, String)],
    client: Option<ClientAddr>,
    body: RequestBody,
) -> Result<Response<Body>> {
    if let (Some(mount), Some(from)) = (query_get(query, "mount"), query_get(query, "from")) {
        if let Some(r) = try_mount(app, name, mount, from).await? {
            return Ok(r);
        }
        // As distribution and the spec: a mount that cannot happen starts an upload.
    }
    let digest = query_get(query, "digest").map(parse_digest).transpose()?;
    // A request that will carry blob data takes its slot before writing anything, so a
    // refusal (429) leaves nothing behind.
    let slot = digest
        .is_some()
        .then(|| app.upload_slot(client))
        .transpose()?;
    if let (Some(d), Some(len)) = (&digest, http_body::Body::size_hint(&body).exact()) {
        // A whole small blob whose length is announced: verified in memory and stored in
        // one pass, with no upload session at all (see `monolithic_in_memory`).
        if let Some(room) = app.read_back_room(len) {
            let _slot = slot;
            return monolithic_in_memory(app, name, d, len, body, room, None).await;
        }
    }
    let id = crate::ids::uuid4();
    let started = async {
        app.store
            .driver()
            .put_content_writerless(
                &layout::upload_started_at(name, &id),
                crate::ids::rfc3339_now().as_bytes(),
            )
            .await
            .map_err(storage("starting an upload"))
    };
    match digest {
        Some(d) => {
            started.await?;
            let _slot = slot;
            monolithic(app, name, &id, &d, body).await
        }
        None => {
            // Only the session's date: its data is made by the first request that writes
            // (see `session`), and the hash state of no bytes is known without a file
            // (distribution resumes at offset 0 without one too).
            started.await?;
            Ok(progress_response(StatusCode::ACCEPTED, name, &id, 0))
        }
    }
}

async fn try_mount(
    app: &App,
    name: &str,
    mount: &str,
    from: &str,
) -> Result<Option<Response<Body>>> {
    let (Some(d), Ok(())) = (Digest::parse(mount), crate::route::check_name(from)) else {
        return Ok(None);
    };
    // The source blob may be a garbage collection's candidate: through the fence, as
    // for a manifest naming it.
    let protect = Protect::blob(&d);
    let (entered, found) = tokio::join!(
        app.fence.enter(&app.store, &protect),
        app.store.repo_blob_size(from, &d)
    );
    let entered = entered?;
    let found = if entered.recheck() {
        app.store.repo_blob_size(from, &d).await?
    } else {
        found?
    };
    if found.is_none() {
        return Ok(None);
    }
    let link = layout::layer_link(name, &d);
    app.store.write_link(&link, &d).await?;
    if app.fence.leave(&app.store, entered, &protect).await? == Left::Recheck
        && app.store.blob_size(&d).await?.is_none()
    {
        // Swept while it was linked: no mount; the client uploads the blob instead.
        app.store.delete_if_present(&link).await?;
        return Ok(None);
    }
    Stats::bump(&app.stats.blobs_mounted);
    crate::notify::mounted(found.unwrap_or_default());
    Ok(Some(created(name, &d)))
}

/// `POST ?digest=` of a small blob of announced length `len` (within the read-back
/// budget, whose `room` it holds): the body is read into memory and hashed; bytes that
/// are not the digest's are refused before anything is written. Then the blob's bytes
/// and its repository link are written at once — one round trip to KS3 where a session
/// takes nine —, through the sweep fence (its listing first): the blob may be a
/// collection's candidate, and a sweep that may have missed these writes makes the
/// request store the bytes again. The bytes are written without looking whether the blob
/// is stored ([`Placing::Write`]). Nothing is left behind to purge: the directory of
/// `session`, when the blob came in a session's `PUT`, is dropped beside the writes
/// (which is why a `PUT` whose writes fail cannot be retried on its session).
async fn monolithic_in_memory(
    app: &App,
    name: &str,
    d: &Digest,
    len: u64,
    body: RequestBody,
    _room: tokio::sync::OwnedSemaphorePermit,
    session: Option<&str>,
) -> Result<Response<Body>> {
    let bytes = body_reader(app, body).read_all(len).await?;
    if bytes.len() as u64 != len {
        return Err(RegistryError::SizeInvalid(format!(
            "the body has {} bytes, not the {len} its Content-Length announced",
            bytes.len()
        )));
    }
    crate::notify::blob_size(len);
    let actual = Digest::of(d.algorithm(), &bytes);
    if &actual != d {
        return Err(RegistryError::DigestInvalid(format!(
            "the upload's digest is {actual}, not {d}"
        )));
    }
    let put_blob = || async {
        app.store
            .driver()
            .put_content_writerless(&layout::blob_data(d), &bytes)
            .await
            .map_err(storage("storing a blob"))
    };
    let looked = enter_and_look(app, d, Placing::Write).await?;
    // The bytes are at hand: the session's directory (if any) goes at the same time.
    let linked = store_and_link(app, name, d, looked, put_blob);
    with_session_dropped(app, name, session, linked).await?;
    Stats::bump(&app.stats.blobs_uploaded);
    Ok(created(name, d))
}

/// `POST ?digest=`: the body is the whole blob. The upload's id is new and told to
/// nobody until this answer, so no other request can write to its data: the digest of the
/// bytes this request wrote is the digest of what it moves.
async fn monolithic(
    app: &App,
    name: &str,
    id: &str,
    d: &Digest,
    body: RequestBody,
) -> Result<Response<Body>> {
    let data = layout::upload_data(name, id);
    let mut w = app
        .store
        .driver()
        .writer(&data, false)
        .await
        .map_err(storage("writing an upload"))?;
    let mut hasher = Hasher::new(d.algorithm());
    let mut reader = body_reader(app, body);
    let copied = async {
        while let Some(chunk) = reader.next_chunk().await? {
            w.write(&chunk)
                .await
                .map_err(storage("writing an upload"))?;
            hasher.update(&chunk);
        }
        Ok::<(), RegistryError>(())
    }
    .await;
    if let Err(e) = copied {
        let _ = w.cancel().await;
        let _ = app
            .store
            .delete_if_present(&layout::upload_dir(name, id))
            .await;
        return Err(e);
    }
    crate::notify::blob_size(w.size());
    // Whether the blob is stored already is looked for (through the fence) while the
    // upload commits.
    let (committed, looked) = tokio::join!(w.commit(), enter_and_look(app, d, Placing::LookFirst));
    committed.map_err(storage("committing an upload"))?;
    let actual = hasher.finish();
    if &actual != d {
        return Err(digest_mismatch(app, name, id, d, &actual).await);
    }
    finish(app, name, id, d, &data, looked?).await
}

/// A blob request's body under the configured limits.
fn body_reader(app: &App, body: RequestBody) -> BodyReader {
    let l = &app.config.limits;
    BodyReader::new(body, l.body_timeout, l.max_body_size).with_min_rate(Some(l.min_body_rate))
}

/// The upload's id from the URL: distribution's UUID form, or anything path-safe of
/// similar length (another registry may have started it).
fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RegistryError::BlobUploadUnknown(format!(
            "upload `{}` is unknown",
            crate::route::printable(id)
        )))
    }
}

/// An upload that exists (its `startedat`, as distribution): its data so far, or none yet
/// (no request has written to it).
enum Session {
    // Boxed: the writer is large and an empty session carries nothing.
    Data(Box<FileWriter>),
    Empty,
}

/// Checks that the upload exists and resumes its writer when it has data.
async fn session(app: &App, name: &str, id: &str) -> Result<Session> {
    check_id(id)?;
    let unknown = || RegistryError::BlobUploadUnknown(format!("upload {id} is unknown"));
    // The session's date and its writer at once: resuming writes nothing, so a writer
    // resumed for an upload that turns out not to exist is simply dropped.
    let (started_at, data) = (
        layout::upload_started_at(name, id),
        layout::upload_data(name, id),
    );
    let (started, writer) = tokio::join!(
        app.store.get_small(&started_at),
        app.store.driver().writer(&data, true)
    );
    if started?.is_none() {
        return Err(unknown());
    }
    match writer {
        Ok(w) => Ok(Session::Data(Box::new(w))),
        Err(e) if e.is_not_found() => Ok(Session::Empty),
        Err(e) => Err(RegistryError::storage("resuming an upload", e)),
    }
}

/// The upload's writer: resumed, or new for an upload with no data yet. One driver call
/// (`writer_append_or_create`) where a resume that finds nothing and a new writer would
/// be two, the second clearing again what the first found empty.
async fn resume(app: &App, name: &str, id: &str) -> Result<FileWriter> {
    check_id(id)?;
    let (started_at, data) = (
        layout::upload_started_at(name, id),
        layout::upload_data(name, id),
    );
    let (started, writer) = tokio::join!(
        app.store.get_small(&started_at),
        app.store.driver().writer_append_or_create(&data)
    );
    if started?.is_none() {
        // Nothing was written: the writer is dropped unclosed.
        return Err(RegistryError::BlobUploadUnknown(format!(
            "upload {id} is unknown"
        )));
    }
    writer.map_err(storage("resuming an upload"))
}

/// The SHA-256 state after exactly `size` bytes, if one was saved and is valid.
async fn load_state(app: &App, name: &str, id: &str, size: u64) -> Option<ResumableSha256> {
    if size == 0 {
        return Some(ResumableSha256::new());
    }
    let raw = app
        .store
        .get_small(&layout::upload_hash_state(name, id, size))
        .await
        .ok()
        .flatten()?;
    ResumableSha256::unmarshal(&raw).filter(|s| s.len() == size)
}

/// Saves the state at its offset. A failure only costs a re-read at `PUT`, so it is
/// reported, not returned.
async fn save_state(app: &App, name: &str, id: &str, state: &ResumableSha256) {
    let path = layout::upload_hash_state(name, id, state.len());
    if let Err(e) = app
        .store
        .driver()
        .put_content_writerless(&path, &state.marshal())
        .await
    {
        tracing::warn!(
            target: "ks3_registry::uploads",
            "saving the hash state of upload {id}: {e}"
        );
    }
}

/// Streams the request body into the writer, feeding the hash state when there is one.
/// Returns the first error after the writer has what was received.
async fn append_body(
    app: &App,
    w: &mut FileWriter,
    state: &mut Option<ResumableSha256>,
    body: RequestBody,
) -> Result<u64> {
    let mut reader = body_reader(app, body);
    let mut written: u64 = 0;
    while let Some(chunk) = reader.next_chunk().await? {
        if let Err(e) = w.write(&chunk).await {
            // The writer may have taken part of the chunk: no state matches any more.
            *state = None;
            return Err(RegistryError::storage("writing an upload", e));
        }
        if let Some(s) = state.as_mut() {
            s.update(&chunk);
        }
        written = written.saturating_add(chunk.len() as u64);
    }
    Ok(written)
}

/// [`append_body`] while this request's writer marker is stored (see `upload_guard`):
/// both must be done before the writer is closed or committed. A marker that could not
/// be stored is the error (the writer must then not be closed).
async fn append_marked(
    app: &App,
    name: &str,
    id: &str,
    w: &mut FileWriter,
    state: &mut Option<ResumableSha256>,
    body: RequestBody,
) -> Result<(String, Result<u64>)> {
    let marker = upload_guard::new_marker(name, id, w.size());
    let store_marker = async {
        app.store
            .driver()
            .put_content_writerless(&marker, b"")
            .await
            .map_err(storage("marking an upload's writer"))
    };
    let (marked, appended) = tokio::join!(store_marker, append_body(app, w, state, body));
    marked?;
    Ok((marker, appended))
}

/// `PATCH`: appends the body; with `Content-Range: <start>-<end>`, only if `start` is
/// where the upload ends (else 416).
pub async fn patch(
    app: &App,
    name: &str,
    id: &str,
    headers: &HeaderMap,
    client: Option<ClientAddr>,
    body: RequestBody,
) -> Result<Response<Body>> {
    let range = match header(headers, "content-range") {
        Some(v) => Some(parse_content_range(v).ok_or_else(|| {
            RegistryError::BlobUploadInvalid(format!(
                "Content-Range `{}` is not <start>-<end>",
                crate::route::printable(v)
            ))
        })?),
        None => None,
    };
    let _slot = app.upload_slot(client)?;
    check_id(id)?;
    let _one_at_a_time = app.upload_locks.lock(name, id).await;
    let mut w = resume(app, name, id).await?;
    let size = w.size();
    if let Some((start, declared)) = range {
        if start != size {
            return Ok(range_error(name, id, size, start));
        }
        if let Some(len) = header(headers, "content-length").and_then(|v| v.parse::<u64>().ok()) {
            if len != declared {
                return Err(RegistryError::SizeInvalid(format!(
                    "Content-Range covers {declared} bytes, Content-Length says {len}"
                )));
            }
        }
    }
    let mut state = load_state(app, name, id, size).await;
    let (_marker, appended) = append_marked(app, name, id, &mut w, &mut state, body).await?;
    // Whatever arrived is kept, so the client can ask where the upload stands and go on.
    w.close().await.map_err(storage("closing an upload"))?;
    if let Some(s) = &state {
        if s.len() == w.size() {
            save_state(app, name, id, s).await;
        }
    }
    let written = appended?;
    if let Some((_, declared)) = range {
        if written != declared {
            return Err(RegistryError::SizeInvalid(format!(
                "Content-Range covers {declared} bytes, the body had {written}"
            )));
        }
    }
    Ok(progress_response(StatusCode::ACCEPTED, name, id, w.size()))
}

/// `PUT ?digest=`: appends the body (possibly empty), commits, proves that the bytes it
/// links hash to the digest (see `upload_guard`) and moves them to their content address.
pub async fn put(
    app: &App,
    name: &str,
    id: &str,
    headers: &HeaderMap,
    query: &[(String, String)],
    client: Option<ClientAddr>,
    body: RequestBody,
) -> Result<Response<Body>> {
    let d = match query_get(query, "digest") {
        Some(s) => parse_digest(s)?,
        None => {
            return Err(RegistryError::DigestInvalid(
                "the digest parameter is required".into(),
            ))
        }
    };
    let _slot = app.upload_slot(client)?;
    check_id(id)?;
    let _one_at_a_time = app.upload_locks.lock(name, id).await;
    let mut w = match session(app, name, id).await? {
        Session::Data(w) => *w,
        Session::Empty => {
            // The whole blob in this request, of announced length within the read-back
            // budget: verified in memory and stored in one pass, as a monolithic POST.
            let len = http_body::Body::size_hint(&body).exact();
            let starts_at_zero = header(headers, "content-range")
                .and_then(parse_content_range)
                .is_none_or(|(first, _)| first == 0);
            if let (Some(len), true) = (len, starts_at_zero) {
                if let Some(room) = app.read_back_room(len) {
                    return monolithic_in_memory(app, name, &d, len, body, room, Some(id)).await;
                }
            }
            resume(app, name, id).await?
        }
    };
    let start = w.size();
    // A closing chunk that does not continue the upload: 416, and the session stays as
    // it was (distribution-spec main; distribution 2.8.2 ignores the header).
    if let Some((first, _)) = header(headers, "content-range").and_then(parse_content_range) {
        if first != start {
            return Ok(range_error(name, id, start, first));
        }
    }
    // Loaded before the markers are listed: the request that saved it stored its marker
    // before, so the listing shows it. An upload that will end within the read-back size
    // is hashed from the bytes read back, so its state is not even fetched.
    let ends_small = http_body::Body::size_hint(&body)
        .exact()
        .and_then(|len| start.checked_add(len))
        .is_some_and(|end| end <= upload_guard::READ_BACK_MAX);
    let mut state = if ends_small {
        None
    } else {
        load_state(app, name, id, start).await
    };
    let (marker, appended) = append_marked(app, name, id, &mut w, &mut state, body).await?;
    if let Err(e) = appended {
        // Keep what arrived, as a PATCH would, so the client can retry the PUT.
        if w.close().await.is_ok() {
            if let Some(s) = state.filter(|s| s.len() == w.size()) {
                save_state(app, name, id, &s).await;
            }
        }
        return Err(e);
    }
    let size = w.size();
    crate::notify::blob_size(size);
    w.commit().await.map_err(storage("committing an upload"))?;
    let data = layout::upload_data(name, id);
    if let Some(_room) = app.read_back_room(size) {
        // Small: the bytes read back are hashed and become the blob themselves.
        return finish_from_memory(app, name, id, &d, &data).await;
    }
    // Large: from here on only this request can change the bytes it checks. Whether the
    // blob is stored already does not depend on them: it is looked for (through the
    // fence) while they move aside.
    let private = upload_guard::private_copy(name, id);
    let (moved, looked) = tokio::join!(
        app.store.driver().mv_to_writerless(&data, &private),
        enter_and_look(app, &d, Placing::LookFirst)
    );
    moved.map_err(storage("moving an upload aside"))?;
    let linear = match app
        .store
        .list_names(&upload_guard::writers_dir(name, id))
        .await
    {
        Ok(Some(listed)) => upload_guard::linear_history(&listed, &marker, start),
        _ => false,
    };
    let trusted = state.filter(|s| linear && s.len() == size && d.algorithm() == Algorithm::Sha256);
    let actual = match trusted {
        Some(s) => {
            Stats::bump(&app.stats.digests_from_saved_state);
            Digest::from_bytes(Algorithm::Sha256, &s.finalize())
        }
        None => {
            Stats::bump(&app.stats.digests_from_reread);
            reread_digest(app, &private, d.algorithm()).await?
        }
    };
    if actual != d {
        return Err(digest_mismatch(app, name, id, &d, &actual).await);
    }
    finish(app, name, id, &d, &private, looked?).await
}

/// A small committed upload: read back (refusing more than the budget it was given, in
/// case another instance committed something larger meanwhile), hashed, and written to
/// the blob path from the same bytes; the upload's directory is dropped beside those
/// writes (so a `PUT` whose writes fail cannot be retried on its session: the client
/// starts a new one, as it must after any 404 `BLOB_UPLOAD_UNKNOWN`).
async fn finish_from_memory(
    app: &App,
    name: &str,
    id: &str,
    want: &Digest,
    data: &str,
) -> Result<Response<Body>> {
    // The fence's records are read while the bytes are read back.
    let (bytes, looked) = tokio::join!(
        read_bounded(app, data, upload_guard::READ_BACK_MAX),
        enter_and_look(app, want, Placing::Write)
    );
    let bytes = bytes?;
    Stats::bump(&app.stats.digests_from_small_read_back);
    let actual = Digest::of(want.algorithm(), &bytes);
    if &actual != want {
        return Err(digest_mismatch(app, name, id, want, &actual).await);
    }
    let store = || async {
        app.store
            .driver()
            .put_content_writerless(&layout::blob_data(want), &bytes)
            .await
            .map_err(storage("storing a blob"))
    };
    // The bytes are at hand: nothing in the upload's directory is needed any more.
    let linked = store_and_link(app, name, want, looked?, store);
    with_session_dropped(app, name, Some(id), linked).await?;
    Stats::bump(&app.stats.blobs_uploaded);
    Ok(created(name, want))
}

/// Reads the object at `path` from its start, handing each chunk to `each`.
async fn read_upload(
    app: &App,
    path: &str,
    mut each: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut r = app
        .store
        .driver()
        .reader(path, 0)
        .await
        .map_err(storage("reading an upload back"))?;
    loop {
        let chunk = r
            .read(crate::http_io::CHUNK)
            .await
            .map_err(storage("reading an upload back"))?;
        if chunk.is_empty() {
            return Ok(());
        }
        each(&chunk)?;
    }
}

/// The object at `path`, refused past `max` bytes.
async fn read_bounded(app: &App, path: &str, max: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    read_upload(app, path, |chunk| {
        out.extend_from_slice(chunk);
        if out.len() as u64 > max {
            return Err(RegistryError::DigestInvalid(
                "the upload changed while it was being committed".into(),
            ));
        }
        Ok(())
    })
    .await?;
    Ok(out)
}

/// The digest of committed upload data, read back in chunks.
async fn reread_digest(app: &App, path: &str, alg: Algorithm) -> Result<Digest> {
    let mut h = Hasher::new(alg);
    read_upload(app, path, |chunk| {
        h.update(chunk);
        Ok(())
    })
    .await?;
    Ok(h.finish())
}

/// The upload's bytes are not the digest's: the upload is dropped, the client told.
async fn digest_mismatch(
    app: &App,
    name: &str,
    id: &str,
    want: &Digest,
    actual: &Digest,
) -> RegistryError {
    let _ = app
        .store
        .delete_if_present(&layout::upload_dir(name, id))
        .await;
    RegistryError::DigestInvalid(format!("the upload's digest is {actual}, not {want}"))
}

/// After the bytes at `verified` were proven to hash to `want` (and only this request can
/// change them), with the fence entered and the blob looked for (`looked`): move them into
/// `blobs/` unless it is stored, link the blob into the repository, then drop the upload
/// directory (which holds `verified` until it has moved).
async fn finish(
    app: &App,
    name: &str,
    id: &str,
    want: &Digest,
    verified: &str,
    looked: Looked,
) -> Result<Response<Body>> {
    let store = || async {
        app.store
            .driver()
            .mv_to_writerless(verified, &layout::blob_data(want))
            .await
            .map_err(storage("moving an upload into place"))
    };
    store_and_link(app, name, want, looked, store).await?;
    clean_up_session(app, name, id).await?;
    Stats::bump(&app.stats.blobs_uploaded);
    Ok(created(name, want))
}

/// `work`, and at the same time the directory of upload session `id` (if any) dropped:
/// for work that no longer needs anything in it. Both must succeed.
async fn with_session_dropped(
    app: &App,
    name: &str,
    id: Option<&str>,
    work: impl std::future::Future<Output = Result<()>>,
) -> Result<()> {
    match id {
        None => work.await,
        Some(id) => {
            let (done, dropped) = tokio::join!(work, clean_up_session(app, name, id));
            done?;
            dropped
        }
    }
}

/// How a blob's bytes are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placing {
    /// The bytes are at hand (at most the read-back size): written whether or not the
    /// blob is stored already. Content-addressed, so a rewrite stores the same bytes, and
    /// one PUT costs less than looking first (a stat of an absent file is a HEAD, then a
    /// listing, one after the other).
    Write,
    /// The bytes are an object to move: looked for first, so a stored blob is not
    /// copied again.
    LookFirst,
}

/// A request inside the sweep fence, with what it found of the blob it links.
struct Looked {
    entered: Entered,
    placing: Placing,
    /// The blob's size, if it is stored (always `None` with [`Placing::Write`]).
    stored: Option<u64>,
}

/// Enters the fence for blob `want` and, with [`Placing::LookFirst`], looks whether it is
/// stored, both at once (again after the fence when a sweep that named it ended
/// meanwhile).
async fn enter_and_look(app: &App, want: &Digest, placing: Placing) -> Result<Looked> {
    let look = || async {
        match placing {
            Placing::LookFirst => app.store.blob_size(want).await,
            Placing::Write => Ok(None),
        }
    };
    let protect = Protect::blob(want);
    let (entered, stored) = tokio::join!(app.fence.enter(&app.store, &protect), look());
    let entered = entered?;
    let stored = if entered.recheck() {
        look().await?
    } else {
        stored?
    };
    Ok(Looked {
        entered,
        placing,
        stored,
    })
}

/// Links blob `want` into repository `name` from inside the fence (`looked`), storing its
/// bytes with `store` unless they were found stored (bytes and link at once: a link
/// beside a failed write names nothing the repository serves), and storing them again
/// when a sweep that may have missed the link took them.
async fn store_and_link<F, Fut>(
    app: &App,
    name: &str,
    want: &Digest,
    looked: Looked,
    store: F,
) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let Looked {
        entered,
        placing,
        stored,
    } = looked;
    let link_path = layout::layer_link(name, want);
    let link = app.store.write_link(&link_path, want);
    if stored.is_some() {
        link.await?;
    } else {
        let (placed, linked) = tokio::join!(store(), link);
        placed?;
        linked?;
    }
    let protect = Protect::blob(want);
    if app.fence.leave(&app.store, entered, &protect).await? == Left::Recheck {
        let gone = match placing {
            Placing::LookFirst => app.store.blob_size(want).await?.is_none(),
            Placing::Write => true,
        };
        if gone {
            store().await?;
        }
    }
    Ok(())
}

/// Drops a finished upload's directory.
async fn clean_up_session(app: &App, name: &str, id: &str) -> Result<()> {
    app.store
        .delete_if_present(&layout::upload_dir(name, id))
        .await
}

/// `GET`: where the upload stands.
pub async fn status(app: &App, name: &str, id: &str) -> Result<Response<Body>> {
    // Opening the writer is how the size of an uncommitted upload is known; dropping it
    // without close leaves the upload as it was.
    let size = match session(app, name, id).await? {
        Session::Data(w) => w.size(),
        Session::Empty => 0,
    };
    Ok(progress_response(StatusCode::NO_CONTENT, name, id, size))
}

/// `DELETE`: cancels the upload and removes its directory.
pub async fn cancel(app: &App, name: &str, id: &str) -> Result<Response<Body>> {
    check_id(id)?;
    let _one_at_a_time = app.upload_locks.lock(name, id).await;
    if let Session::Data(mut w) = session(app, name, id).await? {
        w.cancel().await.map_err(storage("cancelling an upload"))?;
    }
    app.store
        .delete_if_present(&layout::upload_dir(name, id))
        .await?;
    Ok(respond(
        StatusCode::NO_CONTENT,
        &[("content-length", "0".into())],
        Body::empty(),
    ))
}

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// `Range: 0-<last byte>`; `0-0` also for an empty upload, as distribution and clients
/// expect.
fn range_value(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn progress_response(status: StatusCode, name: &str, id: &str, size: u64) -> Response<Body> {
    respond(
        status,
        &[
            ("location", upload_location(name, id)),
            ("range", range_value(size)),
            ("docker-upload-uuid", id.to_string()),
            ("content-length", "0".into()),
        ],
        Body::empty(),
    )
}

fn range_error(name: &str, id: &str, size: u64, start: u64) -> Response<Body> {
    let e = RegistryError::RangeInvalid(format!(
        "the chunk starts at {start} but the upload has {size} bytes"
    ));
    respond(
        e.status(),
        &[
            ("location", upload_location(name, id)),
            ("range", range_value(size)),
            ("docker-upload-uuid", id.to_string()),
            ("content-type", "application/json; charset=utf-8".into()),
        ],
        Body::full(e.body()),
    )
}

fn created(name: &str, d: &Digest) -> Response<Body> {
    respond(
        StatusCode::CREATED,
        &[
            ("location", format!("/v2/{name}/blobs/{d}")),
            ("docker-content-digest", d.to_string()),
            ("content-length", "0".into()),
        ],
        Body::empty(),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `<start>-<end>` (inclusive; a `bytes ` or `bytes=` prefix is tolerated) as the start
/// and the length.
fn parse_content_range(v: &str) -> Option<(u64, u64)> {
    let v = v.trim();
    let v = v
        .strip_prefix("bytes ")
        .or_else(|| v.strip_prefix("bytes="))
        .unwrap_or(v);
    let (a, b) = v.split_once('-')?;
    let b = b.split('/').next()?;
    let (a, b) = (a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?);
    if a > b {
        return None;
    }
    Some((a, (b - a).checked_add(1)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-99"), Some((0, 100)));
        assert_eq!(parse_content_range("bytes 5-9/100"), Some((5, 5)));
        assert_eq!(parse_content_range("0-18446744073709551615"), None);
        assert_eq!(parse_content_range("9-5"), None);
        assert_eq!(parse_content_range("x-5"), None);
        assert_eq!(parse_content_range("99999999999999999999-1"), None);
    }

    #[test]
    fn ids_and_dates_have_distributions_form() {
        let id = crate::ids::uuid4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(check_id(&id).is_ok());
        assert!(check_id("../x").is_err() && check_id("").is_err());
        assert_eq!(range_value(0), "0-0");
        assert_eq!(range_value(10), "0-9");
    }
}
