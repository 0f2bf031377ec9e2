//! The manifest kinds this registry stores, what a manifest refers to, and the fields the
//! referrers API reports. Manifests are stored as the exact bytes received; this module
//! only reads them.
use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::errors::{RegistryError, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Largest manifest accepted (distribution's limit; the spec asks for at least 4 MB).
pub const MAX_MANIFEST: u64 = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// OCI image manifest or Docker schema 2 manifest: a config and layers.
    Image,
    /// OCI image index or Docker manifest list: child manifests.
    Index,
}

pub fn kind_of(media_type: &str) -> Option<Kind> {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Some(Kind::Image),
        OCI_INDEX | DOCKER_LIST => Some(Kind::Index),
        _ => None,
    }
}

/// A descriptor's digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub digest: Digest,
    pub size: Option<u64>,
}

/// What the registry needs of a manifest.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub media_type: String,
    pub kind: Kind,
    /// Config and layers (image), or child manifests (index). Layers with `urls` (foreign
    /// layers) are left out: they live elsewhere by design.
    pub references: Vec<Reference>,
    pub subject: Option<Digest>,
    /// What a referrers list reports for it (see [`Parsed::artifact_type`]).
    pub artifact_type: Option<String>,
    pub annotations: Option<Map<String, Value>>,
}

/// Parses a manifest body. The media type is the body's `mediaType`, or else the
/// request's `Content-Type`; when both are given they must agree.
pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<Parsed> {
    let invalid = |m: String| RegistryError::ManifestInvalid(m);
    let v: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| invalid("a manifest is a JSON object".into()))?;
    let declared = match obj.get("mediaType") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(invalid("mediaType must be a string".into())),
    };
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty());
    let media_type = match (declared, header) {
        (Some(d), Some(h)) if d != h && kind_of(h).is_some() => {
            return Err(invalid(format!(
                "mediaType {d} does not match Content-Type {h}"
            )))
        }
        (Some(d), _) => d,
        (None, Some(h)) => h,
        (None, None) => {
            guess(obj).ok_or_else(|| invalid("no mediaType and no Content-Type".into()))?
        }
    };
    let kind = kind_of(media_type).ok_or_else(|| {
        invalid(format!(
            "unsupported manifest type {media_type} (OCI manifest or index, Docker schema 2 manifest or list)"
        ))
    })?;
    let mut references = Vec::new();
    match kind {
        Kind::Image => {
            let config = obj
                .get("config")
                .ok_or_else(|| invalid("an image manifest needs a config".into()))?;
            references.push(descriptor(config, "config")?);
            let layers = match obj.get("layers") {
                Some(Value::Array(a)) => a.as_slice(),
                None => &[],
                Some(_) => return Err(invalid("layers must be an array".into())),
            };
            for (i, l) in layers.iter().enumerate() {
                let d = descriptor(l, &format!("layers[{i}]"))?;
                if l.get("urls").is_none() {
                    references.push(d);
                }
            }
        }
        Kind::Index => {
            let children = match obj.get("manifests") {
                Some(Value::Array(a)) => a.as_slice(),
                None => &[],
                Some(_) => return Err(invalid("manifests must be an array".into())),
            };
            for (i, m) in children.iter().enumerate() {
                references.push(descriptor(m, &format!("manifests[{i}]"))?);
            }
        }
    }
    let subject = match obj.get("subject") {
        None | Some(Value::Null) => None,
        Some(s) => Some(descriptor(s, "subject")?.digest),
    };
    let artifact_type = match obj.get("artifactType") {
        Some(Value::String(s)) => Some(s.clone()),
        _ if kind == Kind::Image => obj
            .get("config")
            .and_then(|c| c.get("mediaType"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    };
    let annotations = obj.get("annotations").and_then(Value::as_object).cloned();
    Ok(Parsed {
        media_type: media_type.to_string(),
        kind,
        references,
        subject,
        artifact_type,
        annotations,
    })
}

/// The media type of stored bytes read as a manifest (its `mediaType`, or its shape when
/// absent); `None` when they are no JSON object or tell nothing. What it returns is what
/// the bytes claim, anything (`text/html`): a caller serving it checks it with
/// [`kind_of`].
pub fn stored_media_type(body: &[u8]) -> Option<String> {
    let v = serde_json::from_slice::<Value>(body).ok()?;
    let obj = v.as_object()?;
    match obj.get("mediaType") {
        Some(Value::String(m)) => Some(m.clone()),
        Some(_) => None,
        None => guess(obj).map(str::to_string),
    }
}

/// An OCI manifest or index may leave `mediaType` out; its fields tell which it is.
fn guess(obj: &Map<String, Value>) -> Option<&'static str> {
    if obj.contains_key("manifests") {
        Some(OCI_INDEX)
    } else if obj.contains_key("config") {
        Some(OCI_MANIFEST)
    } else {
        None
    }
}

fn descriptor(v: &Value, what: &str) -> Result<Reference> {
    let invalid = |m: String| RegistryError::ManifestInvalid(m);
    let digest = v
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{what}: no digest")))?;
    let digest = Digest::parse(digest).ok_or_else(|| {
        invalid(format!(
            "{what}: `{}` is not a digest",
            crate::route::printable(digest)
        ))
    })?;
    let size = match v.get("size") {
        None => None,
        Some(s) => Some(
            s.as_u64()
                .ok_or_else(|| invalid(format!("{what}: size must be a non-negative integer")))?,
        ),
    };
    Ok(Reference { digest, size })
}

/// Whether an `Accept` header list allows `media_type`. No `Accept` at all, or a
/// wildcard, allows anything; otherwise (as distribution) the exact type must be named.
pub fn accepted(accept: &[String], media_type: &str) -> bool {
    if accept.is_empty() {
        return true;
    }
    accept
        .iter()
        .flat_map(|h| h.split(','))
        .map(|t| t.split(';').next().unwrap_or("").trim())
        .any(|t| t == media_type || t == "*/*" || t == "application/*")
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    const D2: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn reads_an_artifact_with_a_subject() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/x-sig",
            "config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{D1}","size":2}},
            "layers":[{{"mediaType":"x","digest":"{D2}","size":0}},{{"mediaType":"f","digest":"{D2}","size":1,"urls":["http://x"]}}],
            "subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{D2}","size":7}},
            "annotations":{{"a":"b"}}}}"#
        );
        let p = parse(body.as_bytes(), Some(OCI_MANIFEST)).expect("valid");
        assert_eq!(p.kind, Kind::Image);
        assert_eq!(p.references.len(), 2, "config and the non-foreign layer");
        assert_eq!(p.subject.map(|d| d.to_string()).as_deref(), Some(D2));
        assert_eq!(p.artifact_type.as_deref(), Some("application/x-sig"));
        assert!(p.annotations.is_some());
    }

    #[test]
    fn artifact_type_falls_back_to_the_config_media_type() {
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/x-cfg","digest":"{D1}","size":2}},"layers":[]}}"#
        );
        let p = parse(body.as_bytes(), Some(OCI_MANIFEST)).expect("valid");
        assert_eq!(p.media_type, OCI_MANIFEST);
        assert_eq!(p.artifact_type.as_deref(), Some("application/x-cfg"));
        assert_eq!(
            stored_media_type(body.as_bytes()).as_deref(),
            Some(OCI_MANIFEST)
        );
        assert_eq!(stored_media_type(b"\x1f\x8b not json"), None);
        assert_eq!(stored_media_type(b"{}"), None);
        assert_eq!(
            stored_media_type(br#"{"mediaType":"text/html"}"#).as_deref(),
            Some("text/html")
        );
    }

    #[test]
    fn refuses_bad_manifests() {
        for (body, ct) in [
            ("not json", Some(OCI_MANIFEST)),
            ("[1]", Some(OCI_MANIFEST)),
            (r#"{"mediaType":"application/x-other"}"#, None),
            (
                r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
                None,
            ),
            (
                r#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"sha256:x"}]}"#,
                None,
            ),
            (
                r#"{"mediaType":"application/vnd.oci.image.index.v1+json"}"#,
                Some(OCI_MANIFEST),
            ),
        ] {
            assert!(
                matches!(
                    parse(body.as_bytes(), ct),
                    Err(RegistryError::ManifestInvalid(_))
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn accept_negotiation() {
        let a = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(accepted(&[], OCI_MANIFEST));
        assert!(accepted(&a(&["application/json, */*;q=0.1"]), OCI_MANIFEST));
        assert!(accepted(&a(&[DOCKER_MANIFEST, OCI_MANIFEST]), OCI_MANIFEST));
        assert!(!accepted(&a(&[DOCKER_MANIFEST]), OCI_MANIFEST));
    }
}
