//! `--verify-digests`: every blob re-hashed, streamed through the driver's reader (never
//! a whole blob in memory: one read of at most [`CHUNK`] at a time per blob), `conc`
//! blobs at a time within the process-wide pool of driver calls.
use super::report::{Kind, Problem};
use super::scan::Scan;
use super::{FsckError, VerifyProgress};
use crate::digest::{Digest, Hasher};
use crate::store::try_fan_out;
use ks3_driver_host::Driver;

/// Bytes asked of the reader at once.
const CHUNK: usize = 1 << 20;

/// The digest of what `path` holds now; `None` when it was deleted meanwhile.
async fn hash(
    driver: &Driver,
    path: &str,
    d: &Digest,
    progress: Option<&dyn VerifyProgress>,
) -> Result<Option<Digest>, FsckError> {
    let storage = |e| FsckError::storage(format!("re-hashing {path}"), e);
    let mut reader = match driver.reader(path, 0).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(storage(e)),
    };
    let mut hasher = Hasher::new(d.algorithm());
    loop {
        let chunk = match reader.read_bytes(CHUNK).await {
            Ok(c) => c,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(storage(e)),
        };
        if chunk.is_empty() {
            return Ok(Some(hasher.finish()));
        }
        hasher.update(&chunk);
        if let Some(p) = progress {
            p.advance(chunk.len() as u64);
        }
    }
}

/// Re-hashes every blob of `scan`; the number re-hashed.
pub(super) async fn verify_blobs(
    driver: &Driver,
    scan: &Scan,
    conc: usize,
    progress: Option<&dyn VerifyProgress>,
    problems: &mut Vec<Problem>,
) -> Result<usize, FsckError> {
    let blobs: Vec<(Digest, &str)> = scan
        .blobs
        .iter()
        .filter_map(|(d, b)| Some((Digest::parse(d)?, b.path.as_str())))
        .collect();
    if let Some(p) = progress {
        p.start(blobs.len(), scan.blobs.values().map(|b| b.size).sum());
    }
    let results = try_fan_out(blobs, conc, |(d, path)| async move {
        let got = hash(driver, path, &d, progress).await?;
        Ok::<_, FsckError>((d, path, got))
    })
    .await;
    if let Some(p) = progress {
        p.finish();
    }
    let mut verified = 0;
    for (d, path, got) in results? {
        let Some(got) = got else { continue };
        verified += 1;
        if got != d {
            problems.push(Problem {
                kind: Kind::BlobDigestMismatch,
                path: path.to_string(),
                message: format!("blob {d}: its content hashes to {got}"),
                fix: None,
            });
        }
    }
    Ok(verified)
}
