//! Tier 2: walk tables (distribution's walk_test.go and the S3 driver's TestWalk, in KS3
//! key order), the S3 driver's extra tests (empty uploads dir, table-driven delete, 1005
//! objects, multipart-copy move, empty or `/` root directory) and a few of our own.
use ks3_driver_host::{Driver, DriverError, Error, FileInfo, IoError, IoKind, WalkControl};
use ks3_tests::*;

const TREE: &[&str] = &[
    "/file1",
    "/folder1/file1",
    "/folder1-suffix/file1",
    "/folder2/file1",
    "/folder3/subfolder1/subfolder1/file1",
    "/folder3/subfolder2/subfolder1/file1",
    "/folder4/file1",
];

async fn tree(test: &str) -> Driver {
    let d = fresh_driver(test).await;
    for p in TREE {
        d.put_content(p, b"content").await.unwrap();
    }
    d
}

async fn cleanup(d: &Driver) {
    for top in [
        "/file1",
        "/folder1",
        "/folder1-suffix",
        "/folder2",
        "/folder3",
        "/folder4",
    ] {
        let _ = d.delete(top).await;
    }
    assert_clean(d).await;
}

/// Walks and records (path, is_dir), applying `on` to decide what to return.
async fn walk_record(
    d: &Driver,
    from: &str,
    hint: Option<&str>,
    mut on: impl FnMut(&FileInfo) -> Result<WalkControl, Error> + Send,
) -> (Vec<(String, bool)>, Result<(), Error>) {
    let mut seen = Vec::new();
    let r = d
        .walk(from, hint, |fi| {
            seen.push((fi.path.clone(), fi.is_dir));
            on(fi)
        })
        .await;
    (seen, r)
}

fn expect(items: &[(&str, bool)]) -> Vec<(String, bool)> {
    items.iter().map(|(p, d)| (p.to_string(), *d)).collect()
}

/// The whole tree in KS3 key order (`-` sorts before `/`).
fn walk_all() -> Vec<(String, bool)> {
    expect(&[
        ("/file1", false),
        ("/folder1-suffix", true),
        ("/folder1-suffix/file1", false),
        ("/folder1", true),
        ("/folder1/file1", false),
        ("/folder2", true),
        ("/folder2/file1", false),
        ("/folder3", true),
        ("/folder3/subfolder1", true),
        ("/folder3/subfolder1/subfolder1", true),
        ("/folder3/subfolder1/subfolder1/file1", false),
        ("/folder3/subfolder2", true),
        ("/folder3/subfolder2/subfolder1", true),
        ("/folder3/subfolder2/subfolder1/file1", false),
        ("/folder4", true),
        ("/folder4/file1", false),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walk_tables() {
    let d = tree("walk_tables").await;
    let cont = |_: &FileInfo| Ok(WalkControl::Continue);

    let (seen, r) = walk_record(&d, "/", None, cont).await;
    r.unwrap();
    assert_eq!(seen, walk_all(), "walk all");

    // Skip directory: nothing under /folder3 is visited, the rest is.
    let (seen, r) = walk_record(&d, "/", None, |fi| {
        Ok(if fi.path == "/folder3" {
            WalkControl::SkipDir
        } else {
            WalkControl::Continue
        })
    })
    .await;
    r.unwrap();
    let want: Vec<_> = walk_all()
        .into_iter()
        .filter(|(p, _)| !p.starts_with("/folder3/"))
        .collect();
    assert_eq!(seen, want, "skip /folder3");

    // Skip directory on a prefix sibling: /folder1 skipped, /folder1-suffix not.
    let (seen, r) = walk_record(&d, "/", None, |fi| {
        Ok(if fi.path == "/folder1" {
            WalkControl::SkipDir
        } else {
            WalkControl::Continue
        })
    })
    .await;
    r.unwrap();
    assert!(seen.contains(&("/folder1-suffix/file1".into(), false)));
    assert!(!seen.iter().any(|(p, _)| p == "/folder1/file1"));

    // Start after a file: resume right after it, without re-reporting its ancestors.
    let (seen, r) = walk_record(&d, "/", Some("/folder1/file1"), cont).await;
    r.unwrap();
    assert_eq!(seen, walk_all()[5..].to_vec(), "start after /folder1/file1");

    let (seen, r) = walk_record(&d, "/", Some("/folder3/subfolder1/subfolder1/file1"), cont).await;
    r.unwrap();
    assert_eq!(seen, walk_all()[11..].to_vec(), "start after a deep file");

    let (seen, r) = walk_record(
        &d,
        "/folder3",
        Some("/folder3/subfolder1/subfolder1/file1"),
        cont,
    )
    .await;
    r.unwrap();
    assert_eq!(
        seen,
        walk_all()[11..14].to_vec(),
        "start after, from a folder"
    );

    // A hint after the whole subtree: nothing. A hint equal to `from`: everything.
    let (seen, r) = walk_record(&d, "/folder2", Some("/folder3"), cont).await;
    r.unwrap();
    assert!(
        seen.is_empty(),
        "hint past the subtree walks nothing: {seen:?}"
    );
    let (seen, r) = walk_record(&d, "/folder2", Some("/folder2"), cont).await;
    r.unwrap();
    assert_eq!(seen, expect(&[("/folder2/file1", false)]));
    // A hint that does not exist still positions the walk.
    let (seen, r) = walk_record(&d, "/", Some("/folder2/zzz"), cont).await;
    r.unwrap();
    assert_eq!(seen, walk_all()[7..].to_vec(), "missing hint");

    // Stop early (ErrFilledBuffer): walk returns Ok after the entry that stopped it.
    let mut n = 0;
    let (seen, r) = walk_record(&d, "/", None, |_| {
        n += 1;
        Ok(if n == 3 {
            WalkControl::Stop
        } else {
            WalkControl::Continue
        })
    })
    .await;
    r.unwrap();
    assert_eq!(seen, walk_all()[..3].to_vec(), "stop early");

    // An error from the callback stops the walk and comes back as is.
    let (seen, r) = walk_record(&d, "/", None, |fi| {
        if fi.path == "/folder2" {
            Err(Error::Driver(DriverError::Io(IoError::new(
                IoKind::Other,
                "callback failed",
            ))))
        } else {
            Ok(WalkControl::Continue)
        }
    })
    .await;
    assert!(
        matches!(r, Err(Error::Driver(DriverError::Io(ref e))) if e.message == "callback failed"),
        "{r:?}"
    );
    assert_eq!(seen.last().unwrap().0, "/folder2");

    // From a folder.
    let (seen, r) = walk_record(&d, "/folder3", None, cont).await;
    r.unwrap();
    assert_eq!(seen, walk_all()[8..14].to_vec(), "from /folder3");

    // A missing path walks nothing.
    let (seen, r) = walk_record(&d, "/nothing-here", None, cont).await;
    r.unwrap();
    assert!(seen.is_empty());

    cleanup(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walk_empty_uploads_dir() {
    let root = unique_root("walk_empty_uploads_dir");
    let d = Driver::new(params(&root)).await.unwrap();
    d.put_content(
        "/docker/registry/v2/repositories/library/x/_manifests/tags/a/current/link",
        b"sha256:0",
    )
    .await
    .unwrap();
    // An empty "directory" as some tools create it: a key ending in `/`.
    let placeholder = format!(
        "{}/docker/registry/v2/repositories/library/x/_uploads/",
        root.trim_start_matches('/')
    );
    assert_eq!(raw_put(&placeholder, b"").await, 200);
    let (seen, r) = walk_record(&d, "/docker/registry/v2/repositories", None, |_| {
        Ok(WalkControl::Continue)
    })
    .await;
    r.unwrap();
    for (p, _) in &seen {
        assert!(
            !p.ends_with('/') && !p.contains("//"),
            "walk reported a path with an empty name: {p}"
        );
    }
    assert!(seen.iter().any(|(p, _)| p.ends_with("/current/link")));
    d.delete("/docker").await.unwrap();
    assert_clean(&d).await;
}

/// The S3 driver's TestDelete: its ten objects, its cases (three folders, deep ones
/// included; a missing path; two invalid paths; then each object alone), and for every
/// object afterwards: deleted exactly when the case says so, a deleted one `Stat`s as
/// path-not-found (any other error fails), a kept one is the same file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_table() {
    const OBJS: &[&str] = &[
        "/file1",
        "/file1-2",
        "/folder1/file1",
        "/folder2/file1",
        "/folder3/file1",
        "/folder3/subfolder1/subfolder1/file1",
        "/folder3/subfolder2/subfolder1/file1",
        "/folder4/file1",
        "/folder1-v2/file1",
        "/folder1-v2/subfolder1/file1",
    ];
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Want {
        Ok,
        NotFound,
        Invalid,
    }
    let mut cases: Vec<(&str, Vec<&str>, Want)> = vec![
        ("/folder1", vec!["/folder1/file1"], Want::Ok),
        ("/folder2", vec!["/folder2/file1"], Want::Ok),
        (
            "/folder3",
            vec![
                "/folder3/file1",
                "/folder3/subfolder1/subfolder1/file1",
                "/folder3/subfolder2/subfolder1/file1",
            ],
            Want::Ok,
        ),
        ("/path/does/not/exist", vec![], Want::NotFound),
        ("/path/is/invalid/", vec![], Want::Invalid),
        ("/path/is/invalid*", vec![], Want::Invalid),
    ];
    for &p in OBJS {
        cases.push((p, vec![p], Want::Ok));
    }
    // Our own, on top: a name that is only a prefix of siblings (`/folder` of
    // `/folder1…`) is not found, and the siblings stay.
    cases.push(("/folder", vec![], Want::NotFound));

    for (target, gone, want) in &cases {
        let d = fresh_driver("delete_table").await;
        let content = |p: &str| format!("content {p}").into_bytes();
        for &p in OBJS {
            d.put_content(p, &content(p)).await.unwrap();
        }
        let r = d.delete(target).await;
        match (want, &r) {
            (Want::Ok, Ok(())) => {}
            (Want::NotFound, Err(Error::Driver(DriverError::PathNotFound(path)))) => {
                assert_eq!(path.as_str(), *target)
            }
            (Want::Invalid, Err(Error::Driver(DriverError::InvalidPath(_)))) => {}
            _ => panic!("delete {target}: expected {want:?}, got {r:?}"),
        }
        for &p in OBJS {
            let deleted = gone.contains(&p);
            match d.stat(p).await {
                Err(Error::Driver(DriverError::PathNotFound(_))) if deleted => {}
                Err(e) => panic!("after deleting {target}: stat {p}: {e:?} (deleted: {deleted})"),
                Ok(fi) if deleted => panic!("after deleting {target}: {p} is still there: {fi:?}"),
                Ok(fi) => {
                    assert!(!fi.is_dir, "{p} is a file");
                    assert_eq!(fi.size, content(p).len() as u64, "{p} is unchanged");
                }
            }
        }
        for top in [
            "/file1",
            "/file1-2",
            "/folder1",
            "/folder2",
            "/folder3",
            "/folder4",
            "/folder1-v2",
        ] {
            match d.delete(top).await {
                Ok(()) | Err(Error::Driver(DriverError::PathNotFound(_))) => {}
                Err(e) => panic!("clean-up delete {top}: {e}"),
            }
        }
        assert_clean(&d).await;
    }
    let d = fresh_driver("delete_table").await;
    // A file and a folder of one name go together; the `-2` sibling stays.
    for p in ["/file1", "/file1/2", "/file1-2"] {
        d.put_content(p, b"x").await.unwrap();
    }
    d.delete("/file1").await.unwrap();
    for p in ["/file1", "/file1/2"] {
        assert!(
            matches!(
                d.stat(p).await,
                Err(Error::Driver(DriverError::PathNotFound(_)))
            ),
            "{p} deleted with /file1"
        );
    }
    assert_eq!(d.get_content("/file1-2").await.unwrap(), b"x");
    d.delete("/file1-2").await.unwrap();
    for bad in ["", "/", "relative"] {
        assert!(
            matches!(
                d.delete(bad).await,
                Err(Error::Driver(DriverError::InvalidPath(_)))
            ),
            "{bad}"
        );
    }
    // Only a sibling with the name as prefix: nothing of `path` exists.
    d.put_content("/ab", b"x").await.unwrap();
    assert!(matches!(
        d.delete("/a").await,
        Err(Error::Driver(DriverError::PathNotFound(_)))
    ));
    d.get_content("/ab").await.unwrap();
    d.delete("/ab").await.unwrap();
    assert_clean(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_thousand_blobs() {
    let d = fresh_driver("over_thousand_blobs").await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..1005).step_by(8) {
                d.put_content(&format!("/blobs/b{i:05}"), b"x")
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        d.list("/blobs").await.unwrap().len(),
        1005,
        "List pages through 100-entry pages"
    );
    d.delete("/blobs").await.unwrap();
    assert!(matches!(
        d.list("/blobs").await,
        Err(Error::Driver(DriverError::PathNotFound(_)))
    ));
    assert_clean(&d).await;
}

/// A delete learns whether its path exists from one listing by the path's key, which also
/// returns the siblings that sort before `key/` (`a-0000`…). More than a page of them
/// neither hides the path's own keys nor counts as the path, and a missing path is answered
/// without a DELETE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_sees_past_a_page_of_siblings() {
    let d = fresh_driver("delete_past_siblings").await;
    // 1 001 siblings each of /s/a and /s/b: a listing page holds 1 000 keys.
    let mut tasks = Vec::new();
    for t in 0..8 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..1001).step_by(8) {
                for name in ["a", "b"] {
                    d.put_content(&format!("/s/{name}-{i:04}"), b"s")
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let own = ["/s/a", "/s/a/x", "/s/a/y/z"];
    for p in own {
        d.put_content(p, b"own").await.unwrap();
    }
    d.delete("/s/a").await.unwrap();
    for p in own {
        assert!(
            matches!(
                d.stat(p).await,
                Err(Error::Driver(DriverError::PathNotFound(_)))
            ),
            "{p} deleted with /s/a"
        );
    }
    let deletes_of_b = || {
        server()
            .request_log()
            .iter()
            .filter(|l| {
                l.starts_with("DELETE ") && l.contains("delete_past_siblings") && l.contains("/s/b")
            })
            .count()
    };
    let before = deletes_of_b();
    assert!(matches!(
        d.delete("/s/b").await,
        Err(Error::Driver(DriverError::PathNotFound(_)))
    ));
    assert_eq!(
        deletes_of_b(),
        before,
        "a missing path's delete sent a DELETE"
    );
    assert_eq!(
        d.list("/s").await.unwrap().len(),
        2002,
        "every sibling stays"
    );
    d.delete("/s").await.unwrap();
    assert_clean(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_with_multipart_copy() {
    let threshold = (5 * MIB).to_string();
    let d = driver_with(
        "move_with_multipart_copy",
        &[
            ("multipartcopythresholdsize", &threshold),
            ("multipartcopychunksize", &threshold),
            ("multipartcopymaxconcurrency", "4"),
        ],
    )
    .await;
    let contents = &random_bytes()[..64 * MIB];
    let mut w = d.writer("/src/blob", false).await.unwrap();
    w.write(contents).await.unwrap();
    w.commit().await.unwrap();
    let before = server().requests_matching("PUT", "partNumber=");
    d.mv("/src/blob", "/dst/blob").await.unwrap();
    assert!(
        server().requests_matching("PUT", "partNumber=") - before >= 13,
        "the move used upload part copy"
    );
    assert_eq!(
        sha256_hex(&d.get_content("/dst/blob").await.unwrap()),
        sha256_hex(contents)
    );
    assert!(matches!(
        d.stat("/src/blob").await,
        Err(Error::Driver(DriverError::PathNotFound(_)))
    ));
    d.delete("/dst").await.unwrap();
    assert_clean(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_slash_root_directory() {
    for root in ["", "/"] {
        let d = Driver::new(params(root)).await.unwrap();
        let name = format!("/emptyroot-{}", random_filename(12));
        d.put_content(&format!("{name}/f"), b"x").await.unwrap();
        let listed = d.list("/").await.unwrap();
        assert!(listed.contains(&name), "{listed:?}");
        for p in &listed {
            assert!(
                p.starts_with('/') && !p.ends_with('/') && !p.contains("//"),
                "root {root:?} listed {p}"
            );
        }
        d.delete(&name).await.unwrap();
    }
}

/// The S3 driver's TestListObjectsV2: six files whose content is their own path, and
/// `sub/0`. `Stat` of a file gives its path, size and no directory; `List` gives the six
/// files and `sub`; `Walk` visits exactly the files, `sub` (a directory) and `sub/0`, each
/// file with its own size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_objects_v2() {
    let d = fresh_driver("list_objects_v2").await;
    let prefix = "/test-list-objects-v2";
    let files: Vec<String> = (0..6).map(|i| format!("{prefix}/{i}")).collect();
    for p in &files {
        d.put_content(p, p.as_bytes()).await.unwrap();
    }
    let info = d.stat(&files[0]).await.unwrap();
    assert!(!info.is_dir, "{info:?}");
    assert_eq!(info.size, files[0].len() as u64);
    assert_eq!(info.path, files[0]);

    let sub_file = format!("{prefix}/sub/0");
    let sub_dir = format!("{prefix}/sub");
    d.put_content(&sub_file, sub_file.as_bytes()).await.unwrap();

    let mut want: Vec<String> = files.iter().cloned().chain([sub_dir.clone()]).collect();
    want.sort();
    let mut listed = d.list(prefix).await.unwrap();
    listed.sort();
    assert_eq!(listed, want, "List");

    let mut walked = Vec::new();
    d.walk(prefix, None, |fi| {
        walked.push(fi.path.clone());
        if fi.path == sub_dir {
            assert!(fi.is_dir, "{} is a directory", fi.path);
        } else {
            assert!(!fi.is_dir, "{} is a file", fi.path);
            assert_eq!(fi.size, fi.path.len() as u64, "size of {}", fi.path);
        }
        Ok(WalkControl::Continue)
    })
    .await
    .unwrap();
    want.push(sub_file);
    want.sort();
    walked.sort();
    assert_eq!(walked, want, "Walk");

    d.delete(prefix).await.unwrap();
    assert_clean(&d).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_stat_sizes_and_dirs() {
    let d = fresh_driver("list_and_stat_sizes_and_dirs").await;
    for i in 0..6u8 {
        d.put_content(&format!("/d/{i}"), &vec![i; i as usize * 100])
            .await
            .unwrap();
    }
    d.put_content("/d/sub/0", b"abc").await.unwrap();
    d.put_content("/d-2/x", b"sibling").await.unwrap();
    for i in 0..6u8 {
        let fi = d.stat(&format!("/d/{i}")).await.unwrap();
        assert_eq!((fi.size, fi.is_dir), (i as u64 * 100, false));
    }
    assert!(d.stat("/d/sub").await.unwrap().is_dir);
    // A sibling `d-2` does not make `d-` anything, nor `d` more than it is.
    assert!(matches!(
        d.stat("/d-").await,
        Err(Error::Driver(DriverError::PathNotFound(_)))
    ));
    let mut l = d.list("/d").await.unwrap();
    l.sort();
    assert_eq!(
        l,
        vec!["/d/0", "/d/1", "/d/2", "/d/3", "/d/4", "/d/5", "/d/sub"]
    );
    let mut walked = Vec::new();
    d.walk("/d", None, |fi| {
        walked.push((fi.path.clone(), fi.size, fi.is_dir));
        Ok(WalkControl::Continue)
    })
    .await
    .unwrap();
    walked.sort();
    let mut want: Vec<(String, u64, bool)> = (0..6u64)
        .map(|i| (format!("/d/{i}"), i * 100, false))
        .collect();
    want.push(("/d/sub".into(), 0, true));
    want.push(("/d/sub/0".into(), 3, false));
    want.sort();
    assert_eq!(walked, want);
    d.delete("/d").await.unwrap();
    d.delete("/d-2").await.unwrap();
    assert_clean(&d).await;
}

/// The S3 driver's TestStorageClass, for KS3's classes: the stored object carries the
/// configured class (raw HEAD, `x-kss-storage-class`) whether it came from put_content,
/// a single-PUT commit, a multipart commit or a move; `NONE` sends no class, and
/// ks3-local then reports none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_class() {
    let big = &random_bytes()[..6 * MIB];
    for class in std::iter::once("NONE").chain(ks3_proto::names::STORAGE_CLASSES.iter().copied()) {
        let root = unique_root("storage_class");
        let mut p = params(&root);
        p.insert("storageclass".into(), class.into());
        let d = Driver::new(p).await.unwrap();
        d.put_content("/put", b"contents").await.unwrap();
        let mut w = d.writer("/small", false).await.unwrap();
        w.write(b"contents").await.unwrap();
        w.commit().await.unwrap();
        let mut w = d.writer("/multipart", false).await.unwrap();
        w.write(big).await.unwrap();
        w.commit().await.unwrap();
        d.put_content("/src", b"moved").await.unwrap();
        d.mv("/src", "/moved").await.unwrap();
        for p in ["/put", "/small", "/multipart", "/moved"] {
            let key = format!("{}{}", key_prefix(&root), &p[1..]);
            let head = raw_head(&key).await;
            assert_eq!(head.status, 200, "HEAD {key}");
            let got = head.header("x-kss-storage-class");
            if class == "NONE" {
                assert_eq!(got, None, "storageclass=NONE: {p} carries no class");
            } else {
                assert_eq!(got, Some(class), "storageclass={class}: {p}");
            }
            d.delete(p).await.unwrap();
        }
        assert_clean(&d).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_resumes_after_odd_writes_and_cancel_leaves_nothing() {
    let d = fresh_driver("writer_odd_writes").await;
    let data = &random_bytes()[..17 * MIB + 3];
    // Odd write sizes: parts are cut at exactly chunksize; the rest rides in the tail.
    let mut w = d.writer("/u/data", false).await.unwrap();
    for piece in data.chunks(MIB * 3 / 2 + 7) {
        w.write(piece).await.unwrap();
    }
    w.close().await.unwrap();
    let mut w = d.writer("/u/data", true).await.unwrap();
    assert_eq!(w.size(), data.len() as u64);
    w.cancel().await.unwrap();
    assert!(matches!(
        d.stat("/u/data").await,
        Err(Error::Driver(DriverError::PathNotFound(_)))
    ));
    assert!(matches!(
        d.writer("/u/data", true).await.map(|_| ()),
        Err(Error::Driver(DriverError::PathNotFound(_)))
    ));
    assert_clean(&d).await;
}
