//! distribution's storage layout (`registry/storage/paths.go`), path for path, so a bucket
//! filled by distribution can be served by this registry and the other way round.
//!
//! One addition distribution ignores (it never lists `_manifests/` itself): the referrers
//! index, `_manifests/referrers/<subject alg>/<subject hex>/<alg>/<hex>/link`, one link
//! per manifest whose `subject` is that digest.
use crate::digest::Digest;

pub const ROOT: &str = "/docker/registry/v2";

pub fn repositories() -> String {
    format!("{ROOT}/repositories")
}

/// Where a walked path lies under `repositories/`.
pub enum RepoPath<'a> {
    /// Not under it, or still inside a repository's name (no `_` directory yet).
    Above,
    /// Under a `_` directory that no repository owns (`repositories/_x`).
    Unowned,
    /// In repository `repo`'s directory `dir` (`_layers`, `_manifests`, `_uploads`, …),
    /// then `rest`.
    In {
        repo: String,
        dir: &'a str,
        rest: Vec<&'a str>,
    },
}

/// Splits a walked path at its repository: the one rule for the garbage collector and
/// the upload purger, which both walk `repositories/`.
pub fn split_repo_path(path: &str) -> RepoPath<'_> {
    let Some(rel) = path.strip_prefix(&format!("{}/", repositories())) else {
        return RepoPath::Above;
    };
    let parts: Vec<&str> = rel.split('/').collect();
    match parts.iter().position(|p| p.starts_with('_')) {
        None => RepoPath::Above,
        Some(0) => RepoPath::Unowned,
        Some(i) => RepoPath::In {
            repo: parts[..i].join("/"),
            dir: parts[i],
            rest: parts[i + 1..].to_vec(),
        },
    }
}

/// A repository's directory (`_layers`, `_manifests`, `_uploads` live in it).
pub fn repo(name: &str) -> String {
    format!("{ROOT}/repositories/{name}")
}

fn components(d: &Digest) -> String {
    format!("{}/{}", d.algorithm().name(), d.hex())
}

/// `blobs/<alg>/<first two hex>/<hex>/data`: the bytes of every blob and manifest.
pub fn blob_data(d: &Digest) -> String {
    let hex = d.hex();
    format!(
        "{ROOT}/blobs/{}/{}/{hex}/data",
        d.algorithm().name(),
        &hex[..2]
    )
}

pub fn layer_link(name: &str, d: &Digest) -> String {
    format!("{}/_layers/{}/link", repo(name), components(d))
}

pub fn revision_link(name: &str, d: &Digest) -> String {
    format!("{}/_manifests/revisions/{}/link", repo(name), components(d))
}

pub fn tags_dir(name: &str) -> String {
    format!("{}/_manifests/tags", repo(name))
}

pub fn tag_dir(name: &str, tag: &str) -> String {
    format!("{}/{tag}", tags_dir(name))
}

pub fn tag_current_link(name: &str, tag: &str) -> String {
    format!("{}/current/link", tag_dir(name, tag))
}

pub fn tag_index_link(name: &str, tag: &str, d: &Digest) -> String {
    format!("{}/index/{}/link", tag_dir(name, tag), components(d))
}

pub fn referrers_dir(name: &str, subject: &Digest) -> String {
    format!(
        "{}/_manifests/referrers/{}",
        repo(name),
        components(subject)
    )
}

pub fn referrer_link(name: &str, subject: &Digest, d: &Digest) -> String {
    format!("{}/{}/link", referrers_dir(name, subject), components(d))
}

pub fn upload_dir(name: &str, id: &str) -> String {
    format!("{}/_uploads/{id}", repo(name))
}

/// The one path the registry opens storage writers at. Every other path is written whole
/// with `put_content_writerless` or moved into with `mv_to_writerless` (the driver's
/// `fast-path.put-content-writerless` and `move-to-writerless`), whose promise is exactly
/// this: no writer is ever opened there.
pub fn upload_data(name: &str, id: &str) -> String {
    format!("{}/data", upload_dir(name, id))
}

pub fn upload_started_at(name: &str, id: &str) -> String {
    format!("{}/startedat", upload_dir(name, id))
}

/// `hashstates/sha256/<offset>`: the SHA-256 state after `offset` bytes (Go's format).
pub fn upload_hash_state(name: &str, id: &str, offset: u64) -> String {
    format!("{}/hashstates/sha256/{offset}", upload_dir(name, id))
}

/// The digest a link file names: exactly the digest string, no newline (distribution
/// parses the whole content).
pub fn parse_link(content: &[u8]) -> Option<Digest> {
    Digest::parse(std::str::from_utf8(content).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Algorithm;

    #[test]
    fn paths_are_distributions() {
        let d = Digest::of(Algorithm::Sha256, b"");
        let h = d.hex().to_string();
        assert_eq!(
            blob_data(&d),
            format!("/docker/registry/v2/blobs/sha256/e3/{h}/data")
        );
        assert_eq!(
            layer_link("a/b", &d),
            format!("/docker/registry/v2/repositories/a/b/_layers/sha256/{h}/link")
        );
        assert_eq!(
            tag_index_link("a", "v1", &d),
            format!("/docker/registry/v2/repositories/a/_manifests/tags/v1/index/sha256/{h}/link")
        );
        assert_eq!(
            upload_hash_state("a", "u", 42),
            "/docker/registry/v2/repositories/a/_uploads/u/hashstates/sha256/42"
        );
        assert_eq!(parse_link(d.to_string().as_bytes()), Some(d));
        assert_eq!(parse_link(b"sha256:zz"), None);
    }
}
