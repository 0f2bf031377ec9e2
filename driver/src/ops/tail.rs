//! The tail object: what a closed writer saves of bytes that do not fill a part yet
//! (`<root>/~tails/<path>`, see [`Keys::tail_key`](crate::path::Keys::tail_key)), its
//! format, and how the owner of a path releases it (with the upload it names).
use super::multipart::Part;
use super::Driver;
use crate::client::{AfterBatch, Call};
use crate::error::DriverError;
use crate::http::{Response, Transport};
use crate::path::FilePath;

pub(super) const TAIL_MAGIC: &str = "ks3-driver-tail/2";
/// The tail's header line is at most this long (10 000 parts × a 20-digit CRC).
pub(super) const MAX_TAIL_HEADER: usize = 256 + 21 * 10_000;
/// Enough of a tail to read the upload id it names (it comes first in the header).
pub(super) const TAIL_ID_PREFIX: usize = 1024;

/// What `close` saved: the upload it belongs to, the parts before it, its bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SavedTail {
    pub(super) upload_id: Option<String>,
    /// CRC-64 of each part before the tail, in order (`None` where unknown).
    pub(super) part_crcs: Vec<Option<u64>>,
    pub(super) data: Vec<u8>,
}

/// The tail object's content: a header line, then the bytes.
pub(super) fn encode_tail(upload_id: Option<&str>, parts: &[Part], data: &[u8]) -> Vec<u8> {
    let crcs: Vec<String> = parts
        .iter()
        .map(|p| p.crc.map_or_else(|| "?".to_string(), |c| c.to_string()))
        .collect();
    let header = format!(
        "{TAIL_MAGIC} upload={} parts={} crcs={}\n",
        upload_id.unwrap_or("-"),
        parts.len(),
        if crcs.is_empty() {
            "-".to_string()
        } else {
            crcs.join(",")
        }
    );
    let mut out = Vec::with_capacity(header.len() + data.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// The upload id a tail names, from the first bytes of the tail.
fn tail_upload_id(raw: &[u8]) -> Option<Option<String>> {
    let end = raw.iter().position(|&b| b == b'\n').unwrap_or(raw.len());
    let header = std::str::from_utf8(&raw[..end]).ok()?;
    let mut it = header.split(' ');
    if it.next()? != TAIL_MAGIC {
        return None;
    }
    let upload = it.next()?.strip_prefix("upload=")?;
    Some((upload != "-").then(|| upload.to_string()))
}

pub(super) fn decode_tail(raw: &[u8]) -> Option<SavedTail> {
    let nl = raw.iter().take(MAX_TAIL_HEADER).position(|&b| b == b'\n')?;
    let header = std::str::from_utf8(&raw[..nl]).ok()?;
    let mut it = header.split(' ');
    if it.next()? != TAIL_MAGIC {
        return None;
    }
    let upload = it.next()?.strip_prefix("upload=")?;
    let parts: usize = it.next()?.strip_prefix("parts=")?.parse().ok()?;
    let crcs = it.next()?.strip_prefix("crcs=")?;
    if it.next().is_some() {
        return None;
    }
    let part_crcs: Vec<Option<u64>> = if crcs == "-" {
        Vec::new()
    } else {
        crcs.split(',')
            .map(|c| match c {
                "?" => Some(None),
                c => c.parse::<u64>().ok().map(Some),
            })
            .collect::<Option<_>>()?
    };
    if part_crcs.len() != parts || (upload == "-" && parts != 0) {
        return None;
    }
    Some(SavedTail {
        upload_id: (upload != "-").then(|| upload.to_string()),
        part_crcs,
        data: raw[nl + 1..].to_vec(),
    })
}

impl<T: Transport> Driver<T> {
    /// Removes the path's tail and aborts every upload in progress at its key.
    pub(crate) fn release_uploads(&self, key: &str, p: &FilePath) -> Result<(), DriverError> {
        self.release_uploads_and(key, p, false)
    }

    /// [`Self::release_uploads`], the listing of the key's uploads and the tail's DELETE
    /// in one round trip (then the aborts, when there are any); with `delete_key`, the
    /// object at the key is deleted in that round trip too (a move's source: it goes with
    /// its uploads and tail, in no particular order, as nothing may resume it after).
    pub(crate) fn release_uploads_and(
        &self,
        key: &str,
        p: &FilePath,
        delete_key: bool,
    ) -> Result<(), DriverError> {
        let tail_key = self.keys.tail_key(p);
        let mut calls = vec![
            Self::uploads_page_call(key, None, p),
            Self::delete_call(&tail_key, p),
        ];
        if delete_key {
            calls.push(Self::delete_call(key, p));
        }
        let mut sent = self
            .client
            .send_all(&calls, AfterBatch::Continue)
            .into_iter();
        let (Some(listed), Some(tail)) = (sent.next(), sent.next()) else {
            return Err(DriverError::other(
                p,
                "the client answered fewer calls than it was given",
            ));
        };
        if delete_key {
            let Some(object) = sent.next() else {
                return Err(DriverError::other(
                    p,
                    "the client answered fewer calls than it was given",
                ));
            };
            self.judge_delete(object?.resp, p)?;
        }
        self.judge_delete(tail?.resp, p)?;
        let (first, next) = self.read_uploads_page(listed?.resp, None, p)?;
        let mut uploads: Vec<_> = self
            .list_uploads_from(key, first, next, p)?
            .into_iter()
            .filter(|u| u.key == key)
            .collect();
        uploads.sort_by(|a, b| a.initiated.cmp(&b.initiated));
        for u in uploads {
            self.abort(key, &u.upload_id, p)?;
        }
        Ok(())
    }

    /// Removes the path's tail and aborts the upload it names: what `put_content` needs
    /// (one request when there is no tail). Uploads no tail names are stale once an
    /// object was written after them (see `FileWriter::resume_untailed`).
    pub(crate) fn release_tail(&self, p: &FilePath) -> Result<(), DriverError> {
        let tail_key = self.keys.tail_key(p);
        let probe = tail_probe(&tail_key, p);
        let probe = probe.accept(&[404]).buffered(self.tail_probe_limit());
        let resp = self.client.send(&probe)?.resp;
        self.release_probed_tail(resp, &tail_key, p)
    }

    /// The most a tail probe reads: a server that ignores its Range sends the whole tail.
    pub(crate) fn tail_probe_limit(&self) -> usize {
        usize::try_from(self.config().chunk_size)
            .unwrap_or(usize::MAX)
            .saturating_add(MAX_TAIL_HEADER)
    }

    /// Given the answer to [`tail_probe`] (read whole, 404 when there is no tail), aborts
    /// the upload the tail names and deletes the tail.
    pub(crate) fn release_probed_tail(
        &self,
        mut resp: Response,
        tail_key: &str,
        p: &FilePath,
    ) -> Result<(), DriverError> {
        if resp.status == 404 {
            return Ok(());
        }
        // Only the header's start is needed (a server that ignores Range may send it all).
        let mut raw = Vec::new();
        while raw.len() < TAIL_ID_PREFIX {
            match resp.body.read(TAIL_ID_PREFIX - raw.len()) {
                Ok(Some(c)) => raw.extend_from_slice(&c),
                Ok(None) => break,
                Err(e) => {
                    return Err(DriverError::transport(
                        p,
                        "reading the upload's saved tail",
                        &e,
                    ))
                }
            }
        }
        // A tail that cannot be read names nothing we could abort; it goes all the same.
        if let Some(Some(id)) = tail_upload_id(&raw) {
            self.abort(&self.keys.key(p), &id, p)?;
        }
        self.delete_object(tail_key, p)?;
        Ok(())
    }
}

/// The GET of the start of a path's tail, where its upload id is: enough to release it.
pub(crate) fn tail_probe<'a>(tail_key: &'a str, p: &'a str) -> Call<'a> {
    // Range is honoured by KS3; a server that ignores it sends the whole tail, which
    // stays within what `read_tail` accepts.
    Call::new("GET", tail_key, p).header("range", format!("bytes=0-{}", TAIL_ID_PREFIX - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u32, crc: Option<u64>) -> Part {
        Part {
            number: n,
            etag: "e".into(),
            size: 5,
            crc,
        }
    }

    #[test]
    fn tail_round_trip() {
        let raw = encode_tail(
            Some("abc"),
            &[part(1, Some(7)), part(2, None)],
            b"hello\nworld",
        );
        let t = decode_tail(&raw).unwrap();
        assert_eq!(t.upload_id.as_deref(), Some("abc"));
        assert_eq!(t.part_crcs, vec![Some(7), None]);
        assert_eq!(t.data, b"hello\nworld");
        assert_eq!(tail_upload_id(&raw[..20]), None, "cut inside the id");
        assert_eq!(tail_upload_id(&raw), Some(Some("abc".into())));
        let raw = encode_tail(None, &[], b"");
        assert_eq!(decode_tail(&raw).unwrap().upload_id, None);
        assert_eq!(tail_upload_id(&raw), Some(None));
        for bad in [
            &b"garbage"[..],
            b"ks3-driver-tail/2 upload=x parts=q crcs=-\n",
            b"ks3-driver-tail/2 upload=x parts=2 crcs=1\n",
            b"ks3-driver-tail/2 upload=- parts=1 crcs=1\n",
            b"ks3-driver-tail/2 upload=x parts=1 crcs=z\n",
            b"ks3-driver-tail/1 upload=x parts=0\n",
            b"ks3-driver-tail/2 upload=x parts=0 crcs=- extra\n",
        ] {
            assert!(
                decode_tail(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
