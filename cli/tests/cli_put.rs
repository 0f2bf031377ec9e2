//! `ks3-driver put` of a file that fits one part is `put_content` (the PUT and the probe
//! for a closed upload at the path, in flight at once), not a writer's four requests; a
//! larger file still goes through the writer (multipart).
mod common;

use common::*;
use ks3_driver_host::Driver;
use ks3_local::RunningServer;

const METHODS: [&str; 5] = ["GET", "HEAD", "PUT", "POST", "DELETE"];

/// Requests per method so far.
fn counts(server: &RunningServer) -> Vec<u64> {
    METHODS
        .iter()
        .map(|m| server.requests_matching(m, ""))
        .collect()
}

fn delta(after: &[u64], before: &[u64]) -> Vec<(&'static str, u64)> {
    METHODS
        .iter()
        .zip(after.iter().zip(before))
        .map(|(m, (a, b))| (*m, a - b))
        .collect()
}

fn put_file(endpoint: &str, root: &str, path: &str, body: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, body).unwrap();
    let o = cli_for(endpoint, root)
        .args(["put", path])
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn small_file_put_makes_the_requests_of_put_content() {
    // A server of its own: no other test's requests in the counts.
    let server = start_server(|_| {});
    let endpoint = server.endpoint();
    let root = format!("/put-small/{}", unique());
    let body = data(4096, 7);

    let before = counts(&server);
    let total = server.request_count();
    put_file(&endpoint, &root, "/by-cli", &body);
    let by_cli = delta(&counts(&server), &before);
    let cli_total = server.request_count() - total;

    let mut p = params_for(&endpoint, "unused");
    p.insert("rootdirectory".into(), root.clone());
    let driver = Driver::new(p).await.unwrap();
    let before = counts(&server);
    let total = server.request_count();
    driver.put_content("/by-driver", &body).await.unwrap();
    let by_driver = delta(&counts(&server), &before);
    let driver_total = server.request_count() - total;

    assert_eq!(
        by_cli, by_driver,
        "per method: the CLI's put against put_content"
    );
    assert_eq!(cli_total, driver_total, "all requests");
    assert_eq!(
        server.requests_matching("POST", "uploads"),
        0,
        "no multipart upload"
    );
    assert_eq!(driver.get_content("/by-cli").await.unwrap(), body);

    // One part exactly still fits; one byte more is a multipart upload.
    let part = data(5 * MIB, 8);
    put_file(&endpoint, &root, "/one-part", &part);
    assert_eq!(server.requests_matching("POST", "uploads"), 0);
    assert_eq!(driver.get_content("/one-part").await.unwrap(), part);
    let more = data(5 * MIB + 1, 9);
    put_file(&endpoint, &root, "/two-parts", &more);
    assert!(server.requests_matching("POST", "uploads") > 0);
    assert_eq!(driver.get_content("/two-parts").await.unwrap(), more);
}
