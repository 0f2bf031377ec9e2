//! The upstream registry's client: hyper's pooled client (HTTP/1.1; rustls for https, with
//! webpki's and the system's roots), redirects followed (Docker Hub and distribution on
//! S3 answer blob GETs with a 307 to a CDN or presigned URL; no credentials go there),
//! and the upstream's authentication: a `401` with `WWW-Authenticate: Basic` is answered
//! with the configured credentials, one with `Bearer realm=…,service=…,scope=…` by a
//! token from the realm (asked with the credentials as Basic, when configured), kept per
//! scope until it expires.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::ProxyConfig;
use crate::http_io::percent_encode;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// How long the upstream may take to answer a request's headers.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 5;
/// A token response larger than this is refused.
const MAX_TOKEN_RESPONSE: usize = 1 << 20;

/// Why the upstream gave no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// No answer: connection refused, TLS failure, timeout, a broken response.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// An answer that is neither what was asked nor a 404 (401 after authenticating, 5xx).
    #[error("upstream answered {0}: {1}")]
    Status(StatusCode, String),
}

pub struct Upstream {
    base: String,
    client: Client<Https, Empty<Bytes>>,
    credentials: Option<(String, String)>,
    /// Bearer tokens by scope, with the instant they stop being used.
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    /// The upstream asked for Basic once: send it up front from then on.
    basic: AtomicBool,
}

impl Upstream {
    pub fn new(config: &ProxyConfig) -> Result<Upstream, String> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        if config.remote_url.starts_with("https:") {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Upstream {
            base: config.remote_url.clone(),
            client,
            credentials: config.username.clone().map(|u| {
                let p = config.password.clone().unwrap_or_default();
                (u, p)
            }),
            tokens: Mutex::default(),
            basic: AtomicBool::new(false),
        })
    }

    /// `method` on `/v2/<repo>/<what>` upstream (`what`: `manifests/<ref>`,
    /// `blobs/<digest>`), authenticated and following redirects; `None` for a 404.
    pub async fn get(
        &self,
        method: Method,
        repo: &str,
        what: &str,
        accept: &[&str],
    ) -> Result<Option<Response<Incoming>>, UpstreamError> {
        let url = format!("{}/v2/{repo}/{what}", self.base);
        let scope = format!("repository:{repo}:pull");
        let mut auth = self.auth_for(&scope);
        let mut retried = false;
        loop {
            let resp = self
                .follow(method.clone(), &url, accept, auth.as_deref())
                .await?;
            match resp.status() {
                StatusCode::NOT_FOUND => return Ok(None),
                StatusCode::UNAUTHORIZED if !retried => {
                    retried = true;
                    let challenge = resp
                        .headers()
                        .get(header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    auth = Some(self.answer(&challenge, &scope).await?);
                }
                s if s.is_success() => return Ok(Some(resp)),
                s => {
                    let what = resp
                        .headers()
                        .get(header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .map(|c| format!("challenge {c}"))
                        .unwrap_or_else(|| format!("{method} {url}"));
                    return Err(UpstreamError::Status(s, what));
                }
            }
        }
    }

    /// The `Authorization` to send before any challenge: a token still valid for the
    /// scope, or Basic when the upstream asked for it before.
    fn auth_for(&self, scope: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((t, until)) = tokens.get(scope) {
            if Instant::now() < *until {
                return Some(format!("Bearer {t}"));
            }
        }
        if self.basic.load(Ordering::Relaxed) {
            return self.basic_header();
        }
        None
    }

    fn basic_header(&self) -> Option<String> {
        self.credentials.as_ref().map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        })
    }

    /// The `Authorization` that answers `challenge`.
    async fn answer(&self, challenge: &str, scope: &str) -> Result<String, UpstreamError> {
        let (scheme, params) = parse_challenge(challenge);
        if scheme.eq_ignore_ascii_case("basic") {
            self.basic.store(true, Ordering::Relaxed);
            return self.basic_header().ok_or_else(|| {
                UpstreamError::Status(
                    StatusCode::UNAUTHORIZED,
                    "the upstream asks for Basic credentials (proxy.username, proxy.password)"
                        .into(),
                )
            });
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(UpstreamError::Status(
                StatusCode::UNAUTHORIZED,
                format!("unknown challenge `{challenge}`"),
            ));
        }
        let realm = params.get("realm").ok_or_else(|| {
            UpstreamError::Status(
                StatusCode::UNAUTHORIZED,
                "a Bearer challenge without realm".into(),
            )
        })?;
        let mut query = Vec::new();
        if let Some(s) = params.get("service") {
            query.push(format!("service={}", percent_encode(s)));
        }
        // The challenge's scope when it names one (Docker Hub's does), else ours.
        let want = params.get("scope").map(String::as_str).unwrap_or(scope);
        for s in want.split(' ').filter(|s| !s.is_empty()) {
            query.push(format!("scope={}", percent_encode(s)));
        }
        if let Some((u, _)) = &self.credentials {
            query.push(format!("account={}", percent_encode(u)));
        }
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = format!("{realm}{sep}{}", query.join("&"));
        let basic = self.basic_header();
        let resp = self
            .follow(Method::GET, &url, &[], basic.as_deref())
            .await?;
        if !resp.status().is_success() {
            return Err(UpstreamError::Status(
                resp.status(),
                format!("token request to {realm}"),
            ));
        }
        let body = Limited::new(resp.into_body(), MAX_TOKEN_RESPONSE)
            .collect()
            .await
            .map_err(|e| UpstreamError::Unreachable(format!("token response: {e}")))?
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            UpstreamError::Status(StatusCode::BAD_GATEWAY, format!("token response: {e}"))
        })?;
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                UpstreamError::Status(
                    StatusCode::BAD_GATEWAY,
                    "token response without a token".into(),
                )
            })?
            .to_string();
        // distribution's default lifetime when the response names none: 60 s; a margin
        // so that a token is not sent in its last seconds.
        let lifetime = v.get("expires_in").and_then(|e| e.as_u64()).unwrap_or(60);
        let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(10).max(1));
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(scope.to_string(), (token.clone(), until));
        Ok(format!("Bearer {token}"))
    }

    /// One request, following redirects (credentials only to the first URL's origin).
    async fn follow(
        &self,
        method: Method,
        url: &str,
        accept: &[&str],
        auth: Option<&str>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut uri: Uri = url
            .parse()
            .map_err(|e| UpstreamError::Unreachable(format!("bad URL {url}: {e}")))?;
        let origin = uri.authority().cloned();
        for _ in 0..=MAX_REDIRECTS {
            let mut b = Request::builder()
                .method(method.clone())
                .uri(uri.clone())
                .header(header::USER_AGENT, "ks3-registry-proxy");
            for a in accept {
                b = b.header(header::ACCEPT, *a);
            }
            if let Some(a) = auth.filter(|_| uri.authority() == origin.as_ref()) {
                if let Ok(v) = HeaderValue::from_str(a) {
                    b = b.header(header::AUTHORIZATION, v);
                }
            }
            let req = b
                .body(Empty::new())
                .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
            let resp = tokio::time::timeout(ANSWER_TIMEOUT, self.client.request(req))
                .await
                .map_err(|_| UpstreamError::Unreachable(format!("{uri}: no answer in 30 s")))?
                .map_err(|e| UpstreamError::Unreachable(format!("{uri}: {}", error_chain(&e))))?;
            if !resp.status().is_redirection() || resp.status() == StatusCode::NOT_MODIFIED {
                return Ok(resp);
            }
            let location = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    UpstreamError::Status(
                        resp.status(),
                        format!("{uri}: a redirect without Location"),
                    )
                })?;
            uri = resolve(&uri, location).ok_or_else(|| {
                UpstreamError::Status(resp.status(), format!("{uri}: bad Location"))
            })?;
        }
        Err(UpstreamError::Status(
            StatusCode::LOOP_DETECTED,
            format!("{url}: more than {MAX_REDIRECTS} redirects"),
        ))
    }
}

/// A `Location` relative to `base` (absolute, or an absolute path).
fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.parse().ok();
    }
    if location.starts_with('/') {
        let scheme = base.scheme_str()?;
        let authority = base.authority()?;
        return format!("{scheme}://{authority}{location}").parse().ok();
    }
    None
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// A challenge's scheme and its `key="value"` (or bare `key=value`) parameters.
pub fn parse_challenge(c: &str) -> (String, HashMap<String, String>) {
    let c = c.trim();
    let (scheme, rest) = c.split_once(' ').unwrap_or((c, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    (scheme.to_string(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/alpine:pull");
        let (s, p) = parse_challenge(r#"Basic realm="a, \"b\"""#);
        assert_eq!(s, "Basic");
        assert_eq!(p["realm"], r#"a, "b""#);
        let (_, p) = parse_challenge("Bearer realm=http://x/t, service=s");
        assert_eq!(p["realm"], "http://x/t");
        assert_eq!(p["service"], "s");
    }

    #[test]
    fn redirects_resolve() {
        let base: Uri = "http://a:1/v2/x".parse().unwrap();
        assert_eq!(
            resolve(&base, "/b?c").unwrap().to_string(),
            "http://a:1/b?c"
        );
        assert_eq!(
            resolve(&base, "https://c/d").unwrap().to_string(),
            "https://c/d"
        );
        assert!(resolve(&base, "rel").is_none());
    }
}
