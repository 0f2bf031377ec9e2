//! A small KSS-V2-signing HTTP client for the tests, on hyper over real sockets.
#![allow(dead_code)]
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use ks3_local::{RunningServer, ServerConfig};
use ks3_proto::date::http_date;
use ks3_proto::encode::{encode_key, split_query};
use ks3_proto::sign::{canonical_resource, presigned_query, SignedRequest, StringToSign};

pub const AK: &str = "AKLTtestaccesskey0001";
pub const SK: &str = "testsecretkeyTESTSECRETKEY0123456789abcd";
pub const BUCKET: &str = "registry-bucket";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub async fn memory_server() -> RunningServer {
    ks3_local::start(ServerConfig::memory(BUCKET, AK, SK))
        .await
        .unwrap()
}

pub async fn server_with(f: impl FnOnce(&mut ServerConfig)) -> RunningServer {
    let mut c = ServerConfig::memory(BUCKET, AK, SK);
    f(&mut c);
    ks3_local::start(c).await.unwrap()
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, n: &str) -> Option<String> {
        self.headers.get(n).map(|v| v.to_str().unwrap().to_string())
    }
    /// Text of the first `<name>` element.
    pub fn xml(&self, name: &str) -> Option<String> {
        xml_all(&self.text(), name).into_iter().next()
    }
    pub fn xml_all(&self, name: &str) -> Vec<String> {
        xml_all(&self.text(), name)
    }
    pub fn code(&self) -> String {
        self.xml("Code").unwrap_or_default()
    }
    #[track_caller]
    pub fn expect(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.code().as_str()),
            (status, code),
            "body: {}",
            self.text()
        );
    }
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.status.is_success(), "{} {}", self.status, self.text());
        self
    }
}

/// Texts of all `<name>…</name>` elements (entities decoded for &amp; &lt; &gt; &quot;).
pub fn xml_all(s: &str, name: &str) -> Vec<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(
            after[..j]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[j + close.len()..];
    }
    out
}

/// Sends one raw request on a fresh connection.
pub async fn send(addr: std::net::SocketAddr, req: Request<Full<Bytes>>) -> Resp {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Resp {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

#[derive(Clone)]
pub struct Client {
    pub addr: std::net::SocketAddr,
    pub ak: String,
    pub sk: String,
    pub bucket: String,
    /// Seconds added to the Date header (clock-skew tests).
    pub skew: i64,
    /// Host header override (virtual-host tests); `None` = `127.0.0.1:PORT`.
    pub host: Option<String>,
    /// Address the bucket in the path (`true`) or only in the Host header (`false`).
    pub path_style: bool,
}

impl Client {
    pub fn new(server: &RunningServer) -> Client {
        Client {
            addr: server.addr(),
            ak: AK.into(),
            sk: SK.into(),
            bucket: BUCKET.into(),
            skew: 0,
            host: None,
            path_style: true,
        }
    }

    pub fn with_secret(&self, sk: &str) -> Client {
        Client {
            sk: sk.into(),
            ..self.clone()
        }
    }

    /// The request path for `key` (`""` = bucket level).
    pub fn path(&self, key: &str) -> String {
        if self.path_style {
            if self.bucket.is_empty() {
                "/".into()
            } else {
                format!("/{}/{}", self.bucket, encode_key(key))
            }
        } else {
            format!("/{}", encode_key(key))
        }
    }

    /// Builds a signed request.
    pub fn build(
        &self,
        method: &str,
        key: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Request<Full<Bytes>> {
        let date = http_date(now() + self.skew);
        let q = split_query(query);
        let resource = canonical_resource(&self.bucket, key, &q);
        let get = |n: &str| {
            headers
                .iter()
                .find(|(h, _)| h.eq_ignore_ascii_case(n))
                .map(|(_, v)| *v)
                .unwrap_or("")
        };
        let sts = StringToSign {
            method,
            content_md5: get("content-md5"),
            content_type: get("content-type"),
            date: &date,
            headers: headers.to_vec(),
            resource: &resource,
        };
        let auth = SignedRequest::authorization(&self.ak, &self.sk, &sts);
        let mut uri = self.path(key);
        if !query.is_empty() {
            uri.push('?');
            uri.push_str(query);
        }
        let host = self.host.clone().unwrap_or_else(|| self.addr.to_string());
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", host)
            .header("date", date)
            .header("authorization", auth);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        let body: Bytes = body.into();
        // As the SDKs do (hyper leaves it out for empty bodies; KS3 wants it on PUT/POST).
        if (method == "PUT" || method == "POST")
            && !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        {
            b = b.header("content-length", body.len());
        }
        b.body(Full::new(body)).unwrap()
    }

    pub async fn req(
        &self,
        method: &str,
        key: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Resp {
        send(self.addr, self.build(method, key, query, headers, body)).await
    }

    pub async fn put(&self, key: &str, data: impl Into<Bytes>) -> Resp {
        self.req("PUT", key, "", &[], data).await
    }
    pub async fn get(&self, key: &str) -> Resp {
        self.req("GET", key, "", &[], Bytes::new()).await
    }
    pub async fn head(&self, key: &str) -> Resp {
        self.req("HEAD", key, "", &[], Bytes::new()).await
    }
    pub async fn delete(&self, key: &str) -> Resp {
        self.req("DELETE", key, "", &[], Bytes::new()).await
    }
    pub async fn list(&self, query: &str) -> Resp {
        self.req("GET", "", query, &[], Bytes::new()).await
    }

    /// A presigned URL path+query for `key`.
    pub fn presign(&self, method: &str, key: &str, expires: i64) -> String {
        let resource = canonical_resource(&self.bucket, key, &[]);
        format!(
            "{}?{}",
            self.path(key),
            presigned_query(&self.ak, &self.sk, method, &resource, expires)
        )
    }

    /// Initiates a multipart upload; returns the upload id.
    pub async fn initiate(&self, key: &str) -> String {
        let r = self.req("POST", key, "uploads", &[], Bytes::new()).await;
        r.ok();
        r.xml("UploadId").unwrap()
    }

    pub async fn upload_part(&self, key: &str, id: &str, n: u32, data: impl Into<Bytes>) -> Resp {
        self.req(
            "PUT",
            key,
            &format!("partNumber={n}&uploadId={id}"),
            &[],
            data,
        )
        .await
    }

    pub async fn complete(&self, key: &str, id: &str, parts: &[(u32, String)]) -> Resp {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (n, e) in parts {
            xml.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        self.req(
            "POST",
            key,
            &format!("uploadId={id}"),
            &[("content-type", "text/xml")],
            xml,
        )
        .await
    }
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ seed as u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Sends raw bytes on a fresh connection and returns everything read until the server
/// closes (or `timeout`).
pub async fn raw(addr: std::net::SocketAddr, bytes: &[u8], timeout_ms: u64) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(timeout_ms),
        s.read_to_end(&mut out),
    )
    .await;
    out
}
