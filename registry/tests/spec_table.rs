//! The OCI distribution spec's error codes (v1.1.1, code-1 … code-14), one table, every
//! endpoint group (pull, push, content discovery, content management), driven by curl —
//! over plain HTTP, and again over TLS with token authentication on (a token granting the
//! repository everything), where every answer must be the same. `DENIED` (code-12) is in
//! the table as never produced: distribution answers a refused scope with 401
//! `UNAUTHORIZED` (`insufficient_scope`), and so does this registry.
mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::token_server::mint_token;
use common::*;

/// One request of the table: what it does, and the status and code the spec asks for.
struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<String>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn case(
    what: &'static str,
    method: &'static str,
    path: String,
    headers: &[&str],
    body: &[u8],
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        what,
        method,
        path,
        headers: headers.iter().map(|h| h.to_string()).collect(),
        body: body.to_vec(),
        status,
        code,
    }
}

/// How curl reaches the registry: its base URL and extra arguments (CA, token).
struct Client {
    base: String,
    args: Vec<String>,
}

impl Client {
    /// Status, headers and body of one request.
    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[String],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        let dir = tempfile::tempdir().expect("tmp");
        let head = dir.path().join("head");
        let out = dir.path().join("body");
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-X", method, "-D"])
            .arg(&head)
            .arg("-o")
            .arg(&out)
            .args(&self.args);
        for h in headers {
            cmd.args(["-H", h]);
        }
        if !body.is_empty() || method == "PUT" || method == "PATCH" || method == "POST" {
            cmd.args(["--data-binary", "@-"]);
        }
        if method == "HEAD" {
            cmd.arg("-I");
        }
        cmd.arg(format!("{}{path}", self.base));
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("curl runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body)
            .expect("body");
        let status = child.wait().expect("curl");
        assert!(status.success(), "curl {method} {path}: {status}");
        let head = std::fs::read_to_string(&head).unwrap_or_default();
        let code = head
            .lines()
            .rev()
            .find(|l| l.starts_with("HTTP/"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (code, head, std::fs::read(&out).unwrap_or_default())
    }
}

fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["errors"][0]["code"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Pushes what the table needs through `c`: a config blob and an image manifest tagged
/// `v1` in `spec/app`; returns the config's digest.
fn seed(c: &Client) -> String {
    let config = b"{}";
    let cd = sha256(config);
    let (s, _, _) = c.send(
        "POST",
        &format!("/v2/spec/app/blobs/uploads/?digest={cd}"),
        &["Content-Type: application/octet-stream".into()],
        config,
    );
    assert_eq!(s, 201, "seed blob");
    let m = oci_manifest((&cd, config.len()), &[], None, None);
    let (s, _, _) = c.send(
        "PUT",
        "/v2/spec/app/manifests/v1",
        &["Content-Type: application/vnd.oci.image.manifest.v1+json".into()],
        &m,
    );
    assert_eq!(s, 201, "seed manifest");
    cd
}

/// A new upload session's path.
fn session(c: &Client) -> String {
    let (s, head, _) = c.send("POST", "/v2/spec/app/blobs/uploads/", &[], b"");
    assert_eq!(s, 202);
    let loc = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        })
        .expect("Location");
    // A relative location, or the absolute one an HTTPS base gives.
    match loc.find("/v2/") {
        Some(i) => loc[i..].to_string(),
        None => loc,
    }
}

fn run_table(c: &Client) {
    let cd = seed(c);
    let zero = format!("sha256:{}", "0".repeat(64));
    let json = "Content-Type: application/vnd.oci.image.manifest.v1+json";
    let missing_layer = oci_manifest((&cd, 2), &[(&zero, 10)], None, None);
    let too_big = vec![b' '; (4 << 20) + 1];
    let upload = session(c);
    let upload2 = session(c);
    let cases = vec![
        // Pull
        case(
            "a blob unknown",
            "GET",
            format!("/v2/spec/app/blobs/{zero}"),
            &[],
            b"",
            404,
            "BLOB_UNKNOWN",
        ),
        case(
            "a manifest unknown",
            "GET",
            "/v2/spec/app/manifests/nope".into(),
            &[],
            b"",
            404,
            "MANIFEST_UNKNOWN",
        ),
        case(
            "a reference neither tag nor digest",
            "GET",
            "/v2/spec/app/manifests/-x".into(),
            &[],
            b"",
            404,
            "MANIFEST_UNKNOWN",
        ),
        case(
            "an invalid name",
            "GET",
            "/v2/Spec/App/manifests/v1".into(),
            &[],
            b"",
            400,
            "NAME_INVALID",
        ),
        // Push
        case(
            "a digest the bytes do not have",
            "POST",
            format!("/v2/spec/app/blobs/uploads/?digest={zero}"),
            &["Content-Type: application/octet-stream"],
            b"abc",
            400,
            "DIGEST_INVALID",
        ),
        case(
            "a malformed digest",
            "POST",
            "/v2/spec/app/blobs/uploads/?digest=sha256:zz".into(),
            &["Content-Type: application/octet-stream"],
            b"abc",
            400,
            "DIGEST_INVALID",
        ),
        case(
            "an upload unknown",
            "PATCH",
            "/v2/spec/app/blobs/uploads/no-such-upload".into(),
            &["Content-Type: application/octet-stream"],
            b"abc",
            404,
            "BLOB_UPLOAD_UNKNOWN",
        ),
        case(
            "an upload's status unknown",
            "GET",
            "/v2/spec/app/blobs/uploads/no-such-upload".into(),
            &[],
            b"",
            404,
            "BLOB_UPLOAD_UNKNOWN",
        ),
        case(
            "a malformed Content-Range",
            "PATCH",
            upload.clone(),
            &[
                "Content-Range: bytes=zz",
                "Content-Type: application/octet-stream",
            ],
            b"abc",
            400,
            "BLOB_UPLOAD_INVALID",
        ),
        case(
            "a chunk out of order",
            "PATCH",
            upload.clone(),
            &[
                "Content-Range: 5-7",
                "Content-Type: application/octet-stream",
            ],
            b"abc",
            416,
            "BLOB_UPLOAD_INVALID",
        ),
        case(
            "a Content-Range longer than the body",
            "PATCH",
            upload2.clone(),
            &[
                "Content-Range: 0-9",
                "Content-Type: application/octet-stream",
            ],
            b"abc",
            400,
            "SIZE_INVALID",
        ),
        case(
            "a manifest naming an unknown blob",
            "PUT",
            "/v2/spec/app/manifests/v2".into(),
            &[json],
            &missing_layer,
            400,
            "MANIFEST_BLOB_UNKNOWN",
        ),
        case(
            "a manifest that is not one",
            "PUT",
            "/v2/spec/app/manifests/v3".into(),
            &[json],
            b"{not json",
            400,
            "MANIFEST_INVALID",
        ),
        case(
            "a manifest over 4 MiB",
            "PUT",
            "/v2/spec/app/manifests/v4".into(),
            &[json],
            &too_big,
            413,
            "SIZE_INVALID",
        ),
        // Content discovery
        case(
            "the tags of a repository unknown",
            "GET",
            "/v2/spec/none/tags/list".into(),
            &[],
            b"",
            404,
            "NAME_UNKNOWN",
        ),
        case(
            "referrers of a malformed digest",
            "GET",
            "/v2/spec/app/referrers/sha256:zz".into(),
            &[],
            b"",
            400,
            "DIGEST_INVALID",
        ),
        // Content management (deletes are disabled here)
        case(
            "a manifest delete, deletes disabled",
            "DELETE",
            "/v2/spec/app/manifests/v1".into(),
            &[],
            b"",
            405,
            "UNSUPPORTED",
        ),
        case(
            "a blob delete, deletes disabled",
            "DELETE",
            format!("/v2/spec/app/blobs/{cd}"),
            &[],
            b"",
            405,
            "UNSUPPORTED",
        ),
    ];
    for k in &cases {
        let (status, head, body) = c.send(k.method, &k.path, &k.headers, &k.body);
        assert_eq!(
            (status, error_code(&body).as_str()),
            (k.status, k.code),
            "{}: {} {}\n{head}{}",
            k.what,
            k.method,
            k.path,
            String::from_utf8_lossy(&body)
        );
    }
    // TOOMANYREQUESTS (code-14): the one upload slot held by a slow body.
    let upload3 = session(c);
    let mut held = Command::new("curl");
    // `-T -` streams stdin as it comes (`--data-binary @-` would read it all first).
    held.args(["-s", "-o", "/dev/null", "-X", "PATCH", "-T", "-"])
        .args(&c.args)
        .args(["-H", "Content-Type: application/octet-stream"])
        .args(["-H", "Content-Length: 1000000"])
        .arg(format!("{}{upload3}", c.base))
        .stdin(Stdio::piped());
    let mut held = held.spawn().expect("curl");
    held.stdin
        .as_mut()
        .expect("stdin")
        .write_all(&[1u8; 1000])
        .expect("part of the body");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (status, _, body) = c.send(
        "POST",
        &format!("/v2/spec/app/blobs/uploads/?digest={}", sha256(b"q")),
        &["Content-Type: application/octet-stream".into()],
        b"q",
    );
    let _ = held.kill();
    let _ = held.wait();
    assert_eq!(
        (status, error_code(&body).as_str()),
        (429, "TOOMANYREQUESTS")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spec_error_code_over_plain_http() {
    require("curl", "apt-get install -y curl");
    let r = serve_yaml("limits:\n  maxuploads: 1\n").await;
    let c = Client {
        base: r.base.clone(),
        args: Vec::new(),
    };
    tokio::task::spawn_blocking(move || run_table(&c))
        .await
        .expect("table");
    // UNAUTHORIZED (code-11) with htpasswd: no credentials.
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, format!("alice:{}\n", bcrypt_hash("pw"))).expect("htpasswd");
    let r = serve_yaml(&format!(
        "auth:\n  htpasswd:\n    realm: spec\n    path: {}\n",
        file.display()
    ))
    .await;
    let c = Client {
        base: r.base.clone(),
        args: Vec::new(),
    };
    let (status, _, body) = tokio::task::spawn_blocking(move || c.send("GET", "/v2/", &[], b""))
        .await
        .expect("curl");
    assert_eq!((status, error_code(&body).as_str()), (401, "UNAUTHORIZED"));
}

fn bcrypt_hash(pw: &str) -> String {
    bcrypt::hash(pw, 5).expect("bcrypt")
}

/// The same table over TLS with token authentication on: a token granting the
/// repository every action, so the spec's codes come through unchanged; without a token,
/// 401 `UNAUTHORIZED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spec_error_code_over_tls_with_token_auth() {
    require("curl", "apt-get install -y curl");
    let keys = tempfile::tempdir().expect("keys");
    let access = serde_json::json!([
        {"type": "repository", "name": "spec/app", "actions": ["pull", "push", "delete"]},
        {"type": "repository", "name": "spec/none", "actions": ["pull"]},
        {"type": "repository", "name": "Spec/App", "actions": ["pull"]}
    ]);
    let token = mint_token(keys.path(), "ES256", "x5c", 600, "spec", &access);
    // The server's certificate, from a CA of its own.
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "spec table CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "registry");
    let cert = leaf
        .signed_by(&key, &rcgen::Issuer::new(ca_params, &ca_key))
        .expect("cert");
    let dir = keys.path();
    std::fs::write(dir.join("tls-ca.pem"), ca.pem()).expect("write");
    std::fs::write(dir.join("tls.pem"), cert.pem()).expect("write");
    std::fs::write(dir.join("tls.key"), key.serialize_pem()).expect("write");
    let r = serve_yaml(&format!(
        "http:\n  tls:\n    certificate: {d}/tls.pem\n    key: {d}/tls.key\nauth:\n  token:\n    realm: https://auth.test/token\n    service: registry.test\n    issuer: token.test\n    rootcertbundle: {d}/ca.pem\nlimits:\n  maxuploads: 1\n",
        d = dir.display()
    ))
    .await;
    let base = format!("https://{}", r.host);
    let ca_file = dir.join("tls-ca.pem").display().to_string();
    // Over HTTP/2 (ALPN's choice): an error answered before the handler read the request
    // body once reached the client only about one time in two (the stream's reset
    // discarded it); the table's early answers check that it always does.
    let c = Client {
        base: base.clone(),
        args: vec![
            "--http2".into(),
            "--cacert".into(),
            ca_file.clone(),
            "-H".into(),
            format!("Authorization: Bearer {token}"),
        ],
    };
    tokio::task::spawn_blocking(move || run_table(&c))
        .await
        .expect("table");
    let anon = Client {
        base,
        args: vec!["--cacert".into(), ca_file],
    };
    let (status, head, body) = tokio::task::spawn_blocking(move || {
        anon.send("GET", "/v2/spec/app/manifests/v1", &[], b"")
    })
    .await
    .expect("curl");
    assert_eq!((status, error_code(&body).as_str()), (401, "UNAUTHORIZED"));
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
}
