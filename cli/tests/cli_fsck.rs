//! `ks3-driver fsck` as a process on `ks3-local`: its lines, its JSON lines (what the
//! chaos test reads), `--repair`, and its exit status (0 clean, 1 problems, 2 the store
//! could not be read).
mod common;

use std::process::Output;

use common::*;
use ks3_driver_host::Driver;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn digest(b: &[u8]) -> String {
    let h: String = Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    format!("sha256:{h}")
}

const V2: &str = "/docker/registry/v2";

fn blob_path(d: &str) -> String {
    let hex = &d[7..];
    format!("{V2}/blobs/sha256/{}/{hex}/data", &hex[..2])
}

async fn put_blob(drv: &Driver, b: &[u8]) -> String {
    let d = digest(b);
    drv.put_content(&blob_path(&d), b).await.unwrap();
    let link = format!("{V2}/repositories/app/_layers/sha256/{}/link", &d[7..]);
    drv.put_content(&link, d.as_bytes()).await.unwrap();
    d
}

fn run(endpoint: &str, root: &str, args: &[&str]) -> (Output, Vec<String>) {
    let out = cli_for(endpoint, root)
        .arg("fsck")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout.lines().map(str::to_string).collect())
}

/// The JSON lines: problems (`kind`), repairs (`repair`), and the last one the summary.
fn json(lines: &[String]) -> (Vec<Value>, Vec<Value>, Value) {
    let all: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let (last, rest) = all.split_last().expect("a summary line");
    let problems = rest
        .iter()
        .filter(|v| v.get("repair").is_none())
        .cloned()
        .collect();
    let repairs = rest
        .iter()
        .filter(|v| v.get("repair").is_some())
        .cloned()
        .collect();
    (problems, repairs, last["summary"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_lines_json_repair_and_exit_status() {
    let endpoint = server().endpoint();
    let root = format!("/cli-fsck/{}", unique());

    // An empty store is clean.
    let (out, lines) = run(&endpoint, &root, &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        lines.last().unwrap().starts_with("fsck: 0 problems"),
        "{lines:?}"
    );

    let mut p = params("cli-fsck");
    p.insert("rootdirectory".into(), root.clone());
    let drv = Driver::new(p).await.unwrap();
    let config = put_blob(&drv, b"{\"architecture\":\"amd64\"}").await;
    let layer = put_blob(&drv, &data(10_000, 1)).await;
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
    let repo = format!("{V2}/repositories/app/_manifests");
    for link in [
        format!("{repo}/revisions/sha256/{}/link", &m[7..]),
        format!("{repo}/tags/latest/current/link"),
        format!("{repo}/tags/latest/index/sha256/{}/link", &m[7..]),
    ] {
        drv.put_content(&link, m.as_bytes()).await.unwrap();
    }
    let (out, lines) = run(&endpoint, &root, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{lines:?}");
    let (problems, repairs, summary) = json(&lines);
    assert!(problems.is_empty() && repairs.is_empty(), "{lines:?}");
    assert_eq!(summary["problems"], 0);
    assert_eq!(
        (
            summary["repositories"].as_u64(),
            summary["manifests"].as_u64()
        ),
        (Some(1), Some(1))
    );

    // Broken: a tag naming a manifest never pushed (repairable) and the layer's data
    // gone (not repairable: the manifest is damaged; its _layers link is a leftover).
    let ghost = digest(b"never pushed");
    drv.put_content(&format!("{repo}/tags/ghost/current/link"), ghost.as_bytes())
        .await
        .unwrap();
    drv.delete(blob_path(&layer).trim_end_matches("/data"))
        .await
        .unwrap();
    let (out, lines) = run(&endpoint, &root, &[]);
    assert_eq!(out.status.code(), Some(1), "{lines:?}");
    let tag_line = format!("tag-dangling {repo}/tags/ghost/current/link: ");
    assert!(lines.iter().any(|l| l.starts_with(&tag_line)), "{lines:?}");
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("fsck: 3 problems (2 errors, 1 leftovers)"),
        "{lines:?}"
    );

    let (out, lines) = run(&endpoint, &root, &["--json", "--repair"]);
    assert_eq!(out.status.code(), Some(1), "problems were found: {lines:?}");
    let (problems, repairs, summary) = json(&lines);
    let mut kinds: Vec<&str> = problems
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "layer-link-dangling",
            "manifest-missing-blob",
            "tag-dangling"
        ]
    );
    for p in &problems {
        for key in ["kind", "severity", "path", "message", "repairable"] {
            assert!(p.get(key).is_some(), "{p}: no {key}");
        }
        let repairable = p["kind"] != "manifest-missing-blob";
        assert_eq!(p["repairable"], repairable, "{p}");
    }
    assert_eq!(repairs.len(), 2, "{lines:?}");
    assert!(
        repairs.iter().all(|r| r["repair"] == "deleted"),
        "{lines:?}"
    );
    assert_eq!(
        (
            summary["errors"].as_u64(),
            summary["leftovers"].as_u64(),
            summary["repaired"].as_u64()
        ),
        (Some(2), Some(1), Some(2))
    );

    // What repair may not touch is still reported; the tag is gone.
    let (out, lines) = run(&endpoint, &root, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{lines:?}");
    let (problems, _, _) = json(&lines);
    assert_eq!(problems.len(), 1, "{lines:?}");
    assert_eq!(problems[0]["kind"], "manifest-missing-blob");
    assert!(drv.stat(&format!("{repo}/tags/ghost")).await.is_err());
    assert!(
        drv.stat(&blob_path(&m)).await.is_ok(),
        "the manifest's bytes stay"
    );

    // A leftover alone is clean, unless --strict.
    let leftover = format!("{V2}/repositories/app/_layers/sha256/{}/link", &ghost[7..]);
    drv.put_content(&leftover, ghost.as_bytes()).await.unwrap();
    drv.put_content(&blob_path(&layer), &data(10_000, 1))
        .await
        .unwrap();
    let (out, lines) = run(&endpoint, &root, &[]);
    assert_eq!(out.status.code(), Some(0), "{lines:?}");
    let (out, _) = run(&endpoint, &root, &["--strict"]);
    assert_eq!(out.status.code(), Some(1));

    // A store that cannot be read: exit 2, with the reason on stderr.
    let (out, _) = run("http://127.0.0.1:9", &root, &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("could not read the store"),
        "{out:?}"
    );
    // A bad flag is a usage error.
    let (out, _) = run(&endpoint, &root, &["--upload-age", "soon"]);
    assert_eq!(out.status.code(), Some(2));
}
