//! The lists: `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, both with `n`/`last`
//! pagination and a `Link` header to the next page; and the referrers API,
//! `GET /v2/<name>/referrers/<digest>`.
use std::cmp::Ordering;

use http::{Response, StatusCode};
use ks3_driver::WalkControl;
use serde_json::{json, Map, Value};

use crate::app::{respond, App};
use crate::blobs::parse_digest;
use crate::digest::Digest;
use crate::errors::{RegistryError, Result};
use crate::http_io::{percent_encode, query_get, Body};
use crate::layout;
use crate::manifest::{self, OCI_INDEX};

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
    let all = match app.store.list_names(&layout::tags_dir(name)).await? {
        Some(tags) => tags,
        // Every tag deleted: the repository still exists, with no tags.
        None if app.store.list_names(&layout::repo(name)).await?.is_some() => Vec::new(),
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

/// distribution's repository order: byte order with `/` before every other byte, so
/// `a/b` comes before `a-b`.
fn repo_order(a: &str, b: &str) -> Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { u16::from(c) + 1 };
    a.bytes().map(key).cmp(b.bytes().map(key))
}

pub async fn catalog(app: &App, query: &[(String, String)]) -> Result<Response<Body>> {
    let max = app.config.catalog_max_entries;
    let n = page_size(query, Some(max))?.unwrap_or(100.min(max));
    let last = query_get(query, "last");
    let root = layout::repositories();
    let prefix = format!("{root}/");
    let mut repos: Vec<String> = Vec::new();
    // A repository is a directory holding `_manifests` or `_layers` (v3 and 2.8.2's
    // markers); no `_` directory is walked into.
    app.store
        .driver()
        .walk(&root, None, |info| {
            if !info.is_dir {
                return Ok(WalkControl::Continue);
            }
            let Some(rel) = info.path.strip_prefix(&prefix) else {
                return Ok(WalkControl::Continue);
            };
            let (parent, base) = rel.rsplit_once('/').unwrap_or(("", rel));
            if !base.starts_with('_') {
                return Ok(WalkControl::Continue);
            }
            if (base == "_manifests" || base == "_layers")
                && !parent.is_empty()
                && repos.last().map(String::as_str) != Some(parent)
            {
                repos.push(parent.to_string());
            }
            Ok(WalkControl::SkipDir)
        })
        .await
        .map_err(|e| RegistryError::storage("walking the repositories", &e))?;
    repos.sort_by(|a, b| repo_order(a, b));
    repos.dedup();
    let after: Vec<String> = match last {
        Some(l) => repos
            .into_iter()
            .filter(|r| repo_order(r, l) == Ordering::Greater)
            .collect(),
        None => repos,
    };
    let more = after.len() > n;
    let shown: Vec<String> = after.into_iter().take(n).collect();
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

pub async fn referrers(
    app: &App,
    name: &str,
    digest: &str,
    query: &[(String, String)],
) -> Result<Response<Body>> {
    let subject = parse_digest(digest)?;
    let filter = query_get(query, "artifactType").filter(|s| !s.is_empty());
    let dir = layout::referrers_dir(name, &subject);
    let mut found: Vec<Digest> = Vec::new();
    app.store
        .driver()
        .walk(&dir, None, |info| {
            if !info.is_dir && info.path.ends_with("/link") {
                let parts: Vec<&str> = info.path.rsplitn(4, '/').collect();
                if let [_, hex, alg, _] = parts.as_slice() {
                    if let Some(d) = Digest::parse(&format!("{alg}:{hex}")) {
                        found.push(d);
                    }
                }
            }
            Ok(WalkControl::Continue)
        })
        .await
        .map_err(|e| RegistryError::storage("listing referrers", &e))?;
    let mut manifests: Vec<Value> = Vec::new();
    for d in found {
        // A manifest deleted since it was indexed is no referrer.
        if !app.store.repo_has_manifest(name, &d).await? {
            continue;
        }
        let Some(body) = app.store.get_small(&layout::blob_data(&d)).await? else {
            continue;
        };
        let Ok(parsed) = manifest::parse(&body, None) else {
            continue;
        };
        if parsed.subject.as_ref() != Some(&subject) {
            continue;
        }
        if filter.is_some() && parsed.artifact_type.as_deref() != filter {
            continue;
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
        manifests.push(Value::Object(desc));
    }
    for desc in tag_schema_referrers(app, name, &subject).await? {
        let listed = manifests.iter().any(|m| m["digest"] == desc["digest"]);
        let kept = filter.is_none() || desc["artifactType"].as_str() == filter;
        if !listed && kept {
            manifests.push(desc);
        }
    }
    let mut h = vec![("content-type", OCI_INDEX.to_string())];
    if filter.is_some() {
        h.push(("oci-filters-applied", "artifactType".to_string()));
    }
    let body = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    Ok(respond(
        StatusCode::OK,
        &h,
        Body::full(serde_json::to_vec(&body).unwrap_or_default()),
    ))
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
    let Some(body) = app.store.get_small(&layout::blob_data(&index)).await? else {
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
        assert_eq!(
            link("/v2/_catalog", 2, "a/b"),
            "</v2/_catalog?last=a%2Fb&n=2>; rel=\"next\""
        );
    }
}
