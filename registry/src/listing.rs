//! The lists: `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, both with `n`/`last`
//! pagination and a `Link` header to the next page; and the referrers API,
//! `GET /v2/<name>/referrers/<digest>`.
use std::cmp::Ordering;

use http::{Response, StatusCode};
use ks3_driver_host::WalkControl;
use serde_json::{json, Map, Value};

use crate::app::{respond, App};
use crate::blobs::parse_digest;
use crate::digest::Digest;
use crate::errors::{RegistryError, Result};
use crate::gc::repo_order;
use crate::http_io::{percent_encode, query_get, Body};
use crate::layout;
use crate::manifest::{self, OCI_INDEX};
use crate::store::{fan_out, Document, FAN_OUT_WIDTH};

const JSON: &str = "application/json; charset=utf-8";

/// `n` as asked (`None`: not given), refused past `max`.
fn page_size(query: &[(String, String)], max: Option<usize>) -> Result<Option<usize>> {
    let Some(n) = query_get(query, "n") else {
        return Ok(None);
    };
    let n: usize = n.parse().map_err(|_| {
        RegistryError::PaginationInvalid(format!(
            "n=`{}` is not a non-negative integer",
            crate::route::printable(n)
        ))
    })?;
    if let Some(max) = max {
        if n > max {
            return Err(RegistryError::PaginationInvalid(format!(
                "n={n} is over the limit of {max}"
            )));
        }
    }
    Ok(Some(n))
}

/// The page of sorted `all` after `last`, of at most `n`, and whether more follow.
fn page(all: Vec<String>, last: Option<&str>, n: Option<usize>) -> (Vec<String>, bool) {
    let mut rest: Vec<String> = match last {
        Some(l) => all.into_iter().filter(|x| x.as_str() > l).collect(),
        None => all,
    };
    match n {
        Some(n) if rest.len() > n => {
            rest.truncate(n);
            (rest, true)
        }
        _ => (rest, false),
    }
}

fn link(path: &str, n: usize, last: &str) -> String {
    format!("<{path}?last={}&n={n}>; rel=\"next\"", percent_encode(last))
}

pub async fn tags(app: &App, name: &str, query: &[(String, String)]) -> Result<Response<Body>> {
    let n = page_size(query, None)?;
    // Proxy mode: the upstream's list while it answers.
    if let Some(r) = crate::proxy::upstream_tags(app, name, query).await {
        return Ok(r);
    }
    let all = match app.store.list_names(&layout::tags_dir(name)).await? {
        Some(tags) => tags,
        // No tags: a repository by the catalog's rule (it holds `_manifests` or
        // `_layers`: every tag deleted, pushed by digest, blobs only) has none; anything
        // else is no repository (a prefix of one's name, uploads only, nothing): 404.
        None if is_repository(app, name).await? => Vec::new(),
        None => {
            return Err(RegistryError::NameUnknown(format!(
                "repository {name} is not known"
            )))
        }
    };
    let (tags, more) = page(all, query_get(query, "last"), n);
    let mut h = vec![("content-type", JSON.to_string())];
    if let (true, Some(last), Some(n)) = (more, tags.last(), n) {
        h.push(("link", link(&format!("/v2/{name}/tags/list"), n, last)));
    }
    let body = json!({"name": name, "tags": tags});
    Ok(respond(
        StatusCode::OK,
        &h,
        Body::full(serde_json::to_vec(&body).unwrap_or_default()),
    ))
}

/// Whether `name` is a repository by the catalog's rule (see [`repositories_after`]).
async fn is_repository(app: &App, name: &str) -> Result<bool> {
    Ok(app
        .store
        .list_names(&layout::repo(name))
        .await?
        .is_some_and(|c| c.iter().any(|c| c == "_manifests" || c == "_layers")))
}

/// Whether the subtree of repository-name prefix `dir` (`dir` itself and `dir/…`) may
/// hold a name after `last`: unless `dir` sorts before `last` without being one of its
/// leading components, every name under it sorts before `last` too.
fn may_hold_after(dir: &str, last: &str) -> bool {
    repo_order(dir, last) != Ordering::Less
        || last
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

pub async fn catalog(app: &App, query: &[(String, String)]) -> Result<Response<Body>> {
    let max = app.config.catalog_max_entries;
    let n = page_size(query, Some(max))?.unwrap_or(100.min(max));
    let last = query_get(query, "last");
    // One more than the page, to know whether a next page exists.
    let mut shown = repositories_after(app, last, n.saturating_add(1)).await?;
    let more = shown.len() > n;
    shown.truncate(n);
    let mut h = vec![("content-type", JSON.to_string())];
    if let (true, Some(l)) = (more, shown.last()) {
        h.push(("link", link("/v2/_catalog", n, l)));
    }
    let body = json!({ "repositories": shown });
    Ok(respond(
        StatusCode::OK,
        &h,
        Body::full(serde_json::to_vec(&body).unwrap_or_default()),
    ))
}

/// The first `want` repositories after `last`, in distribution's order, without walking
/// the others. A repository is a directory holding `_manifests` or `_layers` (v3 and
/// 2.8.2's markers); no `_` directory is descended into.
///
/// Depth first, directory by directory, children in byte order: comparing names with `/`
/// before every other byte is comparing them component by component, which is exactly
/// the order of that walk, so it can stop after `want` and skip every subtree that lies
/// wholly before `last`. (A flat walk of the keys is in plain byte order, where `a-b/…`
/// comes before `a/…`, so it could not stop early.) Each directory is listed to learn
/// whether it is a repository (about one request per repository shown, whatever the
/// store's size); siblings are listed up to [`FAN_OUT_WIDTH`] at a time.
async fn repositories_after(app: &App, last: Option<&str>, want: usize) -> Result<Vec<String>> {
    let mut found: Vec<String> = Vec::new();
    if want == 0 {
        return Ok(found);
    }
    if let Some(top) = app.store.list_names(&layout::repositories()).await? {
        visit(app, "", top, last, want, &mut found).await?;
    }
    Ok(found)
}

/// Visits the children of repository-name prefix `prefix` (`""`: the top), which
/// `children` lists, adding the repositories after `last` to `found` until it holds
/// `want`. Sibling listings finish before the walk descends, so no permit of the pool is
/// held while a deeper level waits for one.
fn visit<'a>(
    app: &'a App,
    prefix: &'a str,
    children: Vec<String>,
    last: Option<&'a str>,
    want: usize,
    found: &'a mut Vec<String>,
) -> futures::future::BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        let names: Vec<String> = children
            .into_iter()
            .filter(|c| !c.starts_with('_'))
            .map(|c| {
                if prefix.is_empty() {
                    c
                } else {
                    format!("{prefix}/{c}")
                }
            })
            .filter(|n| last.is_none_or(|l| may_hold_after(n, l)))
            .collect();
        let mut next = 0;
        while next < names.len() {
            // As many listings at once as repositories are still wanted (at most the
            // fan-out's width): a small page lists no more than it shows.
            let take = want.saturating_sub(found.len()).clamp(1, FAN_OUT_WIDTH);
            let chunk = &names[next..names.len().min(next + take)];
            next += chunk.len();
            let listed = fan_out(chunk, FAN_OUT_WIDTH, |name| async move {
                app.store
                    .list_names(&layout::repo(name))
                    .await
                    .map(|l| (name, l))
            })
            .await;
            for r in listed {
                // A file, or a directory gone since its parent was listed: no children.
                let (name, Some(grand)) = r? else {
                    continue;
                };
                // The rule `is_repository` shares.
                let is_repo = grand.iter().any(|c| c == "_manifests" || c == "_layers");
                if is_repo && last.is_none_or(|l| repo_order(name, l) == Ordering::Greater) {
                    found.push(name.clone());
                    if found.len() >= want {
                        return Ok(());
                    }
                }
                visit(app, name, grand, last, want, found).await?;
                if found.len() >= want {
                    return Ok(());
                }
            }
        }
        Ok(())
    })
}

/// Referrer links examined per page of `GET /v2/<name>/referrers/<digest>`; a subject
/// with more gets a `Link` to the next page. Each costs a few KS3 requests (its links,
/// its size, its bytes), made [`FAN_OUT_WIDTH`] at a time.
pub const REFERRERS_PAGE: usize = 100;

pub async fn referrers(
    app: &App,
    name: &str,
    digest: &str,
    query: &[(String, String)],
) -> Result<Response<Body>> {
    let subject = parse_digest(digest)?;
    let filter = query_get(query, "artifactType").filter(|s| !s.is_empty());
    let last = query_get(query, "last").map(parse_digest).transpose()?;
    let dir = layout::referrers_dir(name, &subject);
    // The walk is in key order, which is digest order; a page starts after the link of
    // the last digest the previous page examined.
    let after = last
        .as_ref()
        .map(|l| layout::referrer_link(name, &subject, l));
    let mut found: Vec<Digest> = Vec::new();
    app.store
        .driver()
        .walk(&dir, after.as_deref(), |info| {
            if !info.is_dir
                && info.path.ends_with("/link")
                && after.as_deref().is_none_or(|a| info.path.as_str() > a)
            {
                let parts: Vec<&str> = info.path.rsplitn(4, '/').collect();
                if let [_, hex, alg, _] = parts.as_slice() {
                    if let Some(d) = Digest::parse(&format!("{alg}:{hex}")) {
                        found.push(d);
                    }
                }
            }
            Ok(if found.len() > REFERRERS_PAGE {
                WalkControl::Stop
            } else {
                WalkControl::Continue
            })
        })
        .await
        .map_err(|e| RegistryError::storage("listing referrers", e))?;
    let more = found.len() > REFERRERS_PAGE;
    found.truncate(REFERRERS_PAGE);
    let next = more.then(|| found.last().cloned()).flatten();
    let subject_ref = &subject;
    let described = fan_out(found, FAN_OUT_WIDTH, |d| async move {
        referrer_descriptor(app, name, subject_ref, d).await
    })
    .await;
    let mut manifests: Vec<Value> = Vec::new();
    for desc in described {
        if let Some(desc) = desc? {
            if filter.is_none() || desc["artifactType"].as_str() == filter {
                manifests.push(desc);
            }
        }
    }
    // The tag schema's index is listed once, with the first page.
    if last.is_none() {
        for desc in tag_schema_referrers(app, name, &subject).await? {
            let listed = manifests.iter().any(|m| m["digest"] == desc["digest"]);
            let kept = filter.is_none() || desc["artifactType"].as_str() == filter;
            if !listed && kept {
                manifests.push(desc);
            }
        }
    }
    let mut h = vec![("content-type", OCI_INDEX.to_string())];
    if filter.is_some() {
        h.push(("oci-filters-applied", "artifactType".to_string()));
    }
    if let Some(l) = next {
        let mut target = format!(
            "/v2/{name}/referrers/{subject}?last={}",
            percent_encode(&l.to_string())
        );
        if let Some(f) = filter {
            target.push_str(&format!("&artifactType={}", percent_encode(f)));
        }
        h.push(("link", format!("<{target}>; rel=\"next\"")));
    }
    let body = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    Ok(respond(
        StatusCode::OK,
        &h,
        Body::full(serde_json::to_vec(&body).unwrap_or_default()),
    ))
}

/// The descriptor of referrer `d` of `subject`, or `None` when it is not one (any more):
/// unlinked since it was indexed, its bytes gone or no manifest (over the limit, or not
/// parsing), or its subject another.
async fn referrer_descriptor(
    app: &App,
    name: &str,
    subject: &Digest,
    d: Digest,
) -> Result<Option<Value>> {
    if !app.store.repo_links_manifest(name, &d).await? {
        return Ok(None);
    }
    let Document::Found(body) = app.store.get_manifest_bytes(&d).await? else {
        return Ok(None);
    };
    let Ok(parsed) = manifest::parse(&body, None) else {
        return Ok(None);
    };
    if parsed.subject.as_ref() != Some(subject) {
        return Ok(None);
    }
    let mut desc = Map::new();
    desc.insert("mediaType".into(), json!(parsed.media_type));
    desc.insert("digest".into(), json!(d.to_string()));
    desc.insert("size".into(), json!(body.len()));
    if let Some(t) = parsed.artifact_type {
        desc.insert("artifactType".into(), json!(t));
    }
    if let Some(a) = parsed.annotations {
        desc.insert("annotations".into(), Value::Object(a));
    }
    Ok(Some(Value::Object(desc)))
}

/// The descriptors of the referrers tag schema's index (`<alg>-<hex, at most 64>`), which
/// clients maintain themselves against registries without the API; the spec asks that
/// they be listed too.
async fn tag_schema_referrers(app: &App, name: &str, subject: &Digest) -> Result<Vec<Value>> {
    let hex = subject.hex();
    let tag = format!(
        "{}-{}",
        subject.algorithm().name(),
        &hex[..hex.len().min(64)]
    );
    let Some(index) = app
        .store
        .read_link(&layout::tag_current_link(name, &tag))
        .await?
    else {
        return Ok(Vec::new());
    };
    let Document::Found(body) = app.store.get_manifest_bytes(&index).await? else {
        return Ok(Vec::new());
    };
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok(parsed["manifests"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|d| d["digest"].as_str().and_then(Digest::parse).is_some())
                .cloned()
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_order() {
        let all: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            page(all.clone(), None, Some(2)),
            (vec!["a".into(), "b".into()], true)
        );
        assert_eq!(
            page(all.clone(), Some("b"), Some(2)),
            (vec!["c".into()], false)
        );
        assert_eq!(page(all.clone(), None, Some(0)), (vec![], true));
        assert_eq!(page(all, None, None).0.len(), 3);
        assert_eq!(repo_order("a/b", "a-b"), Ordering::Less);
        // Subtrees wholly before `last` are skipped; its own leading components are not.
        assert!(may_hold_after("a", "a/b"));
        assert!(may_hold_after("a-b", "a/b"));
        assert!(!may_hold_after("a", "a-b"));
        assert!(!may_hold_after("a/a", "a/b"));
        assert!(may_hold_after("a/b", "a/b"));
        assert!(!may_hold_after("ab", "ab0/c"));
        assert_eq!(
            link("/v2/_catalog", 2, "a/b"),
            "</v2/_catalog?last=a%2Fb&n=2>; rel=\"next\""
        );
    }
}
