//! The README's "Embedding the host library" example, against the local server (real
//! paths instead of the README's elisions), so the documented calls stay right.
mod common;

use common::*;
use ks3_driver_host::{Driver, Error, WalkControl};

#[tokio::test]
async fn readme_embedding_example_runs() -> Result<(), Error> {
    let mut p = params("readme");
    p.insert(
        "rootdirectory".into(),
        format!("/readme/{}/docker/registry/v2", unique()),
    );
    let driver = Driver::new(p).await?;

    let upload = "/repositories/app/_uploads/0b6f/data";
    let mut w = driver.writer(upload, false).await?;
    w.write(b"first chunk").await?;
    w.close().await?;
    let mut w = driver.writer(upload, true).await?;
    assert_eq!(w.size(), 11);
    w.write(b", second chunk").await?;
    w.commit().await?;
    let blob = "/blobs/sha256/ab/abcd/data";
    driver.mv(upload, blob).await?;

    let link = driver
        .get_content("/repositories/app/_manifests/tags/latest/current/link")
        .await;
    let e = link.unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(e.kind(), "path-not-found");

    let mut r = driver.reader(blob, 6).await?;
    assert_eq!(r.read(4 << 20).await?, b"chunk, second chunk");
    assert!(driver.redirect_url("GET", blob).await?.is_some());

    driver
        .put_content(
            "/repositories/app/_manifests/tags/latest/current/link",
            b"x",
        )
        .await?;
    let mut seen = Vec::new();
    driver
        .walk("/repositories", None, |info| {
            seen.push(info.path.clone());
            let name = info.path.rsplit('/').next().unwrap_or("");
            Ok(if info.is_dir && name.starts_with('_') {
                WalkControl::SkipDir
            } else {
                WalkControl::Continue
            })
        })
        .await?;
    assert!(
        seen.contains(&"/repositories/app/_manifests".to_string()),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|p| p.contains("/_manifests/")),
        "a skipped directory was entered: {seen:?}"
    );
    Ok(())
}
