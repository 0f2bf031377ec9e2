//! The storage-driver operations over KS3, independent of how bytes travel.
//!
//! Each public method takes paths already validated (distribution's `base` rule, once, as
//! [`FilePath`] / [`DirPath`]), maps them to keys, then speaks KS3 through [`Client`]. KS3's "not found" answers become
//! [`DriverError::PathNotFound`] here and nowhere else.
mod delete;
mod listing;
mod multipart;
mod mv;
mod reader;
mod tail;
mod walk;
mod writer;

use std::sync::Arc;

use crate::client::{crc64, AfterBatch, Call, Client, MAX_XML};
use crate::config::Config;
use crate::error::DriverError;
use crate::http::Transport;
use crate::path::{DirPath, FilePath, Keys};

pub use reader::FileReader;
pub use walk::Walker;
pub use writer::FileWriter;

/// Presigned URLs live this long, as in distribution's S3 driver.
pub const REDIRECT_EXPIRY_SECS: i64 = 20 * 60;

/// Metadata of a file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub path: String,
    pub size: u64,
    pub mod_time_ns: u64,
    pub is_dir: bool,
}

impl FileInfo {
    fn dir(path: String) -> Self {
        FileInfo {
            path,
            size: 0,
            mod_time_ns: 0,
            is_dir: true,
        }
    }
}

/// What a HEAD tells of an object.
#[derive(Debug, Clone)]
pub(crate) struct ObjectMeta {
    pub size: u64,
    pub mod_time_ns: u64,
    pub etag: Option<String>,
    /// KS3's CRC-64 of the whole object, when it sends one.
    pub crc: Option<u64>,
}

pub struct Driver<T> {
    pub(crate) client: Client<T>,
    pub keys: Keys,
}

impl<T: Transport> Driver<T> {
    pub fn new(config: Config, transport: T) -> Arc<Self> {
        let keys = Keys::new(&config.root_directory);
        Arc::new(Driver {
            client: Client::new(config, transport),
            keys,
        })
    }

    pub fn config(&self) -> &Config {
        &self.client.config
    }

    /// Headers every new object (put, initiate, copy) carries.
    pub(crate) fn object_headers<'a>(&self, mut call: Call<'a>) -> Call<'a> {
        let c = &self.client.config;
        call = call.header("x-kss-acl", c.object_acl.clone());
        if c.encrypt {
            call = call.header("x-kss-server-side-encryption", "AES256");
        }
        if let Some(sc) = &c.storage_class {
            call = call.header("x-kss-storage-class", sc.clone());
        }
        call
    }

    pub fn get_content(&self, p: &FilePath) -> Result<Vec<u8>, DriverError> {
        let key = self.keys.key(p);
        let get = Call::new("GET", &key, p)
            .accept(&[404])
            .buffered(usize::MAX);
        let mut resp = self.client.send(&get)?.resp;
        if resp.status == 404 {
            return Err(self.not_found(resp, p));
        }
        let expected = resp
            .header("content-length")
            .and_then(|v| v.parse::<u64>().ok());
        let data = resp
            .read_all(usize::MAX)
            .map_err(|e| DriverError::transport(p, "reading the object", &e))?;
        if let Some(n) = expected {
            if n != data.len() as u64 {
                return Err(DriverError::integrity(
                    p,
                    format!("object truncated: got {} of {n} bytes", data.len()),
                ));
            }
        }
        if let Some(v) = resp.header("x-kss-checksum-crc64ecma") {
            if v.trim().parse::<u64>().ok() != Some(crc64(&data)) {
                return Err(DriverError::integrity(
                    p,
                    "integrity check failed: the object's CRC-64 does not match KS3's",
                ));
            }
        }
        Ok(data)
    }

    pub fn put_content(&self, p: &FilePath, content: &[u8]) -> Result<(), DriverError> {
        let key = self.keys.key(p);
        let put = self.put_call(&key, p, content);
        let tail_key = self.keys.tail_key(p);
        let probe = tail::tail_probe(&tail_key, p);
        // The content goes up while the path's tail is looked for: one round trip where
        // two would follow each other. Nothing else writes at the path meanwhile (one
        // owner per path), so the tail found is the one the content replaces.
        let calls = [
            probe.accept(&[404]).buffered(self.tail_probe_limit()),
            put.buffered(MAX_XML),
        ];
        let mut sent = self
            .client
            .send_all(&calls, AfterBatch::Continue)
            .into_iter();
        let (Some(tail), Some(put)) = (sent.next(), sent.next()) else {
            return Err(DriverError::other(
                p,
                "the client answered fewer calls than it was given",
            ));
        };
        self.client.verify_crc(&put?.resp, crc64(content), p)?;
        // The content is now the path's: an upload closed there earlier must not come back.
        self.release_probed_tail(tail?.resp, &tail_key, p)
    }

    /// `put_content` at a path no writer is ever opened at (the caller's promise, see
    /// `put-content-writerless` in the WIT): no closed writer's tail can be there, so
    /// there is none to look for, and the content is the one request.
    pub fn put_content_writerless(&self, p: &FilePath, content: &[u8]) -> Result<(), DriverError> {
        self.put_object(&self.keys.key(p), p, content)
    }

    pub(crate) fn put_object(&self, key: &str, p: &str, content: &[u8]) -> Result<(), DriverError> {
        let resp = self.client.send(&self.put_call(key, p, content))?.resp;
        self.client.verify_crc(&resp, crc64(content), p)
    }

    /// The PUT of a whole object, with the configured ACL, encryption and class.
    fn put_call<'a>(&self, key: &'a str, p: &'a str, content: &'a [u8]) -> Call<'a> {
        self.object_headers(Call::new("PUT", key, p).body(
            content,
            "application/octet-stream",
            true,
        ))
    }

    pub fn stat(&self, p: &DirPath) -> Result<FileInfo, DriverError> {
        if let Some(file) = p.as_file() {
            let key = self.keys.key(&file);
            if let Some(info) = self.head(&key, p)? {
                return Ok(info);
            }
        }
        if self.has_children(p)? {
            Ok(FileInfo::dir(p.to_string()))
        } else {
            Err(DriverError::PathNotFound(p.to_string()))
        }
    }

    /// HEAD of an object: `None` when there is none.
    pub(crate) fn head(&self, key: &str, p: &str) -> Result<Option<FileInfo>, DriverError> {
        Ok(self.head_meta(key, p)?.map(|m| FileInfo {
            path: p.to_string(),
            size: m.size,
            mod_time_ns: m.mod_time_ns,
            is_dir: false,
        }))
    }

    /// HEAD of an object with what identifies its content: `None` when there is none.
    pub(crate) fn head_meta(&self, key: &str, p: &str) -> Result<Option<ObjectMeta>, DriverError> {
        let resp = self
            .client
            .send(&Call::new("HEAD", key, p).accept(&[404]))?
            .resp;
        if resp.status == 404 {
            return Ok(None);
        }
        let size = resp
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| DriverError::io(p, "KS3's HEAD response has no valid Content-Length"))?;
        let mod_time_ns = resp
            .header("last-modified")
            .and_then(ks3_proto::date::parse_http_date)
            .map(|s| (s.max(0) as u64).saturating_mul(1_000_000_000))
            .unwrap_or(0);
        let crc = resp
            .header("x-kss-checksum-crc64ecma")
            .map(|v| multipart::parse_crc(v, p, "object"))
            .transpose()?;
        Ok(Some(ObjectMeta {
            size,
            mod_time_ns,
            etag: resp.header("etag").map(str::to_string),
            crc,
        }))
    }

    pub fn redirect_url(&self, method: &str, p: &FilePath) -> Result<Option<String>, DriverError> {
        let method = method.to_ascii_uppercase();
        if method != "GET" && method != "HEAD" {
            return Ok(None);
        }
        let expires = self.client.transport.now_unix() + REDIRECT_EXPIRY_SECS;
        self.client
            .presign(&method, &self.keys.key(p), expires)
            .map(Some)
    }

    /// A 404's body tells a missing key from a missing bucket; only the former is
    /// "path not found".
    pub(crate) fn not_found(&self, resp: crate::http::Response, p: &str) -> DriverError {
        let err = self.client.backend_error(resp, p);
        if err.code == "NoSuchBucket" {
            DriverError::Backend(err)
        } else {
            DriverError::PathNotFound(p.to_string())
        }
    }
}
