//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>` (a tag or a digest).
use std::collections::HashSet;

use http::{HeaderMap, Method, Response, StatusCode};

use crate::app::{respond, App, Stats};
use crate::blobs::parse_digest;
use crate::digest::{Algorithm, Digest};
use crate::errors::{RegistryError, Result};
use crate::fence::{Left, Protect};
use crate::http_io::{Body, BodyReader, RequestBody};
use crate::layout;
use crate::manifest::{self, Kind, MAX_MANIFEST};
use crate::route::{printable, valid_tag};
use crate::store::{try_fan_out, Document, FAN_OUT_WIDTH};

/// A reference is a digest when it has the digest form, otherwise a tag.
enum Ref {
    Tag(String),
    Digest(Digest),
}

fn parse_ref(reference: &str) -> Result<Ref> {
    if reference.contains(':') {
        return parse_digest(reference).map(Ref::Digest);
    }
    if valid_tag(reference) {
        Ok(Ref::Tag(reference.to_string()))
    } else {
        Err(RegistryError::TagInvalid(format!(
            "`{}` is not a valid tag",
            printable(reference)
        )))
    }
}

/// A reference to read or delete by: one that is neither a valid tag nor a digest names
/// no manifest, so it is `404 MANIFEST_UNKNOWN` as the spec's endpoint table has it (not a
/// 400 the table does not list; distribution 2.8.2 answers its router's plain 404 for
/// most, and 500 for a malformed digest).
fn parse_ref_to_read(name: &str, reference: &str) -> Result<Ref> {
    parse_ref(reference).map_err(|_| {
        RegistryError::ManifestUnknown(format!(
            "manifest {} is not in {name}: not a tag or a digest",
            printable(reference)
        ))
    })
}

/// The tags a `PUT` creates besides its reference: `?tag=<tag>`, repeatable
/// (distribution-spec main, "Pushing manifests with tags"); each must be a valid tag.
fn query_tags(query: &[(String, String)]) -> Result<Vec<String>> {
    let mut tags: Vec<String> = Vec::new();
    for (k, v) in query {
        if k != "tag" {
            continue;
        }
        if !valid_tag(v) {
            return Err(RegistryError::TagInvalid(format!(
                "`{}` is not a valid tag",
                printable(v)
            )));
        }
        if !tags.contains(v) {
            tags.push(v.clone());
        }
    }
    Ok(tags)
}

/// The digest a reference resolves to in `name`, if the repository links that manifest
/// (whether its bytes exist is for the read to tell).
async fn resolve(app: &App, name: &str, r: &Ref) -> Result<Option<Digest>> {
    match r {
        Ref::Tag(t) => {
            app.store
                .read_link(&layout::tag_current_link(name, t))
                .await
        }
        Ref::Digest(d) => Ok(app
            .store
            .repo_links_manifest(name, d)
            .await?
            .then(|| d.clone())),
    }
}

pub async fn get(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    name: &str,
    reference: &str,
) -> Result<Response<Body>> {
    let r = parse_ref_to_read(name, reference)?;
    let unknown = || {
        RegistryError::ManifestUnknown(format!(
            "manifest {} is not in {name}",
            printable(reference)
        ))
    };
    // Proxy mode: the tag revalidated upstream, a missing digest fetched.
    crate::proxy::refresh_manifest(app, name, reference).await?;
    let d = resolve(app, name, &r).await?.ok_or_else(unknown)?;
    // A digest linked in `_layers` resolves too (distribution's fallback), so this may
    // be any blob: one over the manifest limit is not read at all, and one without a
    // manifest media type is not served (distribution 2.8.2 answers 500 to both; a
    // manifest that is not there is what the client asked about).
    let body = match app.store.get_manifest_bytes(&d).await? {
        Document::Found(b) => b,
        Document::Missing => return Err(unknown()),
        Document::TooLarge(size) => {
            return Err(RegistryError::ManifestUnknown(format!(
                "{} is not a manifest ({size} bytes, over the {} MiB limit)",
                printable(reference),
                MAX_MANIFEST >> 20
            )))
        }
    };
    let Some(media_type) =
        manifest::stored_media_type(&body).filter(|m| manifest::kind_of(m).is_some())
    else {
        return Err(RegistryError::ManifestUnknown(format!(
            "{} is not a manifest (not one of the manifest media types)",
            printable(reference)
        )));
    };
    let accept: Vec<String> = headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    if !manifest::accepted(&accept, &media_type) {
        return Err(RegistryError::ManifestUnknown(format!(
            "manifest {} is {media_type}, which the Accept header does not allow",
            printable(reference)
        )));
    }
    let etag = format!("\"{d}\"");
    let if_none_match = headers
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if if_none_match.is_some_and(|v| v.trim() == etag || v.trim() == d.to_string()) {
        return Ok(respond(
            StatusCode::NOT_MODIFIED,
            &[("etag", etag), ("docker-content-digest", d.to_string())],
            Body::empty(),
        ));
    }
    let h = [
        ("content-type", media_type),
        ("content-length", body.len().to_string()),
        ("docker-content-digest", d.to_string()),
        ("etag", etag),
    ];
    crate::notify::manifest(&body);
    let b = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::full(body)
    };
    Ok(respond(StatusCode::OK, &h, b))
}

pub async fn put(
    app: &App,
    headers: &HeaderMap,
    name: &str,
    reference: &str,
    query: &[(String, String)],
    body: RequestBody,
) -> Result<Response<Body>> {
    let r = parse_ref(reference)?;
    let mut tags = query_tags(query)?;
    if let Ref::Tag(tag) = &r {
        if !tags.contains(tag) {
            tags.insert(0, tag.clone());
        }
    }
    // Read up to the limit before refusing (rather than refusing on Content-Length), so
    // a client just over it gets the 413 instead of a connection closed mid-body.
    let bytes = BodyReader::new(body, app.config.limits.body_timeout, None)
        .read_all(MAX_MANIFEST)
        .await
        .map_err(|e| match e {
            RegistryError::TooLarge(_) => too_large(),
            other => other,
        })?;
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let parsed = manifest::parse(&bytes, content_type)?;
    crate::notify::manifest(&bytes);
    let d = match &r {
        Ref::Digest(want) => {
            let got = Digest::of(want.algorithm(), &bytes);
            if &got != want {
                return Err(RegistryError::DigestInvalid(format!(
                    "the manifest's digest is {got}, not {want}"
                )));
            }
            got
        }
        Ref::Tag(_) => Digest::of(Algorithm::Sha256, &bytes),
    };
    // Everything the manifest names must be in this repository (the subject need not be).
    // Each distinct digest is checked once (an index may name one child thousands of
    // times). A garbage collection running meanwhile must not sweep any of them, nor this
    // manifest's own bytes or revision: the fence (read while the checks run).
    let mut seen = HashSet::new();
    let distinct: Vec<Digest> = parsed
        .references
        .iter()
        .map(|r| r.digest.clone())
        .filter(|d| seen.insert(d.clone()))
        .collect();
    let kind = parsed.kind;
    let mut protect = Protect {
        blobs: distinct.clone(),
        manifests: vec![(name.to_string(), d.clone())],
    };
    protect.blobs.push(d.clone());
    if kind == Kind::Index {
        protect
            .manifests
            .extend(distinct.iter().map(|c| (name.to_string(), c.clone())));
    }
    // The fence's listing and the references' checks together: one round trip (two for
    // a missing link) before the writes.
    let (entered, checked) = tokio::join!(
        app.fence.enter(&app.store, &protect),
        check_references(app, name, kind, &distinct)
    );
    let entered = entered?;
    if entered.recheck() {
        check_references(app, name, kind, &distinct).await?;
    } else {
        checked?;
    }
    let subject = parsed.subject.as_ref();
    write_manifest(app, name, &d, &bytes, subject, &tags).await?;
    if app.fence.leave(&app.store, entered, &protect).await? == Left::Recheck {
        // A sweep that may have missed these writes named what they rely on: what it
        // took of this manifest is written again; a reference it took cannot be, so the
        // push is undone and refused as for any missing blob.
        if let Err(e) = check_references(app, name, kind, &distinct).await {
            undo_manifest(app, name, &d, &tags).await;
            return Err(e);
        }
        write_manifest(app, name, &d, &bytes, subject, &tags).await?;
    }
    Stats::bump(&app.stats.manifests_pushed);
    let mut h = vec![
        ("location", format!("/v2/{name}/manifests/{d}")),
        ("docker-content-digest", d.to_string()),
        ("content-length", "0".to_string()),
    ];
    if matches!(r, Ref::Digest(_)) && !tags.is_empty() {
        // The spec's answer to `?tag=`: every tag the push created.
        h.push(("oci-tag", tags.join(", ")));
    }
    if let Some(subject) = &parsed.subject {
        h.push(("oci-subject", subject.to_string()));
    }
    Ok(respond(StatusCode::CREATED, &h, Body::empty()))
}

/// Every reference of a manifest is held by repository `name` (blobs of an image, child
/// manifests of an index): a bounded number checked at a time, the first missing one
/// ending the checks.
async fn check_references(app: &App, name: &str, kind: Kind, distinct: &[Digest]) -> Result<()> {
    try_fan_out(distinct.iter(), FAN_OUT_WIDTH, |digest| async move {
        let present = match kind {
            Kind::Image => app.store.repo_blob_size(name, digest).await?.is_some(),
            Kind::Index => app.store.repo_has_manifest(name, digest).await?,
        };
        if present {
            Ok(())
        } else {
            Err(RegistryError::ManifestBlobUnknown(format!(
                "{} {digest} is unknown to {name}",
                match kind {
                    Kind::Image => "referenced blob",
                    Kind::Index => "referenced manifest",
                }
            )))
        }
    })
    .await
    .map(|_: Vec<()>| ())
}

/// The manifest's bytes with its tags' index entries; then, once the bytes are stored,
/// its revision link and its referrers entry; then, once those exist, the tags' current
/// links (distribution's order: a tag never names a manifest that is not there yet). No
/// link that serves the manifest is written before its bytes: a failed write of the bytes
/// (KS3 unreachable through every retry) leaves at most tag index entries, which nothing
/// serves (fsck's `tag-index-dangling`, a leftover). The bytes are written even when
/// stored already (the same bytes, content-addressed): looking first would cost a round
/// trip and two requests on every fresh push.
async fn write_manifest(
    app: &App,
    name: &str,
    d: &Digest,
    bytes: &[u8],
    subject: Option<&Digest>,
    tags: &[String],
) -> Result<()> {
    let bytes_written = async {
        app.store
            .driver()
            .put_content_writerless(&layout::blob_data(d), bytes)
            .await
            .map_err(|e| RegistryError::storage("storing a manifest", e))
    };
    let indexes: Vec<String> = tags
        .iter()
        .map(|t| layout::tag_index_link(name, t, d))
        .collect();
    let (written, indexed) = tokio::join!(bytes_written, write_links(app, &indexes, d));
    written?;
    indexed?;
    let mut links = vec![layout::revision_link(name, d)];
    links.extend(subject.map(|s| layout::referrer_link(name, s, d)));
    write_links(app, &links, d).await?;
    let currents: Vec<String> = tags
        .iter()
        .map(|t| layout::tag_current_link(name, t))
        .collect();
    write_links(app, &currents, d).await
}

/// Writes every link of `paths` (naming `d`) at once, within the fan-out pool.
async fn write_links(app: &App, paths: &[String], d: &Digest) -> Result<()> {
    try_fan_out(paths.iter(), FAN_OUT_WIDTH, |p| app.store.write_link(p, d))
        .await
        .map(|_: Vec<()>| ())
}

/// Takes back a push whose references a sweep took: its tags (those still naming it),
/// their index entries and its revision. Best effort: the client is told the push failed.
async fn undo_manifest(app: &App, name: &str, d: &Digest, tags: &[String]) {
    for tag in tags {
        let current = layout::tag_current_link(name, tag);
        if let Ok(Some(named)) = app.store.read_link(&current).await {
            if &named == d {
                let _ = app
                    .store
                    .delete_if_present(&layout::tag_dir(name, tag))
                    .await;
            }
        }
    }
    let _ = app
        .store
        .delete_if_present(&layout::revision_link(name, d))
        .await;
}

fn too_large() -> RegistryError {
    RegistryError::TooLarge(format!(
        "manifests are limited to {} MiB",
        MAX_MANIFEST >> 20
    ))
}

/// By digest: the repository forgets the manifest and every tag pointing at it. By tag:
/// only the tag goes (distribution v3 and the spec).
pub async fn delete(app: &App, name: &str, reference: &str) -> Result<Response<Body>> {
    app.require_delete()?;
    let r = parse_ref_to_read(name, reference)?;
    let unknown = || {
        RegistryError::ManifestUnknown(format!(
            "manifest {} is not in {name}",
            printable(reference)
        ))
    };
    match r {
        Ref::Tag(tag) => {
            if app
                .store
                .read_link(&layout::tag_current_link(name, &tag))
                .await?
                .is_none()
            {
                return Err(unknown());
            }
            app.store
                .delete_if_present(&layout::tag_dir(name, &tag))
                .await?;
        }
        Ref::Digest(d) => {
            if !app.store.repo_has_manifest(name, &d).await? {
                return Err(unknown());
            }
            let subject = match app.store.get_manifest_bytes(&d).await? {
                Document::Found(b) => manifest::parse(&b, None).ok().and_then(|p| p.subject),
                Document::Missing | Document::TooLarge(_) => None,
            };
            app.store
                .delete_if_present(&layout::revision_link(name, &d))
                .await?;
            app.store
                .delete_if_present(&layout::layer_link(name, &d))
                .await?;
            if let Some(s) = subject {
                app.store
                    .delete_if_present(&layout::referrer_link(name, &s, &d))
                    .await?;
            }
            for tag in app
                .store
                .list_names(&layout::tags_dir(name))
                .await?
                .unwrap_or_default()
            {
                let current = app
                    .store
                    .read_link(&layout::tag_current_link(name, &tag))
                    .await?;
                if current.as_ref() == Some(&d) {
                    crate::notify::untagged(&tag);
                    app.store
                        .delete_if_present(&layout::tag_dir(name, &tag))
                        .await?;
                }
            }
        }
    }
    Ok(respond(
        StatusCode::ACCEPTED,
        &[("content-length", "0".into())],
        Body::empty(),
    ))
}
