//! What an operator deploys (issue 27), through real clients: TLS (`http.tls`: curl over
//! HTTP/2 and HTTP/1.1, skopeo verifying a private CA, client certificates, the minimum
//! version, plain HTTP on the TLS port), read-only mode, and distribution's token
//! authentication (`auth.token`) with a PyJWT token server, skopeo and oras — each status
//! and challenge first compared with distribution 2.8.2 on the same configuration.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::distribution::require_docker_registry;
use common::token_server::TokenServer;
use common::*;
use http::{Method, StatusCode};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A CA, and certificates it signs, as PEM files in a directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A CA named `name`: `<name>.pem` and its key.
    fn ca(&self, name: &str) -> (CertificateParams, KeyPair) {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).expect("ca cert");
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).expect("write");
        (p, key)
    }

    /// A certificate for `sans` signed by the CA: `<name>.pem`, `<name>.key`.
    fn leaf(&self, name: &str, sans: &[&str], ca: &(CertificateParams, KeyPair)) {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("params");
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, name);
        let issuer = Issuer::new(ca.0.clone(), &ca.1);
        let cert = p.signed_by(&key, &issuer).expect("leaf cert");
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).expect("write");
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).expect("write");
    }
}

/// curl's exit status, response code and HTTP version for `args` (curl is installed by
/// .ci/run).
fn curl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
        ])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut it = text.split_whitespace();
    (
        out.status.code().unwrap_or(-1),
        it.next().unwrap_or("").to_string(),
        it.next().unwrap_or("").to_string(),
    )
}

/// An OCI layout with tag `v1`: one small layer, built with umoci.
async fn small_image(dir: &Path, content: &str) -> PathBuf {
    let layout = dir.join("layout");
    let l = path_str(&layout);
    run("umoci", &["init", "--layout", l]).await;
    run("umoci", &["new", "--image", &format!("{l}:v0")]).await;
    let bundle = dir.join("bundle");
    let b = path_str(&bundle);
    run(
        "umoci",
        &["unpack", "--rootless", "--image", &format!("{l}:v0"), b],
    )
    .await;
    std::fs::write(bundle.join("rootfs/hello.txt"), content).expect("write");
    run("umoci", &["repack", "--image", &format!("{l}:v1"), b]).await;
    layout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca_http2_client_certificates_and_a_minimum_version() {
    require("curl", "apt-get install -y curl");
    require("skopeo", "apt-get install -y skopeo");
    require("umoci", "apt-get install -y umoci");
    let pki = Pki::new();
    let ca = pki.ca("ca");
    pki.leaf("server", &["127.0.0.1", "localhost"], &ca);
    let other_ca = pki.ca("other-ca");
    let client_ca = pki.ca("client-ca");
    pki.leaf("client", &["client.test"], &client_ca);
    pki.leaf("stranger", &["stranger.test"], &other_ca);
    let tls_yaml = |extra: &str| {
        format!(
            "http:\n  tls:\n    certificate: {}\n    key: {}\n{extra}storage:\n  redirect:\n    disable: true\n",
            path_str(&pki.path("server.pem")),
            path_str(&pki.path("server.key")),
        )
    };
    let r = serve_yaml(&tls_yaml("")).await;
    assert_eq!(r.registry.scheme(), "https");
    let url = format!("https://{}/v2/", r.host);
    let ca_file = path_str(&pki.path("ca.pem")).to_string();

    // HTTP/2 by ALPN, HTTP/1.1 as the fallback, the certificate verified.
    assert_eq!(
        curl(&["--cacert", &ca_file, "--http2", &url]),
        (0, "200".into(), "2".into())
    );
    assert_eq!(
        curl(&["--cacert", &ca_file, "--http1.1", &url]),
        (0, "200".into(), "1.1".into())
    );
    // Another CA: the client refuses the certificate (curl 60).
    let (code, _, _) = curl(&["--cacert", path_str(&pki.path("other-ca.pem")), &url]);
    assert_eq!(code, 60, "a certificate of an unknown CA is refused");
    // Plain HTTP on the TLS port: distribution's 400 and words.
    let plain = Command::new("curl")
        .args(["-s", &format!("http://{}/v2/", r.host)])
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout),
        "Client sent an HTTP request to an HTTPS server.\n"
    );

    // skopeo verifies the certificate against a cert dir holding the CA.
    let certs = tempfile::tempdir().expect("certs");
    std::fs::copy(pki.path("ca.pem"), certs.path().join("ca.crt")).expect("copy");
    let work = tempfile::tempdir().expect("work");
    let layout = small_image(work.path(), "over TLS\n").await;
    let dest = format!("docker://{}/tls/app:v1", r.host);
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--dest-cert-dir",
            path_str(certs.path()),
            &format!("oci:{}:v1", path_str(&layout)),
            &dest,
        ],
    )
    .await;
    let raw = run(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--cert-dir",
            path_str(certs.path()),
            &dest,
        ],
    )
    .await;
    assert!(raw.contains("\"layers\""), "{raw}");
    let refused = Command::new("skopeo")
        .envs(no_stored_credentials())
        .args(["inspect", "--raw", &dest])
        .output()
        .expect("skopeo");
    assert!(
        !refused.status.success(),
        "without the CA skopeo must refuse the certificate"
    );
    drop(r);

    // Client certificates required by clientcas.
    let r = serve_yaml(&tls_yaml(&format!(
        "    clientcas:\n      - {}\n",
        path_str(&pki.path("client-ca.pem"))
    )))
    .await;
    let url = format!("https://{}/v2/", r.host);
    let (code, _, _) = curl(&["--cacert", &ca_file, &url]);
    assert_ne!(code, 0, "no client certificate: the handshake fails");
    let (code, _, _) = curl(&[
        "--cacert",
        &ca_file,
        "--cert",
        path_str(&pki.path("stranger.pem")),
        "--key",
        path_str(&pki.path("stranger.key")),
        &url,
    ]);
    assert_ne!(code, 0, "a client certificate of another CA is refused");
    assert_eq!(
        curl(&[
            "--cacert",
            &ca_file,
            "--cert",
            path_str(&pki.path("client.pem")),
            "--key",
            path_str(&pki.path("client.key")),
            &url,
        ]),
        (0, "200".into(), "2".into())
    );
    drop(r);

    // minimumtls: tls1.3 refuses a TLS 1.2 client.
    let r = serve_yaml(&tls_yaml("    minimumtls: tls1.3\n")).await;
    let url = format!("https://{}/v2/", r.host);
    let (code, _, _) = curl(&["--cacert", &ca_file, "--tls-max", "1.2", &url]);
    assert_ne!(code, 0, "TLS 1.2 is below the minimum");
    assert_eq!(curl(&["--cacert", &ca_file, &url]).1, "200");
}

/// Read-only mode (`storage.maintenance.readonly.enabled`), as distribution 2.8.2 answers
/// it: pulls work; every write is `405` with `Allow: GET, HEAD` and a plain-text body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_mode_serves_pulls_and_refuses_every_write() {
    let ks3 = shared_ks3();
    let rw = serve_shared(&ks3, "storage:\n  redirect:\n    disable: true\n").await;
    let config = b"{}".to_vec();
    let cd = push_blob(&rw.base, "ro/app", &config).await;
    let manifest = oci_manifest((&cd, config.len()), &[], None, None);
    let md = sha256(&manifest);
    let put = request(
        Method::PUT,
        &format!("{}/v2/ro/app/manifests/v1", rw.base),
        &[("content-type", "application/vnd.oci.image.manifest.v1+json")],
        manifest.clone(),
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED);

    let ro = serve_shared(
        &ks3,
        "storage:\n  delete:\n    enabled: true\n  redirect:\n    disable: true\n  maintenance:\n    readonly:\n      enabled: true\n",
    )
    .await;
    let got = request(
        Method::GET,
        &format!("{}/v2/ro/app/manifests/v1", ro.base),
        &[("accept", "application/vnd.oci.image.manifest.v1+json")],
        "",
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, manifest);
    let blob = request(
        Method::GET,
        &format!("{}/v2/ro/app/blobs/{cd}", ro.base),
        &[],
        "",
    )
    .await;
    assert_eq!(blob.body, config);
    let b = &ro.base;
    for (method, url) in [
        (Method::POST, format!("{b}/v2/ro/app/blobs/uploads/")),
        (
            Method::POST,
            format!("{b}/v2/ro/app/blobs/uploads/?digest={}", sha256(b"x")),
        ),
        (Method::PUT, format!("{b}/v2/ro/app/manifests/v2")),
        (Method::DELETE, format!("{b}/v2/ro/app/manifests/{md}")),
        (Method::DELETE, format!("{b}/v2/ro/app/blobs/{cd}")),
        (
            Method::PATCH,
            format!("{b}/v2/ro/app/blobs/uploads/some-id"),
        ),
    ] {
        let r = request(method.clone(), &url, &[], "x").await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {url}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        assert_eq!(r.body, b"Method not allowed\n");
    }
    let uploads = ro
        .registry
        .driver()
        .list("/docker/registry/v2/repositories/ro/app/_uploads")
        .await;
    assert!(
        matches!(&uploads, Err(e) if e.is_not_found()),
        "nothing was written: {uploads:?}"
    );
    let still = request(
        Method::HEAD,
        &format!("{}/v2/ro/app/manifests/{md}", rw.base),
        &[],
        "",
    )
    .await;
    assert_eq!(still.status, StatusCode::OK, "the manifest was not deleted");
}

/// Status and challenge of one request, for the comparison with distribution.
async fn probe(base: &str, method: Method, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    let r = request(method, &format!("{base}{path}"), &headers, "").await;
    (
        r.status.as_u16(),
        normalized_challenge(r.header("www-authenticate").unwrap_or("")),
    )
}

/// A challenge with the scopes of its `scope` parameter in sorted order: distribution
/// 2.8.2 lists a mount's two scopes in either order (it builds them from a Go map).
fn normalized_challenge(c: &str) -> String {
    let Some(start) = c.find("scope=\"") else {
        return c.to_string();
    };
    let rest = &c[start + 7..];
    let Some(end) = rest.find('"') else {
        return c.to_string();
    };
    // … and a scope's actions in either order too.
    let mut scopes: Vec<String> = rest[..end]
        .split(' ')
        .map(|scope| match scope.rsplit_once(':') {
            Some((resource, actions)) => {
                let mut a: Vec<&str> = actions.split(',').collect();
                a.sort_unstable();
                format!("{resource}:{}", a.join(","))
            }
            None => scope.to_string(),
        })
        .collect();
    scopes.sort_unstable();
    format!(
        "{}scope=\"{}\"{}",
        &c[..start],
        scopes.join(" "),
        &rest[end + 1..]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_answers_as_distribution_and_grants_per_repository() {
    require_docker_registry();
    let tokens = TokenServer::start(serde_json::json!({}));
    let ks3 = shared_ks3();
    let ours = serve_shared(&ks3, &tokens.yaml(false)).await;
    let target = common::distribution::S3Target::of(&ks3, "/dist-token");
    let dist = common::distribution::Distribution::start(
        &target,
        &common::distribution::Options {
            extra_yaml: tokens.yaml(false),
            ..Default::default()
        },
    );
    let pull = serde_json::json!([{"type": "repository", "name": "app", "actions": ["pull"]}]);
    let push =
        serde_json::json!([{"type": "repository", "name": "app", "actions": ["pull", "push"]}]);
    let catalog = serde_json::json!([{"type": "registry", "name": "catalog", "actions": ["*"]}]);
    let t_pull = tokens.mint("RS256", "x5c", 300, pull.clone());
    let t_push_ec = tokens.mint("ES256", "x5c", 300, push.clone());
    let t_kid = tokens.mint("RS256", "libtrust", 300, push.clone());
    let t_expired = tokens.mint("RS256", "x5c", -120, pull.clone());
    let t_foreign = tokens.mint("ES256", "foreign", 300, pull.clone());
    let t_catalog = tokens.mint("ES256", "libtrust", 300, catalog);
    let digest0 = format!("sha256:{}", "0".repeat(64));
    let cases: Vec<(Method, String, Option<&str>)> = vec![
        (Method::GET, "/v2/".into(), None),
        (Method::GET, "/v2/".into(), Some(&t_pull)),
        (Method::GET, "/v2/".into(), Some("not.a.token")),
        (Method::GET, "/v2/app/tags/list".into(), None),
        (Method::GET, "/v2/app/manifests/v1".into(), Some(&t_pull)),
        (Method::GET, "/v2/app/manifests/v1".into(), Some(&t_expired)),
        (Method::GET, "/v2/app/manifests/v1".into(), Some(&t_foreign)),
        (Method::GET, "/v2/other/manifests/v1".into(), Some(&t_pull)),
        (Method::POST, "/v2/app/blobs/uploads/".into(), Some(&t_pull)),
        (
            Method::POST,
            "/v2/app/blobs/uploads/".into(),
            Some(&t_push_ec),
        ),
        (Method::POST, "/v2/app/blobs/uploads/".into(), Some(&t_kid)),
        (
            Method::POST,
            format!("/v2/app/blobs/uploads/?mount={digest0}&from=other"),
            Some(&t_push_ec),
        ),
        (
            Method::DELETE,
            format!("/v2/app/manifests/{digest0}"),
            Some(&t_push_ec),
        ),
        (Method::GET, "/v2/_catalog".into(), Some(&t_pull)),
        (Method::GET, "/v2/_catalog".into(), Some(&t_catalog)),
    ];
    for (method, path, token) in cases {
        let theirs = probe(&dist.base, method.clone(), &path, token).await;
        let mine = probe(&ours.base, method.clone(), &path, token).await;
        // A challenge's realm is the same URL for both; everything must agree.
        assert_eq!(
            mine,
            theirs,
            "{method} {path} with {:?}: ours vs distribution 2.8.2",
            token.map(|t| &t[..12.min(t.len())])
        );
    }
    // distribution v3's `jwks`: a key named by a JWKS `kid` (2.8.2 has no such option).
    let with_jwks = serve_shared(&ks3, &tokens.yaml(true)).await;
    let t_jwks = tokens.mint("ES256", "jwks", 300, pull);
    assert_eq!(
        probe(
            &with_jwks.base,
            Method::GET,
            "/v2/app/tags/list",
            Some(&t_jwks)
        )
        .await
        .0,
        404,
        "accepted (and the repository does not exist)"
    );
    assert_eq!(
        probe(&ours.base, Method::GET, "/v2/app/tags/list", Some(&t_jwks))
            .await
            .0,
        401,
        "without jwks configured the kid is unknown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_and_oras_push_and_pull_through_the_token_server() {
    require("skopeo", "apt-get install -y skopeo");
    require("umoci", "apt-get install -y umoci");
    require_python_module("oras.client", "python3 -m pip install oras");
    let tokens = TokenServer::start(serde_json::json!({
        "alice": {"password": "alice-pw", "grants": {"team/app": ["pull", "push"], "oras/art": ["pull", "push"]}, "alg": "RS256", "kid": "x5c"},
        "bob": {"password": "bob-pw", "grants": {"team/app": ["pull"]}, "alg": "ES256", "kid": "libtrust"},
    }));
    let r = serve_yaml(&format!(
        "{}storage:\n  redirect:\n    disable: true\n",
        tokens.yaml(false)
    ))
    .await;
    let work = tempfile::tempdir().expect("work");
    let layout = small_image(work.path(), "token auth\n").await;
    let src = format!("oci:{}:v1", path_str(&layout));
    let dest = format!("docker://{}/team/app:v1", r.host);
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:alice-pw",
            &src,
            &dest,
        ],
    )
    .await;
    // bob may pull…
    let pulled = work.path().join("pulled");
    run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            "bob:bob-pw",
            &dest,
            &format!("oci:{}:v1", path_str(&pulled)),
        ],
    )
    .await;
    assert!(pulled.join("index.json").exists());
    // …but not push, here or to another repository.
    for target in [dest.clone(), format!("docker://{}/other/app:v1", r.host)] {
        let out = Command::new("skopeo")
            .envs(no_stored_credentials())
            .args([
                "--insecure-policy",
                "copy",
                "--dest-tls-verify=false",
                "--dest-creds",
                "bob:bob-pw",
                &src,
                &target,
            ])
            .output()
            .expect("skopeo");
        assert!(!out.status.success(), "bob pushed to {target}");
    }
    // Nobody without credentials (`--no-creds`: no stored login is sent either).
    let anon = Command::new("skopeo")
        .envs(no_stored_credentials())
        .args([
            "inspect",
            "--raw",
            "--no-creds",
            "--tls-verify=false",
            &dest,
        ])
        .output()
        .expect("skopeo");
    assert!(
        !anon.status.success(),
        "an anonymous pull was served: {}",
        String::from_utf8_lossy(&anon.stdout)
    );

    // oras (the Python package) through the same token flow.
    let script = work.path().join("oras_token.py");
    std::fs::write(
        &script,
        r#"import os, sys
import oras.client
host, workdir = sys.argv[1], sys.argv[2]
os.chdir(workdir)
c = oras.client.OrasClient(hostname=host, insecure=True)
# The login goes to a file of this test's own, not ~/.docker/config.json.
c.login(username="alice", password="alice-pw", hostname=host,
        config_path=os.path.join(workdir, "docker-config.json"))
with open("artifact.txt", "w") as f:
    f.write("an artifact behind token auth\n")
c.push(target=f"{host}/oras/art:v1", files=["artifact.txt"], quiet=True)
os.remove("artifact.txt")
os.makedirs("out", exist_ok=True)
got = c.pull(target=f"{host}/oras/art:v1", outdir="out")
print(open(got[0]).read(), end="")
"#,
    )
    .expect("script");
    let out = run(
        "python3",
        &[path_str(&script), &r.host, path_str(work.path())],
    )
    .await;
    assert_eq!(out.lines().last(), Some("an artifact behind token auth"));
}
