//! The object commands: get, put, stat, rm, url.
use std::io::ErrorKind;
use std::path::Path;
use std::time::UNIX_EPOCH;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{CliError, Context};

/// Bytes moved per read/write call when streaming.
const CHUNK: usize = 1 << 20;

pub async fn get(ctx: &Context, path: &str) -> Result<(), CliError> {
    let driver = ctx.driver().await?;
    let mut reader = driver
        .reader(path, 0)
        .await
        .map_err(|e| CliError::driver("get", path, e))?;
    let mut out = tokio::io::stdout();
    loop {
        let chunk = reader
            .read(CHUNK)
            .await
            .map_err(|e| CliError::driver("get", path, e))?;
        if chunk.is_empty() {
            break;
        }
        match out.write_all(&chunk).await {
            Ok(()) => {}
            // `ks3-driver get … | head`: the reader went away; that is not an error.
            Err(e) if e.kind() == ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(CliError::Other(format!("get {path}: writing stdout: {e}"))),
        }
    }
    match out.flush().await {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => {
            Err(CliError::Other(format!("get {path}: writing stdout: {e}")))
        }
        _ => Ok(()),
    }
}

pub async fn put(ctx: &Context, path: &str, file: Option<&Path>) -> Result<(), CliError> {
    // Open the input first: a missing file is a usage error, before any request.
    let mut input: Box<dyn AsyncRead + Unpin + Send> = match file {
        Some(f) => Box::new(
            tokio::fs::File::open(f)
                .await
                .map_err(|e| CliError::Usage(format!("cannot open {}: {e}", f.display())))?,
        ),
        None => Box::new(tokio::io::stdin()),
    };
    let source = file.map_or_else(|| "stdin".to_string(), |f| f.display().to_string());
    let driver = ctx.driver().await?;
    let mut writer = driver
        .writer(path, false)
        .await
        .map_err(|e| CliError::driver("put", path, e))?;
    let mut buf = vec![0u8; CHUNK];
    let result = async {
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
            if n < buf.len() {
                break;
            }
        }
        writer
            .commit()
            .await
            .map_err(|e| CliError::driver("put", path, e))
    }
    .await;
    if result.is_err() {
        // Leave nothing behind; the first error is the one worth reporting.
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

pub async fn stat(ctx: &Context, path: &str) -> Result<(), CliError> {
    let driver = ctx.driver().await?;
    let info = driver
        .stat(path)
        .await
        .map_err(|e| CliError::driver("stat", path, e))?;
    let nanos = info
        .mod_time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    println!("path: {}", info.path);
    println!("type: {}", if info.is_dir { "directory" } else { "file" });
    println!("size: {}", info.size);
    if !info.is_dir {
        println!("modified: {}", ks3_proto::date::iso8601(nanos));
    }
    Ok(())
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
        Some(u) => {
            println!("{u}");
            Ok(())
        }
        None => Err(CliError::Other(format!(
            "url {path}: the driver gives no URL for {method}"
        ))),
    }
}
