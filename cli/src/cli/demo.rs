//! `ks3-driver demo`: what a registry asks of its storage driver on a push and a pull of an
//! image, run through the sandboxed component against an embedded local KS3 server.
//!
//! The storage layout and the order of operations are distribution's
//! (`registry/storage/paths.go`, `blobwriter.go`, `linkedblobstore.go`): each layer is
//! uploaded under `_uploads/<uuid>/data` in PATCH-sized pieces, each piece a resumed writer
//! that is closed again, then committed, moved into `blobs/sha256/<2hex>/<hex>/data` and
//! linked from the repository; the manifest is stored as a blob with revision and tag links.
//! The pull reads the tag link, the manifest, the layer links, a ranged piece of a layer and
//! a whole layer through a presigned redirect URL over plain HTTP.
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use ks3_driver::{Driver, Params, WalkControl};
use rand::Rng;
use sha2::{Digest, Sha256};

use super::progress::human;
use super::{CliError, Context};

/// `println!` that does not panic when stdout is closed (`ks3-driver demo | head`).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

const ROOT: &str = "/docker/registry/v2";
const REPO: &str = "demo/app";
const TAG: &str = "latest";
const BUCKET: &str = "registry-demo";
const REGION: &str = "ks3-cn-beijing";
const CHUNK_SIZE: u64 = 5 << 20;
/// Bytes generated and handed to the writer at a time.
const PIECE: u64 = 1 << 20;
/// Bytes of the ranged read (the registry's `fileReader` buffer size).
const RANGE: u64 = 4 << 20;
const MIB: u64 = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Small layers (about 14 MiB in all) for a quick check; the default image is about
    /// 140 MiB with a 104 MiB layer.
    #[arg(long)]
    pub quick: bool,
    /// Keep the local server running afterwards (until Ctrl-C) and print the flags that
    /// point the other commands at it.
    #[arg(long)]
    pub keep: bool,
}

/// Where a blob's bytes come from: literal bytes, or a pseudo-random stream generated on
/// demand (any range, no large allocation).
enum Content {
    Bytes(Vec<u8>),
    Generated { seed: u64, len: u64 },
}

impl Content {
    fn len(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Generated { len, .. } => *len,
        }
    }

    /// Bytes `offset..offset+len` (clamped to the content).
    fn range(&self, offset: u64, len: u64) -> Vec<u8> {
        let end = offset.saturating_add(len).min(self.len());
        let offset = offset.min(end);
        match self {
            Content::Bytes(b) => b[offset as usize..end as usize].to_vec(),
            Content::Generated { seed, .. } => generate(*seed, offset, end - offset),
        }
    }

    fn digest(&self) -> String {
        let mut h = Sha256::new();
        let mut off = 0;
        while off < self.len() {
            let piece = self.range(off, 4 * PIECE);
            h.update(&piece);
            off += piece.len() as u64;
        }
        hex(&h.finalize())
    }
}

/// Pseudo-random bytes at any offset: word `i` is splitmix64(seed + i).
fn generate(seed: u64, offset: u64, len: u64) -> Vec<u8> {
    let first = offset / 8;
    let skip = (offset % 8) as usize;
    let words = (skip as u64 + len).div_ceil(8);
    let mut out = Vec::with_capacity((words * 8) as usize);
    for i in first..first + words {
        let mut z = seed
            .wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.drain(..skip);
    out.truncate(len as usize);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:0123456789ab…`
fn short(hex: &str) -> String {
    format!("sha256:{}…", &hex[..12.min(hex.len())])
}

fn uuid() -> String {
    let mut b: [u8; 16] = rand::thread_rng().gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn time(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

fn rate(bytes: u64, d: Duration) -> String {
    let secs = d.as_secs_f64().max(1e-6);
    format!("{}/s", human((bytes as f64 / secs) as u64))
}

/// One step: operation, what, time, and the rate when bytes moved.
fn step(op: &str, what: &str, took: Duration, bytes: Option<u64>) {
    let r = bytes
        .map(|b| format!("  {}", rate(b, took)))
        .unwrap_or_default();
    say!("  {op:<12} {what:<64} {:>9}{r}", time(took));
}

fn repo_path(rest: &str) -> String {
    format!("{ROOT}/repositories/{REPO}/{rest}")
}

fn blob_path(hex: &str) -> String {
    format!("{ROOT}/blobs/sha256/{}/{hex}/data", &hex[..2])
}

/// `…/repositories/demo/app/x` → `x`, `…/blobs/y` → `blobs/y`, for display.
fn shown(path: &str) -> String {
    let repo = format!("{ROOT}/repositories/{REPO}/");
    if let Some(rest) = path.strip_prefix(&repo) {
        return rest.to_string();
    }
    path.strip_prefix(&format!("{ROOT}/"))
        .unwrap_or(path)
        .to_string()
}

/// Shortens long hex runs in a displayed path.
fn compact(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.len() > 16 && seg.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-') {
                format!("{}…", &seg[..8])
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn d(path: &str) -> String {
    compact(&shown(path))
}

struct Stats {
    up: u64,
    down: u64,
}

fn failed(what: impl Into<String>) -> CliError {
    CliError::Other(format!("demo: {}", what.into()))
}

pub async fn run(ctx: &Context, args: &DemoArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let ak = format!("AKLTdemo{}", random_token(16));
    let sk = random_token(40);
    let server = ks3_local::start_in_background(ks3_local::ServerConfig::memory(BUCKET, &ak, &sk))
        .map_err(|e| failed(format!("cannot start the local KS3 server: {e:#}")))?;
    let endpoint = server.endpoint();
    say!("ks3-driver demo: a registry push and pull through the sandboxed KS3 driver component");
    say!(
        "local KS3 server {endpoint} (in memory), bucket {BUCKET}, chunksize {}",
        human(CHUNK_SIZE)
    );

    let mut params = Params::new();
    for (k, v) in [
        ("accesskey", ak.as_str()),
        ("secretkey", sk.as_str()),
        ("region", REGION),
        ("bucket", BUCKET),
        ("regionendpoint", endpoint.as_str()),
        ("chunksize", &CHUNK_SIZE.to_string()),
    ] {
        params.insert(k.to_string(), v.to_string());
    }
    let t = Instant::now();
    let runtime = ctx.runtime()?;
    let driver = Driver::with_runtime(&runtime, params.clone())
        .await
        .map_err(|e| failed(format!("the driver did not start: {e}")))?;
    say!(
        "driver component loaded and configured in {}",
        time(t.elapsed())
    );

    let (sizes, patch): (&[u64], u64) = if args.quick {
        (&[300 * 1024 + 7, 2 * MIB + 1, 11 * MIB + 3], CHUNK_SIZE)
    } else {
        (
            &[
                2 * MIB + 123,
                7 * MIB + 45,
                24 * MIB + 6789,
                104 * MIB + 321,
            ],
            4 * CHUNK_SIZE,
        )
    };
    let layers: Vec<Content> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| Content::Generated {
            seed: 0x6b73_3364_656d_6f00 + i as u64,
            len,
        })
        .collect();
    let t = Instant::now();
    let layer_digests: Vec<String> = layers.iter().map(Content::digest).collect();
    let config_blob = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/demo"]},
        "rootfs": {"type": "layers", "diff_ids": layer_digests.iter().map(|d| format!("sha256:{d}")).collect::<Vec<_>>()},
    })
    .to_string()
    .into_bytes();
    let config = Content::Bytes(config_blob);
    let config_digest = config.digest();
    let total: u64 = sizes.iter().sum::<u64>() + config.len();
    say!(
        "image {REPO}:{TAG}: {} layers ({}) and a config blob, digests computed in {}",
        layers.len(),
        human(total - config.len()),
        time(t.elapsed())
    );

    let mut stats = Stats { up: 0, down: 0 };
    let push_started = Instant::now();
    say!("\npush {REPO}:{TAG}");
    for (i, layer) in layers.iter().enumerate() {
        say!(
            "layer {}/{} {} ({})",
            i + 1,
            layers.len(),
            short(&layer_digests[i]),
            human(layer.len())
        );
        push_blob(&driver, layer, &layer_digests[i], patch, &mut stats).await?;
    }
    say!("config {} ({})", short(&config_digest), human(config.len()));
    push_blob(&driver, &config, &config_digest, patch, &mut stats).await?;

    // The manifest: stored as a blob directly, then the revision and tag links.
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": config.len(),
            "digest": format!("sha256:{config_digest}"),
        },
        "layers": layers.iter().zip(&layer_digests).map(|(l, d)| serde_json::json!({
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": l.len(),
            "digest": format!("sha256:{d}"),
        })).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes();
    let manifest_digest = hex(&Sha256::digest(&manifest));
    say!(
        "manifest {} ({})",
        short(&manifest_digest),
        human(manifest.len() as u64)
    );
    let mpath = blob_path(&manifest_digest);
    let t = Instant::now();
    match driver.stat(&mpath).await {
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(CliError::driver("stat", &mpath, e)),
        Ok(_) => return Err(failed("the manifest blob exists before it was pushed")),
    }
    step(
        "stat",
        &format!("{} → not found", d(&mpath)),
        t.elapsed(),
        None,
    );
    let link = format!("sha256:{manifest_digest}");
    let revision_link = repo_path(&format!(
        "_manifests/revisions/sha256/{manifest_digest}/link"
    ));
    let index_link = repo_path(&format!(
        "_manifests/tags/{TAG}/index/sha256/{manifest_digest}/link"
    ));
    let current_link = repo_path(&format!("_manifests/tags/{TAG}/current/link"));
    for (path, content) in [
        (&mpath, manifest.as_slice()),
        (&revision_link, link.as_bytes()),
        (&index_link, link.as_bytes()),
        (&current_link, link.as_bytes()),
    ] {
        let t = Instant::now();
        driver
            .put_content(path, content)
            .await
            .map_err(|e| CliError::driver("put-content", path, e))?;
        stats.up += content.len() as u64;
        step("put-content", &d(path), t.elapsed(), None);
    }
    let push_took = push_started.elapsed();
    say!("pushed in {} ({})", time(push_took), rate(total, push_took));

    // Pull.
    let pull_started = Instant::now();
    say!("\npull {REPO}:{TAG}");
    let t = Instant::now();
    let got = get_content(&driver, &current_link).await?;
    if got != link.as_bytes() {
        return Err(failed("the tag link does not name the manifest"));
    }
    step(
        "get-content",
        &format!("{} → {}", d(&current_link), short(&manifest_digest)),
        t.elapsed(),
        None,
    );
    let t = Instant::now();
    get_content(&driver, &revision_link).await?;
    let info = driver
        .stat(&mpath)
        .await
        .map_err(|e| CliError::driver("stat", &mpath, e))?;
    step(
        "stat",
        &format!("{} via its revision link: {} B", d(&mpath), info.size),
        t.elapsed(),
        None,
    );
    let t = Instant::now();
    let mut reader = driver
        .reader(&mpath, 0)
        .await
        .map_err(|e| CliError::driver("reader", &mpath, e))?;
    let body = reader
        .read_to_end()
        .await
        .map_err(|e| CliError::driver("read", &mpath, e))?;
    stats.down += body.len() as u64;
    if hex(&Sha256::digest(&body)) != manifest_digest {
        return Err(failed("the manifest read back does not match its digest"));
    }
    let parsed: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| failed(format!("the manifest read back is not JSON: {e}")))?;
    let n_layers = parsed["layers"].as_array().map_or(0, Vec::len);
    step(
        "reader",
        &format!("manifest, digest verified, {n_layers} layers"),
        t.elapsed(),
        None,
    );
    for (i, digest) in layer_digests.iter().enumerate() {
        let t = Instant::now();
        let link_path = repo_path(&format!("_layers/sha256/{digest}/link"));
        let target = get_content(&driver, &link_path).await?;
        if target != format!("sha256:{digest}").as_bytes() {
            return Err(failed(format!("the link of layer {} is wrong", i + 1)));
        }
        let path = blob_path(digest);
        let info = driver
            .stat(&path)
            .await
            .map_err(|e| CliError::driver("stat", &path, e))?;
        if info.size != layers[i].len() {
            return Err(failed(format!(
                "layer {} has {} bytes, expected {}",
                i + 1,
                info.size,
                layers[i].len()
            )));
        }
        step(
            "stat",
            &format!(
                "layer {} via {}: {}",
                i + 1,
                d(&link_path),
                human(info.size)
            ),
            t.elapsed(),
            None,
        );
    }

    // A ranged read, as a registry serving a Range request without redirects does.
    let ri = layers.len().saturating_sub(2);
    let layer = &layers[ri];
    let path = blob_path(&layer_digests[ri]);
    let offset = layer.len() / 2 + 12_345;
    let want = RANGE.min(layer.len().saturating_sub(offset));
    let t = Instant::now();
    let mut reader = driver
        .reader(&path, offset as i64)
        .await
        .map_err(|e| CliError::driver("reader", &path, e))?;
    let mut got = Vec::with_capacity(want as usize);
    while (got.len() as u64) < want {
        let chunk = reader
            .read((want - got.len() as u64) as usize)
            .await
            .map_err(|e| CliError::driver("read", &path, e))?;
        if chunk.is_empty() {
            break;
        }
        got.extend_from_slice(&chunk);
    }
    stats.down += got.len() as u64;
    if got != layer.range(offset, want) {
        return Err(failed(format!(
            "the ranged read of layer {} returned other bytes",
            ri + 1
        )));
    }
    step(
        "reader",
        &format!(
            "layer {} at offset {offset}: {} read, bytes verified",
            ri + 1,
            human(want)
        ),
        t.elapsed(),
        Some(want),
    );

    // The default blob GET: a redirect to a presigned URL the client fetches itself.
    let bi = layers.len() - 1;
    let path = blob_path(&layer_digests[bi]);
    let t = Instant::now();
    let url = driver
        .redirect_url("GET", &path)
        .await
        .map_err(|e| CliError::driver("redirect-url", &path, e))?
        .ok_or_else(|| failed("the driver gave no redirect URL"))?;
    let host_end = url.find('?').unwrap_or(url.len()).min(endpoint.len() + 24);
    step(
        "redirect-url",
        &format!("layer {}: {}…", bi + 1, &url[..host_end]),
        t.elapsed(),
        None,
    );
    let t = Instant::now();
    let (status, n, digest) = fetch(&url)
        .await
        .map_err(|e| failed(format!("fetching the redirect URL: {e}")))?;
    if status != 200 || n != layers[bi].len() || digest != layer_digests[bi] {
        return Err(failed(format!(
            "the redirect URL answered HTTP {status} with {n} bytes (expected 200 with {} bytes, sha256 {})",
            layers[bi].len(),
            short(&layer_digests[bi])
        )));
    }
    stats.down += n;
    step(
        "http GET",
        &format!("presigned URL: HTTP 200, {}, sha256 verified", human(n)),
        t.elapsed(),
        Some(n),
    );
    say!("pulled in {}", time(pull_started.elapsed()));

    // The catalog: a walk of the repositories, skipping every `_*` directory.
    say!("\ncatalog and clean-up");
    let repos_root = format!("{ROOT}/repositories");
    let t = Instant::now();
    let mut repos = Vec::new();
    let mut visited = 0u64;
    driver
        .walk(&repos_root, None, |info| {
            visited += 1;
            let name = info.path.rsplit('/').next().unwrap_or("");
            if info.is_dir && name.starts_with('_') {
                if name == "_manifests" {
                    let parent = info.path.rsplit_once('/').map_or("", |(p, _)| p);
                    repos.push(
                        parent
                            .strip_prefix(&format!("{repos_root}/"))
                            .unwrap_or(parent)
                            .to_string(),
                    );
                }
                return Ok(WalkControl::SkipDir);
            }
            Ok(WalkControl::Continue)
        })
        .await
        .map_err(|e| CliError::driver("walk", &repos_root, e))?;
    step(
        "walk",
        &format!(
            "repositories: {visited} entries, found {}",
            repos.join(", ")
        ),
        t.elapsed(),
        None,
    );
    if repos != [REPO] {
        return Err(failed(format!("the catalog walk found {repos:?}")));
    }
    let uploads = repo_path("_uploads");
    let t = Instant::now();
    match driver.stat(&uploads).await {
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(CliError::driver("stat", &uploads, e)),
        Ok(_) => return Err(failed("upload directories were left behind")),
    }
    step(
        "stat",
        &format!("{} → not found: every upload was cleaned up", d(&uploads)),
        t.elapsed(),
        None,
    );

    let t = Instant::now();
    let (mut objects, mut stored) = (0u64, 0u64);
    driver
        .walk(ROOT, None, |info| {
            if !info.is_dir {
                objects += 1;
                stored += info.size;
            }
            Ok(WalkControl::Continue)
        })
        .await
        .map_err(|e| CliError::driver("walk", ROOT, e))?;
    step(
        "walk",
        &format!("{ROOT}: {objects} objects, {}", human(stored)),
        t.elapsed(),
        None,
    );

    let took = started.elapsed();
    let moved = stats.up + stats.down;
    say!(
        "\ndemo done: {REPO}:{TAG} pushed and pulled; {objects} objects ({}) stored, {} uploaded, {} downloaded, {} KS3 requests in {} ({} through the driver)",
        human(stored),
        human(stats.up),
        human(stats.down),
        server.request_count(),
        time(took),
        rate(moved, took),
    );

    if args.keep {
        say!("\nthe local server keeps running until Ctrl-C; point the other commands at it:");
        let flags: Vec<String> = params
            .iter()
            .filter(|(k, _)| k.as_str() != "chunksize")
            .map(|(k, v)| format!("-p {k}={v}"))
            .collect();
        say!("  ks3-driver {} walk {ROOT}", flags.join(" "));
        let _ = std::io::Write::flush(&mut std::io::stdout());
        ks3_local::wait_for_signal().await;
    }
    drop(server);
    Ok(())
}

async fn get_content(driver: &Driver, path: &str) -> Result<Vec<u8>, CliError> {
    driver
        .get_content(path)
        .await
        .map_err(|e| CliError::driver("get-content", path, e))
}

/// One blob, the way distribution's upload handlers drive the storage driver.
async fn push_blob(
    driver: &Driver,
    content: &Content,
    digest: &str,
    patch: u64,
    stats: &mut Stats,
) -> Result<(), CliError> {
    let link = repo_path(&format!("_layers/sha256/{digest}/link"));
    // HEAD /v2/<name>/blobs/<digest>: the client checks the blob is not there yet.
    let t = Instant::now();
    match driver.get_content(&link).await {
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(CliError::driver("get-content", &link, e)),
        Ok(_) => return Err(failed("the layer link exists before the push")),
    }
    step(
        "get-content",
        &format!("{} → not found", d(&link)),
        t.elapsed(),
        None,
    );

    // POST …/blobs/uploads/: startedat, a new writer, closed at the end of the request.
    let id = uuid();
    let dir = repo_path(&format!("_uploads/{id}"));
    let startedat = format!("{dir}/startedat");
    let data = format!("{dir}/data");
    let t = Instant::now();
    let now = super::object::rfc3339(std::time::SystemTime::now());
    driver
        .put_content(&startedat, now.as_bytes())
        .await
        .map_err(|e| CliError::driver("put-content", &startedat, e))?;
    let mut w = driver
        .writer(&data, false)
        .await
        .map_err(|e| CliError::driver("writer", &data, e))?;
    w.close()
        .await
        .map_err(|e| CliError::driver("close", &data, e))?;
    step(
        "start",
        &format!("put-content {}, writer, close", d(&startedat)),
        t.elapsed(),
        None,
    );

    // PATCH …: each one resumes the writer, appends, and closes it again.
    let len = content.len();
    let patches = len.div_ceil(patch).max(1);
    let mut sent = 0u64;
    for p in 0..patches {
        let t = Instant::now();
        get_content(driver, &startedat).await?;
        let mut w = driver
            .writer(&data, true)
            .await
            .map_err(|e| CliError::driver("writer", &data, e))?;
        if w.size() != sent {
            return Err(failed(format!(
                "the resumed upload has {} bytes, the registry sent {sent}",
                w.size()
            )));
        }
        let end = (sent + patch).min(len);
        let mut off = sent;
        while off < end {
            let piece = content.range(off, PIECE.min(end - off));
            w.write(&piece)
                .await
                .map_err(|e| CliError::driver("write", &data, e))?;
            off += piece.len() as u64;
        }
        w.close()
            .await
            .map_err(|e| CliError::driver("close", &data, e))?;
        let n = end - sent;
        sent = end;
        stats.up += n;
        step(
            &format!("patch {}/{patches}", p + 1),
            &format!("resume at {}, write {}, close", human(sent - n), human(n)),
            t.elapsed(),
            Some(n),
        );
    }

    // PUT …?digest=: resume, commit, validate, move into the blob store, link, clean up.
    let t = Instant::now();
    let mut w = driver
        .writer(&data, true)
        .await
        .map_err(|e| CliError::driver("writer", &data, e))?;
    if w.size() != len {
        return Err(failed(format!(
            "the upload has {} bytes before commit, expected {len}",
            w.size()
        )));
    }
    w.commit()
        .await
        .map_err(|e| CliError::driver("commit", &data, e))?;
    step(
        "commit",
        &format!("{} ({})", d(&data), human(len)),
        t.elapsed(),
        None,
    );
    let t = Instant::now();
    let info = driver
        .stat(&data)
        .await
        .map_err(|e| CliError::driver("stat", &data, e))?;
    if info.size != len || info.is_dir {
        return Err(failed(format!(
            "the committed upload has {} bytes, expected {len}",
            info.size
        )));
    }
    let blob = blob_path(digest);
    match driver.stat(&blob).await {
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(CliError::driver("stat", &blob, e)),
        Ok(_) => return Err(failed("the blob exists before it was moved in")),
    }
    step(
        "stat",
        &format!("upload {}, {} → not found", human(info.size), d(&blob)),
        t.elapsed(),
        None,
    );
    let t = Instant::now();
    driver
        .mv(&data, &blob)
        .await
        .map_err(|e| CliError::driver("move", &data, e))?;
    step("move", &format!("→ {}", d(&blob)), t.elapsed(), Some(len));
    let t = Instant::now();
    let target = format!("sha256:{digest}");
    driver
        .put_content(&link, target.as_bytes())
        .await
        .map_err(|e| CliError::driver("put-content", &link, e))?;
    step("put-content", &d(&link), t.elapsed(), None);
    let t = Instant::now();
    driver
        .delete(&dir)
        .await
        .map_err(|e| CliError::driver("delete", &dir, e))?;
    step("delete", &d(&dir), t.elapsed(), None);
    Ok(())
}

/// GETs `url` over plain HTTP: status, body length and SHA-256 (streamed).
async fn fetch(url: &str) -> Result<(u16, u64, String), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let resp = client.get(uri).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut h = Sha256::new();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Ok(data) = frame.into_data() {
            h.update(&data);
            n += data.len() as u64;
        }
    }
    Ok((status, n, hex(&h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ranges_agree() {
        let c = Content::Generated { seed: 7, len: 1000 };
        let all = c.range(0, 1000);
        assert_eq!(all.len(), 1000);
        for (o, l) in [(0, 1), (3, 17), (8, 8), (999, 5), (13, 987)] {
            let r = c.range(o, l);
            let end = (o + l).min(1000) as usize;
            assert_eq!(r, all[o as usize..end], "{o} {l}");
        }
        assert!(c.range(2000, 5).is_empty());
        assert_ne!(generate(1, 0, 64), generate(2, 0, 64));
    }

    #[test]
    fn display_helpers() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(
            d(&repo_path("_uploads/0123456789abcdef0123/startedat")),
            "_uploads/01234567…/startedat"
        );
        assert_eq!(
            compact("blobs/sha256/ab/abcdef0123456789abcdef/data"),
            "blobs/sha256/ab/abcdef01…/data"
        );
        assert_eq!(time(Duration::from_millis(1500)), "1.50 s");
    }
}
