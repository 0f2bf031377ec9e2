//! `ks3-driver gc` and `ks3-driver purge-uploads` on a store written in distribution's
//! layout on `ks3-local`: distribution's output lines, the summary, what is deleted, and
//! the exit status.
mod common;

use std::process::Output;

use common::*;
use ks3_driver_host::Driver;
use sha2::{Digest, Sha256};

fn digest(b: &[u8]) -> String {
    let h: String = Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    format!("sha256:{h}")
}

fn blob_path(d: &str) -> String {
    let hex = &d[7..];
    format!("/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2])
}

async fn put_blob(drv: &Driver, repo: &str, b: &[u8]) -> String {
    let d = digest(b);
    drv.put_content(&blob_path(&d), b).await.unwrap();
    drv.put_content(
        &format!(
            "/docker/registry/v2/repositories/{repo}/_layers/sha256/{}/link",
            &d[7..]
        ),
        d.as_bytes(),
    )
    .await
    .unwrap();
    d
}

fn run(root: &str, args: &[&str]) -> (Output, String) {
    let out = cli_for(&server().endpoint(), root)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

async fn exists(drv: &Driver, p: &str) -> bool {
    match drv.stat(p).await {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => panic!("stat {p}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_prints_distributions_lines_and_deletes_what_nothing_references() {
    let root = format!("/cli-gc/{}", unique());
    let mut p = params("cli-gc");
    p.insert("rootdirectory".into(), root.clone());
    let drv = Driver::new(p).await.unwrap();
    let config = put_blob(&drv, "app", b"{\"architecture\":\"amd64\"}").await;
    let layer = put_blob(&drv, "app", &data(10_000, 1)).await;
    let orphan = put_blob(&drv, "app", &data(5_000, 2)).await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 24},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 10000}],
    })
    .to_string();
    let m = digest(manifest.as_bytes());
    drv.put_content(&blob_path(&m), manifest.as_bytes())
        .await
        .unwrap();
    let repo = "/docker/registry/v2/repositories/app/_manifests";
    for link in [
        format!("{repo}/revisions/sha256/{}/link", &m[7..]),
        format!("{repo}/tags/latest/current/link"),
        format!("{repo}/tags/latest/index/sha256/{}/link", &m[7..]),
    ] {
        drv.put_content(&link, m.as_bytes()).await.unwrap();
    }
    // An upload started long ago, and one just now.
    let uploads = "/docker/registry/v2/repositories/app/_uploads";
    drv.put_content(
        &format!("{uploads}/old-upload/startedat"),
        b"2020-01-01T00:00:00Z",
    )
    .await
    .unwrap();
    drv.put_content(&format!("{uploads}/old-upload/hashstates/sha256/0"), b"x")
        .await
        .unwrap();
    drv.put_content(
        &format!("{uploads}/new-upload/startedat"),
        b"2999-01-01T00:00:00Z",
    )
    .await
    .unwrap();

    // By default, blobs written within the hour wait for their manifests.
    let (out, stdout) = run(&root, &["gc", "--dry-run"]);
    assert!(out.status.success());
    assert!(
        stdout.contains("0 blobs (0 bytes) and 0 manifests would be deleted; 1 unreferenced blobs kept (younger than --min-age)"),
        "{stdout}"
    );
    let (out, stdout) = run(&root, &["gc", "--dry-run", "--min-age", "0s"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..7],
        [
            "app".to_string(),
            format!("app: marking manifest {m} "),
            format!("app: marking blob {config}"),
            format!("app: marking blob {layer}"),
            String::new(),
            "3 blobs marked, 1 blobs and 0 manifests eligible for deletion".to_string(),
            format!("blob eligible for deletion: {orphan}"),
        ],
        "{stdout}"
    );
    assert!(
        lines[7].starts_with("dry run: 1 repositories, 1 manifests kept; 1 blobs (5000 bytes)"),
        "{stdout}"
    );
    assert!(
        exists(&drv, &blob_path(&orphan)).await,
        "a dry run deletes nothing"
    );

    let (out, stdout) = run(&root, &["purge-uploads", "--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "app: upload eligible for deletion: old-upload (started 2020-01-01T00:00:00Z)"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("new-upload"), "{stdout}");
    assert!(exists(&drv, &format!("{uploads}/old-upload/startedat")).await);

    // Blobs written a moment ago: --min-age 0 for distribution's sweep (the default
    // keeps an hour's worth for manifests still to come), and a short settle.
    let (out, stdout) = run(
        &root,
        &["gc", "--purge-uploads", "--min-age", "0s", "--settle", "1s"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 uploads purged, 1 kept, 0 errors"),
        "{stdout}"
    );
    assert!(
        stdout.contains("deleted 1 blobs (5000 bytes) and 0 manifests"),
        "{stdout}"
    );
    assert!(!exists(&drv, &blob_path(&orphan)).await);
    assert!(!exists(&drv, &format!("{uploads}/old-upload")).await);
    assert!(exists(&drv, &format!("{uploads}/new-upload/startedat")).await);
    for kept in [&m, &config, &layer] {
        assert!(exists(&drv, &blob_path(kept)).await, "{kept} kept");
    }

    // A manifest that does not parse: exit 1, nothing deleted.
    let junk = put_blob(&drv, "app", b"not json").await;
    drv.put_content(
        &format!("{repo}/revisions/sha256/{}/link", &junk[7..]),
        junk.as_bytes(),
    )
    .await
    .unwrap();
    let orphan2 = put_blob(&drv, "app", &data(100, 3)).await;
    let (out, _) = run(&root, &["gc", "--min-age", "0s"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&junk) && err.contains("nothing was deleted"),
        "{err}"
    );
    assert!(exists(&drv, &blob_path(&orphan2)).await);
}

#[test]
fn gc_without_storage_is_a_usage_error() {
    let out = bare_cli().args(["gc", "--dry-run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bare_cli()
        .args(["-p", "bucket=b", "gc", "--min-age", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
