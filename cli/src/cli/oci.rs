//! The component as an OCI artifact, in the CNCF TAG Runtime "Wasm OCI Artifact layout":
//! an image manifest whose config is `application/vnd.wasm.config.v0+json` and whose one
//! layer is the component (`application/wasm`). `component push` writes it;
//! `--component oci://REF` reads it into the cache and hands the host a file.
//!
//! The cache is `<cache>/oci/sha256/` under the compiled-component cache's directory
//! (`KS3_DRIVER_CACHE_DIR`, else `$XDG_CACHE_HOME/ks3-driver`, else `~/.cache/ks3-driver`)
//! with its trust rules: directories the current user owns that group and others cannot
//! write (created 0700), regular files opened without following symlinks, owned by the
//! user, not writable by group or others (written 0600 under a temporary name, then
//! renamed). `<digest>.manifest.json` is a manifest, `<digest>.wasm` a component, each
//! named by the SHA-256 of its bytes and checked against it at every read; so a
//! reference pinned by digest whose files are there is loaded without any network.
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The largest manifest read (the registry's own limit is 4 MiB).
const MAX_MANIFEST: usize = 4 << 20;
/// The largest component pulled (the KS3 component is under 1 MiB).
const MAX_COMPONENT: u64 = 256 << 20;

/// `sha256:` and the hex SHA-256 of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The hex of a `sha256:<64 lowercase hex>` digest, or why not.
fn sha256_hex(digest: &str) -> Result<&str, String> {
    let h = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("digest `{digest}`: only sha256 digests are supported"))?;
    if h.len() != 64
        || !h
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return Err(format!(
            "digest `{digest}`: not `sha256:` and 64 lowercase hex digits"
        ));
    }
    Ok(h)
}

/// Parses `REF` (`HOST[:PORT]/REPO[:TAG][@sha256:…]`).
pub fn parse_reference(text: &str) -> Result<Reference, String> {
    let r: Reference = text
        .parse()
        .map_err(|e| format!("bad OCI reference `{text}`: {e}"))?;
    if let Some(d) = r.digest() {
        sha256_hex(d).map_err(|e| format!("bad OCI reference `{text}`: {e}"))?;
    }
    Ok(r)
}

/// Whether the registry `host[:port]` is on loopback (127.0.0.0/8, ::1, `localhost`).
fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Plain HTTP for loopback registries (as Docker does) and for those named in
/// `insecure`; HTTPS for every other.
pub fn client_for(reference: &Reference, insecure: &[String]) -> Client {
    // oci-client's HTTP client needs a process-wide rustls provider, even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = reference.resolve_registry();
    let plain = is_loopback(registry) || insecure.iter().any(|i| i.eq_ignore_ascii_case(registry));
    Client::new(ClientConfig {
        protocol: if plain {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        ..ClientConfig::default()
    })
}

/// The credentials of the Docker config (`$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`: `auths.<registry>.auth`, base64 of `user:password`) for the
/// reference's registry; anonymous when there are none. The credentials are never
/// printed; an unreadable config is reported without its content.
pub fn auth_for(reference: &Reference) -> Result<RegistryAuth, String> {
    let path = match std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("config.json"),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".docker").join("config.json"),
            None => return Ok(RegistryAuth::Anonymous),
        },
    };
    auth_from(&path, reference)
}

/// [`auth_for`] with the Docker config at `path`.
fn auth_from(path: &Path, reference: &Reference) -> Result<RegistryAuth, String> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegistryAuth::Anonymous),
        Err(e) => return Err(format!("Docker config {}: {e}", path.display())),
    };
    let doc: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|_| format!("Docker config {}: not valid JSON", path.display()))?;
    let wanted = reference.resolve_registry();
    let registry = reference.registry();
    let Some(auths) = doc.get("auths").and_then(|a| a.as_object()) else {
        return Ok(RegistryAuth::Anonymous);
    };
    for (key, entry) in auths {
        // Keys are `host[:port]`, or URLs (`https://index.docker.io/v1/`).
        let host = key
            .strip_prefix("https://")
            .or_else(|| key.strip_prefix("http://"))
            .unwrap_or(key);
        let host = host.split('/').next().unwrap_or(host);
        if !(host.eq_ignore_ascii_case(wanted) || host.eq_ignore_ascii_case(registry)) {
            continue;
        }
        let Some(encoded) = entry.get("auth").and_then(|a| a.as_str()) else {
            continue;
        };
        use base64::Engine as _;
        let bad = || {
            format!(
                "Docker config {}: auths.{key}.auth is not base64 of user:password",
                path.display()
            )
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, pass) = decoded.split_once(':').ok_or_else(bad)?;
        return Ok(RegistryAuth::Basic(user.to_string(), pass.to_string()));
    }
    Ok(RegistryAuth::Anonymous)
}

/// The OCI cache directory (`<cache>/oci/sha256`), created 0700, after the trust checks
/// (the compiled-component cache's directory and rules: `ks3_driver_host::cache_dir`).
fn cache_dir() -> Result<PathBuf, String> {
    let root = ks3_driver_host::cache_dir(None).ok_or_else(|| {
        "--component oci://…: the component cache is disabled (KS3_DRIVER_CACHE_DIR=off) or \
         has no place (no HOME): set KS3_DRIVER_CACHE_DIR to a directory"
            .to_string()
    })?;
    let dir = root.join("oci").join("sha256");
    let check = |dirs: [&Path; 3]| {
        dirs.into_iter().try_for_each(|d| {
            ks3_driver_host::check_private_dir(d)
                .map_err(|why| format!("not using the component cache {}: {why}", d.display()))
        })
    };
    let oci = root.join("oci");
    check([&root, &oci, &dir])?;
    ks3_driver_host::create_private_dir(&dir)
        .map_err(|e| format!("component cache {}: {e}", dir.display()))?;
    check([&root, &oci, &dir])?;
    Ok(dir)
}

/// The bytes of a cache file, when it is trusted (`ks3_driver_host::read_private_file`)
/// and its SHA-256 is `hex_digest`.
fn read_cached(path: &Path, hex_digest: &str) -> Option<Vec<u8>> {
    let bytes = ks3_driver_host::read_private_file(path).ok()?;
    (hex(&Sha256::digest(&bytes)) == hex_digest).then_some(bytes)
}

/// Writes `bytes` to `path` (0600, through a temporary name in the same directory).
fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    ks3_driver_host::write_private_file(dir, path, &[bytes])
}

/// The one `application/wasm` layer of a wasm artifact manifest: its digest and size.
fn wasm_layer(manifest: &[u8], what: &str) -> Result<(String, u64), String> {
    let doc: serde_json::Value = serde_json::from_slice(manifest)
        .map_err(|e| format!("{what}: the manifest is not JSON: {e}"))?;
    if doc.get("schemaVersion").and_then(|v| v.as_u64()) != Some(2) {
        return Err(format!(
            "{what}: not an OCI image manifest (schemaVersion is not 2)"
        ));
    }
    if let Some(mt) = doc.get("mediaType").and_then(|v| v.as_str()) {
        if mt != MANIFEST_MEDIA_TYPE {
            return Err(format!(
                "{what}: manifest media type `{mt}`, not `{MANIFEST_MEDIA_TYPE}` (an index or \
                 another kind of manifest is not a wasm component artifact)"
            ));
        }
    }
    let config_type = doc
        .pointer("/config/mediaType")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if config_type != CONFIG_MEDIA_TYPE {
        return Err(format!(
            "{what}: config media type `{config_type}`, not `{CONFIG_MEDIA_TYPE}`: not a wasm \
             component artifact"
        ));
    }
    let layers = doc
        .get("layers")
        .and_then(|v| v.as_array())
        .ok_or_else(|| format!("{what}: the manifest has no layers"))?;
    let wasm: Vec<&serde_json::Value> = layers
        .iter()
        .filter(|l| l.get("mediaType").and_then(|m| m.as_str()) == Some(LAYER_MEDIA_TYPE))
        .collect();
    match wasm.as_slice() {
        [one] => {
            let digest = one
                .get("digest")
                .and_then(|d| d.as_str())
                .ok_or_else(|| format!("{what}: the wasm layer has no digest"))?;
            sha256_hex(digest).map_err(|e| format!("{what}: the wasm layer's {e}"))?;
            let size = one
                .get("size")
                .and_then(|s| s.as_u64())
                .ok_or_else(|| format!("{what}: the wasm layer has no size"))?;
            if size > MAX_COMPONENT {
                return Err(format!(
                    "{what}: the wasm layer is {size} bytes, more than the {MAX_COMPONENT} \
                     accepted"
                ));
            }
            Ok((digest.to_string(), size))
        }
        [] => {
            let found: Vec<&str> = layers
                .iter()
                .map(|l| l.get("mediaType").and_then(|m| m.as_str()).unwrap_or("?"))
                .collect();
            Err(format!(
                "{what}: no `{LAYER_MEDIA_TYPE}` layer (layers: {found:?})"
            ))
        }
        many => Err(format!(
            "{what}: {} `{LAYER_MEDIA_TYPE}` layers; a component artifact has one",
            many.len()
        )),
    }
}

/// Resolves `oci://REF` to the cached component file: from the cache alone when `REF` is
/// pinned by digest and its files are there, else pulled (and checked, and cached).
/// Without a digest, one warning on stderr names the digest to pin.
pub async fn resolve(spec: &str, insecure: &[String]) -> Result<PathBuf, String> {
    let text = spec
        .strip_prefix("oci://")
        .ok_or_else(|| format!("`{spec}` is not an oci:// reference"))?;
    let reference = parse_reference(text)?;
    let what = format!("oci://{text}");
    let dir = cache_dir()?;
    if let Some(pinned) = reference.digest() {
        let mhex = sha256_hex(pinned)?;
        if let Some(manifest) = read_cached(&dir.join(format!("{mhex}.manifest.json")), mhex) {
            if let Ok((layer, _)) = wasm_layer(&manifest, &what) {
                let lhex = sha256_hex(&layer)?;
                let path = dir.join(format!("{lhex}.wasm"));
                if read_cached(&path, lhex).is_some() {
                    return Ok(path);
                }
            }
        }
    }

    let client = client_for(&reference, insecure);
    let auth = auth_for(&reference)?;
    let (manifest, _) = client
        .pull_manifest_raw(&reference, &auth, &[MANIFEST_MEDIA_TYPE])
        .await
        .map_err(|e| format!("{what}: pulling the manifest: {e}"))?;
    if manifest.len() > MAX_MANIFEST {
        return Err(format!(
            "{what}: the manifest is larger than {MAX_MANIFEST} bytes"
        ));
    }
    let manifest_digest = digest_of(&manifest);
    if let Some(pinned) = reference.digest() {
        if pinned != manifest_digest {
            return Err(format!(
                "{what}: the registry's manifest has digest {manifest_digest}, not the pinned \
                 {pinned}: refused"
            ));
        }
    }
    let (layer, size) = wasm_layer(&manifest, &what)?;
    let lhex = sha256_hex(&layer)?.to_string();
    let path = dir.join(format!("{lhex}.wasm"));
    if read_cached(&path, &lhex).is_none() {
        let descriptor = oci_client::manifest::OciDescriptor {
            media_type: LAYER_MEDIA_TYPE.to_string(),
            digest: layer.clone(),
            size: size as i64,
            ..Default::default()
        };
        let mut bytes: Vec<u8> = Vec::new();
        client
            .pull_blob(&reference, &descriptor, &mut bytes)
            .await
            .map_err(|e| format!("{what}: pulling the component {layer}: {e}"))?;
        if bytes.len() as u64 != size {
            return Err(format!(
                "{what}: the component is {} bytes, the manifest says {size}: refused",
                bytes.len()
            ));
        }
        let got = digest_of(&bytes);
        if got != layer {
            return Err(format!(
                "{what}: the component's digest is {got}, the manifest says {layer}: refused"
            ));
        }
        store(&path, &bytes).map_err(|e| format!("component cache {}: {e}", path.display()))?;
    }
    let mhex = sha256_hex(&manifest_digest)?;
    store(&dir.join(format!("{mhex}.manifest.json")), &manifest)
        .map_err(|e| format!("component cache {}: {e}", dir.display()))?;
    if reference.digest().is_none() {
        let _ = writeln!(
            std::io::stderr(),
            "ks3-driver: warning: {what} is not pinned to a digest (what it names can change); \
             pin it: oci://{}/{}@{manifest_digest}",
            reference.registry(),
            reference.repository()
        );
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries() {
        for r in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost:80",
            "LOCALHOST",
            "[::1]:5000",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "10.0.0.1:5000",
            "registry.example",
            "localhost.example:5000",
            "[::2]:1",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
    }

    #[test]
    fn the_one_wasm_layer() {
        let m = |config: &str, layers: &str| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_MEDIA_TYPE}","config":{{"mediaType":"{config}","digest":"sha256:{z}","size":2}},"layers":[{layers}]}}"#,
                z = "0".repeat(64)
            )
        };
        let layer = |mt: &str| {
            format!(
                r#"{{"mediaType":"{mt}","digest":"sha256:{}","size":8}}"#,
                "a".repeat(64)
            )
        };
        let ok = m(CONFIG_MEDIA_TYPE, &layer(LAYER_MEDIA_TYPE));
        assert_eq!(
            wasm_layer(ok.as_bytes(), "x").unwrap(),
            (format!("sha256:{}", "a".repeat(64)), 8)
        );
        let two = m(
            CONFIG_MEDIA_TYPE,
            &format!("{},{}", layer(LAYER_MEDIA_TYPE), layer(LAYER_MEDIA_TYPE)),
        );
        assert!(wasm_layer(two.as_bytes(), "x")
            .unwrap_err()
            .contains("2 `application/wasm` layers"));
        let none = m(
            CONFIG_MEDIA_TYPE,
            &layer("application/vnd.oci.image.layer.v1.tar"),
        );
        assert!(wasm_layer(none.as_bytes(), "x")
            .unwrap_err()
            .contains("no `application/wasm` layer"));
        let image = m(
            "application/vnd.oci.image.config.v1+json",
            &layer(LAYER_MEDIA_TYPE),
        );
        assert!(wasm_layer(image.as_bytes(), "x")
            .unwrap_err()
            .contains("config media type"));
        assert!(wasm_layer(b"{", "x").is_err());
        assert!(wasm_layer(b"[]", "x").is_err());
    }

    #[test]
    fn docker_config_credentials() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            &path,
            serde_json::json!({"auths": {
                "127.0.0.1:5000": {"auth": b64("alice:pa:ss")},
                "https://index.docker.io/v1/": {"auth": b64("bob:hub")},
                "bad.example": {"auth": "%%%"},
                "nocolon.example": {"auth": b64("justuser")},
            }})
            .to_string(),
        )
        .unwrap();
        let auth = |r: &str| auth_from(&path, &parse_reference(r).unwrap());
        let basic = |u: &str, p: &str| RegistryAuth::Basic(u.into(), p.into());
        assert_eq!(auth("127.0.0.1:5000/a:1").unwrap(), basic("alice", "pa:ss"));
        assert_eq!(auth("library/busybox:1").unwrap(), basic("bob", "hub"));
        assert_eq!(auth("127.0.0.1:5001/a:1").unwrap(), RegistryAuth::Anonymous);
        for r in ["bad.example/a:1", "nocolon.example/a:1"] {
            let e = auth(r).unwrap_err();
            assert!(e.contains("is not base64 of user:password"), "{e}");
            assert!(!e.contains("justuser") && !e.contains("%%%"), "{e}");
        }
        assert_eq!(
            auth_from(
                &dir.path().join("absent.json"),
                &parse_reference("x/y:1").unwrap()
            )
            .unwrap(),
            RegistryAuth::Anonymous
        );
        std::fs::write(&path, "{not json").unwrap();
        assert!(auth("127.0.0.1:5000/a:1")
            .unwrap_err()
            .contains("not valid JSON"));
    }

    #[test]
    fn references() {
        assert!(parse_reference("127.0.0.1:5000/repo:v1").is_ok());
        assert!(parse_reference(&format!("127.0.0.1:5000/repo@sha256:{}", "a".repeat(64))).is_ok());
        assert!(parse_reference("127.0.0.1:5000/repo@sha256:abc").is_err());
        assert!(parse_reference("UPPER/Case:!").is_err());
        assert!(parse_reference("").is_err());
    }
}
