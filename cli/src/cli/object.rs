//! The data commands: get, put, stat, ls, walk, mv, rm, url, du.
use std::io::ErrorKind;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use ks3_driver_host::{FileInfo, WalkControl};
use std::io::Write as _;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::progress::{human, Progress};
use super::{out_line, CliError, Context};

/// Bytes moved per read/write call when streaming.
const CHUNK: usize = 1 << 20;

/// RFC 3339 (UTC, milliseconds).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let nanos = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    ks3_proto::date::iso8601(nanos)
}

/// `{"path","size","modtime","isdir"}`.
pub fn info_json(info: &FileInfo) -> serde_json::Value {
    serde_json::json!({
        "path": info.path,
        "size": info.size,
        "modtime": rfc3339(info.mod_time),
        "isdir": info.is_dir,
    })
}

pub async fn get(
    ctx: &Context,
    path: &str,
    offset: i64,
    output: Option<&Path>,
) -> Result<(), CliError> {
    let driver = ctx.driver().await?;
    let mut progress = if super::progress::enabled() {
        match driver.stat(path).await {
            Ok(i) if !i.is_dir => Progress::start(
                &format!("get {path}"),
                Some(i.size.saturating_sub(offset.max(0) as u64)),
            ),
            _ => None,
        }
    } else {
        None
    };
    let mut reader = driver
        .reader(path, offset)
        .await
        .map_err(|e| CliError::driver("get", path, e))?;
    // Written synchronously, on this (single-threaded) runtime's thread, as curl does:
    // tokio's stdout and files hand every write to a blocking thread (a copy and two
    // thread wake-ups per chunk: a sixth of a 512 MiB get's time). A slow consumer holds
    // the download back either way.
    let (mut out, dest): (Box<dyn std::io::Write + Send>, String) = match output {
        Some(f) => (
            Box::new(
                std::fs::File::create(f)
                    .map_err(|e| CliError::Usage(format!("cannot create {}: {e}", f.display())))?,
            ),
            f.display().to_string(),
        ),
        None => (Box::new(std::io::stdout()), "stdout".to_string()),
    };
    let result = async {
        loop {
            let chunk = reader
                .read_bytes(CHUNK)
                .await
                .map_err(|e| CliError::driver("get", path, e))?;
            if chunk.is_empty() {
                break;
            }
            match out.write_all(&chunk) {
                Ok(()) => {}
                // `ks3-driver get … | head`: the reader went away; that is not an error.
                Err(e) if e.kind() == ErrorKind::BrokenPipe => return Err(CliError::Closed),
                Err(e) => return Err(CliError::Other(format!("get {path}: writing {dest}: {e}"))),
            }
            if let Some(p) = progress.as_mut() {
                p.add(chunk.len() as u64);
            }
        }
        match out.flush() {
            Err(e) if e.kind() != ErrorKind::BrokenPipe => {
                Err(CliError::Other(format!("get {path}: writing {dest}: {e}")))
            }
            _ => Ok(()),
        }
    }
    .await;
    if let Some(p) = progress {
        p.end(result.is_ok());
    }
    result
}

pub async fn put(
    ctx: &Context,
    path: &str,
    file: Option<&Path>,
    append: bool,
    no_commit: bool,
) -> Result<(), CliError> {
    // Open the input first: a missing file is a usage error, before any request.
    let (mut input, total): (Box<dyn AsyncRead + Unpin + Send>, Option<u64>) = match file {
        Some(f) => {
            let fh = tokio::fs::File::open(f)
                .await
                .map_err(|e| CliError::Usage(format!("cannot open {}: {e}", f.display())))?;
            let len = fh.metadata().await.ok().map(|m| m.len());
            (Box::new(fh), len)
        }
        None => (Box::new(tokio::io::stdin()), None),
    };
    let source = file.map_or_else(|| "stdin".to_string(), |f| f.display().to_string());
    let driver = ctx.driver().await?;
    // A file that fits one part is one PUT (`put_content`: the PUT and the probe for a
    // closed upload at the path, in flight at once) where a writer makes four requests.
    // Not for a resumable upload (--append, --no-commit), which needs the writer's state,
    // nor for stdin, whose length is unknown. `head` holds what was read beyond one part
    // if the file grew since its length was taken: the writer then starts with it.
    let mut head = Vec::new();
    // KS3's part size; another driver always gets a writer.
    let one_part = driver.config().map(|c| c.chunk_size);
    if let (false, false, Some(part)) = (
        append,
        no_commit,
        one_part.filter(|p| total.is_some_and(|t| t <= *p)),
    ) {
        let limit = part.saturating_add(1);
        (&mut input)
            .take(limit)
            .read_to_end(&mut head)
            .await
            .map_err(|e| CliError::Other(format!("put {path}: reading {source}: {e}")))?;
        if head.len() as u64 <= part {
            let progress = Progress::start(&format!("put {path}"), total);
            let result = driver
                .put_content(path, &head)
                .await
                .map_err(|e| CliError::driver("put", path, e));
            if let Some(mut p) = progress {
                p.add(head.len() as u64);
                p.end(result.is_ok());
            }
            return result;
        }
    }
    let mut writer = driver
        .writer(path, append)
        .await
        .map_err(|e| CliError::driver("put", path, e))?;
    let mut progress = Progress::start(&format!("put {path}"), total);
    let mut buf = vec![0u8; CHUNK];
    let result = async {
        if !head.is_empty() {
            writer
                .write(&head)
                .await
                .map_err(|e| CliError::driver("put", path, e))?;
            if let Some(p) = progress.as_mut() {
                p.add(head.len() as u64);
            }
        }
        loop {
            let n = fill(&mut input, &mut buf)
                .await
                .map_err(|e| CliError::Other(format!("put {path}: reading {source}: {e}")))?;
            if n == 0 {
                break;
            }
            writer
                .write(&buf[..n])
                .await
                .map_err(|e| CliError::driver("put", path, e))?;
            if let Some(p) = progress.as_mut() {
                p.add(n as u64);
            }
            if n < buf.len() {
                break;
            }
        }
        if no_commit {
            writer.close().await
        } else {
            writer.commit().await
        }
        .map_err(|e| CliError::driver("put", path, e))
    }
    .await;
    if let Some(p) = progress {
        p.end(result.is_ok());
    }
    if result.is_err() && !append && !no_commit {
        // Leave nothing behind; the first error is the one worth reporting. A resumable
        // upload (--append, --no-commit) is kept for the next attempt.
        let _ = writer.cancel().await;
    }
    result
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
async fn fill(
    input: &mut (dyn AsyncRead + Unpin + Send),
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]).await {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

pub async fn stat(ctx: &Context, path: &str, json: bool) -> Result<(), CliError> {
    let driver = ctx.driver().await?;
    let info = driver
        .stat(path)
        .await
        .map_err(|e| CliError::driver("stat", path, e))?;
    if json {
        return out_line(&info_json(&info).to_string());
    }
    out_line(&format!("path: {}", info.path))?;
    out_line(&format!(
        "type: {}",
        if info.is_dir { "directory" } else { "file" }
    ))?;
    out_line(&format!("size: {}", info.size))?;
    if !info.is_dir {
        out_line(&format!("modified: {}", rfc3339(info.mod_time)))?;
    }
    Ok(())
}

pub async fn ls(ctx: &Context, path: &str, json: bool) -> Result<(), CliError> {
    let driver = ctx.driver().await?;
    let mut entries = driver
        .list(path)
        .await
        .map_err(|e| CliError::driver("ls", path, e))?;
    entries.sort();
    if json {
        return out_line(&serde_json::Value::from(entries).to_string());
    }
    for e in &entries {
        out_line(e)?;
    }
    Ok(())
}

pub async fn walk(ctx: &Context, path: &str, json: bool) -> Result<(), CliError> {
    let driver = ctx.driver().await?;
    let mut closed = None;
    let r = driver
        .walk(path, None, |info| {
            let line = if json {
                info_json(info).to_string()
            } else if info.is_dir {
                format!("d {}", info.path)
            } else {
                format!("f {} {} {}", info.size, rfc3339(info.mod_time), info.path)
            };
            match out_line(&line) {
                Ok(()) => Ok(WalkControl::Continue),
                Err(e) => {
                    closed = Some(e);
                    Ok(WalkControl::Stop)
                }
            }
        })
        .await;
    if let Some(e) = closed {
        return Err(e);
    }
    r.map_err(|e| CliError::driver("walk", path, e))
}

pub async fn du(ctx: &Context, path: &str, json: bool) -> Result<(), CliError> {
    let driver = ctx.driver().await?;
    let (mut objects, mut bytes) = (0u64, 0u64);
    // A file counts as itself; a directory (or the root) is walked.
    match driver.stat(path).await {
        Ok(info) if !info.is_dir => {
            objects = 1;
            bytes = info.size;
        }
        Err(e) if !e.is_not_found() => return Err(CliError::driver("du", path, e)),
        _ => {
            let r = driver
                .walk(path, None, |info| {
                    if !info.is_dir {
                        objects += 1;
                        bytes += info.size;
                    }
                    Ok(WalkControl::Continue)
                })
                .await;
            match r {
                Ok(()) => {}
                // An empty root is no error: there is nothing under it.
                Err(e) if e.is_not_found() && path == "/" => {}
                Err(e) => return Err(CliError::driver("du", path, e)),
            }
        }
    }
    if json {
        return out_line(
            &serde_json::json!({"path": path, "objects": objects, "bytes": bytes}).to_string(),
        );
    }
    out_line(&format!(
        "{objects} objects, {bytes} bytes ({}) under {path}",
        human(bytes)
    ))
}

pub async fn mv(ctx: &Context, src: &str, dst: &str) -> Result<(), CliError> {
    let driver = ctx.driver().await?;
    let mut progress = if super::progress::enabled() {
        match driver.stat(src).await {
            Ok(i) if !i.is_dir => Progress::start(&format!("mv {src}"), Some(i.size)),
            _ => None,
        }
    } else {
        None
    };
    let op = driver.mv(src, dst);
    let result = match progress.as_mut() {
        // A server-side copy: no bytes to count, so a spinner with the elapsed time.
        Some(p) => {
            tokio::pin!(op);
            let mut tick = tokio::time::interval(Duration::from_millis(150));
            loop {
                tokio::select! {
                    r = &mut op => break r,
                    _ = tick.tick() => p.tick(),
                }
            }
        }
        None => op.await,
    };
    if let Some(mut p) = progress {
        if result.is_ok() {
            p.complete();
        }
        p.end(result.is_ok());
    }
    result.map_err(|e| CliError::driver("mv", src, e))
}

pub async fn rm(ctx: &Context, path: &str) -> Result<(), CliError> {
    let driver = ctx.driver().await?;
    driver
        .delete(path)
        .await
        .map_err(|e| CliError::driver("rm", path, e))
}

pub async fn url(ctx: &Context, path: &str, method: &str) -> Result<(), CliError> {
    let driver = ctx.driver().await?;
    let method = method.to_ascii_uppercase();
    match driver
        .redirect_url(&method, path)
        .await
        .map_err(|e| CliError::driver("url", path, e))?
    {
        Some(u) => out_line(&u),
        None => Err(CliError::Other(format!(
            "url {path}: the driver gives no URL for {method}"
        ))),
    }
}
